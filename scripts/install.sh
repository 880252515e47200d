#!/bin/sh
# Installs et, one binary, from its release:
#
#   curl -fsSL https://github.com/et-project/et/releases/latest/download/install.sh | sh
#   curl -fsSL .../install.sh | sh -s -- --prefix ~/opt --no-service
#
# It downloads et-<os>-<arch> and SHA256SUMS, checks the binary's checksum
# before installing anything, and puts it at PREFIX/bin/et atomically. As
# root on a systemd machine it also installs and starts the et-server
# service (the daemon, TCP 2022). What it installed is listed in
# PREFIX/share/et/install-manifest, which --uninstall removes exactly.
#
# Everything below is in functions, called on the last line: a download cut
# short defines some functions and runs nothing.

# The project's release URL: where et-<os>-<arch> and SHA256SUMS are
# published. ET_DOWNLOAD_BASE in the environment overrides it (a mirror, a
# pinned release: .../releases/download/v0.1.0).
ET_RELEASE_BASE="https://github.com/et-project/et/releases/latest/download"

say() {
	printf 'et install: %s\n' "$*" >&2
}

die() {
	say "$*"
	exit 1
}

usage() {
	cat <<'EOF'
Usage: install.sh [--prefix DIR] [--no-service] [--uninstall] [--help]

Installs et to DIR/bin/et (DIR: /usr/local as root, else ~/.local) from
$ET_DOWNLOAD_BASE (default: the latest GitHub release), after checking its
SHA-256 against the release's SHA256SUMS. As root on a systemd machine it
also installs /etc/systemd/system/et-server.service and enables and starts
it (et server: the daemon, TCP port 2022).

  --prefix DIR    install under DIR (bin/et, share/et/install-manifest)
  --no-service    do not install or start the et-server service
  --uninstall     remove what an install under the prefix put there
  -h, --help      show this help

Piped: curl -fsSL URL/install.sh | sh -s -- --prefix DIR
EOF
}

# The release's name for this OS, or one line and exit 1.
detect_os() {
	os_name=$(uname -s)
	case "$os_name" in
	Linux) echo linux ;;
	Darwin) echo darwin ;;
	*) die "unsupported OS '$os_name': et is built for Linux and macOS" ;;
	esac
}

# The release's name for this CPU, or one line and exit 1.
detect_arch() {
	arch_name=$(uname -m)
	case "$arch_name" in
	x86_64 | amd64) echo x86_64 ;;
	aarch64 | arm64) echo aarch64 ;;
	*) die "unsupported CPU '$arch_name': et is built for x86_64 and aarch64" ;;
	esac
}

is_root() {
	[ "$(id -u)" -eq 0 ]
}

# Downloads URL to FILE with curl or wget; one line and exit 1 on failure.
download() {
	if command -v curl >/dev/null 2>&1; then
		case "$1" in
		https://*) download_error=$(curl -fsSL --proto '=https' --proto-redir '=https' -o "$2" "$1" 2>&1) ;;
		*) download_error=$(curl -fsSL -o "$2" "$1" 2>&1) ;;
		esac || die "cannot download $1: $(echo "$download_error" | head -n 1)"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1" || die "cannot download $1 (wget failed)"
	else
		die "neither curl nor wget is installed: install one and run this again"
	fi
}

# The SHA-256 of FILE, lowercase hex.
sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d ' ' -f 1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d ' ' -f 1
	else
		die "neither sha256sum nor shasum is installed: cannot check the download"
	fi
}

# Checks FILE against NAME's line in SUMS; one line and exit 1 otherwise.
verify_checksum() {
	expected=$(awk -v name="$2" '$2 == name || $2 == "*" name { print $1; exit }' "$3" |
		tr 'A-F' 'a-f')
	[ -n "$expected" ] || die "SHA256SUMS has no line for $2: nothing installed"
	actual=$(sha256_of "$1") || exit 1
	[ "$expected" = "$actual" ] ||
		die "checksum mismatch for $2 (expected $expected, got $actual): nothing installed"
}

# Makes directory DIR and its missing parents, remembering each it made.
make_dir() {
	[ -d "$1" ] && return 0
	make_dir "$(dirname "$1")"
	mkdir "$1" || die "cannot create $1"
	created_dirs="$created_dirs
$1/"
}

