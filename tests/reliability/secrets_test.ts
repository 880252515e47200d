/**
 * Local secrets on a shared server: while a real session of one user runs
 * (through a reconnect), a second, unprivileged user looks for its passkey
 * everywhere it can read — every process's command line and environment
 * (client, ssh, launcher, session process, shell, daemon), the runtime
 * dirs, /tmp, /run, /home, /var/log and every log — and finds nothing. As
 * root too, the passkey is in no process's command line or environment
 * and in no file or log at all. (Root, as CI runs: useradd.)
 *
 * The test learns the passkey the way the client hands it over: an ssh
 * wrapper copies the bootstrap line from ssh's stdin into a FIFO in a
 * root-only directory (a FIFO keeps nothing on disk).
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { type LocalUser, localUser } from "../helpers/attack.ts";
import { PipedClient, shellAnswers, sleep } from "../e2e/_client.ts";
import { E2E_TEST, withWorld } from "../e2e/_world.ts";
import type { Hit, Seen, SnoopReport } from "./_snoop.ts";

const SNOOP = new URL("./_snoop.ts", import.meta.url).pathname;
/** How long the /proc watchers run from just before the client starts. */
const COLLECT_MS = 8000;
const VICTIM = "etvictim";

/** Where an attacker on the machine looks (besides /proc). */
const ROOTS = ["/tmp", "/var/tmp", "/dev/shm", "/run", "/home", "/var/log"];
/** The machine's own job files, not the test's (read-only anyway). */
const SKIP = ["/tmp/bash_"];

async function sh(command: string): Promise<number> {
  return (await new Deno.Command("sh", { args: ["-c", command] }).output())
    .code;
}

/** A second account that may log in with the test sshd's key. */
async function ensureVictim(): Promise<void> {
  if ((await sh(`id -u ${VICTIM} >/dev/null 2>&1`)) !== 0) {
    assert.equal(await sh(`useradd -m -s /bin/bash ${VICTIM}`), 0, "useradd");
  }
  // A new account is locked ("!"), which sshd refuses even for keys.
  assert.equal(await sh(`usermod -p '*' ${VICTIM}`), 0, "usermod");
}

