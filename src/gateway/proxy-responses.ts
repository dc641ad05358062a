import { AgentwallError } from "../errors.js";
import type { TextSource } from "../guard/injection.js";

/** One scanned text: where it sits in the request or answer, and how to put the guarded text back. */
export interface Slot {
  readonly text: string;
  readonly source: TextSource;
  readonly put: (text: string) => void;
  /** Set when `source` relaxes a check and the caller's configuration establishes it ({@link SourceTrust}). */
  readonly trusted?: true;
  /**
   * A group (see {@link jsonSlots}): `text` is these parts' texts joined by newlines and is scanned
   * once; the parts are scanned one by one only where that scan found something to redact, and `put`
   * is never called on the group itself.
   */
  readonly parts?: readonly Slot[];
  /**
   * A message of the conversation (its content, a tool's result, the instructions), in the order the
   * model reads them: where two meet, an injection split across them is looked for (`Guard.scanSeam`).
   */
  readonly turn?: true;
}

/** `slots` as messages of the conversation ({@link Slot.turn}). */
export function turns(slots: readonly Slot[]): Slot[] {
  return slots.map((slot) => ({ ...slot, turn: true }));
}

/**
 * Every string in a JSON value — a tool's parameter schema, whose property descriptions, titles, enums,
 * defaults and even property names reach the model as instructions ("tool poisoning") — as one group
 * slot of `source` (none when there is no string). Scanned as one text: one scan per string cost 937 ms
 * for a 0.5 MB schema of 60,000 strings, the joined text 38 ms. Strings are rewritten in place on
 * redaction; a property name by renaming the property. Walks with its own stack, so a deeply nested
 * schema cannot overflow the call stack.
 */
export function jsonSlots(value: unknown, source: TextSource): Slot[] {
  return grouped(jsonStrings(value, source), { source });
}

/**
 * Slots of one message's or one schema's texts as a single group slot (none when empty, the slot
 * itself when alone): one scan for the lot, as the model reads them together. Scanned one by one, a
 * 1 MB request of tiny content parts cost one guard scan per part.
 */
export function grouped(parts: readonly Slot[], from: Pick<Slot, "source" | "trusted">): Slot[] {
  if (parts.length <= 1) return [...parts];
  return [{ text: parts.map((p) => p.text).join("\n"), ...from, put: () => undefined, parts }];
}

/**
 * The relaxing sources a caller's configuration establishes. A role claimed in a request never
 * relaxes a check by itself: `system`/`developer` messages (and Responses `instructions`) are scanned
 * as the operator's system prompt only for a caller granted `guard:trusted_system`, and `user`
 * messages as a trusted agent's only for an agent identity (subject `agent:<id>`) granted
 * `guard:trusted_agent`. Everything else is scanned as the user's (tool results stricter).
 */
export interface SourceTrust {
  readonly system: boolean;
  readonly agent: boolean;
}

export const NO_TRUST: SourceTrust = Object.freeze({ system: false, agent: false });

/** The source a message of `role` is scanned as, and whether it is trusted. */
export function messageSource(role: string, trust: SourceTrust): Pick<Slot, "source" | "trusted"> {
  if (role === "tool" || role === "function") return { source: "tool" };
  if ((role === "system" || role === "developer") && trust.system) return { source: "system", trusted: true };
  if (role === "user" && trust.agent) return { source: "agent", trusted: true };
  return { source: "user" };
}

function jsonStrings(value: unknown, source: TextSource): Slot[] {
  const slots: Slot[] = [];
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      node.forEach((v, i) => {
        if (typeof v === "string") slots.push({ text: v, source, put: (t) => (node[i] = t) });
        else stack.push(v);
      });
    } else if (typeof node === "object" && node !== null) {
      const holder = node as Record<string, unknown>;
      for (const key of Object.keys(holder)) {
        const v = holder[key];
        slots.push({
          text: key,
          source,
          put: (t) => {
            if (t === key) return;
            holder[t] = holder[key];
            delete holder[key];
          },
        });
        if (typeof v === "string") slots.push({ text: v, source, put: (t) => (holder[key] = t) });
        else stack.push(v);
      }
    }
  }
  return slots;
}

/** A function call named in a request's history or in a model's answer. */
export interface NamedCall {
  readonly name: string;
  readonly arguments: string;
}

