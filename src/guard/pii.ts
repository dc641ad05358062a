import { isIP } from "node:net";
import { isPossiblePhoneNumber, isValidPhoneNumber, type CountryCode } from "libphonenumber-js";
import type { Finding } from "./finding.js";

/**
 * PII with validation: payment cards (Luhn and issuer ranges), US SSNs (impossible areas, groups and
 * serials refused), IBANs (mod-97 and country length), e-mail addresses, phone numbers
 * (libphonenumber-js), IPv4 and IPv6 addresses. Offsets are UTF-16 indices into the scanned text.
 */
export type PiiType = "credit_card" | "us_ssn" | "iban" | "email" | "phone" | "ip_address";

function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/** Issuer (IIN) ranges and lengths of the card networks in use. */
function cardIssuer(d: string): boolean {
  const n = d.length;
  const p2 = Number(d.slice(0, 2));
  const p3 = Number(d.slice(0, 3));
  const p4 = Number(d.slice(0, 4));
  const p6 = Number(d.slice(0, 6));
  if (d[0] === "4") return n === 13 || n === 16 || n === 19; // Visa
  if ((p2 >= 51 && p2 <= 55) || (p6 >= 222100 && p6 <= 272099)) return n === 16; // Mastercard
  if (p2 === 34 || p2 === 37) return n === 15; // American Express
  if (p4 === 6011 || p2 === 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925)) return n >= 16 && n <= 19; // Discover
  if (p4 >= 3528 && p4 <= 3589) return n >= 16 && n <= 19; // JCB
  if (p4 === 2131 || p4 === 1800) return n === 15; // JCB (older 15-digit numbers)
  if (p3 >= 300 && p3 <= 305) return n >= 14 && n <= 19; // Diners Club
  if (p2 === 36 || p2 === 38 || p2 === 39) return n >= 14 && n <= 19;
  if (p2 === 62) return n >= 16 && n <= 19; // UnionPay
  if (["5018", "5020", "5038", "5893", "6304", "6759", "6761", "6762", "6763"].includes(d.slice(0, 4)))
    return n >= 12 && n <= 19; // Maestro
  if (p4 >= 2200 && p4 <= 2204) return n === 16; // Mir
  return false;
}

function ssnValid(area: string, group: string, serial: string): boolean {
  const a = Number(area);
  if (a === 0 || a === 666 || a >= 900) return false;
  if (group === "00" || serial === "0000") return false;
  // Advertised and known-invalid numbers.
  if (`${area}${group}${serial}` === "078051120" || `${area}${group}${serial}` === "219099999") return false;
  return true;
}

const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MR: 27,
  MT: 31,
  MU: 30,
  NL: 18,
  NO: 15,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  SA: 24,
  SC: 31,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
};

function ibanValid(raw: string): boolean {
  const iban = raw.replace(/[\s-]/g, "").toUpperCase();
  if (IBAN_LENGTHS[iban.slice(0, 2)] !== iban.length) return false;
  const moved = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (const ch of moved) {
    const v = ch >= "A" ? ch.charCodeAt(0) - 55 : ch.charCodeAt(0) - 48;
    rem = v > 9 ? (rem * 100 + v) % 97 : (rem * 10 + v) % 97;
  }
  return rem === 1;
}

/**
 * The length of the valid IBAN that `candidate` starts with, or 0. The pattern lets single spaces and
 * hyphens separate characters (IBANs are printed in groups of four), so a compact IBAN followed by words
 * ("GB56HXDO88167774656119 to other") runs on into them: the candidate is cut back at each separator.
 */
function ibanLength(candidate: string): number {
  if (ibanValid(candidate)) return candidate.length;
  for (let i = candidate.length - 1; i >= 15; i--) {
    if ((candidate[i] === " " || candidate[i] === "-") && ibanValid(candidate.slice(0, i))) return i;
  }
  return 0;
}

const CARD = /(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])/g;
const CARD_CONTEXT = /\b(?:cards?|cc|credit|debit|visa|mastercard|amex|maestro|jcb|card ?number|pan)\b[^\n\d]{0,25}$/i;
const SSN = /(?<![\d-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-])/dg;
const IBAN = /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])/g;
const EMAIL =
  /(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])/g;
/**
 * An address written to dodge harvesters: "jane.doe [at] example [dot] com", "jane(at)example.com" — the
 * `at` in brackets or parentheses, each dot in the domain a `.` or a bracketed `dot`.
 */
