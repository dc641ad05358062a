import { entropy, type Finding } from "./finding.js";
import { findPii } from "./pii.js";
import { findSecrets } from "./secrets.js";

/**
 * Unsafe model output: active HTML (script, iframe, object/embed, event-handler attributes,
 * `javascript:` / `data:` / `vbscript:` URLs), markdown links and images whose URL carries data to a host
 * outside the allowlist (the exfiltration path of an injected model), and canary tokens (a marker put
 * into a system prompt; seeing it in an output means the prompt leaked).
 */
export interface OutputCheckOptions {
  /** Hosts markdown links and images may point at (exact, or `*.example.com`). Empty: none. */
  readonly allowedHosts?: readonly string[];
  readonly canaries?: readonly string[];
  /**
   * Whether markup inside markdown code — a fenced block or an inline code span — is text (default
   * true): a markdown renderer shows it escaped, so an answer explaining `<button onclick=…>` is not
   * active content. Set false where outputs are inserted as HTML. Canaries count everywhere.
   */
  readonly codeIsText?: boolean;
}

/** The longest inline code span recognised (on one line); longer backtick pairs are not code. */
const INLINE_CODE_SPAN = 200;
/** A fence line: indentation, three or more backticks or tildes, the rest of the line. */
const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)/;
/** A fence opening a list item: the marker, one to four spaces, the fence (content indented to it). */
const LIST_FENCE = /^( {0,3})([-+*]|(\d{1,9})[.)])( {1,4})(`{3,}|~{3,})(.*)/;
/** A fence line closing a fence: any indentation (judged against the fence's), the fence characters. */
const CLOSING = /^( *)(`{3,}|~{3,})/;
/** A line that may start an HTML block, behind any blockquote, list or indentation prefix. */
const HTML_BLOCK = /^[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t][ \t>]*)*<([A-Za-z][A-Za-z0-9-]*|\/|!--|!\[CDATA\[|!|\?)/;
/** Where the HTML blocks that do not end at a blank line end (CommonMark types 1 to 5). */
const HTML_BLOCK_END: Readonly<Record<string, RegExp>> = {
  script: /<\/script>/i,
  pre: /<\/pre>/i,
  style: /<\/style>/i,
  textarea: /<\/textarea>/i,
  "!--": /-->/,
  "?": /\?>/,
  "!": />/,
  "![CDATA[": /\]\]>/,
};

/** The state inline scanning carries from one line of a paragraph to the next. */
interface InlineState {
  tag: boolean;
  quote: string;
  link: number;
  linkQuote: string;
}
const freshInline = (): InlineState => ({ tag: false, quote: "", link: 0, linkQuote: "" });

/**
 * Where a text holds markdown code, as `[start, end)` ranges in order: fenced blocks and inline code
 * spans, which a markdown renderer shows as text. A subset of CommonMark that errs one way only:
 * whatever it calls code, CommonMark does too; where it cannot tell, it says not code (and the markup
 * is reported).
 *
 * - A fence opens on a line of at least three backticks or tildes indented at most three spaces (a
 *   backtick fence's info string holds no backtick); the code runs from the next line to a line with
 *   at least as many of the same character (included), or to the end. It also ends before a non-blank
 *   line indented less than the fence was (a fence in a list item ends with the item). A fence right
 *   after a list marker (`1. ```html`) opens with the item's content indentation (not after a
 *   paragraph line when the item is numbered other than 1: such a line cannot start a list). Fences
 *   behind `>` are not recognised.
 * - An inline span runs from a backtick run to the next run of the same length on the same line,
 *   at most {@link INLINE_CODE_SPAN} characters in all. A backtick escaped by a backslash, inside an
 *   HTML tag or autolink (`<…>`, also over several lines), or inside a link's destination and title
 *   (`](…)`) opens nothing.
 * - Inside an HTML block (a line starting with a tag, behind any `>` or list marker) nothing is code
 *   until a blank line, or until its end marker for `<script>`, `<pre>`, `<style>`, `<textarea>`,
 *   comments, processing instructions, declarations and CDATA.
 *
 * Whether a character is code depends only on the text before it and, for an inline span, on at most
 * {@link INLINE_CODE_SPAN} characters after it on its line. So a stream is judged incrementally: each
 * {@link append} commits what the text seen so far decides and the undecided tail (at most a few
 * hundred characters) is rescanned when asked, and what is still undecided counts as not code.
 */