const TEXT = { type: "string", maxLength: 1_000_000 } as const;
const ID = { type: "string", maxLength: 200 } as const;
const PART = {
  anyOf: [
    {
      type: "object",
      required: ["type", "text"],
      additionalProperties: false,
      properties: { type: { const: "input_text" }, text: TEXT },
    },
    {
      type: "object",
      required: ["type", "text"],
      additionalProperties: false,
      properties: {
        type: { const: "output_text" },
        text: TEXT,
        annotations: { type: "array", maxItems: 0 },
      },
    },
  ],
} as const;

/**
 * What `POST /v1/responses` accepts (OpenAI's Responses API, the parts whose every text can be
 * scanned): `input` as text or items — messages with text parts, function calls and their outputs —
 * `instructions`, function tools, and the sampling fields. Anything else (files, images, built-in
 * tools, `previous_response_id`, whose context agentwall never saw) is refused by name.
 */
export const RESPONSES_SCHEMA = {
  type: "object",
  required: ["model", "input"],
  additionalProperties: false,
  properties: {
    model: { type: "string", minLength: 1, maxLength: 200 },
    input: {
      anyOf: [
        TEXT,
        {
          type: "array",
          minItems: 1,
          maxItems: 2000,
          items: {
            anyOf: [
              {
                type: "object",
                required: ["role", "content"],
                additionalProperties: false,
                properties: {
                  type: { const: "message" },
                  id: ID,
                  status: { enum: ["in_progress", "completed", "incomplete"] },
                  role: { enum: ["user", "assistant", "system", "developer"] },
                  content: { anyOf: [TEXT, { type: "array", maxItems: 200, items: PART }] },
                },
              },
              {
                type: "object",
                required: ["type", "call_id", "name", "arguments"],
                additionalProperties: false,
                properties: {
                  type: { const: "function_call" },
                  id: ID,
                  status: { enum: ["in_progress", "completed", "incomplete"] },
                  call_id: ID,
                  name: { type: "string", minLength: 1, maxLength: 128 },
                  arguments: TEXT,
                },
              },
              {
                type: "object",
                required: ["type", "call_id", "output"],
                additionalProperties: false,
                properties: { type: { const: "function_call_output" }, id: ID, call_id: ID, output: TEXT },
              },
            ],
          },
        },
      ],
    },
    instructions: TEXT,
    tools: {
      type: "array",
      maxItems: 128,
      items: {
        type: "object",
        required: ["type", "name"],
        additionalProperties: false,
        properties: {
          type: { const: "function" },
          name: { type: "string", minLength: 1, maxLength: 128 },
          description: { type: "string", maxLength: 100_000 },
          parameters: { type: "object" },
          strict: { type: "boolean" },
        },
      },
    },
    tool_choice: {
      anyOf: [
        { enum: ["auto", "none", "required"] },
        {
          type: "object",
          required: ["type", "name"],
          additionalProperties: false,
          properties: { type: { const: "function" }, name: { type: "string", maxLength: 128 } },
        },
      ],
    },
    parallel_tool_calls: { type: "boolean" },
    max_output_tokens: { type: "integer", minimum: 1 },
    temperature: { type: "number", minimum: 0, maximum: 2 },
    top_p: { type: "number", minimum: 0, maximum: 1 },
    stream: { type: "boolean" },
    store: { type: "boolean" },
    user: { type: "string", maxLength: 200 },
    metadata: { type: "object", maxProperties: 16, additionalProperties: { type: "string", maxLength: 512 } },
  },
} as const;

type Part = { type: "input_text" | "output_text"; text: string };
type InputItem =
  | { type?: "message"; id?: string; role: string; content: string | Part[] }
  | { type: "function_call"; id?: string; call_id: string; name: string; arguments: string }
  | { type: "function_call_output"; id?: string; call_id: string; output: string };

/** A `/v1/responses` request as the schema admits it. */
export interface ResponsesRequest {
  model: string;
  input: string | InputItem[];
  instructions?: string;
  tools?: Array<{ type: "function"; name: string; description?: string; parameters?: unknown }>;
  max_output_tokens?: number;
  [key: string]: unknown;
}

