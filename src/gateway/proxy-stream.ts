import { once } from "node:events";
import type { ServerResponse } from "node:http";
import { createParser } from "eventsource-parser";
import type { FastifyReply, FastifyRequest } from "fastify";
import { AgentwallError, isAgentwallError } from "../errors.js";
import type { EgressStream } from "../egress/client.js";
import type { GuardStream, GuardStreamRelease } from "../guard/pipeline.js";
import type { Instance } from "../instance.js";
import type { Principal } from "./auth.js";
import { choiceIndex, providerWord, relayedUsage, toolCallId, unknownField } from "./proxy-responses.js";

/** Top-level fields of a chat completion or chunk: ids, times, counts and the choices. Nothing else is relayed. */
export const CHUNK_KEYS = new Set([
  "id",
  "object",
  "created",
  "model",
  "system_fingerprint",
  "service_tier",
  "choices",
  "usage",
]);
const CHOICE_KEYS = new Set(["index", "delta", "finish_reason", "logprobs"]);

/** Azure OpenAI's content-filter results, beside the choices (prompt) and in each choice (answer). */
const FILTER_FIELDS = new Set(["prompt_filter_results", "content_filter_results"]);
const SEVERITY = /^(?:safe|low|medium|high)$/;

/**
 * Whether `key: value` is an Azure content-filter result that carries no text: flags, numbers and
 * severities only. One with text in it (a protected-material citation, a blocklist's name) is not.
 */
export function contentFilterField(key: string, value: unknown): boolean {
  if (!FILTER_FIELDS.has(key)) return false;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === "string") {
      if (!SEVERITY.test(node)) return false;
    } else if (typeof node === "object" && node !== null) {
      for (const v of Object.values(node as Record<string, unknown>)) stack.push(v);
    } else if (typeof node !== "number" && typeof node !== "boolean" && node !== null) return false;
  }
  return true;
}
const DELTA_KEYS = new Set(["role", "content", "refusal", "tool_calls", "reasoning", "reasoning_content"]);
/** Text fields of a delta, each scanned as its own stream. */
const TEXT_FIELDS = ["content", "refusal", "reasoning", "reasoning_content"] as const;
type TextField = (typeof TEXT_FIELDS)[number];
const MAX_CHOICES = 8;
const MAX_TOOL_CALLS = 128;

interface ToolCallBuffer {
  id: string;
  name: string;
  arguments: string;
}

interface ChoiceState {
  readonly streams: Map<TextField, GuardStream>;
  readonly tools: Map<number, ToolCallBuffer>;
  finish: string | null;
  role: string | undefined;
}

/** What the stream did, for the closing audit event. */
export interface StreamOutcome {
  outcome: "success" | "blocked" | "error";
  code?: string;
  findings: string[];
  redacted: number;
  usage: Record<string, number>;
  /** Characters of answer text (every text field, tool-call names and arguments) the upstream sent. */
  written: number;
}

/** The caller-facing chunk: only the fields we chose, never the upstream's bytes. */
function chunk(meta: { id: string; created: number; model: string }, choices: unknown[], usage?: unknown): string {
  const body: Record<string, unknown> = {
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    choices,
  };
  if (usage !== undefined) body.usage = usage;
  return `data: ${JSON.stringify(body)}\n\n`;
}

async function write(raw: ServerResponse, text: string): Promise<void> {
  if (raw.destroyed) throw new AgentwallError("ERR_CHANNEL_CLOSED", "the client went away");
  if (!raw.write(text)) await once(raw, "drain");
}

/** What a protocol (chat chunks, Responses events) gets from the relay. */
export interface RelayContext {
  /** A new output guard stream, for one text field. */
  readonly guard: () => GuardStream;
  /** The text a guard step released; records its findings; throws `ERR_GUARD_BLOCKED` on a block. */
  readonly released: (r: GuardStreamRelease) => string;
  /** A complete tool call, guarded (name and arguments) and checked against the tool policies. */
  readonly toolCall: (name: string, args: string) => Promise<{ name: string; arguments: string }>;
  /** The caller-facing id of this answer and its creation time (seconds). */
  readonly id: string;
  readonly created: number;
  readonly model: string;
}

