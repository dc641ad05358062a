import { AgentwallError } from "../errors.js";
import type { GuardStream } from "../guard/pipeline.js";
import { relayedUsage, responsesUsage, toolCallId } from "./proxy-responses.js";
import { jsonObject, type RelayContext, type SseProtocol } from "./proxy-stream.js";

const MAX_ITEMS = 64;
const MAX_PARTS = 16;

type PartType = "output_text" | "refusal" | "summary_text" | "reasoning_text";

/** Per part type: the index field that names it, its delta and done events, and its text field. */
const PART: Record<PartType, { index: string; delta: string; done: string; field: string }> = {
  output_text: {
    index: "content_index",
    delta: "response.output_text.delta",
    done: "response.output_text.done",
    field: "text",
  },
  refusal: { index: "content_index", delta: "response.refusal.delta", done: "response.refusal.done", field: "refusal" },
  summary_text: {
    index: "summary_index",
    delta: "response.reasoning_summary_text.delta",
    done: "response.reasoning_summary_text.done",
    field: "text",
  },
  // Raw reasoning text (open-weight models): content parts of a reasoning item.
  reasoning_text: {
    index: "content_index",
    delta: "response.reasoning_text.delta",
    done: "response.reasoning_text.done",
    field: "text",
  },
};

interface PartState {
  readonly type: PartType;
  /** Its `content_index` or `summary_index`. */
  readonly index: number;
  readonly guard: GuardStream;
  /** What was released so far (guarded, redacted where the policy redacts). */
  text: string;
  ended: boolean;
}

interface ItemState {
  readonly kind: "message" | "function_call" | "reasoning";
  readonly id: string;
  /** By index field and index (`summary_index:0`, `content_index:0`): a reasoning item has both. */
  readonly parts: Map<string, PartState>;
  call: { callId: string; name: string; arguments: string } | undefined;
  /** The caller-facing item once complete. */
  done: Record<string, unknown> | undefined;
}

const DELTA_TYPES: Record<string, PartType> = Object.fromEntries(
  Object.entries(PART).map(([type, events]) => [events.delta, type as PartType]),
);
const DONE_TYPES: Record<string, PartType> = Object.fromEntries(
  Object.entries(PART).map(([type, events]) => [events.done, type as PartType]),
);

const upstreamFailed = (why: string) => new AgentwallError("ERR_UPSTREAM_FAILED", `the upstream's stream ${why}`);

function index(value: unknown, max: number, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0 || value >= max)
    throw upstreamFailed(`has a bad ${what}`);
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== "string") throw upstreamFailed(`${what} is not text`);
  return value;
}

/**
 * OpenAI Responses streaming events, re-made rather than relayed: the caller gets `response.created`,
 * message items with their content parts and `output_text`/`refusal` deltas as each part's guard stream
 * releases them (redacted where the policy redacts), function calls only once complete and checked
 * (added, arguments done and item done in one go), and `response.completed` with the guarded output and
 * the three token counts — after the closing audit event is durable. Ids are agentwall's (`msg_<n>`,
 * `fc_<n>`, `rs_<n>`; a call's `call_id` is passed on when it is a plain identifier), annotations are
 * dropped. Reasoning summaries and raw reasoning text (`reasoning_text` content parts) stream like
 * message text, through their own guard streams; reasoning with encrypted content (which cannot be
 * scanned) and any event or output item it does not know (built-in tools, audio) end the stream with an
 * error event, as do `response.failed`,
 * `response.incomplete` and `error` from the upstream.
 */
