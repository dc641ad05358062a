import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { AgentwallError } from "../errors.js";
import { linearRegExp } from "./regexp.js";
import { InputValidator, fromFieldSchema } from "./validate.js";

const refused = (pattern: string) =>
  assert.throws(
    () => linearRegExp(pattern),
    (e: unknown) => e instanceof AgentwallError && e.code === "ERR_INVALID_ARGUMENT" && e.message.includes("pattern"),
  );

describe("schema patterns on a linear-time engine", () => {
  it("a caller's catastrophic pattern answers at once (the backtracking engine takes minutes)", () => {
    // JavaScript's engine doubles its time per character here: 24 characters took 140 ms, 60 would
    // take years. The suite's time limit is what fails if this ever runs on a backtracking engine.
    const v = new InputValidator(
      fromFieldSchema({ name: { type: "string", pattern: "^(a|a)*$", max_length: 100_000 } }),
    );
    for (const evil of ["^(a|a)*$", "^(a+)+$", "^([a-z]+.)+[A-Z]$"]) {
      const re = linearRegExp(evil);
      assert.equal(re.test(`${"a".repeat(60)}!`), false);
    }
    const result = v.validate({ name: `${"a".repeat(50_000)}b` });
    assert.equal(result.valid, false);
    assert.deepEqual(result.valid ? [] : result.errors.map((e) => [e.field, e.rule]), [["/name", "pattern"]]);
    assert.equal(v.validate({ name: "a".repeat(50_000) }).valid, true);
  });

  it("keeps each pattern of a schema apart (Ajv shares compiled patterns by their text)", () => {
    const v = new InputValidator(
      fromFieldSchema({ a: { pattern: "^[A-Za-z ]+$" }, b: { pattern: "^[a-z]{3}$" }, c: { pattern: "^\\d+$" } }),
    );
    assert.equal(v.validate({ a: "Ann", b: "abc", c: "42" }).valid, true);
    const r = v.validate({ a: "Ann", b: "abcd", c: "x" });
    assert.deepEqual(r.valid ? [] : r.errors.map((e) => e.field), ["/b", "/c"]);
    // And across validators, which share one Ajv.
    const w = new InputValidator(fromFieldSchema({ b: { pattern: "^[0-9]{2}$" } }));
    assert.deepEqual([w.validate({ b: "12" }).valid, w.validate({ b: "abc" }).valid], [true, false]);
  });

  it("keeps JavaScript's meaning of ., \\s, \\S and the empty classes", () => {
    const cases: [string, string, boolean][] = [
      ["^\\s$", "\u00a0", true],
      ["^\\s$", "\u3000", true],
      ["^\\S$", "\u2028", false],
      ["^[\\s]$", "\ufeff", true],
      ["^[^\\s]$", "\u00a0", false],
      ["^.$", "\r", false],
      ["^.$", "\u2029", false],
      ["^.$", "😀", true],
      ["^[.]$", "x", false],
      ["^\\.$", ".", true],
      ["^a[]b$", "ab", false],
      ["^a[^]b$", "a\nb", true],
      ["^[\\]]$", "]", true],
      ["^\\\\s$", "\\s", true],
      ["^\\u00e9\\u{1F600}$", "é😀", true],
      ["(?<year>\\d{4})", "in 2024", true],
      ["^\\p{Lu}+$", "ÉCOLE", true],
      ["abc", "xxabcxx", true],
      ["^abc$", "abc\n", false],
    ];
    for (const [pattern, input, expected] of cases) {
      assert.equal(linearRegExp(pattern).test(input), expected, `${pattern} on ${JSON.stringify(input)}`);
      assert.equal(new RegExp(pattern, "u").test(input), expected, `reference: ${pattern}`);
    }
  });

  it("agrees with JavaScript's engine on random patterns and texts", () => {
    const atom = fc.constantFrom(
      "a",
      "b",
      ".",
      "\\s",
      "\\S",
      "\\d",
      "\\w",
      "[ab]",
      "[^a]",
      "[\\s]",
      " ",
      "\u00a0",
      "\r",
      "\n",
    );
    const piece = fc.tuple(atom, fc.constantFrom("", "*", "+", "?", "{1,2}")).map(([a, q]) => a + q);
    const pattern = fc
      .tuple(fc.boolean(), fc.array(piece, { minLength: 1, maxLength: 6 }), fc.boolean())
      .map(([start, pieces, end]) => `${start ? "^" : ""}${pieces.join("")}${end ? "$" : ""}`);
    const text = fc.array(fc.constantFrom("a", "b", "1", " ", "\u00a0", "\r", "\n", "_", "\u2028"), { maxLength: 8 });
    fc.assert(
      fc.property(pattern, text, (p, chars) => {
        const s = chars.join("");
        assert.equal(linearRegExp(p).test(s), new RegExp(p, "u").test(s), `${p} on ${JSON.stringify(s)}`);
      }),
      { numRuns: 2000 },
    );
  });

  it("refuses what needs backtracking, and what is not a JavaScript pattern, naming the pattern", () => {
    refused("^(?=a)a");
    refused("(?!x)y");
    refused("(a)\\1");
    refused("[\\S]");
    refused("(");
    refused("\\p{NotAProperty}");
    assert.throws(
      () => new InputValidator(fromFieldSchema({ id: { type: "string", pattern: "^(?=.*\\d).{8,}$" } })),
      (e: unknown) => e instanceof AgentwallError && e.code === "ERR_INVALID_ARGUMENT" && /\(\?=/.test(e.message),
    );
  });
});
