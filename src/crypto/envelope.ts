import { randomBytes } from "node:crypto";
import { AgentwallError } from "../errors.js";
import { parseStrictJson } from "../guard/json-strict.js";
import { AES_KEY_BYTES, GCM_IV_BYTES, GCM_TAG_BYTES, gcmDecryptParts, gcmEncryptWithIv } from "./aead.js";
import { fromBase64, fromBase64Url } from "./encoding.js";
import { KDF_LIMITS, SCRYPT_DEFAULT, derivePasswordKey, pbkdf2Sha256, type KdfLimits, type KdfParams } from "./kdf.js";

/**
 * agentwall's envelope, version 1: AES-256-GCM (12-byte IV, 16-byte tag) under a key or a
 * password-derived key, self-describing so old data stays readable when defaults change. The binary
 * header (magic, KDF and its parameters, salt) is authenticated as associated data, before the caller's
 * own associated data, so no field can be changed without the decryption failing. The JSON form carries
 * the same fields (base64url) and decrypts to the same bytes.
 */
export interface Envelope {
  readonly kdf: KdfParams | null;
  readonly salt: Buffer | null;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/** The source guides' Python format (PBKDF2-SHA256 100,000 iterations, 16-byte IV, standard base64). */
export interface CompatEnvelope {
  readonly ciphertext: string;
  readonly iv: string;
  readonly salt: string;
  readonly auth_tag: string;
  readonly algorithm: "AES-256-GCM";
}

export type EnvelopeFormat = "json" | "binary" | "compat";
export type DecryptSecret = { readonly key: Uint8Array } | { readonly password: string | Uint8Array };

const MAGIC = Buffer.from("AWE1", "latin1");
const SALT_BYTES = 16;
const KDF_ID = { none: 0, scrypt: 1, "pbkdf2-sha256": 2 } as const;
const COMPAT_ITERATIONS = 100_000;
const COMPAT_IV_BYTES = 16;
const MAX_INPUT_BYTES = 1024 * 1024 * 1024;

const fail = (): never => {
  throw new AgentwallError("ERR_DECRYPT", "decryption failed");
};

function passwordBytes(password: string | Uint8Array): Buffer {
  const bytes = typeof password === "string" ? Buffer.from(password, "utf8") : Buffer.from(password);
  if (bytes.length === 0 || bytes.length > 4096) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "a password must be 1..4096 bytes");
  }
  return bytes;
}

function checkDataKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== AES_KEY_BYTES) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `a key must be ${AES_KEY_BYTES} bytes`);
  }
}

/** The authenticated header: magic, KDF id, parameters, salt. */
function header(kdf: KdfParams | null, salt: Buffer | null): Buffer {
  if (kdf === null) return Buffer.concat([MAGIC, Buffer.from([KDF_ID.none])]);
  const params =
    kdf.name === "scrypt"
      ? Buffer.from([kdf.log2N, kdf.r, kdf.p])
      : (() => {
          const b = Buffer.alloc(4);
          b.writeUInt32BE(kdf.iterations);
          return b;
        })();
  return Buffer.concat([MAGIC, Buffer.from([KDF_ID[kdf.name]]), params, salt ?? fail()]);
}

function associated(env: Pick<Envelope, "kdf" | "salt">, aad: Uint8Array | undefined): Buffer {
  const h = header(env.kdf, env.salt);
  return aad === undefined ? h : Buffer.concat([h, aad]);
}

function seal(
  key: Uint8Array,
  kdf: KdfParams | null,
  salt: Buffer | null,
  plaintext: Uint8Array,
  aad?: Uint8Array,
): Envelope {
  const iv = randomBytes(GCM_IV_BYTES);
  const { ciphertext, tag } = gcmEncryptWithIv(key, iv, plaintext, associated({ kdf, salt }, aad));
  return Object.freeze({ kdf, salt, iv, ciphertext, tag });
}

/**
 * Encrypts with a 32-byte key.
 *
 * @example
 * ```ts
 * const env = encryptWithKey(key, Buffer.from("hello"), { aad: Buffer.from("record:7") });
 * const text = envelopeToJson(env);
 * ```
 */
export function encryptWithKey(key: Uint8Array, plaintext: Uint8Array, options: { aad?: Uint8Array } = {}): Envelope {
  checkDataKey(key);
  return seal(key, null, null, plaintext, options.aad);
}

/** Encrypts with a password: a fresh 16-byte salt and the KDF (default scrypt N=2^17, r=8, p=1). */
export async function encryptWithPassword(
  password: string | Uint8Array,
  plaintext: Uint8Array,
  options: { aad?: Uint8Array; kdf?: KdfParams } = {},
): Promise<Envelope> {
  const kdf = options.kdf ?? SCRYPT_DEFAULT;
  const salt = randomBytes(SALT_BYTES);
  const key = await derivePasswordKey(passwordBytes(password), salt, kdf);
  return seal(key, kdf, salt, plaintext, options.aad);
}

/** The compact binary form: header ‖ IV ‖ ciphertext ‖ tag. */
export function envelopeToBinary(env: Envelope): Buffer {
  return Buffer.concat([header(env.kdf, env.salt), env.iv, env.ciphertext, env.tag]);
}

