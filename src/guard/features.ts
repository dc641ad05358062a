/**
 * Hashed features of a normalized text for the injection model: lower-cased word unigrams and bigrams
 * and character 3- to 5-grams inside words (with boundary marks), hashed (FNV-1a, 32-bit) into
 * `2^bits` buckets. Pure and deterministic: the training script and the runtime share this walk.
 * Hashes are computed over character codes in place (no substrings); text is split into words by code
 * point classes from a table (no regex match objects); the 4- and 5-grams extend the 3-gram's hash; and scoring
 * adds the weights as it goes instead of collecting the features first.
 */
export const FEATURE_BITS = 18;

const OFFSET = 0x811c9dc5;
const PRIME = 0x01000193;
const UNIGRAM_SEED = (OFFSET ^ 1) >>> 0;
const NGRAM_SEED = (OFFSET ^ 6) >>> 0;
const WORD = /[\p{L}\p{N}]+(?:['’][\p{L}]+)?|[^\s\p{L}\p{N}]/gu;
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
 * Occurrences of each token in the text being walked, by unigram hash: open addressing over 32,768
 * slots (a walk reads at most 20,000 characters, so at most that many tokens), entries of an earlier
 * walk told apart by a generation stamp. At most {@link TOKEN_PROBES} slots are tried: a token that
 * finds none counts as new (never capped), so an adversarial text stays linear.
 */
const TOKEN_SLOTS = 32768;
const TOKEN_PROBES = 16;
const tokenKeys = new Uint32Array(TOKEN_SLOTS);
const tokenStamps = new Uint32Array(TOKEN_SLOTS);
const tokenCounts = new Uint8Array(TOKEN_SLOTS);
let tokenGeneration = 0;
/** How many times the token with this unigram hash occurred before in this walk (and counts this one). */
function tokenCountBefore(unigram: number): number {
  let h = (unigram ^ (unigram >>> 15)) & (TOKEN_SLOTS - 1);
  for (let probe = 0; probe < TOKEN_PROBES; probe++) {
    if (tokenStamps[h] !== tokenGeneration) {
      tokenStamps[h] = tokenGeneration;
      tokenKeys[h] = unigram;
      tokenCounts[h] = 1;
      return 0;
    }
    if (tokenKeys[h] === unigram) {
      const c = tokenCounts[h] as number;
      if (c < 255) tokenCounts[h] = c + 1;
      return c;
    }
    h = (h + 1) & (TOKEN_SLOTS - 1);
  }
  return 0;
}

/**
 * One token, `s[start, start + length)`: its unigram, its bigram with the token before, its character
 * n-grams, written to `buf` from `n`. Returns the new count.
 */
function token(
  s: string,
  start: number,
  length: number,
  hasLetter: boolean,
  buf: Uint32Array,
  n: number,
  mask: number,
  previous: number,
): number {
  if (codes.length < length + 2) codes = new Int32Array(length * 2 + 2);
  const c0 = codes;
  let unigram = UNIGRAM_SEED;
  let bigram = Math.imul(previous ^ 32, PRIME) >>> 0;
  c0[0] = 94; // ^
  for (let i = 0; i < length; i++) {
    const c = s.charCodeAt(start + i);
    c0[i + 1] = c;
    unigram = Math.imul(unigram ^ c, PRIME) >>> 0;
    bigram = Math.imul(bigram ^ c, PRIME) >>> 0;
  }
  c0[length + 1] = 36; // $
  lastUnigram = unigram;
  if (tokenCountBefore(unigram) >= MAX_REPEATS) return n;
  buf[n++] = unigram & mask;
  buf[n++] = (bigram ^ 2) & mask;
  if (length < 2 || !hasLetter) return n;
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

/** Classes of code points, as the tokens of {@link WORD} need them. */
const LETTER = 1;
const NUMBER = 2;
const SPACE = 3;
const OTHER = 4;
/** Per UTF-16 code unit: its class (0: not looked at yet); a lone surrogate is {@link OTHER}. */
const UNIT_CLASS = new Uint8Array(65536);
const ASTRAL_CLASS = new Map<number, number>();
function classify(ch: string): number {
  return /^\p{L}$/u.test(ch) ? LETTER : /^\p{N}$/u.test(ch) ? NUMBER : /^\s$/u.test(ch) ? SPACE : OTHER;
}
/** Code units of the code point {@link classAt} last read. */
let width = 1;
/** The class of the code point at `i` of `s` (sets {@link width}). */
function classAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  const k = UNIT_CLASS[c] as number;
  if (k !== 0) {
    width = 1;
    return k;
  }
  return slowClassAt(s, i, c);
}
/** {@link classAt} for a unit not classified yet or a surrogate (astral code points are not cached per unit). */
function slowClassAt(s: string, i: number, c: number): number {
  width = 1;
  if (c >= 0xd800 && c <= 0xdbff) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) {
      width = 2;
      const cp = (c - 0xd800) * 0x400 + (d - 0xdc00) + 0x10000;
      let k = ASTRAL_CLASS.get(cp);
      if (k === undefined) {
        k = classify(String.fromCodePoint(cp));
        if (ASTRAL_CLASS.size < 65536) ASTRAL_CLASS.set(cp, k);
      }
      return k;
    }
    return OTHER; // a lone high surrogate
  }
  const k = classify(String.fromCharCode(c));
  UNIT_CLASS[c] = k;
  return k;
}

