import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { tempDir } from "../../test/helpers.js";
import { decryptFile, encryptFile } from "./file-stream.js";
import type { KdfParams } from "./kdf.js";

const CHUNK = 1024;
const CHEAP: KdfParams = { name: "scrypt", log2N: 10, r: 8, p: 1 };
const HEADER_KEY = 4 + 1 + 16 + 4;

describe("streaming file encryption", () => {
  const dir = tempDir();
  const key = randomBytes(32);
  const path = (name: string) => join(dir, name);

  async function roundTrip(data: Buffer, secret: { key: Buffer } | { password: string }): Promise<Buffer> {
    writeFileSync(path("in"), data);
    await encryptFile(path("in"), path("enc"), secret, { chunkBytes: CHUNK, kdf: CHEAP });
    await decryptFile(path("enc"), path("out"), secret);
    return readFileSync(path("out"));
  }

  it("round-trips every size around the chunk boundaries, with a key and with a password", async () => {
    for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17]) {
      const data = randomBytes(size);
      assert.deepEqual(await roundTrip(data, { key }), data, `key, ${size} bytes`);
      assert.deepEqual(await roundTrip(data, { password: "pw" }), data, `password, ${size} bytes`);
    }
    assert.equal(statSync(path("enc")).mode & 0o777, 0o600);
  });

  async function encrypted(size: number): Promise<Buffer> {
    writeFileSync(path("in"), randomBytes(size));
    await encryptFile(path("in"), path("enc"), { key }, { chunkBytes: CHUNK });
    return readFileSync(path("enc"));
  }

  async function refused(bytes: Buffer, why: string): Promise<void> {
    writeFileSync(path("bad"), bytes);
    writeFileSync(path("target"), "previous content");
    await assert.rejects(decryptFile(path("bad"), path("target"), { key }), { code: "ERR_DECRYPT" }, why);
    assert.equal(readFileSync(path("target"), "utf8"), "previous content", `${why}: the output was touched`);
  }

  it("detects truncation, reordering, repetition, splicing and any flipped byte; the output stays untouched", async () => {
    const sealed = CHUNK + 16;
    const file = await encrypted(3 * CHUNK + 100); // chunks 0,1,2 full and a final one
    const chunks = [0, 1, 2, 3].map((i) => file.subarray(HEADER_KEY + i * sealed, HEADER_KEY + (i + 1) * sealed));
    const head = file.subarray(0, HEADER_KEY);
    await refused(file.subarray(0, HEADER_KEY + 3 * sealed), "dropping the final chunk");
    await refused(file.subarray(0, file.length - 1), "dropping one byte");
    await refused(Buffer.concat([head, chunks[1]!, chunks[0]!, chunks[2]!, chunks[3]!]), "swapping two chunks");
    await refused(
      Buffer.concat([head, chunks[0]!, chunks[0]!, chunks[1]!, chunks[2]!, chunks[3]!]),
      "repeating a chunk",
    );
    const other = await encrypted(3 * CHUNK + 100);
    await refused(
      Buffer.concat([head, other.subarray(HEADER_KEY, HEADER_KEY + sealed), file.subarray(HEADER_KEY + sealed)]),
      "splicing",
    );
    await refused(file.subarray(0, HEADER_KEY), "header only");
    await refused(Buffer.alloc(0), "empty");
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: file.length - 1 }), fc.integer({ min: 0, max: 7 }), async (at, bit) => {
        const bad = Buffer.from(file);
        bad[at]! ^= 1 << bit;
        await refused(bad, `bit ${bit} of byte ${at}`);
      }),
      { numRuns: 60 },
    );
    writeFileSync(path("ok"), file);
    await assert.rejects(decryptFile(path("ok"), path("x"), { key: randomBytes(32) }), { code: "ERR_DECRYPT" });
    assert.equal(existsSync(path("x")), false);
  });

  it("refuses a header asking for a KDF beyond the limits or an absurd chunk size", async () => {
    const file = await encrypted(10);
    const huge = Buffer.from(file);
    huge.writeUInt32BE(0xffffffff, HEADER_KEY - 4);
    await refused(huge, "4 GiB chunks");
    writeFileSync(path("in"), "x");
    await encryptFile(path("in"), path("pw"), { password: "pw" }, { kdf: CHEAP });
    const pw = readFileSync(path("pw"));
    pw[5] = 30; // log2N
    writeFileSync(path("pw"), pw);
    await assert.rejects(decryptFile(path("pw"), path("out2"), { password: "pw" }), { code: "ERR_DECRYPT" });
  });
});
