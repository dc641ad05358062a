import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { dedupe, type Finding } from "./finding.js";
import { findPii } from "./pii.js";
import { findSecrets } from "./secrets.js";
import { StreamScanner } from "./stream.js";

const scan = (t: string): Finding[] => dedupe([...findSecrets(t), ...findPii(t)]);
const key = (f: Finding) => `${f.type}@${f.start}-${f.end}`;
const PIECES = [
  "hello ",
  "world. ",
  "mail jane.doe@example.org ",
  "card 4111 1111 1111 1111 ",
  "token ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5 ",
  'password = "Tr0ub4dor&3xK9!qLm" ',
  "sk_live_4eC39HqLyjWDarjtT1zdp7dc ",
  `-----BEGIN PRIVATE KEY-----\n${"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(4)}\n-----END PRIVATE KEY-----\n`,
  "call +1 415-555-2671 ",
  "ip 10.0.0.1 ",
  "é中🙂 ",
];

describe("streaming scan", () => {
  it("releases the same text and the same findings as a whole-text scan, for any chunking (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 50 }),
        fc.integer({ min: 0, max: 64 }),
        (pieces, sizes, minRelease) => {
          const text = pieces.join("");
          const stream = new StreamScanner(scan, 400, minRelease);
          let released = "";
          const found: Finding[] = [];
          let at = 0;
          for (let i = 0; at < text.length; i++) {
            const size = sizes[i % sizes.length] as number;
            const r = stream.push(text.slice(at, at + size));
            at += size;
            released += r.text;
            found.push(...r.findings);
            // Nothing released may hold part of a finding the whole scan sees beyond the release.
            for (const f of scan(text)) assert.ok(!(f.start < released.length && f.end > released.length));
          }
          const last = stream.end();
          released += last.text;
          found.push(...last.findings);
          assert.equal(released, text);
          assert.deepEqual(found.map(key).sort(), scan(text).map(key).sort());
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("reversible anonymization", () => {
  it("replaces PII with per-request placeholders and restores them in the answer, also when streamed", async () => {
    const { Anonymizer } = await import("./anonymize.js");
    const a = new Anonymizer();
    const b = new Anonymizer();
    const prompt = "Write to jane.doe@example.org and cc jane.doe@example.org, call +1 415-555-2671.";
    const masked = a.anonymize(prompt);
    assert.ok(!masked.includes("jane.doe") && !masked.includes("415-555"));
    const placeholders = masked.match(/⟦[^⟧]+⟧/g) ?? [];
    assert.equal(new Set(placeholders).size, 2, "one value, one placeholder");
    const answer = `Sure, I emailed ${placeholders[0]} and will call ${placeholders[2]}.`;
    assert.equal(a.restore(answer), "Sure, I emailed jane.doe@example.org and will call +1 415-555-2671.");
    assert.equal(b.restore(answer), answer, "another request's placeholders are not restored");
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 40 }), (sizes) => {
        const r = a.streamRestorer();
        let out = "";
        let at = 0;
        for (let i = 0; at < answer.length; i++) {
          const size = sizes[i % sizes.length] as number;
          out += r.push(answer.slice(at, at + size));
          at += size;
        }
        out += r.end();
        assert.equal(out, a.restore(answer));
      }),
    );
  });
});
