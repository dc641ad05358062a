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
/** A markdown link or image and its destination (resolved with {@link markdownUrl} before it is judged). */
const MD_LINK = /(!?)\[[^\]\n]{0,200}\]\(\s{0,100}(<[^>\n]{0,2000}>?|[^\s)]{1,2000})/g;
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
/** An http(s) URL as a browser takes it (tabs and newlines dropped, `//host` as https), or undefined. */
function httpUrl(value: string): string | undefined {
  const v = value.trim().replace(/[\t\n\r]/g, "");
  const absolute = v.startsWith("//") ? `https:${v}` : v;
  return /^https?:\/\//i.test(absolute) ? absolute : undefined;
}
/** A markdown destination as CommonMark resolves it: backslash escapes and character references. */
const markdownUrl = (raw: string) => decodeHTML(raw.replace(/^</, "").replace(/\\([!-/:-@[-`{-~])/g, "$1"));

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
  const push = (type: string, start: number, end: number, confidence = 0.95) =>
    out.push({ type, start, end, confidence, kind: "unsafe_output" });
  const allowed = (options.allowedHosts ?? []).map(canonicalHost);
  const check = (url: string, start: number, end: number, image: boolean) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return;
    }
    if (hostMatches(urlHost(parsed), allowed)) return;
    // An image loads without a click: any outside image is a beacon. A link is unsafe when it carries data.
    const carries = carriesData(parsed);
    if (image || carries) push(image ? "external_image" : "data_in_link", start, end, image && carries ? 0.9 : 0.7);
  };
  // Where the answer sends the reader's browser: loads happen without a click (a beacon), links with one.
  const url = (value: string, loads: boolean, start: number, end: number) => {
    const absolute = httpUrl(value);
    if (absolute !== undefined) check(absolute, start, end, loads);
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
  for (const re of [MD_DESTINATION, MD_DEFINITION]) {
    for (const m of text.matchAll(re)) {
      const destination = markdownUrl(m[1] as string);
      if (dangerousScheme(urlScheme(destination))) push("dangerous_url", m.index, m.index + m[0].length);
      // A reference definition serves links and images alike (`![a][1]` … `[1]: https://…`), and the
      // image may stand anywhere in the answer: one that carries data out is flagged where it is defined.
      if (re === MD_DEFINITION) url(destination.replace(/>$/, ""), false, m.index, m.index + m[0].length);
    }
  }
  for (const m of text.matchAll(AUTOLINK)) {
    const scheme = urlScheme(m[0].slice(1));
    if (dangerousScheme(scheme)) push("dangerous_url", m.index, m.index + m[0].length);
  }
  for (const m of text.matchAll(MD_LINK)) {
    url(markdownUrl((m[2] as string).replace(/>$/, "")), m[1] === "!", m.index, m.index + m[0].length);
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
