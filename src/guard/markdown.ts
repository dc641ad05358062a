/**
 * Where a markdown text holds code — fenced and indented code blocks, inline code spans — which a
 * renderer shows as text: markup inside it is not active. Used by the output guard to leave alone an
 * answer that explains `<button onclick=…>`, so it must err one way only: whatever it calls code,
 * CommonMark (commonmark.js 0.31, the test oracle) renders as code, also where GitHub-flavoured tables
 * split a line into cells; where it cannot tell, it says not code and the markup is reported.
 *
 * The block structure follows commonmark.js's line-by-line algorithm (block quotes, list items with
 * their content columns and tabs, lazy paragraph continuation, fenced and indented code, the seven kinds
 * of HTML block, headings, thematic breaks). Inline parsing is followed as far as it decides where code
 * spans are: backslash escapes, backtick runs, autolinks and raw HTML (commonmark.js's own expressions),
 * brackets and inline links. What it does not follow it gives up on: a paragraph is "poisoned" (nothing
 * more in it is code) when a backtick run finds no closing run on its line within {@link REACH}
 * characters, when `<` starts no tag on its line within reach, when a bracket may be a reference link,
 * or when a link opened on one line may close on another; and a line holding `|` (a possible table row)
 * claims nothing after the `|`. The whole rest of the text is "lost" (nothing more is code) where the
 * block structure itself cannot be told from a line's first {@link HEAD} characters, or a setext
 * underline may follow link reference definitions.
 *
 * Why not a markdown library: markdown-it and commonmark.js give no source offsets for inline code and
 * re-parse the whole text on each call; a streamed answer needs each character judged once.
 *
 * Whether a character is code depends only on the text before it, the first {@link HEAD} characters of
 * its line and at most {@link REACH} characters after it. So a stream is judged incrementally: each
 * {@link MarkdownCode.append} judges every finished line once and commits what the unfinished one
 * already decides; the rest of it counts as not code until it is decided.
 */

/** How far after its start an inline construct (a code span, a tag, a link's destination) is followed. */
export const REACH = 256;
/** How much of a line decides which block it belongs to. */
const HEAD = 256;
/** Deeper nesting of block quotes and list items than this is not followed (the rest is lost). */
const MAX_CONTAINERS = 64;
/** More open brackets on one line than this poison the paragraph. */
const MAX_OPENERS = 256;

