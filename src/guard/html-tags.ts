import { decodeHTMLAttribute } from "entities";

/**
 * Start tags as a browser's tokenizer reads them (WHATWG HTML, §13.2.5 "tag open" to "self-closing
 * start tag"): attributes separated by whitespace, `/` or a closing quote, names lowercased, values
 * quoted or not, character references decoded as in an attribute. The output guard judges what an
 * answer would do if its HTML reached a browser, so it must read `<svg/onload=…>`,
 * `<img src="x"onerror=…>` and `href="jav&#x61;script:…"` as the browser does; regular expressions
 * over the raw text missed each of these.
 *
 * A tag is read from every `<` followed by a letter, also from inside another tag's attribute value:
 * whether that `<` is markup depends on the markdown around it (CommonMark passes some tags through
 * and escapes others), so both readings count. A tag not closed within {@link MAX_TAG} characters is
 * reported as such (what follows may still be one of its attributes); one cut by the end of the text
 * counts with what it has (the page the answer is put into may close it).
 */

/** The longest start tag followed; the streaming hold-back keeps 3,000 characters after a `<`. */
export const MAX_TAG = 2000;

export interface StartTag {
  readonly name: string;
  /** Offsets of the `<` and just past the `>` (or MAX_TAG past the `<` when it did not close). */
  readonly start: number;
  readonly end: number;
  /** Whether no `>` came within MAX_TAG characters (and the text goes on). */
  readonly oversized: boolean;
  /** Not read: the work budget was spent (see {@link forEachStartTag}). */
  readonly unread?: boolean;
  /** Names lowercased, values with character references decoded. */
  readonly attributes: readonly (readonly [name: string, value: string])[];
}

const isSpace = (c: number): boolean => c === 9 || c === 10 || c === 12 || c === 13 || c === 32;
const isAlpha = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * Visits every start tag of `text`, in order of their `<`. Tags read from inside other tags would make the
 * work quadratic (`<a <a <a …`), so a tag that reaches the start of an attribute an earlier tag already
 * read from there stops: the attributes from there on are the earlier tag's, already judged (its end is
 * then that point); an `img`, `meta`, `link` or SVG `image`/`use` reads on, as its own name decides what its attributes mean. A work budget of {@link WORK_PER_CHARACTER} steps per character backs this up:
 * past it every further `<` before a letter is reported unread (`unread`), never silently passed.
 */
export function forEachStartTag(text: string, visit: (tag: StartTag) => void): void {
  const seen = new Uint8Array(text.length);
  const work = { left: WORK_PER_CHARACTER * text.length + 100_000 };
  for (let i = text.indexOf("<"); i >= 0; i = text.indexOf("<", i + 1)) {
    if (!isAlpha(text.charCodeAt(i + 1))) continue;
    if (work.left <= 0) {
      visit({ name: "", start: i, end: i + 2, oversized: false, unread: true, attributes: [] });
      continue;
    }
    // Visited one at a time, not collected: a text of many tags then leaves little for the collector.
    visit(readTag(text, i, seen, work));
  }
}

/** Tags whose findings depend on their own attributes, not only on each attribute alone. */
const OWN_ATTRIBUTES = new Set(["img", "meta", "link", "image", "use", "feimage"]);

/** Tokenizer steps allowed per character of the text, in all (see {@link forEachStartTag}). */
const WORK_PER_CHARACTER = 64;

const NAME = 0;
const BEFORE_NAME = 1;
const ATTR_NAME = 2;
const AFTER_NAME = 3;
const BEFORE_VALUE = 4;
const DOUBLE = 5;
const SINGLE = 6;
const UNQUOTED = 7;

/**
 * Reads the start tag at `start` (a "<" before a letter). Names and values are sliced from the text
 * by index, not built a character at a time: a long text of tags is mostly this loop.
 */
