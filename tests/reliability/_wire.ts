/**
 * A remote attacker's end of a TCP connection to the daemon, in raw
 * frames: send bytes (from a chosen local address), wait for frames,
 * collect what comes back until the other end hangs up.
 *
 * @module
 */

import net from "node:net";
import { FRAME_HEADER_BYTES, FrameCutter } from "./_frames.ts";

/** What the daemon (or the terminal behind it) answered one connection. */
export interface Answer {
  /** Frame types received, in order. */
  types: number[];
  /** The REFUSE's code (high bit cleared) and whether it was signed. */
  refuse?: { code: number; signed: boolean };
  /** How it ended: `closed` (FIN), `reset`, `timeout` or `connect failed`. */
  end: "closed" | "reset" | "timeout" | "connect failed";
}

/** One raw connection to `port`, optionally from `localAddress`. */
export class RawConnection {
  #socket: net.Socket;
  #cutter = new FrameCutter();
  #frames: Uint8Array[] = [];
  #waiters: (() => void)[] = [];
  #ended: Promise<Answer["end"]>;
  #connected: Promise<boolean>;

  constructor(port: number, localAddress?: string, timeoutMs = 8000) {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    this.#socket = socket;
    this.#connected = new Promise((resolve) => {
      socket.once("connect", () => resolve(true));
      socket.once("error", () => resolve(false));
    });
    this.#ended = new Promise((resolve) => {
      let reset = false;
      const timer = setTimeout(() => {
        socket.destroy();
        resolve("timeout");
      }, timeoutMs);
      socket.on("error", (error: NodeJS.ErrnoException) => {
        if (error.code === "ECONNRESET") reset = true;
      });
      socket.on("close", () => {
        clearTimeout(timer);
        this.#wake();
        resolve(reset ? "reset" : "closed");
      });
    });
    socket.on("data", (chunk: Uint8Array) => {
      const { frames } = this.#cutter.push(new Uint8Array(chunk));
      this.#frames.push(...frames);
      if (frames.length > 0) this.#wake();
    });
  }

  #wake() {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** Sends `bytes` once connected; false if the connect failed. */
  async send(bytes: Uint8Array): Promise<boolean> {
    if (!(await this.#connected)) return false;
    if (this.#socket.destroyed) return false;
    this.#socket.write(bytes);
    return true;
  }

  /** Resolves once `count` frames arrived or the connection ended. */
  async frames(count: number): Promise<Uint8Array[]> {
    while (this.#frames.length < count && !this.#socket.destroyed) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
    return this.#frames.slice(0, count);
  }

  /** Waits for the end and describes everything received. */
  async answer(): Promise<Answer> {
    if (!(await this.#connected)) {
      this.#socket.destroy();
      return { types: [], end: "connect failed" };
    }
    const end = await this.#ended;
    const types = this.#frames.map((frame) => frame[FRAME_HEADER_BYTES]);
    const refusal = this.#frames.find((frame) =>
      frame[FRAME_HEADER_BYTES] === 0x05
    );
    return {
      types,
      end,
      refuse: refusal
        ? {
          code: refusal[FRAME_HEADER_BYTES + 1] & 0x7f,
          signed: (refusal[FRAME_HEADER_BYTES + 1] & 0x80) !== 0,
        }
        : undefined,
    };
  }

  /** Closes it (FIN). */
  close(): void {
    this.#socket.end();
  }
}

/** A HELLO frame for session `id` (hex) with a fresh client nonce. */
export function helloFrame(idHex: string): Uint8Array {
  const frame = new Uint8Array(54);
  new DataView(frame.buffer).setUint32(0, 50);
  frame[4] = 0x01;
  frame[5] = 1;
  for (let i = 0; i < 16; i++) {
    frame[6 + i] = parseInt(idHex.slice(2 * i, 2 * i + 2), 16);
  }
  crypto.getRandomValues(frame.subarray(22));
  return frame;
}

/** A short name for an answer, for counting outcomes. */
export function answerName(answer: Answer): string {
  const names: Record<number, string> = {
    1: "hello",
    2: "challenge",
    3: "auth",
    4: "accept",
    5: "refuse",
  };
  const frames = answer.types.map((t) =>
    t === 0x05 && answer.refuse
      ? `refuse(${answer.refuse.code}${answer.refuse.signed ? ",signed" : ""})`
      : names[t] ?? `0x${t.toString(16)}`
  );
  return [...frames, answer.end].join(" ");
}
