import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Constant-time equality of two byte strings of any lengths. `timingSafeEqual` throws on unequal
 * lengths, so both sides are hashed first; the length difference then leaks nothing either.
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  const ha = createHash("sha256").update(a).digest();
  const hb = createHash("sha256").update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}