/** The JSON form (base64url fields). */
export function envelopeToJson(env: Envelope): string {
  const b = (x: Buffer) => x.toString("base64url");
  return JSON.stringify({
    v: 1,
    alg: "AES-256-GCM",
    kdf: env.kdf,
    ...(env.salt === null ? {} : { salt: b(env.salt) }),
    iv: b(env.iv),
    ct: b(env.ciphertext),
    tag: b(env.tag),
  });
}

function parseBinary(bytes: Buffer): Envelope {
  if (bytes.length < MAGIC.length + 1 || !bytes.subarray(0, 4).equals(MAGIC)) fail();
  const id = bytes[4];
  let offset = 5;
  let kdf: KdfParams | null = null;
  let salt: Buffer | null = null;
  if (id === KDF_ID.scrypt) {
    if (bytes.length < offset + 3 + SALT_BYTES) fail();
    kdf = { name: "scrypt", log2N: bytes[5] as number, r: bytes[6] as number, p: bytes[7] as number };
    offset += 3;
  } else if (id === KDF_ID["pbkdf2-sha256"]) {
    if (bytes.length < offset + 4 + SALT_BYTES) fail();
    kdf = { name: "pbkdf2-sha256", iterations: bytes.readUInt32BE(offset) };
    offset += 4;
  } else if (id !== KDF_ID.none) fail();
  if (kdf !== null) {
    salt = Buffer.from(bytes.subarray(offset, offset + SALT_BYTES));
    offset += SALT_BYTES;
  }
  if (bytes.length < offset + GCM_IV_BYTES + GCM_TAG_BYTES) fail();
  return {
    kdf,
    salt,
    iv: Buffer.from(bytes.subarray(offset, offset + GCM_IV_BYTES)),
    ciphertext: Buffer.from(bytes.subarray(offset + GCM_IV_BYTES, bytes.length - GCM_TAG_BYTES)),
    tag: Buffer.from(bytes.subarray(bytes.length - GCM_TAG_BYTES)),
  };
}

function exactKeys(
  value: unknown,
  required: readonly string[],
  optional: readonly string[] = [],
): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return fail();
  const keys = Object.keys(value);
  for (const k of required) if (!keys.includes(k)) fail();
  for (const k of keys) if (!required.includes(k) && !optional.includes(k)) fail();
  return value as Record<string, unknown>;
}

function b64u(value: unknown): Buffer {
  return typeof value === "string" ? fromBase64Url(value) : fail();
}

function parseJsonEnvelope(doc: Record<string, unknown>): Envelope {
  const o = exactKeys(doc, ["v", "alg", "kdf", "iv", "ct", "tag"], ["salt"]);
  if (o.v !== 1 || o.alg !== "AES-256-GCM") fail();
  let kdf: KdfParams | null = null;
  if (o.kdf !== null) {
    const k = exactKeys(o.kdf, ["name"], ["log2N", "r", "p", "iterations"]);
    if (k.name === "scrypt") {
      exactKeys(k, ["name", "log2N", "r", "p"]);
      const [log2N, r, p] = [k.log2N, k.r, k.p];
      if (![log2N, r, p].every((x) => Number.isInteger(x) && (x as number) >= 0 && (x as number) <= 255)) fail();
      kdf = { name: "scrypt", log2N: log2N as number, r: r as number, p: p as number };
    } else if (k.name === "pbkdf2-sha256") {
      exactKeys(k, ["name", "iterations"]);
      if (!Number.isInteger(k.iterations) || (k.iterations as number) < 0 || (k.iterations as number) > 0xffffffff)
        fail();
      kdf = { name: "pbkdf2-sha256", iterations: k.iterations as number };
    } else fail();
  }
  const salt = kdf === null ? (o.salt === undefined ? null : fail()) : b64u(o.salt);
  if (salt !== null && salt.length !== SALT_BYTES) fail();
  const iv = b64u(o.iv);
  const tag = b64u(o.tag);
  if (iv.length !== GCM_IV_BYTES || tag.length !== GCM_TAG_BYTES) fail();
  return { kdf, salt, iv, ciphertext: b64u(o.ct), tag };
}

function parseCompat(doc: Record<string, unknown>): CompatEnvelope {
  const o = exactKeys(doc, ["ciphertext", "iv", "salt", "auth_tag", "algorithm"]);
  if (o.algorithm !== "AES-256-GCM") fail();
  const text = (k: string): string => (typeof o[k] === "string" ? o[k] : fail());
  return {
    ciphertext: text("ciphertext"),
    iv: text("iv"),
    salt: text("salt"),
    auth_tag: text("auth_tag"),
    algorithm: "AES-256-GCM",
  };
}

/**
 * Reads any supported form: the binary envelope, the JSON envelope, or the compat JSON. Anything else
 * is `ERR_DECRYPT`.
 */
