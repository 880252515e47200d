/**
 * The text of `et --help` and its subcommands' help.
 *
 * @module
 */

/** Version of this build. */
export const VERSION = "0.1.0";

/** Help for the client. */
export const CLIENT_HELP =
  `et ${VERSION} — a remote terminal that survives network drops

Usage:
  et [options] [user@]host[:port] [--] [command [args...]]
  et --list [user@]host               your sessions on host
  et --attach [ID] [user@]host        resume a session (the latest detached one)
  et server [options]                 the daemon on the remote (et server --help)
  et terminal                         started by the client over ssh; not for direct use

Sessions:
  Without a command, et opens a login shell on host. With one, it runs it
  through your shell there, like ssh: only its output and its exit status.
  The session lives on the remote host whatever happens to the network or
  to this process: run et --attach to take it up again from anywhere.
  -c, --command CMD         same as a command after the host
  -e, --noexit              with a command: type it into an interactive shell and stay
      --pty / --no-pty      force a remote pty, or none (default: a pty for a shell,
                            and for a command only when stdin and stdout are terminals;
                            without one, stdout and stderr stay apart and stdin EOF
                            reaches the command)
  -x, --kill-other-sessions end your other sessions on host first
      --session-timeout D   how long a session waits for its client to come back,
                            then hangs up its shell (default 7d; 0 = forever)
      --max-backlog SIZE    output kept for you while away; past it the program
                            blocks, nothing is dropped (default 64M)
  e.g. et build@ci 'make -j8 > build.log'   survives network drops, unlike ssh

Connecting:
  -p, --port PORT           et server TCP port on the remote (default 2022)
      --connect-timeout D   keep trying the first connection this long (default 30s)
      --no-daemon           no-root mode even if et server runs: the session
                            listens itself on a free port of --port-range
      --daemon-only         fail (one line) if no et server takes the session,
                            instead of falling back to no-root mode
      --port-range A-B      ports a no-root session may listen on, on the
                            address ssh reached (default 2022-2122; the
                            firewall must let them in)
      --ssh COMMAND         ssh command line to bootstrap with (default "ssh"),
                            e.g. --ssh "ssh -F ~/.ssh/other_config -p 2200"
      --terminal-path CMD   how to run et on the remote (default "et"),
                            e.g. --terminal-path "deno run -A /srv/et/main.ts"

Escapes (after a newline, as in ssh):
  ~.  detach: et exits, the session keeps running (et --attach resumes it)
  ~?  list the escapes      ~~  send a literal ~
      --escape-char C       another escape character (C, ^X) or none

Logging and help:
  -v, --verbose             log more (repeat for debug) to the log file, and say
                            on stderr when a session is in no-root mode
      --log-file PATH       log file (default $XDG_STATE_HOME/et/client.log,
                            else /tmp/et-<uid>/client.log; created mode 0600)
  -h, --help                show this help
      --version             show the version and the protocol version

Durations: 500ms, 30s, 5m, 2h, 7d (a bare number is seconds). Sizes: 512K, 64M, 1G.

How it works: et runs ssh once to start (or find) your session on the
remote, passing a fresh key over ssh's stdin. It then connects over TCP to
'et server' there and keeps reconnecting through drops, a daemon restart or
a laptop's sleep: output and keystrokes are buffered and resent, nothing is
lost or repeated, and the remote program keeps running while you are away.
Where no et server runs (no root there), the session listens itself on a
free port of --port-range, like mosh-server, and et dials that port instead
(no-root mode); --list and --attach work the same.
A wait longer than a second gets a notice on stderr (full-screen programs
are repainted after it).

Exit status: the remote program's exit status; 0 after a detach or --list;
1 if the session could not be started or was lost for good; 2 for bad usage.
`;

/** Help for `et server`. */
export const SERVER_HELP = `Usage: et server [options]

Runs the et daemon: listens on TCP and routes each client, by session id, to
its terminal process over a local Unix socket. It relays sealed frames only
and never holds a session key.

Options:
  -p, --port PORT      TCP port to listen on (default 2022)
      --bind ADDR      address to bind (default 0.0.0.0)
      --router PATH    Unix socket terminals register on
                       (default $ET_ROUTER_SOCKET, else /run/et/router.sock)
  -v, --verbose        log debug lines (logs go to stderr)
  -h, --help           show this help
`;

/** Help for `et terminal`. */
export const TERMINAL_HELP = `Usage: et terminal

Started by the et client over ssh, as the user; reads the session secret
from stdin (never argv) and hands it to the user's session host (one
process, et terminal --host, holds all of the user's sessions; started
detached if none runs), which starts the login shell on a pty and
registers the session with the daemon's router ($ET_ROUTER_SOCKET, else
/run/et/router.sock). Without a daemon (or with --no-daemon on the client)
the host serves the session itself on the first free port of the client's
--port-range, on the address ssh reached (from $SSH_CONNECTION), and says
which in the ready line. The host exits with its last session.
Its socket and log live in $XDG_RUNTIME_DIR/et/ (else /tmp/et-<uid>/),
mode 0600; ET_LOG_LEVEL=debug|info|warn sets how much.
`;
