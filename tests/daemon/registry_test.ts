/**
 * Session ids bound to users, and kept for them across a restart while
 * the registering process lives.
 */
import assert from "node:assert/strict";
import {
  MAX_SESSIONS_PER_UID,
  type Owner,
  processStart,
  SessionRegistry,
} from "../../src/daemon/registry.ts";

const id = () =>
  Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");

const me: Owner = { uid: 1000, pid: Deno.pid, start: processStart(Deno.pid)! };
const other: Owner = { uid: 1001, pid: Deno.pid, start: me.start };

/** An owner whose process is gone. */
async function deadOwner(uid: number): Promise<Owner> {
  const child = new Deno.Command("true").spawn();
  const pid = child.pid;
  const start = processStart(pid) ?? "0";
  await child.status;
  return { uid, pid, start };
}

Deno.test("registry: ids are bound to their uid; live ones are nobody else's", () => {
  const registry = SessionRegistry.open<string>(null);
  const session = id();
  assert.equal(registry.claim(session, me, "first"), null);
  assert.equal(registry.live(session), "first");
  assert.match(registry.claim(session, me, "second")!, /already registered/);
  assert.match(registry.claim(session, other, "x")!, /another user/);
  registry.release(session, "not it");
  assert.equal(registry.live(session), "first");
  registry.release(session, "first");
  assert.equal(registry.live(session), undefined);
  assert.equal(registry.claim(session, other, "other"), null);
});

Deno.test("registry: at most MAX_SESSIONS_PER_UID ids per user", () => {
  const registry = SessionRegistry.open<number>(null);
  for (let i = 0; i < MAX_SESSIONS_PER_UID; i++) {
    assert.equal(registry.claim(id(), me, i), null);
  }
  assert.match(registry.claim(id(), me, -1)!, /too many sessions/);
  assert.equal(registry.claim(id(), other, 0), null);
  assert.equal(registry.countFor(me.uid), MAX_SESSIONS_PER_UID);
});

Deno.test("registry: after a restart an id stays its user's while the process lives", async () => {
  const dir = `${await Deno.makeTempDir()}/state`;
  try {
    const before = SessionRegistry.open<string>(dir);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
    const living = id();
    const dead = id();
    const released = id();
    assert.equal(before.claim(living, me, "a"), null);
    assert.equal(before.claim(dead, await deadOwner(me.uid), "b"), null);
    assert.equal(before.claim(released, me, "c"), null);
    before.release(released, "c");
    // The daemon stops: its registrations end but stay reserved.
    before.keepReservations();
    before.release(living, "a");
    before.release(dead, "b");

    const after = SessionRegistry.open<string>(dir);
    assert.equal(after.reservedCount, 1, "only the living owner's id");
    assert.equal(after.live(living), undefined);
    assert.match(after.claim(living, other, "thief")!, /another user's/);
    assert.equal(after.claim(living, me, "back"), null);
    assert.equal(after.live(living), "back");
    // The dead owner's id and the released one are anyone's.
    assert.equal(after.claim(dead, other, "new"), null);
    assert.equal(after.claim(released, other, "new"), null);
  } finally {
    await Deno.remove(`${dir}/..`, { recursive: true });
  }
});

Deno.test("registry: a reservation whose process dies is swept", async () => {
  const dir = `${await Deno.makeTempDir()}/state`;
  try {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    const owner: Owner = {
      uid: 1002,
      pid: child.pid,
      start: processStart(child.pid)!,
    };
    const session = id();
    const before = SessionRegistry.open<string>(dir);
    assert.equal(before.claim(session, owner, "x"), null);
    const after = SessionRegistry.open<string>(dir);
    assert.equal(after.reservedCount, 1);
    assert.equal(after.sweep(), 0);
    assert.match(after.claim(session, other, "thief")!, /another user's/);
    child.kill("SIGKILL");
    await child.status;
    assert.equal(after.sweep(), 1);
    await assert.rejects(Deno.stat(`${dir}/${session}`), Deno.errors.NotFound);
    assert.equal(after.claim(session, other, "now free"), null);
  } finally {
    await Deno.remove(`${dir}/..`, { recursive: true });
  }
});

Deno.test("registry: refuses a state directory someone else owns", {
  ignore: Deno.uid() !== 0,
}, async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.chown(dir, 65534, 65534);
    assert.throws(() => SessionRegistry.open(dir), /must be owned/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
