import { unescape as percentDecoded } from "node:querystring";
import { base32 } from "@scure/base";

/** How a hidden payload was written. */
export const ENCODINGS = [
  "base64",
  "hex",
  "url",
  "html",
  "spaced",
  "escape",
  "binary",
  "decimal",
  "base32",
  "morse",
  "braille",
  "upside-down",
] as const;

/**
 * Normalization, once per text, shared by every scanner: Unicode NFKC, invisible and bidi-control
 * characters reported then removed, confusable letters folded inside words that mix scripts, runs of
 * whitespace collapsed, and payloads hidden in base64, hex, URL-encoding, HTML entities, string escapes
 * (`\u0069`, `\x69`) or spelled out decoded (bounded depth and size) so they are scanned too. `offsets`
 * maps every index of the normalized text back to the original, so findings point at what the caller
 * sent.
 */
export interface HiddenPayload {
  readonly encoding: (typeof ENCODINGS)[number];
  /** Span of the encoded text in the original. */
  readonly start: number;
  readonly end: number;
  readonly decoded: string;
}

export interface NormalizedText {
  readonly original: string;
  readonly text: string;
  /** offsets[i] is the index in `original` of `text[i]`; offsets[text.length] is original.length. */
  readonly offsets: Int32Array;
  /** Invisible characters removed (zero-width, tag characters, soft hyphens…), as original offsets. */
  readonly invisible: readonly number[];
  /** Bidirectional controls removed (overrides and isolates), as original offsets. */
  readonly bidi: readonly number[];
  /** How many letters were folded from look-alike scripts. */
  readonly confusables: number;
  /**
   * How many letters were read as the Latin letter they are drawn as and NFKC leaves alone (small
   * capitals, negative squared and circled capitals, regional indicators, Lisu and Cherokee capitals).
   */
  readonly styled: number;
  readonly hidden: readonly HiddenPayload[];
}

const MAX_DECODED_BYTES = 64 * 1024;
/** Whether a text is ASCII only (it takes normalization's fast path). */
// eslint-disable-next-line no-control-regex
export const ASCII_ONLY = /^[\x00-\x7f]*$/;
const MAX_PAYLOADS = 32;

function isInvisible(cp: number): boolean {
  return (
    cp === 0x00ad || // soft hyphen
    cp === 0x034f || // combining grapheme joiner
    cp === 0x061c ||
    cp === 0x115f ||
    cp === 0x1160 ||
    cp === 0x17b4 ||
    cp === 0x17b5 ||
    cp === 0x180e ||
    (cp >= 0x200b && cp <= 0x200f) || // zero-width space/joiners, LRM/RLM
    (cp >= 0x2060 && cp <= 0x2064) || // word joiner, invisible operators
    cp === 0x3164 ||
    cp === 0xfeff ||
    cp === 0xffa0 ||
    (cp >= 0xfe00 && cp <= 0xfe0f) || // variation selectors
    (cp >= 0xe0000 && cp <= 0xe007f) || // tag characters (ASCII smuggling)
    (cp >= 0xe0100 && cp <= 0xe01ef)
  );
}

