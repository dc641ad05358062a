import { entropy, type Finding } from "./finding.js";
import { findPii } from "./pii.js";
import { decodeHTML } from "entities";
import { canonicalHost, hostMatches, urlHost } from "../egress/hosts.js";
import { findDisguised } from "./disguise.js";
import { forEachStartTag, urlScheme } from "./html-tags.js";
import { MarkdownCode } from "./markdown.js";
import { findSecrets } from "./secrets.js";

export { MarkdownCode };

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
   * Whether markup inside markdown code — a fenced or indented code block, an inline code span — is
   * text (default true): a markdown renderer shows it escaped, so an answer explaining
   * `<button onclick=…>` is not active content. What counts as code is what CommonMark renders as code
   * (see {@link MarkdownCode}; where that cannot be told, the markup is reported). Set false where
   * outputs are inserted as HTML or rendered by a non-CommonMark renderer. Secrets, PII and canaries
   * count everywhere.
   */
  readonly codeIsText?: boolean;
  /**
   * Reference images and definitions seen so far in the answer `text` is part of (a stream's windows
   * share one), and where `text` starts in it. Default: a new one, offset 0 (`text` is the whole answer).
   */
  readonly references?: ReferenceImages;
  readonly offset?: number;
}

/**
 * Drops the unsafe-output findings that lie wholly inside markdown code. Every other finding stays: a
 * secret or a canary in a code block is as leaked as anywhere else.
 */
export function outsideCode<F extends Finding>(findings: readonly F[], code: MarkdownCode): F[] {
  return findings.filter((f) => f.kind !== "unsafe_output" || !code.covers(f.start, f.end));
}

