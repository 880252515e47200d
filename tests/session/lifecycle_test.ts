/** The session lifecycle: its table, its deadlines, and random walks. */
import assert from "node:assert/strict";
import {
  type LifecycleEvent,
  SessionLifecycle,
  type SessionState,
} from "../../src/session/mod.ts";

const limits = { connectTimeoutMs: 1000, sessionTimeoutMs: 5000 };

Deno.test("lifecycle: the drawn path starting → connected ⇄ away → draining → ended", () => {
  const life = new SessionLifecycle(limits, 0);
  assert.equal(life.state, "starting");
  assert.equal(life.deadline(), 1000);
  assert.equal(life.apply("connected", 10), "connected");
  assert.equal(life.deadline(), null, "connected has no deadline of its own");
  assert.equal(life.apply("disconnected", 20), "away");
  assert.equal(life.deadline(), 20 + 5000);
  assert.equal(life.apply("connected", 30), "connected");
  assert.equal(life.apply("program-exited", 40), "draining");
  assert.equal(life.deadline(), null, "draining to a present client");
  assert.equal(life.apply("disconnected", 50), "draining");
  assert.equal(life.deadline(), 50 + 5000, "draining to an absent client");
  assert.equal(life.apply("finished", 60), "ended");
  assert.ok(life.isFinal);
});

Deno.test("lifecycle: timeouts expire only once their deadline passed", () => {
  const life = new SessionLifecycle(limits, 0);
  assert.equal(
    life.apply("timeout", 999),
    "starting",
    "early timer is ignored",
  );
  assert.equal(life.apply("timeout", 1000), "expired");
  const away = new SessionLifecycle(limits, 0);
  away.apply("connected", 100);
  away.apply("disconnected", 200);
  assert.equal(away.apply("timeout", 5100), "away");
  assert.equal(away.apply("timeout", 5200), "expired");
});

Deno.test("lifecycle: sessionTimeout 0 waits forever; a never-connected drain waits only the connect timeout", () => {
  const forever = new SessionLifecycle({ ...limits, sessionTimeoutMs: 0 }, 0);
  forever.apply("connected", 1);
  forever.apply("disconnected", 2);
  assert.equal(forever.deadline(), null);
  assert.equal(forever.apply("timeout", 1e12), "away");
  const early = new SessionLifecycle(limits, 0);
  assert.equal(early.apply("program-exited", 5), "draining");
  assert.equal(early.deadline(), 1000);
});

Deno.test("lifecycle: random event sequences never leave a final state and keep deadlines sane", () => {
  const events: LifecycleEvent[] = [
    "connected",
    "disconnected",
    "program-exited",
    "finished",
    "end-requested",
    "timeout",
  ];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let run = 0; run < 2000; run++) {
    const life = new SessionLifecycle(limits, 0);
    let now = 0;
    let final: SessionState | null = null;
    for (let step = 0; step < 30; step++) {
      now += Math.floor(random() * 3000);
      const before = life.state;
      const event = events[Math.floor(random() * events.length)];
      const state = life.apply(event, now);
      if (state === "ended" && before !== "ended") {
        assert.ok(
          event === "end-requested" ||
            (event === "finished" && before === "draining"),
          `${before} --${event}--> ended`,
        );
      }
      if (state === "expired" && before !== "expired") {
        assert.equal(event, "timeout");
      }
      if (final) assert.equal(state, final, "a final state never changes");
      if (life.isFinal) final ??= state;
      const deadline = life.deadline();
      if (state === "connected" || life.isFinal) assert.equal(deadline, null);
      if (state === "starting" || state === "away") {
        assert.ok(deadline !== null && Number.isFinite(deadline));
      }
    }
  }
});
