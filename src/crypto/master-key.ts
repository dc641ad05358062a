import { createHmac, hkdfSync, randomBytes } from "node:crypto";
import { AgentwallError } from "../errors.js";
import { AES_KEY_BYTES } from "./aead.js";
import { fromBase64, fromBase64Url, fromHex } from "./encoding.js";

/**
 * A master key: 32 secret bytes with an id derived from them. The id is public (it names which key
 * wrapped a data key); the key-check value proves a given key is the registered one.
 */
export interface MasterKey {
  readonly id: string;
  /** HMAC of a fixed label under the key; stored in the database to recognise the key. */
  readonly kcv: string;
  /** The key-encryption key derived from the master key, used to wrap data and signing keys. */
  readonly kek: Buffer;
}

/**
 * Parses a master key written as 64 hex characters, 43 base64url characters or 44 base64 characters.
 * The message of a failure never contains the value.
 */
export function parseMasterKey(text: string, origin: string): MasterKey {
  const value = text.trim();
  let bytes: Buffer | undefined;
  try {
    if (/^[0-9a-fA-F]{64}$/.test(value)) bytes = fromHex(value);
    else if (value.length === 43) bytes = fromBase64Url(value);
    else if (value.length === 44) bytes = fromBase64(value);
  } catch {
    bytes = undefined;
  }
  if (bytes?.length !== AES_KEY_BYTES) {
    throw new AgentwallError(
      "ERR_MASTER_KEY_INVALID",
      `the master key from ${origin} must be 32 bytes written as 64 hex, 43 base64url or 44 base64 characters`,
    );
  }
  return masterKeyFromBytes(bytes);
}

/** Builds a {@link MasterKey} from raw bytes. */
export function masterKeyFromBytes(bytes: Uint8Array): MasterKey {
  if (bytes.length !== AES_KEY_BYTES) {
    throw new AgentwallError("ERR_MASTER_KEY_INVALID", "a master key is 32 bytes");
  }
  const id = "mk_" + createHmac("sha256", bytes).update("agentwall/master-key-id/v1").digest("hex").slice(0, 16);
  const kcv = createHmac("sha256", bytes).update("agentwall/master-key-check/v1").digest("base64url");
  const kek = Buffer.from(hkdfSync("sha256", bytes, Buffer.alloc(0), "agentwall/kek/v1", AES_KEY_BYTES));
  return Object.freeze({ id, kcv, kek });
}

/** A new random master key, as the text written to `master.key`. */
export function generateMasterKeyText(): string {
  return randomBytes(AES_KEY_BYTES).toString("base64url");
}
