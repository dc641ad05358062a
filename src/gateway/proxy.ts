import { Ajv, type ValidateFunction } from "ajv";
import { AgentwallError } from "../errors.js";
import type { AgentwallConfig, AgentwallSecrets } from "../config/schema.js";
import { EgressClient, type EgressRecord } from "../egress/client.js";
import { stricterSource, type GuardVerdict } from "../guard/pipeline.js";
import type { Instance } from "../instance.js";
import { sourceTrust, type Principal } from "./auth.js";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { GatewayRoute } from "./route.js";
import { claimPermissionCheck, permissionAudited } from "./pending-audit.js";
import { responsesProtocol } from "./proxy-responses-stream.js";
import { CHUNK_KEYS, chatProtocol, contentFilterField, relayStream, usageOf } from "./proxy-stream.js";
import {
  RESPONSES_SCHEMA,
  responsesAnswerCalls,
  responsesAnswerSlots,
  responsesHistoryCalls,
  responsesRequestSlots,
  responsesUsage,
  relayedResponse,
  relayedUsage,
  choiceIndex,
  providerWord,
  toolCallId,
  type NamedCall,
  type ResponsesRequest,
  empty,
  grouped,
  jsonSlots,
  messageSource,
  turns,
  unknownField,
  type Slot,
  type SourceTrust,
} from "./proxy-responses.js";
import { estimateTokens } from "../monitor/budget.js";
import { classifyAddress } from "../egress/address.js";
import { urlHost } from "../egress/hosts.js";
import { isIP } from "node:net";

/** An OpenAI-compatible upstream, resolved from configuration. */
export interface ProxyUpstream {
  readonly name: string;
  /** `scheme://host:port` (the operator destination) and the path prefix before `/chat/completions`. */
  readonly origin: string;
  readonly basePath: string;
  /** A vault secret bound to the upstream's host, sent as the bearer token. */
  readonly credential?: string;
  /** A key given in the environment (`AGENTWALL_UPSTREAM_KEY`), held in memory only. */
  readonly key?: string;
  readonly models?: ReadonlySet<string>;
  readonly modelsByRole?: ReadonlyMap<string, ReadonlySet<string>>;
}

/** The upstreams of the configuration, plus `default` from `AGENTWALL_UPSTREAM_URL`/`_KEY`. */
export function upstreamsFromConfig(config: AgentwallConfig, secrets: AgentwallSecrets): ProxyUpstream[] {
  const list: ProxyUpstream[] = [];
  const add = (name: string, url: string, extra: Partial<ProxyUpstream>) => {
    const u = new URL(url);
    if (u.username !== "" || u.password !== "" || u.search !== "")
      throw new AgentwallError("ERR_CONFIG_INVALID", `config field /upstreams: ${name} has credentials or a query`);
    list.push({ name, origin: u.origin, basePath: u.pathname.replace(/\/+$/, ""), ...extra });
  };
  for (const up of config.upstreams) {
    add(up.name, up.url, {
      ...(up.credential === undefined ? {} : { credential: up.credential }),
      ...(up.models === undefined || up.models.length === 0 ? {} : { models: new Set(up.models) }),
      ...(up.modelsByRole === undefined
        ? {}
        : { modelsByRole: new Map(Object.entries(up.modelsByRole).map(([r, m]) => [r, new Set(m)])) }),
    });
  }
  if (config.upstream !== undefined && !list.some((u) => u.name === "default"))
    add("default", config.upstream.url, secrets.upstreamKey === undefined ? {} : { key: secrets.upstreamKey });
  return list;
}

const ROLES = ["system", "developer", "user", "assistant", "tool", "function"] as const;
const TEXT = { type: "string", maxLength: 1_000_000 } as const;

/**
 * The request shape accepted (strict: an unknown field or content part is refused, since what cannot
 * be recognised cannot be scanned).
 */
