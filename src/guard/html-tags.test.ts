import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import { JSDOM } from "jsdom";
import { findUnsafeOutput } from "./output.js";

// Pieces of start-tag syntax: separators, quotes, character references, handlers and URLs.
const PIECES = [
  " ",
  "\t",
  "\n",
  "/",
  '"',
  "'",
  "=",
  "<",
  ">",
  "x",
  "title",
  "onerror",
  "ONLOAD",
  "onclick",
  "alert(1)",
  "href",
  "src",
  "javascript:",
  "jav&#x61;script:",
  "java&Tab;script:",
  "&colon;",
  "&#106;",
  "data:text/html,x",
  "`",
  "&",
];

describe("start tags (differential against jsdom's HTML parser)", () => {
  it("whatever handler or script URL jsdom puts on an element, the output guard reports (property)", () => {
    const document = new JSDOM("").window.document;
    fc.assert(
      fc.property(
        fc.constantFrom("a", "img", "svg", "div", "x"),
        fc.array(fc.constantFrom(...PIECES), { maxLength: 30 }),
        (name, pieces) => {
          const text = `<${name}${pieces.join("")}>`;
          const holder = document.createElement("div");
          holder.innerHTML = text;
          const found = new Set(findUnsafeOutput(text, { codeIsText: false }).map((f) => f.type));
          for (const el of holder.querySelectorAll("*")) {
            for (const attr of el.attributes) {
              if (/^on[a-z]{3,}/.test(attr.name) && attr.value.trim() !== "")
                assert.ok(found.has("html_event_handler"), `${attr.name} in ${JSON.stringify(text)}`);
              const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(
                // eslint-disable-next-line no-control-regex -- leading C0 controls are what a URL parser drops
                attr.value.replace(/[\t\n\r]/g, "").replace(/^[\x00-\x20]+/, ""),
              );
              if (scheme !== null && /^(?:javascript|vbscript)$/i.test(scheme[1] as string))
                assert.ok(found.has("dangerous_url"), `${attr.name}=${attr.value} in ${JSON.stringify(text)}`);
            }
          }
        },
      ),
      { numRuns: 1500, seed: 5 },
    );
  });

  it("flags every OWASP filter-evasion vector that jsdom parses into active content (31 of 101)", () => {
    const document = new JSDOM("").window.document;
    const vectors = JSON.parse(
      readFileSync(new URL("../../test/fixtures/html/owasp_xss_filter_evasion_vectors.json", import.meta.url), "utf8"),
    ) as { vector: string }[];
    let active = 0;
    for (const { vector } of vectors) {
      const holder = document.createElement("div");
      holder.innerHTML = vector;
      const runs = [...holder.querySelectorAll("*")].some(
        (el) =>
          ["script", "iframe", "object", "embed", "frame", "base", "applet"].includes(el.localName) ||
          [...el.attributes].some(
            (a) => /^on/i.test(a.name) || /^\s*(?:javascript|vbscript):/i.test(a.value.replace(/[\t\n\r]/g, "")),
          ),
      );
      if (!runs) continue;
      active++;
      assert.ok(findUnsafeOutput(vector, { codeIsText: false }).length > 0, vector);
    }
    assert.equal(active, 31);
  });
});
