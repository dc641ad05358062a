import { KeyObject, createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

function isKeyObject(key: Uint8Array | KeyObject): key is KeyObject {
  return key instanceof KeyObject;
}
import { AgentwallError } from "../errors.js";

/** AES-256-GCM parameters: 32-byte key, 12-byte IV, 16-byte tag. Nothing else is accepted. */
export const AES_KEY_BYTES = 32;
export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;

/**
 * Random 12-byte IVs drawn from the CSPRNG in blocks: one `randomBytes` call per 256 IVs instead of one
 * per encryption (each call has a fixed cost that dominated small seals). Every IV is still uniformly
 * random; nothing is reused.
 */
export class IvSource {
  #pool: Buffer = Buffer.alloc(0);
  #offset = 0;

  next(): Buffer {
    if (this.#offset + GCM_IV_BYTES > this.#pool.length) {
      this.#pool = randomBytes(GCM_IV_BYTES * 256);
      this.#offset = 0;
    }
    const iv = Buffer.from(this.#pool.subarray(this.#offset, this.#offset + GCM_IV_BYTES));
    this.#pool.fill(0, this.#offset, this.#offset + GCM_IV_BYTES);
    this.#offset += GCM_IV_BYTES;
    return iv;
  }
}

function checkKey(key: Uint8Array | KeyObject): void {
  if (isKeyObject(key)) {
    if (key.type !== "secret" || key.symmetricKeySize !== AES_KEY_BYTES) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", `AES-256-GCM needs a ${AES_KEY_BYTES}-byte key`);
    }
    return;
  }
  if (key.length !== AES_KEY_BYTES) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `AES-256-GCM needs a ${AES_KEY_BYTES}-byte key`);
  }
}

/**
 * Encrypts with AES-256-GCM under a fresh random 12-byte IV.
 * Returns `iv || ciphertext || tag`.
 *
 * @example
 * ```ts
 * const sealed = sealAesGcm(key, Buffer.from("secret"), Buffer.from("table|row"));
 * ```
 */
export function sealAesGcm(
  key: Uint8Array | KeyObject,
  plaintext: Uint8Array,
  aad?: Uint8Array,
  ivSource?: IvSource,
): Buffer {
  checkKey(key);
  const iv = ivSource === undefined ? randomBytes(GCM_IV_BYTES) : ivSource.next();
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: GCM_TAG_BYTES });
  if (aad !== undefined) cipher.setAAD(aad);
  const body = cipher.update(plaintext);
  const tail = cipher.final();
  return Buffer.concat([iv, body, tail, cipher.getAuthTag()]);
}

/**
 * Decrypts `iv || ciphertext || tag` made by {@link sealAesGcm}. Every failure (short input, wrong key,
 * altered bytes, other associated data) is the same opaque `ERR_DECRYPT`.
 */
export function openAesGcm(key: Uint8Array | KeyObject, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  checkKey(key);
  if (sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) {
    throw new AgentwallError("ERR_DECRYPT", "decryption failed");
  }
  return gcmDecryptParts(
    key,
    sealed.subarray(0, GCM_IV_BYTES),
    sealed.subarray(GCM_IV_BYTES, sealed.length - GCM_TAG_BYTES),
    sealed.subarray(sealed.length - GCM_TAG_BYTES),
    aad,
  );
}

/** IV lengths {@link gcmEncryptWithIv} and {@link gcmDecryptParts} accept: 12, or 16 for the compat format only. */
export type GcmIvPolicy = "standard" | "compat";

function checkIv(iv: Uint8Array, policy: GcmIvPolicy): void {
  if (iv.length !== GCM_IV_BYTES && !(policy === "compat" && iv.length === 16)) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `AES-256-GCM takes a ${GCM_IV_BYTES}-byte IV`);
  }
}

/**
 * AES-256-GCM with a caller-chosen IV, for formats that carry the IV apart (the source guides' compat
 * format, known-answer vectors). The caller must never reuse an IV under one key; prefer
 * {@link sealAesGcm}, which draws it.
 */
export function gcmEncryptWithIv(
  key: Uint8Array | KeyObject,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad?: Uint8Array,
  policy: GcmIvPolicy = "standard",
): { ciphertext: Buffer; tag: Buffer } {
  checkKey(key);
  checkIv(iv, policy);
  const cipher = createCipheriv("aes-256-gcm", key, iv, { authTagLength: GCM_TAG_BYTES });
  if (aad !== undefined) cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/**
 * Decrypts AES-256-GCM from separate parts. Key and IV outside the policy throw `ERR_INVALID_ARGUMENT`;
 * a tag that is not 16 bytes, or any authentication failure, is the opaque `ERR_DECRYPT`.
 */
export function gcmDecryptParts(
  key: Uint8Array | KeyObject,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad?: Uint8Array,
  policy: GcmIvPolicy = "standard",
): Buffer {
  checkKey(key);
  checkIv(iv, policy);
  if (tag.length !== GCM_TAG_BYTES) throw new AgentwallError("ERR_DECRYPT", "decryption failed");
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, iv, { authTagLength: GCM_TAG_BYTES });
    decipher.setAuthTag(tag);
    if (aad !== undefined) decipher.setAAD(aad);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch {
    throw new AgentwallError("ERR_DECRYPT", "decryption failed");
  }
}
