import { Ajv, type ValidateFunction } from "ajv";
import { AgentwallError } from "../errors.js";
import { parseStrictJson } from "../guard/json-strict.js";
import { LINEAR_REGEXP_ENGINE } from "../guard/regexp.js";
import { bucketKey, type RateLimiter } from "../monitor/ratelimit/limiter.js";

/** One tool: who may call it, what its arguments must look like, how often. */
export interface ToolRule {
  readonly name: string;
  /** Roles and agent ids allowed to call it; a tool not listed at all is denied. */
  readonly allow: { readonly roles?: readonly string[]; readonly agents?: readonly string[] };
  /** JSON Schema of the arguments. Objects refuse properties they do not declare unless they say otherwise. */
  readonly argsSchema?: Readonly<Record<string, unknown>>;
  readonly callsPerMinute?: number;
}

/** A caller of a tool: a user (by roles) or an agent (by id, plus roles). */
export interface ToolCaller {
  readonly id: string;
  readonly roles: readonly string[];
  readonly kind: "user" | "agent";
}

export type ToolDecision =
  | { readonly allowed: true; readonly tool: string; readonly args: unknown }
  | {
      readonly allowed: false;
      readonly code: "ERR_TOOL_UNKNOWN" | "ERR_TOOL_DENIED" | "ERR_TOOL_ARGS_INVALID" | "ERR_RATE_LIMITED";
      readonly tool: string;
      readonly reason: string;
    };

const NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
const EMPTY_ARGS = { type: "object", additionalProperties: false, properties: {} };

// Objects in an arguments schema close by default: an undeclared property is refused.
function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (typeof schema !== "object" || schema === null) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema))
    out[k] = k === "const" || k === "enum" || k === "default" ? v : closeObjects(v);
  if (
    (out.type === "object" || "properties" in out) &&
    !("additionalProperties" in out) &&
    !("unevaluatedProperties" in out)
  ) {
    out.additionalProperties = false;
  }
  return out;
}

/**
 * Tool policies for agents: which role or agent may call which tool with which arguments. Arguments are
 * validated with Ajv in strict mode — no type coercion, no defaults written, no undeclared properties —
 * from JSON text with duplicate keys refused. An app acting for a user (`onBehalfOf`) is checked as both.
 *
 * @example
 * ```ts
 * const tools = new ToolPolicy([{ name: "search", allow: { roles: ["user"] }, argsSchema: { type: "object", properties: { q: { type: "string" } }, required: ["q"] } }]);
 * const d = await tools.checkToolCall({ id: "alice", roles: ["user"], kind: "user" }, "search", '{"q":"x"}');
 * ```
 */
export class ToolPolicy {
  readonly #rules: ReadonlyMap<string, { rule: ToolRule; validate: ValidateFunction }>;
  readonly #limiter: RateLimiter | undefined;

  constructor(rules: readonly ToolRule[], options: { rateLimiter?: RateLimiter } = {}) {
    const ajv = new Ajv({
      strict: true,
      coerceTypes: false,
      useDefaults: false,
      removeAdditional: false,
      allErrors: false,
      code: { regExp: LINEAR_REGEXP_ENGINE },
    });
    const map = new Map<string, { rule: ToolRule; validate: ValidateFunction }>();
    for (const rule of rules) {
      if (!NAME.test(rule.name))
        throw new AgentwallError(
          "ERR_CONFIG_INVALID",
          `config field /tools: invalid tool name ${JSON.stringify(rule.name)}`,
        );
      if (
        rule.callsPerMinute !== undefined &&
        (!Number.isSafeInteger(rule.callsPerMinute) || rule.callsPerMinute < 1)
      ) {
        throw new AgentwallError(
          "ERR_CONFIG_INVALID",
          `config field /tools: callsPerMinute of ${rule.name} must be a positive integer`,
        );
      }
      if (map.has(rule.name))
        throw new AgentwallError("ERR_CONFIG_INVALID", `config field /tools: tool ${rule.name} is listed twice`);
      let validate: ValidateFunction;
      try {
        validate = ajv.compile(closeObjects(rule.argsSchema ?? EMPTY_ARGS) as Record<string, unknown>);
      } catch (error) {
        throw new AgentwallError(
          "ERR_CONFIG_INVALID",
          `config field /tools: the argument schema of ${rule.name} is invalid: ${error instanceof Error ? error.message : "?"}`,
          { cause: error },
        );
      }
      map.set(rule.name, { rule, validate });
    }
    this.#rules = map;
    this.#limiter = options.rateLimiter;
  }

