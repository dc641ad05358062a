import type { Finding } from "./finding.js";

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
    const carries = parsed.search.length > 1 || /[A-Za-z0-9+/=_-]{24,}/.test(parsed.pathname);
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
  out.push(...findCanaries(text, options.canaries ?? []));
  return out;
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