# Takes back what this run made before it installed the binary (the staged
# copy, the directories), then says MESSAGE and exits 1.
abort_install() {
	[ -n "${staged:-}" ] && rm -f "$staged"
	printf '%s\n' "$created_dirs" | LC_ALL=C sort -r | while IFS= read -r dir; do
		[ -n "$dir" ] && rmdir "$dir" 2>/dev/null
	done
	die "$*"
}

# Appends PATH to the paths this run installed.
record() {
	installed_paths="$installed_paths
$1"
}

# Writes the manifest: what earlier runs installed, plus this run's (a
# second install does not forget what the first made).
write_manifest() {
	manifest_new="$manifest.new.$$"
	if ! {
		{
			echo "# Installed by et's install.sh; install.sh --uninstall --prefix $prefix removes these."
			{
				[ -f "$manifest" ] && grep -v '^#' "$manifest"
				printf '%s\n' "$installed_paths" "$created_dirs"
			} | awk 'NF && !seen[$0]++'
		} >"$manifest_new" && mv -f "$manifest_new" "$manifest"
	}; then
		rm -f "$manifest_new"
		die "cannot write $manifest"
	fi
}

# The unit file: packaging/et-server.service of the repository, verbatim
# (a test checks they are identical).
service_unit() {
	cat <<'EOF'
# et server: the et daemon. It listens on TCP 2022, reads each client's
# clear HELLO and hands the connection itself (its socket, over the router
# socket with SCM_RIGHTS) to that user's `et terminal` process. It never
# holds a session key, never relays bytes and never connects to anything.
#
# scripts/install.sh installs this file (as root, on a systemd machine) to
# /etc/systemd/system/et-server.service, with ExecStart pointing at where it
# put the binary. To listen elsewhere: systemctl edit et-server, then
#   [Service]
#   ExecStart=
#   ExecStart=/usr/local/bin/et server --port 2200
# (a port below 1024 also needs CAP_NET_BIND_SERVICE in CapabilityBoundingSet).

[Unit]
Description=et server (a remote terminal that survives network drops)
Documentation=https://github.com/et-project/et
After=network.target

[Service]
Type=simple
ExecStart=/usr/local/bin/et server
Restart=on-failure
RestartSec=2s

# The router socket is /run/et/router.sock (et's default). systemd makes
# /run/et before the start (mode 0755: every user's terminal must reach the
# socket to register); it is the only place the daemon writes. It is kept
# across a restart (automatic, or systemctl restart), so that what the
# daemon leaves there for its next start survives, and removed at a stop.
RuntimeDirectory=et
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=restart

# Hardening. The daemon needs no privilege at all: its port is above 1024,
# SO_PEERCRED tells it who registers without any capability, and it never
# opens a user's file or socket (terminals receive their connections from
# it). So it runs as a throwaway system user with no capabilities, sees no
# home directories and a /tmp of its own, and cannot gain privileges.
DynamicUser=yes
CapabilityBoundingSet=
NoNewPrivileges=yes
# The whole file system read-only except /run/et (RuntimeDirectory above).
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
# What the daemon never needs: devices, kernel knobs, cgroups, namespaces,
# real-time scheduling, set-uid files, other personalities, other sockets
# than Unix, IPv4 and IPv6 (netlink: glibc's address lookup uses it).
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# Not MemoryDenyWriteExecute=yes: the daemon is a Deno (V8) program, and
# V8's JIT compiler writes the machine code it then runs.

[Install]
WantedBy=multi-user.target
EOF
}

# Installs the unit (ExecStart at BINARY), reloads systemd, enables and
# starts the service; restarts it when the binary was replaced.
install_service() {
	case "$1" in
	*[!A-Za-z0-9._/+@-]*) die "cannot install the service for $1: its path has spaces or special characters (use --no-service)" ;;
	esac
	unit=/etc/systemd/system/et-server.service
	unit_new="/etc/systemd/system/.et-server.service.new.$$"
	if ! {
		service_unit | sed "s#^ExecStart=/usr/local/bin/et #ExecStart=$1 #" >"$unit_new" &&
			chmod 644 "$unit_new" && mv -f "$unit_new" "$unit"
	}; then
		rm -f "$unit_new"
		die "cannot write $unit"
	fi
	record "$unit"
	systemctl daemon-reload || die "systemctl daemon-reload failed"
	systemctl enable --now et-server || die "systemctl enable --now et-server failed"
	if [ "$binary_replaced" = yes ]; then
		systemctl try-restart et-server || die "systemctl try-restart et-server failed"
	fi
	say "et-server.service enabled and started (et server on TCP port 2022)"
}