/** Every text of a Responses request; a role the caller claims never relaxes a check ({@link SourceTrust}). */
export function responsesRequestSlots(body: ResponsesRequest, trust: SourceTrust): Slot[] {
  const slots: Slot[] = [];
  // The end-user id and the metadata go to the provider too: a key or an address in them leaves all the same.
  const attributes: Slot[] = jsonStrings(body.metadata, "user");
  if (typeof body.user === "string") {
    const text = body.user;
    attributes.push({ text, source: "user", put: (t) => (body.user = t) });
  }
  slots.push(...grouped(attributes, { source: "user" }));
  const ids: Slot[] = [];
  if (typeof body.instructions === "string") {
    const text = body.instructions;
    slots.push({ text, ...messageSource("system", trust), put: (t) => (body.instructions = t), turn: true });
  }
  if (typeof body.input === "string") {
    const text = body.input;
    slots.push({ text, ...messageSource("user", trust), put: (t) => (body.input = t), turn: true });
  } else
    for (const item of body.input) {
      // Item and call ids go to the provider too: free text up to 200 characters.
      const fields = item as { id?: unknown; call_id?: unknown };
      for (const key of ["id", "call_id"] as const) {
        const text = fields[key];
        if (typeof text === "string") ids.push({ text, source: "user", put: (t) => (fields[key] = t) });
      }
      if (item.type === "function_call") {
        slots.push({ text: item.name, source: "user", put: (t) => (item.name = t) });
        slots.push({ text: item.arguments, source: "user", put: (t) => (item.arguments = t) });
      } else if (item.type === "function_call_output") {
        // A tool's result: scanned as tool text (stricter).
        slots.push({ text: item.output, source: "tool", put: (t) => (item.output = t), turn: true });
      } else {
        const from = messageSource(item.role, trust);
        if (typeof item.content === "string") {
          const text = item.content;
          slots.push({ text, ...from, put: (t) => (item.content = t), turn: true });
        } else
          slots.push(
            ...turns(
              grouped(
                item.content.map((part) => ({ text: part.text, ...from, put: (t: string) => (part.text = t) })),
                from,
              ),
            ),
          );
      }
    }
  for (const tool of body.tools ?? []) {
    slots.push({ text: tool.name, source: "user", put: (t) => (tool.name = t) });
    if (typeof tool.description === "string") {
      const text = tool.description;
      slots.push({ text, source: "user", put: (t) => (tool.description = t) });
    }
    slots.push(...jsonSlots(tool.parameters, "user"));
  }
  slots.push(...grouped(ids, { source: "user" }));
  return slots;
}

/** Function calls in a Responses request's history. */
export function responsesHistoryCalls(body: ResponsesRequest): NamedCall[] {
  if (typeof body.input === "string") return [];
  return body.input.flatMap((i) => (i.type === "function_call" ? [{ name: i.name, arguments: i.arguments }] : []));
}

/** A Responses answer: `output` items and `usage`, the rest passed through as it came. */
export interface ResponsesAnswer {
  output?: unknown;
  output_text?: unknown;
  usage?: { input_tokens?: unknown; output_tokens?: unknown; total_tokens?: unknown };
  [key: string]: unknown;
}

const fail = (why: string) => new AgentwallError("ERR_UPSTREAM_FAILED", `the answer's ${why}`);

/**
 * The fields a Responses answer may hold besides `output`: ids, times, status and counts, and the
 * request's own settings echoed back. Any other field (and a non-null `error`) fails closed: the answer
 * is relayed as it came, so nothing unscanned may carry text.
 */
const RESPONSE_KEYS = new Set([
  ...["id", "object", "created_at", "completed_at", "status", "error", "incomplete_details", "model", "output"],
  ...["output_text", "usage", "instructions", "max_output_tokens", "max_tool_calls", "parallel_tool_calls"],
  ...["previous_response_id", "conversation", "reasoning", "service_tier", "store", "temperature", "text"],
  ...["tool_choice", "tools", "top_logprobs", "top_p", "presence_penalty", "frequency_penalty", "truncation"],
  ...["user", "metadata", "background", "safety_identifier", "prompt_cache_key", "prompt_cache_retention"],
  ...["billing", "prompt"],
]);
/** The fields of each output item and part type this relays; any other non-null field fails closed. */
const ITEM_KEYS: Readonly<Record<string, ReadonlySet<string>>> = {
  message: new Set(["id", "type", "role", "status", "content"]),
  function_call: new Set(["id", "type", "call_id", "name", "arguments", "status"]),
  reasoning: new Set(["id", "type", "summary", "content", "encrypted_content", "status"]),
  output_text: new Set(["type", "text", "annotations", "logprobs"]),
  refusal: new Set(["type", "refusal"]),
  summary_text: new Set(["type", "text"]),
  reasoning_text: new Set(["type", "text"]),
};

/**
 * A word the upstream sets (a role, a finish reason) as relayed: letters and underscores, at most 32 —
 * room for `assistant`, `tool_calls` or a compatible server's `MAX_TOKENS`, none for text the guards did
 * not read (no digits, spaces or punctuation: no key, no sentence, no markup).
 */
