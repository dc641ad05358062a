import {
  KeyObject,
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  sign,
  verify,
} from "node:crypto";
import { promisify } from "node:util";
import { AgentwallError } from "../errors.js";
import { AES_KEY_BYTES, GCM_IV_BYTES, GCM_TAG_BYTES, gcmDecryptParts, gcmEncryptWithIv } from "./aead.js";

const generate = promisify(generateKeyPair);

/** RSA modulus sizes agentwall generates; keys it is given must be 2048..16384 bits. */
export type RsaBits = 2048 | 3072 | 4096;

export interface PemKeyPair {
  /** SPKI PEM. */
  readonly publicKeyPem: string;
  /** PKCS#8 PEM, encrypted (AES-256-CBC, scrypt-free PBES2 as OpenSSL writes it) when a password was given. */
  readonly privateKeyPem: string;
}

const fail = (): never => {
  throw new AgentwallError("ERR_DECRYPT", "decryption failed");
};

function passphrase(password: string | undefined): { cipher: string; passphrase: string } | object {
  if (password === undefined) return {};
  if (password.length === 0) throw new AgentwallError("ERR_INVALID_ARGUMENT", "an empty password protects nothing");
  return { cipher: "aes-256-cbc", passphrase: password };
}

/**
 * A new RSA key pair as PEM: SPKI public key, PKCS#8 private key (encrypted with `password` if given).
 *
 * @example
 * ```ts
 * const { publicKeyPem, privateKeyPem } = await generateRsaKeyPair(3072, { password });
 * ```
 */
export async function generateRsaKeyPair(bits: RsaBits, options: { password?: string } = {}): Promise<PemKeyPair> {
  if (bits !== 2048 && bits !== 3072 && bits !== 4096) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "RSA keys are 2048, 3072 or 4096 bits");
  }
  const { publicKey, privateKey } = await generate("rsa", {
    modulusLength: bits,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem", ...passphrase(options.password) },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

/** A new Ed25519 key pair as PEM (the private key encrypted with `password` if given). */
export async function generateEd25519KeyPair(options: { password?: string } = {}): Promise<PemKeyPair> {
  const { publicKey, privateKey } = await generate("ed25519", {
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem", ...passphrase(options.password) },
  });
  return { publicKeyPem: publicKey, privateKeyPem: privateKey };
}

function rsaKey(key: KeyObject, kind: "public" | "private"): KeyObject {
  if (key.asymmetricKeyType !== "rsa") throw new AgentwallError("ERR_INVALID_ARGUMENT", `an RSA ${kind} key is needed`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048 || bits > 16384)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "RSA keys must be 2048..16384 bits");
  return key;
}

/** Reads a public key from PEM/DER (SPKI) or a KeyObject; a private key yields its public half. */
export function publicKeyFrom(key: string | Buffer | KeyObject): KeyObject {
  try {
    return key instanceof KeyObject ? (key.type === "private" ? createPublicKey(key) : key) : createPublicKey(key);
  } catch {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "not a public key");
  }
}

/** Reads a private key from PKCS#8/PKCS#1 PEM (decrypting it with `password` if it is encrypted). */
export function privateKeyFrom(key: string | Buffer | KeyObject, password?: string): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type !== "private") throw new AgentwallError("ERR_INVALID_ARGUMENT", "not a private key");
    return key;
  }
  try {
    return createPrivateKey(password === undefined ? { key } : { key, passphrase: password });
  } catch {
    // A wrong password and a damaged key look the same, on purpose.
    throw new AgentwallError("ERR_DECRYPT", "the private key could not be read (wrong password or not a key)");
  }
}