// Whitespace runs and URLs are bounded so every match has a longest length, which the streaming
// hold-back relies on (see streamHoldBack in pipeline.ts): a finding starts at "<", "](" or "]:".
/** A markdown link's destination (its first 200 characters: enough for any spelling of a scheme). */
const MD_DESTINATION = /\]\(\s{0,100}(<[^>\n]{0,200}|[^\s)]{1,200})/g;
/** A link reference definition's destination. */
const MD_DEFINITION = /\]:\s{0,100}(<[^>\n]{0,200}|\S{1,200})/g;
/** An autolink (`<javascript:…>` is a link in CommonMark). */
const AUTOLINK = /<[A-Za-z][A-Za-z0-9.+-]{1,31}:[^<>\s]{0,2000}>/g;
/** How far before its `](` a link's or image's opening `[` is looked for. */
const LINK_TEXT = 500;
/** The longest destination read. */
const LINK_DESTINATION = 2000;
/** A link's or image's `](` and the whitespace after it (a blank line ends the paragraph, and the link). */
const LINK_CLOSE = /\]\([ \t]{0,100}(?:\r?\n[ \t]{0,100})?/g;

/** An inline markdown link or image: from its opening `[` (or the `!` before it) to its destination's end. */
interface MarkdownLink {
  readonly image: boolean;
  readonly start: number;
  readonly end: number;
  /** The destination as written (an `<…>` one with its brackets). */
  readonly destination: string;
}

/** A reference image (`![a][1]`, `![1][]`, `![1]`) or a definition (`[1]: https://…`) pointing outside. */
interface ReferenceUse {
  /** Normalized as CommonMark matches labels: case folded, whitespace collapsed. */
  readonly label: string;
  readonly start: number;
  readonly end: number;
}

/** The `[label]` after a reference image's `]`. */
const REFERENCE_LABEL = /\[([^[\]]{0,200})\]/y;
/** A link reference definition with its label (labels over 200 characters are not followed). */
const REFERENCE_DEFINITION = /\[([^[\]\n]{1,200})\]:\s{0,100}(<[^>\n]{0,2000}>?|\S{1,2000})/g;
const referenceLabel = (label: string) => label.trim().replace(/\s+/g, " ").toLowerCase();

/**
 * Where the reference images and the outside definitions of one answer stood (the earliest place per
 * label, as offsets into the whole answer). A reference image loads its definition's URL wherever in
 * the answer the definition stands, before or after it, so a streamed answer's windows share one of
 * these: each window records what it holds, and flags an image or a definition once its counterpart
 * stood before it.
 */
export class ReferenceImages {
  readonly images = new Map<string, number>();
  readonly outside = new Map<string, number>();
}

/**
 * The inline links and images of a markdown text, found as CommonMark pairs brackets: each `]` closes
 * the nearest open `[`, so the text of a link or the description of an image may hold brackets of its
 * own (`![a [b] c](…)`), escaped ones (`![a\]b](…)`), line breaks, and images (`[![x](…)](…)`) —
 * a regular expression for the bracket text missed each (an image carrying data out through any of them
 * was not reported). A blank line closes every bracket. Where the pairing cannot be sure — a code span
 * inside the text hides a bracket — it errs towards an image: a `](` is an image's when an open `![`
 * stands within {@link LINK_TEXT} characters before it, and one with no `[` left open takes the last
 * `[` a `]` closed without a link. An opening further back than that is not followed (the streaming
 * hold-back keeps that much before a link). A destination is read as CommonMark reads it (see
 * {@link Destinations}); one it would not take (unbalanced parentheses, an unclosed `<`) makes no link,
 * and a link's destination is not searched for further links, as in CommonMark — which also keeps the
 * walk linear.
 */
function markdownLinks(text: string): { links: MarkdownLink[]; references: ReferenceUse[] } {
  const links: MarkdownLink[] = [];
  const references: ReferenceUse[] = [];
  const open: number[] = []; // positions of open "[", newest last
  const images: number[] = []; // positions of the open "[" of them that follow a "!"
  /** The last "[" a "]" closed without making a link: a code span may have hidden that "]". */
  let loose: { at: number; image: boolean } | undefined;
  let destinations: Destinations | undefined;
  let lineBlank = true;
  let lastTick = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 92 /* \ */ && text.charCodeAt(i + 1) !== 10) {
      i++; // an escaped character (a backslash before a line break is a hard break)
      lineBlank = false;
      continue;
    }
    if (c === 10) {
      if (lineBlank) {
        open.length = images.length = 0;
        loose = undefined;
      }
      lineBlank = true;
      continue;
    }
    if (c !== 32 && c !== 9 && c !== 13) lineBlank = false;
    if (c === 96 /* ` */) lastTick = i;
    if (c === 91 /* [ */) {
      open.push(i);
      if (text.charCodeAt(i - 1) === 33 /* ! */) images.push(i);
      continue;
    }
    if (c !== 93 /* ] */) continue;
    const near = (at: number | undefined): at is number => at !== undefined && i - at <= LINK_TEXT;
    let opener = open.pop();
    let openerIsImage = opener !== undefined && opener === images[images.length - 1];
    if (openerIsImage) images.pop();
    if (openerIsImage && near(opener)) {
      // A reference image — `![text][label]`, `![label][]`, `![label]` — takes its URL from a definition.
      // Followed by "(" it is one too when the inline form fails (`![1](` and a blank line): counted
      // as one either way.
      REFERENCE_LABEL.lastIndex = i + 1;
      const label = REFERENCE_LABEL.exec(text);
      const named = label !== null && (label[1] as string).trim() !== "";
      // Labels over 200 characters are not followed (nor are such definitions).
      if (named || i - opener <= 201)
        references.push({
          label: referenceLabel(named ? (label[1] as string) : text.slice(opener + 1, i)),
          start: opener - 1,
          end: label === null ? i + 1 : i + 1 + label[0].length,
        });
    }
    if (text.charCodeAt(i + 1) !== 40 /* ( */) {
      if (opener !== undefined) loose = { at: opener, image: openerIsImage };
      continue;
    }
    // No "[" left open: the one a code span's "]" took may be this one's (`![a \`]\` b](…)`).
    // Only where a code span may stand between them; such a guess does not hide what follows (below).
    const guessed = opener === undefined && loose !== undefined && lastTick > loose.at;
    if (guessed) ({ at: opener, image: openerIsImage } = loose as { at: number; image: boolean });
    // The image this "](" closes, or an earlier one still open that it may close (errs towards an image).
    const openImage = images[images.length - 1]; // the nearest: the stack is in text order
    const image = openerIsImage && near(opener) ? opener : near(openImage) ? openImage : undefined;
    const start = image !== undefined ? image - 1 : near(opener) ? opener : undefined;
    if (start === undefined) continue; // a "](" with no "[" before it is no link
    LINK_CLOSE.lastIndex = i;
    const from = i + (LINK_CLOSE.exec(text) as RegExpExecArray)[0].length;
    destinations ??= new Destinations(text);
    const end = destinations.end(from);
    if (end < 0) continue;
    links.push({ image: image !== undefined, start, end, destination: text.slice(from, end) });
    // A link CommonMark takes (its ")" after the destination and any title) holds no other link.
    if (!guessed && inlineLinkCloses(text, end)) i = end - 1;
  }
  return { links, references };
}

/** Spaces and tabs, and at most one line ending, from `i`. */
function skipSpace(text: string, i: number): number {
  let newline = false;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10) {
      if (newline) return -1; // a blank line ends the paragraph
      newline = true;
    } else if (c !== 32 && c !== 9 && c !== 13) break;
  }
  return i;
}