function isBidi(cp: number): boolean {
  return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/** Letters of other scripts that look like Latin ones, to the Latin letter. */
export const CONFUSABLE: ReadonlyMap<string, string> = new Map(
  Object.entries({
    а: "a",
    в: "b",
    е: "e",
    к: "k",
    м: "m",
    н: "h",
    о: "o",
    р: "p",
    с: "c",
    т: "t",
    у: "y",
    х: "x",
    ѕ: "s",
    і: "i",
    ј: "j",
    ԁ: "d",
    ɡ: "g",
    һ: "h",
    ӏ: "l",
    ԛ: "q",
    ԝ: "w",
    ү: "y",
    А: "A",
    В: "B",
    Е: "E",
    К: "K",
    М: "M",
    Н: "H",
    О: "O",
    Р: "P",
    С: "C",
    Т: "T",
    У: "Y",
    Х: "X",
    Ѕ: "S",
    І: "I",
    Ј: "J",
    α: "a",
    ε: "e",
    ι: "i",
    κ: "k",
    ν: "v",
    ο: "o",
    ρ: "p",
    τ: "t",
    υ: "u",
    χ: "x",
    Α: "A",
    Β: "B",
    Ε: "E",
    Ζ: "Z",
    Η: "H",
    Ι: "I",
    Κ: "K",
    Μ: "M",
    Ν: "N",
    Ο: "O",
    Ρ: "P",
    Τ: "T",
    Υ: "Y",
    Χ: "X",
    // Armenian
    օ: "o",
    ս: "u",
    ո: "n",
    հ: "h",
    զ: "q",
    ց: "g",
  }),
);
const LATIN = /[A-Za-z]/;

/** Whether a UTF-16 code unit is an ASCII letter. */
export const asciiLetter = (code: number) => (code >= 97 && code <= 122) || (code >= 65 && code <= 90);
/** Combining marks of the general blocks (what zalgo text and strike-through stack on letters). */
function isCombiningMark(cp: number): boolean {
  return (
    (cp >= 0x0300 && cp <= 0x036f) ||
    (cp >= 0x1ab0 && cp <= 0x1aff) ||
    (cp >= 0x1dc0 && cp <= 0x1dff) ||
    (cp >= 0x20d0 && cp <= 0x20ff) ||
    (cp >= 0xfe20 && cp <= 0xfe2f)
  );
}

/**
 * Letters in another style that NFKC leaves alone, to the Latin letter: small capitals (also IPA
 * letters: scanned as Latin, the text itself is not changed), negative squared and negative circled
 * capitals (🅰, 🅐), regional indicators (🇦 — a flag is two of them).
 */
const STYLED = new Map<number, string>();
for (const [i, ch] of [..."ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡ\u0078ʏᴢ"].entries())
  if (ch !== "x") STYLED.set(ch.codePointAt(0) as number, String.fromCharCode(97 + i));
// Lisu letters and Cherokee letters shaped as Latin capitals (Unicode's confusables): Lisu and Cherokee
// are rare enough in what agents exchange that reading them as Latin for the scan costs nothing, and
// a word written in them is not mixed-script, so CONFUSABLE never folded it.
const LOOKALIKE_CAPITALS: readonly (readonly [number, string])[] = [
  // Lisu: BA PA DA TA GA KA JA CA DZA TSA MA NA LA SA ZHA HA XA WA SHA YA A E I O U
  ...[0xa4d0, 0xa4d1, 0xa4d3, 0xa4d4, 0xa4d6, 0xa4d7, 0xa4d9, 0xa4da, 0xa4dc, 0xa4dd, 0xa4df, 0xa4e0, 0xa4e1]
    .concat([0xa4e2, 0xa4e3, 0xa4e6, 0xa4e7, 0xa4ea, 0xa4eb, 0xa4ec, 0xa4ee, 0xa4f0, 0xa4f2, 0xa4f3, 0xa4f4])
    .map((cp, i) => [cp, "BPDTGKJCZFMNLSRVHWXYAEIOU".charAt(i)] as const),
  // Cherokee: A E I GI GO GU GV LA LU MI NAH NO SV DU TLE TLI TLV TSO YV DO
  ...[0x13a0, 0x13a1, 0x13a2, 0x13a9, 0x13aa, 0x13ab, 0x13ac, 0x13b3, 0x13b7, 0x13bb, 0x13c0, 0x13c3, 0x13d2]
    .concat([0x13da, 0x13de, 0x13df, 0x13e2, 0x13e6, 0x13f4, 0x13d9])
    .map((cp, i) => [cp, "DRTYAJEWMHGZRSLCPKBV".charAt(i)] as const),
];
for (const [cp, latin] of LOOKALIKE_CAPITALS) STYLED.set(cp, latin);
for (let k = 0; k < 26; k++) {
  STYLED.set(0x1f170 + k, String.fromCharCode(65 + k));
  STYLED.set(0x1f150 + k, String.fromCharCode(65 + k));
  STYLED.set(0x1f1e6 + k, String.fromCharCode(97 + k));
}

/** Normalizes `original`; see {@link NormalizedText}. */
export function normalize(original: string, depth = 2): NormalizedText {
  // Fast path, most prompts: ASCII only — NFKC changes nothing, nothing is invisible or a look-alike;
  // only whitespace runs collapse to one space.
  if (ASCII_ONLY.test(original)) {
    const offsets = new Int32Array(original.length + 1);
    let n = 0;
    let lastSpace = false;
    let text = "";
    let copyFrom = 0; // start of the stretch not yet copied to `text`
    for (let i = 0; i < original.length; i++) {
      const code = original.charCodeAt(i);
      const space = code === 32 || (code >= 9 && code <= 13);
      if (space && (lastSpace || code !== 32)) {
        // A whitespace run's later characters are dropped; a tab or newline becomes a space.
        text += original.slice(copyFrom, i);
        copyFrom = i + 1;
        if (!lastSpace) {
          text += " ";
          offsets[n++] = i;
        }
        lastSpace = true;
        continue;
      }
      lastSpace = space;
      offsets[n++] = i;
    }
    offsets[n] = original.length;
    return {
      original,
      text: copyFrom === 0 ? original : text + original.slice(copyFrom),
      offsets: offsets.subarray(0, n + 1),
      invisible: [],
      bidi: [],
      confusables: 0,
      styled: 0,
      hidden: depth > 0 ? findHidden(original, depth) : [],
    };
  }
  // General path: stretches that normalization leaves alone (ASCII, and other code points NFKC keeps
  // that are not spaces, look-alikes, invisible or bidi) are copied as slices; the rest one by one.
  let offsets = new Int32Array(original.length + 16);
  let n = 0;
  const offset = (at: number) => {
    if (n === offsets.length) {
      const grown = new Int32Array(offsets.length * 2);
      grown.set(offsets);
      offsets = grown;
    }
    offsets[n++] = at;
  };
  const invisible: number[] = [];
  const bidi: number[] = [];
  const lookalikes: number[] = []; // indexes in `text` of Cyrillic/Greek look-alike letters
  let styled = 0; // letters read through STYLED
  let text = "";
  let copyFrom = -1; // start in `original` of the stretch not yet copied
  let lastSpace = false;
  /** Whether the last character kept is an ASCII letter (read from `text` itself, each check copied it). */
  let latinBefore = false;
  const length = original.length;
  for (let i = 0; i < length;) {
    const unit = original.charCodeAt(i);
    if (unit < 0x80) {
      // ASCII: NFKC leaves it alone; only whitespace runs change.
      const space = unit === 32 || (unit >= 9 && unit <= 13);
      if (space && (lastSpace || unit !== 32)) {
        if (copyFrom >= 0) text += original.slice(copyFrom, i);
        copyFrom = -1;
        if (!lastSpace) {
          text += " ";
          offset(i);
        }
      } else {
        if (copyFrom < 0) copyFrom = i;
        offset(i);
      }
      lastSpace = space;
      latinBefore = asciiLetter(unit);
      i++;
      continue;
    }
    const cp = original.codePointAt(i) as number;
    const width = cp > 0xffff ? 2 : 1;
    if (unchanged(cp)) {
      if (copyFrom < 0) copyFrom = i;
      offset(i);
      if (width === 2) offset(i + 1);
      lastSpace = false;
      latinBefore = false;
      i += width;
      continue;
    }
    if (copyFrom >= 0) text += original.slice(copyFrom, i);
    copyFrom = -1;
    if (isInvisible(cp)) invisible.push(i);
    else if (isBidi(cp)) bidi.push(i);
    else if (isCombiningMark(cp) && latinBefore)
      invisible.push(i); // decoration on a Latin letter (zalgo, strike-through): reported, removed
    else {
      const latin = STYLED.get(cp);
      if (latin !== undefined) styled++;
      const piece = latin ?? nfkc(cp);
      latinBefore = false;
      for (const ch of piece) {
        const space = /\s/.test(ch);
        if (space && lastSpace) continue;
        lastSpace = space;
        latinBefore = asciiLetter(ch.charCodeAt(0));
        if (CONFUSABLE.has(ch)) lookalikes.push(text.length);
        text += space ? " " : ch;
        offset(i);
        if (ch.length === 2) offset(piece === ch && width === 2 ? i + 1 : i);
      }
    }
    i += width;
  }
  if (copyFrom >= 0) text += original.slice(copyFrom);
  offset(length);
  const folded = lookalikes.length === 0 ? { text, count: 0 } : foldLookalikes(text, lookalikes);
  return {
    original,
    text: folded.text,
    offsets: offsets.subarray(0, n),
    invisible,
    bidi,
    confusables: folded.count,
    styled,
    hidden: depth > 0 ? findHidden(original, depth) : [],
  };
}

/** NFKC of one code point, remembered: texts repeat their non-ASCII letters, and ICU calls cost. */
const NFKC_CACHE = new Map<number, string>();
function nfkc(cp: number): string {
  let piece = NFKC_CACHE.get(cp);
  if (piece === undefined) {
    piece = String.fromCodePoint(cp).normalize("NFKC");
    if (NFKC_CACHE.size >= 16_384) NFKC_CACHE.clear(); // bounded: at most 16,384 short strings
    NFKC_CACHE.set(cp, piece);
  }
  return piece;
}

/** Whether normalization leaves the code point as it is: NFKC keeps it, and it is no space, look-alike, invisible or bidi control. */
const UNCHANGED_CACHE = new Map<number, boolean>();
function unchanged(cp: number): boolean {
  let keep = UNCHANGED_CACHE.get(cp);
  if (keep === undefined) {
    const ch = String.fromCodePoint(cp);
    keep =
      !isInvisible(cp) &&
      !isBidi(cp) &&
      !isCombiningMark(cp) &&
      !STYLED.has(cp) &&
      nfkc(cp) === ch &&
      !/\s/.test(ch) &&
      !CONFUSABLE.has(ch);
    if (UNCHANGED_CACHE.size >= 16_384) UNCHANGED_CACHE.clear();
    UNCHANGED_CACHE.set(cp, keep);
  }
  return keep;
}

const WORD_LETTER = /[\p{L}\p{M}]/u;
/** The width (1 or 2 units) of the word letter ending just before `i` — ASCII letters, or any letter or mark beyond — or 0. */
function letterBefore(text: string, i: number): number {
  const unit = text.charCodeAt(i - 1);
  if (unit < 0x80) return (unit >= 97 && unit <= 122) || (unit >= 65 && unit <= 90) ? 1 : 0;
  const width = unit >= 0xdc00 && unit <= 0xdfff && i >= 2 ? 2 : 1;
  return WORD_LETTER.test(text.slice(i - width, i)) ? width : 0;
}
/** The width of the word letter starting at `i`, or 0. */
function letterAt(text: string, i: number): number {
  const unit = text.charCodeAt(i);
  if (unit < 0x80) return (unit >= 97 && unit <= 122) || (unit >= 65 && unit <= 90) ? 1 : 0;
  if (Number.isNaN(unit)) return 0;
  const width = unit >= 0xd800 && unit <= 0xdbff ? 2 : 1;
  return WORD_LETTER.test(text.slice(i, i + width)) ? width : 0;
}

/**
 * Folds look-alike letters only inside words that also hold Latin letters (mixed-script spoofing);
 * Russian or Greek text stays as it is. `at` lists the look-alikes' indexes (ascending); only their
 * words are looked at, in place (every look-alike and its fold are one UTF-16 unit).
 */
function foldLookalikes(text: string, at: readonly number[]): { text: string; count: number } {
  let out = "";
  let copied = 0;
  let count = 0;
  let doneUntil = -1;
  for (const position of at) {
    if (position < doneUntil) continue;
    let start = position;
    for (let w = letterBefore(text, start); start > 0 && w > 0; w = letterBefore(text, start)) start -= w;
    let end = position + 1;
    for (let w = letterAt(text, end); w > 0; w = letterAt(text, end)) end += w;
    doneUntil = end;
    const word = text.slice(start, end);
    if ([...word].length < 2 || !LATIN.test(word)) continue;
    let folded = "";
    for (const ch of word) {
      const latin = CONFUSABLE.get(ch);
      if (latin !== undefined) count++;
      folded += latin ?? ch;
    }
    out += text.slice(copied, start) + folded;
    copied = end;
  }
  return { text: count === 0 ? text : out + text.slice(copied), count };
}

const BASE64_AT = /(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])/y;
/** 1 for the characters of base64 and base64url (padding aside), by code unit below 128. */
const BASE64_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-") BASE64_CHAR[c.charCodeAt(0)] = 1;
const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);

