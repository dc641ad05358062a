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
  /** Not read: the work budget was spent (see {@link startTags}). */
  readonly unread?: boolean;
  /** Names lowercased, values with character references decoded. */
  readonly attributes: readonly (readonly [name: string, value: string])[];
}

const isSpace = (c: number): boolean => c === 9 || c === 10 || c === 12 || c === 13 || c === 32;
const isAlpha = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * Every start tag of `text`, in order of their `<`. Tags read from inside other tags would make the
 * work quadratic (`<a <a <a …`), so a tag that reaches the start of an attribute an earlier tag already
 * read from there stops: the attributes from there on are the earlier tag's, already judged (its end is
 * then that point); an `img`, `meta`, `link` or SVG `image`/`use` reads on, as its own name decides what its attributes mean. A work budget of {@link WORK_PER_CHARACTER} steps per character backs this up:
 * past it every further `<` before a letter is reported unread (`unread`), never silently passed.
 */
export function startTags(text: string): StartTag[] {
  const out: StartTag[] = [];
  const seen = new Uint8Array(text.length);
  const work = { left: WORK_PER_CHARACTER * text.length + 100_000 };
  for (let i = text.indexOf("<"); i >= 0; i = text.indexOf("<", i + 1)) {
    if (!isAlpha(text.charCodeAt(i + 1))) continue;
    if (work.left <= 0) {
      out.push({ name: "", start: i, end: i + 2, oversized: false, unread: true, attributes: [] });
      continue;
    }
    out.push(readTag(text, i, seen, work));
  }
  return out;
}

/** Tags whose findings depend on their own attributes, not only on each attribute alone. */
const OWN_ATTRIBUTES = new Set(["img", "meta", "link", "image", "use", "feimage"]);

/** Tokenizer steps allowed per character of the text, in all (see {@link startTags}). */
const WORK_PER_CHARACTER = 64;

type State = "name" | "beforeName" | "attrName" | "afterName" | "beforeValue" | "double" | "single" | "unquoted";

function readTag(text: string, start: number, seen: Uint8Array, work: { left: number }): StartTag {
  const limit = Math.min(text.length, start + MAX_TAG);
  const attributes: [string, string][] = [];
  let name = "";
  let attrName = "";
  let valueStart = -1;
  let state: State = "name";
  const endAttribute = (valueEnd: number) => {
    if (attrName === "") return;
    const raw = valueStart < 0 ? "" : text.slice(valueStart, valueEnd);
    attributes.push([attrName, raw === "" ? "" : decodeHTMLAttribute(raw)]);
    attrName = "";
    valueStart = -1;
  };
  let i = start + 1;
  for (; i < limit; i++) {
    const c = text.charCodeAt(i);
    work.left--;
    if ((state === "beforeName" || state === "afterName") && !isSpace(c) && c !== 47 && c !== 61 && c !== 62) {
      // An attribute starts here: if an earlier tag read one from here, the rest is its — unless this
      // tag's own name makes its attributes matter (an image's source, a meta's http-equiv).
      if (seen[i] === 1 && !OWN_ATTRIBUTES.has(name)) return done(name, start, i, false, attributes);
      seen[i] = 1;
    }
    switch (state) {
      case "name":
        if (isSpace(c)) state = "beforeName";
        else if (c === 47)
          state = "beforeName"; // "/": the self-closing state goes back to attribute names
        else if (c === 62) return done(name, start, i + 1, false, attributes);
        else name += String.fromCharCode(c).toLowerCase();
        break;
      case "beforeName":
        if (isSpace(c) || c === 47) break;
        if (c === 62) return done(name, start, i + 1, false, attributes);
        // "=" here starts a name holding it (a parse error the browser recovers from).
        attrName = String.fromCharCode(c).toLowerCase();
        state = "attrName";
        break;
      case "attrName":
        if (isSpace(c)) state = "afterName";
        else if (c === 47) {
          endAttribute(i);
          state = "beforeName";
        } else if (c === 61) state = "beforeValue";
        else if (c === 62) {
          endAttribute(i);
          return done(name, start, i + 1, false, attributes);
        } else attrName += String.fromCharCode(c).toLowerCase();
        break;
      case "afterName":
        if (isSpace(c)) break;
        if (c === 61) state = "beforeValue";
        else if (c === 62) {
          endAttribute(i);
          return done(name, start, i + 1, false, attributes);
        } else {
          endAttribute(i);
          if (c === 47) state = "beforeName";
          else {
            attrName = String.fromCharCode(c).toLowerCase();
            state = "attrName";
          }
        }
        break;
      case "beforeValue":
        if (isSpace(c)) break;
        if (c === 34) {
          state = "double";
          valueStart = i + 1;
        } else if (c === 39) {
          state = "single";
          valueStart = i + 1;
        } else if (c === 62) {
          endAttribute(i);
          return done(name, start, i + 1, false, attributes);
        } else {
          state = "unquoted";
          valueStart = i;
        }
        break;
      case "double":
      case "single":
        if (c === (state === "double" ? 34 : 39)) {
          endAttribute(i);
          // After a quoted value anything but ">" starts the next attribute, also with no space before it.
          state = "beforeName";
        }
        break;
      case "unquoted":
        if (isSpace(c)) {
          endAttribute(i);
          state = "beforeName";
        } else if (c === 62) {
          endAttribute(i);
          return done(name, start, i + 1, false, attributes);
        }
        break;
    }
  }
  // Cut by the end of the text (a page around the answer may close it) or too long: what was read counts.
  endAttribute(i);
  return done(name, start, limit, limit < text.length, attributes);
}

function done(
  name: string,
  start: number,
  end: number,
  oversized: boolean,
  attributes: readonly (readonly [string, string])[],
): StartTag {
  return { name, start, end, oversized, attributes };
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