export function providerWord(value: unknown, what: string): string {
  if (typeof value !== "string" || !/^[A-Za-z_]{1,32}$/.test(value))
    throw new AgentwallError("ERR_UPSTREAM_FAILED", `the answer's ${what} is not a word`);
  return value;
}

/** A choice's index as relayed: a whole number from 0. */
export function choiceIndex(value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)
    throw new AgentwallError("ERR_UPSTREAM_FAILED", "a choice has no index");
  return value;
}

/**
 * Usage as relayed, under each API's names: the three counts only, never other fields of the upstream's
 * usage object (text no guard read); undefined when the upstream reported none.
 */
export function relayedUsage(
  u: Readonly<Record<string, number>>,
  api: "chat" | "responses",
): Record<string, number | undefined> | undefined {
  if (Object.keys(u).length === 0) return undefined;
  return api === "chat"
    ? { prompt_tokens: u.prompt, completion_tokens: u.completion, total_tokens: u.total }
    : { input_tokens: u.prompt, output_tokens: u.completion, total_tokens: u.total };
}

/** A tool call's id as relayed: letters, digits and `_.:-`, at most 128 (OpenAI's are `call_…`). */
export function toolCallId(value: unknown): string {
  if (typeof value !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(value))
    throw new AgentwallError("ERR_UPSTREAM_FAILED", "a tool call's id is malformed");
  return value;
}

/**
 * The first field of an upstream's answer (or chunk, item, part) outside `keys` that `excused` does not
 * let through, or undefined: what the gateway relays must hold no field it did not scan.
 */
export function unknownField(
  holder: Record<string, unknown>,
  keys: ReadonlySet<string>,
  excused: (key: string, value: unknown) => boolean = () => false,
): string | undefined {
  for (const [key, value] of Object.entries(holder)) if (!keys.has(key) && !excused(key, value)) return key;
  return undefined;
}

/** Throws when `holder` has a non-null field outside `keys`. */
function onlyKnown(holder: Record<string, unknown>, keys: ReadonlySet<string>, where: string): void {
  const key = unknownField(holder, keys, (_, value) => value === null);
  if (key !== undefined) throw fail(`${where} has an unknown field ${key.slice(0, 40)}`);
}

/** Absent, null or an empty list. */
export const empty = (value: unknown) =>
  value === undefined || value === null || (Array.isArray(value) && value.length === 0);

/**
 * Every text of a Responses answer: message text and refusals, function-call names and arguments,
 * reasoning summaries and raw reasoning text, and `output_text` if the upstream adds it. An output item
 * or part of any other type (a built-in tool's call, which this route never asks for), a field outside
 * the known ones, citations, logprobs and encrypted reasoning cannot be scanned and fail closed.
 */
export function responsesAnswerSlots(answer: ResponsesAnswer): Slot[] {
  const slots: Slot[] = [];
  /** The text at `holder[key]` as a slot; `what` names it in the error when it is not text. */
  const textOf = (holder: Record<string, unknown>, key: string, what: string) => {
    const value = holder[key];
    if (typeof value !== "string") throw fail(`${what} is not text`);
    slots.push({ text: value, source: "agent", put: (t) => (holder[key] = t) });
  };
  onlyKnown(answer, RESPONSE_KEYS, "response");
  if (!empty(answer.error)) throw fail("response reports an error");
  if (!Array.isArray(answer.output)) throw fail("output is missing");
  for (const raw of answer.output as unknown[]) {
    if (typeof raw !== "object" || raw === null) throw fail("output item is not an object");
    const item = raw as Record<string, unknown>;
    const type = String(item.type);
    const itemKeys = ITEM_KEYS[type];
    if (itemKeys === undefined || type.endsWith("_text") || type === "refusal")
      throw fail(`output item ${type.slice(0, 40)} cannot be scanned`);
    onlyKnown(item, itemKeys, `${type} item`);
    /** The item's parts under `key`, each of one of `types`, with known fields only. */
    const parts = (key: string, types: readonly string[]): Record<string, unknown>[] => {
      const list = item[key] ?? [];
      if (!Array.isArray(list) || list.some((p) => typeof p !== "object" || p === null))
        throw fail(`${type} ${key} is malformed`);
      for (const part of list as Record<string, unknown>[]) {
        const partType = String(part.type);
        if (!types.includes(partType)) throw fail(`${type} part ${partType.slice(0, 40)} cannot be scanned`);
        onlyKnown(part, ITEM_KEYS[partType] as ReadonlySet<string>, `${partType} part`);
      }
      return list as Record<string, unknown>[];
    };
    if (type === "message") {
      for (const part of parts("content", ["output_text", "refusal"])) {
        if (part.type === "refusal") {
          textOf(part, "refusal", `${type} refusal`);
          continue;
        }
        textOf(part, "text", `${type} text`);
        // Citations carry titles and URLs, logprobs token texts: neither is scanned, neither relayed.
        if (!empty(part.annotations)) throw fail("message text has annotations, which are not relayed");
        if (!empty(part.logprobs)) throw fail("message text has logprobs, which carry text");
      }
    } else if (type === "function_call") {
      textOf(item, "name", `${type} name`);
      textOf(item, "arguments", `${type} arguments`);
    } else {
      for (const part of parts("summary", ["summary_text"])) textOf(part, "text", `${type} text`);
      // Raw reasoning text (open-weight models) is scanned like the summaries.
      for (const part of parts("content", ["reasoning_text"])) textOf(part, "text", `${type} text`);
      if (!empty(item.encrypted_content)) throw fail("reasoning carries encrypted content, which cannot be scanned");
    }
  }
  if (answer.output_text !== undefined) textOf(answer, "output_text", "output_text");
  return slots;
}