const EMAIL_SPELLED =
  /(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}\s?[[({]\s?at\s?[\])}]\s?(?:[A-Za-z0-9-]{1,63}(?:\.|\s?[[({]\s?dot\s?[\])}]\s?)){1,8}[A-Za-z]{2,24}(?![\w-])/gi;
const AT_SPELLED = /[[({]\s?at\s?[\])}]/i;
const IPV4 = /(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])/g;
const IPV6 = /(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![0-9A-Fa-f:])/g;

const COLONS = /:[0-9A-Fa-f]{0,4}:/;

/** Candidates: digit groups with separators or a leading +, validated by libphonenumber-js. */
const PHONE =
  /(?<![\w+.-])(?:\+\d{1,3}[ .-]?(?:\(0\)[ .-]?)?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,5}(?:[ .-]\d{2,8}){1,4}(?:(?:x| ?ext\.? ?)\d{1,6})?(?!\w|-(?![A-Za-z])|\.\d)/g;
/**
 * Digits written without separators: a phone number only after a + or a word naming a phone ("Fax:
 * 9498777106") — not "number", which names licences and accounts as often.
 */
const PHONE_COMPACT = /(?<![\w+.-])\+?\d{7,15}(?!\w|-(?![A-Za-z])|\.\d)/g;
const PHONE_WORD =
  /(?<![A-Za-z])(?:phone|tel(?!l)|call|mobile|cell|fax|whatsapp|sms|dial|landline|desk|tél|telefon|teléfono|телефон)(?:[^\n\d]{0,20})$/i;
/** An extension after the number ("x4587", " ext. 12"): part of the finding, not of the number checked. */
const EXTENSION = /(?:x| ?ext\.? ?)\d{1,6}$/;
const PHONE_CONTEXT =
  /(?<![A-Za-z])(?:phone|tel(?!l)|call|mobile|cell|fax|number|whatsapp|sms|messages?|texts? me|contact|reach|dial|ring|answering|registered|landline|desk|tél|telefon|teléfono|телефон)(?:[^\n]{0,30}|:[ \t]*\r?\n[ \t]*)$/i;
