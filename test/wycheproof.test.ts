// Wycheproof vectors (test/fixtures/crypto, Apache-2.0) through agentwall's API: every valid case gives
// the right output, every invalid case is rejected, and cases outside agentwall's policy (AES-128/192,
// GCM IVs other than 12 bytes, truncated tags) are refused and counted as refused by policy. The files
// hold no "acceptable" cases; one would fail the test until a decision is written here.
import assert from "node:assert/strict";
import { createPrivateKey, createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { gcmDecryptParts, gcmEncryptWithIv } from "../src/crypto/aead.js";
import { rsaOaepDecrypt, verifyEd25519 } from "../src/crypto/asymmetric.js";
import { hkdfSha256, hmacSha256, pbkdf2Sha256, verifyHmacSha256 } from "../src/crypto/kdf.js";

interface Case {
  tcId: number;
  result: "valid" | "invalid" | "acceptable";
  [field: string]: unknown;
}
interface Group {
  tests: Case[];
  [field: string]: unknown;
}

function groups(file: string): Group[] {
  const doc = JSON.parse(readFileSync(new URL(`fixtures/crypto/${file}`, import.meta.url), "utf8")) as {
    testGroups: Group[];
  };
  return doc.testGroups;
}
const hex = (v: unknown) => Buffer.from(v as string, "hex");
function noAcceptable(c: Case): void {
  assert.notEqual(c.result, "acceptable", `case ${c.tcId} is "acceptable": decide and document it`);
}
const refusedWith = (fn: () => unknown, code: string) => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code === code;
  }
  return false;
};

describe("Wycheproof through agentwall's API", () => {
  it("AES-GCM: 256-bit keys, 12-byte IVs, 16-byte tags pass; everything else is refused by policy", () => {
    const counts = { valid: 0, invalid: 0, policy: 0 };
    for (const g of groups("aes_gcm_test.json")) {
      const inPolicy = g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128;
      for (const c of g.tests) {
        noAcceptable(c);
        const [key, iv, aad, msg, ct, tag] = [c.key, c.iv, c.aad, c.msg, c.ct, c.tag].map(hex) as Buffer[];
        if (!inPolicy) {
          // Key or IV outside the policy: ERR_INVALID_ARGUMENT before any work; a short tag: ERR_DECRYPT.
          const refused =
            refusedWith(() => gcmDecryptParts(key!, iv!, ct!, tag!, aad), "ERR_INVALID_ARGUMENT") ||
            refusedWith(() => gcmDecryptParts(key!, iv!, ct!, tag!, aad), "ERR_DECRYPT");
          assert.ok(refused, `case ${c.tcId} outside the policy was not refused`);
          counts.policy++;
          continue;
        }
        if (c.result === "valid") {
          assert.deepEqual(gcmDecryptParts(key!, iv!, ct!, tag!, aad), msg, `case ${c.tcId}`);
          const out = gcmEncryptWithIv(key!, iv!, msg!, aad);
          assert.deepEqual([out.ciphertext, out.tag], [ct, tag], `case ${c.tcId} encrypt`);
          counts.valid++;
        } else {
          assert.throws(() => gcmDecryptParts(key!, iv!, ct!, tag!, aad), { code: "ERR_DECRYPT" }, `case ${c.tcId}`);
          counts.invalid++;
        }
      }
    }
    process.stdout.write(`# AES-GCM: ${JSON.stringify(counts)} (policy = refused by policy)\n`);
    assert.ok(counts.valid > 30 && counts.invalid > 10 && counts.policy > 100);
  });

  for (const bits of [2048, 3072, 4096]) {
    it(`RSA-OAEP-${bits} SHA-256/MGF1-SHA-256: valid decrypts to the message, invalid is ERR_DECRYPT`, () => {
      let n = 0;
      for (const g of groups(`rsa_oaep_${bits}_sha256_mgf1sha256_test.json`)) {
        const key = createPrivateKey(g.privateKeyPem as string);
        for (const c of g.tests) {
          noAcceptable(c);
          const run = () => rsaOaepDecrypt(key, hex(c.ct), { label: hex(c.label) });
          if (c.result === "valid") assert.deepEqual(run(), hex(c.msg), `case ${c.tcId}`);
          else assert.throws(run, { code: "ERR_DECRYPT" }, `case ${c.tcId}`);
          n++;
        }
      }
      assert.ok(n >= 30, `${n} cases`);
    });
  }

  it("Ed25519: valid signatures verify, invalid ones (malleable, non-canonical, wrong length) do not", () => {
    let n = 0;
    for (const g of groups("ed25519_test.json")) {
      const key = createPublicKey(g.publicKeyPem as string);
      for (const c of g.tests) {
        noAcceptable(c);
        assert.equal(verifyEd25519(key, hex(c.msg), hex(c.sig)), c.result === "valid", `case ${c.tcId}`);
        n++;
      }
    }
    assert.equal(n, 151);
  });

  it("HMAC-SHA256: full tags verify exactly; truncated tags are refused by policy", () => {
    const counts = { valid: 0, invalid: 0, policy: 0 };
    for (const g of groups("hmac_sha256_test.json")) {
      for (const c of g.tests) {
        noAcceptable(c);
        const [key, msg, tag] = [hex(c.key), hex(c.msg), hex(c.tag)];
        if (g.tagSize !== 256) {
          assert.equal(verifyHmacSha256(key, msg, tag), false, `case ${c.tcId}`);
          counts.policy++;
        } else if (c.result === "valid") {
          assert.deepEqual(hmacSha256(key, msg), tag);
          assert.equal(verifyHmacSha256(key, msg, tag), true);
          counts.valid++;
        } else {
          assert.equal(verifyHmacSha256(key, msg, tag), false, `case ${c.tcId}`);
          counts.invalid++;
        }
      }
    }
    process.stdout.write(`# HMAC-SHA256: ${JSON.stringify(counts)}\n`);
    assert.ok(counts.valid > 20 && counts.invalid > 20);
  });

  it("HKDF-SHA256: valid outputs match, oversize outputs are refused", () => {
    let n = 0;
    for (const g of groups("hkdf_sha256_test.json")) {
      for (const c of g.tests) {
        noAcceptable(c);
        const run = () => hkdfSha256(hex(c.ikm), hex(c.salt), hex(c.info), c.size as number);
        if (c.result === "valid") assert.deepEqual(run(), hex(c.okm), `case ${c.tcId}`);
        else assert.throws(run, { code: "ERR_INVALID_ARGUMENT" }, `case ${c.tcId}`);
        n++;
      }
    }
    assert.equal(n, 86);
  });

  it("PBKDF2-HMAC-SHA256: every case derives the expected key", async () => {
    let n = 0;
    for (const g of groups("pbkdf2_hmacsha256_test.json")) {
      for (const c of g.tests) {
        noAcceptable(c);
        const dk = await pbkdf2Sha256(hex(c.password), hex(c.salt), c.iterationCount as number, c.dkLen as number);
        assert.deepEqual(dk, hex(c.dk), `case ${c.tcId}`);
        n++;
      }
    }
    assert.equal(n, 60);
  });
});