/**
 * The Responses answer the caller gets (after {@link responsesAnswerSlots} checked its shape and the
 * guard scanned its texts), re-made as the stream re-makes its events: agentwall's ids (`resp_<request
 * id>`, `msg_<n>`, `fc_<n>`, `rs_<n>`; a call's `call_id` passed on when it is an identifier), the model
 * asked for, the status as a word, the scanned texts, and usage as its three counts. The settings a
 * response echoes from its request, and the upstream's ids, are text no guard read: they do not cross.
 */
export function relayedResponse(answer: ResponsesAnswer, meta: { id: string; model: string }): Record<string, unknown> {
  const output = (answer.output as Record<string, unknown>[]).map((item, at) => {
    const parts = (key: string) => (item[key] ?? []) as Record<string, unknown>[];
    if (item.type === "message")
      return {
        id: `msg_${at}`,
        type: "message",
        role: "assistant",
        status: "completed",
        content: parts("content").map((p) =>
          p.type === "refusal"
            ? { type: "refusal", refusal: p.refusal }
            : { type: "output_text", text: p.text, annotations: [] },
        ),
      };
    if (item.type === "function_call")
      return {
        id: `fc_${at}`,
        type: "function_call",
        status: "completed",
        call_id: toolCallId(item.call_id),
        name: item.name,
        arguments: item.arguments,
      };
    const reasoning: Record<string, unknown> = {
      id: `rs_${at}`,
      type: "reasoning",
      summary: parts("summary").map((p) => ({ type: "summary_text", text: p.text })),
    };
    const content = parts("content");
    if (content.length > 0) reasoning.content = content.map((p) => ({ type: "reasoning_text", text: p.text }));
    return reasoning;
  });
  const out: Record<string, unknown> = {
    id: `resp_${meta.id}`,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    model: meta.model,
    status: answer.status === undefined || answer.status === null ? "completed" : providerWord(answer.status, "status"),
    output,
  };
  const reason = (answer.incomplete_details as { reason?: unknown } | null | undefined)?.reason;
  if (reason !== undefined && reason !== null)
    out.incomplete_details = { reason: providerWord(reason, "incomplete reason") };
  if (typeof answer.output_text === "string") out.output_text = answer.output_text;
  const usage = relayedUsage(responsesUsage(answer), "responses");
  if (usage !== undefined) out.usage = usage;
  return out;
}

/** Function calls in a Responses answer (after {@link responsesAnswerSlots} checked their shape). */
export function responsesAnswerCalls(answer: ResponsesAnswer): NamedCall[] {
  return (answer.output as Record<string, unknown>[]).flatMap((i) =>
    i.type === "function_call" ? [{ name: String(i.name), arguments: String(i.arguments) }] : [],
  );
}

/** The token counts of a Responses answer, as `{prompt, completion, total}`. */
export function responsesUsage(answer: ResponsesAnswer): Record<string, number> {
  const out: Record<string, number> = {};
  const pairs = [
    ["prompt", "input_tokens"],
    ["completion", "output_tokens"],
    ["total", "total_tokens"],
  ] as const;
  for (const [k, field] of pairs) {
    const v = answer.usage?.[field];
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) out[k] = v;
  }
  return out;
}
