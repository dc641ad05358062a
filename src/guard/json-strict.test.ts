import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { MAX_JSON_DEPTH, jsonDepthWithin, parseStrictJson } from "./json-strict.js";

describe("parseStrictJson", () => {
  it("refuses duplicate keys at any depth, and nothing else that JSON.parse accepts", () => {
    for (const bad of ['{"a":1,"a":2}', '{"x":{"b":1,"b":1}}', '[{"k":1,"\\u006b":2}]', '{"a":{"c":1},"b":2,"a":3}']) {
      assert.throws(() => parseStrictJson(bad), { code: "ERR_INVALID_ARGUMENT" }, bad);
    }
    for (const good of [
      '{"a":1,"b":{"a":2}}',
      '[{"a":1},{"a":2}]',
      '{"s":"a\\"b,\\"a\\":1"}',
      '"plain"',
      "[]",
      '{"":1}',
    ]) {
      assert.deepEqual(parseStrictJson(good), JSON.parse(good), good);
    }
    assert.throws(() => parseStrictJson("{nope"), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => parseStrictJson(JSON.stringify({ x: "a".repeat(70_000) })), { code: "ERR_INVALID_ARGUMENT" });
  });

  it("agrees with JSON.parse on every JSON text without duplicate keys (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
        const text = JSON.stringify(value);
        assert.deepEqual(parseStrictJson(text), JSON.parse(text));
      }),
    );
  });

  it("refuses JSON nested deeper than 64 levels, which JSON.parse takes and JSON.stringify cannot give back", () => {
    const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
    assert.deepEqual(parseStrictJson(deep(MAX_JSON_DEPTH)), JSON.parse(deep(MAX_JSON_DEPTH)));
    for (const text of [deep(MAX_JSON_DEPTH + 1), deep(30_000), `{"a":${'{"b":'.repeat(70)}1${"}".repeat(70)}}`])
      assert.throws(() => parseStrictJson(text), { code: "ERR_INVALID_ARGUMENT", message: /nested deeper/ });
  });
});

describe("jsonDepthWithin", () => {
  const depth = (v: unknown): number =>
    typeof v === "object" && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0;

  it("measures the nesting of arrays and objects, not brackets or escaped quotes in strings (property)", () => {
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 8 }),
        fc.integer({ min: 0, max: 10 }),
        fc.constantFrom("[", "{", '\\"[', "\\\\", "]}"),
        (value, max, noise) => {
          const text = JSON.stringify([value, `${noise}${noise}${noise}`]);
          assert.equal(jsonDepthWithin(text, max), 1 + depth(value) <= max, text);
        },
      ),
    );
  });
});
