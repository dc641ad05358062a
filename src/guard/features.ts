/**
 * Hashed features of a normalized text for the injection model: lower-cased word unigrams and bigrams
 * and character 3- to 5-grams inside words (with boundary marks), hashed (FNV-1a, 32-bit) into
 * `2^bits` buckets. Pure and deterministic: the training script and the runtime share this function.
 */
export const FEATURE_BITS = 18;

function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?|[^\s\p{L}\p{N}]/gu;
const MAX_FEATURE_CHARS = 20_000;

/** Bucket indices (with repeats: a feature seen twice counts twice) of `text`. */
export function hashedFeatures(text: string, bits = FEATURE_BITS): Uint32Array {
  const mask = (1 << bits) - 1;
  const lower = text.slice(0, MAX_FEATURE_CHARS).toLowerCase();
  const out: number[] = [];
  let previous = "<s>";
  for (const m of lower.matchAll(WORD)) {
    const w = m[0];
    out.push(fnv1a(w, 1) & mask);
    out.push(fnv1a(`${previous} ${w}`, 2) & mask);
    previous = w;
    if (w.length >= 2 && /[\p{L}]/u.test(w)) {
      const padded = `^${w}$`;
      for (let n = 3; n <= 5; n++) {
        for (let i = 0; i + n <= padded.length; i++) out.push(fnv1a(padded.slice(i, i + n), 3 + n) & mask);
      }
    }
  }
  return Uint32Array.from(out);
}
