// API-key verification benchmark.
//
//   npx tsx bench/keys.ts [--keys 10000] [--verifies 20000]
//
// Prints verifications per second through ApiKeys.verify (format check, SHA-256, indexed lookup,
// revocation/expiry/creator-chain checks, last-used update) next to the bare peer every key service
// does at minimum — an indexed lookup of the same SHA-256 hash with better-sqlite3 — measured in the
// same run on the same database, and next to verifying bcrypt-hashed keys (cost 10), the pattern many
// key libraries use, computed with Node's scrypt as the stand-in when no bcrypt package is installed.
import { createHash, randomBytes, scryptSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AuditLog } from "../src/audit/log.js";
import { Keyring } from "../src/crypto/keyring.js";
import { masterKeyFromBytes } from "../src/crypto/master-key.js";
import { ApiKeys } from "../src/identity/api-keys.js";
import { openStore } from "../src/store/database.js";

const { values } = parseArgs({
  options: { keys: { type: "string", default: "10000" }, verifies: { type: "string", default: "20000" } },
});
const KEYS = Number(values.keys);
const VERIFIES = Number(values.verifies);

const dir = mkdtempSync(join(tmpdir(), "agentwall-bench-keys-"));
try {
  const store = await openStore({ kind: "sqlite", path: join(dir, "keys.db") });
  const keyring = await Keyring.open(store, { current: masterKeyFromBytes(randomBytes(32)) });
  const audit = new AuditLog({ store, keyring });
  const apiKeys = new ApiKeys({ store, keyring, audit });
  const created: string[] = [];
  for (let i = 0; i < KEYS; i++)
    created.push(
      (await apiKeys.create({ owner: `u${i % 100}`, name: "bench", roles: ["user"], creator: "bench" })).key,
    );
  const pick = (i: number) => created[(i * 7919) % created.length] as string;

  let start = process.hrtime.bigint();
  for (let i = 0; i < VERIFIES; i++) {
    const r = await apiKeys.verify(pick(i));
    if (r.result !== "VALID") throw new Error("unexpected result");
  }
  const ours = VERIFIES / (Number(process.hrtime.bigint() - start) / 1e9);

  const sqlite = store.sqlite;
  if (sqlite === undefined) throw new Error("sqlite expected");
  const lookup = sqlite.prepare("select id, revoked_at, expires_at from api_keys where hash = ?");
  start = process.hrtime.bigint();
  for (let i = 0; i < VERIFIES; i++) {
    const row = lookup.get(createHash("sha256").update(pick(i)).digest("hex"));
    if (row === undefined) throw new Error("missing");
  }
  const bare = VERIFIES / (Number(process.hrtime.bigint() - start) / 1e9);

  // Slow-hash keys (the bcrypt pattern): cost measured on a sample, it would dominate anyway.
  const salt = randomBytes(16);
  const sample = Math.min(200, VERIFIES);
  start = process.hrtime.bigint();
  for (let i = 0; i < sample; i++) scryptSync(pick(i), salt, 32, { N: 1024, r: 8, p: 1 });
  const slow = sample / (Number(process.hrtime.bigint() - start) / 1e9);

  console.log(
    `API-key verification, ${KEYS.toLocaleString("en-US")} keys, ${VERIFIES.toLocaleString("en-US")} verifications, node ${process.version}`,
  );
  console.log(`agentwall ApiKeys.verify          ${Math.round(ours).toLocaleString("en-US").padStart(10)} /s`);
  console.log(
    `bare indexed SHA-256 lookup (peer) ${Math.round(bare).toLocaleString("en-US").padStart(10)} /s   ratio ${(ours / bare).toFixed(2)}`,
  );
  console.log(
    `slow-hash keys (scrypt N=1024)     ${Math.round(slow).toLocaleString("en-US").padStart(10)} /s   ratio ${(ours / slow).toFixed(2)}`,
  );
  await audit.close();
  await store.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
