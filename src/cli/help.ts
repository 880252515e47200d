/**
 * The text of `et --help` and its subcommands' help.
 *
 * @module
 */

/** Version of this build. */
export const VERSION = "0.1.0";

/**
 * Help for the client. Grouped as ssh's manual groups its options
 * (connection, session, forwarding, logging), each group with an example.
 */
export const CLIENT_HELP =
  `et ${VERSION} — a remote terminal that survives network drops

Usage:
  et [options] [user@]host[:port] [--] [command [args...]]
  et --list [user@]host               your sessions on host
  et --attach [ID] [user@]host        resume a session (the latest detached one)
  et server [options]                 the daemon on the remote (et server --help)
  et terminal                         started by the client over ssh; not for direct use
  et relay ID                         started by the client over ssh (--over-ssh); not for direct use

Destination:
  host, user@host, host:port (port: et server's, not ssh's), IPv6 as ::1,
  [::1] or user@[::1]:2022. host may be an alias of your ssh config: et asks
  'ssh -G' (Match, Include, -F in --ssh and --ssh-option all apply) for the
  real HostName, User, ProxyJump, ForwardAgent, IdentityAgent, LocalForward,
  RemoteForward and SetEnv; SetEnv variables are exported to the remote shell.

Connection:
  -u, --username USER       log in as USER (same as USER@host)
  -p, --port PORT           et server TCP port on the remote (default 2022)
      --ssh-option OPT      give ssh '-o OPT' (repeat for more), for every ssh
                            et runs, 'ssh -G' included
  -k, --keepalive SECONDS   keepalive interval (default 1; it backs off to 15 s
                            while the session is idle); a connection is dead
                            after 6 unanswered intervals (at least 6 s), or 2 s
                            after typing into it unacknowledged; both ends of
                            the session follow it
      --jumphost HOST       reach host through a jumphost: [user@]jump[:port], or a
                            chain a,b (nearest first). ssh goes through it with -J;
                            the TCP leg through a relay on each hop, which passes
                            the sealed frames on and never holds the session key
                            (port: that hop's et server port; et runs there too).
                            Without it, your ssh config's ProxyJump hops are used
                            the same way (or ssh carries the session, where they
                            have no et)
      --jport PORT          et server port of the jumphosts without one (default 2022)
      --connect-timeout D   keep trying the first connection this long (default 30s)
      --no-daemon           no-root mode even if et server runs: the session
                            listens itself on a free port of --port-range
      --daemon-only         fail (one line) if no et server takes the session,
                            instead of falling back to no-root mode
      --port-range A-B      ports a no-root session may listen on, on the
                            address ssh reached (default 2022-2122; the
                            firewall must let them in)
      --no-reuse            log in with ssh even when another et to the same place
                            (same ssh command, user, host and port) runs here, and
                            do not lend this one's connection: by default a new
                            session starts over a running et's connection to its
                            host, with no new ssh login
      --over-ssh            carry the session over ssh instead of TCP (only port 22
                            open): every reconnect runs 'ssh host et relay', so ssh
                            must log in without a prompt (a key or ssh-agent);
                            et also switches to this by itself when the TCP port
                            stays unreachable for the first 3 s
      --install-remote      where et is missing on host, install it to
                            ~/.local/bin/et there without asking (a binary for
                            host's uname -sm: this et when compiled for it, or
                            --binaries); then the session runs in no-root mode
      --binaries DIR        release binaries (et-linux-x86_64, et-darwin-aarch64…)
                            to install from
      --ssh COMMAND         ssh command line to bootstrap with (default "ssh"),
                            e.g. --ssh "ssh -F ~/.ssh/other_config -p 2200"
      --terminal-path CMD   how to run et on the remote (default "et"),
                            e.g. --terminal-path "deno run -A /srv/et/main.ts"
  e.g. et -u deploy -k 5 --ssh-option ConnectTimeout=5 [2001:db8::7]:2022
       et --jumphost bastion,ops@inner:2023 db1   through two hops, sealed end to end

Session:
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
      --resume HOW          how a session catches you up after an absence:
                            bytes (default) sends every byte you missed;
                            screen never blocks the program while you are
                            away, keeps its output (the latest 256M-512M) in a
                            private log file on the remote host, and past 1M
                            of missed output sends the screen and its last
                            500 lines instead (one line says where the log
                            is). New sessions on a pty only (not with
                            --no-pty or -N)
  e.g. et build@ci 'make -j8 > build.log'   survives network drops, unlike ssh

Forwarding (carried inside the session: tunnels survive reconnects):
  -t, --tunnel SPEC         forward: listen here, connect from the remote host
  -r, --reversetunnel SPEC  reverse: listen on the remote host, connect from here
                            SPEC: SRC:DST ports (8080:80), ranges of equal length
                            (8000-8010:9000-9010), comma lists, ssh style
                            [bind:]port:host:port ([::1] for IPv6), or a Unix
                            socket path on either end (/tmp/d.sock:/var/run/docker.sock);
                            sources listen on 127.0.0.1 unless a bind address is
                            given. With -r, ENVVAR:DST makes a private socket on the
                            remote host and exports its path as ENVVAR to the shell
  -N, --no-terminal         tunnels only: no shell, no pty; et runs until Ctrl-C or
                            SIGTERM, which end the remote side too
  -f, --forward-ssh-agent   forward your ssh agent (SSH_AUTH_SOCK) as SSH_AUTH_SOCK
      --ssh-socket PATH     with -f: the agent socket to forward instead
  e.g. et -N -t 5432:5432 db.example.com   an eternal 'ssh -N -L 5432:localhost:5432'
       et -f -r 8080:3000 dev               agent and a reverse tunnel to local :3000
  LocalForward, RemoteForward and ForwardAgent of your ssh config apply too.

Typing:
      --predict WHEN        show typed keys before the remote echoes them
                            (always, adaptive, never; default adaptive: only
                            when the echo takes over ~30 ms). Unconfirmed keys
                            are underlined on a slow link; a wrong guess is
                            repainted from what the remote sent. Never with
                            --no-pty or when stdout is not a terminal.
  e.g. et --predict always far-away-host   typing shows at once on a slow link

Escapes (after a newline, as in ssh):
  ~.  detach: et exits, the session keeps running (et --attach resumes it)
  ~?  list the escapes      ~~  send a literal ~
      --escape-char C       another escape character (C, ^X) or none
  e.g. et --escape-char '^]' host

Logging:
  -v, --verbose             log more (repeat for debug), and say on stderr
                            when a session is in no-root mode
      --log-file PATH       log file (default $XDG_STATE_HOME/et/client.log,
                            else /tmp/et-<uid>/client.log; created mode 0600)
  -l, --logdir DIR          write client.log in DIR (created mode 0700)
      --logtostdout         log to stdout instead of a file
      --silent              no notices on the terminal (connecting, reconnected,
                            detached sessions); errors still print
      --serverfifo PATH     accepted for Eternal Terminal's scripts; does not
                            apply here (a note on stderr says so)
  e.g. et -vv -l /tmp/et-debug host

Help:
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
1 if the session could not be started or was lost for good; 2 for bad usage;
74 if et could not write to its terminal (or stdout) any more (it is gone or
closed): et detached and the session keeps running (--attach shows what this
et could not); 128+N after signal N (it detached). Without a pty, a pipe's
reader that leaves (et host cmd | head) ends the command as under ssh: its
output there is closed, and et exits with its status (141 for SIGPIPE).
`;