/** Whether an inline link's destination ending at `end` is followed by an optional title and its ")". */
function inlineLinkCloses(text: string, end: number): boolean {
  let i = skipSpace(text, end);
  if (i < 0) return false;
  const open = text.charCodeAt(i);
  if (i > end && (open === 34 || open === 39 || open === 40)) {
    // A title: "…", '…' or (…), up to its closing character (not past a blank line).
    const close = open === 40 ? 41 : open;
    const limit = Math.min(text.length, i + LINK_DESTINATION);
    let j = i + 1;
    for (; j < limit; j++) {
      const c = text.charCodeAt(j);
      if (c === 92) j++;
      else if (c === close) break;
      else if (c === 10 && skipSpace(text, j) < 0) return false;
    }
    if (j >= limit) return false;
    i = skipSpace(text, j + 1);
    if (i < 0) return false;
  }
  return text.charCodeAt(i) === 41;
}

/**
 * Where link destinations end, as CommonMark reads them: an `<…>` one at its `>` on the same line;
 * another at whitespace or a control character, or at a `)` that closes no `(` of its own
 * (`https://host/a(b)?q=…` is one URL), its parentheses balanced; at most {@link LINK_DESTINATION}
 * characters. For every start at once in one pass (the first `)` that takes the parenthesis depth below
 * the start's, from the running depth), so each `](` costs the same whatever follows it.
 */
class Destinations {
  readonly #text: string;
  /** Per position s, the first `)` that takes the depth below its depth at s; -1 when none. */
  readonly #drop: Int32Array;
  /** Per position, the running depth of unescaped parentheses before it. */
  readonly #depth: Int32Array;
  #space = -1;

  constructor(text: string) {
    this.#text = text;
    const n = text.length;
    const depth = new Int32Array(n + 1);
    let d = 0;
    for (let i = 0; i < n; i++) {
      depth[i] = d;
      const c = text.charCodeAt(i);
      if (c === 92 /* \ */ && i + 1 < n) {
        depth[++i] = d; // the escaped character counts for nothing
      } else if (c === 40) d++;
      else if (c === 41) d--;
    }
    depth[n] = d;
    // Right to left, the leftmost position seen so far at each depth (offset by n + 1: depths are in ±n).
    const drop = new Int32Array(n + 1).fill(-1);
    const seen = new Int32Array(2 * n + 3).fill(-1);
    for (let s = n; s >= 0; s--) {
      const at = depth[s] as number;
      // The first position after s whose depth is one below: the ")" is the character before it.
      const lower = seen[at + n] as number;
      drop[s] = lower < 0 ? -1 : lower - 1;
      seen[at + n + 1] = s;
    }
    this.#drop = drop;
    this.#depth = depth;
  }