const REQUEST_SCHEMA = {
  type: "object",
  required: ["model", "messages"],
  additionalProperties: false,
  properties: {
    model: { type: "string", minLength: 1, maxLength: 200 },
    messages: {
      type: "array",
      minItems: 1,
      maxItems: 2000,
      items: {
        type: "object",
        required: ["role"],
        additionalProperties: false,
        properties: {
          role: { enum: ROLES },
          content: {
            anyOf: [
              TEXT,
              { type: "null" },
              {
                type: "array",
                maxItems: 200,
                items: {
                  anyOf: [
                    {
                      type: "object",
                      required: ["type", "text"],
                      additionalProperties: false,
                      properties: { type: { const: "text" }, text: TEXT },
                    },
                    {
                      type: "object",
                      required: ["type", "image_url"],
                      additionalProperties: false,
                      properties: {
                        type: { const: "image_url" },
                        image_url: {
                          type: "object",
                          required: ["url"],
                          additionalProperties: false,
                          properties: {
                            url: { type: "string", maxLength: 20_000_000 },
                            detail: { enum: ["auto", "low", "high"] },
                          },
                        },
                      },
                    },
                  ],
                },
              },
            ],
          },
          name: { type: "string", maxLength: 200 },
          tool_call_id: { type: "string", maxLength: 200 },
          refusal: { anyOf: [TEXT, { type: "null" }] },
          tool_calls: {
            type: "array",
            maxItems: 128,
            items: {
              type: "object",
              required: ["id", "type", "function"],
              additionalProperties: false,
              properties: {
                id: { type: "string", maxLength: 200 },
                type: { const: "function" },
                function: {
                  type: "object",
                  required: ["name", "arguments"],
                  additionalProperties: false,
                  properties: { name: { type: "string", maxLength: 128 }, arguments: TEXT },
                },
              },
            },
          },
        },
      },
    },
    tools: {
      type: "array",
      maxItems: 128,
      items: {
        type: "object",
        required: ["type", "function"],
        additionalProperties: false,
        properties: {
          type: { const: "function" },
          function: {
            type: "object",
            required: ["name"],
            additionalProperties: false,
            properties: {
              name: { type: "string", minLength: 1, maxLength: 128 },
              description: { type: "string", maxLength: 100_000 },
              parameters: { type: "object" },
              strict: { type: "boolean" },
            },
          },
        },
      },
    },
    // "auto" / "none" / "required", or one named function: no free text to carry past the guard.
    tool_choice: {
      anyOf: [
        { enum: ["auto", "none", "required"] },
        {
          type: "object",
          required: ["type", "function"],
          additionalProperties: false,
          properties: {
            type: { const: "function" },
            function: {
              type: "object",
              required: ["name"],
              additionalProperties: false,
              properties: { name: { type: "string", maxLength: 128 } },
            },
          },
        },
      ],
    },
    parallel_tool_calls: { type: "boolean" },
    stream: { type: "boolean" },
    stream_options: {
      type: "object",
      additionalProperties: false,
      properties: { include_usage: { type: "boolean" } },
    },
    max_tokens: { type: "integer", minimum: 1 },
    max_completion_tokens: { type: "integer", minimum: 1 },
    temperature: { type: "number", minimum: 0, maximum: 2 },
    top_p: { type: "number", minimum: 0, maximum: 1 },
    n: { type: "integer", minimum: 1, maximum: 8 },
    stop: {
      anyOf: [
        { type: "string", maxLength: 200 },
        { type: "array", maxItems: 4, items: { type: "string", maxLength: 200 } },
      ],
    },
    presence_penalty: { type: "number" },
    frequency_penalty: { type: "number" },
    seed: { type: "integer" },
    user: { type: "string", maxLength: 200 },
    response_format: { type: "object" },
    logprobs: { type: "boolean" },
    top_logprobs: { type: "integer", minimum: 0, maximum: 20 },
  },
} as const;

interface Message {
  role: (typeof ROLES)[number];
  content?:
    | string
    | null
    | Array<{ type: "text"; text: string } | { type: "image_url"; image_url: { url: string; detail?: string } }>;
  refusal?: string | null;
  tool_calls?: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }>;
  [key: string]: unknown;
}

interface ChatRequest {
  model: string;
  messages: Message[];
  tools?: Array<{ type: "function"; function: { name: string; description?: string; parameters?: unknown } }>;
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  n?: number;
  user?: string;
  [key: string]: unknown;
}

/** The upstreams a request was routed with, and the egress client that reaches them. */
export interface ProxyDeps {
  readonly upstreams: readonly ProxyUpstream[];
  readonly egress: EgressClient;
}

interface Generation extends ProxyDeps {
  /** Requests holding this generation; a retired one is closed when the last lets go. */
  users: number;
  retired: boolean;
}

/**
 * The proxy's egress clients, one per generation of the instance's upstreams: a reload that changes
 * the upstreams makes a new client for the requests that start afterwards, and the old one is closed
 * once the requests that started with it are done — none is cut.
 */
export class ProxyClients {
  readonly #instance: Instance;
  #current: Generation;
  readonly #closing: Promise<void>[] = [];

  constructor(instance: Instance) {
    this.#instance = instance;
    this.#current = this.#build();
  }

  #build(): Generation {
    const upstreams = this.#instance.upstreams;
    const egress = new EgressClient({
      allowHttp: false,
      operatorDestinations: upstreams.map((u) => ({ name: u.name, origin: u.origin })),
      vault: this.#instance.vault,
      audit: this.#instance.audit,
      actor: "proxy",
      // A stream's call commits with the request's llm_request event, which the answer waits for; a
      // plain call is recorded in that event (its details' `upstream`), or appended on a failure path.
      deferOperatorAudit: true,
      callerRecordsOperatorCalls: true,
      totalTimeoutMs: 300_000,
      headersTimeoutMs: 120_000,
      maxResponseBytes: 16 * 1024 * 1024,
    });
    return { upstreams, egress, users: 0, retired: false };
  }

  #release(g: Generation): void {
    g.users -= 1;
    if (g.retired && g.users === 0) this.#closing.push(g.egress.close().catch(() => undefined));
  }

  /** Runs `fn` with the current upstreams and client; the client stays open until `fn` settles. */
  async use<T>(fn: (deps: ProxyDeps) => Promise<T>): Promise<T> {
    if (this.#current.upstreams !== this.#instance.upstreams) {
      const old = this.#current;
      old.retired = true;
      this.#current = this.#build();
      old.users += 1;
      this.#release(old);
    }
    const g = this.#current;
    g.users += 1;
    try {
      return await fn(g);
    } finally {
      this.#release(g);
    }
  }

  async close(): Promise<void> {
    await this.#current.egress.close();
    await Promise.all(this.#closing);
  }
}