export class MarkdownCode {
  /** Decided code ranges, sorted and disjoint. */
  readonly #ranges: [number, number][] = [];
  #fence: { char: string; length: number; indent: number; start: number } | undefined;
  #html: RegExp | "blank" | undefined;
  readonly #inline = freshInline();
  /** Characters read so far. */
  #length = 0;
  /** Start of the unfinished line. */
  #line = 0;
  /** Its first 256 characters (what decides its kind). */
  #head = "";
  /** Its text from `#offset` on: the whole line, or from `#at` once it is scanned as a paragraph. */
  #buf = "";
  #offset = 0;
  /** Where inline scanning of the unfinished line (a paragraph line) has committed to; -1: not begun. */
  #at = -1;
  #complete = false;
  /** Whether the last finished line was paragraph text (an ordered list item not numbered 1 cannot follow). */
  #paragraph = false;
  /** Code beyond the committed ranges (the open fence, decided spans of the unfinished line). */
  #extra: [number, number][] = [];
  #settled = true;

  /**
   * Reads the next piece of the text (`complete`: nothing follows). Work is linear in what is read:
   * whole lines are judged once, when they end.
   */
  append(chunk: string, complete = false): this {
    let rest = chunk;
    for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n")) {
      this.#add(rest.slice(0, nl + 1));
      this.#finishLine();
      rest = rest.slice(nl + 1);
    }
    this.#add(rest);
    if (complete && this.#length > this.#line) this.#finishLine();
    this.#complete = complete;
    this.#settled = false;
    return this;
  }

  /** Whether `[start, end)` lies wholly inside one code range of the text read so far. */
  covers(start: number, end: number): boolean {
    if (!this.#settled) this.#settle();
    const ranges = this.#ranges;
    // The last committed range starting at or before `start`.
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((ranges[mid] as [number, number])[0] <= start) lo = mid + 1;
      else hi = mid - 1;
    }
    const found = ranges[hi];
    if (found !== undefined && end <= found[1]) return true;
    return this.#extra.some(([s, e]) => start >= s && end <= e);
  }

  #add(piece: string): void {
    if (piece === "") return;
    this.#buf += piece;
    if (this.#head.length < 256) this.#head = (this.#head + piece).slice(0, 256);
    this.#length += piece.length;
  }

