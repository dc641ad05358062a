import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { RegExpEngine } from "ajv/dist/types/index.js";
import addFormatsModule from "ajv-formats";
import { isValidPhoneNumber } from "libphonenumber-js";
import { AgentwallError } from "../errors.js";
import { LINEAR_REGEXP_ENGINE, linearRegExp } from "./regexp.js";

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  ajv: Ajv,
  formats: string[],
) => Ajv;

/** One validation error: the field (a JSON pointer) and the rule it broke. */
export interface FieldError {
  readonly field: string;
  readonly rule: string;
  readonly message: string;
}

export type ValidationResult =
  { readonly valid: true } | { readonly valid: false; readonly errors: readonly FieldError[] };

function ajv(regExp: RegExpEngine, validateSchema: boolean): Ajv {
  // Strict: unknown keywords and formats are errors; no coercion, no defaults written into the data.
  // `pattern` and `patternProperties` run on a linear-time engine: schemas may come from callers.
  const a = new Ajv({
    strict: true,
    allErrors: true,
    coerceTypes: false,
    useDefaults: false,
    removeAdditional: false,
    validateSchema,
    code: { regExp },
  });
  addFormats(a, ["email", "uri", "url", "uuid", "date", "date-time", "ipv4", "ipv6", "hostname"]);
  a.addFormat("phone", { type: "string", validate: (s: string) => s.length <= 32 && isValidPhoneNumber(s) });
  a.addFormat("alphanumeric", /^[\p{L}\p{N}]+$/u);
  a.addFormat("safe_filename", {
    type: "string",
    validate: (s: string) =>
      /^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$/.test(s) &&
      !s.includes("..") &&
      !/^(?:con|prn|aux|nul|com\d|lpt\d)(?:\.|$)/i.test(s),
  });
  return a;
}

function toFieldErrors(errors: readonly ErrorObject[] | null | undefined): FieldError[] {
  return (errors ?? []).map((e) => {
    const missing =
      e.keyword === "required" ? `/${String((e.params as { missingProperty?: string }).missingProperty)}` : "";
    const extra =
      e.keyword === "additionalProperties"
        ? `/${String((e.params as { additionalProperty?: string }).additionalProperty)}`
        : "";
    const field = `${e.instancePath}${missing}${extra}` || "/";
    const rule = e.keyword === "format" ? `format:${String((e.params as { format?: string }).format)}` : e.keyword;
    return { field, rule, message: `${field}: ${e.message ?? rule}` };
  });
}

/**
 * One Ajv checks every schema against the JSON Schema meta-schema, which it compiles once: a new
 * instance compiled it first, 7.5 ms of each `input_validation` request. Each schema is then compiled
 * on an Ajv of its own that skips that check, so nothing of one caller's schema stays in a shared
 * instance (Ajv keeps every pattern it compiled for the instance's life: 20,000 distinct patterns
 * held 3.9 GB).
 */
let meta: Ajv | undefined;
/** Compiled validators by schema text, newest last, with their patterns' program sizes. */
const COMPILED = new Map<string, { validate: ValidateFunction; weight: number }>();
const COMPILED_MAX = 256;
/** Pattern instructions the kept validators may hold in all (one is about 100 bytes). */
const COMPILED_WEIGHT_MAX = 100_000;
let compiledWeight = 0;
/** Schemas longer than this as JSON are compiled each time rather than kept. */
const COMPILED_KEY_MAX = 16_384;

function compile(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  const small = key.length <= COMPILED_KEY_MAX;
  const hit = small ? COMPILED.get(key) : undefined;
  if (hit !== undefined) {
    COMPILED.delete(key);
    COMPILED.set(key, hit);
    return hit.validate;
  }
  const checker = (meta ??= ajv(LINEAR_REGEXP_ENGINE, true));
  if (checker.validateSchema(schema) !== true)
    throw new Error(`schema is invalid: ${checker.errorsText(checker.errors)}`);
  let weight = 1;
  const counted: RegExpEngine = Object.assign(
    (pattern: string) => {
      const re = linearRegExp(pattern);
      weight += re.size;
      return re;
    },
    { code: LINEAR_REGEXP_ENGINE.code },
  );
  const validate = ajv(counted, false).compile(schema);
  // A schema heavier than a quarter of the budget is not kept: it would push out every other one.
  if (small && weight <= COMPILED_WEIGHT_MAX / 4) {
    COMPILED.set(key, { validate, weight });
    compiledWeight += weight;
    while (COMPILED.size > COMPILED_MAX || compiledWeight > COMPILED_WEIGHT_MAX) {
      const [oldest, entry] = COMPILED.entries().next().value as [string, { weight: number }];
      COMPILED.delete(oldest);
      compiledWeight -= entry.weight;
    }
  }
  return validate;
}