/** Picks the upstream serving `model` for these roles, or refuses. `name/model` names one upstream. */
function route(upstreams: readonly ProxyUpstream[], model: string, roles: readonly string[]) {
  const slash = model.indexOf("/");
  const named = slash > 0 ? upstreams.find((u) => u.name === model.slice(0, slash)) : undefined;
  const wanted = named === undefined ? model : model.slice(slash + 1);
  const candidates = named === undefined ? upstreams : [named];
  const upstream = candidates.find((u) => u.models === undefined || u.models.has(wanted));
  if (upstream === undefined) throw new AgentwallError("ERR_MODEL_NOT_ALLOWED", `no upstream serves ${model}`);
  if (upstream.modelsByRole !== undefined && !roles.includes("admin")) {
    const ok = roles.some((r) => upstream.modelsByRole?.get(r)?.has(wanted) === true);
    if (!ok) throw new AgentwallError("ERR_MODEL_NOT_ALLOWED", `your roles may not use ${wanted}`);
  }
  return { upstream, model: wanted };
}

/**
 * Every text-bearing field of the request: message contents and parts, names, tool calls and tools.
 * A role the caller claims never relaxes a check by itself ({@link SourceTrust}).
 */
function requestSlots(body: ChatRequest, trust: SourceTrust): Slot[] {
  const slots: Slot[] = [];
  /** Short strings beside the messages: tool-call ids, stop sequences. */
  const ids: Slot[] = [];
  for (const m of body.messages) {
    const from = messageSource(m.role, trust);
    const content = m.content;
    if (typeof content === "string") slots.push({ text: content, ...from, put: (t) => (m.content = t), turn: true });
    else if (Array.isArray(content)) {
      slots.push(
        ...turns(
          grouped(
            content.flatMap((part) =>
              part.type === "text" ? [{ text: part.text, ...from, put: (t: string) => (part.text = t) }] : [],
            ),
            from,
          ),
        ),
      );
      // An image's URL is fetched by the provider, whatever it holds: a key or an address in its query
      // leaves with it.
      for (const part of content)
        if (part.type === "image_url" && imageUrl(part.image_url.url) === "fetched") {
          const image = part.image_url;
          slots.push({ text: image.url, ...from, put: (t) => (image.url = t) });
        }
    }
    if (typeof m.refusal === "string") {
      const text = m.refusal;
      slots.push({ text, ...from, put: (t) => (m.refusal = t) });
    }
    if (typeof m.name === "string") {
      const text = m.name;
      slots.push({ text, ...from, put: (t) => (m.name = t) });
    }
    // Tool-call ids go to the provider too (they pair a call with its result): free text up to 200.
    if (typeof m.tool_call_id === "string") {
      const text = m.tool_call_id;
      ids.push({ text, source: "user", put: (t) => (m.tool_call_id = t) });
    }
    for (const call of m.tool_calls ?? []) {
      slots.push({ text: call.function.arguments, ...from, put: (t) => (call.function.arguments = t) });
      ids.push({ text: call.id, source: "user", put: (t) => (call.id = t) });
    }
  }
  for (const tool of body.tools ?? []) {
    const f = tool.function;
    slots.push({ text: f.name, source: "user", put: (t) => (f.name = t) });
    if (typeof f.description === "string") {
      const text = f.description;
      slots.push({ text, source: "user", put: (t) => (f.description = t) });
    }
    slots.push(...jsonSlots(f.parameters, "user"));
  }
  // A structured-output schema reaches the model too (its descriptions read as instructions).
  slots.push(...jsonSlots(body.response_format, "user"));
  // The end-user id goes to the provider too: a key or an address in it leaves all the same.
  if (typeof body.user === "string") {
    const text = body.user;
    slots.push({ text, source: "user", put: (t) => (body.user = t) });
  }
  // Stop sequences go to the provider too (four of at most 200 characters).
  const stop = body.stop;
  if (typeof stop === "string") ids.push({ text: stop, source: "user", put: (t) => (body.stop = t) });
  else if (Array.isArray(stop))
    for (const [i, text] of (stop as string[]).entries()) ids.push({ text, source: "user", put: (t) => (stop[i] = t) });
  slots.push(...grouped(ids, { source: "user" })); // one scan for all of them
  return slots;
}

/** What a data: URL of an image may be: a format the providers take, base64 (nothing else is an image). */
const DATA_IMAGE = /^data:image\/(?:png|jpe?g|gif|webp);base64,[A-Za-z0-9+/]*={0,2}$/i;
/** Names that are not on the internet: the provider (or a self-hosted model server) would look inside. */
const LOCAL_NAME = /(?:^|\.)(?:localhost|local|localdomain|internal|intranet|lan|home\.arpa)$/;

/**
 * Checks an image URL of a request, which the upstream fetches itself: a base64 `data:image/…` URL is
 * `inline`; an http(s) URL without credentials on a public host is `fetched` (its text is then scanned
 * like any other). Anything else is refused with `ERR_BAD_REQUEST` — another scheme, credentials, an
 * address that is not public, or a name that is not on the internet (`localhost`, one label,
 * `.internal`…): a self-hosted model server would fetch it from inside the operator's network. A public
 * name that resolves to a private address is not seen here (the upstream resolves it).
 */
