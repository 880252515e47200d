/**
 * Which user owns which session id. An id is bound to the uid of the
 * process that registered it (the kernel's word, SO_PEERCRED), and the
 * binding outlives a daemon restart: each registration is also written to
 * a root-owned state directory, and a daemon that starts again keeps every
 * recorded id reserved for its user as long as the registering process
 * lives (its pid and start time in /proc). So after a restart the surviving
 * terminal gets its id back, and another user who saw the id in a clear
 * HELLO cannot claim it first.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";

const log = logger("router");

const ID = /^[0-9a-f]{32}$/;

/**
 * Most session ids one user may hold (live or reserved). Far above what a
 * person uses; it only bounds what one local account can make the daemon
 * keep.
 */
export const MAX_SESSIONS_PER_UID = 64;

/** Who registered a session id. */
export interface Owner {
  /** User id of the registering process. */
  uid: number;
  /** Its pid. */
  pid: number;
  /**
   * Its start time (field 22 of /proc/<pid>/stat), so a pid reused by
   * another process does not count as the owner still alive.
   */
  start: string;
}

/**
 * The start time of process `pid`, or null if there is no such process.
 */
export function processStart(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces and parentheses; fields
    // after its closing parenthesis start at field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[22 - 3] ?? null;
  } catch {
    return null;
  }
}

/** Whether the process recorded in `owner` is still the one running. */
function alive(owner: Owner): boolean {
  return processStart(owner.pid) === owner.start;
}

interface Entry<T> {
  owner: Owner;
  /** The live registration; null for an id reserved from before a restart. */
  live: T | null;
}

/**
 * Session id → owner and live registration, mirrored in a state directory.
 *
 * @example
 * ```ts
 * const registry = SessionRegistry.open("/run/et/router.sock.sessions");
 * const refusal = registry.claim(id, { uid, pid, start }, registration);
 * if (refusal === null) registry.live(id); // === registration
 * ```
 */
export class SessionRegistry<T> {
  #dir: string | null;
  #entries = new Map<string, Entry<T>>();
  #perUid = new Map<number, number>();
  #keepOnRelease = false;

  private constructor(dir: string | null) {
    this.#dir = dir;
  }

  /**
   * Opens the registry kept in `dir` (made with mode 0700 if absent; it
   * must be a real directory of ours), reserving each recorded id whose
   * process still runs and forgetting the rest. With `dir` null nothing is
   * kept across restarts.
   */
  static open<T>(dir: string | null): SessionRegistry<T> {
    const registry = new SessionRegistry<T>(dir);
    if (dir !== null) registry.#load(dir);
    return registry;
  }

