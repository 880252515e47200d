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
  et [options] [user@]host[:port]    open a shell on host (port: et server's, default 2022)
  et server [options]                run the daemon that routes sessions (see et server --help)
  et terminal                        started by the client over ssh; not for direct use

Options:
  -p, --port PORT          et server TCP port on the remote (default 2022)
  -c, --command CMD        type CMD into the remote shell, then exit with its status
  -e, --noexit             with -c: keep the shell open after CMD
      --ssh COMMAND        ssh command line to bootstrap with (default "ssh"),
                           e.g. --ssh "ssh -F ~/.ssh/other_config -p 2200"
      --terminal-path CMD  how to run et on the remote (default "et"),
                           e.g. --terminal-path "deno run -A /srv/et/main.ts"
  -v, --verbose            log more (repeat for debug); logs go to the log file
      --log-file PATH      log file (default $XDG_STATE_HOME/et/client.log,
                           else /tmp/et-<uid>/client.log; created mode 0600)
  -h, --help               show this help
      --version            show the version

How it works: et runs ssh once to start 'et terminal' on the remote as you,
passing a fresh session key over ssh's stdin. It then connects over TCP to
'et server' on the remote and keeps reconnecting through drops: output and
keystrokes are buffered and resent, nothing is lost or repeated. An outage
longer than a second gets a notice on stderr (full-screen programs are
repainted after it); keystrokes typed meanwhile are kept and delivered.

Exit status: the remote shell's exit status; 1 if the session could not be
started or was lost for good; 2 for bad usage.
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
from stdin (never argv), starts the login shell on a pty, registers with the
daemon's router ($ET_ROUTER_SOCKET, else /run/et/router.sock) and detaches.
Its log goes to $XDG_RUNTIME_DIR/et/ (else /tmp/et-<uid>/), mode 0600;
ET_LOG_LEVEL=debug|info|warn sets how much.
`;