  /** Where the destination starting at `from` ends, or -1 when CommonMark would take none there. */
  end(from: number): number {
    const text = this.#text;
    const limit = Math.min(text.length, from + LINK_DESTINATION);
    if (text.charCodeAt(from) === 60 /* < */) {
      for (let i = from + 1; i < limit; i++) {
        const c = text.charCodeAt(i);
        if (c === 62 /* > */) return i + 1;
        if (c === 10 || c === 60) return -1;
        if (c === 92) i++;
      }
      return limit;
    }
    if (this.#space < from) {
      this.#space = from;
      while (this.#space < text.length && text.charCodeAt(this.#space) > 32) this.#space++;
    }
    const close = this.#drop[from] as number;
    if (close >= 0 && close < this.#space) return Math.min(close, limit);
    // Up to whitespace: the parentheses must be balanced there.
    if (this.#space <= limit && this.#depth[this.#space] !== this.#depth[from]) return -1;
    return Math.min(this.#space, limit);
  }
}

/** Elements that load or run other content. */
const FRAMES = new Set(["iframe", "frame", "object", "embed", "applet", "base"]);
/** Attributes a data: URL is unsafe in (javascript: and vbscript: are unsafe in any attribute). */
const URL_ATTRIBUTES = new Set([
  "href",
  "src",
  "action",
  "formaction",
  "xlink:href",
  "data",
  "poster",
  "background",
  "values",
  "to",
  "from",
  "by",
  "codebase",
  "srcset",
]);
/** How far from its "<" a <style> element's sheet is read (within the stream's 3,000-character hold-back). */
const STYLE_SPAN = 2400;
/** Attributes whose URL a browser fetches as the page loads. */
const LOADING_ATTRIBUTES = new Set(["src", "poster", "background", "data", "lowsrc", "dynsrc"]);
/** Elements whose href is fetched as the page loads (a stylesheet, an SVG image), not followed on a click. */
const LOADING_HREF = new Set(["link", "image", "use", "feimage"]);
const scriptScheme = (scheme: string) => scheme === "javascript" || scheme === "vbscript";
/** A markdown destination's scheme that runs or embeds content. */
const dangerousScheme = (scheme: string) => scriptScheme(scheme) || scheme === "data";
/**
 * An http(s) URL as a browser takes it, or undefined: read by the WHATWG URL parser, as browsers read
 * it — tabs and newlines dropped, backslashes as slashes and the slashes after the scheme optional
 * (`https:\\evil.example`, `https:/\\evil.example`, `https:evil.example` all load evil.example), and a
 * destination starting with two slashes or backslashes as https.
 */
function httpUrl(value: string): URL | undefined {
  const v = value.trim();
  let parsed: URL;
  try {
    parsed = new URL(/^[\t\n\r]*[/\\][\t\n\r]*[/\\]/.test(v) ? `https:${v}` : v);
  } catch {
    return undefined;
  }
  return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed : undefined;
}
/** A markdown destination as CommonMark resolves it: backslash escapes and character references. */
const markdownUrl = (raw: string) => decodeHTML(raw.replace(/^</, "").replace(/\\([!-/:-@[-`{-~])/g, "$1"));

/** A run of at least 24 characters of an encoding (base64, hex), not words joined by underscores. */
const OPAQUE = /[A-Za-z0-9+/=-]{24,}/g;

/**
 * The same in a host name: letters and digits only (a label's hyphens join words: `my-app-2026-logs`);
 * hex at any entropy (text in hex, the usual DNS tunnel encoding, stays under 3.5 bits a character).
 */
const OPAQUE_IN_HOST = /[A-Za-z0-9]{24,}/g;
const HEX = /^[0-9a-f]+$/i;

/**
 * Whether a URL carries data out: an encoded-looking run (24+ characters, letters and digits, over 3.5
 * bits of entropy per character) in its host name, path or query, a query that holds a secret or PII
 * once decoded, a query over 400 characters, or one that does not decode. In the host name the data
 * leaves by DNS as soon as the name is looked up — a chat app that previews links does so without a
 * click — and the attacker's name server logs it (`https://<hex of a key>.evil.example/`). An ordinary
 * query — a search, a video id, tracking tags — is not data: flagging every link with a `?` blocked
 * ordinary answers, while the same URL written bare passed.
 */
function carriesData(url: URL): boolean {
  const opaque = (text: string, run = OPAQUE, hex = false) =>
    [...text.matchAll(run)].some(
      (m) => /[A-Za-z]/.test(m[0]) && /\d/.test(m[0]) && ((hex && HEX.test(m[0])) || entropy(m[0]) > 3.5),
    );
  if (opaque(url.hostname, OPAQUE_IN_HOST, true) || opaque(url.pathname)) return true;
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
  const push = (type: string, start: number, end: number, confidence = 0.95) =>
    out.push({ type, start, end, confidence, kind: "unsafe_output" });
  const allowed = (options.allowedHosts ?? []).map(canonicalHost);
  /** The http(s) URL `value` names, as a browser takes it, when its host is outside the allowlist. */
  const outside = (value: string): URL | undefined => {
    const parsed = httpUrl(value);
    return parsed === undefined || hostMatches(urlHost(parsed), allowed) ? undefined : parsed;
  };
  // Where the answer sends the reader's browser: loads happen without a click (a beacon), links with one.
  const url = (value: string, loads: boolean, start: number, end: number) => {
    const parsed = outside(value);
    if (parsed === undefined) return;
    // An image loads without a click: any outside image is a beacon. A link is unsafe when it carries data.
    const carries = carriesData(parsed);
    if (loads || carries) push(loads ? "external_image" : "data_in_link", start, end, loads && carries ? 0.9 : 0.7);
  };
  forEachStartTag(text, (tag) => {
    const { name, start, end, attributes } = tag;
    if (tag.oversized) push("html_oversized_tag", start, end, 0.6);
    if (tag.unread === true) push("html_unread", start, end, 0.6);
    if (name === "script") push("html_script", start, end);
    if (FRAMES.has(name) || (name === "meta" && attributes.some(([n]) => n === "http-equiv")))
      push("html_frame", start, end);
    if (attributes.some(([n, v]) => /^on[a-z]{3,}/.test(n) && v.trim() !== "")) push("html_event_handler", start, end);
    if (
      attributes.some(([n, v]) => {
        const scheme = urlScheme(v);
        return scriptScheme(scheme) || (scheme === "data" && URL_ATTRIBUTES.has(n));
      })
    )
      push("dangerous_url", start, end);
    if (name === "style") {
      // A stylesheet's imports and url()s load with the page.
      const sheet = text.slice(end, start + STYLE_SPAN);
      const close = sheet.search(/<\/style/i);
      const body = close < 0 ? sheet : sheet.slice(0, close);
      for (const m of body.matchAll(/(?:url\(\s{0,100}|@import\s{1,100})["']?([^"')\s;]{1,400})/gi)) {
        url(decodeHTML(m[1] as string), true, start, end + m.index + m[0].length);
      }
    }
    for (const [n, v] of attributes) {
      if (LOADING_ATTRIBUTES.has(n)) url(v, true, start, end);
      else if (n === "srcset")
        for (const part of v.split(",")) url(part.trim().split(/\s+/)[0] ?? "", true, start, end);
      else if (n === "href" || n === "xlink:href") url(v, LOADING_HREF.has(name), start, end);
      else if (n === "action" || n === "formaction") url(v, false, start, end);
      else if (n === "style")
        for (const m of v.matchAll(/url\(\s*["']?([^"')\s]+)/gi)) url(m[1] as string, true, start, end);
    }
  });
  /** Where the `<…>` destinations of links and definitions start: not autolinks, judged with them. */
  const destinations = new Set<number>();
  for (const re of [MD_DESTINATION, MD_DEFINITION]) {
    for (const m of text.matchAll(re)) {
      const destination = markdownUrl(m[1] as string);
      if (dangerousScheme(urlScheme(destination))) push("dangerous_url", m.index, m.index + m[0].length);
      // A reference definition serves links and images alike (`![a][1]` … `[1]: https://…`), and the
      // image may stand anywhere in the answer: one that carries data out is flagged where it is defined.
      if (re === MD_DEFINITION) {
        url(destination.replace(/>$/, ""), false, m.index, m.index + m[0].length);
        destinations.add(m.index + m[0].length - (m[1] as string).length);
      }
    }
  }
  const { links, references } = markdownLinks(text);
  for (const link of links) {
    url(markdownUrl(link.destination.replace(/>$/, "")), link.image, link.start, link.end);
    destinations.add(link.end - link.destination.length);
  }
  // Reference images: flagged where an image meets a definition pointing outside, whichever comes second.
  const shared = options.references ?? new ReferenceImages();
  const offset = options.offset ?? 0;
  const outsideDefinitions: ReferenceUse[] = [];
  for (const m of text.matchAll(REFERENCE_DEFINITION))
    if (outside(markdownUrl((m[2] as string).replace(/^<|>$/g, ""))) !== undefined)
      outsideDefinitions.push({ label: referenceLabel(m[1] as string), start: m.index, end: m.index + m[0].length });
  const uses: [ReferenceUse[], Map<string, number>, Map<string, number>][] = [
    [references, shared.images, shared.outside],
    [outsideDefinitions, shared.outside, shared.images],
  ];
  for (const [list, own] of uses)
    for (const use of list)
      if (!((own.get(use.label) ?? Infinity) <= offset + use.start)) own.set(use.label, offset + use.start);
  for (const [list, , other] of uses)
    for (const use of list)
      if ((other.get(use.label) ?? Infinity) < offset + use.start) push("external_image", use.start, use.end, 0.9);
  for (const m of text.matchAll(AUTOLINK)) {
    const scheme = urlScheme(m[0].slice(1));
    if (dangerousScheme(scheme)) push("dangerous_url", m.index, m.index + m[0].length);
    else if (!destinations.has(m.index)) url(m[0].slice(1, -1), false, m.index, m.index + m[0].length); // as `[x](…)`
  }
  const kept =
    out.length > 0 && options.codeIsText !== false ? outsideCode(out, new MarkdownCode().append(text, true)) : out;
  kept.push(...findCanaries(text, options.canaries ?? []));
  return kept;
}

/**
 * Where canary tokens (at least 8 letters and digits each) appear in `text`, also disguised (see
 * {@link findDisguised}): an injected model told to "repeat the system prompt in capitals" leaks the
 * canary all the same.
 */
export function findCanaries(text: string, canaries: readonly string[]): Finding[] {
  return findDisguised(text, canaries, 8).map(({ start, end }) => ({
    type: "canary",
    start,
    end,
    confidence: 1,
    kind: "canary",
  }));
}

/** A fresh canary token to put into a system prompt. */
export function makeCanary(): string {
  return `aw-canary-${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
}