/** Starts _snoop.ts as `user` (null: root) with `request` on its stdin. */
async function runSnoop<T>(
  user: LocalUser | null,
  request: Record<string, unknown>,
): Promise<T> {
  const home = user ? `/home/${user.name}` : undefined;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SNOOP],
    ...(user
      ? {
        uid: user.uid,
        gid: user.gid,
        cwd: home,
        clearEnv: true,
        env: {
          HOME: home!,
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          DENO_DIR: `${home}/.cache/deno`,
          NO_COLOR: "1",
        },
      }
      : {}),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(request)));
  await writer.close();
  const output = await child.output();
  if (!output.success) {
    throw new Error(
      `snoop failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  const text = new TextDecoder().decode(output.stdout).trim();
  return JSON.parse(text.split("\n").at(-1)!);
}

/**
 * Runs _snoop.ts as `user` (null: root) with `needles` on its stdin;
 * returns its report.
 */
function snoop(
  user: LocalUser | null,
  needles: Record<string, Uint8Array>,
  roots: string[],
  changedSinceMs: number,
): Promise<SnoopReport> {
  return runSnoop(user, {
    changedSinceMs,
    needles: Object.fromEntries(
      Object.entries(needles).map((
        [name, bytes],
      ) => [name, Buffer.from(bytes).toString("base64")]),
    ),
    roots,
    skipPrefixes: SKIP,
  });
}

/** Every command line and environment `user` could read for `ms`. */
function collect(
  user: LocalUser | null,
  ms: number,
): Promise<{ passes: number; seen: Seen[] }> {
  return runSnoop(user, { needles: {}, roots: [], collectMs: ms });
}

/** The hits of `needles` in what {@linkcode collect} saw. */
function searchSeen(
  seen: Seen[],
  needles: Record<string, Uint8Array>,
): Hit[] {
  const hits: Hit[] = [];
  for (const { where, data } of seen) {
    const bytes = Buffer.from(data, "base64");
    for (const [needle, value] of Object.entries(needles)) {
      if (bytes.indexOf(value) >= 0) hits.push({ needle, where });
    }
  }
  return hits;
}

/** The hits on the passkey (not on the canaries). */
function passkeyHits(report: SnoopReport): Hit[] {
  return report.hits.filter((hit) => hit.needle.startsWith("passkey"));
}

/** The needles: the passkey in every spelling, and two canaries. */
function needlesFor(
  passkey: Uint8Array,
  canaries: { file: Uint8Array; argv: Uint8Array },
): Record<string, Uint8Array> {
  const hex = Array.from(passkey, (b) => b.toString(16).padStart(2, "0"))
    .join("");
  const encoder = new TextEncoder();
  return {
    "passkey hex": encoder.encode(hex),
    "passkey HEX": encoder.encode(hex.toUpperCase()),
    "passkey raw": passkey,
    "passkey base64": encoder.encode(Buffer.from(passkey).toString("base64")),
    "canary in a file": canaries.file,
    "canary in a command line": canaries.argv,
  };
}

Deno.test({
  ...E2E_TEST,
  ignore: Deno.uid() !== 0, // two more users need useradd
  name:
    "secrets: another user finds a live session's passkey in no command line, environment, file or log; root finds it in none either",
  async fn() {
    // The passkey is made after this (by the client, below), so it can be
    // only in files written since: older ones (other runs' data in /tmp,
    // gigabytes on a used machine) are not read. A few seconds' margin
    // for the clock's and ctime's granularity. The canary file, written
    // later, shows that the scan still reads what is new.
    const changedSinceMs = Date.now() - 5000;
    const attacker = await localUser();
    await ensureVictim();
    await withWorld({}, async (world) => {
      // The ssh wrapper that shows the test the bootstrap line.
      const capture = await Deno.makeTempDir({ prefix: "et-capture-" });
      await Deno.chmod(capture, 0o700);
      const fifo = `${capture}/bootstrap`;
      assert.equal(await sh(`mkfifo -m 600 ${fifo}`), 0);
      const wrapper = `${capture}/ssh`;
      const ssh = world.sshd.sshCommand;
      await Deno.writeTextFile(
        wrapper,
        [
          "#!/bin/sh",
          `case " $* " in *" -G "*) exec ${ssh} "$@";; esac`,
          "IFS= read -r line",
          `printf '%s\\n' "$line" > ${fifo}`,
          `{ printf '%s\\n' "$line"; exec cat; } | ${ssh} "$@"`,
          "",
        ].join("\n"),
        { mode: 0o700 },
      );
      let captured = false;
      const bootstrap = Deno.readTextFile(fifo).finally(() => captured = true);
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      // Watchers of every command line and environment from before the
      // client starts until after its reconnect: the launcher lives only
      // while the session starts.
      const watching = [
        collect(attacker, COLLECT_MS),
        collect(null, COLLECT_MS),
      ];
      await sleep(300);
      const client = new PipedClient(
        world.client(["--ssh", wrapper], { user: VICTIM, port: proxy.port }),
      );
      let canaryProcess: Deno.ChildProcess | undefined;
      const canaryFile = `/tmp/et-canary-${crypto.randomUUID()}.txt`;
      try {
        await shellAnswers(client, 60_000);
        const line = JSON.parse(await bootstrap);
        const passkeyHex: string = line.secret.split("/")[1];
        assert.match(passkeyHex, /^[0-9a-f]{64}$/);
        const passkey = Uint8Array.from(
          passkeyHex.match(/../g)!,
          (b) => parseInt(b, 16),
        );
        // Through a reconnect, so its log lines are there to read too.
        proxy.cut();
        await client.type(`echo AFTER-$((40+2)) $(whoami)\n`);
        await client.waitFor(`AFTER-42 ${VICTIM}`, 20_000);

        // What the watchers saw while the session started and resumed.
        const [theirsSeen, allSeen] = await Promise.all(watching);
        const launcherSeen = (seen: Seen[]) =>
          seen.filter((s) =>
            s.where.endsWith("/cmdline") &&
            / terminal$/.test(
              Buffer.from(s.data, "base64").toString().replaceAll("\0", " ")
                .trim(),
            )
          ).length;
        const passkeyOnly = needlesFor(passkey, {
          file: new Uint8Array([0]),
          argv: new Uint8Array([0]),
        });
        delete passkeyOnly["canary in a file"];
        delete passkeyOnly["canary in a command line"];
        console.log(
          `secrets: watched /proc during start and resume: as ${attacker.name} ${theirsSeen.passes} passes, ${theirsSeen.seen.length} distinct command lines/environments (launcher seen: ${
            launcherSeen(theirsSeen.seen) > 0
          }); as root ${allSeen.passes} passes, ${allSeen.seen.length} (launcher seen: ${
            launcherSeen(allSeen.seen) > 0
          })`,
        );
        assert.deepEqual(searchSeen(theirsSeen.seen, passkeyOnly), []);
        assert.deepEqual(searchSeen(allSeen.seen, passkeyOnly), []);

        // Positive controls: a scan that cannot find these finds nothing.
        const hex = (n: number) =>
          Array.from(
            crypto.getRandomValues(new Uint8Array(n)),
            (b) => b.toString(16).padStart(2, "0"),
          ).join("");
        const canaries = {
          file: new TextEncoder().encode(hex(32)),
          argv: new TextEncoder().encode(hex(32)),
        };
        await Deno.writeFile(canaryFile, canaries.file, { mode: 0o644 });
        await Deno.chmod(canaryFile, 0o644);
        canaryProcess = new Deno.Command("sh", {
          args: ["-c", "sleep 120", new TextDecoder().decode(canaries.argv)],
          stdout: "null",
          stderr: "null",
        }).spawn();
        const needles = {
          ...needlesFor(passkey, canaries),
          // In the environment of the victim's session process only.
          "router socket in an environment": new TextEncoder().encode(
            `ET_ROUTER_SOCKET=${world.routerPath}`,
          ),
        };
        const sessions = await world.sessionProcesses();
        assert.equal(sessions.length, 1, "one session process");
        const sessionEnviron = `/proc/${sessions[0].pid}/environ`;

        // The other user, while the session runs.
        const theirs = await snoop(attacker, needles, ROOTS, changedSinceMs);
        console.log(
          `secrets: as ${attacker.name}: ${theirs.processes} processes, ${theirs.cmdlinesRead} command lines, ${theirs.environsRead} environments read (${theirs.environsDenied} denied), ${theirs.filesRead} files (${theirs.bytesRead} bytes) read, ${theirs.filesDenied} denied, ${theirs.filesUnchanged} unchanged since the test began (not read); hits ${
            JSON.stringify(theirs.hits)
          }`,
        );
        assert.deepEqual(passkeyHits(theirs), [], "the passkey, to a user");
        assert.ok(
          theirs.hits.some((h) => h.needle === "canary in a file"),
          "the scan reads files",
        );
        assert.ok(
          theirs.hits.some((h) => h.needle === "canary in a command line"),
          "the scan reads command lines",
        );
        assert.ok(
          !theirs.hits.some((h) => h.where.startsWith(sessionEnviron)),
          "another user cannot read the session process's environment",
        );

        // Root: every process, every file; the daemon's log flushed first
        // (it is a pipe into daemon.log until the daemon exits).
        await world.restartDaemon("SIGTERM");
        const all = await snoop(
          null,
          needles,
          [...ROOTS, world.dir],
          changedSinceMs,
        );
        console.log(
          `secrets: as root: ${all.processes} processes (${all.environsRead} environments read, ${all.environsDenied} unreadable: kernel threads, init), ${all.filesRead} files (${all.bytesRead} bytes) read, ${all.filesUnchanged} unchanged since the test began (not read); hits ${
            JSON.stringify(all.hits)
          }`,
        );
        assert.deepEqual(passkeyHits(all), [], "the passkey, even to root");
        assert.ok(all.hits.some((h) => h.needle === "canary in a file"));
        assert.ok(
          all.hits.some((h) => h.where.startsWith(sessionEnviron)),
          "root read the session process's environment",
        );
        // Logs kept in memory here: the client's output and sshd's log.
        for (
          const [what, text] of [
            ["client stdout", client.stdout],
            ["client stderr", client.stderr],
            ["sshd log", world.sshd.log()],
          ]
        ) {
          assert.ok(!text.includes(passkeyHex), `the passkey in ${what}`);
          assert.ok(
            !text.toLowerCase().includes(passkeyHex),
            `the passkey in ${what}`,
          );
        }
        // The session is still there after all this.
        await client.type(`echo STILL-$((6*7))\n`);
        await client.waitFor("STILL-42", 20_000);
      } finally {
        try {
          canaryProcess?.kill("SIGKILL");
          await canaryProcess?.status;
        } catch { /* gone */ }
        await Deno.remove(canaryFile).catch(() => {});
        await client.close();
        await proxy.close();
        // A reader still blocked on the FIFO (no bootstrap came) is let go.
        if (!captured) await sh(`timeout 2 sh -c 'echo {} > ${fifo}'`);
        await bootstrap.catch(() => {});
        await Deno.remove(capture, { recursive: true }).catch(() => {});
      }
    });
  },
});
