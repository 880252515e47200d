/**
 * Tests of the termios module against glibc's own `cfmakeraw` (compiled here
 * with `cc`) and real pseudo-terminals; nothing is mocked. Pty pairs are
 * opened through the layer's private libc bindings: the test needs both
 * the master and the slave fd, which `Pty` keeps to itself.
 */

import assert from "node:assert/strict";
import {
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