  #finishLine(): void {
    if (this.#at >= 0) {
      scanInline(
        this.#buf,
        this.#at - this.#offset,
        this.#buf.length,
        this.#inline,
        this.#ranges,
        "line",
        this.#offset,
      );
      this.#paragraph = true;
    } else this.#commitLine(this.#buf, this.#line, this.#length);
    this.#line = this.#length;
    this.#offset = this.#length;
    this.#buf = "";
    this.#head = "";
    this.#at = -1;
  }

  /** Works out the open fence's range and the decided spans of the unfinished line. */
  #settle(): void {
    this.#settled = true;
    const extra: [number, number][] = [];
    const fence = this.#fence;
    if (fence !== undefined) {
      // The open fence holds the finished lines, and the unfinished one once it is surely inside
      // (indented at least as much as the fence, so neither a line that ends it nor undecided).
      const head = this.#head;
      const inside =
        this.#line < this.#length && head.length >= fence.indent && /^ *$/.test(head.slice(0, fence.indent));
      const end = inside ? this.#length : this.#line;
      if (end > fence.start) extra.push([fence.start, end]);
    } else if (this.#html === undefined && !this.#complete && this.#line < this.#length) {
      extra.push(...this.#tail());
    }
    this.#extra = extra;
  }

  /**
   * The unfinished line: commits what is decided of a paragraph line, and returns the spans of the
   * rest as far as they are decided (not committed). A line that may still become a fence, an HTML
   * block or a blank line has no spans yet.
   */
  #tail(): [number, number][] {
    if (this.#at < 0) {
      const head = this.#head;
      if (
        /^\s*$/.test(head) ||
        POSSIBLE_FENCE.test(head) ||
        POSSIBLE_LIST_FENCE.test(head) ||
        HTML_BLOCK.test(head) ||
        HTML_PREFIX.test(head)
      )
        return [];
      this.#at = this.#line;
    }
    const stop = scanInline(
      this.#buf,
      this.#at - this.#offset,
      this.#buf.length,
      this.#inline,
      this.#ranges,
      "commit",
      this.#offset,
    );
    // What is committed is not needed again: keep the undecided rest only.
    this.#buf = this.#buf.slice(stop);
    this.#offset += stop;
    this.#at = this.#offset;
    const tentative: [number, number][] = [];
    scanInline(this.#buf, 0, this.#buf.length, { ...this.#inline }, tentative, "tentative", this.#offset);
    return tentative;
  }

  /** Judges one whole line. */
  #commitLine(line: string, lineStart: number, lineEnd: number): void {
    const blank = /^\s*$/.test(line);
    const fence = this.#fence;
    const paragraphBefore = this.#paragraph;
    this.#paragraph = false;
    if (fence !== undefined) {
      // Closing early is safe (what follows is judged as markup): any closing run indented at most
      // three spaces past the fence's content closes it.
      const close = CLOSING.exec(line);
      if (
        close !== null &&
        (close[1] as string).length <= Math.max(3, fence.indent + 3) &&
        close[2]?.[0] === fence.char &&
        close[2].length >= fence.length
      ) {
        if (lineEnd > fence.start) this.#ranges.push([fence.start, lineEnd]);
        this.#fence = undefined;
        return;
      }
      if (blank || (/^ */.exec(line) as RegExpExecArray)[0].length >= fence.indent) return;
      // Indented less than the fence: the list item holding it may have ended; this line is not code.
      if (lineStart > fence.start) this.#ranges.push([fence.start, lineStart]);
      this.#fence = undefined;
    }
    if (this.#html !== undefined) {
      if (this.#html === "blank" ? blank : this.#html.test(line)) this.#html = undefined;
      return;
    }
    if (!blank) {
      const opened = openingFence(line, paragraphBefore);
      const block = opened === undefined ? HTML_BLOCK.exec(line) : null;
      // The opening line itself is not counted: its info string is judged whole, and is rarely markup.
      if (opened !== undefined) this.#fence = { ...opened, start: lineEnd };
      else if (block !== null) {
        const end = HTML_BLOCK_END[(block[1] as string).toLowerCase()];
        // A block ending on its own first line (`<!-- note -->`) is over; the others run on.
        if (end === undefined) this.#html = "blank";
        else if (!end.test(line.slice(block[0].length))) this.#html = end;
      } else {
        scanInline(line, 0, line.length, this.#inline, this.#ranges, "line", lineStart);
        this.#paragraph = true;
        return;
      }
    }
    // A blank line, a fence or an HTML block ends the paragraph and whatever it left open.
    Object.assign(this.#inline, freshInline());
  }
}

/**
 * The fence a line opens, or undefined: a plain one, or one right after a list marker (`1. ```html`),
 * whose content is indented past the marker. An ordered item not numbered 1 cannot interrupt a
 * paragraph: after a paragraph line it is text. A backtick fence's info string holds no backtick.
 */
function openingFence(
  line: string,
  paragraphBefore: boolean,
): { char: string; length: number; indent: number } | undefined {
  let indent: number;
  let run: string;
  let info: string;
  const plain = FENCE.exec(line);
  if (plain !== null) [indent, run, info] = [(plain[1] as string).length, plain[2] as string, plain[3] as string];
  else {
    const item = LIST_FENCE.exec(line);
    if (item === null || (item[3] !== undefined && Number(item[3]) !== 1 && paragraphBefore)) return undefined;
    indent = (item[1] as string).length + (item[2] as string).length + (item[4] as string).length;
    [run, info] = [item[5] as string, item[6] as string];
  }
  if (run[0] === "`" && info.includes("`")) return undefined;
  return { char: run[0] as string, length: run.length, indent };
}

/** The start of a line that is or may still become a fence line. */
const POSSIBLE_FENCE = /^ {0,3}(?:`{3,}|~{3,}|`{0,2}$|~{0,2}$)/;
/** The same behind a list marker. */
const POSSIBLE_LIST_FENCE = /^ {0,3}(?:[-+*]|\d{1,9}[.)]) {1,4}(?:`{3,}|~{3,}|`{0,2}$|~{0,2}$)/;
/** The start of a line that may still turn out to open an HTML block (only prefix characters yet). */
const HTML_PREFIX = /^[ \t>]*(?:(?:[-+*]|\d{1,9}[.)])[ \t][ \t>]*)*(?:[-+*]|\d{1,9}[.)]?)?$/;

