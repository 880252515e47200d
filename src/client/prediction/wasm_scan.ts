/**
 * A 16-bytes-at-a-time scan (WebAssembly SIMD) for the bytes that can
 * start a change of a terminal's state: ESC, SO, SI, and 0xc2 (the lead
 * byte of a UTF-8 C1 control). It finds the first 16-byte block holding
 * any of them; the caller looks at that block byte by byte. Plain ASCII
 * text goes through at memory speed, two to three times faster than the
 * word-at-a-time JavaScript scan: it is the model's whole cost while bulk
 * output streams by.
 *
 * The module is ~100 bytes, assembled here from its instructions (the
 * text format beside each line), so nothing opaque is checked in.
 *
 * @module
 */

/** Unsigned LEB128, for sizes, counts and memory offsets. */
function uleb(value: number): number[] {
  const out = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

/** Signed LEB128, for `i32.const` operands. */
function sleb(value: number): number[] {
  const out = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    const signBit = (byte & 0x40) !== 0;
    if ((value === 0 && !signBit) || (value === -1 && signBit)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const SIMD = 0xfd;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I32_CONST = 0x41;
const NO_RESULT = 0x40;

/** `i8x16.splat (i32.const byte)`: a vector of 16 copies of `byte`. */
const splat = (byte: number) => [I32_CONST, ...sleb(byte), SIMD, 0x0f];

/**
 * `(func $find (param $at i32) (param $end i32) (result i32)
 *    (local $v v128) ...)`: the first `$at` (stepping by 16, below `$end`)
 * whose 16 bytes hold ESC, SO, SI or 0xc2; `$end` if none does.
 */
// deno-fmt-ignore
const FIND_BODY = [
  0x01, 0x01, 0x7b,                                    // one local, v128: $v
  0x03, NO_RESULT,                                     // loop $next
  LOCAL_GET, 0, LOCAL_GET, 1, 0x49,                    //   (i32.lt_u $at $end)
  0x04, NO_RESULT,                                     //   if
  LOCAL_GET, 0, SIMD, 0x00, 0x04, 0x00, LOCAL_SET, 2,  //     $v = (v128.load $at)
  LOCAL_GET, 2, ...splat(0x1b), SIMD, 0x23,            //     (i8x16.eq $v ESC)
  LOCAL_GET, 2, ...splat(0xc2), SIMD, 0x23, SIMD, 0x50, //    v128.or (i8x16.eq $v 0xc2)
  LOCAL_GET, 2, ...splat(0xfe), SIMD, 0x4e,            //     (v128.and $v 0xfe): SO, SI
  ...splat(0x0e), SIMD, 0x23, SIMD, 0x50,              //     v128.or (i8x16.eq that 0x0e)
  SIMD, 0x53,                                          //     v128.any_true
  0x04, NO_RESULT, LOCAL_GET, 0, 0x0f, 0x0b,           //     if: return $at
  LOCAL_GET, 0, I32_CONST, 16, 0x6a, LOCAL_SET, 0,     //     $at += 16
  0x0c, 1,                                             //     br $next
  0x0b,                                                //   end if
  0x0b,                                                // end loop
  LOCAL_GET, 1,                                        // $end
  0x0b,                                                // end func
];

/** One section: its id, then its size, then `body`. */
const section = (id: number, body: number[]) => [
  id,
  ...uleb(body.length),
  ...body,
];
const name = (text: string) => [
  text.length,
  ...Array.from(text, (ch) => ch.charCodeAt(0)),
];

/** Bytes a scan can take at once (the module's memory is 2 pages, 128 KiB). */
export const SCAN_PIECE_BYTES = 64 * 1024;

// deno-fmt-ignore
const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,           // "\0asm", version 1
  ...section(1, [0x01, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f]), // type 0: (i32 i32) -> i32
  ...section(3, [0x01, 0x00]),                               // function 0 has type 0
  ...section(5, [0x01, 0x00, 0x02]),                         // memory 0: 2 pages
  ...section(7, [0x02,                                       // exports:
    ...name("find"), 0x00, 0x00,                             //   function 0
    ...name("memory"), 0x02, 0x00]),                         //   memory 0
  ...section(10, [0x01, ...uleb(FIND_BODY.length), ...FIND_BODY]), // code
]);

/** The scan: where to copy bytes, and the search. */
export interface BlockScanner {
  /** The module's memory: copy up to {@linkcode SCAN_PIECE_BYTES} here. */
  memory: Uint8Array;
  /**
   * The first offset from `at` (stepping by 16, below `end`) whose 16 bytes
   * in {@linkcode memory} hold ESC, SO, SI or 0xc2; `end` if none does.
   */
  find(at: number, end: number): number;
}

/** The SIMD scan, or null where WebAssembly SIMD is not available. */
export const blockScanner: BlockScanner | null = (() => {
  try {
    if (!WebAssembly.validate(MODULE)) return null;
    const { exports } = new WebAssembly.Instance(
      new WebAssembly.Module(MODULE),
    );
    return {
      memory: new Uint8Array((exports.memory as WebAssembly.Memory).buffer),
      find: exports.find as (at: number, end: number) => number,
    };
  } catch {
    return null;
  }
})();
