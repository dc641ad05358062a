import { CONFUSABLE, findHidden } from "./normalize.js";

/**
 * Where tokens (a canary, a value marked secret) appear in a text, also disguised: the comparison is on
 * a skeleton of the text — letters and digits only, lowercased, compatibility forms and accents
 * removed, look-alike letters of other scripts folded — so case changes, inserted spaces, dashes or
 * invisible characters (up to {@link GAP} between two characters: a token's own dashes spaced out
 * count too) and homoglyphs still match, as does the token written backwards or inside a base64, hex,
 * URL- or entity-encoded payload (decoded by {@link findHidden}). Tokens whose skeleton is shorter than
 * `minLength` are not looked for: short ones would match ordinary words.
 *
 * @example
 * findDisguised("key: A-W-C-A-N-A-R-Y-1-2-3-4", ["awcanary1234"], 8); // one span over the spaced token
 */
export function findDisguised(
  text: string,
  tokens: readonly string[],
  minLength: number,
): { token: number; start: number; end: number }[] {
  const forms: [number, string][] = [];
  tokens.forEach((t, token) => {
    const key = skeleton(t).chars;
    if (key.length >= minLength) forms.push([token, key], [token, [...key].reverse().join("")]);
  });
  if (forms.length === 0) return [];
  const out: { token: number; start: number; end: number }[] = [];
  const { chars, at } = skeleton(text);
  for (const [token, key] of forms) {
    for (let i = chars.indexOf(key); i !== -1; i = chars.indexOf(key, i + 1)) {
      const last = at[i + key.length - 1] as number;
      out.push({ token, start: at[i] as number, end: last + ((text.codePointAt(last) ?? 0) > 0xffff ? 2 : 1) });
    }
  }
  for (const hidden of findHidden(text)) {
    const decoded = skeleton(hidden.decoded).chars;
    const found = forms.find(([, key]) => decoded.includes(key));
    if (found !== undefined) out.push({ token: found[0], start: hidden.start, end: hidden.end });
  }
  return out;
}

/**
 * How far a disguised token may spread: each of its characters may be followed by this many others,
 * and take two code units. The streaming hold-back keeps {@link DISGUISE_SPREAD} characters per token
 * character.
 */
export const DISGUISE_SPREAD = 18;

/** At most this many other characters may stand between two characters of a disguised token. */
const GAP = 8;

/** The letters and digits of `text`, folded (see {@link findDisguised}), with where each came from. */
function skeleton(text: string): { chars: string; at: Int32Array } {
  let codes = new Uint16Array(text.length + 16);
  let at = new Int32Array(text.length + 16);
  let n = 0;
  const add = (code: number, from: number) => {
    if (n === codes.length) {
      // A code point may fold to several letters (a ligature): grow.
      const more = new Uint16Array(codes.length * 2);
      more.set(codes);
      codes = more;
      const moreAt = new Int32Array(at.length * 2);
      moreAt.set(at);
      at = moreAt;
    }
    codes[n] = code;
    at[n++] = from;
  };
  let gap = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    let kept = false;
    if (unit < 128) {
      const c = unit >= 65 && unit <= 90 ? unit + 32 : unit;
      if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
        add(c, i);
        kept = true;
      }
    } else {
      const cp = text.codePointAt(i) as number;
      const folded = foldCodePoint(cp);
      for (let j = 0; j < folded.length; j++) add(folded.charCodeAt(j), i);
      kept = folded.length > 0;
      if (cp > 0xffff) i++;
    }
    if (kept) gap = 0;
    else if (++gap === GAP + 1) add(124, i); // "|": too far apart to be one token
  }
  return { chars: new TextDecoder("utf-16le").decode(codes.subarray(0, n)), at: at.subarray(0, n) };
}

const FOLDED = new Map<number, string>();
/** A non-ASCII code point's letters and digits: look-alikes to Latin, compatibility forms and accents removed. */
function foldCodePoint(cp: number): string {
  let folded = FOLDED.get(cp);
  if (folded === undefined) {
    const c = String.fromCodePoint(cp);
    folded = [...(CONFUSABLE.get(c) ?? c).normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase()]
      .map((x) => CONFUSABLE.get(x)?.toLowerCase() ?? x)
      .join("")
      .replace(/[^a-z0-9]/g, "");
    if (FOLDED.size < 65_536) FOLDED.set(cp, folded);
  }
  return folded;
}