/**
 * Scans `text[from, to)` of one line for inline code spans, appended to `into` (offset by `base`);
 * `state` carries what an earlier line of the paragraph left open (an HTML tag and a quoted value in
 * it, a link destination).
 * `mode`: `line` — the line ends at `to`; `commit` — the line goes on past the visible `to`, so stop
 * at the first thing the text so far cannot decide and return where; `tentative` — the same, but count
 * what is undecided as no span and go on. Returns where scanning stopped.
 */
function scanInline(
  text: string,
  from: number,
  to: number,
  state: InlineState,
  into: [number, number][],
  mode: "line" | "commit" | "tentative",
  base: number,
): number {
  const open = mode !== "line"; // the line goes on after `to`
  let i = from;
  while (i < to) {
    const c = text[i] as string;
    if (state.tag) {
      if (state.quote !== "") {
        if (c === state.quote) state.quote = "";
      } else if (c === '"' || c === "'") state.quote = c;
      else if (c === ">") state.tag = false;
      i++;
      continue;
    }
    if (state.link > 0) {
      if (state.linkQuote !== "") {
        if (c === state.linkQuote) state.linkQuote = "";
      } else if (c === '"' || c === "'") state.linkQuote = c;
      else if (c === "\\") {
        if (open && i + 1 >= to && mode === "commit") return i;
        i++;
      } else if (c === "(") state.link++;
      else if (c === ")") state.link--;
      i++;
      continue;
    }
    if ((c === "\\" || c === "<" || c === "]") && open && i + 1 >= to) {
      if (mode === "commit") return i;
      break;
    }
    if (c === "\\") {
      i += 2;
      continue;
    }
    if (c === "<" && /[A-Za-z/!?]/.test(text[i + 1] ?? "")) {
      state.tag = true;
      i++;
      continue;
    }
    if (c === "]" && text[i + 1] === "(") {
      state.link = 1;
      i += 2;
      continue;
    }
    if (c !== "`") {
      i++;
      continue;
    }
    let run = i;
    while (run < to && text.charCodeAt(run) === 96) run++;
    const length = run - i;
    // The next run of exactly `length` backticks on the line, within reach; `undecided` when the text
    // ends first (a run touching the end may still grow).
    let close = -1;
    let undecided = open && run >= to;
    for (let j = text.indexOf("`", run); !undecided; j = text.indexOf("`", j)) {
      if (j < 0 || j >= to) {
        undecided = open && to - i < INLINE_CODE_SPAN;
        break;
      }
      if (j + length - i > INLINE_CODE_SPAN) break;
      let k = j;
      while (k < to && text.charCodeAt(k) === 96) k++;
      if (open && k >= to) {
        undecided = true;
        break;
      }
      if (k - j === length) {
        close = k;
        break;
      }
      j = k;
    }
    if (undecided) {
      if (mode === "commit") return i;
      i = run;
      continue;
    }
    if (close >= 0) into.push([base + i, base + close]);
    i = close >= 0 ? close : run;
  }
  return mode === "commit" ? i : to;
}

/**
 * Drops the unsafe-output findings that lie wholly inside markdown code. Every other finding stays: a
 * secret or a canary in a code block is as leaked as anywhere else.
 */
export function outsideCode<F extends Finding>(findings: readonly F[], code: MarkdownCode): F[] {
  return findings.filter((f) => f.kind !== "unsafe_output" || !code.covers(f.start, f.end));
}

// Whitespace runs are bounded ({0,100}) so every match has a longest length, which the streaming
// hold-back relies on (see streamHoldBack in pipeline.ts).
const ACTIVE_HTML: readonly [string, RegExp][] = [
  ["html_script", /<\s{0,100}script\b[^>]{0,500}>/gi],
  ["html_frame", /<\s{0,100}(?:iframe|frame|object|embed|applet|base|meta\s+http-equiv)\b[^>]{0,500}>/gi],
  ["html_event_handler", /<[a-z][^>]{0,500}?\s(?:on[a-z]{3,30})\s{0,100}=\s{0,100}[^>\s]/gi],
  [
    "dangerous_url",
    /(?:href|src|action|formaction|xlink:href)\s{0,100}=\s{0,100}["']?\s{0,100}(?:javascript|vbscript|data):/gi,
  ],
  ["dangerous_url", /\]\(\s{0,100}(?:javascript|vbscript|data):[^)]{0,500}\)/gi],
];
const MD_LINK =
  /(!?)\[[^\]\n]{0,200}\]\(\s{0,100}<?(https?:\/\/[^)\s>]{1,2000})>?(?:\s{1,100}"[^"\n]{0,200}")?\s{0,100}\)/gi;
