#!/usr/bin/env bash
# Installs what et needs to run and to be tested, on Debian/Ubuntu:
# Deno (pinned, from npm: JSR and Deno's own download host are not needed)
# and, for the end-to-end tests and the demo, OpenSSH server and tmux.
# Idempotent; uses sudo when not root.
set -euo pipefail

DENO_VERSION="2.9.6"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v top >/dev/null 2>&1 || missing+=(procps)
command -v vi >/dev/null 2>&1 || missing+=(vim-tiny)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# ET 7.0 (C++), measured beside et by `deno task bench` when its binaries
# sit in ../shared/peers: its runtime libraries.
if [ -d "$(dirname "$0")/../../shared/peers/et-cpp-7.0.0" ]; then
  for lib in libprotobuf32 libsodium23 libunwind8; do
    dpkg -s "$lib" >/dev/null 2>&1 || missing+=("$lib")
  done
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v deno >/dev/null 2>&1 || [ "$(deno --version | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  echo "setup: installing deno@$DENO_VERSION from npm" >&2
  $SUDO npm install -g --silent "deno@$DENO_VERSION" >/dev/null
fi
deno --version | head -1 >&2