/**
 * Runs of `min` (16) or more characters marked 1 in `table` (by code unit below 128), as `[start, end)`
 * pairs one after the other in one array. Found by probing every `min`th character: a run of `min`
 * covers the probe at the end of the window it starts in, so only the characters around a probe that
 * lands in one are read (prose is read about a third as often as by a character-by-character walk, and
 * a regular expression is not tried at every position). A plain loop filling an array: as a generator
 * it took twice as long (7.5 against 3.8 µs per 2 KB prompt).
 */
export function probedRuns(s: string, table: Uint8Array, min = 16): number[] {
  const runs: number[] = [];
  const n = s.length;
  let from = 0; // no run of `min` starts before this
  while (from + min <= n) {
    const probe = from + min - 1;
    let c = s.charCodeAt(probe);
    if (c >= 128 || table[c] === 0) {
      from = probe + 1;
      continue;
    }
    let start = probe;
    while (start > from && (c = s.charCodeAt(start - 1)) < 128 && table[c] === 1) start--;
    let end = probe + 1;
    while (end < n && (c = s.charCodeAt(end)) < 128 && table[c] === 1) end++;
    // `from` is 0 or just after a character outside the table, so the run starts at `start`.
    if (end - start >= min) runs.push(start, end);
    from = end + 1;
  }
  return runs;
}

