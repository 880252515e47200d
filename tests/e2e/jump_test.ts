/**
 * `--jumphost`: sessions whose TCP leg goes client → jumphost daemon →
 * jump relay → destination daemon → session, with real sshds (the
 * bootstrap through ssh's `-J`), real daemons on loopback and the fault
 * proxy on the jump leg. The relay holds no key and sees no plaintext:
 * what it knows (its status), its argv, environment and memory are
 * searched for the passkey, and the jump leg's bytes for a marker typed
 * into the session.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import { scanProcessMemory } from "../helpers/process_memory.ts";
import { closedPort } from "../helpers/session_listener.ts";
import { controlRequest } from "../../src/terminal/control_socket.ts";
import {
  alive,
  base64Lines,
  markedSection,
  PipedClient,
  runToEnd,
  sha256,
  shellAnswers,
  waitUntil,
} from "./_client.ts";
import { type Hop, withJumpWorld } from "./_jump_world.ts";
import { E2E_TEST, LONG_VARIANT } from "./_world.ts";
import { rssOf } from "../reliability/_proc.ts";
import { encodeFrame, PROTOCOL_VERSION } from "../../src/transport/mod.ts";
import { encodeHello } from "../../src/transport/wire.ts";
import { GONE_FOR_MS } from "../../src/terminal/jump_relay.ts";

/** The session id and passkey of the `new` line the client sent. */
function sessionSecret(
  lines: Record<string, unknown>[],
): { idHex: string; passkey: Uint8Array; passkeyHex: string } {
  const line = lines.find((l) => l.op === "new");
  assert.ok(line, "a new-session line went over ssh");
  const [idHex, passkeyHex] = String(line.secret).split("/");
  return {
    idHex,
    passkeyHex,
    passkey: Uint8Array.from(Buffer.from(passkeyHex, "hex")),
  };
}

/** Every spelling of the passkey a process could hold. */
function passkeyNeedles(passkey: Uint8Array): Record<string, Uint8Array> {
  const hex = Buffer.from(passkey).toString("hex");
  const encoder = new TextEncoder();
  return {
    raw: passkey,
    hex: encoder.encode(hex),
    HEX: encoder.encode(hex.toUpperCase()),
    base64: encoder.encode(Buffer.from(passkey).toString("base64")),
  };
}

/**
 * The one relay on `hop`, and what its control socket says once it
 * relays one connection, accepted by the destination (a client may
 * overlap attempts for a moment).
 */
async function relayOf(hop: Hop, idHex: string) {
  const relays = await hop.relays();
  assert.equal(relays.length, 1, `one relay on ${hop.alias}`);
  const ask = () =>
    controlRequest(`${hop.runtimeDir}/${idHex}.jump.ctl`, { op: "status" });
  let status = await ask();
  await waitUntil(
    async () => {
      status = await ask();
      return status.live === 1 && status.accepted === 1;
    },
    10_000,
    () => `one accepted connection on ${hop.alias}: ${JSON.stringify(status)}`,
    100,
  );
  return { pid: relays[0].pid, status };
}

/** The keys a relay's status may have: what it knows, and nothing else. */
const STATUS_KEYS = [
  "accepted",
  "bytesDown",
  "bytesUp",
  "destination",
  "id",
  "lastSeenAt",
  "live",
  "role",
  "startedAt",
  "total",
];

