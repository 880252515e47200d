/**
 * Tests of the termios module against glibc's own `cfmakeraw` (compiled here
 * with `cc`) and real pseudo-terminals; nothing is mocked. Pty pairs are
 * opened through the layer's private libc bindings: the test needs both
 * the master and the slave fd, which `Pty` keeps to itself.
 */

import assert from "node:assert/strict";
import {
  DARWIN_TERMIOS,
  getTermios,
  LINUX_TERMIOS,
  makeRaw,
  setTermios,
  TCSADRAIN,
  TCSANOW,
  termiosFields,
  termiosPlatform,
} from "../../src/pty/termios.ts";
import {
  closeQuietly,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_RDWR,
} from "../../src/platform/libc.ts";

const SIZE = LINUX_TERMIOS.size;

/** A C program: reads termios structs from stdin, writes them cfmakeraw'd. */
const CFMAKERAW_C = `
#include <stdio.h>
#include <string.h>
#include <termios.h>
int main(void) {
  struct termios t;
  if (sizeof t != ${SIZE}) { fprintf(stderr, "sizeof %zu\\n", sizeof t); return 2; }
  while (fread(&t, sizeof t, 1, stdin) == 1) {
    cfmakeraw(&t);
    fwrite(&t, sizeof t, 1, stdout);
  }
  return 0;
}
`;