/** A word naming the line right after the number ("082 490 1693-Office", "930.167.3943 fax"). */
const PHONE_AFTER = /^[ \t]*[-(]?[ \t]*(?:office|fax|mobile|cell|home|work|phone|tel|landline|desk)\b/i;
const POSTCODE_CONTEXT = /\b(?:zip|postal|post ?code|postcode|cep|plz)\b[^\n\d]{0,20}$/i;
/** Regions tried for numbers written without a country code. */
const PHONE_REGIONS: readonly CountryCode[] = [
  "US",
  "GB",
  "FR",
  "DE",
  "AU",
  "CA",
  "IN",
  "BR",
  "ES",
  "IT",
  "NL",
  "BE",
  "CH",
  "MX",
  "HU",
  "FI",
];

/** Finds PII in `text`. `phoneRegion` is the default country for numbers without a +code. */
export function findPii(text: string, options: { phoneRegion?: CountryCode } = {}): Finding[] {
  const out: Finding[] = [];
  const add = (type: PiiType, start: number, end: number, confidence: number) =>
    out.push({ type, start, end, confidence, kind: "pii" });
  for (const m of text.matchAll(CARD)) {
    const digits = m[0].replace(/\D/g, "");
    if (digits.length < 12 || digits.length > 19 || !luhn(digits)) continue;
    if (cardIssuer(digits)) add("credit_card", m.index, m.index + m[0].length, 0.95);
    // Outside the known issuer ranges (private-label and regional cards, new ranges), a Luhn-valid
    // number counts only when the words before it name a card: one random number in ten passes Luhn.
    else if (CARD_CONTEXT.test(text.slice(Math.max(0, m.index - 40), m.index))) {
      add("credit_card", m.index, m.index + m[0].length, 0.7);
    }
  }
  for (const m of text.matchAll(SSN)) {
    if (ssnValid(m[1] as string, m[3] as string, m[4] as string)) {
      add("us_ssn", m.index, m.index + m[0].length, m[2] === "" ? 0.5 : 0.85);
    }
  }
  IBAN.lastIndex = 0;
  for (let m = IBAN.exec(text); m !== null; m = IBAN.exec(text)) {
    const length = ibanLength(m[0]);
    if (length > 0) {
      add("iban", m.index, m.index + length, 0.95);
      IBAN.lastIndex = m.index + length; // what the candidate ran on into is searched again
    }
  }
  // The address regexes try every position; most texts hold no "@" and no two colons close together.
  if (text.includes("@")) for (const m of text.matchAll(EMAIL)) add("email", m.index, m.index + m[0].length, 0.95);
  if (AT_SPELLED.test(text))
    for (const m of text.matchAll(EMAIL_SPELLED)) add("email", m.index, m.index + m[0].length, 0.85);
  for (const m of text.matchAll(IPV4)) {
    if (isIP(m[0]) === 4) add("ip_address", m.index, m.index + m[0].length, 0.9);
  }
  for (const m of COLONS.test(text) ? text.matchAll(IPV6) : []) {
    if (m[0].length >= 3 && isIP(m[0]) === 6 && m[0] !== "::") add("ip_address", m.index, m.index + m[0].length, 0.9);
  }
  const taken = (s: number, e: number) => out.some((f) => s < f.end && e > f.start);
  const regions = options.phoneRegion === undefined ? PHONE_REGIONS : [options.phoneRegion, ...PHONE_REGIONS];
  for (const m of text.matchAll(PHONE)) {
    const candidate = m[0].replace(EXTENSION, "");
    const digits = candidate.replace(/\D/g, "");
    if (digits.length < 7 || digits.length > 15 || taken(m.index, m.index + candidate.length)) continue;
    // Dates and times are not phone numbers.
    if (/^\d{4}[-./]\d{1,2}[-./]\d{1,2}|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$/.test(candidate)) continue;
    if (text[m.index + m[0].length] === ":") continue;
    // A postcode (Brazil's 75534-030, Portugal's 3610-114) named as one.
    if (POSTCODE_CONTEXT.test(text.slice(Math.max(0, m.index - 40), m.index))) continue;
    // Two space-separated groups are as often a house number and a postcode: only with a phone word near.
    const groups = candidate.split(/[ .()-]+/).filter((g) => g !== "").length;
    const end = m.index + m[0].length;
    const context =
      PHONE_CONTEXT.test(text.slice(Math.max(0, m.index - 40), m.index)) || PHONE_AFTER.test(text.slice(end, end + 20));
    // A group of six digits or more ("0393 1144137") is as often an order or account number: only with a phone word.
    if (!context && /\d{6}/.test(candidate.replace(/^\+\d{1,3}/, ""))) continue;
    // A span of years ("the seasons 2018-2019", "1947-1949") or of round numbers ("500-1000 words") is
    // digits some regions would dial.
    const span = /^(\d+) ?[-/] ?(\d+)$/.exec(candidate);
    if (span !== null && !context && Number(span[2]) > Number(span[1])) {
      const [from, to] = [span[1] as string, span[2] as string];
      if (/^(?:1[89]|20)\d\d$/.test(from) && /^(?:1[89]|20)\d\d$/.test(to)) continue;
      if (from.endsWith("00") && to.endsWith("00")) continue;
    }
    if (
      !candidate.startsWith("+") &&
      !context &&
      (groups < 3 || /\d \d+$/.test(candidate)) &&
      !/[-.()]/.test(candidate)
    )
      continue;
    let confidence = 0;
    if (candidate.startsWith("+")) {
      if (isValidPhoneNumber(candidate)) confidence = 0.9;
      else if (isPossiblePhoneNumber(candidate)) confidence = 0.6;
    } else {
      for (const region of regions) {
        if (isValidPhoneNumber(candidate, region)) {
          confidence = 0.8;
          break;
        }
      }
    }
    if (confidence > 0) add("phone", m.index, m.index + m[0].length, confidence);
  }
  for (const m of text.matchAll(PHONE_COMPACT)) {
    if (taken(m.index, m.index + m[0].length)) continue;
    const plus = m[0].startsWith("+");
    const end = m.index + m[0].length;
    if (
      !plus &&
      !PHONE_WORD.test(text.slice(Math.max(0, m.index - 30), m.index)) &&
      !PHONE_AFTER.test(text.slice(end, end + 20))
    )
      continue;
    const valid = plus ? isValidPhoneNumber(m[0]) : regions.some((region) => isValidPhoneNumber(m[0], region));
    if (valid) add("phone", m.index, m.index + m[0].length, plus ? 0.85 : 0.75);
  }
  return out;
}
