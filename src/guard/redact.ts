import { createHmac } from "node:crypto";
import { findDisguised } from "./disguise.js";
import { dedupe, type Finding } from "./finding.js";

/** How a finding is replaced: a typed placeholder (`[REDACTED:email]`), a mask, or a keyed hash. */
export type RedactionStyle =
  | { readonly style: "placeholder" }
  | { readonly style: "mask"; readonly char?: string; readonly keepLast?: number }
  | { readonly style: "hash"; readonly key: Uint8Array };

/**
 * Replaces every finding's span in `text` (findings must not overlap; offsets are UTF-16 indices).
 * A keyed hash is `[type:hmac-sha256 first 12 hex]`: equal values map to equal tokens without being
 * recoverable by anyone who lacks the key.
 */
export function redact(
  text: string,
  findings: readonly Finding[],
  how: RedactionStyle = { style: "placeholder" },
): string {
  const sorted = [...findings].sort((a, b) => a.start - b.start);
  let out = "";
  let at = 0;
  for (const f of sorted) {
    if (f.start < at) continue;
    out += text.slice(at, f.start);
    const value = text.slice(f.start, f.end);
    if (how.style === "placeholder") out += `[REDACTED:${f.type}]`;
    else if (how.style === "mask") {
      const keep = Math.min(how.keepLast ?? 0, Math.floor(value.length / 4));
      out += (how.char ?? "*").repeat(value.length - keep) + value.slice(value.length - keep);
    } else out += `[${f.type}:${createHmac("sha256", how.key).update(value).digest("hex").slice(0, 12)}]`;
    at = f.end;
  }
  return out + text.slice(at);
}

/**
 * Finds the values a caller marked secret (each at least 4 characters): exactly, in another case, and
 * — for values of ten letters and digits or more — disguised as {@link findDisguised} describes
 * (spaced out, look-alike letters, backwards, base64 or hex), so a model told to spell the key out
 * does not get it past redaction.
 */
export function findMarkedSecrets(text: string, secrets: readonly string[]): Finding[] {
  const out: Finding[] = [];
  const lower = text.toLowerCase();
  const caseless = lower.length === text.length; // lowercasing kept every offset
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    // In any case, where lowercasing keeps every offset (it does unless the text holds a rare letter
    // such as "İ"); exactly otherwise.
    const folded = secret.toLowerCase();
    const [haystack, value] = caseless && folded.length === secret.length ? [lower, folded] : [text, secret];
    for (let i = haystack.indexOf(value); i !== -1; i = haystack.indexOf(value, i + value.length)) {
      const exact = text.startsWith(secret, i);
      out.push({
        type: "marked_secret",
        start: i,
        end: i + value.length,
        confidence: exact ? 1 : 0.9,
        kind: "marked_secret",
      });
    }
  }
  // Disguised (spaced out, look-alikes, reversed, encoded): only values of ten letters and digits or
  // more, which ordinary text does not spell by chance.
  for (const { start, end } of findDisguised(text, secrets, 10)) {
    out.push({ type: "marked_secret", start, end, confidence: 0.9, kind: "marked_secret" });
  }
  return dedupe(out);
}
