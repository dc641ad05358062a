import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { importJWK, type JWK } from "jose";
import { verifyJwtStrict, type JwtAlgorithm } from "./jwt.js";

interface Corpus {
  currentDate: number;
  issuer: string;
  audience: string;
  verificationKeys: Record<string, JWK>;
  cases: Array<{ id: string; verifierAlg: JwtAlgorithm; token: string; expect: "accept" | "reject"; attack: string }>;
}
const corpus = JSON.parse(
  readFileSync(join(import.meta.dirname, "../../test/fixtures/jwt/attack_corpus.json"), "utf8"),
) as Corpus;

describe("strict JWT verification: the attack corpus", () => {
  it("has all 54 cases", () => assert.equal(corpus.cases.length, 54));
  for (const c of corpus.cases) {
    it(`${c.id}: ${c.attack} -> ${c.expect}`, async () => {
      const jwk = corpus.verificationKeys[c.verifierAlg];
      assert.ok(jwk);
      const key = await importJWK(jwk, c.verifierAlg);
      const result = await verifyJwtStrict(c.token, key, {
        algorithms: [c.verifierAlg],
        issuer: corpus.issuer,
        audience: corpus.audience,
        typ: "JWT",
        maxTokenAgeSeconds: 3600,
        clockToleranceSeconds: 30,
        now: () => corpus.currentDate * 1000,
      });
      assert.equal(result.valid ? "accept" : "reject", c.expect, result.valid ? "" : result.failure);
    });
  }
});

describe("strict JWT verification: misuse", () => {
  it("refuses empty algorithm lists and oversized tokens", async () => {
    const key = new Uint8Array(32);
    await assert.rejects(
      verifyJwtStrict("a.b.c", key, { algorithms: [], issuer: "i", audience: "a", typ: "JWT", maxTokenAgeSeconds: 1 }),
      { code: "ERR_INVALID_ARGUMENT" },
    );
    const big = await verifyJwtStrict("eyJ" + "a".repeat(9000) + ".b.c", key, {
      algorithms: ["HS256"],
      issuer: "i",
      audience: "a",
      typ: "JWT",
      maxTokenAgeSeconds: 1,
    });
    assert.deepEqual(big, { valid: false, failure: "MALFORMED" });
  });
});
