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
  buf[n++] = unigram & mask;
  buf[n++] = (bigram ^ 2) & mask;
  lastUnigram = unigram;
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
 * How many times one feature counts in a text. Counted without a cap, a list of quoted strings, an HTML
 * table or a Markdown table was its punctuation repeated hundreds of times, and the model took 13 of
 * 342 chunks of code and READMEs of packages it never trains on for attacks (as documents; 0 with caps
 * of 2 to 8). Leave-one-source-out at the fixed floor, caps 2 / 3 / 4 / 8 caught 0.665 / 0.674 / 0.678 /
 * 0.677 of attacks at FPR 0.015 / 0.016 / 0.016 / 0.016, against 0.687 at 0.017 uncapped (throwaway
 * sweep, 2026-11-29). A repetition attack is the repetition rule's (`injection.ts`).
 */
export const MAX_REPEATS = 4;

/**
 * Per bucket: `generation * 8 + occurrences` for the text walked last (one array read per feature;
 * three bits of count, so {@link MAX_REPEATS} stays below 8).
 */
let seen = new Uint32Array(0);
let generation = 0;

/** Drops, in place, the occurrences of a bucket after its {@link MAX_REPEATS}th; returns the new count. */
function capRepeats(n: number, bits: number): number {
  if (seen.length !== 1 << bits) {
    seen = new Uint32Array(1 << bits);
    generation = 0;
  }
  if (++generation >= 2 ** 29) {
    seen.fill(0);
    generation = 1;
  }
  const buf = scratch;
  const table = seen;
  const base = generation * 8;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    const k = buf[i] as number;
    const v = table[k] as number;
    const count = v >= base && v < base + 8 ? v - base : 0;
    if (count >= MAX_REPEATS) continue;
    table[k] = base + count + 1;
    buf[kept++] = k;
  }
  return kept;
}

/**
 * Bucket indices of `text` (a feature seen twice counts twice, up to {@link MAX_REPEATS}), for training.
 * `unicodePath` splits words with the regex (the property test's reference for the class-table walk).
 */
export function hashedFeatures(text: string, bits = FEATURE_BITS, unicodePath = false): Uint32Array {
  // walk() first: it may replace `scratch` with a larger buffer, and `scratch.slice(0, walk(…))` took the
  // old one before the call — a text that grew the buffer got the previous text's features.
  const n = capRepeats(walk(text, bits, unicodePath), bits);
  return scratch.slice(0, n);
}

/**
 * The linear model's raw score of `text` without its bias: the sum of the weights of its features
 * (repeats counted, up to {@link MAX_REPEATS}) over the square root of their number (0 for a text
 * without features).
 */
export function weightedFeatureSum(text: string, modelWeights: Float32Array, bits = FEATURE_BITS): number {
  const n = capRepeats(walk(text, bits, false), bits);
  const buf = scratch;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += modelWeights[buf[i] as number] as number;
  return n === 0 ? 0 : sum / Math.sqrt(n);
}
