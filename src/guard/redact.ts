import { createHmac } from "node:crypto";
import type { Finding } from "./finding.js";

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

/** Finds the exact values a caller marked secret (each at least 4 characters). */
export function findMarkedSecrets(text: string, secrets: readonly string[]): Finding[] {
  const out: Finding[] = [];
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (let i = text.indexOf(secret); i !== -1; i = text.indexOf(secret, i + secret.length)) {
      out.push({ type: "marked_secret", start: i, end: i + secret.length, confidence: 1, kind: "marked_secret" });
    }
  }
  return out;
}