  #mayCall(rule: ToolRule, caller: ToolCaller): boolean {
    if (caller.roles.includes("admin")) return true;
    if (caller.kind === "agent" && (rule.allow.agents ?? []).includes(caller.id)) return true;
    return caller.roles.some((r) => (rule.allow.roles ?? []).includes(r));
  }

  /** Whether `caller` may offer a tool to a model at all (a tool definition, before any call). */
  mayUse(caller: ToolCaller, tool: string): ToolDecision {
    const entry = this.#rules.get(tool);
    if (entry === undefined)
      return { allowed: false, code: "ERR_TOOL_UNKNOWN", tool: String(tool), reason: "tool is not in the policy" };
    if (!this.#mayCall(entry.rule, caller))
      return {
        allowed: false,
        code: "ERR_TOOL_DENIED",
        tool,
        reason: `${caller.kind} ${caller.id} may not call ${tool}`,
      };
    return { allowed: true, tool, args: undefined };
  }

  /** Decides one tool call. `args` is JSON text (preferred: duplicate keys are caught) or a parsed value. */
  async checkToolCall(
    caller: ToolCaller,
    tool: string,
    /** JSON text (preferred: duplicate keys are caught) or an already parsed value. */
    args: unknown,
    onBehalfOf?: ToolCaller,
  ): Promise<ToolDecision> {
    const entry = typeof tool === "string" ? this.#rules.get(tool) : undefined;
    if (entry === undefined)
      return { allowed: false, code: "ERR_TOOL_UNKNOWN", tool: String(tool), reason: "tool is not in the policy" };
    const { rule, validate } = entry;
    for (const who of onBehalfOf === undefined ? [caller] : [caller, onBehalfOf]) {
      if (!this.#mayCall(rule, who)) {
        return { allowed: false, code: "ERR_TOOL_DENIED", tool, reason: `${who.kind} ${who.id} may not call ${tool}` };
      }
    }
    let value: unknown;
    try {
      // A copy, so nothing the validator does can touch the caller's object.
      value = typeof args === "string" ? parseStrictJson(args) : structuredClone(args);
    } catch (error) {
      return {
        allowed: false,
        code: "ERR_TOOL_ARGS_INVALID",
        tool,
        reason: error instanceof AgentwallError ? error.message : "unreadable arguments",
      };
    }
    if (!validate(value)) {
      const e = validate.errors?.[0];
      const where = e?.instancePath === "" || e === undefined ? "arguments" : `arguments${e.instancePath}`;
      const detail =
        e?.keyword === "additionalProperties"
          ? `unexpected property ${String(e.params.additionalProperty)}`
          : (e?.message ?? "invalid");
      return { allowed: false, code: "ERR_TOOL_ARGS_INVALID", tool, reason: `${where}: ${detail}` };
    }
    if (rule.callsPerMinute !== undefined && this.#limiter !== undefined) {
      const subject = onBehalfOf === undefined ? caller.id : `${caller.id}>${onBehalfOf.id}`;
      const limit = { limit: rule.callsPerMinute, periodMs: 60_000, burst: rule.callsPerMinute - 1 };
      const d = await this.#limiter.take(bucketKey(`tool:${tool}`, limit, subject), limit);
      if (!d.allowed)
        return {
          allowed: false,
          code: "ERR_RATE_LIMITED",
          tool,
          reason: `more than ${rule.callsPerMinute} calls per minute`,
        };
    }
    return { allowed: true, tool, args: value };
  }
}