// The expressions below are commonmark.js's (lib/common.js, lib/blocks.js, lib/inlines.js; BSD-2-Clause).
const TAG_NAME = "[A-Za-z][A-Za-z0-9-]*";
const ATTRIBUTE = "(?:\\s+[a-zA-Z_:][a-zA-Z0-9:._-]*(?:\\s*=\\s*(?:[^\"'=<>`\\x00-\\x20]+|'[^']*'|\"[^\"]*\"))?)";
const OPEN_TAG = `<${TAG_NAME}${ATTRIBUTE}*\\s*/?>`;
const CLOSE_TAG = `</${TAG_NAME}\\s*[>]`;
const HTML_TAG = new RegExp(
  `^(?:${OPEN_TAG}|${CLOSE_TAG}|<!-->|<!--->|<!--[\\s\\S]*?-->|[<][?][\\s\\S]*?[?][>]|<![A-Za-z]+[^>]*>|<!\\[CDATA\\[[\\s\\S]*?\\]\\]>)`,
);
const EMAIL_AUTOLINK =
  /^<([a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*)>/;
// eslint-disable-next-line no-control-regex -- commonmark.js's expression: no control character in a URL
const AUTOLINK = /^<[A-Za-z][A-Za-z0-9.+-]{1,31}:[^<>\x00-\x20]*>/i;
const HTML_BLOCK_OPEN: readonly RegExp[] = [
  /^<(?:script|pre|textarea|style)(?:\s|>|$)/i,
  /^<!--/,
  /^<[?]/,
  /^<![A-Za-z]/,
  /^<!\[CDATA\[/,
  /^<[/]?(?:address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h[123456]|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|section|search|summary|table|tbody|td|tfoot|th|thead|title|tr|track|ul)(?:\s|[/]?[>]|$)/i,
];
/** Where the HTML blocks of kinds 1 to 5 end (the others end at a blank line). */
const HTML_BLOCK_CLOSE: readonly RegExp[] = [/<\/(?:script|pre|textarea|style)>/i, /-->/, /\?>/, />/, /\]\]>/];
/** Kind 7: a whole line that is one open or closing tag. */
const HTML_BLOCK_TAG = new RegExp(`^(?:${OPEN_TAG}|${CLOSE_TAG})`, "i");
/** The longest opening of kinds 1 to 6 the expressions above look at (`</blockquote/>` and one more). */
const HTML_BLOCK_OPEN_LOOK = 16;
/** A thematic break of `*`, `_` or `-`: what may still become one, and one. */
const THEMATIC_BREAK: Readonly<Record<number, readonly [RegExp, RegExp]>> = {
  42: [/^(?:\*[ \t]*)+$/, /^(?:\*[ \t]*){3,}$/],
  95: [/^(?:_[ \t]*)+$/, /^(?:_[ \t]*){3,}$/],
  45: [/^(?:-[ \t]*)+$/, /^(?:-[ \t]*){3,}$/],
};
/** What may follow "<" in a tag or URL autolink, and in an e-mail autolink. */
const TAG_START = /^[A-Za-z/!?]/;
const EMAIL_START = /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]/;
const MAYBE_SPECIAL = /^[#`~*+_=<>0-9-]/;
const ESCAPABLE = /^[!"#$%&'()*+,./:;<=>?@[\\\]^_`{|}~-]/;
const NON_SPACE = /[^ \t\f\v\r\n]/;

type Container = { readonly quote: true } | { readonly quote: false; readonly width: number; hasChild: boolean };

type Leaf =
  | { readonly kind: "paragraph"; poisoned: boolean; readonly bracket: boolean }
  | {
      readonly kind: "fence";
      readonly char: number;
      readonly length: number;
      /** Whether its lines are claimed: not when its opening line holds "|" (see planLine). */
      readonly claims: boolean;
    }
  | { readonly kind: "indented" }
  | { readonly kind: "html"; readonly close: RegExp | undefined };

/** What a line is, worked out from its start. */
interface Plan {
  readonly containers: Container[];
  readonly leaf: Leaf | undefined;
  /** `line`: the whole line is code; `inline`: its text from `from` is inline content; `none`: no code. */
  readonly claim: "none" | "line" | "inline";
  readonly from: number;
  /** Inline content of a heading (parsed on its own) rather than of the paragraph `leaf`. */
  readonly heading: boolean;
  /** Where the line's content starts after its containers (for the end of an HTML block). */
  readonly offset: number;
  /** Nothing from this line on can be judged. */
  readonly lost: boolean;
}

/**
 * Thrown inside line classification when the visible part of an unfinished line does not decide it.
 * One instance, made once: it is thrown on every undecided line end, and never leaves this module.
 */
class Undecided extends Error {}
const UNDECIDED = new Undecided("the line is not decided yet");

/** commonmark.js's position in a line: offsets, columns (tabs to multiples of 4), the next non-space. */
class Cursor {
  offset = 0;
  column = 0;
  partiallyConsumedTab = false;
  nextNonspace = 0;
  nextNonspaceColumn = 0;
  indent = 0;
  indented = false;
  blank = false;

  constructor(
    readonly line: string,
    /** Whether `line` is the whole line (else more of it may follow). */
    readonly complete: boolean,
  ) {}

  /** The character code at `pos`, -1 past the end of a whole line. */
  peek(pos: number): number {
    if (pos < this.line.length) return this.line.charCodeAt(pos);
    if (!this.complete) throw UNDECIDED;
    return -1;
  }

  /** True when the whole line is there to judge (else undecided). */
  whole(): true {
    if (!this.complete) throw UNDECIDED;
    return true;
  }

  findNextNonspace(): void {
    const line = this.line;
    let i = this.offset;
    let cols = this.column;
    for (;;) {
      const c = line.charCodeAt(i);
      if (c === 32) {
        i++;
        cols++;
      } else if (c === 9) {
        i++;
        cols += 4 - (cols % 4);
      } else break;
    }
    if (i >= line.length && !this.complete) throw UNDECIDED;
    this.blank = i >= line.length;
    this.nextNonspace = i;
    this.nextNonspaceColumn = cols;
    this.indent = cols - this.column;
    this.indented = this.indent >= 4;
  }

  advanceOffset(count: number, columns: boolean): void {
    const line = this.line;
    while (count > 0 && this.offset < line.length) {
      if (line.charCodeAt(this.offset) === 9) {
        const charsToTab = 4 - (this.column % 4);
        if (columns) {
          this.partiallyConsumedTab = charsToTab > count;
          const charsToAdvance = charsToTab > count ? count : charsToTab;
          this.column += charsToAdvance;
          this.offset += this.partiallyConsumedTab ? 0 : 1;
          count -= charsToAdvance;
        } else {
          this.partiallyConsumedTab = false;
          this.column += charsToTab;
          this.offset += 1;
          count -= 1;
        }
      } else {
        this.partiallyConsumedTab = false;
        this.offset += 1;
        this.column += 1;
        count -= 1;
      }
    }
  }

  advanceNextNonspace(): void {
    this.offset = this.nextNonspace;
    this.column = this.nextNonspaceColumn;
    this.partiallyConsumedTab = false;
  }
}

const isSpaceOrTab = (c: number): boolean => c === 32 || c === 9;

/**
 * Works out what one line is, given the open containers and leaf before it (commonmark.js's
 * `incorporateLine`). Throws {@link UNDECIDED} when `line` is not the whole line and what follows
 * could change the answer.
 */
function planLine(containersBefore: readonly Container[], leafBefore: Leaf | undefined, cursor: Cursor): Plan {
  const line = cursor.line;
  // Items change (a child is added), so they are copied; the caller keeps the old state until decided.
  const containers: Container[] = containersBefore.map((c) => (c.quote ? c : { ...c }));
  let leaf: Leaf | undefined = leafBefore;
  let matched = 0;
  for (const c of containers) {
    cursor.findNextNonspace();
    if (c.quote) {
      if (cursor.indented || cursor.peek(cursor.nextNonspace) !== 62) break;
      cursor.advanceNextNonspace();
      cursor.advanceOffset(1, false);
      if (isSpaceOrTab(cursor.peek(cursor.offset))) cursor.advanceOffset(1, true);
    } else if (cursor.blank) {
      if (!c.hasChild) break;
      cursor.advanceNextNonspace();
    } else if (cursor.indent >= c.width) cursor.advanceOffset(c.width, true);
    else break;
    matched++;
  }
  let leafMatched = false;
  if (matched === containers.length && leaf !== undefined) {
    cursor.findNextNonspace();
    switch (leaf.kind) {
      case "fence": {
        if (cursor.indent <= 3 && cursor.peek(cursor.nextNonspace) === leaf.char) {
          let end = cursor.nextNonspace;
          while (cursor.peek(end) === leaf.char) end++;
          if (end - cursor.nextNonspace >= leaf.length) {
            let after = end;
            while (isSpaceOrTab(cursor.peek(after))) after++;
            if (cursor.peek(after) === -1) {
              // The closing line: the fence ends, the line is not code.
              return plan(containers, undefined, "none", 0);
            }
          }
        }
        leafMatched = true;
        break;
      }
      case "indented":
        if (cursor.indent >= 4) {
          cursor.advanceOffset(4, true);
          leafMatched = true;
        } else if (cursor.blank) {
          cursor.advanceNextNonspace();
          leafMatched = true;
        }
        break;
      case "html":
        leafMatched = !(cursor.blank && leaf.close === undefined);
        break;
      case "paragraph":
        leafMatched = !cursor.blank;
        break;
    }
  }
  let allClosed = matched === containers.length && (leaf === undefined || leafMatched);
  let tipIsParagraph = leaf?.kind === "paragraph";
  let containerIsParagraph = leafMatched && leaf?.kind === "paragraph";
  let started = false;
  /** commonmark.js's closeUnmatchedBlocks: what did not continue ends, once something new starts. */
  const closeUnmatched = (): void => {
    if (started) return;
    started = true;
    allClosed = true;
    containers.length = matched;
    if (!leafMatched) leaf = undefined;
  };
  const addChild = (): void => {
    const parent = containers[containers.length - 1];
    if (parent !== undefined && !parent.quote) parent.hasChild = true;
  };
  let matchedLeaf = leafMatched && leaf?.kind !== "paragraph";
  let claim: Plan["claim"] = "none";
  let from = 0;
  let heading = false;
  let htmlOffset = cursor.offset;
  while (!matchedLeaf) {
    cursor.findNextNonspace();
    const at = cursor.nextNonspace;
    if (!cursor.indented && !MAYBE_SPECIAL.test(line.charAt(at))) {
      cursor.advanceNextNonspace();
      break;
    }
    const c = cursor.blank ? -1 : line.charCodeAt(at);
    // Block quote.
    if (!cursor.indented && c === 62) {
      cursor.advanceNextNonspace();
      cursor.advanceOffset(1, false);
      if (isSpaceOrTab(cursor.peek(cursor.offset))) cursor.advanceOffset(1, true);
      closeUnmatched();
      leaf = undefined; // the new container is the tip: the leaf before it ends
      addChild();
      if (containers.length >= MAX_CONTAINERS) return lostPlan();
      containers.push({ quote: true });
      tipIsParagraph = false;
      containerIsParagraph = false;
      continue;
    }
    // ATX heading.
    if (!cursor.indented && c === 35) {
      let end = at;
      while (cursor.peek(end) === 35) end++;
      const next = cursor.peek(end);
      if (end - at <= 6 && (next === -1 || isSpaceOrTab(next))) {
        closeUnmatched();
        leaf = undefined;
        addChild();
        claim = "inline";
        from = end;
        heading = true;
        matchedLeaf = true;
        break;
      }
    }
    // Fenced code.
    if (!cursor.indented && (c === 96 || c === 126)) {
      let end = at;
      while (cursor.peek(end) === c) end++;
      // A backtick fence's info string holds no backtick (to the end of the line).
      // Judged on the whole line, which decides whether its lines are claimed (below).
      if (end - at >= 3 && (c === 126 || !line.includes("`", end)) && cursor.whole()) {
        closeUnmatched();
        // markdown-it tries tables before fences: "```|" over a delimiter row is a table there.
        leaf = { kind: "fence", char: c, length: end - at, claims: !line.includes("|") };
        addChild();
        matchedLeaf = true;
        break;
      }
    }
    // HTML block.
    if (!cursor.indented && c === 60) {
      const s = line.slice(at);
      if (!cursor.complete && s.length < HTML_BLOCK_OPEN_LOOK) throw UNDECIDED;
      let kind = HTML_BLOCK_OPEN.findIndex((re) => re.test(s));
      if (kind < 0 && !containerIsParagraph && !(!allClosed && !cursor.blank && tipIsParagraph)) {
        const tag = HTML_BLOCK_TAG.exec(s);
        if (tag === null || /^\s*$/.test(s.slice(tag[0].length))) {
          if (!cursor.complete) throw UNDECIDED;
          if (tag !== null) kind = 6;
        }
      }
      if (kind >= 0) {
        closeUnmatched();
        leaf = { kind: "html", close: HTML_BLOCK_CLOSE[kind] };
        addChild();
        htmlOffset = cursor.offset;
        matchedLeaf = true;
        break;
      }
    }
    // Setext heading underline: the paragraph becomes a heading, its inline content unchanged.
    if (!cursor.indented && containerIsParagraph && (c === 61 || c === 45)) {
      const s = line.slice(at);
      if (/^(?:=+|-+)[ \t]*$/.test(s)) {
        if (!cursor.complete) throw UNDECIDED;
        // Link reference definitions at the paragraph's start are resolved first; if that is all it
        // held, the line is not an underline. Not followed.
        if (leaf?.kind === "paragraph" && leaf.bracket) return lostPlan();
        closeUnmatched();
        leaf = undefined;
        return plan(containers, undefined, "none", cursor.offset);
      }
    }
    // Thematic break.
    if (!cursor.indented && (c === 42 || c === 95 || c === 45)) {
      const s = line.slice(at);
      const [prefix, whole] = THEMATIC_BREAK[c] as [RegExp, RegExp];
      if (prefix.test(s)) {
        if (!cursor.complete) throw UNDECIDED;
        if (whole.test(s)) {
          closeUnmatched();
          leaf = undefined;
          addChild();
          return plan(containers, undefined, "none", cursor.offset);
        }
      }
    }
    // List item.
    if (!cursor.indented) {
      const width = listMarker(cursor, containerIsParagraph);
      if (width !== undefined) {
        closeUnmatched();
        leaf = undefined;
        addChild();
        if (containers.length >= MAX_CONTAINERS) return lostPlan();
        containers.push({ quote: false, width, hasChild: false });
        tipIsParagraph = false;
        containerIsParagraph = false;
        continue;
      }
    }
    // Indented code.
    if (cursor.indented && !tipIsParagraph && !cursor.blank) {
      cursor.advanceOffset(4, true);
      closeUnmatched();
      leaf = { kind: "indented" };
      addChild();
      claim = "line";
      matchedLeaf = true;
      break;
    }
    cursor.advanceNextNonspace();
    break;
  }
  if (claim === "none" && !matchedLeaf) {
    // A lazy continuation line: the paragraph goes on although its containers did not.
    if (!allClosed && !cursor.blank && tipIsParagraph) {
      return plan(containersBefore.slice(), leafBefore, "inline", cursor.offset);
    }
    closeUnmatched();
    // A matched paragraph takes the line (any other matched leaf took it above, as matchedLeaf).
    if (leafMatched && leaf !== undefined) return plan(containers, leaf, "inline", cursor.offset);
    if (cursor.blank) return plan(containers, undefined, "none", cursor.offset);
    addChild();
    const paragraph: Leaf = { kind: "paragraph", poisoned: false, bracket: line.charCodeAt(cursor.offset) === 91 };
    return plan(containers, paragraph, "inline", cursor.offset);
  }
  if (leafMatched && !started) {
    // A fence, an indented block or an HTML block going on (no new block started on the line).
    const claims = leaf?.kind === "indented" || (leaf?.kind === "fence" && leaf.claims);
    return plan(containers, leaf, claims ? "line" : "none", cursor.offset);
  }
  if (leaf?.kind === "html") return plan(containers, leaf, "none", htmlOffset);
  return { containers, leaf, claim, from, heading, offset: cursor.offset, lost: false };
}

const plan = (containers: Container[], leaf: Leaf | undefined, claim: Plan["claim"], offset: number): Plan => ({
  containers,
  leaf,
  claim,
  from: offset,
  heading: false,
  offset,
  lost: false,
});
const lostPlan = (): Plan => ({
  containers: [],
  leaf: undefined,
  claim: "none",
  from: 0,
  heading: false,
  offset: 0,
  lost: true,
});

/**
 * commonmark.js's parseListMarker: the width of the list item the line starts (its content column
 * relative to the container's), or undefined. Advances the cursor past the marker and its padding.
 */
function listMarker(cursor: Cursor, containerIsParagraph: boolean): number | undefined {
  const line = cursor.line;
  const at = cursor.nextNonspace;
  const c = line.charCodeAt(at);
  let markerLength: number;
  if (c === 42 || c === 43 || c === 45) markerLength = 1;
  else {
    let end = at;
    while (end - at < 10 && cursor.peek(end) >= 48 && cursor.peek(end) <= 57) end++;
    const digits = end - at;
    if (digits === 0 || digits > 9) return undefined;
    const delimiter = cursor.peek(end);
    if (delimiter !== 46 && delimiter !== 41) return undefined;
    if (containerIsParagraph && Number(line.slice(at, end)) !== 1) return undefined;
    markerLength = digits + 1;
  }
  const next = cursor.peek(at + markerLength);
  if (!(next === -1 || isSpaceOrTab(next))) return undefined;
  if (containerIsParagraph && !NON_SPACE.test(line.slice(at + markerLength))) {
    if (!cursor.complete) throw UNDECIDED;
    return undefined;
  }
  const markerOffset = cursor.indent;
  cursor.advanceNextNonspace();
  cursor.advanceOffset(markerLength, true);
  const spacesStartCol = cursor.column;
  const spacesStartOffset = cursor.offset;
  let nextc: number;
  do {
    cursor.advanceOffset(1, true);
    nextc = cursor.peek(cursor.offset);
  } while (cursor.column - spacesStartCol < 5 && isSpaceOrTab(nextc));
  const blankItem = cursor.peek(cursor.offset) === -1;
  const spacesAfterMarker = cursor.column - spacesStartCol;
  let padding: number;
  if (spacesAfterMarker >= 5 || spacesAfterMarker < 1 || blankItem) {
    padding = markerLength + 1;
    cursor.column = spacesStartCol;
    cursor.offset = spacesStartOffset;
    if (isSpaceOrTab(cursor.peek(cursor.offset))) cursor.advanceOffset(1, true);
  } else padding = markerLength + spacesAfterMarker;
  return markerOffset + padding;
}

/** An open `[` or `![` on the current line; `active` is unknown when a reference link may have closed it. */
interface Opener {
  readonly image: boolean;
  active: boolean | "unknown";
}

/** Inline scanning state of one line of a paragraph or heading. */
interface LineState {
  readonly openers: Opener[];
  /** A `|` was seen: nothing more on the line is claimed (a table row splits into cells there). */
  piped: boolean;
  poisoned: boolean;
}

/**
 * Scans `text[from, to)` (one line's inline content; `lineEnds`: the line ends at `to`) for code spans,
 * pushed to `claim` (offset by `base`). Without `lineEnds` it stops at the first thing the visible text
 * cannot decide and returns where; what it scanned is decided.
 */
function scanInline(
  text: string,
  from: number,
  to: number,
  lineEnds: boolean,
  state: LineState,
  claim: (start: number, end: number) => void,
): number {
  let i = from;
  while (i < to && !state.poisoned) {
    const c = text.charCodeAt(i);
    switch (c) {
      case 92: {
        // A backslash escapes the punctuation after it (a backtick, a bracket, a "<").
        if (i + 1 >= to) {
          if (!lineEnds) return i;
          i++;
        } else i += ESCAPABLE.test(text.charAt(i + 1)) ? 2 : 1;
        break;
      }
      case 124:
        state.piped = true;
        i++;
        break;
      case 96: {
        const found = codeSpan(text, i, to, lineEnds);
        if (found === undefined) return i;
        if (found < 0) {
          state.poisoned = true;
          break;
        }
        const content = text.slice(i, found);
        if (content.includes("|")) state.piped = true;
        else if (!state.piped) claim(i, found);
        i = found;
        break;
      }
      case 60: {
        if (i + 1 >= to) {
          if (!lineEnds) return i;
          i++;
          break;
        }
        const next = text.charAt(i + 1);
        if (!TAG_START.test(next) && !EMAIL_START.test(next)) {
          i++;
          break;
        }
        const s = text.slice(i, Math.min(to, i + REACH));
        const m = EMAIL_AUTOLINK.exec(s) ?? AUTOLINK.exec(s) ?? HTML_TAG.exec(s);
        if (m !== null) {
          if (m[0].includes("|")) state.piped = true;
          i += m[0].length;
        } else if (!lineEnds && to < i + REACH) return i;
        else if (TAG_START.test(next) || to >= i + REACH) {
          state.poisoned = true; // a tag may go on to the next line, or either may go on past reach
        } else i++; // an e-mail autolink ends on its line
        break;
      }
      case 33:
        if (i + 1 >= to && !lineEnds) return i;
        if (text.charCodeAt(i + 1) === 91) {
          if (!pushOpener(state, true)) break;
          i += 2;
        } else i++;
        break;
      case 91:
        if (!pushOpener(state, false)) break;
        i++;
        break;
      case 93: {
        const next = closeBracket(text, i, to, lineEnds, state);
        if (next === undefined) return i;
        i = next;
        break;
      }
      default:
        i++;
    }
  }
  if (lineEnds && state.openers.length > 0) state.poisoned = true; // a bracket may close on a later line
  return state.poisoned ? to : i;
}

function pushOpener(state: LineState, image: boolean): boolean {
  if (state.openers.length >= MAX_OPENERS) {
    state.poisoned = true;
    return false;
  }
  state.openers.push({ image, active: true });
  return true;
}

/**
 * The end of the code span opening at the backtick run at `i`, -1 when the paragraph must be given up
 * (no closing run on the line within reach: one may follow on a later line), undefined when the visible
 * text does not decide yet.
 */
function codeSpan(text: string, i: number, to: number, lineEnds: boolean): number | undefined {
  const limit = i + REACH;
  let run = i;
  while (run < to && text.charCodeAt(run) === 96) run++;
  if (run >= to && !lineEnds) return run >= limit ? -1 : undefined;
  const length = run - i;
  for (let j = text.indexOf("`", run); ;) {
    if (j < 0 || j >= to) return !lineEnds && to < limit ? undefined : -1;
    let k = j;
    while (k < to && text.charCodeAt(k) === 96) k++;
    if (k > limit) return -1;
    if (k >= to && !lineEnds) return undefined;
    if (k - j === length) return k;
    j = text.indexOf("`", k);
  }
}

/**
 * A `]` at `i`: a link closing (its destination skipped), a literal bracket, or a poisoned paragraph
 * where the outcome depends on link reference definitions. Returns where scanning goes on, undefined
 * when the visible text does not decide yet.
 */
function closeBracket(text: string, i: number, to: number, lineEnds: boolean, state: LineState): number | undefined {
  const opener = state.openers[state.openers.length - 1];
  if (opener === undefined) return i + 1;
  if (opener.active === false) {
    state.openers.pop();
    return i + 1;
  }
  if (opener.active === "unknown") {
    state.poisoned = true;
    return to;
  }
  if (i + 1 >= to && !lineEnds) return undefined;
  if (text.charCodeAt(i + 1) === 40) {
    const end = inlineLink(text, i + 2, to, lineEnds, i + REACH);
    if (end === undefined) return undefined;
    if (end === "poison") {
      state.poisoned = true;
      return to;
    }
    if (end !== "fail") {
      if (text.slice(i, end).includes("|")) state.piped = true;
      state.openers.pop();
      if (!opener.image) for (const o of state.openers) if (!o.image) o.active = false;
      return end;
    }
  }
  if (text.charCodeAt(i + 1) === 91) {
    // `[text][label]`: whether the label is consumed depends on definitions anywhere in the text.
    state.poisoned = true;
    return to;
  }
  // A shortcut reference link, if defined, would deactivate the brackets before it.
  state.openers.pop();
  if (!opener.image) for (const o of state.openers) if (!o.image && o.active === true) o.active = "unknown";
  return i + 1;
}

/**
 * commonmark.js's inline link after `](`: the end of the link, "fail" when it is not one, "poison" when
 * it could go on to the next line or past `limit`, undefined when the visible text does not decide.
 */
function inlineLink(
  text: string,
  p: number,
  to: number,
  lineEnds: boolean,
  limit: number,
): number | "fail" | "poison" | undefined {
  const end = lineEnds ? "poison" : undefined;
  const stop = Math.min(to, limit);
  const beyond = (q: number) => (q >= limit ? "poison" : end);
  // Spaces (a newline would go on to the next line).
  while (p < stop && text.charCodeAt(p) === 32) p++;
  if (p >= stop) return beyond(p);
  // The destination.
  if (text.charCodeAt(p) === 60) {
    let q = p + 1;
    for (;;) {
      if (q >= stop) return beyond(q);
      const c = text.charCodeAt(q);
      if (c === 62) break;
      if (c === 60) return "fail";
      if (c === 92) {
        if (q + 1 >= stop) return beyond(q + 1);
        q += 2;
      } else q++;
    }
    p = q + 1;
  } else {
    const start = p;
    let parens = 0;
    for (;;) {
      if (p >= stop) {
        // The destination ends with the line (a newline is whitespace), unless more text may follow.
        if (p >= limit) return "poison";
        if (!lineEnds) return undefined;
        break;
      }
      const c = text.charCodeAt(p);
      if (c === 92 && p + 1 < stop && ESCAPABLE.test(text.charAt(p + 1))) p += 2;
      else if (c === 92 && p + 1 >= stop) return beyond(p + 1);
      else if (c === 40) {
        parens++;
        p++;
      } else if (c === 41) {
        if (parens < 1) break;
        parens--;
        p++;
      } else if (c === 32 || c === 9 || c === 11 || c === 12 || c === 13) break;
      else p++;
    }
    if (p === start && text.charCodeAt(p) !== 41) return "fail";
    if (parens !== 0) return "fail";
  }
  const beforeSpaces = p;
  while (p < stop && text.charCodeAt(p) === 32) p++;
  if (p >= stop) return beyond(p);
  // An optional title after whitespace.
  const q = text.charCodeAt(p);
  if (p > beforeSpaces || /\s/.test(text.charAt(p - 1))) {
    if (q === 34 || q === 39 || q === 40) {
      const close = q === 40 ? 41 : q;
      let t = p + 1;
      let ok = true;
      for (;;) {
        if (t >= stop) return beyond(t);
        const c = text.charCodeAt(t);
        if (c === close) break;
        if (q === 40 && c === 40) {
          ok = false;
          break;
        }
        if (c === 92) {
          if (t + 1 >= stop) return beyond(t + 1);
          t += 2;
        } else t++;
      }
      if (ok) {
        p = t + 1;
        while (p < stop && text.charCodeAt(p) === 32) p++;
        if (p >= stop) return beyond(p);
      }
    }
  }
  return text.charCodeAt(p) === 41 ? p + 1 : "fail";
}

/**
 * The markdown code of a text read in pieces, as `[start, end)` ranges (see the module comment).
 *
 * @example
 * const code = new MarkdownCode().append("Use `<b>` for bold.", true);
 * code.covers(4, 7); // true: `<b>` is inside an inline code span
 */
export class MarkdownCode {
  /** Decided code ranges, sorted and disjoint (adjacent ones merged). */
  readonly #ranges: [number, number][] = [];
  #containers: Container[] = [];
  #leaf: Leaf | undefined;
  #lost = false;
  /** Characters read so far. */
  #length = 0;
  /** Start of the unfinished line. */
  #line = 0;
  /** Its first HEAD + 1 characters (what decides its kind). */
  #head = "";
  /** Its text from `#offset` on (inline scanning drops what it has committed). */
  #buf = "";
  #offset = 0;
  /** The unfinished line's plan, once its visible part decides it. */
  #plan: Plan | undefined;
  /** Inline scanning of the unfinished line: its state and where it has committed to. */
  #inline: LineState | undefined;
  #at = 0;
  /** A line ended with "\r": a "\n" right after it belongs to the same line ending. */
  #cr = false;
  /** The unfinished line as far as it is decided to be code (a code block's line). */
  #extra: [number, number] | undefined;
  #settled = true;

  /**
   * Reads the next piece of the text (`complete`: nothing follows). Work is linear in what is read:
   * whole lines are judged once, when they end.
   */
  append(chunk: string, complete = false): this {
    let rest = chunk;
    if (this.#cr && rest !== "") {
      this.#cr = false;
      if (rest.startsWith("\n")) {
        this.#line++;
        this.#offset++;
        this.#length++;
        rest = rest.slice(1);
      }
    }
    for (let end = rest.search(/[\r\n]/); end >= 0; end = rest.search(/[\r\n]/)) {
      this.#add(rest.slice(0, end));
      let terminator = 1;
      if (rest.charCodeAt(end) === 13) {
        if (end + 1 < rest.length) terminator = rest.charCodeAt(end + 1) === 10 ? 2 : 1;
        else this.#cr = true;
      }
      this.#finishLine(terminator);
      rest = rest.slice(end + terminator);
    }
    this.#add(rest);
    if (complete && this.#length > this.#line) this.#finishLine(0);
    this.#settled = false;
    return this;
  }

  /** Whether `[start, end)` lies wholly inside one code range of the text read so far. */
  covers(start: number, end: number): boolean {
    if (!this.#settled) this.#settle();
    const ranges = this.#ranges;
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((ranges[mid] as [number, number])[0] <= start) lo = mid + 1;
      else hi = mid - 1;
    }
    const found = ranges[hi];
    if (found !== undefined && end <= found[1]) return true;
    const extra = this.#extra;
    return extra !== undefined && start >= extra[0] && end <= extra[1];
  }

  #add(piece: string): void {
    if (piece === "") return;
    if (!this.#lost) {
      this.#buf += piece;
      if (this.#head.length <= HEAD) this.#head = (this.#head + piece).slice(0, HEAD + 1);
    }
    this.#length += piece.length;
  }

  #claim(start: number, end: number): void {
    const last = this.#ranges[this.#ranges.length - 1];
    if (last !== undefined && last[1] === start) last[1] = end;
    else this.#ranges.push([start, end]);
  }

  /** The unfinished line's plan, if its visible part (or, `complete`, the whole line) decides it. */
  #decide(complete: boolean): Plan | undefined {
    if (this.#plan !== undefined) return this.#plan;
    const head = this.#head;
    const whole = complete && head.length <= HEAD;
    try {
      this.#plan = planLine(this.#containers, this.#leaf, new Cursor(whole ? head : head.slice(0, HEAD), whole));
    } catch (e) {
      if (!(e instanceof Undecided)) throw e;
      // Undecided by its first HEAD characters: the structure from here on is not followed.
      if (complete || head.length > HEAD) this.#plan = lostPlan();
    }
    return this.#plan;
  }

  /** Ends the unfinished line (`terminator`: the length of its line ending). */
  #finishLine(terminator: number): void {
    const lineStart = this.#line;
    const contentEnd = this.#length;
    this.#length += terminator;
    if (!this.#lost) {
      const plan = this.#decide(true) as Plan;
      this.#apply(plan, lineStart, contentEnd, true);
    }
    this.#line = this.#length;
    this.#offset = this.#length;
    this.#buf = "";
    this.#head = "";
    this.#plan = undefined;
    this.#inline = undefined;
    this.#extra = undefined;
  }

  /** Applies a decided plan to the line: its code, and (when the line has ended) the new block state. */
  #apply(plan: Plan, lineStart: number, contentEnd: number, lineEnds: boolean): void {
    if (plan.lost) {
      this.#lost = true;
      this.#buf = "";
      return;
    }
    if (plan.claim === "line") {
      if (lineEnds) this.#claim(lineStart, this.#length);
      else this.#extra = [lineStart, contentEnd];
    } else if (plan.claim === "inline") {
      const paragraph = plan.leaf?.kind === "paragraph" && !plan.heading ? plan.leaf : undefined;
      if (this.#inline === undefined) {
        this.#inline = { openers: [], piped: false, poisoned: paragraph?.poisoned ?? false };
        this.#at = lineStart + plan.from;
      }
      const state = this.#inline;
      const base = this.#offset;
      const stop = scanInline(this.#buf, this.#at - base, contentEnd - base, lineEnds, state, (s, e) =>
        this.#claim(base + s, base + e),
      );
      this.#at = base + stop;
      // What is committed is not needed again: keep the undecided rest only.
      this.#buf = this.#buf.slice(stop);
      this.#offset = base + stop;
      if (lineEnds && paragraph !== undefined) paragraph.poisoned = state.poisoned;
    }
    if (!lineEnds) return;
    let leaf = plan.leaf;
    // The end marker may be anywhere on the line (kept whole: only inline scanning trims it).
    if (leaf?.kind === "html" && leaf.close !== undefined && leaf.close.test(this.#buf.slice(plan.offset))) {
      leaf = undefined;
    }
    this.#containers = plan.containers;
    this.#leaf = leaf;
  }

  /** Commits what the unfinished line already decides. */
  #settle(): void {
    this.#settled = true;
    this.#extra = undefined;
    if (this.#lost || this.#line >= this.#length) return;
    const plan = this.#decide(false);
    if (plan !== undefined) this.#apply(plan, this.#line, this.#length, false);
  }
}