  /** How many ids are live (registered over a connection right now). */
  get liveCount(): number {
    let count = 0;
    for (const entry of this.#entries.values()) if (entry.live) count++;
    return count;
  }

  /** How many ids are reserved from before a restart and not yet back. */
  get reservedCount(): number {
    return this.#entries.size - this.liveCount;
  }

  /** The live registration of `id`, if any. */
  live(id: string): T | undefined {
    return this.#entries.get(id)?.live ?? undefined;
  }

  /** The owner of `id`, live or reserved. */
  owner(id: string): Owner | undefined {
    return this.#entries.get(id)?.owner;
  }

  /** How many ids `uid` holds, live or reserved. */
  countFor(uid: number): number {
    return this.#perUid.get(uid) ?? 0;
  }

  /**
   * Binds `id` to `owner` with `registration`, or says why not: the id is
   * live already, or reserved for another user whose process still runs,
   * or the user holds too many.
   */
  claim(id: string, owner: Owner, registration: T): string | null {
    const entry = this.#entries.get(id);
    if (entry?.live) {
      return entry.owner.uid === owner.uid
        ? "session id already registered"
        : "session id registered by another user";
    }
    if (entry && entry.owner.uid !== owner.uid) {
      if (alive(entry.owner)) {
        return "session id belongs to another user's session";
      }
      this.#drop(id);
    }
    const replacing = this.#entries.get(id) !== undefined;
    if (!replacing && this.countFor(owner.uid) >= MAX_SESSIONS_PER_UID) {
      return `too many sessions for this user (${MAX_SESSIONS_PER_UID})`;
    }
    if (!replacing) {
      this.#perUid.set(owner.uid, this.countFor(owner.uid) + 1);
    }
    this.#entries.set(id, { owner, live: registration });
    this.#write(id, owner);
    return null;
  }

  /**
   * Ends the live registration of `id` if it is `registration`. The id is
   * forgotten, unless the daemon is closing ({@link keepReservations}): then
   * it stays on disk for the next daemon.
   */
  release(id: string, registration: T): void {
    const entry = this.#entries.get(id);
    if (!entry || entry.live !== registration) return;
    if (this.#keepOnRelease) {
      entry.live = null;
      return;
    }
    this.#drop(id);
    this.#erase(id);
  }

  /**
   * From now on, releases keep ids reserved on disk (the daemon is stopping;
   * its terminals will register again with the next one).
   */
  keepReservations(): void {
    this.#keepOnRelease = true;
  }

  /** Forgets reservations whose process is gone; returns how many. */
  sweep(): number {
    let dropped = 0;
    for (const [id, entry] of [...this.#entries]) {
      if (entry.live === null && !alive(entry.owner)) {
        this.#drop(id);
        this.#erase(id);
        dropped++;
      }
    }
    return dropped;
  }

  #drop(id: string) {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    const count = this.countFor(entry.owner.uid) - 1;
    if (count > 0) this.#perUid.set(entry.owner.uid, count);
    else this.#perUid.delete(entry.owner.uid);
  }

  #load(dir: string) {
    ensurePrivateDir(dir);
    let kept = 0;
    for (const item of Deno.readDirSync(dir)) {
      const path = `${dir}/${item.name}`;
      const owner = ID.test(item.name) && item.isFile ? readOwner(path) : null;
      if (
        owner && alive(owner) && this.countFor(owner.uid) < MAX_SESSIONS_PER_UID
      ) {
        this.#entries.set(item.name, { owner, live: null });
        this.#perUid.set(owner.uid, this.countFor(owner.uid) + 1);
        kept++;
      } else {
        removeQuietly(path);
      }
    }
    if (kept > 0) {
      log.info(`${kept} session ids reserved from before a restart`);
    }
  }

  // Synchronous and small: one file per id on /run (tmpfs), written before
  // the registration is confirmed, so a daemon killed right after still
  // leaves the reservation behind.
  #write(id: string, owner: Owner) {
    if (this.#dir === null) return;
    const path = `${this.#dir}/${id}`;
    try {
      Deno.writeTextFileSync(`${path}.tmp`, JSON.stringify(owner), {
        mode: 0o600,
      });
      Deno.renameSync(`${path}.tmp`, path);
    } catch (error) {
      log.warn(
        `cannot record session ${id.slice(0, 8)}: ${
          errorMessage(error)
        } (it will not be reserved across a restart)`,
      );
    }
  }

  #erase(id: string) {
    if (this.#dir !== null) removeQuietly(`${this.#dir}/${id}`);
  }
}

function readOwner(path: string): Owner | null {
  try {
    const value = JSON.parse(Deno.readTextFileSync(path));
    if (
      Number.isInteger(value?.uid) && Number.isInteger(value?.pid) &&
      typeof value?.start === "string"
    ) return { uid: value.uid, pid: value.pid, start: value.start };
  } catch {
    // unreadable: dropped
  }
  return null;
}

function removeQuietly(path: string) {
  try {
    Deno.removeSync(path);
  } catch {
    // gone already
  }
}

/**
 * Makes `dir` (mode 0700) or checks that it is a real directory owned by
 * us that nobody else can write to: what it holds decides who may claim
 * which session.
 */
function ensurePrivateDir(dir: string) {
  try {
    Deno.mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = Deno.lstatSync(dir);
  if (!info.isDirectory || info.isSymlink) {
    throw new Error(`${dir} must be a directory`);
  }
  if (info.uid !== Deno.uid()) {
    throw new Error(`${dir} must be owned by the user running et server`);
  }
  if ((info.mode! & 0o077) !== 0) Deno.chmodSync(dir, 0o700);
}
