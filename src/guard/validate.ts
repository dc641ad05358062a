import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { isValidPhoneNumber } from "libphonenumber-js";
import { AgentwallError } from "../errors.js";
import { LINEAR_REGEXP_ENGINE } from "./regexp.js";

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

function ajv(): Ajv {
  // Strict: unknown keywords and formats are errors; no coercion, no defaults written into the data.
  // `pattern` and `patternProperties` run on a linear-time engine: schemas may come from callers.
  const a = new Ajv({
    strict: true,
    allErrors: true,
    coerceTypes: false,
    useDefaults: false,
    removeAdditional: false,
    code: { regExp: LINEAR_REGEXP_ENGINE },
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
 * A compiled JSON Schema validator (Ajv, strict mode; formats email, phone, url, uuid, alphanumeric,
 * safe_filename and more). The schema itself is checked when compiled: an unknown keyword or format, or
 * a pattern the linear-time engine cannot run (lookaround, backreferences), throws `ERR_INVALID_ARGUMENT`.
 */
export class InputValidator {
  readonly #validate: ValidateFunction;

  constructor(schema: Record<string, unknown>) {
    try {
      this.#validate = ajv().compile(schema);
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

/** Converts the guides' `{field: {required, type, min_length, …}}` schema into JSON Schema. */
export function fromFieldSchema(fields: Readonly<Record<string, GuideFieldRule>>): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const [name, rule] of Object.entries(fields)) {
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
    if (rule.allowed_values !== undefined) p.enum = [...rule.allowed_values];
    properties[name] = p;
    if (rule.required === true) required.push(name);
  }
  return { type: "object", properties, required, additionalProperties: false };
}
