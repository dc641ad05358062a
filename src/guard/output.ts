import { entropy, type Finding } from "./finding.js";
import { findPii } from "./pii.js";
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