/** Compiles CFMAKERAW_C; null when no C compiler is installed. */
async function compileCfmakeraw(dir: string): Promise<string | null> {
  const source = `${dir}/cfmakeraw.c`;
  const binary = `${dir}/cfmakeraw`;
  await Deno.writeTextFile(source, CFMAKERAW_C);
  try {
    const { success, stderr } = await new Deno.Command("cc", {
      args: ["-O0", "-o", binary, source],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(success, `cc failed: ${new TextDecoder().decode(stderr)}`);
    return binary;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** A new pty pair through libc: [master, slave] fds. */
function openPtyPair(): [number, number] {
  const c = libc();
  const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert.ok(master >= 0, "posix_openpt");
  assert.equal(c.grantpt(master), 0);
  assert.equal(c.unlockpt(master), 0);
  const name = new Uint8Array(128);
  assert.equal(c.ptsname_r(master, name, BigInt(name.length)), 0);
  const slave = c.open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  assert.ok(slave >= 0, "open slave");
  return [master, slave];
}

Deno.test("the Linux table matches the struct termios of this system's glibc", async () => {
  assert.equal(termiosPlatform("linux"), LINUX_TERMIOS);
  assert.equal(termiosPlatform("darwin"), DARWIN_TERMIOS);
  assert.throws(() => termiosPlatform("windows"), Deno.errors.NotSupported);
  const dir = await Deno.makeTempDir({ prefix: "et-termios-" });
  try {
    const source = `${dir}/layout.c`;
    await Deno.writeTextFile(
      source,
      `#include <stdio.h>
#include <stddef.h>
#include <termios.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu %d %d %d\\n", sizeof(struct termios),
    offsetof(struct termios, c_iflag), offsetof(struct termios, c_oflag),
    offsetof(struct termios, c_cflag), offsetof(struct termios, c_lflag),
    offsetof(struct termios, c_cc), NCCS, VMIN, VTIME);
  printf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d %d\\n",
    IGNBRK, BRKINT, PARMRK, ISTRIP, INLCR, IGNCR, ICRNL, IXON, OPOST, ONLCR,
    CSIZE, CS8, PARENB, ECHO, ECHONL, ICANON, ISIG, IEXTEN);
  return 0;
}
`,
    );
    let compiled;
    try {
      compiled = await new Deno.Command("cc", {
        args: ["-o", `${dir}/layout`, source],
      }).output();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      console.warn("no C compiler (cc): layout not checked against glibc");
      return;
    }
    assert.ok(compiled.success, new TextDecoder().decode(compiled.stderr));
    const out = await new Deno.Command(`${dir}/layout`).output();
    const [layout, flags] = new TextDecoder().decode(out.stdout).trim().split(
      "\n",
    ).map((line) => line.split(" ").map(Number));
    const t = LINUX_TERMIOS;
    assert.deepEqual(layout, [
      t.size,
      t.offsets.iflag,
      t.offsets.oflag,
      t.offsets.cflag,
      t.offsets.lflag,
      t.offsets.cc,
      t.nccs,
      t.cc.VMIN,
      t.cc.VTIME,
    ]);
    assert.deepEqual(flags, [
      ...Object.values(t.iflag),
      t.oflag.OPOST,
      t.oflag.ONLCR,
      t.cflag.CSIZE,
      t.cflag.CS8,
      t.cflag.PARENB,
      ...Object.values(t.lflag),
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("makeRaw changes a termios exactly as glibc's cfmakeraw does", async () => {
  // Inputs: random structs (every bit of every field, padding included),
  // all-zero, all-ones, and a real pty's defaults.
  const inputs: Uint8Array[] = [new Uint8Array(SIZE), new Uint8Array(SIZE)];
  inputs[1].fill(0xff);
  for (let i = 0; i < 300; i++) {
    inputs.push(crypto.getRandomValues(new Uint8Array(SIZE)));
  }
  const [master, slave] = openPtyPair();
  try {
    inputs.push(getTermios(slave));
  } finally {
    closeQuietly(slave);
    closeQuietly(master);
  }
  const ours = inputs.map((input) => makeRaw(input));
  // makeRaw copies; its input is untouched.
  assert.deepEqual(inputs[0], new Uint8Array(SIZE));

  const dir = await Deno.makeTempDir({ prefix: "et-termios-" });
  try {
    const binary = await compileCfmakeraw(dir);
    if (binary === null) {
      console.warn("no C compiler (cc): makeRaw not compared to cfmakeraw");
      return;
    }
    const child = new Deno.Command(binary, {
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    const writing = (async () => {
      for (const input of inputs) await writer.write(input);
      await writer.close();
    })();
    const { code, stdout } = await child.output();
    await writing;
    assert.equal(code, 0);
    assert.equal(stdout.length, inputs.length * SIZE);
    for (let i = 0; i < inputs.length; i++) {
      assert.deepEqual(
        ours[i],
        stdout.subarray(i * SIZE, (i + 1) * SIZE),
        `input #${i}`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * What cfmakeraw's changes come to on macOS's `struct termios`, worked out
 * by hand from XNU's bsd/sys/termios.h (not from our table): the flag words
 * are 64-bit `unsigned long`s at 0, 8, 16 and 24, and C's `~` of the int
 * masks sign-extends, so their high 32 bits are kept.
 *
 * ```
 * iflag &= ~(IGNBRK 0x1|BRKINT 0x2|PARMRK 0x8|ISTRIP 0x20|INLCR 0x40
 *            |IGNCR 0x80|ICRNL 0x100|IXON 0x200)            = ~0x3eb
 * oflag &= ~OPOST 0x1
 * cflag  = (cflag & ~(CSIZE 0x300|PARENB 0x1000)) | CS8 0x300
 * lflag &= ~(ECHO 0x8|ECHONL 0x10|ISIG 0x80|ICANON 0x100|IEXTEN 0x400)
 *                                                          = ~0x598
 * c_cc (at 32)[VMIN 16] = 1; c_cc[VTIME 17] = 0
 * ```
 */
function darwinCfmakeraw(input: Uint8Array): Uint8Array {
  const out = input.slice();
  const view = new DataView(out.buffer);
  const update = (offset: number, f: (word: bigint) => bigint) =>
    view.setBigUint64(offset, f(view.getBigUint64(offset, true)), true);
  update(0, (w) => w & ~0x3ebn);
  update(8, (w) => w & ~0x1n);
  update(16, (w) => (w & ~0x1300n) | 0x300n);
  update(24, (w) => w & ~0x598n);
  out[32 + 16] = 1;
  out[32 + 17] = 0;
  return out;
}

Deno.test("makeRaw on a macOS struct termios makes cfmakeraw's changes with XNU's bits, nothing else", () => {
  assert.equal(DARWIN_TERMIOS.size, 72);
  const inputs: Uint8Array[] = [new Uint8Array(72), new Uint8Array(72)];
  inputs[1].fill(0xff);
  for (let i = 0; i < 300; i++) {
    inputs.push(crypto.getRandomValues(new Uint8Array(72)));
  }
  for (const [i, input] of inputs.entries()) {
    const before = input.slice();
    assert.deepEqual(
      makeRaw(input, DARWIN_TERMIOS),
      darwinCfmakeraw(input),
      `input #${i}`,
    );
    assert.deepEqual(input, before, "makeRaw copies");
  }
  assert.throws(() => makeRaw(new Uint8Array(60), DARWIN_TERMIOS), RangeError);
});

Deno.test("makeRaw on macOS's default terminal (ttydefaults.h) leaves what raw mode keeps", () => {
  // bsd/sys/ttydefaults.h: TTYDEF_IFLAG BRKINT|ICRNL|IMAXBEL|IXON|IXANY,
  // TTYDEF_OFLAG OPOST|ONLCR, TTYDEF_CFLAG CREAD|CS8|HUPCL, TTYDEF_LFLAG
  // ECHO|ICANON|ISIG|IEXTEN|ECHOE|ECHOKE|ECHOCTL, speed B9600, and
  // ttydefchars (VMIN's CMIN 1, VTIME's CTIME 0).
  const cooked = new Uint8Array(72);
  const view = new DataView(cooked.buffer);
  view.setBigUint64(0, 0x2b02n, true);
  view.setBigUint64(8, 0x3n, true);
  view.setBigUint64(16, 0x4b00n, true);
  view.setBigUint64(24, 0x5cbn, true);
  cooked.set([
    0x04,
    0xff,
    0xff,
    0x7f,
    0x17,
    0x15,
    0x12,
    0xff,
    0x03,
    0x1c,
    0x1a,
    0x19,
    0x11,
    0x13,
    0x16,
    0x0f,
    0x01,
    0x00,
    0x14,
    0xff,
  ], 32);
  view.setBigUint64(56, 9600n, true);
  view.setBigUint64(64, 9600n, true);
  const raw = new DataView(makeRaw(cooked, DARWIN_TERMIOS).buffer);
  // IMAXBEL 0x2000 and IXANY 0x800 stay; BRKINT, ICRNL, IXON go.
  assert.equal(raw.getBigUint64(0, true), 0x2800n);
  // ONLCR stays but is inert without OPOST.
  assert.equal(raw.getBigUint64(8, true), 0x2n);
  assert.equal(raw.getBigUint64(16, true), 0x4b00n);
  // ECHOE 0x2, ECHOKE 0x1 and ECHOCTL 0x40 stay (inert without ICANON/ECHO).
  assert.equal(raw.getBigUint64(24, true), 0x43n);
  assert.equal(raw.getBigUint64(56, true), 9600n);
  assert.equal(raw.getBigUint64(64, true), 9600n);
  const fields = termiosFields(makeRaw(cooked, DARWIN_TERMIOS), DARWIN_TERMIOS);
  assert.equal(fields.cc.length, 20);
  assert.equal(fields.cc[16], 1);
  assert.equal(fields.cc[17], 0);
  assert.equal(fields.cc[8], 0x03, "VINTR kept");
});

Deno.test("makeRaw turns off output processing, echo and line editing", () => {
  const [master, slave] = openPtyPair();
  try {
    const cooked = termiosFields(getTermios(slave));
    const t = LINUX_TERMIOS;
    assert.ok(cooked.oflag & t.oflag.OPOST, "a fresh pty processes output");
    assert.ok(cooked.oflag & t.oflag.ONLCR);
    const raw = termiosFields(makeRaw(getTermios(slave)));
    assert.equal(raw.oflag & t.oflag.OPOST, 0);
    assert.equal(raw.oflag & t.oflag.ONLCR, cooked.oflag & t.oflag.ONLCR);
    assert.equal(raw.lflag & (t.lflag.ICANON | t.lflag.ECHO | t.lflag.ISIG), 0);
    assert.equal(raw.iflag & t.iflag.ICRNL, 0);
    assert.equal(raw.cflag & t.cflag.CSIZE, t.cflag.CS8);
    assert.equal(raw.cc[t.cc.VMIN], 1);
    assert.equal(raw.cc[t.cc.VTIME], 0);
  } finally {
    closeQuietly(slave);
    closeQuietly(master);
  }
});

Deno.test("get/set round-trip on a real pty, and the master reports the slave's attributes", () => {
  let [master, slave] = openPtyPair();
  try {
    const original = getTermios(slave);
    assert.equal(original.length, SIZE);
    // Linux: tcgetattr on the master answers for the slave.
    assert.deepEqual(getTermios(master), original);

    const raw = makeRaw(original);
    assert.notDeepEqual(raw, original);
    setTermios(slave, raw, TCSADRAIN);
    assert.deepEqual(getTermios(slave), raw);
    assert.deepEqual(getTermios(master), raw);

    setTermios(slave, original);
    assert.deepEqual(getTermios(slave), original);

    // Setting through the master changes the slave too.
    setTermios(master, raw, TCSANOW);
    assert.deepEqual(getTermios(slave), raw);
    setTermios(master, original);
    assert.deepEqual(getTermios(slave), original);

    // The slave's attributes outlive its last close while the master stays
    // open (tests read them after the process on the slave has exited).
    setTermios(slave, raw);
    closeQuietly(slave);
    slave = -1;
    assert.deepEqual(getTermios(master), raw);
  } finally {
    closeQuietly(slave);
    closeQuietly(master);
  }
});

Deno.test("getTermios and setTermios refuse what is not a terminal", () => {
  const c = libc();
  const devNull = c.open(
    new TextEncoder().encode("/dev/null\0"),
    O_RDWR | O_CLOEXEC,
  );
  assert.ok(devNull >= 0);
  try {
    assert.throws(() => getTermios(devNull), /tcgetattr.*ENOTTY/);
    assert.throws(
      () => setTermios(devNull, new Uint8Array(SIZE)),
      /tcsetattr.*ENOTTY/,
    );
  } finally {
    closeQuietly(devNull);
  }
  assert.throws(() => getTermios(-1), /EBADF/);
  assert.throws(() => setTermios(0, new Uint8Array(10)), RangeError);
  assert.throws(() => makeRaw(new Uint8Array(61)), RangeError);
});