const HTML_IMG = /<\s{0,100}img\b[^>]{0,500}?\bsrc\s{0,100}=\s{0,100}["']?(https?:\/\/[^"'\s>]{1,2000})/gi;

function hostAllowed(host: string, allowed: readonly string[]): boolean {
  const h = host.toLowerCase();
  return allowed.some((a) => (a.startsWith("*.") ? h.endsWith(a.slice(1)) : h === a.toLowerCase()));
}

/** A run of at least 24 characters of an encoding (base64, hex), not words joined by underscores. */
const OPAQUE = /[A-Za-z0-9+/=-]{24,}/g;

/**
 * Whether a URL carries data out: an encoded-looking run (24+ characters, letters and digits, over 3.5
 * bits of entropy per character) in its path or query, a query that holds a secret or PII once
 * decoded, a query over 400 characters, or one that does not decode. An ordinary query — a search, a
 * video id, tracking tags — is not data: flagging every link with a `?` blocked ordinary answers, while
 * the same URL written bare passed.
 */
function carriesData(url: URL): boolean {
  const opaque = (text: string) =>
    [...text.matchAll(OPAQUE)].some((m) => /[A-Za-z]/.test(m[0]) && /\d/.test(m[0]) && entropy(m[0]) > 3.5);
  if (opaque(url.pathname)) return true;
  const query = url.search.slice(1);
  if (query === "") return false;
  if (query.length > 400) return true;
  let decoded: string;
  try {
    decoded = decodeURIComponent(query.replace(/\+/g, " "));
  } catch {
    return true;
  }
  return opaque(decoded) || findSecrets(decoded).length > 0 || findPii(decoded).length > 0;
}

/** Findings of unsafe content in a model's output. */
export function findUnsafeOutput(text: string, options: OutputCheckOptions = {}): Finding[] {
  const out: Finding[] = [];
  for (const [type, re] of ACTIVE_HTML) {
    for (const m of text.matchAll(re))
      out.push({ type, start: m.index, end: m.index + m[0].length, confidence: 0.95, kind: "unsafe_output" });
  }
  const allowed = options.allowedHosts ?? [];
  const check = (url: string, start: number, end: number, image: boolean) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return;
    }
    if (hostAllowed(parsed.hostname, allowed)) return;
    // An image loads without a click: any outside image is a beacon. A link is unsafe when it carries data.
    const carries = carriesData(parsed);
    if (image || carries) {
      out.push({
        type: image ? "external_image" : "data_in_link",
        start,
        end,
        confidence: image && carries ? 0.9 : 0.7,
        kind: "unsafe_output",
      });
    }
  };
  for (const m of text.matchAll(MD_LINK)) check(m[2] as string, m.index, m.index + m[0].length, m[1] === "!");
  for (const m of text.matchAll(HTML_IMG)) check(m[1] as string, m.index, m.index + m[0].length, true);
  const kept =
    out.length > 0 && options.codeIsText !== false ? outsideCode(out, new MarkdownCode().append(text, true)) : out;
  kept.push(...findCanaries(text, options.canaries ?? []));
  return kept;
}

/** Where canary tokens (at least 8 characters each) appear in `text`. */
export function findCanaries(text: string, canaries: readonly string[]): Finding[] {
  const out: Finding[] = [];
  for (const canary of canaries) {
    for (let i = text.indexOf(canary); i !== -1 && canary.length >= 8; i = text.indexOf(canary, i + 1)) {
      out.push({ type: "canary", start: i, end: i + canary.length, confidence: 1, kind: "canary" });
    }
  }
  return out;
}

/** A fresh canary token to put into a system prompt. */
export function makeCanary(): string {
  return `aw-canary-${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
}