export function imageUrl(raw: string): "inline" | "fetched" {
  const refuse = (why: string) => new AgentwallError("ERR_BAD_REQUEST", `image_url: ${why}`);
  if (/^data:/i.test(raw)) {
    if (!DATA_IMAGE.test(raw)) throw refuse("a data URL must be a base64 PNG, JPEG, GIF or WebP image");
    return "inline";
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw refuse("not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw refuse("only http(s) and data URLs are taken");
  if (url.username !== "" || url.password !== "") throw refuse("a URL with credentials is refused");
  const host = urlHost(url);
  if (isIP(host) !== 0) {
    const verdict = classifyAddress(host);
    if (!verdict.allowed) throw refuse(`the address is not public (${verdict.reason})`);
  } else if (!host.includes(".") || LOCAL_NAME.test(host)) throw refuse(`${host} is not a public host name`);
  return "fetched";
}

/**
 * Runs the guard over every slot; throws `ERR_GUARD_BLOCKED` on a block, applies redactions otherwise.
 * Long texts are scanned on the guard's threads (`scanAsync`), so they do not hold other requests.
 */
async function guardSlots(
  instance: Instance,
  slots: readonly Slot[],
  direction: "input" | "output",
  partition?: string,
): Promise<{ verdicts: GuardVerdict[]; redacted: number; flagged: string[] }> {
  const guard = instance.guard; // one guard for the whole request, even if a reload swaps it meanwhile
  const verdicts: GuardVerdict[] = [];
  let redacted = 0;
  const flagged = new Set<string>();
  const scan = async (slot: Slot): Promise<GuardVerdict> => {
    const v = await guard.scanAsync(slot.text, {
      direction,
      source: slot.source,
      trustedSource: slot.trusted === true,
      partition,
    });
    verdicts.push(v);
    for (const f of v.findings) flagged.add(f.type);
    if (v.verdict === "block") throw blocked(direction, v);
    return v;
  };
  for (const slot of slots) {
    if (slot.text === "") continue;
    const v = await scan(slot);
    if (v.text === slot.text) continue;
    if (slot.parts === undefined) {
      slot.put(v.text);
      redacted++;
      continue;
    }
    // A group: re-scan, one by one, only the parts a finding touches (offsets into the joined text).
    let at = 0;
    for (const part of slot.parts) {
      const end = at + part.text.length;
      if (part.text !== "" && v.findings.some((f) => f.start < end && f.end > at)) {
        const pv = await scan(part);
        if (pv.text !== part.text) {
          part.put(pv.text);
          redacted++;
        }
      }
      at = end + 1;
    }
  }
  // Where two messages meet: an injection split across them passes both their scans. Input only (an
  // answer is one text); the seam is judged as the stricter of the two messages' sources.
  let previous: Slot | undefined;
  for (const slot of direction === "input" ? slots : []) {
    if (slot.turn !== true || slot.text === "") continue;
    if (previous !== undefined) {
      const v = guard.scanSeam(previous.text, slot.text, {
        direction,
        source: stricterSource(previous.source, slot.source),
        trustedSource: previous.trusted === true && slot.trusted === true,
        partition,
      });
      for (const f of v.findings) flagged.add(f.type);
      if (v.verdict === "block") throw blocked(direction, v);
    }
    previous = slot;
  }
  return { verdicts, redacted, flagged: [...flagged] };
}

/** The error of a blocked request or answer: a stable code and the coarse finding types. */
function blocked(direction: "input" | "output", v: GuardVerdict): AgentwallError {
  const types = [...new Set(v.findings.map((f) => f.type))];
  return Object.assign(
    new AgentwallError(
      "ERR_GUARD_BLOCKED",
      direction === "input"
        ? `the request was blocked by the content guards (${types.join(", ")})`
        : `the model's answer was blocked by the content guards (${types.join(", ")})`,
    ),
    { findings: types },
  );
}

interface Completion {
  choices?: Array<Record<string, unknown> & { message?: Record<string, unknown> }>;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown; total_tokens?: unknown };
  [key: string]: unknown;
}

const CHOICE_KEYS = new Set(["index", "message", "finish_reason", "logprobs"]);
const MESSAGE_KEYS = new Set([
  "role",
  "content",
  "refusal",
  "tool_calls",
  "reasoning",
  "reasoning_content",
  "annotations",
]);
/** Text fields of a message, each scanned. `reasoning`/`reasoning_content`: open-weight models' thinking. */
const MESSAGE_TEXTS = ["content", "refusal", "reasoning", "reasoning_content"] as const;

/**
 * The texts of a completion: content, refusal, reasoning, tool-call names and arguments of every
 * choice. The answer is relayed as it came, so everything else in it must carry no text: a field this
 * does not know (at the top, in a choice or in a message) fails closed unless it is null, as do
 * logprobs (token texts) and annotations (URL citations) that are not empty.
 */
function answerSlots(answer: Completion): Slot[] {
  const slots: Slot[] = [];
  const failed = (why: string) => new AgentwallError("ERR_UPSTREAM_FAILED", `the answer ${why}`);
  const known = (holder: Record<string, unknown>, keys: ReadonlySet<string>, where: string) => {
    const key = unknownField(holder, keys, (k, value) => value === null || contentFilterField(k, value));
    if (key !== undefined) throw failed(`has an unknown field ${key.slice(0, 40)}${where}`);
  };
  known(answer, CHUNK_KEYS, "");
  if (!Array.isArray(answer.choices)) throw failed("has no choices");
  for (const choice of answer.choices) {
    if (typeof choice !== "object" || choice === null) throw failed("has a choice that is not an object");
    known(choice, CHOICE_KEYS, " in a choice");
    if (choice.logprobs !== undefined && choice.logprobs !== null) throw failed("has logprobs, which carry text");
    const m = choice.message;
    if (m === undefined || m === null || typeof m !== "object") throw failed("has a choice with no message");
    known(m, MESSAGE_KEYS, " in a message");
    if (!empty(m.annotations)) throw failed("has annotations, which are not relayed");
    for (const key of MESSAGE_TEXTS) {
      const value = m[key];
      if (typeof value === "string") slots.push({ text: value, source: "agent", put: (t) => (m[key] = t) });
      else if (value !== undefined && value !== null) throw failed(`has a ${key} that is not text`);
    }
    const calls = m.tool_calls ?? [];
    if (!Array.isArray(calls)) throw failed("has tool_calls that are not a list");
    for (const call of calls as Array<{ function?: { name?: unknown; arguments?: unknown } }>) {
      const f = call?.function;
      if (f === undefined || typeof f.name !== "string" || typeof f.arguments !== "string")
        throw failed("has a malformed tool call");
      slots.push({ text: f.name, source: "agent", put: (t) => (f.name = t) });
      slots.push({ text: f.arguments, source: "agent", put: (t) => (f.arguments = t) });
    }
  }
  return slots;
}

/**
 * What a chat request's images may cost: gpt-4o counts 85 tokens for a `low` detail image and up to
 * 85 + 170 per 512-pixel tile otherwise — 1,445 for the largest a `high` image is scaled to (768 x 2048,
 * 8 tiles). A budget reserves that, and is corrected to the usage the upstream reports (models that
 * count images otherwise, as gpt-4o-mini does with many more tokens, only then); counted as nothing, a
 * request of many images overshot its budget by all of them.
 */
function chatImageTokens(body: ChatRequest): number {
  let tokens = 0;
  for (const m of body.messages)
    if (Array.isArray(m.content))
      for (const part of m.content)
        if (part.type === "image_url")
          tokens += (part.image_url as { detail?: string }).detail === "low" ? 85 : 85 + 170 * 8;
  return tokens;
}

/**
 * The completion the caller gets (after {@link answerSlots} checked its shape and the guard scanned its
 * texts): the scanned texts and fields of a fixed form only, as the stream re-serialises its chunks. The
 * upstream's id, model, fingerprint and service tier, and anything in its usage but counts, are text no
 * guard read, so they do not cross: the id is the request's, the model the one asked for.
 */
function relayedCompletion(answer: Completion, meta: { id: string; model: string }): Record<string, unknown> {
  const choices = (answer.choices ?? []).map((c, i) => {
    const m = c.message as Record<string, unknown>;
    const message: Record<string, unknown> = {
      role: m.role === undefined || m.role === null ? "assistant" : providerWord(m.role, "role"),
      content: typeof m.content === "string" ? m.content : null,
    };
    for (const key of ["refusal", "reasoning", "reasoning_content"] as const)
      if (typeof m[key] === "string") message[key] = m[key];
    const calls = (m.tool_calls ?? []) as Array<{ id?: unknown; function: { name: string; arguments: string } }>;
    if (calls.length > 0)
      message.tool_calls = calls.map((call) => ({
        id: toolCallId(call.id),
        type: "function",
        function: { name: call.function.name, arguments: call.function.arguments },
      }));
    const choice: Record<string, unknown> = {
      index: choiceIndex(c.index ?? i),
      message,
      finish_reason:
        c.finish_reason === undefined || c.finish_reason === null
          ? null
          : providerWord(c.finish_reason, "finish_reason"),
      logprobs: null,
    };
    // Azure's filter results: flags and severities only (answerSlots refused any with text).
    if (c.content_filter_results !== undefined) choice.content_filter_results = c.content_filter_results;
    return choice;
  });
  const out: Record<string, unknown> = {
    id: `chatcmpl-${meta.id}`,
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: meta.model,
    choices,
  };
  if (answer.prompt_filter_results !== undefined) out.prompt_filter_results = answer.prompt_filter_results;
  const usage = relayedUsage(usageOf(answer.usage), "chat");
  if (usage !== undefined) out.usage = usage;
  return out;
}

/**
 * What differs between the two OpenAI APIs the proxy serves: the request's shape and where its texts,
 * token cap, tools and past tool calls are; the answer's texts, tool calls and usage. The request path
 * is the same for both.
 */
interface ProxyApi {
  readonly name: "chat" | "responses";
  /** Path under the upstream's base URL. */
  readonly path: string;
  readonly validate: ValidateFunction;
  asked(body: Record<string, unknown>): number | undefined;
  /** How many answers the request asks for (`n`), each up to the token cap. */
  choices(body: Record<string, unknown>): number;
  /** Tokens the request's images may cost (they carry no text, so the text estimate misses them). */
  imageTokens(body: Record<string, unknown>): number;
  cap(body: Record<string, unknown>, tokens: number): void;
  toolNames(body: Record<string, unknown>): string[];
  historyCalls(body: Record<string, unknown>): NamedCall[];
  slots(body: Record<string, unknown>, trust: SourceTrust): Slot[];
  answerSlots(answer: Record<string, unknown>): Slot[];
  /** What the caller gets of an answer once its slots are scanned (and redacted in place). */
  relayed(answer: Record<string, unknown>, meta: { id: string; model: string }): Record<string, unknown>;
  answerCalls(answer: Record<string, unknown>): NamedCall[];
  usage(answer: Record<string, unknown>): Record<string, number>;
}

/**
 * `POST /v1/chat/completions` and `POST /v1/responses`: the request path of DESIGN.md in one place. Authentication, the per-IP
 * and per-key limits and the `llm:chat` permission are the gateway's (declared on the route); here:
 * the model per role, tool definitions and calls against the tool policies, the input guard on every
 * text field, the forward through the egress client (the upstream is an operator destination; only
 * allow-listed headers cross, both ways), the output guard and the tool policies on the answer, and the
 * audit event — durable before the answer leaves.
 */
export function proxyRoutes(instance: Instance, clients: ProxyClients): GatewayRoute[] {
  const ajv = new Ajv({ strict: true, allErrors: false, coerceTypes: false, useDefaults: false });
  const chatApi: ProxyApi = {
    name: "chat",
    path: "/chat/completions",
    validate: ajv.compile(REQUEST_SCHEMA),
    asked: (b) => (b as ChatRequest).max_completion_tokens ?? (b as ChatRequest).max_tokens,
    choices: (b) => (b as ChatRequest).n ?? 1,
    imageTokens: (b) => chatImageTokens(b as ChatRequest),
    cap: (b, n) => ((b as ChatRequest).max_tokens = n),
    // The tools defined, and the one `tool_choice` names (its name goes to the provider as well).
    toolNames: (b) => {
      const body = b as ChatRequest;
      const names = (body.tools ?? []).map((t) => t.function.name);
      const chosen = (body.tool_choice as { function?: { name?: unknown } } | undefined)?.function?.name;
      return typeof chosen === "string" ? [...names, chosen] : names;
    },
    historyCalls: (b) => (b as ChatRequest).messages.flatMap((m) => (m.tool_calls ?? []).map((c) => c.function)),
    slots: (b, trust) => requestSlots(b as ChatRequest, trust),
    answerSlots: (a) => answerSlots(a),
    relayed: (a, meta) => relayedCompletion(a, meta),
    answerCalls: (a) =>
      // After answerSlots checked their shape.
      ((a as Completion).choices ?? []).flatMap((c) =>
        ((c.message?.tool_calls ?? []) as Array<{ function: { name: string; arguments: string } }>).map((t) => ({
          name: t.function.name,
          arguments: t.function.arguments,
        })),
      ),
    usage: (a) => usageOf((a as Completion).usage),
  };
  const responsesApi: ProxyApi = {
    name: "responses",
    path: "/responses",
    validate: ajv.compile(RESPONSES_SCHEMA),
    asked: (b) => (b as ResponsesRequest).max_output_tokens,
    choices: () => 1,
    imageTokens: () => 0, // images are refused on this API
    cap: (b, n) => ((b as ResponsesRequest).max_output_tokens = n),
    toolNames: (b) => ((b as ResponsesRequest).tools ?? []).map((t) => t.name),
    historyCalls: (b) => responsesHistoryCalls(b as ResponsesRequest),
    slots: (b, trust) => responsesRequestSlots(b as ResponsesRequest, trust),
    answerSlots: (a) => responsesAnswerSlots(a),
    relayed: (a, meta) => relayedResponse(a, meta),
    answerCalls: (a) => responsesAnswerCalls(a),
    usage: (a) => responsesUsage(a),
  };
  return [
    {
      method: "POST",
      url: "/v1/chat/completions",
      access: { permission: "llm:chat", checkInRouteEvent: true },
      handler: (request, reply, principal) => clients.use((deps) => proxied(chatApi, request, reply, principal, deps)),
    },
    {
      method: "POST",
      url: "/v1/responses",
      access: { permission: "llm:chat", checkInRouteEvent: true },
      handler: (request, reply, principal) =>
        clients.use((deps) => proxied(responsesApi, request, reply, principal, deps)),
    },
  ];
  async function proxied(
    api: ProxyApi,
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal | undefined,
    deps: ProxyDeps,
  ): Promise<FastifyReply> {
    const started = process.hrtime.bigint();
    if (principal === undefined) throw new AgentwallError("ERR_UNAUTHENTICATED", "no credential");
    const body = request.body as Record<string, unknown> & { model: string; stream?: unknown };
    const validate = api.validate;
    if (!validate(body)) {
      const e = validate.errors?.[0];
      throw new AgentwallError(
        "ERR_BAD_REQUEST",
        `request${e?.instancePath ?? ""}: ${e?.keyword === "additionalProperties" ? `unexpected field ${String(e.params.additionalProperty)}` : (e?.message ?? "invalid")}`,
      );
    }
    // Log probabilities come back as token texts beside the answer, which the output guard does not read:
    // an answer carrying them is refused, so the request is, before it costs anything.
    if (body.logprobs === true || (typeof body.top_logprobs === "number" && body.top_logprobs > 0))
      throw new AgentwallError("ERR_BAD_REQUEST", "logprobs carry token texts the guards do not scan; not relayed");
    const { upstream, model } = route(deps.upstreams, body.model, principal.roles);
    const asked = api.asked(body);
    if (asked !== undefined && asked > instance.config.maxTokensCap)
      throw new AgentwallError("ERR_BAD_REQUEST", `max_tokens is at most ${instance.config.maxTokensCap}`);
    const caller = callerOf(principal);
    // The request's first durable event records its permission check too (`checkInRouteEvent`).
    const auditLlm = (action: string, outcome: "allowed" | "success", details: Record<string, unknown>) => {
      const authorized = claimPermissionCheck(request);
      return instance.audit.append({
        type: "llm_request",
        actor: principal.subject,
        action,
        resource: `model:${upstream.name}/${model}`,
        outcome,
        ip: request.ip,
        userAgent: request.headers["user-agent"],
        requestId: request.id,
        details: authorized === undefined ? details : { ...details, authorized },
      });
    };
    for (const name of api.toolNames(body)) {
      const d = instance.tools.mayUse(caller, name);
      if (!d.allowed) throw new AgentwallError(d.code, d.reason);
    }
    for (const call of api.historyCalls(body)) {
      const d = await instance.tools.checkToolCall(caller, call.name, call.arguments);
      if (!d.allowed) throw new AgentwallError(d.code, d.reason);
    }
    const slots = api.slots(body, sourceTrust(principal));
    const input = await audited(instance, principal, request.id, upstream.name, model, api.name, "input", () =>
      // The caller's history comes again on every turn: its verdicts are kept (per caller, see VerdictCache).
      guardSlots(instance, slots, "input", principal.subject),
    );
    // Budgets: the estimate is reserved before anything leaves, then corrected to the real usage.
    // Each of n choices may write up to the token cap: the reservation covers them all, or a budget with
    // room for one answer would let eight through.
    const estimate = {
      prompt: estimateTokens(slots.map((x) => x.text)) + api.imageTokens(body),
      completion: (asked ?? instance.config.maxTokensCap) * api.choices(body),
    };
    if (asked === undefined) api.cap(body, instance.config.maxTokensCap);
    const reservation = await instance.budgets.reserve(principal, model, estimate).catch((error: unknown) => {
      if ((error as { code?: string }).code === "ERR_BUDGET_EXHAUSTED") instance.metrics.budgetRefusal();
      throw error;
    });
    // The upstream call's record, until the request's llm_request event (or its failure path) takes it.
    let upstreamCall: EgressRecord | undefined;
    // What the upstream used once it has answered: a failure after that (an answer blocked by the output
    // guard, a tool call refused, the audit failing) still counts it — the tokens were spent upstream, and
    // giving them back would let answers that get blocked run free of every budget.
    let spent: { prompt: number; completion: number } | undefined;
    let settled = false;
    const settle = async (actual: { prompt: number; completion: number }) => {
      if (settled) return;
      settled = true;
      await instance.budgets.settle(reservation, actual);
    };
    try {
      const streaming = body.stream === true;
      // Chat completions report usage in a stream only when asked; Responses always do.
      const forwarded =
        streaming && api.name === "chat"
          ? { ...body, model, stream_options: { include_usage: true } }
          : { ...body, model };
      const headers: Record<string, string> = {
        "content-type": "application/json",
        accept: streaming ? "text/event-stream" : "application/json",
      };
      if (upstream.key !== undefined) headers.authorization = `Bearer ${upstream.key}`;
      const path = `${upstream.basePath}${api.path}`;
      const call = {
        method: "POST",
        headers,
        body: JSON.stringify(forwarded),
        requestId: request.id,
        ...(upstream.credential === undefined ? {} : { credential: upstream.credential }),
      };
      if (streaming) {
        const detail = {
          credential: principal.credentialId,
          input: { texts: input.verdicts.length, redacted: input.redacted, findings: input.flagged },
        };
        // First durable event: before a byte goes anywhere.
        await auditLlm(`llm.${api.name}.stream.start`, "allowed", detail);
        await permissionAudited(request); // committed with the event above
        const upstreamStarted = process.hrtime.bigint();
        const up = await deps.egress.streamOperator(upstream.name, path, call);
        const upstreamNs = process.hrtime.bigint() - upstreamStarted;
        const type = String(up.headers["content-type"] ?? "");
        if (up.status < 200 || up.status >= 300 || !type.startsWith("text/event-stream")) {
          for await (const _ of up.body) break; // releases the connection
          throw new AgentwallError("ERR_UPSTREAM_FAILED", `the upstream answered ${up.status} ${type.slice(0, 40)}`);
        }
        await relayStream({
          instance,
          principal,
          request,
          reply,
          upstream: up,
          model: body.model,
          protocol: api.name === "chat" ? chatProtocol : responsesProtocol,
          checkToolCall: (name, args) => instance.tools.checkToolCall(caller, name, args),
          overheadMs: () => Number(process.hrtime.bigint() - started - upstreamNs) / 1e6,
          // Second durable event: before the final event leaves.
          closing: async (o) => {
            instance.metrics.llm(upstream.name, o.outcome, o.usage);
            if (o.outcome === "blocked") {
              instance.metrics.guardBlock("output");
              await instance.anomaly
                .observeGuardBlock({ subject: principal.subject, credentialId: principal.credentialId })
                .catch(() => undefined);
            }
            if (o.usage.total !== undefined)
              await instance.anomaly
                .observeTokens({
                  subject: principal.subject,
                  tokens: o.usage.total,
                  credentialId: principal.credentialId,
                })
                .catch(() => undefined);
            // Without usage (a stream cut short, an upstream that sends none) it counts the prompt's
            // estimate and the tokens of what the upstream sent — not nothing (that let answers made to
            // be blocked run outside the budget), not the whole max_tokens it never wrote.
            await settle(
              Object.keys(o.usage).length > 0
                ? { prompt: o.usage.prompt ?? 0, completion: o.usage.completion ?? 0 }
                : { prompt: estimate.prompt, completion: Math.ceil(o.written / 4) },
            );
            await instance.audit.append({
              type: o.outcome === "success" ? "llm_request" : "guard_block",
              actor: principal.subject,
              action: `llm.${api.name}.stream.end`,
              resource: `model:${upstream.name}/${model}`,
              outcome: o.outcome === "success" ? "success" : o.outcome === "blocked" ? "blocked" : "error",
              requestId: request.id,
              details: {
                ...detail,
                output: {
                  redacted: o.redacted,
                  findings: o.findings,
                  ...(o.code === undefined ? {} : { code: o.code }),
                },
                usage: o.usage,
              },
            });
          },
        });
        return reply;
      }
      const upstreamStarted = process.hrtime.bigint();
      const res = await deps.egress.fetchOperator(upstream.name, path, call);
      upstreamCall = res.record;
      const upstreamNs = process.hrtime.bigint() - upstreamStarted;
      if (res.status < 200 || res.status >= 300)
        throw new AgentwallError("ERR_UPSTREAM_FAILED", `the upstream answered ${res.status}`);
      // Answered: until its usage is read, it counts the prompt and what the upstream sent (an answer
      // that is not JSON, or not a completion, is paid for all the same).
      spent = { prompt: estimate.prompt, completion: Math.ceil(res.body.length / 4) };
      let answer: Record<string, unknown>;
      try {
        answer = JSON.parse(res.body.toString("utf8")) as Record<string, unknown>;
      } catch {
        throw new AgentwallError("ERR_UPSTREAM_FAILED", "the upstream's answer is not JSON");
      }
      if (typeof answer !== "object" || answer === null)
        throw new AgentwallError("ERR_UPSTREAM_FAILED", "the upstream's answer is not an object");
      const used = api.usage(answer);
      const { prompt, completion } = used;
      const reported = prompt !== undefined && completion !== undefined;
      if (reported) spent = { prompt, completion };
      // Seen by the anomaly detector whatever becomes of the answer: tokens spent on answers that are
      // then blocked are a spike all the same.
      if (used.total !== undefined)
        await instance.anomaly
          .observeTokens({ subject: principal.subject, tokens: used.total, credentialId: principal.credentialId })
          .catch(() => undefined);
      const outSlots = api.answerSlots(answer);
      // The texts as the model wrote them (the guard may redact the answer in place): what was used.
      const written = outSlots.map((x) => x.text);
      if (!reported) spent = { prompt: estimate.prompt, completion: estimateTokens(written) };
      const output = await audited(instance, principal, request.id, upstream.name, model, api.name, "output", () =>
        guardSlots(instance, outSlots, "output"),
      );
      for (const call of api.answerCalls(answer)) {
        const d = await instance.tools.checkToolCall(caller, call.name, call.arguments);
        if (!d.allowed) {
          await auditBlock(instance, principal, request.id, upstream.name, model, api.name, "output", [d.code]);
          throw new AgentwallError(d.code, `the model's answer calls a tool it may not: ${d.reason}`);
        }
      }
      instance.metrics.llm(upstream.name, "success", used);
      await settle(spent);
      const recorded = upstreamCall?.summary;
      upstreamCall = undefined;
      await auditLlm(`llm.${api.name}`, "success", {
        credential: principal.credentialId,
        input: { texts: input.verdicts.length, redacted: input.redacted, findings: input.flagged },
        output: { texts: output.verdicts.length, redacted: output.redacted, findings: output.flagged },
        usage: used,
        ...(recorded === undefined ? {} : { upstream: recorded }),
      });
      const overheadMs = Number(process.hrtime.bigint() - started - upstreamNs) / 1e6;
      return reply
        .header("content-type", "application/json; charset=utf-8")
        .header("x-agentwall-overhead-ms", overheadMs.toFixed(3))
        .send(JSON.stringify(api.relayed(answer, { id: request.id, model: body.model })));
    } catch (error) {
      // Failed: settle to what the upstream used (nothing if it never answered), and record the upstream
      // call on its own (durable before the error answer leaves, as the check's event is).
      await settle(spent ?? { prompt: 0, completion: 0 }).catch(() => undefined);
      await upstreamCall?.append();
      throw error;
    }
  }
}

function callerOf(principal: Principal) {
  return {
    id: principal.subject,
    roles: principal.roles,
    kind: principal.subject.startsWith("agent:") ? ("agent" as const) : ("user" as const),
  };
}

/** Runs a guard pass; a block is audited (`guard_block`, finding types only) before it is thrown. */
async function audited<T>(
  instance: Instance,
  principal: Principal,
  requestId: string,
  upstream: string,
  model: string,
  api: ProxyApi["name"],
  direction: "input" | "output",
  run: () => Promise<T>,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const findings = (error as { findings?: string[] }).findings;
    if (findings !== undefined)
      await auditBlock(instance, principal, requestId, upstream, model, api, direction, findings);
    throw error;
  }
}

async function auditBlock(
  instance: Instance,
  principal: Principal,
  requestId: string,
  upstream: string,
  model: string,
  api: ProxyApi["name"],
  direction: "input" | "output",
  findings: readonly string[],
): Promise<void> {
  instance.metrics.guardBlock(direction);
  await instance.anomaly
    .observeGuardBlock({ subject: principal.subject, credentialId: principal.credentialId })
    .catch(() => undefined);
  await instance.audit.append({
    type: "guard_block",
    actor: principal.subject,
    action: `llm.${api}.${direction}`,
    resource: `model:${upstream}/${model}`,
    outcome: "blocked",
    requestId,
    details: { findings: [...findings], credential: principal.credentialId },
  });
}