Deno.test({
  ...E2E_TEST,
  name:
    "jumphost: a session through a jump relay survives cuts on both legs (hash-exact output, typing resumes); the relay holds no key and the leg carries no plaintext",
  fn: () =>
    withJumpWorld([{ alias: "et-jump" }], async (jw) => {
      const { world, hops, client } = jw;
      const [jump] = hops;
      // A fault proxy on each leg: client → jump daemon, relay → destination.
      const proxy = await FaultProxy.start({ targetPort: jump.daemon!.port });
      const far = await FaultProxy.start({ targetPort: world.daemonPort });
      const et = new PipedClient(
        client(`et-jump:${proxy.port}`, [], far.port),
        true,
      );
      try {
        await shellAnswers(et, 60_000);
        // The bootstrap went through ssh's -J; the TCP leg through the proxy.
        const args = await jw.bootstrapArgs();
        assert.equal(args.length, 2, args.join("\n"));
        assert.match(args[0], /^-J et-jump et-test /, "the session, via -J");
        assert.match(args[1], /^et-jump /, "the relay");
        assert.ok(proxy.stats.accepted >= 1, "the client dialed the jumphost");
        const { idHex, passkey, passkeyHex } = sessionSecret(
          await jw.bootstrapLines(),
        );

        // What the relay knows: the session id, where it dials, counters.
        const relay = await relayOf(jump, idHex);
        console.log(`jump relay status: ${JSON.stringify(relay.status)}`);
        assert.deepEqual(Object.keys(relay.status).sort(), STATUS_KEYS);
        assert.equal(relay.status.id, idHex);
        assert.equal(relay.status.role, "jump");
        assert.equal(relay.status.destination, `127.0.0.1:${far.port}`);
        assert.ok(!JSON.stringify(relay.status).includes(passkeyHex));
        console.log(
          `jump relay RSS ${((await rssOf(relay.pid)) / 1e6).toFixed(1)} MB`,
        );

        // Its argv, environment and memory: no passkey in any spelling.
        const needles = passkeyNeedles(passkey);
        for (const file of ["cmdline", "environ"]) {
          const bytes = Buffer.from(
            await Deno.readFile(`/proc/${relay.pid}/${file}`),
          );
          for (const [name, needle] of Object.entries(needles)) {
            assert.equal(
              bytes.indexOf(needle),
              -1,
              `passkey ${name} in ${file}`,
            );
          }
        }
        const relayScan = await scanProcessMemory(relay.pid, needles);
        const sessions = await world.sessionProcesses();
        assert.equal(sessions.length, 1, "one session process");
        const sessionScan = await scanProcessMemory(sessions[0].pid, needles);
        console.log(
          `memory: relay ${
            (relayScan.bytesScanned / 1e6).toFixed(1)
          } MB in ${relayScan.regionsRead}/${relayScan.regions} regions, found ${
            JSON.stringify(relayScan.found)
          }; session ${(sessionScan.bytesScanned / 1e6).toFixed(1)} MB, found ${
            JSON.stringify(sessionScan.found)
          }`,
        );
        assert.ok(relayScan.bytesScanned > 8e6, "a real scan of the relay");
        assert.deepEqual(relayScan.found, [], "the passkey in the relay");
        assert.ok(sessionScan.found.length > 0, "the session holds its key");

        // The jump leg carries sealed frames only: a marker typed into the
        // session (and echoed, and printed) never shows on it in clear.
        const leg = { up: [] as Uint8Array[], down: [] as Uint8Array[] };
        proxy.setTap((up, _n, chunk) =>
          (up ? leg.up : leg.down).push(chunk.slice())
        );
        const marker = `JUMPMARK${crypto.randomUUID().replaceAll("-", "")}`;
        await et.type(`echo ${marker}\n`);
        await waitUntil(
          () => et.stdout.split(marker).length >= 3,
          20_000,
          "the marker echoed and printed",
        );
        proxy.setTap(null);
        const upBytes = Buffer.concat(leg.up);
        const downBytes = Buffer.concat(leg.down);
        assert.ok(upBytes.length > marker.length, "the tap saw the keys go up");
        assert.ok(downBytes.length > 2 * marker.length, "and the output");
        assert.equal(upBytes.indexOf(marker), -1, "marker in clear, up");
        assert.equal(downBytes.indexOf(marker), -1, "marker in clear, down");

        // Known output through cuts of the jump leg arrives byte-exact.
        const data = base64Lines(patternBytes(1_500_000, 7));
        const dataFile = `${world.dir}/jump-data.txt`;
        await Deno.writeFile(dataFile, data);
        const before = et.stdoutBytes;
        await et.type(
          `stty -opost -echo; printf '<<<%s>>>' BEGIN; for i in $(seq 0 9); do ` +
            `dd if=${dataFile} bs=250000 skip=$i count=1 2>/dev/null; sleep 0.2; done; ` +
            `printf '<<<%s>>>' DONE; stty opost echo\n`,
        );
        for (
          const [share, leg] of [[0.2, proxy], [0.4, far], [
            0.6,
            proxy,
          ]] as const
        ) {
          await waitUntil(
            () => et.stdoutBytes - before > share * data.length,
            60_000,
            "output before a cut",
          );
          leg.cut();
        }
        await et.waitFor("<<<DONE>>>", 120_000);
        const { section } = markedSection(et, before);
        assert.equal(section.length, data.length, "byte count");
        assert.equal(sha256(section), sha256(data));
        assert.ok(proxy.stats.cuts >= 2 && far.stats.cuts >= 1);
        // Typing resumes through the same relay (new connections).
        await et.type("echo AFTER-$((2+3))\n");
        await et.waitFor("AFTER-5", 20_000);
        const after = await relayOf(jump, idHex);
        assert.equal(after.pid, relay.pid, "the same relay");
        assert.ok(
          (after.status.total as number) >= 4,
          `relayed ${after.status.total} connections`,
        );
        assert.ok((after.status.bytesDown as number) > data.length);

        await et.type("exit 3\n");
        assert.equal(await et.exit(30_000), 3);
        // Asked to end, the relay goes.
        await controlRequest(`${jump.runtimeDir}/${idHex}.jump.ctl`, {
          op: "end",
        });
        await waitUntil(
          async () => !(await alive(relay.pid)),
          10_000,
          "the relay to exit",
        );
      } finally {
        await et.close();
        await proxy.close();
        await far.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    `jumphost: a chain of two hops (a daemon on the first, none on the second: its relay listens itself); the relays carry no secret${
      LONG_VARIANT ? " and end after the session" : ""
    }`,
  fn: () =>
    withJumpWorld(
      [{ alias: "et-jump" }, { alias: "et-hop2", daemon: false }],
      async (jw) => {
        const { world, hops, client } = jw;
        const [first, second] = hops;
        const et = new PipedClient(
          client(`et-jump:${first.daemon!.port},et-hop2`),
        );
        try {
          await shellAnswers(et, 60_000);
          const lines = await jw.bootstrapLines();
          const { idHex, passkeyHex } = sessionSecret(lines);
          // The destination first, then the hops from the last: each relay
          // is told where the next one listens, and nothing secret.
          assert.deepEqual(lines.map((l) => l.op), ["new", "jump", "jump"]);
          const args = await jw.bootstrapArgs();
          assert.match(args[0], /^-J et-jump,et-hop2 et-test /);
          assert.match(args[1], /^-J et-jump et-hop2 /);
          assert.match(args[2], /^et-jump /);
          for (const line of lines.slice(1)) {
            assert.equal(line.id, idHex);
            assert.ok(!JSON.stringify(line).includes(passkeyHex));
          }
          const far = await relayOf(second, idHex);
          const near = await relayOf(first, idHex);
          console.log(`hop 1: ${JSON.stringify(near.status)}`);
          console.log(`hop 2: ${JSON.stringify(far.status)}`);
          assert.equal(far.status.destination, `127.0.0.1:${world.daemonPort}`);
          const farPort = far.status.port as number;
          assert.ok(farPort >= 2022 && farPort <= 2122, `port ${farPort}`);
          assert.equal(near.status.destination, `127.0.0.1:${farPort}`);
          assert.equal(near.status.port, undefined, "hop 1 has a daemon");
          assert.equal(near.status.accepted, 1);
          assert.equal(far.status.accepted, 1);

          await et.type("echo CHAINED-$((6*7)) $(whoami)\n");
          await et.waitFor(`CHAINED-42 ${world.sshd.user}`, 20_000);
          await et.type("exit 5\n");
          assert.equal(await et.exit(30_000), 5);
          // The session is over: each relay learns it from the destination
          // (through the next relay) and ends within a minute or so; that
          // wait is the long variant's (deno task test:long).
          if (!LONG_VARIANT) return;
          const ended = Date.now();
          await waitUntil(
            async () => !(await alive(near.pid)) && !(await alive(far.pid)),
            GONE_FOR_MS + 60_000,
            "both relays to end after the session",
            500,
          );
          console.log(
            `relays ended ${Date.now() - ended} ms after the session`,
          );
        } finally {
          await et.close();
        }
      },
    ),
});

Deno.test({
  ...E2E_TEST,
  name:
    "jumphost: --list and --attach through the jumphost; the attach replaces the hop's relay (also one killed outright) and the shell's state is there",
  fn: () =>
    withJumpWorld([{ alias: "et-jump" }], async (jw) => {
      const { hops, client } = jw;
      const [jump] = hops;
      const jumphost = `et-jump:${jump.daemon!.port}`;
      const first = new PipedClient(client(jumphost));
      let second: PipedClient | undefined;
      let third: PipedClient | undefined;
      try {
        await shellAnswers(first, 60_000);
        const { idHex } = sessionSecret(await jw.bootstrapLines());
        await first.type("export JUMPED=$((40+2))\n");
        const old = await relayOf(jump, idHex);
        first.kill();
        await first.exit();

        const listed = await runToEnd(client(jumphost, ["--list"]), 60_000);
        assert.equal(listed.code, 0, listed.stderr);
        assert.match(listed.stdout, new RegExp(`^${idHex.slice(0, 8)} `, "m"));

        second = new PipedClient(client(jumphost, ["--attach"]));
        await second.type("echo V-$JUMPED\n");
        await second.waitFor("V-42", 60_000);
        const now = await relayOf(jump, idHex);
        assert.notEqual(now.pid, old.pid, "a new relay");
        assert.equal(now.status.port, undefined, "registered with the daemon");
        assert.ok(!(await alive(old.pid)), "the old relay ended");
        assert.equal(now.status.accepted, 1);

        // A relay killed outright leaves a dead control socket behind: the
        // next attach's relay takes its place.
        Deno.kill(now.pid, "SIGKILL");
        await waitUntil(async () => !(await alive(now.pid)), 5000, "kill");
        second.kill();
        await second.exit();
        third = new PipedClient(client(jumphost, ["--attach"]));
        await third.type("echo W-$JUMPED\n");
        await third.waitFor("W-42", 60_000);
        const last = await relayOf(jump, idHex);
        assert.notEqual(last.pid, now.pid);
        await third.type("exit 0\n");
        assert.equal(await third.exit(30_000), 0);
      } finally {
        await first.close();
        await second?.close();
        await third?.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "jumphost: a flood of HELLOs for the session's (public) id through the jump daemon: the relay holds at most 64 connections the destination did not accept, never drops the client's, and the shell answers throughout",
  fn: () =>
    withJumpWorld([{ alias: "et-jump" }], async (jw) => {
      const [jump] = jw.hops;
      const et = new PipedClient(jw.client(`et-jump:${jump.daemon!.port}`));
      const flood: Deno.Conn[] = [];
      try {
        await shellAnswers(et, 60_000);
        const { idHex } = sessionSecret(await jw.bootstrapLines());
        await relayOf(jump, idHex);
        const ctl = `${jump.runtimeDir}/${idHex}.jump.ctl`;
        let maxLive = 0;
        const acceptedSeen = new Set<number>();
        let polling = true;
        const poll = (async () => {
          while (polling) {
            const status = await controlRequest(ctl, { op: "status" });
            maxLive = Math.max(maxLive, status.live as number);
            acceptedSeen.add(status.accepted as number);
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        })();
        // Anyone may send a HELLO with the id: it travels in clear.
        const hello = encodeFrame(encodeHello({
          version: PROTOCOL_VERSION,
          sessionId: Buffer.from(idHex, "hex"),
          clientNonce: new Uint8Array(32),
        }));
        for (let i = 0; i < 200; i++) {
          try {
            const conn = await Deno.connect({
              hostname: "127.0.0.1",
              port: jump.daemon!.port,
            });
            flood.push(conn);
            await conn.write(hello);
          } catch { /* refused or reset: the daemon's own caps */ }
          // Paced under the daemon's own caps (its hand-over queue), so
          // that the relay's is the one tested.
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        await et.type("echo FLOOD-$((6*7))\n");
        await et.waitFor("FLOOD-42", 30_000);
        await new Promise((resolve) => setTimeout(resolve, 500));
        polling = false;
        await poll;
        const total = (await controlRequest(ctl, { op: "status" }))
          .total as number;
        console.log(
          `flood: ${flood.length} connections sent a HELLO, the relay took ${
            total - 1
          }, held at most ${maxLive} at once; accepted counts seen ${[
            ...acceptedSeen,
          ]}`,
        );
        assert.ok(total - 1 > 64, `the relay took only ${total - 1}`);
        assert.ok(maxLive <= 65, `held ${maxLive}`);
        assert.deepEqual([...acceptedSeen], [1], "the client's connection");
        // Nor does it flood the user's log: a line a second at most.
        const logLines = (await Deno.readTextFile(
          `${jump.runtimeDir}/relay-${idHex.slice(0, 8)}.log`,
        )).trim().split("\n");
        assert.ok(logLines.length <= 15, logLines.join("\n"));
        await et.type("exit 0\n");
        assert.equal(await et.exit(30_000), 0);
      } finally {
        for (const conn of flood) {
          try {
            conn.close();
          } catch { /* closed */ }
        }
        await et.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "jumphost: a hop that cannot relay (--daemon-only, no et server there) is one line naming it, exit 1",
  fn: () =>
    withJumpWorld([{ alias: "et-jump", daemon: false }], async (jw) => {
      const result = await runToEnd(
        jw.client("et-jump", ["--daemon-only"]),
        60_000,
      );
      assert.equal(result.code, 1, result.stderr);
      const lines = result.stderr.trim().split("\n");
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0],
        /^et: jumphost: et-jump: no et server here \(--daemon-only\)/,
      );
      assert.deepEqual(await jw.hops[0].relays(), [], "no relay left");
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "jumphost: a destination without et server (no-root mode): the relay dials the session's own port",
  fn: () =>
    withJumpWorld([{ alias: "et-jump" }], async (jw) => {
      const [jump] = jw.hops;
      const et = new PipedClient(jw.client(`et-jump:${jump.daemon!.port}`));
      try {
        await shellAnswers(et, 60_000);
        const { idHex } = sessionSecret(await jw.bootstrapLines());
        const lines = await jw.bootstrapLines();
        const jumpLine = lines.find((l) => l.op === "jump")!;
        const ownPort = jumpLine.port as number;
        assert.ok(ownPort >= 2022 && ownPort <= 2122, `port ${ownPort}`);
        const relay = await relayOf(jump, idHex);
        assert.equal(relay.status.destination, `127.0.0.1:${ownPort}`);
        await et.type("exit 7\n");
        assert.equal(await et.exit(30_000), 7);
      } finally {
        await et.close();
      }
    }, { daemon: false }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "jumphost: when the jumphost cannot reach the destination, the client's one line says so (a plain REFUSE(8), retried until the deadline)",
  fn: () =>
    withJumpWorld([{ alias: "et-jump" }], async (jw) => {
      const [jump] = jw.hops;
      const nothingThere = closedPort();
      const result = await runToEnd(
        jw.client(
          `et-jump:${jump.daemon!.port}`,
          ["--connect-timeout", "4s"],
          nothingThere,
        ),
        60_000,
      );
      assert.equal(result.code, 1, result.stderr);
      // The "connecting…" notice names the reason too; the error is last.
      const lines = result.stderr.trim().split("\n").filter((line) =>
        line.startsWith("et: cannot")
      );
      assert.equal(lines.length, 1, result.stderr);
      assert.match(
        lines[0],
        new RegExp(
          `^et: cannot connect to the jumphost et-jump at 127\\.0\\.0\\.1:${
            jump.daemon!.port
          } within 4s: the jumphost cannot reach 127\\.0\\.0\\.1:${nothingThere} \\(.*refused`,
          "i",
        ),
      );
    }),
});
