import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  decryptCompat,
  decryptEnvelope,
  encodeEnvelope,
  encryptCompat,
  encryptWithKey,
  encryptWithPassword,
  envelopeToBinary,
  envelopeToJson,
  openCompatBlob,
  parseEnvelope,
  sealCompatBlob,
  type CompatEnvelope,
} from "./envelope.js";
import type { KdfParams } from "./kdf.js";

const CHEAP: KdfParams = { name: "scrypt", log2N: 10, r: 8, p: 1 };
const CHEAP_PBKDF2: KdfParams = { name: "pbkdf2-sha256", iterations: 1000 };

async function rejectsOpaque(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (e: { code?: string; message?: string }) => {
    assert.equal(e.code, "ERR_DECRYPT");
    assert.equal(e.message, "decryption failed");
    return true;
  });
}

describe("envelopes", () => {
  it("round-trip arbitrary data, keys, passwords and associated data, in JSON and binary form", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 2048 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.string({ minLength: 1, maxLength: 64 }),
        fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
        fc.constantFrom(CHEAP, CHEAP_PBKDF2),
        async (data, key, password, aad, kdf) => {
          const opts = aad === undefined ? {} : { aad };
          const byKey = encryptWithKey(key, data, opts);
          const byPassword = await encryptWithPassword(password, data, { ...opts, kdf });
          for (const form of [envelopeToJson(byKey), envelopeToBinary(byKey)]) {
            assert.deepEqual(await decryptEnvelope(form, { key }, opts), Buffer.from(data));
          }
          for (const form of [envelopeToJson(byPassword), envelopeToBinary(byPassword)]) {
            assert.deepEqual(await decryptEnvelope(form, { password }, opts), Buffer.from(data));
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("a single flipped bit anywhere in the binary form is rejected with the opaque error", async () => {
    const key = randomBytes(32);
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 256 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        async (data, at, bit) => {
          for (const env of [encryptWithKey(key, data), await encryptWithPassword("pw", data, { kdf: CHEAP })]) {
            const bytes = envelopeToBinary(env);
            bytes[at % bytes.length]! ^= 1 << bit;
            await rejectsOpaque(decryptEnvelope(bytes, env.kdf === null ? { key } : { password: "pw" }));
          }
        },
      ),
      { numRuns: 80 },
    );
  });

  it("every JSON field is covered: changing any of them is rejected", async () => {
    const env = JSON.parse(
      envelopeToJson(await encryptWithPassword("pw", Buffer.from("hello"), { kdf: CHEAP })),
    ) as Record<string, unknown>;
    const variants: Record<string, unknown>[] = [
      { ...env, v: 2 },
      { ...env, alg: "AES-128-GCM" },
      { ...env, kdf: { ...(env.kdf as object), log2N: 11 } },
      { ...env, kdf: { ...(env.kdf as object), r: 9 } },
      { ...env, kdf: { name: "pbkdf2-sha256", iterations: 1000 } },
      { ...env, salt: Buffer.alloc(16).toString("base64url") },
      { ...env, iv: Buffer.alloc(12).toString("base64url") },
      { ...env, ct: "AAAAAAA" },
      { ...env, tag: Buffer.alloc(16).toString("base64url") },
      { ...env, extra: 1 },
      { ...env, iv: (env.iv as string) + "=" },
    ];
    for (const v of variants) await rejectsOpaque(decryptEnvelope(JSON.stringify(v), { password: "pw" }));
    await rejectsOpaque(decryptEnvelope(JSON.stringify(env).replace("{", '{"v":1,'), { password: "pw" }));
  });

  it("no input makes decrypt crash instead of the opaque error", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.string({ maxLength: 200 }),
          fc.json().map((j) => j),
        ),
        async (input) => {
          await rejectsOpaque(decryptEnvelope(input, { password: "pw" }));
          await rejectsOpaque(decryptEnvelope(input, { key: Buffer.alloc(32) }));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("refuses envelopes asking for a KDF beyond the limits before doing any work", async () => {
    const env = JSON.parse(envelopeToJson(await encryptWithPassword("pw", Buffer.from("x"), { kdf: CHEAP }))) as Record<
      string,
      unknown
    >;
    const started = Date.now();
    await rejectsOpaque(
      decryptEnvelope(JSON.stringify({ ...env, kdf: { name: "scrypt", log2N: 30, r: 8, p: 1 } }), { password: "pw" }),
    );
    await rejectsOpaque(
      decryptEnvelope(JSON.stringify({ ...env, kdf: { name: "pbkdf2-sha256", iterations: 4_000_000_000 } }), {
        password: "pw",
      }),
    );
    assert.ok(Date.now() - started < 1000, "refused without running the KDF");
    await assert.rejects(
      encryptWithPassword("pw", Buffer.from("x"), { kdf: { name: "pbkdf2-sha256", iterations: 1 } }),
      {
        code: "ERR_INVALID_ARGUMENT",
      },
    );
    await assert.rejects(encryptWithPassword("", Buffer.from("x"), { kdf: CHEAP }), { code: "ERR_INVALID_ARGUMENT" });
  });

  it("the defaults: scrypt N=2^17 r=8 p=1 and PBKDF2 600,000 round-trip", async () => {
    const env = await encryptWithPassword("correct horse", Buffer.from("default"));
    assert.deepEqual(env.kdf, { name: "scrypt", log2N: 17, r: 8, p: 1 });
    assert.equal((await decryptEnvelope(envelopeToBinary(env), { password: "correct horse" })).toString(), "default");
    const portable = await encryptWithPassword("pw", Buffer.from("p"), {
      kdf: { name: "pbkdf2-sha256", iterations: 600_000 },
    });
    assert.equal((await decryptEnvelope(envelopeToJson(portable), { password: "pw" })).toString(), "p");
  });

  it("parses what it writes, and names nothing in its errors", () => {
    const env = encryptWithKey(Buffer.alloc(32, 7), Buffer.from("a"));
    assert.deepEqual(parseEnvelope(envelopeToBinary(env)), parseEnvelope(envelopeToJson(env)));
    assert.throws(() => encodeEnvelope(env, "compat"), { code: "ERR_INVALID_ARGUMENT" });
  });
});

describe("compatibility with the source guides' format", () => {
  it("round-trips the compat JSON (16-byte IV) and the iv‖tag‖ciphertext file layout", async () => {
    const env = await encryptCompat("pässword", Buffer.from("from agentwall"));
    assert.equal(Buffer.from(env.iv, "base64").length, 16);
    assert.equal((await decryptEnvelope(JSON.stringify(env), { password: "pässword" })).toString(), "from agentwall");
    await rejectsOpaque(decryptCompat({ ...env, auth_tag: Buffer.alloc(16).toString("base64") }, "pässword"));
    await rejectsOpaque(decryptCompat({ ...env, iv: env.iv.slice(0, -4) + "!!==" }, "pässword"));
    const key = randomBytes(32);
    const blob = sealCompatBlob(key, Buffer.from("file body"));
    assert.equal(openCompatBlob(key, blob).toString(), "file body");
    blob[20]! ^= 1;
    assert.throws(() => openCompatBlob(key, blob), { code: "ERR_DECRYPT" });
  });

  it("decrypts the fixed vectors Python's cryptography wrote (test/fixtures/compat)", async () => {
    const doc = JSON.parse(
      readFileSync(new URL("../../test/fixtures/compat/python-vectors.json", import.meta.url), "utf8"),
    ) as {
      envelopes: { password: string; plaintext: string; envelope: CompatEnvelope }[];
      blobs: { key: string; blob: string; plaintext: string }[];
    };
    for (const v of doc.envelopes) {
      assert.equal(
        (await decryptEnvelope(JSON.stringify(v.envelope), { password: v.password })).toString(),
        v.plaintext,
      );
      await rejectsOpaque(decryptEnvelope(JSON.stringify(v.envelope), { password: v.password + "x" }));
    }
    for (const v of doc.blobs) {
      assert.equal(openCompatBlob(Buffer.from(v.key, "hex"), Buffer.from(v.blob, "hex")).toString("hex"), v.plaintext);
    }
    assert.equal(doc.envelopes.length + doc.blobs.length, 7);
  });

  const python = spawnSync("python3", ["-c", "import cryptography"]).status === 0;
  it(
    "decrypts vectors made at test time by Python's cryptography package, and Python decrypts ours",
    { skip: !python && "python3 with the cryptography package is not installed" },
    async () => {
      // The source guide's own code (PBKDF2HMAC SHA256 100,000 iterations, 16-byte IV, AESGCM).
      const script = `
import base64, json, os, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
def key(pw, salt):
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=100000).derive(pw.encode())
req = json.load(sys.stdin)
out = {}
salt, iv = os.urandom(16), os.urandom(16)
enc = Cipher(algorithms.AES(key(req["password"], salt)), modes.GCM(iv)).encryptor()
ct = enc.update(req["plaintext"].encode()) + enc.finalize()
b = lambda x: base64.b64encode(x).decode()
out["python"] = {"ciphertext": b(ct), "iv": b(iv), "salt": b(salt), "auth_tag": b(enc.tag), "algorithm": "AES-256-GCM"}
e = req["ours"]
dec = Cipher(algorithms.AES(key(req["password"], base64.b64decode(e["salt"]))), modes.GCM(base64.b64decode(e["iv"]), base64.b64decode(e["auth_tag"]))).decryptor()
out["ours"] = (dec.update(base64.b64decode(e["ciphertext"])) + dec.finalize()).decode()
k = os.urandom(32); iv12 = os.urandom(12)
enc = Cipher(algorithms.AES(k), modes.GCM(iv12)).encryptor()
body = enc.update(b"file from python") + enc.finalize()
out["blob"] = {"key": k.hex(), "data": (iv12 + enc.tag + body).hex()}
print(json.dumps(out))
`;
      const ours = await encryptCompat("hunter2 ✓", Buffer.from("written by agentwall"));
      const run = spawnSync("python3", ["-c", script], {
        input: JSON.stringify({ password: "hunter2 ✓", plaintext: "written by python", ours }),
        encoding: "utf8",
      });
      assert.equal(run.status, 0, run.stderr);
      const out = JSON.parse(run.stdout) as {
        python: CompatEnvelope;
        ours: string;
        blob: { key: string; data: string };
      };
      assert.equal(
        (await decryptEnvelope(JSON.stringify(out.python), { password: "hunter2 ✓" })).toString(),
        "written by python",
      );
      assert.equal(out.ours, "written by agentwall");
      assert.equal(
        openCompatBlob(Buffer.from(out.blob.key, "hex"), Buffer.from(out.blob.data, "hex")).toString(),
        "file from python",
      );
    },
  );
});
