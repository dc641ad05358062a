import { createRequire } from "node:module";
import { unescape as percentDecoded } from "node:querystring";
import createDOMPurify, { type Config, type DOMPurify } from "dompurify";

// jsdom is loaded on the first HTML clean, not with this module: it is about half a second of module
// loading, paid otherwise by every CLI command and gateway start that never cleans HTML. It is a
// CommonJS package, so `require` loads it synchronously where it is needed.
const require = createRequire(import.meta.url);

/**
 * Input sanitization. HTML is cleaned by DOMPurify on jsdom — its supported server setup (happy-dom and
 * linkedom are not safe hosts for it) — never by regular expressions.
 */
let purifier: DOMPurify | undefined;
function purify(): DOMPurify {
  if (purifier === undefined) {
    const { JSDOM } = require("jsdom") as typeof import("jsdom");
    purifier = createDOMPurify(new JSDOM("").window);
  }
  return purifier;
}

/** Cleans HTML to an allowlist (DOMPurify's default one unless given). */
export function cleanHtml(
  html: string,
  options: { allowedTags?: readonly string[]; allowedAttributes?: readonly string[] } = {},
): string {
  const config: Config = {};
  if (options.allowedTags !== undefined) config.ALLOWED_TAGS = [...options.allowedTags];
  if (options.allowedAttributes !== undefined) config.ALLOWED_ATTR = [...options.allowedAttributes];
  return purify().sanitize(html, config);
}

/** Removes all markup, keeping the text (decoded once by the HTML parser, then escaped again). */
export function stripHtml(html: string): string {
  const text = purify().sanitize(html, { ALLOWED_TAGS: ["#text"], KEEP_CONTENT: true });
  return text;
}

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
  "`": "&#96;",
};

/** Escapes text for an HTML text or attribute context. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c] as string);
}

export interface SanitizeOptions {
  readonly html?: "escape" | "strip" | "clean" | "keep";
  readonly nullBytes?: boolean;
  readonly nfkc?: boolean;
  readonly trim?: boolean;
}

/** Applies the chosen sanitizations in a fixed order: null bytes, NFKC, HTML, trim. */
export function sanitize(text: string, options: SanitizeOptions = {}): string {
  let out = text;
  if (options.nullBytes !== false) out = out.replace(/\0/g, "");
  if (options.nfkc === true) out = out.normalize("NFKC");
  if (options.html === "escape") out = escapeHtml(out);
  else if (options.html === "strip") out = stripHtml(out);
  else if (options.html === "clean") out = cleanHtml(out);
  if (options.trim !== false) out = out.trim();
  return out;
}

/** Signals of attack payloads in an input field (detection only: the field is not changed). */
export type InputAttack = "xss" | "sql_injection" | "path_traversal" | "code_injection" | "command_injection";

const ATTACKS: readonly [InputAttack, RegExp][] = [
  [
    "xss",
    /<\s*(?:script|iframe|object|embed|svg|img|body|style|link|meta|base|form|math)\b[^>]{0,300}?(?:>|\bon[a-z]{3,30}\s*=|src\s*=)|\bon(?:error|load|click|mouseover|focus|toggle|begin|animationstart)\s*=|(?:javascript|vbscript)\s*:|<\s*script\b/i,
  ],
  [
    "sql_injection",
    /(?:'|"|\b)\s*(?:or|and)\s+(?:'[^']{0,20}'|\d{1,10})\s*(?:=|like)\s*(?:'[^']{0,20}'?|\d{1,10})|\bunion\s+(?:all\s+)?select\b|;\s*(?:drop|delete|truncate|alter|insert|update)\s+(?:table|from|into|database)?\b|\b(?:sleep|benchmark|pg_sleep|waitfor\s+delay)\s*\(|--\s*$|'\s*;\s*--|\/\*!?\d{0,5}[^*]{0,100}\*\/\s*(?:select|union)/im,
  ],
  [
    "path_traversal",
    // Overlong UTF-8 forms of "." and "/" (`%c0%ae`, `%c0%af`, `%c1%9c`) and a null byte (`%00`) too.
    /(?:^|[\\/=])(?:\.|%2e){2}(?:[\\/]|%2f|%5c)|%(?:25)?2e%(?:25)?2e|%c0%a[ef]|%c1%9c|%e0%80%af|%(?:25)?00|\/etc\/(?:passwd|shadow|hosts)\b|\b[a-z]:\\windows\\|\0/i,
  ],
  [
    "code_injection",
    /\b(?:eval|exec|Function|setTimeout|setInterval|require|import|__import__|compile|os\.system|subprocess\.\w{1,20}|child_process)\s*\(|\{\{[^}]{0,100}(?:constructor|__class__|__globals__|config|self)[^}]{0,100}\}\}|\$\{[^}]{0,100}(?:jndi|env|java):|<%[=@]?|\bprocess\.(?:env|exit|mainModule)\b|(?:\{\{|\$\{|#\{)\s*\d{1,6}\s*[*+]\s*\d{1,6}\s*\}/i,
  ],
  [
    "command_injection",
    // A shell command after a separator, a pipe or a substitution; not any backticks (markdown code) or
    // `$(…)` (jQuery).
    /(?:[;&|`]|\$\()\s*(?:cat|ls|id|whoami|uname|wget|curl|nc|bash|sh|zsh|powershell|cmd|rm|chmod|python\d?|perl|ruby|php|ping|nslookup|dig|env|printenv|hostname|sleep|echo)\b|\|\|?\s*(?:sh|bash)\b/i,
  ],
];

/**
 * Which attack signals an input field shows — in the text as given and, where it holds `%`, once
 * URL-decoded (`%3Cscript%3E` is a script tag to whatever decodes the field).
 */
export function detectInputAttacks(text: string): InputAttack[] {
  const decoded = text.includes("%") ? percentDecoded(text) : text;
  return ATTACKS.filter(([, re]) => re.test(text) || (decoded !== text && re.test(decoded))).map(([name]) => name);
}