/** One streaming wire format: how upstream events become caller events. */
export interface SseProtocol {
  /** One upstream event: what to send now (possibly ""). Throws to end the stream with an error. */
  event(data: string, name: string | undefined): Promise<string>;
  /** True once the upstream said the answer is complete; the relay stops reading. */
  complete(): boolean;
  /** Why the stream failed when the upstream ended before `complete()`. */
  readonly incomplete: string;
  /** Everything still held back (the guard streams' ends, checked tool calls), before the closing audit. */
  flush(): Promise<string>;
  /** Token counts as `{prompt, completion, total}`. */
  usage(): Record<string, number>;
  /** The final event(s), written after the closing audit event is durable. */
  final(usage: Record<string, number>): string;
  /** The error event that ends a failed stream. */
  error(code: string, message: string, requestId: string): string;
}

/**
 * Relays an upstream SSE stream to the caller through the output guard. Nothing reaches the client
 * unscanned: the protocol sends every text through its own {@link GuardStream} (held back so no finding
 * straddles what was sent), buffers tool calls until complete and has them checked against the tool
 * policies and the guard, and ends the stream on anything it does not know. A block or an error ends the
 * stream with an error event. `closing` (the durable audit event) runs before the final event is written.
 */
export async function relayStream(options: {
  instance: Instance;
  principal: Principal;
  request: FastifyRequest;
  reply: FastifyReply;
  upstream: EgressStream;
  model: string;
  protocol: (context: RelayContext) => SseProtocol;
  checkToolCall: (
    name: string,
    args: string,
  ) => Promise<{ allowed: true } | { allowed: false; code: string; reason: string }>;
  closing: (outcome: StreamOutcome) => Promise<void>;
  overheadMs: () => number;
}): Promise<void> {
  const { instance, reply } = options;
  const raw = reply.raw;
  const outcome: StreamOutcome = { outcome: "success", findings: [], redacted: 0, usage: {}, written: 0 };
  // Every guard stream the protocol opens, so the text received can be counted when the stream ends.
  const opened: GuardStream[] = [];
  let toolText = 0;
  const written = () => opened.reduce((n, g) => n + g.received, toolText);
  const findings = new Set<string>();
  const released = (r: GuardStreamRelease): string => {
    for (const f of r.findings) {
      findings.add(f.type);
      if (f.action === "redact") outcome.redacted++;
    }
    if (r.blocked)
      throw Object.assign(
        new AgentwallError("ERR_GUARD_BLOCKED", "the model's answer was blocked by the content guards"),
        { blocked: true },
      );
    return r.text;
  };
  const protocol = options.protocol({
    guard: () => {
      const g = instance.guard.stream({ direction: "output", source: "agent" });
      opened.push(g);
      return g;
    },
    released,
    toolCall: async (name, args) => {
      toolText += name.length + args.length;
      // Long arguments go to the guard's threads, as the proxy's other texts do.
      const verdictName = await instance.guard.scanAsync(name, { direction: "output", source: "agent" });
      const verdictArgs = await instance.guard.scanAsync(args, { direction: "output", source: "agent" });
      for (const v of [verdictName, verdictArgs]) {
        for (const f of v.findings) findings.add(f.type);
        if (v.verdict === "block") released({ text: "", blocked: true, findings: [] });
      }
      const d = await options.checkToolCall(verdictName.text, verdictArgs.text);
      if (!d.allowed)
        throw new AgentwallError(
          d.code as "ERR_TOOL_DENIED",
          `the model's answer calls a tool it may not: ${d.reason}`,
        );
      return { name: verdictName.text, arguments: verdictArgs.text };
    },
    id: options.request.id,
    created: Math.floor(Date.now() / 1000),
    model: options.model,
  });
  const events: { data: string; name: string | undefined }[] = [];
  const parser = createParser({ onEvent: (e) => events.push({ data: e.data, name: e.event }) });

  reply.hijack();
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
    "x-agentwall-overhead-ms": options.overheadMs().toFixed(3),
  });

  try {
    const decoder = new TextDecoder();
    for await (const bytes of options.upstream.body) {
      parser.feed(decoder.decode(bytes, { stream: true }));
      while (events.length > 0 && !protocol.complete()) {
        const e = events.shift() as { data: string; name: string | undefined };
        const out = await protocol.event(e.data, e.name);
        if (out !== "") await write(raw, out);
      }
      if (protocol.complete()) break;
      if (raw.destroyed) throw new AgentwallError("ERR_CHANNEL_CLOSED", "the client went away");
    }
    if (!protocol.complete()) throw new AgentwallError("ERR_UPSTREAM_FAILED", protocol.incomplete);
    const held = await protocol.flush();
    if (held !== "") await write(raw, held);
    outcome.usage = protocol.usage();
    outcome.findings = [...findings];
    outcome.written = written();
    await options.closing(outcome);
    await write(raw, protocol.final(outcome.usage));
  } catch (error) {
    const e = isAgentwallError(error) ? error : new AgentwallError("ERR_INTERNAL", "the stream failed");
    outcome.outcome = e.code === "ERR_GUARD_BLOCKED" || e.code.startsWith("ERR_TOOL_") ? "blocked" : "error";
    outcome.code = e.code;
    outcome.findings = [...findings];
    outcome.written = written();
    await options.closing(outcome).catch(() => undefined);
    if (!raw.destroyed) {
      const message = e.code === "ERR_INTERNAL" ? "the stream failed" : e.message.slice(0, 300);
      await write(raw, protocol.error(e.code, message, options.request.id)).catch(() => undefined);
    }
  } finally {
    raw.end();
  }
}

