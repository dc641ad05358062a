import { asciiLetter } from "./normalize.js";

/**
 * Undoes the spellings that keep an instruction readable to a model but out of a rule's reach, in
 * place, so the words around stay its context: letters spaced out by one separator ("i.g.n.o.r.e"),
 * digits for letters inside a word ("1gn0re", "prev1ous"), and words joined by underscores or
 * capitals ("ignore_all_previous", "IgnoreAllPrevious") or run together ("ignoreallprevious"), and
 * instruction words in ROT13 or written backwards. Returns the text around each change, undone
 * (windows joined by "\n.\n"), or `undefined` when there is nothing to undo, so the rules read a second
 * time only what changed.
 *
 * Written here because no maintained library folds these (normalizers fold Unicode look-alikes, which
 * {@link normalize} does already). Every pattern is linear: single characters and bounded classes.
 */
export function deobfuscate(text: string): string | undefined {
  // Where the text changes; the rules then read only the text around those places, undone. A rule's
  // match spans under REACH characters of normalized text (bounded gaps, whitespace runs collapsed), so
  // one that takes in no change is in the text as it was, and has been read there.
  const changes: [number, number][] = [];
  const found = (re: RegExp) => {
    for (const m of text.matchAll(re)) changes.push([m.index, m.index + m[0].length]);
  };
  if (SEPARATED.test(text)) found(SPELLED);
  if (text.includes("_")) found(JOINED);
  if (CAMEL_HINT.test(text)) found(CAMEL);
  hyphenatedKeywords(text, changes);
  let wordEnd = 0; // each word is read once, however many places in it look like leet
  for (const m of text.matchAll(LEET_AT)) {
    if (m.index < wordEnd) continue;
    let [start, end] = [m.index, m.index + m[0].length];
    while (start > 0 && WORD_CHAR.test(text[start - 1] as string)) start--;
    while (end < text.length && WORD_CHAR.test(text[end] as string)) end++;
    wordEnd = end;
    if (leetWord(text.slice(start, end))) changes.push([start, end]);
  }
  // Instruction words in ROT13 or backwards (the text around them is deciphered), and override words
  // inside a run of letters (words written without spaces). One pass finds all three.
  const rot: [number, number][] = [];
  const back: [number, number][] = [];
  let runEnd = 0; // each run of letters is read once, however many override words it holds
  for (const m of text.matchAll(HINTS)) {
    if (m[1] !== undefined) rot.push([m.index, m.index + m[0].length]);
    else if (m[2] !== undefined) back.push([m.index, m.index + m[0].length]);
    else if (m.index >= runEnd) {
      let start = m.index;
      while (start > runEnd && asciiLetter(text.charCodeAt(start - 1))) start--;
      let end = m.index + m[0].length;
      while (end < text.length && asciiLetter(text.charCodeAt(end))) end++;
      runEnd = end;
      if (end - start >= 16 && end - start <= 120 && RUN_ON_OVERRIDE.test(text.slice(start, end)))
        changes.push([start, end]);
    }
  }
  const windows = around(text, changes).map(([start, end]) => undo(text.slice(start, end)));
  for (const [start, end] of around(text, rot)) windows.push(rot13(text.slice(start, end)));
  for (const [start, end] of around(text, back)) windows.push(backwards(text.slice(start, end)));
  return windows.length === 0 ? undefined : windows.join("\n.\n");
}

/** The text within REACH of each change, overlapping stretches merged, in order. */
function around(text: string, changes: [number, number][]): [number, number][] {
  changes.sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  let i = 0;
  while (i < changes.length) {
    const start = Math.max(0, (changes[i] as [number, number])[0] - REACH);
    let end = start;
    while (i < changes.length && (changes[i] as [number, number])[0] - REACH <= end)
      end = Math.max(end, (changes[i++] as [number, number])[1] + REACH);
    out.push([start, Math.min(text.length, end)]);
  }
  return out;
}

/** The override verbs looked for inside runs of letters. */
const OVERRIDE = "ignore|disregard|forget|bypass|override";

const rot13 = (text: string) =>
  text.replace(/[A-Za-z]/g, (c) => {
    const base = c <= "Z" ? 65 : 97;
    return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
  });
const backwards = (text: string) => Array.from(text).reverse().join("");
/**
 * The words an instruction or a leak request is made of in ROT13 (group 1) and written backwards
 * (group 2) — models read both ("vtaber nyy cerivbhf vafgehpgvbaf", "snoitcurtsni suoiverp lla
 * erongi"), and none is an English word — then the override words, wherever they stand.
 */
const HINTS = new RegExp(
  String.raw`\b(?:(vtaber|qvfertneq|sbetrg|bireevqr|vafgehpgvbaf?|cerivbhf|flfgrz cebzcg|cnffjbeq)|(erongi|dragersid|tegrof|edirrevo|snoitcurtsni|noitcurtsni|suoiverp|tpmorp metsys|drowssap))\b|${OVERRIDE}`,
  "gi",
);

/** How far around a change the rules read: longer than any rule's match. */
const REACH = 400;

function undo(text: string): string {
  return text
    .replace(SPELLED, (run) => run.replace(/[.\-_*/|\\]/g, ""))
    .replace(WORD, (word) => (leetWord(word) ? word.replace(/[013457$]/g, (c) => LEET[c] ?? c) : word))
    .replace(JOINED, (run) => run.replaceAll("_", " "))
    .replace(CAMEL, (run) => run.replace(/(?<=[a-z])(?=[A-Z])/g, " "))
    .replace(HYPHENATED, (word) => (splitKeyword(word) ? word.replaceAll("-", "") : word))
    .replace(RUN_ON, (run) => (RUN_ON_OVERRIDE.test(run) ? run.replace(RUN_ON_WORDS, " $& ") : run));
}

