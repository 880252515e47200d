#!/usr/bin/env bash
# Sets up this machine (scripts/setup.sh) and runs every test: the README's
# test command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec deno task test "$@"