/** Help for `et server`. */
export const SERVER_HELP = `Usage: et server [options]

Runs the et daemon: listens on TCP and routes each client, by session id, to
its terminal process over a local Unix socket. It relays sealed frames only
and never holds a session key.

Options:
  -p, --port PORT      TCP port to listen on (default 2022)
      --bind ADDR      address to bind, IPv4 or IPv6 (repeat for more;
                       default 0.0.0.0 and ::, IPv4 only where the host
                       has no IPv6), e.g. --bind 127.0.0.1 --bind ::1
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
which in the ready line. The host stays after its last session for
$ET_HOST_LINGER (a duration: 30s, 10m, 1h; default 10m; 0: it exits at
once), idle and holding no port, so that the next session starts faster.
On a jumphost (et --jumphost) it starts a jump relay instead: no secret,
only the session id and where to pass its connections on.
Its socket and log live in /tmp/et-<uid>/ (or $ET_RUNTIME_DIR/et/),
mode 0600; ET_LOG_LEVEL=debug|info|warn sets how much.
`;

/** Help for `et relay`. */
export const RELAY_HELP = `Usage: et relay SESSION-ID

Started by the et client over ssh when it carries a session over ssh
(--over-ssh, or by itself when the TCP port is unreachable): joins the
session SESSION-ID (32 hex digits) of this user through its owner-only
control socket in /tmp/et-<uid>/ (or $ET_RUNTIME_DIR/et/), prints
ET_RELAY_READY, then copies bytes between its stdin/stdout and the session
until either side closes. It holds no key: the frames it copies are sealed
end to end between the client and the session.
`;
