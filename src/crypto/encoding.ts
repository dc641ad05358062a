import { AgentwallError } from "../errors.js";

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** Strict unpadded base64url decoding: Node's own decoder silently drops characters it does not know. */
export function fromBase64Url(text: string, what = "value"): Buffer {
  if (!BASE64URL.test(text) || text.length % 4 === 1) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `${what} is not valid base64url`);
  }
  const out = Buffer.from(text, "base64url");
  if (out.toString("base64url") !== text) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `${what} is not canonical base64url`);
  }
  return out;
}

/** Strict padded standard base64 decoding. */
export function fromBase64(text: string, what = "value"): Buffer {
  if (!BASE64.test(text)) throw new AgentwallError("ERR_INVALID_ARGUMENT", `${what} is not valid base64`);
  return Buffer.from(text, "base64");
}

/** Strict hex decoding. */
export function fromHex(text: string, what = "value"): Buffer {
  if (!HEX.test(text)) throw new AgentwallError("ERR_INVALID_ARGUMENT", `${what} is not valid hex`);
  return Buffer.from(text, "hex");
}

export function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}