/**
 * The matches of `/(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])/g`: such a match
 * can only start where a run of base64 characters starts, so the regex is tried (sticky) only at the
 * start of each run of 16 or more ({@link probedRuns}). The last text's matches are kept: one scan asks
 * twice (hidden payloads, encoded secrets), 4 µs per 2 KB prompt each time.
 */
export function base64Runs(s: string): readonly RegExpExecArray[] {
  if (s === lastBase64.text) return lastBase64.matches;
  const matches: RegExpExecArray[] = [];
  const runs = probedRuns(s, BASE64_CHAR);
  for (let i = 0; i < runs.length; i += 2) {
    BASE64_AT.lastIndex = runs[i] as number;
    const m = BASE64_AT.exec(s);
    if (m !== null) matches.push(Object.freeze(m));
  }
  lastBase64 = { text: s, matches: Object.freeze(matches) };
  return lastBase64.matches;
}
let lastBase64: { text: string; matches: readonly RegExpExecArray[] } = { text: "", matches: [] };

/** A line break between two lines of wrapped base64, indentation allowed. */
const WRAP = /^[ \t]*\r?\n[ \t]*$/;

/**
 * {@link base64Runs} grouped into blocks of wrapped lines: a run joins the one before it when only a
 * line break (and indentation) lies between and the one before is a whole number of base64 quanta
 * (a multiple of 4, unpadded) — how every wrapping encoder cuts lines.
 */
function base64Blocks(s: string): RegExpExecArray[][] {
  const blocks: RegExpExecArray[][] = [];
  let block: RegExpExecArray[] = [];
  for (const m of base64Runs(s)) {
    const previous = block[block.length - 1];
    if (
      previous !== undefined &&
      previous[0].length % 4 === 0 &&
      !previous[0].endsWith("=") &&
      m.index - (previous.index + previous[0].length) <= 40 &&
      WRAP.test(s.slice(previous.index + previous[0].length, m.index))
    )
      block.push(m);
    else {
      if (block.length > 0) blocks.push(block);
      block = [m];
    }
  }
  if (block.length > 0) blocks.push(block);
  return blocks;
}

/** 1 for hex digits, the space and the colon, by code unit below 128. */
const HEX_OR_SEPARATOR = new Uint8Array(128);
for (const c of "0123456789abcdefABCDEF :") HEX_OR_SEPARATOR[c.charCodeAt(0)] = 1;

