// Data-protection benchmark: AES-256-GCM through agentwall's envelope API next to raw node:crypto (same
// key, same associated-data size) for 1 KB and 1 MB messages, streaming file encryption, and one
// password KDF at the defaults — all measured in this run.
//
//   npx tsx bench/crypto.ts [--seconds 2] [--file-mb 256]
import { createCipheriv, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { decryptEnvelope, encryptWithKey, encryptWithPassword, envelopeToBinary } from "../src/crypto/envelope.js";
import { decryptFile, encryptFile } from "../src/crypto/file-stream.js";
import { PBKDF2_DEFAULT, SCRYPT_DEFAULT } from "../src/crypto/kdf.js";
import { fmt } from "./common.js";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "2" }, "file-mb": { type: "string", default: "256" } },
});
const SECONDS = Number(values.seconds);
const FILE_MB = Number(values["file-mb"]);

/** MB/s of `op` over `bytes`-sized messages, run for about SECONDS. */
function throughput(bytes: number, op: () => unknown): number {
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < SECONDS) {
    for (let i = 0; i < 16; i++) op();
    n += 16;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return (n * bytes) / 1e6 / elapsed;
}

console.log(`data protection, node ${process.version}, ${SECONDS} s per measurement`);
const key = randomBytes(32);
const aad = Buffer.from("record:1234567890");
for (const size of [1024, 1024 * 1024]) {
  const msg = randomBytes(size);
  const oursOnce = () => throughput(size, () => envelopeToBinary(encryptWithKey(key, msg, { aad })));
  const rawOnce = () =>
    throughput(size, () => {
      const iv = randomBytes(12);
      const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 });
      c.setAAD(aad);
      Buffer.concat([iv, c.update(msg), c.final(), c.getAuthTag()]);
    });
  // Alternated and the best of three each, so warm-up and GC do not favour whichever runs second.
  let ours = 0;
  let raw = 0;
  for (let round = 0; round < 3; round++) {
    raw = Math.max(raw, rawOnce());
    ours = Math.max(ours, oursOnce());
  }
  const label = size === 1024 ? "1 KB" : "1 MB";
  console.log(
    `AES-256-GCM encrypt ${label}: agentwall envelope ${fmt(ours)} MB/s, raw node:crypto ${fmt(raw)} MB/s, ratio ${(ours / raw).toFixed(2)}`,
  );
}
const sealed = envelopeToBinary(encryptWithKey(key, randomBytes(1024 * 1024)));
let n = 0;
let start = process.hrtime.bigint();
while (Number(process.hrtime.bigint() - start) / 1e9 < SECONDS) {
  await decryptEnvelope(sealed, { key });
  n++;
}
console.log(`AES-256-GCM decrypt 1 MB: agentwall ${fmt(n / (Number(process.hrtime.bigint() - start) / 1e9))} MB/s`);

const dir = mkdtempSync(join(tmpdir(), "agentwall-bench-crypto-"));
try {
  const plain = join(dir, "plain");
  const chunk = randomBytes(1024 * 1024);
  writeFileSync(plain, Buffer.alloc(0));
  const { appendFileSync } = await import("node:fs");
  for (let i = 0; i < FILE_MB; i++) appendFileSync(plain, chunk);
  start = process.hrtime.bigint();
  await encryptFile(plain, join(dir, "enc"), { key });
  const enc = FILE_MB / (Number(process.hrtime.bigint() - start) / 1e9);
  start = process.hrtime.bigint();
  await decryptFile(join(dir, "enc"), join(dir, "dec"), { key });
  const dec = FILE_MB / (Number(process.hrtime.bigint() - start) / 1e9);
  console.log(
    `file encryption ${FILE_MB} MB (64 KiB chunks, fsync + rename): encrypt ${fmt(enc)} MB/s, decrypt ${fmt(dec)} MB/s`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

for (const kdf of [SCRYPT_DEFAULT, PBKDF2_DEFAULT]) {
  start = process.hrtime.bigint();
  await encryptWithPassword("correct horse battery staple", Buffer.from("x"), { kdf });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  console.log(`password KDF ${JSON.stringify(kdf)}: ${ms.toFixed(0)} ms per encryption`);
}