install_et() {
	os=$(detect_os) || exit 1
	arch=$(detect_arch) || exit 1
	name="et-$os-$arch"
	base="${ET_DOWNLOAD_BASE:-$ET_RELEASE_BASE}"
	base="${base%/}"

	work=$(mktemp -d "${TMPDIR:-/tmp}/et-install.XXXXXX") || die "cannot make a temp directory"
	trap 'rm -rf "$work" "${staged:-}"' EXIT
	trap 'exit 1' HUP INT TERM
	say "downloading $name from $base"
	download "$base/$name" "$work/$name"
	download "$base/SHA256SUMS" "$work/SHA256SUMS"
	verify_checksum "$work/$name" "$name" "$work/SHA256SUMS"

	bindir="$prefix/bin"
	target="$bindir/et"
	created_dirs=""
	installed_paths=""
	make_dir "$bindir"
	make_dir "$prefix/share/et"
	manifest="$prefix/share/et/install-manifest"

	# Stage beside the target, so that the final mv is one rename.
	staged="$bindir/.et.new.$$"
	if ! { cp "$work/$name" "$staged" && chmod 755 "$staged"; }; then
		abort_install "cannot write $staged"
	fi
	version=$("$staged" --version </dev/null 2>/dev/null | head -n 1)
	case "$version" in
	"et "*) ;;
	*) abort_install "the downloaded $name does not run here (no answer to --version): nothing installed" ;;
	esac
	binary_replaced=no
	if [ -f "$target" ] && ! cmp -s "$staged" "$target"; then
		binary_replaced=yes
	fi
	mv -f "$staged" "$target" || abort_install "cannot install $target"
	staged=""
	record "$target"
	say "installed $target ($version)"

	if [ "$service" = yes ] && is_root && [ -d /run/systemd/system ]; then
		install_service "$target"
	elif [ "$service" = yes ] && is_root; then
		say "no systemd here: start the daemon yourself with: $target server"
	fi
	write_manifest
	case ":$PATH:" in
	*":$bindir:"*) ;;
	*) say "note: $bindir is not on your PATH" ;;
	esac
}

uninstall_et() {
	manifest="$prefix/share/et/install-manifest"
	if [ ! -f "$manifest" ]; then
		say "nothing to uninstall: no $manifest"
		return 0
	fi
	if grep -qx '/etc/systemd/system/et-server.service' "$manifest" &&
		[ -f /etc/systemd/system/et-server.service ]; then
		systemctl disable --now et-server || say "systemctl disable --now et-server failed; removing the unit anyway"
	fi
	# Files first, then the directories the installs made, deepest first
	# (each only if empty: anything else put there stays).
	made_dirs=$(grep -v '^#' "$manifest" | grep '/$' | LC_ALL=C sort -r)
	grep -v '^#' "$manifest" | grep -v '/$' | while IFS= read -r path; do
		[ -n "$path" ] || continue
		rm -f "$path" && say "removed $path"
	done
	if grep -qx '/etc/systemd/system/et-server.service' "$manifest"; then
		systemctl daemon-reload || say "systemctl daemon-reload failed"
	fi
	rm -f "$manifest"
	printf '%s\n' "$made_dirs" | while IFS= read -r dir; do
		[ -n "$dir" ] && rmdir "$dir" 2>/dev/null && say "removed $dir"
	done
	return 0
}

main() {
	prefix=""
	service=yes
	action=install
	while [ "$#" -gt 0 ]; do
		case "$1" in
		--prefix)
			[ "$#" -ge 2 ] || die "--prefix needs a directory"
			prefix="$2"
			shift 2
			;;
		--prefix=*)
			prefix="${1#--prefix=}"
			shift
			;;
		--no-service)
			service=no
			shift
			;;
		--uninstall)
			action=uninstall
			shift
			;;
		-h | --help)
			usage
			return 0
			;;
		*)
			say "unknown option '$1' (see --help)"
			exit 2
			;;
		esac
	done
	if [ -z "$prefix" ]; then
		if is_root; then
			prefix=/usr/local
		else
			[ -n "${HOME:-}" ] || die "HOME is not set: pass --prefix DIR"
			prefix="$HOME/.local"
		fi
	fi
	case "$prefix" in
	/*) ;;
	*) prefix="$(pwd)/$prefix" ;;
	esac
	prefix="${prefix%/}"
	if [ "$action" = uninstall ]; then
		uninstall_et
	else
		install_et
	fi
}

{ main "$@"; }
