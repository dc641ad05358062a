/**
 * Secret redaction for the audit trail: fields named like secrets are replaced whole, and values that
 * look like credentials are masked wherever they appear. Bounded: depth, keys, array items and string
 * length are capped so a hostile detail object cannot blow up the log.
 */

export const REDACTED = "[REDACTED]";

const SECRET_FIELD =
  /pass(word|phrase|wd)?$|^pwd$|secret|token|api[-_]?key|^key$|private[-_]?key|authori[sz]ation|cookie|credential|^auth$|session[-_]?id|master[-_]?key|signature|bearer/i;

// Each pattern is linear (no nested quantifiers) and is applied to strings capped at MAX_STRING.
const SECRET_VALUES: readonly RegExp[] = [
  /\baw_[A-Za-z0-9]{8,}_[A-Za-z0-9]{20,}\b/g, // agentwall API keys
  /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, // JWTs
  /\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}/g, // OpenAI, Anthropic
  /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, // AWS access key ids
  /\bgh[pousr]_[A-Za-z0-9]{36,}\b/g, // GitHub
  /\bglpat-[A-Za-z0-9_-]{20,}/g, // GitLab
  /\bxox[abposr]-[A-Za-z0-9-]{10,}/g, // Slack
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]{0,8192}?-----END [A-Z ]*PRIVATE KEY-----/g,
  /([?&](?:token|key|api_key|apikey|access_token|secret|password|sig|signature)=)[^&#\s]+/gi,
  /(\/\/[^/\s:@]+:)[^@\s/]+@/g, // credentials in URLs
];

// One linear pass that every secret pattern above needs to match: text without any of these markers is
// returned untouched without running the eleven replacements (the audit append's hot path).
const MAY_HOLD_SECRET =
  /aw_|eyJ|bearer|basic|sk-|AKIA|ASIA|gh[pousr]_|glpat-|xox|-----BEGIN|[?&][a-z_]*(?:token|key|secret|password|sig)|\/\/[^/\s:@]+:/i;

const MAX_DEPTH = 8;
const MAX_KEYS = 100;
const MAX_ITEMS = 100;
const MAX_STRING = 4096;

/** Masks credential-looking substrings of a string. */
export function redactText(text: string): string {
  let out = text.length > MAX_STRING ? text.slice(0, MAX_STRING) + "…[truncated]" : text;
  if (!MAY_HOLD_SECRET.test(out)) return out;
  for (const pattern of SECRET_VALUES) {
    out = out.replace(pattern, (match: string, keep?: unknown) =>
      typeof keep === "string" && match.startsWith(keep) ? keep + REDACTED : REDACTED,
    );
  }
  return out;
}

/** True when a field name says its value is a secret. */
export function isSecretField(name: string): boolean {
  return SECRET_FIELD.test(name);
}

/** A redacted, bounded, JSON-safe copy of `value`. */
export function redactValue(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return redactText(value);
  if (typeof value !== "object") return `[${typeof value}]`;
  if (depth >= MAX_DEPTH) return "[depth limit]";
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => redactValue(v, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`[${value.length - MAX_ITEMS} more]`);
    return items;
  }
  if (value instanceof Date) return value.toISOString();
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.length} bytes]`;
  const out: Record<string, unknown> = {};
  let count = 0;
  for (const [key, inner] of Object.entries(value)) {
    if (count++ >= MAX_KEYS) {
      out["[truncated]"] = true;
      break;
    }
    // __proto__ as an own key would otherwise set the copy's prototype.
    const safeKey = key === "__proto__" ? "[__proto__]" : key;
    out[safeKey] =
      isSecretField(key) && inner !== null && inner !== undefined && inner !== ""
        ? REDACTED
        : redactValue(inner, depth + 1);
  }
  return out;
}