/**
 * Walks `text` into {@link scratch}; returns how many features it holds. The tokens are those of
 * {@link WORD}, found by code point classes from a table instead of regex matches (a text with one
 * curly quote or accented letter took the regex path: 220 against 34 us for 2 KB); `unicodePath`
 * walks with the regex, the reference the tests hold this walk to.
 */
function walk(text: string, bits: number, unicodePath: boolean): number {
  const mask = (1 << bits) - 1;
  if (++tokenGeneration === 2 ** 32) {
    tokenStamps.fill(0);
    tokenGeneration = 1;
  }
  const lower = text.slice(0, MAX_FEATURE_CHARS).toLowerCase();
  // At most: per word 2 + 3 * (length + 2) features; bounded by 14 per character plus 2 per word.
  if (scratch.length < lower.length * 16 + 16) scratch = new Uint32Array(lower.length * 16 + 16);
  const buf = scratch;
  let n = 0;
  let previous = (OFFSET ^ 0x5bd1e995) >>> 0;
  if (unicodePath) {
    for (const m of lower.matchAll(WORD)) {
      n = token(m[0], 0, m[0].length, HAS_LETTER.test(m[0]), buf, n, mask, previous);
      previous = (lastUnigram ^ 0x27d4eb2d) >>> 0;
    }
    return n;
  }
  // /[\p{L}\p{N}]+(?:['’][\p{L}]+)?|[^\s\p{L}\p{N}]/gu by code point classes.
  const length = lower.length;
  let i = 0;
  while (i < length) {
    const k = classAt(lower, i);
    if (k === SPACE) {
      i += width;
      continue;
    }
    const start = i;
    let hasLetter = k === LETTER;
    i += width;
    if (k === LETTER || k === NUMBER) {
      while (i < length) {
        const next = classAt(lower, i);
        if (next !== LETTER && next !== NUMBER) break;
        if (next === LETTER) hasLetter = true;
        i += width;
      }
      const quote = lower.charCodeAt(i);
      if ((quote === 39 || quote === 0x2019) && i + 1 < length && classAt(lower, i + 1) === LETTER) {
        i += 1 + width;
        hasLetter = true;
        while (i < length && classAt(lower, i) === LETTER) i += width;
      }
    }
    n = token(lower, start, i - start, hasLetter, buf, n, mask, previous);
    previous = (lastUnigram ^ 0x27d4eb2d) >>> 0;
  }
  return n;
}

/**
 * How many times one token counts in a text: from its ninth occurrence on, a token adds no feature (no
 * unigram, bigram or character n-gram). Counted without a cap, a list of quoted strings, an HTML table
 * or a Markdown table was its punctuation hundreds of times over, and the model took 13 of 342 chunks
 * of code and READMEs of packages it never trains on for attacks (as documents). Leave-one-source-out at
 * the fixed floor (throwaway sweep, 2026-11-29): token caps 2 / 4 / 8 / 16 caught 0.661 / 0.674 /
 * 0.681 / 0.682 of attacks at FPR 0.016 / 0.016 / 0.016 / 0.017 with 0 / 0 / 0 / 5 of those chunks
 * flagged, against 0.687 at 0.017 and 13 uncapped. Capping each feature instead (a byte per bucket,
 * cap 4: 0.678, 0) cost a random read and write per feature, the model's pass 1.7 times as long; a token
 * is counted once for all its features. A repetition attack is the repetition rule's (`injection.ts`).
 */
export const MAX_REPEATS = 8;

/**
 * Bucket indices of `text` (a feature seen twice counts twice; a token's from its first
 * {@link MAX_REPEATS} occurrences only), for training.
 * `unicodePath` splits words with the regex (the property test's reference for the class-table walk).
 */
export function hashedFeatures(text: string, bits = FEATURE_BITS, unicodePath = false): Uint32Array {
  // walk() first: it may replace `scratch` with a larger buffer, and `scratch.slice(0, walk(…))` took the
  // old one before the call — a text that grew the buffer got the previous text's features.
  const n = walk(text, bits, unicodePath);
  return scratch.slice(0, n);
}

/**
 * The linear model's raw score of `text` without its bias: the sum of the weights of its features
 * (repeats counted, a token's up to {@link MAX_REPEATS} times) over the square root of their number
 * (0 for a text without features).
 */
export function weightedFeatureSum(text: string, modelWeights: Float32Array | Int8Array, bits = FEATURE_BITS): number {
  const n = walk(text, bits, false);
  const buf = scratch;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += modelWeights[buf[i] as number] as number;
  return n === 0 ? 0 : sum / Math.sqrt(n);
}
