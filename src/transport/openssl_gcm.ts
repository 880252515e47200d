/**
 * AES-256-GCM through the system's OpenSSL (`libcrypto.so.3`), by FFI,
 * synchronously: the fast way to seal and open packets where it exists.
 *
 * Why not only WebCrypto and node:crypto: WebCrypto's AES-GCM ran at about
 * 350 MB/s here for 64 KiB chunks, each call an async op on a pool thread,
 * and node:crypto builds a stream object per packet (about 100 µs the first
 * time after the process slept, i.e. per keystroke). OpenSSL did 4 GB/s for
 * 64 KiB chunks and about 60 µs for a keystroke after a sleep, with no
 * thread hop. The output is the same AES-GCM, byte for byte
 * (`tests/transport/crypto_test.ts` checks both ways).
 *
 * Optional: where libcrypto cannot be opened (not Linux, no OpenSSL 3, FFI
 * denied) {@linkcode openSslGcm} says null and `crypto.ts` keeps its own
 * way. Nothing is opened while modules load.
 *
 * @module
 */

/** EVP_CTRL_GCM_GET_TAG and EVP_CTRL_GCM_SET_TAG of `openssl/evp.h`. */
const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
/** The 16-byte GCM tag. */
const TAG = 16;
/** GCM's default IV length: OpenSSL reads exactly this many bytes of `iv`. */
const IV = 12;

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: {
    parameters: ["pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_CIPHER_CTX_ctrl: {
    parameters: ["pointer", "i32", "i32", "buffer"],
    result: "i32",
  },
} as const;

type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The library on this system; throws NotSupported where none is bound. */
function openLibcrypto(os: typeof Deno.build.os): Libcrypto {
  switch (os) {
    case "linux":
      return Deno.dlopen("libcrypto.so.3", SYMBOLS).symbols;
    default:
      throw new Deno.errors.NotSupported(`no libcrypto binding on ${os}`);
  }
}

let library: Libcrypto | null | undefined;

function libcrypto(): Libcrypto | null {
  if (library === undefined) {
    try {
      library = openLibcrypto(Deno.build.os);
    } catch {
      library = null; // absent, or FFI denied: crypto.ts keeps its way
    }
  }
  return library;
}

// Contexts hold key schedules in C memory: freed when their key goes.
const contexts = new FinalizationRegistry<Deno.PointerObject>((ctx) =>
  library?.EVP_CIPHER_CTX_free(ctx)
);

/** One direction's key, scheduled once, for sealing and opening. */
export interface GcmKey {
  /**
   * `plaintext` sealed with `iv` (12 bytes), `aad` authenticated too:
   * ciphertext followed by the 16-byte tag, in a fresh array.
   */
  seal(iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /**
   * The concatenation of `parts` sealed like {@linkcode seal}, written
   * into `out` (exactly the parts' length plus the 16-byte tag) instead of
   * a fresh array: a packet is sealed in place inside its frame, with no
   * copy of the message before or of the ciphertext after.
   */
  sealInto(
    iv: Uint8Array,
    aad: Uint8Array,
    parts: readonly Uint8Array[],
    out: Uint8Array,
  ): void;
  /** What {@linkcode seal} made, opened; null when anything was changed. */
  open(iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array | null;
}

/**
 * True where OpenSSL 3 opens here (opening it now, once: a few ms of
 * dlopen, then free).
 */
export function openSslPresent(): boolean {
  return libcrypto() !== null;
}

/**
 * An AES-256-GCM key through OpenSSL, or null where OpenSSL 3 cannot be
 * opened here (the caller then uses WebCrypto or node:crypto).
 */
export function openSslGcm(raw: Uint8Array): GcmKey | null {
  const c = libcrypto();
  if (c === null || raw.length !== 32) return null;
  const encrypt = c.EVP_CIPHER_CTX_new();
  const decrypt = c.EVP_CIPHER_CTX_new();
  if (encrypt === null || decrypt === null) return null;
  const cipher = c.EVP_aes_256_gcm();
  const key = Uint8Array.from(raw);
  if (
    c.EVP_EncryptInit_ex(encrypt, cipher, null, key, null) !== 1 ||
    c.EVP_DecryptInit_ex(decrypt, cipher, null, key, null) !== 1
  ) return null;
  const length = new Int32Array(1);
  const scratch = new Uint8Array(TAG);
  const gcm: GcmKey = {
    seal(iv, aad, plaintext) {
      const out = new Uint8Array(plaintext.length + TAG);
      gcm.sealInto(iv, aad, [plaintext], out);
      return out;
    },
    sealInto(iv, aad, parts, out) {
      if (iv.length !== IV) throw new RangeError(`IV of ${iv.length} bytes`);
      let size = 0;
      for (const part of parts) size += part.length;
      if (out.length !== size + TAG) {
        throw new RangeError(`output of ${out.length} bytes for ${size}`);
      }
      let ok = c.EVP_EncryptInit_ex(encrypt, null, null, null, iv) === 1 &&
        (aad.length === 0 ||
          c.EVP_EncryptUpdate(encrypt, null, length, aad, aad.length) === 1);
      // GCM is a stream mode: each update writes exactly its input's
      // length, so the parts land one after another.
      let at = 0;
      for (const part of parts) {
        if (!ok) break;
        if (part.length === 0) continue;
        ok = c.EVP_EncryptUpdate(
          encrypt,
          out.subarray(at),
          length,
          part,
          part.length,
        ) === 1;
        at += part.length;
      }
      if (
        !ok ||
        // Final writes nothing, only computes the tag.
        c.EVP_EncryptFinal_ex(encrypt, scratch, length) !== 1 ||
        c.EVP_CIPHER_CTX_ctrl(
            encrypt,
            EVP_CTRL_GCM_GET_TAG,
            TAG,
            out.subarray(size),
          ) !== 1
      ) throw new Error("OpenSSL AES-GCM seal failed");
    },
    open(iv, aad, sealed) {
      if (iv.length !== IV) throw new RangeError(`IV of ${iv.length} bytes`);
      if (sealed.length < TAG) return null;
      const size = sealed.length - TAG;
      const out = new Uint8Array(size);
      const tag = sealed.slice(size); // SET_TAG takes a writable buffer
      const ok = c.EVP_DecryptInit_ex(decrypt, null, null, null, iv) === 1 &&
        (aad.length === 0 ||
          c.EVP_DecryptUpdate(decrypt, null, length, aad, aad.length) ===
            1) &&
        (size === 0 ||
          c.EVP_DecryptUpdate(
              decrypt,
              out,
              length,
              sealed.subarray(0, size),
              size,
            ) === 1) &&
        c.EVP_CIPHER_CTX_ctrl(decrypt, EVP_CTRL_GCM_SET_TAG, TAG, tag) ===
          1 &&
        c.EVP_DecryptFinal_ex(decrypt, scratch, length) === 1;
      return ok ? out : null;
    },
  };
  contexts.register(gcm, encrypt);
  contexts.register(gcm, decrypt);
  return gcm;
}