/**
 * A word with a digit or `$` standing for a letter: between two letters or before three ("prev1ous",
 * "1gnore"), at least 40 % letters ("1gn0r3", "pr3v10u5") and only those digits — not a number, a
 * version ("gpt4") or a hex string ("f3a9c2", "e4b1a0").
 */
function leetWord(word: string): boolean {
  if (!LEET_INSIDE.test(word) || /[2689]/.test(word) || /^[0-9A-Fa-f]+$/.test(word)) return false;
  return word.replace(/[^A-Za-z]/g, "").length >= 0.4 * word.length;
}

/** Separator, one character, the same separator: where {@link SPELLED} can match. */
const SEPARATED = /([.\-_*/|\\])[^\s.\-_*/|\\]\1/;
/**
 * Four or more single Latin letters, each after the same separator (longer runs in any script are
 * decoded by normalization as hidden payloads; Unicode classes made this pass 40 times slower).
 */
const SPELLED = /(?<![A-Za-z0-9])[A-Za-z]([.\-_*/|\\])[A-Za-z](?:\1[A-Za-z]){2,}(?![A-Za-z0-9])/g;
/** A word of ASCII letters, digits and `$` (leet spelling is a Latin-alphabet trick). */
const WORD = /[A-Za-z0-9$]{3,}/g;
const WORD_CHAR = /[A-Za-z0-9$]/;
/** Where a digit or `$` stands for a letter, found without reading every word. */
const LEET_AT = /[A-Za-z][013457$]+[A-Za-z]|(?<![A-Za-z0-9$])[013457$][A-Za-z]{3}/g;
/** The same, inside one word (its start is where the lookbehind holds). */
const LEET_INSIDE = new RegExp(LEET_AT.source);
const LEET: Readonly<Record<string, string>> = { "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", $: "s" };
/**
 * The places where an instruction word is cut into syllables by hyphens. Walked from each hyphen between
 * two letters (found with indexOf) rather than by a regex over the whole text, which cost 7-9 % of a 2 KB
 * prompt's scan.
 */
function hyphenatedKeywords(text: string, changes: [number, number][]): void {
  const inWord = (i: number) => asciiLetter(text.charCodeAt(i)) || text.charCodeAt(i) === 45;
  let done = 0;
  for (let at = text.indexOf("-"); at !== -1; at = text.indexOf("-", at + 1)) {
    if (at < done || !asciiLetter(text.charCodeAt(at - 1)) || !asciiLetter(text.charCodeAt(at + 1))) continue;
    let start = at - 1;
    while (start > 0 && inWord(start - 1)) start--;
    let end = at + 2;
    while (end < text.length && inWord(end)) end++;
    done = end;
    if (splitKeyword(text.slice(start, end))) changes.push([start, end]);
  }
}

/** A word cut by hyphens ("Ig-nore", "in-struc-tions"): letters on both sides of each. */
const HYPHENATED = /(?<![A-Za-z-])[A-Za-z]+(?:-[A-Za-z]+)+(?![A-Za-z-])/g;
/**
 * Whether a hyphenated word is an instruction word cut into syllables ("pre-vious", "in-struc-tions") —
 * not a compound ("e-mail", "well-known", "re-enter"), which reads as no such word without its hyphens.
 */
const splitKeyword = (word: string): boolean => word.length <= 40 && SPLIT_KEYWORDS.test(word.replaceAll("-", ""));
const SPLIT_KEYWORDS =
  /^(?:ignore|disregard|forget|bypass|override|previous|prior|instructions?|directives?|guidelines|system|prompt|reveal|jailbreak|unrestricted|uncensored)$/i;

/** Three words or more joined by underscores ("ignore_all_previous"; "user_id" is a name). */
const JOINED = /(?<![A-Za-z_])[A-Za-z]+(?:_[A-Za-z]+){2,}/g;
/**
 * A run of letters long enough to be words written without spaces ("ignoreallpreviousinstructions", as
 * left when zero-width spaces are removed); split at the words of an override only when it holds one
 * (found from the override words {@link HINTS} finds: this regex tried everywhere cost 20 ms on 3 MB).
 */
const RUN_ON = /(?<![A-Za-z])[A-Za-z]{16,120}(?![A-Za-z])/g;
const RUN_ON_OVERRIDE = new RegExp(`(?:${OVERRIDE}).*(?:instruction|rule|prompt|guideline|directive)`, "i");
const RUN_ON_WORDS = new RegExp(
  `${OVERRIDE}|previous|prior|above|earlier|your|the|all|any|instructions?|rules|prompt|system|guidelines|directives|and|reveal|print|show`,
  "gi",
);
/** Three capitalised words or more run together ("IgnoreAllPrevious"; "ChatGPT", "JavaScript" are names). */
const CAMEL = /(?<![A-Za-z])[A-Za-z][a-z]*(?:[A-Z][a-z]+){2,}/g;
/** In every match of {@link CAMEL}: looked for first, it costs a seventh of the lookbehind scan (1 against 7 us per KB of prose). */
const CAMEL_HINT = /[a-z][A-Z][a-z]/;
