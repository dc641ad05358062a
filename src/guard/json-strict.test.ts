import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parseStrictJson } from "./json-strict.js";

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
});
