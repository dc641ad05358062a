import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HtmlRenderer, Parser } from "commonmark";
import fc from "fast-check";
import { MarkdownCode, REACH } from "./markdown.js";

// Pieces of markdown that build block structure (containers, fences, indentation, HTML blocks, line
// endings) and inline structure (backticks, brackets, links, tags, escapes, table pipes) around markers.
const PIECES = [
  "```",
  "~~~",
  "````",
  "```html",
  "``` `x`",
  " ",
  "   ",
  "    ",
  "\t",
  "\n",
  "\n",
  "\n\n",
  "\r",
  "\r\n",
  "> ",
  ">",
  "- ",
  "* ",
  "1. ",
  "2) ",
  "10. ",
  "# ",
  "===",
  "---",
  "***",
  "`",
  "`",
  "``",
  "\\",
  "[",
  "]",
  "](",
  "(",
  ")",
  "![",
  "<",
  ">",
  "<div>",
  "<!--",
  "-->",
  "<script>",
  "</script>",
  '<a href="',
  '"',
  "'",
  "|",
  "x",
  "text ",
  "<http://a.b>",
  "[a]: /u",
  "MARK",
  "MARK",
  "MARK",
  "`MARK`",
  "`MARK`",
  "\n```\n",
  "\n~~~\n",
  "\n    ",
  "\n> ",
  "\n- ",
  "\n1. ",
  "\t> ",
  "  - ",
  "  ",
  "word ".repeat(30),
  "y".repeat(120),
  "<!DOCTYPE",
  "<?",
  "?>",
  "]]>",
  "<![CDATA[",
  "<pre>",
  "</pre>",
  "<span>",
  "</span>",
  "<p>",
  "&#96;",
  "\\`",
  "[x](",
  "a@b.c>",
  "*",
  "_",
  "\n\t",
  "\n  ",
  "\n   ",
  " '",
  ' "t"',
  "|---|",
  "\n|---|\n",
];

const marker = (n: number) => `<img src=x onerror=m${n}>`;

/** The text with numbered markers, and where each marker is. */
function build(pieces: readonly string[]): { text: string; marks: [number, number, number][] } {
  let text = "";
  const marks: [number, number, number][] = [];
  for (const piece of pieces) {
    const at = piece.indexOf("MARK");
    if (at >= 0) {
      const m = marker(marks.length);
      text += piece.slice(0, at);
      marks.push([marks.length, text.length, text.length + m.length]);
      text += m + piece.slice(at + 4);
    } else text += piece;
  }
  return { text, marks };
}

const parser = new Parser();
const renderer = new HtmlRenderer();

describe("markdown code (differential against commonmark.js)", () => {
  it("never calls code what commonmark.js renders as active HTML, and finds most of its code (property)", (t) => {
    let claimed = 0;
    let inCode = 0;
    let claimedInCode = 0;
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 100 }), (pieces) => {
        const { text, marks } = build(pieces);
        const html = renderer.render(parser.parse(text));
        const code = new MarkdownCode().append(text, true);
        const codeSegments = html.match(/<code[^>]*>[\s\S]*?<\/code>/g) ?? [];
        for (const [n, start, end] of marks) {
          const active = html.includes(marker(n));
          const ours = code.covers(start, end);
          const escaped = `&lt;img src=x onerror=m${n}&gt;`;
          const reference = codeSegments.some((s) => s.includes(escaped));
          if (ours) claimed++;
          if (reference) inCode++;
          if (ours && reference) claimedInCode++;
          assert.ok(
            !(ours && active),
            `marker ${n} is active in commonmark.js but called code:\n${JSON.stringify(text)}`,
          );
        }
      }),
      { numRuns: 3000, seed: 20261128 },
    );
    t.diagnostic(`claimed ${claimed}, reference code ${inCode}, recall ${(claimedInCode / inCode).toFixed(3)}`);
    assert.ok(claimedInCode / inCode > 0.5, "most code is found");
  });

  it("a CRLF split between pieces is one line ending; a lone CR ends a line", () => {
    const img = "<img src=x onerror=m0>";
    for (const text of [`para\r\n\n\t${img}`, `para\r\r\t${img}`, `\`\`\`\r${img}\r\`\`\``]) {
      const start = text.indexOf(img);
      assert.ok(new MarkdownCode().append(text, true).covers(start, start + img.length), JSON.stringify(text));
      const stream = new MarkdownCode();
      for (const c of text) stream.append(c);
      stream.append("", true);
      assert.ok(stream.covers(start, start + img.length), `char by char: ${JSON.stringify(text)}`);
    }
  });

  it("judged in pieces, it never claims what the whole text does not, and agrees once REACH past a character", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 60 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        (pieces, sizes) => {
          const { text, marks } = build(pieces);
          const whole = new MarkdownCode().append(text, true);
          const stream = new MarkdownCode();
          for (let at = 0, i = 0; at < text.length; i++) {
            const size = sizes[i % sizes.length] as number;
            stream.append(text.slice(at, at + size));
            at += size;
            for (const [, start, end] of marks) {
              if (end > at) continue;
              const now = stream.covers(start, end);
              const final = whole.covers(start, end);
              if (now) assert.ok(final, `claimed early at ${start}: ${JSON.stringify(text)}`);
              if (at >= start + 2 * REACH) assert.equal(now, final, `undecided at ${start}: ${JSON.stringify(text)}`);
            }
          }
          stream.append("", true);
          for (const [, start, end] of marks) assert.equal(stream.covers(start, end), whole.covers(start, end));
        },
      ),
      { numRuns: 1500, seed: 7 },
    );
  });
});