/**
 * A compiled JSON Schema validator (Ajv, strict mode; formats email, phone, url, uuid, alphanumeric,
 * safe_filename and more). The schema itself is checked when compiled: an unknown keyword or format, or
 * a pattern the linear-time engine cannot run (lookaround, backreferences), throws `ERR_INVALID_ARGUMENT`.
 * Compiled validators are shared by schema text (the 256 most recent, within a budget of pattern
 * instructions), so a schema that arrives with every request is compiled once.
 */
export class InputValidator {
  readonly #validate: ValidateFunction;

  constructor(schema: Record<string, unknown>) {
    try {
      this.#validate = compile(schema);
    } catch (error) {
      throw new AgentwallError(
        "ERR_INVALID_ARGUMENT",
        `invalid schema: ${error instanceof Error ? error.message : "?"}`,
      );
    }
  }

  validate(data: unknown): ValidationResult {
    return this.#validate(data) ? { valid: true } : { valid: false, errors: toFieldErrors(this.#validate.errors) };
  }
}

/** A field rule in the source guides' format. */
export interface GuideFieldRule {
  readonly required?: boolean;
  readonly type?:
    "string" | "integer" | "number" | "boolean" | "email" | "phone" | "url" | "uuid" | "alphanumeric" | "safe_filename";
  readonly min_length?: number;
  readonly max_length?: number;
  readonly pattern?: string;
  readonly min_value?: number;
  readonly max_value?: number;
  readonly allowed_values?: readonly unknown[];
}

const FORMATS = new Set(["email", "phone", "url", "uuid", "alphanumeric", "safe_filename"]);

const RULE_KEYS = new Set([
  "required",
  "type",
  "min_length",
  "max_length",
  "pattern",
  "min_value",
  "max_value",
  "allowed_values",
]);
/** Bounds on a field schema, which callers send with each request: a new one costs about 1 ms a field to compile. */
export const FIELD_SCHEMA_LIMITS = Object.freeze({ fields: 64, patternLength: 1000, allowedValues: 1000 });

/**
 * Converts the guides' `{field: {required, type, min_length, …}}` schema into JSON Schema. A rule that
 * is not an object, a rule name it does not know (a typo would otherwise check nothing), or a schema
 * past {@link FIELD_SCHEMA_LIMITS} throws `ERR_INVALID_ARGUMENT` naming the field.
 */
export function fromFieldSchema(fields: Readonly<Record<string, GuideFieldRule>>): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  const invalid = (field: string, why: string) =>
    new AgentwallError("ERR_INVALID_ARGUMENT", `field schema /${field.slice(0, 100)}: ${why}`);
  if (typeof fields !== "object" || fields === null || Array.isArray(fields))
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "a field schema is an object of field rules");
  const entries = Object.entries(fields);
  if (entries.length > FIELD_SCHEMA_LIMITS.fields)
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      `a field schema has at most ${FIELD_SCHEMA_LIMITS.fields} fields (this one ${entries.length})`,
    );
  for (const [name, rule] of entries) {
    if (typeof rule !== "object" || rule === null || Array.isArray(rule))
      throw invalid(name, "the rule is not an object");
    const unknown = Object.keys(rule).find((k) => !RULE_KEYS.has(k));
    if (unknown !== undefined) throw invalid(name, `unknown rule ${JSON.stringify(unknown.slice(0, 40))}`);
    if (rule.required !== undefined && typeof rule.required !== "boolean")
      throw invalid(name, "required is true or false");
    if (rule.allowed_values !== undefined && !Array.isArray(rule.allowed_values))
      throw invalid(name, "allowed_values is a list");
    if (typeof rule.pattern === "string" && rule.pattern.length > FIELD_SCHEMA_LIMITS.patternLength)
      throw invalid(name, `pattern longer than ${FIELD_SCHEMA_LIMITS.patternLength} characters`);
    if (Array.isArray(rule.allowed_values) && rule.allowed_values.length > FIELD_SCHEMA_LIMITS.allowedValues)
      throw invalid(name, `more than ${FIELD_SCHEMA_LIMITS.allowedValues} allowed_values`);
    const p: Record<string, unknown> = {};
    const type = rule.type ?? "string";
    if (FORMATS.has(type)) {
      p.type = "string";
      p.format = type === "url" ? "uri" : type;
    } else p.type = type;
    if (rule.min_length !== undefined) p.minLength = rule.min_length;
    if (rule.max_length !== undefined) p.maxLength = rule.max_length;
    if (rule.pattern !== undefined) p.pattern = rule.pattern;
    if (rule.min_value !== undefined) p.minimum = rule.min_value;
    if (rule.max_value !== undefined) p.maximum = rule.max_value;
    if (rule.allowed_values !== undefined) p.enum = [...(rule.allowed_values as readonly unknown[])];
    properties[name] = p;
    if (rule.required === true) required.push(name);
  }
  return { type: "object", properties, required, additionalProperties: false };
}
