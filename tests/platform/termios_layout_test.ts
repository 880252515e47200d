/**
 * The `struct termios` tables. macOS's is checked against XNU's
 * `bsd/sys/termios.h`: its values written out here from the header, its
 * offsets computed from the header's declaration by the C rule of natural
 * alignment, a rule this test first checks against this system's compiler
 * on glibc's declaration (so the rule, not only its result, is tested).
 */

import assert from "node:assert/strict";
import {
  DARWIN_TERMIOS,
  LINUX_TERMIOS,
  type TermiosPlatform,
  termiosPlatform,
} from "../../src/platform/termios_layout.ts";
import { TCSADRAIN, TCSAFLUSH, TCSANOW } from "../../src/pty/termios.ts";

/** A C struct member: its name, the size and alignment of its type, count. */
type Member = [name: string, size: number, align: number, count?: number];

/** Offsets and sizeof of a C struct laid out with natural alignment. */
function layout(
  members: Member[],
): { offsets: Record<string, number>; size: number } {
  const offsets: Record<string, number> = {};
  let at = 0;
  let maxAlign = 1;
  for (const [name, size, align, count = 1] of members) {
    at = Math.ceil(at / align) * align;
    offsets[name] = at;
    at += size * count;
    maxAlign = Math.max(maxAlign, align);
  }
  return { offsets, size: Math.ceil(at / maxAlign) * maxAlign };
}

/** glibc's declaration (bits/termios-struct.h): tcflag_t and speed_t are unsigned int. */
const GLIBC_DECLARATION: Member[] = [
  ["c_iflag", 4, 4],
  ["c_oflag", 4, 4],
  ["c_cflag", 4, 4],
  ["c_lflag", 4, 4],
  ["c_line", 1, 1],
  ["c_cc", 1, 1, 32],
  ["c_ispeed", 4, 4],
  ["c_ospeed", 4, 4],
];

/**
 * XNU's declaration (bsd/sys/termios.h) on LP64 macOS: tcflag_t is
 * unsigned long and speed_t long, 8 bytes each; cc_t unsigned char;
 * NCCS 20.
 */
const DARWIN_DECLARATION: Member[] = [
  ["c_iflag", 8, 8],
  ["c_oflag", 8, 8],
  ["c_cflag", 8, 8],
  ["c_lflag", 8, 8],
  ["c_cc", 1, 1, 20],
  ["c_ispeed", 8, 8],
  ["c_ospeed", 8, 8],
];

function tableLayout(t: TermiosPlatform) {
  return {
    size: t.size,
    offsets: [
      t.offsets.iflag,
      t.offsets.oflag,
      t.offsets.cflag,
      t.offsets.lflag,
      t.offsets.cc,
      t.offsets.ispeed,
      t.offsets.ospeed,
    ],
  };
}

function computed(members: Member[]) {
  const { offsets, size } = layout(members);
  return {
    size,
    offsets: [
      "c_iflag",
      "c_oflag",
      "c_cflag",
      "c_lflag",
      "c_cc",
      "c_ispeed",
      "c_ospeed",
    ].map((name) => offsets[name]),
  };
}

Deno.test("the alignment rule reproduces glibc's struct termios as compiled here", async () => {
  const rule = computed(GLIBC_DECLARATION);
  assert.deepEqual(tableLayout(LINUX_TERMIOS), rule);
  if (Deno.build.os !== "linux") return;
  const dir = await Deno.makeTempDir({ prefix: "et-termios-layout-" });
  try {
    await Deno.writeTextFile(
      `${dir}/layout.c`,
      `#include <stddef.h>
#include <stdio.h>
#include <termios.h>
int main(void) {
  printf("%zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\\n", sizeof(struct termios),
    offsetof(struct termios, c_iflag), offsetof(struct termios, c_oflag),
    offsetof(struct termios, c_cflag), offsetof(struct termios, c_lflag),
    offsetof(struct termios, c_cc), offsetof(struct termios, c_ispeed),
    offsetof(struct termios, c_ospeed), sizeof(tcflag_t), sizeof(speed_t));
  return 0;
}
`,
    );
    let compiled;
    try {
      compiled = await new Deno.Command("cc", {
        args: ["-o", `${dir}/layout`, `${dir}/layout.c`],
      }).output();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      console.warn("no C compiler (cc): alignment rule not checked");
      return;
    }
    assert.ok(compiled.success, new TextDecoder().decode(compiled.stderr));
    const out = await new Deno.Command(`${dir}/layout`).output();
    const [size, ...rest] = new TextDecoder().decode(out.stdout).trim()
      .split(" ").map(Number);
    assert.deepEqual({ size, offsets: rest.slice(0, 7) }, rule);
    assert.deepEqual(rest.slice(7), [
      LINUX_TERMIOS.flagBytes,
      LINUX_TERMIOS.speedBytes,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the macOS layout is XNU's declaration: offsets 0, 8, 16, 24, 32, 56, 64, sizeof 72", () => {
  assert.deepEqual(tableLayout(DARWIN_TERMIOS), computed(DARWIN_DECLARATION));
  assert.deepEqual(tableLayout(DARWIN_TERMIOS), {
    size: 72,
    offsets: [0, 8, 16, 24, 32, 56, 64],
  });
  assert.equal(DARWIN_TERMIOS.flagBytes, 8);
  assert.equal(DARWIN_TERMIOS.speedBytes, 8);
  assert.equal(DARWIN_TERMIOS.nccs, 20);
});

Deno.test("the macOS flag bits and indexes are those of XNU's termios.h", () => {
  const t = DARWIN_TERMIOS;
  // "Special Control Characters": VMIN 16, VTIME 17 (both !ICANON).
  assert.deepEqual(t.cc, { VMIN: 16, VTIME: 17 });
  // "Commands passed to tcsetattr()".
  assert.deepEqual(t.actions, { TCSANOW: 0, TCSADRAIN: 1, TCSAFLUSH: 2 });
  // "Input flags - software input processing".
  assert.deepEqual(t.iflag, {
    IGNBRK: 0x00000001,
    BRKINT: 0x00000002,
    PARMRK: 0x00000008,
    ISTRIP: 0x00000020,
    INLCR: 0x00000040,
    IGNCR: 0x00000080,
    ICRNL: 0x00000100,
    IXON: 0x00000200,
  });
  // "Output flags - software output processing".
  assert.deepEqual(t.oflag, { OPOST: 0x00000001, ONLCR: 0x00000002 });
  // "Control flags - hardware control of terminal".
  assert.deepEqual(t.cflag, {
    CSIZE: 0x00000300,
    CS8: 0x00000300,
    PARENB: 0x00001000,
  });
  // "Local flags".
  assert.deepEqual(t.lflag, {
    ECHO: 0x00000008,
    ECHONL: 0x00000010,
    ICANON: 0x00000100,
    ISIG: 0x00000080,
    IEXTEN: 0x00000400,
  });
});

Deno.test("TCSANOW, TCSADRAIN and TCSAFLUSH are one set of values on both systems", () => {
  const exported = { TCSANOW, TCSADRAIN, TCSAFLUSH };
  assert.deepEqual(LINUX_TERMIOS.actions, exported);
  assert.deepEqual(DARWIN_TERMIOS.actions, exported);
});

Deno.test("a table per Unix system, none for Windows", () => {
  assert.equal(termiosPlatform("linux"), LINUX_TERMIOS);
  assert.equal(termiosPlatform("darwin"), DARWIN_TERMIOS);
  assert.throws(() => termiosPlatform("windows"), Deno.errors.NotSupported);
});
