import { createHmac, hkdfSync, pbkdf2, scrypt, timingSafeEqual } from "node:crypto";
import { AgentwallError } from "../errors.js";

/** Password KDF parameters as an envelope records them. */
export type KdfParams =
  | { readonly name: "scrypt"; readonly log2N: number; readonly r: number; readonly p: number }
  | { readonly name: "pbkdf2-sha256"; readonly iterations: number };

/** The default: scrypt N=2^17, r=8, p=1 (OWASP's scrypt setting). */
export const SCRYPT_DEFAULT: KdfParams = Object.freeze({ name: "scrypt", log2N: 17, r: 8, p: 1 });
/** The portable choice: PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP). */
export const PBKDF2_DEFAULT: KdfParams = Object.freeze({ name: "pbkdf2-sha256", iterations: 600_000 });

/**
 * What a decryption accepts from an envelope. The floors keep envelopes from naming a meaningless KDF;
 * the ceilings keep a crafted envelope from costing gigabytes or minutes.
 */
export interface KdfLimits {
  readonly maxScryptMemoryBytes: number;
  readonly maxPbkdf2Iterations: number;
}

export const KDF_LIMITS: KdfLimits = Object.freeze({
  maxScryptMemoryBytes: 512 * 1024 * 1024,
  maxPbkdf2Iterations: 5_000_000,
});
const MIN_LOG2N = 10;
const MIN_ITERATIONS = 1000;

function scryptMemory(log2N: number, r: number, p: number): number {
  // Node's own estimate: 128 * N * r for the vector plus 128 * r * p for the blocks.
  return 128 * 2 ** log2N * r + 128 * r * p;
}

/** Throws `ERR_INVALID_ARGUMENT` for parameters outside the floors and `limits`. */
export function checkKdfParams(params: KdfParams, limits: KdfLimits = KDF_LIMITS): void {
  const int = (v: unknown, lo: number, hi: number) =>
    Number.isSafeInteger(v) && (v as number) >= lo && (v as number) <= hi;
  if (params.name === "scrypt") {
    if (!int(params.log2N, MIN_LOG2N, 30) || !int(params.r, 1, 64) || !int(params.p, 1, 16)) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "scrypt parameters out of range");
    }
    if (scryptMemory(params.log2N, params.r, params.p) > limits.maxScryptMemoryBytes) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "scrypt parameters need more memory than allowed");
    }
    return;
  }
  if (params.name === "pbkdf2-sha256") {
    if (!int(params.iterations, MIN_ITERATIONS, limits.maxPbkdf2Iterations)) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "PBKDF2 iteration count out of range");
    }
    return;
  }
  throw new AgentwallError("ERR_INVALID_ARGUMENT", "unknown KDF");
}

/** Runs at most `max` KDF computations at once; the rest wait in order. */
class Gate {
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.max) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#running++;
    try {
      return await task();
    } finally {
      this.#running--;
      this.#waiting.shift()?.();
    }
  }
}

/** Concurrent password-KDF runs in this process (each takes ~100 ms of CPU and up to 512 MiB). */
const gate = new Gate(2);

/**
 * Derives a 32-byte key from a password with checked parameters, on the libuv pool, at most two at a
 * time in the process so a burst of decryptions cannot exhaust memory.
 */
export function derivePasswordKey(
  password: Uint8Array,
  salt: Uint8Array,
  params: KdfParams,
  limits: KdfLimits = KDF_LIMITS,
): Promise<Buffer> {
  checkKdfParams(params, limits);
  return gate.run(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        const done = (error: Error | null, key: Buffer) => (error === null ? resolve(key) : reject(error));
        if (params.name === "scrypt") {
          const { log2N, r, p } = params;
          scrypt(password, salt, 32, { N: 2 ** log2N, r, p, maxmem: scryptMemory(log2N, r, p) + 1024 * 1024 }, done);
        } else {
          pbkdf2(password, salt, params.iterations, 32, "sha256", done);
        }
      }),
  );
}

/** PBKDF2-HMAC-SHA256 as a primitive (no policy floors): any iteration count from 1 to 10,000,000. */
export function pbkdf2Sha256(
  password: Uint8Array,
  salt: Uint8Array,
  iterations: number,
  length: number,
): Promise<Buffer> {
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 10_000_000) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "iterations must be 1..10,000,000");
  }
  if (!Number.isSafeInteger(length) || length < 1 || length > 1024) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "length must be 1..1024 bytes");
  }
  return gate.run(
    () =>
      new Promise<Buffer>((resolve, reject) =>
        pbkdf2(password, salt, iterations, length, "sha256", (e, key) => (e === null ? resolve(key) : reject(e))),
      ),
  );
}

/** HKDF-SHA256 (RFC 5869). Throws `ERR_INVALID_ARGUMENT` for a length over 255 × 32 bytes. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 1 || length > 255 * 32) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "HKDF-SHA256 output must be 1..8160 bytes");
  }
  if (info.length > 1024) throw new AgentwallError("ERR_INVALID_ARGUMENT", "HKDF info must be at most 1024 bytes");
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, length));
}

/** HMAC-SHA256 of `message`. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Buffer {
  return createHmac("sha256", key).update(message).digest();
}

/** Checks a full 32-byte HMAC-SHA256 tag in constant time; a truncated tag is refused (false). */
export function verifyHmacSha256(key: Uint8Array, message: Uint8Array, tag: Uint8Array): boolean {
  if (tag.length !== 32) return false;
  return timingSafeEqual(hmacSha256(key, message), tag);
}
