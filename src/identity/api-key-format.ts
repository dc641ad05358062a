import { createHash, randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/** `aw_` + 12-character public id + `_` + 43-character secret (256 bits) + 6-character CRC32 checksum. */
export const API_KEY_PATTERN = /^aw_([0-9a-z]{12})_([0-9A-Za-z]{43})([0-9A-Za-z]{6})$/;

function base62(value: bigint, width: number): string {
  let out = "";
  let v = value;
  while (v > 0n) {
    out = BASE62[Number(v % 62n)] + out;
    v /= 62n;
  }
  return out.padStart(width, "0");
}

function checksum(body: string): string {
  return base62(BigInt(crc32(body)), 6);
}

function randomId(): string {
  // 36^12 ≈ 2^62: rejection sampling keeps every character uniform.
  let out = "";
  while (out.length < 12) {
    for (const b of randomBytes(16)) {
      if (b < 252 && out.length < 12) out += ID_ALPHABET[b % 36];
    }
  }
  return out;
}

/** A new API key and its public parts. The key itself is shown once and never stored. */
export function generateApiKey(): { id: string; key: string; prefix: string } {
  const id = randomId();
  const secret = base62(BigInt("0x" + randomBytes(32).toString("hex")), 43);
  const body = `aw_${id}_${secret}`;
  return { id, key: body + checksum(body), prefix: `aw_${id}_` };
}

/**
 * Parses a presented key. Returns the public id when the form and checksum are right (a scanner can
 * recognise an agentwall key offline), else undefined.
 */
export function parseApiKey(key: string): { id: string } | undefined {
  if (typeof key !== "string" || key.length !== 65) return undefined;
  const m = API_KEY_PATTERN.exec(key);
  if (m === null) return undefined;
  const body = key.slice(0, 59);
  if (checksum(body) !== m[3]) return undefined;
  return { id: m[1] as string };
}

/** The stored form of a key: SHA-256 of the whole key (the key carries 256 random bits). */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key).digest("hex");
}
