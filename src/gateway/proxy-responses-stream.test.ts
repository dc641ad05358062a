import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { isAgentwallError } from "../errors.js";
import { Guard } from "../guard/pipeline.js";
import { responsesProtocol } from "./proxy-responses-stream.js";
import type { RelayContext } from "./proxy-stream.js";

const guard = new Guard();
const context = (): RelayContext => ({
  guard: () => guard.stream({ direction: "output", source: "agent" }),
  released: (r) => {
    if (r.blocked) throw Object.assign(new Error("blocked"), { code: "ERR_GUARD_BLOCKED" });
    return r.text;
  },
  toolCall: (name, args) => Promise.resolve({ name, arguments: args }),
  id: "req-1",
  created: 1,
  model: "m",
});

// Upstream events as a hostile or broken upstream might send them: known types with fields of any
// shape, unknown types, out-of-range indexes.
const TYPES = [
  "response.created",
  "response.in_progress",
  "response.output_item.added",
  "response.content_part.added",
  "response.output_text.delta",
  "response.refusal.delta",
  "response.output_text.done",
  "response.refusal.done",
  "response.content_part.done",
  "response.function_call_arguments.delta",
  "response.function_call_arguments.done",
  "response.output_item.done",
  "response.completed",
  "response.failed",
  "response.reasoning_summary_part.added",
  "response.reasoning_summary_text.delta",
  "response.reasoning_summary_text.done",
  "response.reasoning_summary_part.done",
  "response.reasoning_text.delta",
  "response.reasoning_text.done",
  "nonsense",
];
const anyValue = fc.oneof(
  fc.constantFrom(
    0,
    1,
    2,
    -1,
    64,
    1.5,
    null,
    "x",
    "message",
    "function_call",
    "output_text",
    "refusal",
    "call_1",
    "summary_text",
    "reasoning_text",
  ),
  fc.string({ maxLength: 8 }),
  fc.record({
    type: fc.constantFrom(
      "message",
      "function_call",
      "output_text",
      "refusal",
      "reasoning",
      "summary_text",
      "reasoning_text",
    ),
  }),
  fc.record({ type: fc.constant("reasoning"), encrypted_content: fc.constantFrom(null, "opaque") }),
);
const event = fc.record(
  {
    type: fc.constantFrom(...TYPES),
    output_index: fc.constantFrom(0, 1, 99, -1, "0"),
    content_index: fc.constantFrom(0, 1, 99),
    summary_index: fc.constantFrom(0, 1, 99),
    delta: fc.oneof(fc.string({ maxLength: 12 }), anyValue),
    item: anyValue,
    part: anyValue,
    arguments: anyValue,
    response: fc.oneof(anyValue, fc.constant({ usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 } })),
  },
  { requiredKeys: ["type"] },
);

describe("responsesProtocol on arbitrary upstream events (property)", () => {
  it("either completes with well-formed events or refuses with a stable error — never another exception", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(event, fc.constant("not json")), { maxLength: 40 }), async (events) => {
        const p = responsesProtocol(context());
        let out = "";
        try {
          for (const e of events) {
            if (p.complete()) break;
            out += await p.event(typeof e === "string" ? e : JSON.stringify(e), undefined);
          }
          if (p.complete()) {
            out += await p.flush();
            out += p.final(p.usage());
          }
        } catch (error) {
          assert.ok(
            isAgentwallError(error) || (error as { code?: string }).code === "ERR_GUARD_BLOCKED",
            String(error),
          );
          out += p.error("ERR_UPSTREAM_FAILED", "x", "req-1");
        }
        // Every event written is one `event:` line and one JSON `data:` line with our sequence numbers.
        const blocks = out.split("\n\n").filter((b) => b !== "");
        blocks.forEach((block, i) => {
          const [name, data] = block.split("\n");
          assert.match(name ?? "", /^event: [a-z_.]+$/);
          const parsed = JSON.parse((data ?? "").replace(/^data: /, "")) as { type: string; sequence_number: number };
          assert.equal(`event: ${parsed.type}`, name);
          assert.equal(parsed.sequence_number, i);
        });
      }),
      { numRuns: 400 },
    );
  });
});