export function responsesProtocol(context: RelayContext): SseProtocol {
  const { released } = context;
  const items = new Map<number, ItemState>();
  let sequence = 0;
  let completed = false;
  let usage: Record<string, unknown> | undefined;
  const responseId = `resp_${context.id}`;
  const emit = (type: string, payload: Record<string, unknown>) =>
    `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence++, ...payload })}\n\n`;
  const response = (status: string, extra: Record<string, unknown> = {}) => ({
    id: responseId,
    object: "response",
    created_at: context.created,
    model: context.model,
    status,
    output: [],
    ...extra,
  });
  const item = (data: Record<string, unknown>): [number, ItemState] => {
    const at = index(data.output_index, MAX_ITEMS, "output_index");
    const state = items.get(at);
    if (state === undefined) throw upstreamFailed("refers to an output item it did not add");
    return [at, state];
  };
  const part = (data: Record<string, unknown>, type: PartType): [number, ItemState, PartState] => {
    const [at, state] = item(data);
    const field = PART[type].index;
    const p = state.parts.get(`${field}:${index(data[field], MAX_PARTS, field)}`);
    if (p === undefined || p.type !== type) throw upstreamFailed(`refers to a ${type} part it did not add`);
    return [at, state, p];
  };
  const partOut = (p: PartState) =>
    p.type === "output_text"
      ? { type: "output_text", text: p.text, annotations: [] }
      : { type: p.type, [PART[p.type].field]: p.text };
  const where = (at: number, state: ItemState, p: PartState) => ({
    item_id: state.id,
    output_index: at,
    [PART[p.type].index]: p.index,
  });
  /** Ends a part's guard stream: the held-back rest as a delta, then the part's done event. */
  const endPart = (at: number, state: ItemState, p: PartState): string => {
    if (p.ended) return "";
    p.ended = true;
    const rest = released(p.guard.end());
    p.text += rest;
    const place = where(at, state, p);
    const out = rest === "" ? "" : emit(PART[p.type].delta, { ...place, delta: rest });
    return out + emit(PART[p.type].done, { ...place, [PART[p.type].field]: p.text });
  };
  /** Ends a message or reasoning item: every part's guard stream, the parts' done events, the item. */
  const endParts = (at: number, state: ItemState): string => {
    if (state.done !== undefined) return "";
    let out = "";
    // Summary parts first, then content parts, each in index order.
    const parts = [...state.parts.values()].sort(
      (a, b) => Number(a.type !== "summary_text") - Number(b.type !== "summary_text") || a.index - b.index,
    );
    for (const p of parts) {
      out += endPart(at, state, p);
      out += emit(p.type === "summary_text" ? "response.reasoning_summary_part.done" : "response.content_part.done", {
        ...where(at, state, p),
        part: partOut(p),
      });
    }
    const content = parts.filter((p) => p.type !== "summary_text").map(partOut);
    state.done =
      state.kind === "message"
        ? {
            id: state.id,
            type: "message",
            role: "assistant",
            status: "completed",
            content,
          }
        : {
            id: state.id,
            type: "reasoning",
            summary: parts.filter((p) => p.type === "summary_text").map(partOut),
            ...(content.length === 0 ? {} : { content }),
          };
    return out + emit("response.output_item.done", { output_index: at, item: state.done });
  };
  const addPart = (data: Record<string, unknown>, types: readonly PartType[]) => {
    const [at, state] = item(data);
    const p = (data.part ?? {}) as Record<string, unknown>;
    const type = types.find((t) => t === p.type);
    if (type === undefined)
      throw upstreamFailed(`has a part of type ${String(p.type).slice(0, 40)}, which is not relayed`);
    const field = PART[type].index;
    const c = index(data[field], MAX_PARTS, field);
    if (state.kind !== (type === "output_text" || type === "refusal" ? "message" : "reasoning"))
      throw upstreamFailed("adds a part it may not");
    if (state.parts.has(`${field}:${c}`)) throw upstreamFailed("adds a part twice");
    const added: PartState = { type, index: c, guard: context.guard(), text: "", ended: false };
    state.parts.set(`${field}:${c}`, added);
    return emit(String(data.type), { ...where(at, state, added), part: partOut(added) });
  };
  const noEncryptedReasoning = (value: Record<string, unknown>) => {
    if (value.encrypted_content !== undefined && value.encrypted_content !== null)
      throw upstreamFailed("has reasoning with encrypted content, which cannot be scanned");
  };
  const endCall = async (at: number, state: ItemState): Promise<string> => {
    if (state.done !== undefined) return "";
    const call = state.call as NonNullable<ItemState["call"]>;
    const checked = await context.toolCall(call.name, call.arguments);
    const base = { id: state.id, type: "function_call", call_id: call.callId, name: checked.name };
    state.done = { ...base, arguments: checked.arguments, status: "completed" };
    return (
      emit("response.output_item.added", {
        output_index: at,
        item: { ...base, arguments: "", status: "in_progress" },
      }) +
      emit("response.function_call_arguments.done", {
        item_id: state.id,
        output_index: at,
        arguments: checked.arguments,
      }) +
      emit("response.output_item.done", { output_index: at, item: state.done })
    );
  };

  return {
    incomplete: "the upstream's stream ended before response.completed",
    complete: () => completed,
    async event(raw) {
      const data = jsonObject(raw);
      const type = String(data.type);
      switch (type) {
        case "response.created":
        case "response.in_progress":
          return emit(type, { response: response("in_progress") });
        case "response.output_item.added": {
          const at = index(data.output_index, MAX_ITEMS, "output_index");
          if (items.has(at)) throw upstreamFailed("adds an output item twice");
          const added = (data.item ?? {}) as Record<string, unknown>;
          const open = (kind: ItemState["kind"], id: string, call?: ItemState["call"]) => {
            items.set(at, { kind, id, parts: new Map(), call, done: undefined });
            return id;
          };
          if (added.type === "message") {
            const id = open("message", `msg_${at}`);
            return emit(type, {
              output_index: at,
              item: { id, type: "message", role: "assistant", status: "in_progress", content: [] },
            });
          }
          if (added.type === "function_call") {
            const callId = toolCallId(added.call_id);
            const name = typeof added.name === "string" ? added.name : "";
            const args = typeof added.arguments === "string" ? added.arguments : "";
            open("function_call", `fc_${at}`, { callId, name, arguments: args });
            return ""; // sent whole once complete and checked
          }
          if (added.type === "reasoning") {
            noEncryptedReasoning(added);
            const id = open("reasoning", `rs_${at}`);
            return emit(type, { output_index: at, item: { id, type: "reasoning", summary: [] } });
          }
          throw upstreamFailed(`has an output item of type ${String(added.type).slice(0, 40)}, which is not relayed`);
        }
        case "response.content_part.added":
          return addPart(data, ["output_text", "refusal", "reasoning_text"]);
        case "response.reasoning_summary_part.added":
          return addPart(data, ["summary_text"]);
        case "response.output_text.delta":
        case "response.refusal.delta":
        case "response.reasoning_summary_text.delta":
        case "response.reasoning_text.delta": {
          const [at, state, p] = part(data, DELTA_TYPES[type] as PartType);
          if (p.ended) throw upstreamFailed("sends text after a part's end");
          const out = released(p.guard.push(text(data.delta, "a delta")));
          if (out === "") return "";
          p.text += out;
          return emit(type, { ...where(at, state, p), delta: out });
        }
        case "response.output_text.done":
        case "response.refusal.done":
        case "response.reasoning_summary_text.done":
        case "response.reasoning_text.done": {
          const [at, state, p] = part(data, DONE_TYPES[type] as PartType);
          return endPart(at, state, p);
        }
        case "response.content_part.done":
        case "response.reasoning_summary_part.done":
          return ""; // sent with the item's end, after every part's guard stream has ended
        case "response.function_call_arguments.delta":
        case "response.function_call_arguments.done": {
          const [, state] = item(data);
          if (state.call === undefined) throw upstreamFailed("sends arguments for an item that is not a call");
          if (type.endsWith(".delta")) state.call.arguments += text(data.delta, "a delta");
          else state.call.arguments = text(data.arguments, "arguments");
          if (state.call.arguments.length > 1_000_000) throw upstreamFailed("has a tool call that is too large");
          return "";
        }
        case "response.output_item.done": {
          const [at, state] = item(data);
          const done = (data.item ?? {}) as Record<string, unknown>;
          if (state.kind === "reasoning") noEncryptedReasoning(done);
          if (state.kind !== "function_call") return endParts(at, state);
          const call = state.call as NonNullable<ItemState["call"]>;
          if (typeof done.name === "string") call.name = done.name;
          if (typeof done.arguments === "string") call.arguments = done.arguments;
          return endCall(at, state);
        }
        case "response.completed": {
          const r = (data.response ?? {}) as Record<string, unknown>;
          usage = (r.usage ?? undefined) as Record<string, unknown> | undefined;
          completed = true;
          return "";
        }
        case "response.failed":
        case "response.incomplete":
        case "error":
          throw upstreamFailed(`reports ${type}`);
        default:
          throw upstreamFailed(`has an event ${type.slice(0, 60)}, which is not relayed`);
      }
    },
    async flush() {
      let out = "";
      for (const [at, state] of [...items].sort((a, b) => a[0] - b[0]))
        out += state.kind === "function_call" ? await endCall(at, state) : endParts(at, state);
      return out;
    },
    usage: () => responsesUsage({ usage }),
    final(u) {
      const output = [...items].sort((a, b) => a[0] - b[0]).map(([, s]) => s.done);
      const usage = relayedUsage(u, "responses");
      return emit("response.completed", {
        response: response("completed", { output, ...(usage === undefined ? {} : { usage }) }),
      });
    },
    error: (code, message, requestId) => emit("error", { code, message, requestId }),
  };
}