/**
 * Chat completion chunks (`data: {…}` … `data: [DONE]`): every text field of every choice (`content`,
 * `refusal`, `reasoning`, `reasoning_content`) through its own guard stream, tool calls buffered by index
 * and sent whole once checked, unknown fields and logprobs refused, usage as the three counts only.
 */
export function chatProtocol(context: RelayContext): SseProtocol {
  const { released } = context;
  const meta = { id: `chatcmpl-${context.id}`, created: context.created, model: context.model };
  const choices = new Map<number, ChoiceState>();
  let done = false;
  let usage: Record<string, unknown> | undefined;
  const state = (index: number): ChoiceState => {
    let s = choices.get(index);
    if (s === undefined) {
      if (choices.size >= MAX_CHOICES) throw new AgentwallError("ERR_UPSTREAM_FAILED", "too many choices");
      s = { streams: new Map(), tools: new Map(), finish: null, role: undefined };
      choices.set(index, s);
    }
    return s;
  };
  const guardOf = (s: ChoiceState, field: TextField): GuardStream => {
    let g = s.streams.get(field);
    if (g === undefined) {
      g = context.guard();
      s.streams.set(field, g);
    }
    return g;
  };
  return {
    incomplete: "the upstream's stream ended without [DONE]",
    complete: () => done,
    async event(data) {
      if (data === "[DONE]") {
        done = true;
        return "";
      }
      const parsed = jsonObject(data);
      const unknown = unknownField(parsed, CHUNK_KEYS, contentFilterField);
      if (unknown !== undefined)
        throw new AgentwallError("ERR_UPSTREAM_FAILED", `unknown field ${unknown.slice(0, 40)} in the stream`);
      if (parsed.usage !== undefined && parsed.usage !== null) usage = parsed.usage as Record<string, unknown>;
      const out: unknown[] = [];
      for (const c of list(parsed.choices, "choices")) {
        const unknownInChoice = unknownField(c, CHOICE_KEYS, contentFilterField);
        if (unknownInChoice !== undefined)
          throw new AgentwallError("ERR_UPSTREAM_FAILED", `unknown choice field ${unknownInChoice.slice(0, 40)}`);
        if (c.logprobs !== undefined && c.logprobs !== null)
          throw new AgentwallError("ERR_UPSTREAM_FAILED", "logprobs carry text and are not relayed");
        const index = choiceIndex(c.index);
        const s = state(index);
        const delta = object(c.delta ?? {}, "a delta");
        const unknownInDelta = unknownField(delta, DELTA_KEYS);
        if (unknownInDelta !== undefined)
          throw new AgentwallError("ERR_UPSTREAM_FAILED", `unknown delta field ${unknownInDelta.slice(0, 40)}`);
        const outDelta: Record<string, unknown> = {};
        if (delta.role !== undefined && delta.role !== null && s.role === undefined) {
          s.role = providerWord(delta.role, "role");
          outDelta.role = s.role;
        }
        for (const field of TEXT_FIELDS) {
          const value = delta[field];
          if (value === undefined || value === null) continue;
          if (typeof value !== "string") throw new AgentwallError("ERR_UPSTREAM_FAILED", `${field} is not text`);
          const text = released(guardOf(s, field).push(value));
          if (text !== "") outDelta[field] = text;
        }
        for (const call of list(delta.tool_calls, "tool_calls")) {
          const i = call.index;
          if (typeof i !== "number" || !Number.isSafeInteger(i) || i < 0 || i >= MAX_TOOL_CALLS)
            throw new AgentwallError("ERR_UPSTREAM_FAILED", "a tool call has no index");
          const buf = s.tools.get(i) ?? { id: "", name: "", arguments: "" };
          const f = object(call.function ?? {}, "a tool call's function");
          if (typeof call.id === "string") buf.id += call.id;
          if (typeof f.name === "string") buf.name += f.name;
          if (typeof f.arguments === "string") buf.arguments += f.arguments;
          if (buf.arguments.length > 1_000_000) throw new AgentwallError("ERR_UPSTREAM_FAILED", "tool call too large");
          s.tools.set(i, buf);
        }
        if (c.finish_reason !== undefined && c.finish_reason !== null)
          s.finish = providerWord(c.finish_reason, "finish_reason");
        if (Object.keys(outDelta).length > 0) out.push({ index, delta: outDelta, finish_reason: null });
      }
      return out.length > 0 ? chunk(meta, out) : "";
    },
    async flush() {
      const out: unknown[] = [];
      for (const [index, s] of choices) {
        const delta: Record<string, unknown> = {};
        for (const [field, g] of s.streams) {
          const text = released(g.end());
          if (text !== "") delta[field] = text;
        }
        const calls: unknown[] = [];
        for (const [i, call] of [...s.tools].sort((a, b) => a[0] - b[0])) {
          const checked = await context.toolCall(call.name, call.arguments);
          calls.push({ index: i, id: toolCallId(call.id), type: "function", function: checked });
        }
        if (calls.length > 0) delta.tool_calls = calls;
        if (Object.keys(delta).length > 0) out.push({ index, delta, finish_reason: null });
      }
      return out.length > 0 ? chunk(meta, out) : "";
    },
    usage: () => usageOf(usage),
    final(u) {
      const finals = [...choices].map(([index, s]) => ({ index, delta: {}, finish_reason: s.finish ?? "stop" }));
      return chunk(meta, finals, relayedUsage(u, "chat")) + "data: [DONE]\n\n";
    },
    error: (code, message, requestId) => `data: ${JSON.stringify({ error: { code, message, requestId } })}\n\n`,
  };
}

/** `value` as an object (not null, not a list), or `ERR_UPSTREAM_FAILED` naming `what`. */
function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new AgentwallError("ERR_UPSTREAM_FAILED", `${what} in the stream is not an object`);
  return value as Record<string, unknown>;
}

/** A list of objects (absent or null: none), or `ERR_UPSTREAM_FAILED` naming `what`. */
function list(value: unknown, what: string): Record<string, unknown>[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new AgentwallError("ERR_UPSTREAM_FAILED", `${what} in the stream is not a list`);
  return value.map((v) => object(v, `an item of ${what}`));
}

/** An upstream event's data as a JSON object, or `ERR_UPSTREAM_FAILED`. */
export function jsonObject(data: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    throw new AgentwallError("ERR_UPSTREAM_FAILED", "a stream event is not JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new AgentwallError("ERR_UPSTREAM_FAILED", "a stream event is not an object");
  return parsed as Record<string, unknown>;
}

/** Token counts as the upstream reported them (keys without "token": the audit redacts those names). */
export function usageOf(usage: Readonly<Record<string, unknown>> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ["prompt", "completion", "total"] as const) {
    const v = usage?.[`${k}_tokens`];
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) out[k] = v;
  }
  return out;
}
