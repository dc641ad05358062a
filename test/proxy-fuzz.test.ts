// Whatever an upstream answers — any shape, any type in any field, streamed or not, for both APIs — the
// proxy answers with a stable code: the relayed answer, a guard or tool refusal, or ERR_UPSTREAM_FAILED.
// Never a 500 / ERR_INTERNAL (a TypeError on a field of an unexpected type was one, in the chat stream).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { pino } from "pino";
import { buildServer } from "../src/gateway/server.js";
import { testInstance } from "./helpers.js";

/** What the fake upstream sends next. */
let next = { status: 200, type: "application/json", body: "{}" };
const upstream = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(next.status, { "content-type": next.type });
    res.end(next.body);
  });
}).listen(0, "127.0.0.1");
await new Promise((resolve) => upstream.once("listening", resolve));
const instance = await testInstance(
  {
    rateLimits: { perIp: { limit: 1_000_000, periodMs: 60_000, burst: 1_000_000 }, expectedInstances: 1 },
    tools: [{ name: "search", allow: { roles: ["admin"] }, argsSchema: { type: "object" } }],
  },
  {
    AGENTWALL_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`,
    AGENTWALL_UPSTREAM_KEY: "sk-upstream-fuzz-0000000000000000",
  },
);
const app = await buildServer(instance, { logger: pino({ level: "silent" }) });
after(async () => {
  await app.close();
  upstream.close();
});
const admin = (await instance.apiKeys.create({ owner: "root", name: "admin", roles: ["admin"], creator: "test" })).key;

// Values that steer into the relay's branches (the words and names it looks for), or anything at all.
const word = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom("assistant", "stop", "tool_calls", "search", '{"q":"x"}', "call_1", "completed"),
  fc.constantFrom("message", "output_text", "function_call", "reasoning", "summary_text", "refusal"),
);
const any = fc.oneof(word, fc.integer(), fc.constant(null), fc.boolean(), fc.jsonValue({ maxDepth: 2 }));
const or = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, any);
const some = <T>(fields: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(fields, { requiredKeys: [] });
const call = some({
  id: or(word),
  type: or(fc.constant("function")),
  index: or(fc.nat(3)),
  function: or(some({ name: or(fc.constant("search")), arguments: or(fc.constant('{"q":"x"}')) })),
});
const message = some({
  role: or(fc.constant("assistant")),
  content: or(word),
  refusal: any,
  reasoning_content: any,
  tool_calls: or(fc.array(call, { maxLength: 2 })),
  annotations: any,
});
const choice = some({
  index: or(fc.nat(3)),
  message: or(message),
  delta: or(message),
  finish_reason: or(word),
  logprobs: any,
  content_filter_results: any,
});
const usage = or(
  some({
    prompt_tokens: or(fc.nat(50)),
    completion_tokens: or(fc.nat(50)),
    total_tokens: or(fc.nat(100)),
    input_tokens: or(fc.nat(50)),
    output_tokens: or(fc.nat(50)),
  }),
);
const part = some({
  type: or(fc.constantFrom("output_text", "refusal", "summary_text", "reasoning_text")),
  text: or(word),
  refusal: any,
  annotations: any,
  logprobs: any,
});
const item = some({
  type: or(fc.constantFrom("message", "function_call", "reasoning")),
  id: any,
  role: any,
  status: any,
  content: or(fc.array(part, { maxLength: 2 })),
  summary: or(fc.array(part, { maxLength: 2 })),
  call_id: or(word),
  name: or(fc.constant("search")),
  arguments: or(fc.constant('{"q":"x"}')),
  encrypted_content: any,
});
const chatAnswer = some({
  id: any,
  object: any,
  model: any,
  choices: or(fc.array(choice, { maxLength: 3 })),
  usage,
  system_fingerprint: any,
  prompt_filter_results: any,
});
const responsesAnswer = some({
  id: any,
  status: or(word),
  output: or(fc.array(item, { maxLength: 3 })),
  output_text: any,
  usage,
  incomplete_details: any,
  error: any,
});
const responsesEvent = fc.record(
  {
    type: fc.constantFrom(
      ...["response.created", "response.output_item.added", "response.content_part.added"],
      ...["response.output_text.delta", "response.output_text.done", "response.output_item.done"],
      ...["response.function_call_arguments.delta", "response.function_call_arguments.done"],
      ...["response.reasoning_summary_part.added", "response.reasoning_summary_text.delta", "response.completed"],
    ),
    output_index: or(fc.nat(2)),
    content_index: or(fc.nat(2)),
    summary_index: or(fc.nat(2)),
    item: or(item),
    part: or(part),
    delta: or(word),
    arguments: any,
    response: or(responsesAnswer),
  },
  { requiredKeys: ["type"] },
);

const tool = { type: "function", function: { name: "search", parameters: { type: "object" } } };
async function ask(api: "chat" | "responses", stream: boolean) {
  const res = await app.inject({
    method: "POST",
    url: api === "chat" ? "/v1/chat/completions" : "/v1/responses",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    payload: JSON.stringify(
      api === "chat"
        ? { model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], stream, tools: [tool] }
        : { model: "gpt-4o-mini", input: "hi", stream, tools: [{ type: "function", ...tool.function }] },
    ),
  });
  assert.notEqual(res.statusCode, 500, res.body.slice(0, 300));
  assert.ok(!res.body.includes("ERR_INTERNAL"), res.body.slice(0, 300));
  return res;
}

const RUNS = 150;
describe("the proxy against any upstream answer (property)", () => {
  it("chat completions: never a 500", async () => {
    await fc.assert(
      fc.asyncProperty(chatAnswer, fc.constantFrom(200, 200, 200, 400, 500), async (answer, status) => {
        next = { status, type: "application/json", body: JSON.stringify(answer) };
        await ask("chat", false);
      }),
      { numRuns: RUNS },
    );
  });

  it("chat completion streams: never ERR_INTERNAL", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(chatAnswer, word), { maxLength: 4 }), fc.boolean(), async (events, done) => {
        const data = events.map((e) => `data: ${typeof e === "string" ? e : JSON.stringify(e)}\n\n`).join("");
        next = { status: 200, type: "text/event-stream", body: data + (done ? "data: [DONE]\n\n" : "") };
        await ask("chat", true);
      }),
      { numRuns: RUNS },
    );
  });

  it("responses: never a 500", async () => {
    await fc.assert(
      fc.asyncProperty(responsesAnswer, fc.constantFrom(200, 200, 500), async (answer, status) => {
        next = { status, type: "application/json", body: JSON.stringify(answer) };
        await ask("responses", false);
      }),
      { numRuns: RUNS },
    );
  });

  it("responses streams: never ERR_INTERNAL", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(responsesEvent, { maxLength: 6 }), async (events) => {
        const body = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join("");
        next = { status: 200, type: "text/event-stream", body };
        await ask("responses", true);
      }),
      { numRuns: RUNS },
    );
  });
});