function readTag(text: string, start: number, seen: Uint8Array, work: { left: number }): StartTag {
  const limit = Math.min(text.length, start + MAX_TAG);
  const tag = new TagReader(text, start);
  let state = NAME;
  let i = start + 1;
  for (; i < limit; i++) {
    const c = text.charCodeAt(i);
    work.left--;
    if ((state === BEFORE_NAME || state === AFTER_NAME) && !isSpace(c) && c !== 47 && c !== 61 && c !== 62) {
      // An attribute starts here: if an earlier tag read one from here, the rest is its — unless this
      // tag's own name makes its attributes matter (an image's source, a meta's http-equiv).
      if (seen[i] === 1 && !OWN_ATTRIBUTES.has(tag.name(i))) {
        tag.endAttribute(i);
        return tag.done(i, false, i);
      }
      seen[i] = 1;
    }
    switch (state) {
      case NAME:
        if (isSpace(c) || c === 47) {
          tag.nameEnd = i;
          state = BEFORE_NAME; // "/": the self-closing state goes back to attribute names
        } else if (c === 62) {
          tag.nameEnd = i;
          return tag.done(i + 1, false, i);
        }
        break;
      case BEFORE_NAME:
        if (isSpace(c) || c === 47) break;
        if (c === 62) return tag.done(i + 1, false, i);
        // "=" here starts a name holding it (a parse error the browser recovers from).
        tag.attrStart = i;
        state = ATTR_NAME;
        break;
      case ATTR_NAME:
        if (isSpace(c)) {
          tag.attrEnd = i;
          state = AFTER_NAME;
        } else if (c === 47) {
          tag.attrEnd = i;
          tag.endAttribute(i);
          state = BEFORE_NAME;
        } else if (c === 61) {
          tag.attrEnd = i;
          state = BEFORE_VALUE;
        } else if (c === 62) {
          tag.attrEnd = i;
          tag.endAttribute(i);
          return tag.done(i + 1, false, i);
        }
        break;
      case AFTER_NAME:
        if (isSpace(c)) break;
        if (c === 61) state = BEFORE_VALUE;
        else if (c === 62) {
          tag.endAttribute(i);
          return tag.done(i + 1, false, i);
        } else {
          tag.endAttribute(i);
          if (c === 47) state = BEFORE_NAME;
          else {
            tag.attrStart = i;
            state = ATTR_NAME;
          }
        }
        break;
      case BEFORE_VALUE:
        if (isSpace(c)) break;
        if (c === 34 || c === 39) {
          state = c === 34 ? DOUBLE : SINGLE;
          tag.valueStart = i + 1;
        } else if (c === 62) {
          tag.endAttribute(i);
          return tag.done(i + 1, false, i);
        } else {
          state = UNQUOTED;
          tag.valueStart = i;
        }
        break;
      case DOUBLE:
      case SINGLE:
        if (c === (state === DOUBLE ? 34 : 39)) {
          tag.endAttribute(i);
          // After a quoted value anything but ">" starts the next attribute, also with no space before it.
          state = BEFORE_NAME;
        }
        break;
      case UNQUOTED:
        if (isSpace(c)) {
          tag.endAttribute(i);
          state = BEFORE_NAME;
        } else if (c === 62) {
          tag.endAttribute(i);
          return tag.done(i + 1, false, i);
        }
        break;
    }
  }
  // Cut by the end of the text (a page around the answer may close it) or too long: what was read counts.
  tag.endAttribute(i);
  return tag.done(limit, limit < text.length, i);
}

/** What one start tag has read so far, as offsets into the text (sliced once, when a part ends). */
class TagReader {
  nameEnd = -1;
  attrStart = -1;
  attrEnd = -1;
  valueStart = -1;
  readonly attributes: [string, string][] = [];

  constructor(
    readonly text: string,
    readonly start: number,
  ) {}

  name(at: number): string {
    return this.text.slice(this.start + 1, this.nameEnd < 0 ? at : this.nameEnd).toLowerCase();
  }

  endAttribute(valueEnd: number): void {
    if (this.attrStart < 0) return;
    const attr = this.text.slice(this.attrStart, this.attrEnd < 0 ? valueEnd : this.attrEnd).toLowerCase();
    const raw = this.valueStart < 0 ? "" : this.text.slice(this.valueStart, valueEnd);
    this.attributes.push([attr, raw.includes("&") ? decodeHTMLAttribute(raw) : raw]);
    this.attrStart = -1;
    this.attrEnd = -1;
    this.valueStart = -1;
  }

  done(end: number, oversized: boolean, at: number): StartTag {
    return { name: this.name(at), start: this.start, end, oversized, attributes: this.attributes };
  }
}

/**
 * The scheme a URL attribute's value gives, as a browser's URL parser sees it: ASCII tab and newline
 * anywhere removed, leading C0 controls and spaces dropped, lowercased. Empty when it has none.
 */
export function urlScheme(value: string): string {
  // eslint-disable-next-line no-control-regex -- leading C0 controls are what a URL parser drops
  const cleaned = value.replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+/, "");
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(cleaned);
  return m === null ? "" : (m[1] as string).toLowerCase();
}