/** Largest message one RSA-OAEP-SHA256 block takes for a key: k − 2·32 − 2 bytes. */
export function oaepCapacity(key: KeyObject): number {
  return Math.floor((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8) - 66;
}

/** OAEP padding with SHA-256 (Node's `oaepHash` sets the OAEP and the MGF1 hash together). */
function oaep(key: KeyObject, label: Uint8Array | undefined) {
  return {
    key,
    padding: constants.RSA_PKCS1_OAEP_PADDING,
    oaepHash: "sha256",
    ...(label === undefined ? {} : { oaepLabel: label }),
  };
}

/** RSA-OAEP with SHA-256 for both OAEP and MGF1, one block. */
export function rsaOaepEncrypt(
  publicKey: KeyObject,
  message: Uint8Array,
  options: { label?: Uint8Array } = {},
): Buffer {
  const key = rsaKey(publicKeyFrom(publicKey), "public");
  if (message.length > oaepCapacity(key)) {
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      `RSA-OAEP takes at most ${oaepCapacity(key)} bytes; use hybridEncrypt`,
    );
  }
  return publicEncrypt(oaep(key, options.label), message);
}

/** Decrypts one RSA-OAEP-SHA256 block; every failure is the opaque `ERR_DECRYPT`. */
export function rsaOaepDecrypt(
  privateKey: KeyObject,
  ciphertext: Uint8Array,
  options: { label?: Uint8Array } = {},
): Buffer {
  const key = rsaKey(privateKey, "private");
  if (ciphertext.length !== Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8)) fail();
  try {
    return privateDecrypt(oaep(key, options.label), ciphertext);
  } catch {
    return fail();
  }
}

const HYBRID_MAGIC = Buffer.from("AWH1", "latin1");

/**
 * Hybrid encryption for any size: a random AES-256 key wrapped with RSA-OAEP-SHA256, the payload under
 * AES-256-GCM. Layout: `AWH1 ‖ u16 wrapped length ‖ wrapped key ‖ IV ‖ ciphertext ‖ tag`; everything
 * before the IV is authenticated as associated data.
 */
export function hybridEncrypt(publicKey: KeyObject, plaintext: Uint8Array): Buffer {
  const key = rsaKey(publicKeyFrom(publicKey), "public");
  const dataKey = randomBytes(AES_KEY_BYTES);
  const wrapped = rsaOaepEncrypt(key, dataKey);
  const length = Buffer.alloc(2);
  length.writeUInt16BE(wrapped.length);
  const head = Buffer.concat([HYBRID_MAGIC, length, wrapped]);
  const iv = randomBytes(GCM_IV_BYTES);
  const { ciphertext, tag } = gcmEncryptWithIv(dataKey, iv, plaintext, head);
  dataKey.fill(0);
  return Buffer.concat([head, iv, ciphertext, tag]);
}

/** Opens {@link hybridEncrypt}'s output; every failure is `ERR_DECRYPT`. */
export function hybridDecrypt(privateKey: KeyObject, sealed: Uint8Array): Buffer {
  const b = Buffer.from(sealed);
  if (b.length < 6 || !b.subarray(0, 4).equals(HYBRID_MAGIC)) fail();
  const n = b.readUInt16BE(4);
  const headEnd = 6 + n;
  if (b.length < headEnd + GCM_IV_BYTES + GCM_TAG_BYTES) fail();
  const dataKey = rsaOaepDecrypt(privateKey, b.subarray(6, headEnd));
  if (dataKey.length !== AES_KEY_BYTES) fail();
  return gcmDecryptParts(
    dataKey,
    b.subarray(headEnd, headEnd + GCM_IV_BYTES),
    b.subarray(headEnd + GCM_IV_BYTES, b.length - GCM_TAG_BYTES),
    b.subarray(b.length - GCM_TAG_BYTES),
    b.subarray(0, headEnd),
  );
}

function ed25519(key: KeyObject, kind: "public" | "private"): KeyObject {
  if (key.asymmetricKeyType !== "ed25519" || key.type !== kind) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `an Ed25519 ${kind} key is needed`);
  }
  return key;
}

/** An Ed25519 signature (64 bytes). */
export function signEd25519(privateKey: KeyObject, message: Uint8Array): Buffer {
  return sign(null, message, ed25519(privateKey, "private"));
}

/** Whether `signature` is a valid Ed25519 signature of `message`; never throws for a bad signature. */
export function verifyEd25519(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  const key = ed25519(publicKeyFrom(publicKey), "public");
  if (signature.length !== 64) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