/**
 * Whether `s` holds `count` hex digits in a row, single spaces or colons allowed between (HEX_RUN needs
 * 24). Such a row lies in a run of `count` or more hex digits and separators, so only those runs are
 * walked ({@link probedRuns}: the walk of every character cost 17 µs per 2 KB prompt).
 */
export function hexDigits(s: string, count: number): boolean {
  const runs = probedRuns(s, HEX_OR_SEPARATOR, count);
  for (let i = 0; i < runs.length; i += 2)
    if (hexDigitsIn(s, runs[i] as number, runs[i + 1] as number, count)) return true;
  return false;
}

function hexDigitsIn(s: string, start: number, end: number, count: number): boolean {
  let run = 0;
  let separator = false;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (isHex(c)) {
      if (++run >= count) return true;
      separator = false;
    } else if ((c === 32 || c === 58) && !separator && run > 0) separator = true;
    else {
      run = 0;
      separator = false;
    }
  }
  return false;
}
const HEX_RUN = /(?<![0-9A-Fa-fx])(?:0x)?(?:[0-9A-Fa-f]{2}[ :]?){12,}(?![0-9A-Fa-f])/g;
const HEX_BYTES_RUN = /(?<![0-9A-Za-z])0x[0-9A-Fa-f]{2}(?:,?[ \t\n]{0,2}0x[0-9A-Fa-f]{2}){7,}(?![0-9A-Fa-f])/g;
// Four escapes or more, words between them, and the word before the first (a query value:
// "ignore%20all%20previous%20instructions").
const URL_RUN = /(?:%[0-9A-Fa-f]{2}[^\s%]{0,32}){4,}/g;
/** Where the word before a URL-encoded run starts (at most 24 characters back), or the run itself. */
function wordBefore(text: string, at: number): number {
  const inWord = (i: number) => i > 0 && !URL_WORD_END.test(text[i - 1] as string);
  let start = at;
  while (inWord(start) && at - start < 24) start--;
  return inWord(start) ? at : start;
}
/** What ends the word before a URL-encoded run: a space, a query separator, a quote or a bracket. */
const URL_WORD_END = /[\s%=&?/#"'(]/;
const HTML_RUN = /(?:&(?:#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[a-zA-Z]{2,8});[^\s&]{0,3}){4,}/g;
// Single characters spaced out by one separator, the same throughout ("i-g-n-o-r-e", "\\I\\ \\h\\a\\v\\e"),
// and by spaces, with wider gaps between words ("i g n o r e   a l l").
// One character of a run: a code unit, or also a surrogate pair where the text holds one ("𝑰-𝒈-𝒏-𝒐…").
// Written without `u`: V8 ran these with `u` about ten times slower (33 against 2 us on a 2 KB prompt
// with dashes and dots); the pair-aware form costs more, so it is used only where a surrogate occurs.
// Both match what the `u` patterns matched (property test).
const PAIR = "[\\ud800-\\udbff][\\udc00-\\udfff]";
/** The separators (a class body): punctuation a reader skips between letters. */
const SEPARATORS = "\\\\/|.*_~+=:;,#!^\\-";
const runPatterns = (astral: boolean) => {
  const one = (cls: string) => (astral ? `(?:${PAIR}|${cls})` : cls);
  // Between the letters: one separator, or (where the text holds astral characters) an emoji or other
  // astral symbol ("i🙂g🙂n🙂o🙂r🙂e").
  const separator = astral ? `(${PAIR}|[${SEPARATORS}])` : `([${SEPARATORS}])`;
  return {
    separated: new RegExp(
      `(?<![^\\s${SEPARATORS}])${one(`[^${SEPARATORS}\\n]`)}${separator}(?:${one(`[^${SEPARATORS}\\n]`)}\\1){6,}${one(`[^${SEPARATORS}\\s]`)}?`,
      "g",
    ),
    spaced: new RegExp(`(?<!\\S)(?:${one("\\S")} {1,3}){7,}${one("\\S")}(?!\\S)`, "g"),
  };
};
const RUNS = runPatterns(false);
const RUNS_ASTRAL = runPatterns(true);
const SURROGATE = /[\ud800-\udfff]/;

/**
 * Runs of single characters spaced out by one separator (`separated`, the separator in group 1) and by
 * spaces (`spaced`), in order of kind then position.
 */
export function* spacedOutRuns(text: string): Generator<{ kind: "separated" | "spaced"; match: RegExpExecArray }> {
  const runs = SURROGATE.test(text) ? RUNS_ASTRAL : RUNS;
  for (const match of text.matchAll(runs.separated)) yield { kind: "separated", match };
  for (const match of text.matchAll(runs.spaced)) yield { kind: "spaced", match };
}
const LETTERS_4 = /(?:\p{L}[^\p{L}]*){4}/u;

/**
 * The text a base64 or base64url run (from {@link base64Runs}) encodes, if it is readable text. Base64
 * of text mixes cases or has digits: a run of one letter case is not worth decoding.
 */
export function base64Text(run: string): string | undefined {
  if (!/[0-9+/]/.test(run) && !(/[A-Z]/.test(run) && /[a-z]/.test(run))) return undefined;
  return readable(Buffer.from(run, run.includes("-") || run.includes("_") ? "base64url" : "base64"));
}

/**
 * The text a run of hex digits (from {@link base64Runs}: they are base64 characters too, "0x" allowed
 * before) encodes, if it is readable text; a hash or a random id decodes to bytes that are not.
 */
export function hexText(run: string): string | undefined {
  const hex = run.startsWith("0x") ? run.slice(2) : run;
  if (hex.length < 16 || hex.length % 2 !== 0 || !/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  return readable(Buffer.from(hex, "hex"));
}

/** Whether decoded bytes read as text (mostly printable UTF-8 with some letters). */
function readable(bytes: Buffer): string | undefined {
  const text = bytes.toString("utf8");
  if (text.includes("\uFFFD")) return undefined;
  let printable = 0;
  let letters = 0;
  for (const ch of text) {
    if (/[\p{L}\p{N}\p{P}\p{Zs}\n\t]/u.test(ch)) printable++;
    if (/\p{L}/u.test(ch)) letters++;
  }
  const n = [...text].length;
  return n >= 4 && printable / n >= 0.9 && letters / n >= 0.4 ? text : undefined;
}

const ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };

/** A `\uXXXX` or `\xXX` escape. */
const ESCAPE_HINT = /\\(?:u[0-9a-fA-F]{4}|u\{[0-9a-fA-F]{1,6}\}|x[0-9a-fA-F]{2}|[0-3]?[0-7]{2})/;
/** A string's worth of text that may hold escapes: up to a quote, a line break or a lone backslash at the end. */
const ESCAPE_RUN = /(?:\\[^\n]|[^\\"'\n])+/g;
const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  n: "\n",
  r: "\r",
  t: "\t",
  b: "\b",
  f: "\f",
  v: "\v",
  "0": "\0",
};
/** A run of {@link ESCAPE_RUN} as JSON or JavaScript reads it (a surrogate pair as two `\u` escapes). */
function unescapeRun(run: string): string {
  return run.replace(
    /\\(?:u([0-9a-fA-F]{4})|u\{([0-9a-fA-F]{1,6})\}|x([0-9a-fA-F]{2})|([0-3]?[0-7]{2})|([^\n]))/g,
    (_, u?: string, braced?: string, x?: string, octal?: string, c?: string) => {
      if (u !== undefined) return String.fromCharCode(parseInt(u, 16));
      if (braced !== undefined) return String.fromCodePoint(Math.min(parseInt(braced, 16), 0x10ffff));
      if (x !== undefined) return String.fromCharCode(parseInt(x, 16));
      if (octal !== undefined) return String.fromCharCode(parseInt(octal, 8));
      return SIMPLE_ESCAPES[c as string] ?? (c as string);
    },
  );
}

/** The payloads hidden in `original` (see {@link NormalizedText.hidden}), without normalizing the rest. */
export function findHidden(
  original: string,
  depth = 2,
  encodings?: ReadonlySet<HiddenPayload["encoding"]>,
): HiddenPayload[] {
  const out: HiddenPayload[] = [];
  const wanted = (encoding: HiddenPayload["encoding"]) => encodings === undefined || encodings.has(encoding);
  let budget = MAX_DECODED_BYTES;
  const push = (encoding: HiddenPayload["encoding"], start: number, end: number, decoded: string | undefined) => {
    if (decoded === undefined || out.length >= MAX_PAYLOADS || budget <= 0) return;
    // Scanned as normalized text: a payload of look-alike letters ("ℙⓌ𝑵") reads as what it spells.
    const text = normalize(decoded.slice(0, budget), 0).text;
    budget -= text.length;
    out.push({ encoding, start, end, decoded: text });
    // One more level: base64 inside base64, entities inside URL-encoding…
    if (depth > 1) for (const inner of findHidden(text, depth - 1)) out.push({ ...inner, start, end });
  };
  if (wanted("base64"))
    for (const block of base64Blocks(original)) {
      // Lines of wrapped base64 (MIME wraps at 76, PEM at 64) read as one text; lines that do not join
      // into readable text are read one by one.
      const joined = block.length > 1 ? base64Text(block.map((m) => m[0]).join("")) : undefined;
      const last = block[block.length - 1] as RegExpExecArray;
      if (joined !== undefined)
        push("base64", (block[0] as RegExpExecArray).index, last.index + last[0].length, joined);
      else for (const m of block) push("base64", m.index, m.index + m[0].length, base64Text(m[0]));
    }
  for (const m of wanted("hex") && hexDigits(original, 24) ? original.matchAll(HEX_RUN) : [])
    push("hex", m.index, m.index + m[0].length, hexText(m[0].replace(/[ :]/g, "")));
  // Bytes written as a C or Python array would hold them: "0x49, 0x67, 0x6e, …".
  for (const m of wanted("hex") && original.includes("0x") ? original.matchAll(HEX_BYTES_RUN) : [])
    push("hex", m.index, m.index + m[0].length, hexText(m[0].replace(/0x|[\s,]/g, "")));
  for (const m of wanted("url") && original.includes("%") ? original.matchAll(URL_RUN) : []) {
    const start = wordBefore(original, m.index);
    const run = original.slice(start, m.index + m[0].length);
    // Lenient, as a reader is: a malformed escape (a UTF-8 sequence cut short) stays as written and the
    // rest is decoded — decodeURIComponent threw on it, and one bad escape hid the whole run.
    push("url", start, m.index + m[0].length, percentDecoded(run.replaceAll("+", " ")));
  }
  for (const m of wanted("html") && original.includes("&") ? original.matchAll(HTML_RUN) : []) {
    const decoded = m[0].replace(/&(#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[a-zA-Z]{2,8});/g, (all, e: string) => {
      const cp = e.startsWith("#x") ? parseInt(e.slice(2), 16) : e.startsWith("#") ? Number(e.slice(1)) : undefined;
      if (cp !== undefined) return cp <= 0x10ffff ? String.fromCodePoint(cp) : all;
      return ENTITIES[e.toLowerCase()] ?? all;
    });
    push("html", m.index, m.index + m[0].length, decoded);
  }
  // String escapes (`\u0069gnore`, `\x67hp_…`): JSON as Python writes it by default escapes every non-ASCII
  // character, so a tool's result in another language reached the rules only as escapes.
  for (const m of wanted("escape") && ESCAPE_HINT.test(original) ? original.matchAll(ESCAPE_RUN) : [])
    if (ESCAPE_HINT.test(m[0])) push("escape", m.index, m.index + m[0].length, unescapeRun(m[0]));
  for (const { kind, match: m } of wanted("spaced") ? spacedOutRuns(original) : []) {
    const joined =
      kind === "separated"
        ? m[0].split(m[1] as string).join("")
        : m[0].replace(/ {2,}/g, "\0").replaceAll(" ", "").replaceAll("\0", " ");
    if (LETTERS_4.test(joined)) push("spaced", m.index, m.index + m[0].length, joined);
  }
  // The encodings of garak's encoding probes a model reads without help: bytes in binary or as decimal
  // character codes, base32, Morse code, Braille.
  for (const m of wanted("binary") && original.includes("00") ? original.matchAll(BINARY_RUN) : [])
    push(
      "binary",
      m.index,
      m.index + m[0].length,
      readable(Buffer.from((m[0].match(/[01]{8}/g) ?? []).map((b) => parseInt(b, 2)))),
    );
  for (const m of wanted("decimal") && DECIMAL_HINT.test(original) ? original.matchAll(DECIMAL_RUN) : [])
    push("decimal", m.index, m.index + m[0].length, readable(Buffer.from((m[0].match(/\d+/g) ?? []).map(Number))));
  for (const [start, end] of wanted("base32") ? base32Runs(original) : [])
    push("base32", start, end, base32Text(original.slice(start, end)));
  for (const m of wanted("morse") && MORSE_HINT.test(original) ? original.matchAll(MORSE_RUN) : [])
    push("morse", m.index, m.index + m[0].length, lettersOnly(morseText(m[0])));
  for (const m of wanted("braille") && BRAILLE_HINT.test(original) ? original.matchAll(BRAILLE_RUN) : [])
    push("braille", m.index, m.index + m[0].length, lettersOnly(brailleText(m[0])));
  for (const m of wanted("upside-down") && UPSIDE_DOWN_HINT.test(original) ? original.matchAll(UPSIDE_DOWN_LINE) : [])
    push("upside-down", m.index, m.index + m[0].length, lettersOnly(upsideDownText(m[0])));
  return out;
}

/** Bytes in binary: eight groups of eight bits or more, apart by a space or a comma or not at all. */
const BINARY_RUN = /(?<![01])[01]{8}(?:[ ,]?[01]{8}){7,}(?![01])/g;
/** Character codes in decimal (10, 32–126): eight or more, apart by spaces or commas. */
const DECIMAL_CODE = "(?:1[01]\\d|12[0-6]|[4-9]\\d|3[2-9]|10)";
const DECIMAL_RUN = new RegExp(`(?<![\\d.])(?:${DECIMAL_CODE}(?:, ?| )){7,}${DECIMAL_CODE}(?![\\d.])`, "g");
const DECIMAL_HINT = /\d\d[ ,]{1,2}\d\d[ ,]{1,2}\d\d[ ,]{1,2}\d\d/;
const BASE32_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") BASE32_CHAR[c.charCodeAt(0)] = 1;
const isAlphanumeric = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * Base32 runs (RFC 4648): sixteen or more upper-case letters and digits 2–7 ({@link probedRuns}; a
 * regular expression tried at every position cost 8–11 µs per 2 KB), up to six `=` after, not inside a
 * longer word — as `[start, end)`.
 */
function* base32Runs(s: string): Generator<[number, number]> {
  const runs = probedRuns(s, BASE32_CHAR);
  for (let i = 0; i < runs.length; i += 2) {
    const start = runs[i] as number;
    const end = runs[i + 1] as number;
    let padded = end;
    while (padded < s.length && padded - end < 6 && s.charCodeAt(padded) === 61) padded++;
    const after = s.charCodeAt(padded);
    if (!isAlphanumeric(s.charCodeAt(start - 1)) && !isAlphanumeric(after) && after !== 61) yield [start, padded];
  }
}
/** Morse code: ten letters or more of dots and dashes, apart by a space, words by a slash or three spaces. */
const MORSE_RUN = /(?<![.\-\w])(?:[.-]{1,6}(?: ?\/ ?| {1,3})){9,}[.-]{1,6}(?![.\-\w])/g;
const MORSE_HINT = /[.-]{2} [.-]/;
/** Braille patterns (U+2800–U+28FF), four or more. */
const BRAILLE_RUN = /[\u2800-\u28ff](?:[\u2800-\u28ff ]{0,3}[\u2800-\u28ff]){3,}/g;
const BRAILLE_HINT = /[\u2801-\u28ff]/;

/** The text a base32 run encodes, if it is readable. */
function base32Text(run: string): string | undefined {
  const body = run.replace(/=+$/, "");
  if (!/[2-7]/.test(body) || body.length % 8 === 1 || body.length % 8 === 3 || body.length % 8 === 6) return undefined;
  try {
    return readable(Buffer.from(base32.decode(body.padEnd(Math.ceil(body.length / 8) * 8, "="))));
  } catch {
    return undefined;
  }
}

const MORSE: Readonly<Record<string, string>> = Object.fromEntries(
  Object.entries({
    a: ".-",
    b: "-...",
    c: "-.-.",
    d: "-..",
    e: ".",
    f: "..-.",
    g: "--.",
    h: "....",
    i: "..",
    j: ".---",
    k: "-.-",
    l: ".-..",
    m: "--",
    n: "-.",
    o: "---",
    p: ".--.",
    q: "--.-",
    r: ".-.",
    s: "...",
    t: "-",
    u: "..-",
    v: "...-",
    w: ".--",
    x: "-..-",
    y: "-.--",
    z: "--..",
    0: "-----",
    1: ".----",
    2: "..---",
    3: "...--",
    4: "....-",
    5: ".....",
    6: "-....",
    7: "--...",
    8: "---..",
    9: "----.",
  }).map(([letter, code]) => [code, letter]),
);
/** Morse code as letters: a slash or three spaces between words. */
function morseText(run: string): string {
  return run
    .split(/ ?\/ ?| {3}/)
    .map((word) =>
      word
        .split(/ +/)
        .map((code) => MORSE[code] ?? "?")
        .join(""),
    )
    .join(" ");
}

/** Letters turned upside down (ɐ ǝ ɹ ʇ …; b, d, n, p, q, u turn into one another), back to the letter. */
const FLIPPED: Readonly<Record<string, string>> = {
  ɐ: "a",
  q: "b",
  ɔ: "c",
  p: "d",
  ǝ: "e",
  ɟ: "f",
  ƃ: "g",
  ɥ: "h",
  ᴉ: "i",
  ı: "i",
  ɾ: "j",
  ʞ: "k",
  ɯ: "m",
  u: "n",
  d: "p",
  b: "q",
  ɹ: "r",
  ʇ: "t",
  n: "u",
  ʌ: "v",
  ʍ: "w",
  ʎ: "y",
  "˙": ".",
  "¿": "?",
  "¡": "!",
};
/** Three letters only an upside-down text uses. */
const UPSIDE_DOWN_HINT = /(?:[ɐɔǝɟƃɥᴉɾʞɯɹʇʌʍʎ][^\n]*){3}/;
const UPSIDE_DOWN_LINE = /[^\n]*[ɐɔǝɟƃɥᴉɾʞɯɹʇʌʍʎ][^\n]*/g;
/** An upside-down line read the right way up: characters in reverse order, each turned back. */
function upsideDownText(line: string): string {
  return [...line]
    .reverse()
    .map((ch) => FLIPPED[ch] ?? ch)
    .join("");
}

/** Grade 1 Braille letters, by the pattern's dots (U+2800 + bits); the capital sign is dropped. */
const BRAILLE = new Map<number, string>(
  [1, 3, 9, 25, 17, 11, 27, 19, 10, 26, 5, 7, 13, 29, 21, 15, 31, 23, 14, 30, 37, 39, 58, 45, 61, 53].map((dots, i) => [
    0x2800 + dots,
    String.fromCharCode(97 + i),
  ]),
);
function brailleText(run: string): string {
  let out = "";
  for (const ch of run) {
    const code = ch.charCodeAt(0);
    if (code === 0x2800 || ch === " ") out += " ";
    else if (code !== 0x2820) out += BRAILLE.get(code) ?? "?";
  }
  return out;
}
/** The text when it is mostly letters (four or more, few unknown codes), else undefined. */
function lettersOnly(text: string): string | undefined {
  const unknown = text.split("?").length - 1;
  return LETTERS_4.test(text) && unknown * 10 <= text.length ? text.replaceAll("?", "") : undefined;
}

/** Maps a span of the normalized text back to the original. */
export function originalSpan(n: NormalizedText, start: number, end: number): { start: number; end: number } {
  const s = n.offsets[Math.min(start, n.text.length)] as number;
  const lastIndex = Math.max(start, end - 1);
  const lastChar = n.offsets[Math.min(lastIndex, n.text.length - 1)];
  if (end <= start || lastChar === undefined) return { start: s, end: s };
  const cp = n.original.codePointAt(lastChar) ?? 0;
  return { start: s, end: lastChar + (cp > 0xffff ? 2 : 1) };
}
