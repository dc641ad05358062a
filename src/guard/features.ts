/**
 * Hashed features of a normalized text for the injection model: lower-cased word unigrams and bigrams
 * and character 3- to 5-grams inside words (with boundary marks), hashed (FNV-1a, 32-bit) into
 * `2^bits` buckets. Pure and deterministic: the training script and the runtime share this walk.
 * Hashes are computed over character codes in place (no substrings); ASCII text is split into words by
 * character codes (no regex match objects); the 4- and 5-grams extend the 3-gram's hash; and scoring
 * adds the weights as it goes instead of collecting the features first.
 */
export const FEATURE_BITS = 18;

const OFFSET = 0x811c9dc5;
const PRIME = 0x01000193;
const UNIGRAM_SEED = (OFFSET ^ 1) >>> 0;
const NGRAM_SEED = (OFFSET ^ 6) >>> 0;
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?|[^\s\p{L}\p{N}]/gu;
// Lower-cased text made only of code points below 128 (control characters included).
// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;
const HAS_LETTER = /\p{L}/u;
const MAX_FEATURE_CHARS = 20_000;

// Scratch space reused by every walk (walks are synchronous, one at a time): the characters of the
// current token with boundary marks, and the features found so far. Locals and parameters in the hot
// loops, not module variables: V8 keeps those in registers.
let codes = new Int32Array(256);
let scratch = new Uint32Array(4096);
/** The unigram hash of the token {@link token} last walked (the next token's bigram needs it). */
let lastUnigram = 0;

/**
 * One token, `s[start, start + length)`: its unigram, its bigram with the token before, its character
 * n-grams, written to `buf` from `n`. Returns the new count.
 */
function token(
  s: string,
  start: number,
  length: number,
  ascii: boolean,
  buf: Uint32Array,
  n: number,
  mask: number,
  previous: number,
): number {
  if (codes.length < length + 2) codes = new Int32Array(length * 2 + 2);
  const c0 = codes;
  let unigram = UNIGRAM_SEED;
  let bigram = Math.imul(previous ^ 32, PRIME) >>> 0;
  let letters = false;
  c0[0] = 94; // ^
  for (let i = 0; i < length; i++) {
    const c = s.charCodeAt(start + i);
    c0[i + 1] = c;
    if (c > 64) letters = true;
    unigram = Math.imul(unigram ^ c, PRIME) >>> 0;
    bigram = Math.imul(bigram ^ c, PRIME) >>> 0;
  }
  c0[length + 1] = 36; // $
  buf[n++] = unigram & mask;
  buf[n++] = (bigram ^ 2) & mask;
  lastUnigram = unigram;
  if (length < 2 || !letters || (!ascii && !HAS_LETTER.test(s.slice(start, start + length)))) return n;
  const total = length + 2;
  for (let i = 0; i + 3 <= total; i++) {
    let h = Math.imul(NGRAM_SEED ^ (c0[i] as number), PRIME);
    h = Math.imul(h ^ (c0[i + 1] as number), PRIME);
    h = Math.imul(h ^ (c0[i + 2] as number), PRIME);
    buf[n++] = h & mask;
    if (i + 4 > total) continue;
    h = Math.imul(h ^ (c0[i + 3] as number), PRIME);
    buf[n++] = h & mask;
    if (i + 5 > total) continue;
    h = Math.imul(h ^ (c0[i + 4] as number), PRIME);
    buf[n++] = h & mask;
  }
  return n;
}

const isAlnum = (c: number) => (c >= 97 && c <= 122) || (c >= 48 && c <= 57);
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);

/** Walks `text` into {@link scratch}; returns how many features it holds. */
function walk(text: string, bits: number, unicodePath: boolean): number {
  const mask = (1 << bits) - 1;
  const lower = text.slice(0, MAX_FEATURE_CHARS).toLowerCase();
  // At most: per word 2 + 3 * (length + 2) features; bounded by 14 per character plus 2 per word.
  if (scratch.length < lower.length * 16 + 16) scratch = new Uint32Array(lower.length * 16 + 16);
  const buf = scratch;
  let n = 0;
  let previous = (OFFSET ^ 0x5bd1e995) >>> 0;
  if (unicodePath || !ASCII.test(lower)) {
    for (const m of lower.matchAll(WORD)) {
      n = token(m[0], 0, m[0].length, false, buf, n, mask, previous);
      previous = (lastUnigram ^ 0x27d4eb2d) >>> 0;
    }
    return n;
  }
  // ASCII: the tokens of /[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]/g, found by character codes.
  const length = lower.length;
  let i = 0;
  while (i < length) {
    const c = lower.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    let end = i + 1;
    if (isAlnum(c)) {
      while (end < length && isAlnum(lower.charCodeAt(end))) end++;
      if (end + 1 < length && lower.charCodeAt(end) === 39) {
        const after = lower.charCodeAt(end + 1);
        if (after >= 97 && after <= 122) {
          end += 2;
          while (end < length && lower.charCodeAt(end) >= 97 && lower.charCodeAt(end) <= 122) end++;
        }
      }
    }
    n = token(lower, i, end - i, true, buf, n, mask, previous);
    previous = (lastUnigram ^ 0x27d4eb2d) >>> 0;
    i = end;
  }
  return n;
}

/**
 * Bucket indices (with repeats: a feature seen twice counts twice) of `text`, for training.
 * `unicodePath` walks ASCII text the general way (the property test's reference for the fast path).
 */
export function hashedFeatures(text: string, bits = FEATURE_BITS, unicodePath = false): Uint32Array {
  return scratch.slice(0, walk(text, bits, unicodePath));
}

/**
 * The linear model's raw score of `text` without its bias: the sum of the weights of its features
 * (repeats counted) over the square root of their number (0 for a text without features).
 */
export function weightedFeatureSum(text: string, modelWeights: Float32Array, bits = FEATURE_BITS): number {
  const n = walk(text, bits, false);
  const buf = scratch;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += modelWeights[buf[i] as number] as number;
  return n === 0 ? 0 : sum / Math.sqrt(n);
}