export function parseEnvelope(input: string | Uint8Array): Envelope | CompatEnvelope {
  try {
    const bytes = typeof input === "string" ? Buffer.from(input, "utf8") : Buffer.from(input);
    if (bytes.length > MAX_INPUT_BYTES) fail();
    if (bytes.subarray(0, 4).equals(MAGIC)) return parseBinary(bytes);
    const doc = parseStrictJson(bytes.toString("utf8"));
    if (typeof doc === "object" && doc !== null && "auth_tag" in doc) return parseCompat(doc);
    return parseJsonEnvelope(doc as Record<string, unknown>);
  } catch {
    return fail();
  }
}

function isCompat(env: Envelope | CompatEnvelope): env is CompatEnvelope {
  return "auth_tag" in env;
}

/**
 * Decrypts an envelope in any supported form with a key or a password. KDF parameters are checked
 * against `limits` before any work; every failure — malformed input, parameters over the limits, wrong
 * key or password, altered bytes, other associated data — is the same opaque `ERR_DECRYPT`.
 */
export async function decryptEnvelope(
  input: Envelope | CompatEnvelope | string | Uint8Array,
  secret: DecryptSecret,
  options: { aad?: Uint8Array; limits?: KdfLimits } = {},
): Promise<Buffer> {
  try {
    const env = typeof input === "string" || input instanceof Uint8Array ? parseEnvelope(input) : input;
    if (isCompat(env)) {
      if (!("password" in secret) || options.aad !== undefined) return fail();
      return await decryptCompat(env, secret.password);
    }
    let key: Uint8Array;
    if (env.kdf === null) {
      if (!("key" in secret)) return fail();
      checkDataKey(secret.key);
      key = secret.key;
    } else {
      if (!("password" in secret) || env.salt === null) return fail();
      key = await derivePasswordKey(passwordBytes(secret.password), env.salt, env.kdf, options.limits ?? KDF_LIMITS);
    }
    return gcmDecryptParts(key, env.iv, env.ciphertext, env.tag, associated(env, options.aad));
  } catch {
    return fail();
  }
}

/** Encrypts into the source guides' compat format (only where a user asks for it: `--format compat`). */
export async function encryptCompat(password: string | Uint8Array, plaintext: Uint8Array): Promise<CompatEnvelope> {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(COMPAT_IV_BYTES);
  const key = await pbkdf2Sha256(passwordBytes(password), salt, COMPAT_ITERATIONS, AES_KEY_BYTES);
  const { ciphertext, tag } = gcmEncryptWithIv(key, iv, plaintext, undefined, "compat");
  return {
    ciphertext: ciphertext.toString("base64"),
    iv: iv.toString("base64"),
    salt: salt.toString("base64"),
    auth_tag: tag.toString("base64"),
    algorithm: "AES-256-GCM",
  };
}

/** Decrypts the compat format (standard base64 decoded strictly; 16-byte IV and salt, 16-byte tag). */
export async function decryptCompat(env: CompatEnvelope, password: string | Uint8Array): Promise<Buffer> {
  try {
    const salt = fromBase64(env.salt);
    const iv = fromBase64(env.iv);
    if (salt.length !== SALT_BYTES || iv.length !== COMPAT_IV_BYTES) fail();
    const key = await pbkdf2Sha256(passwordBytes(password), salt, COMPAT_ITERATIONS, AES_KEY_BYTES);
    return gcmDecryptParts(key, iv, fromBase64(env.ciphertext), fromBase64(env.auth_tag), undefined, "compat");
  } catch {
    return fail();
  }
}

/** The guides' at-rest file layout with a raw 32-byte key: `iv(12) ‖ tag(16) ‖ ciphertext`. */
export function sealCompatBlob(key: Uint8Array, plaintext: Uint8Array): Buffer {
  checkDataKey(key);
  const iv = randomBytes(GCM_IV_BYTES);
  const { ciphertext, tag } = gcmEncryptWithIv(key, iv, plaintext);
  return Buffer.concat([iv, tag, ciphertext]);
}

/** Opens {@link sealCompatBlob}'s layout; any failure is `ERR_DECRYPT`. */
export function openCompatBlob(key: Uint8Array, blob: Uint8Array): Buffer {
  checkDataKey(key);
  if (blob.length < GCM_IV_BYTES + GCM_TAG_BYTES) fail();
  const b = Buffer.from(blob);
  return gcmDecryptParts(
    key,
    b.subarray(0, GCM_IV_BYTES),
    b.subarray(GCM_IV_BYTES + GCM_TAG_BYTES),
    b.subarray(GCM_IV_BYTES, GCM_IV_BYTES + GCM_TAG_BYTES),
  );
}

/** Writes an envelope in the requested form (compat envelopes only as compat JSON). */
export function encodeEnvelope(env: Envelope | CompatEnvelope, format: EnvelopeFormat): string | Buffer {
  if (isCompat(env)) {
    if (format !== "compat") throw new AgentwallError("ERR_INVALID_ARGUMENT", "a compat envelope is written as compat");
    return JSON.stringify(env);
  }
  if (format === "compat") throw new AgentwallError("ERR_INVALID_ARGUMENT", "compat envelopes come from encryptCompat");
  return format === "binary" ? envelopeToBinary(env) : envelopeToJson(env);
}
