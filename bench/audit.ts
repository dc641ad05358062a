// Audit append and verify benchmark.
//
//   npx tsx bench/audit.ts [--events 100000] [--concurrency 32] [--verify 1000000] [--no-postgres]
//
// Prints durable appends per second through AuditLog (redaction, encryption, Merkle head, group commit)
// next to plain batched inserts of the same rows with the same durability (SQLite synchronous=FULL in
// WAL; PostgreSQL synchronous_commit=on), both measured in this run, and the time to verify N entries.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import pg from "pg";
import { AuditLog } from "../src/audit/log.js";
import { Keyring } from "../src/crypto/keyring.js";
import { masterKeyFromBytes } from "../src/crypto/master-key.js";
import { openStore, type Store, type StoreLocation } from "../src/store/database.js";
import { fmt, freshPostgres } from "./common.js";

const { values } = parseArgs({
  options: {
    events: { type: "string", default: "100000" },
    concurrency: { type: "string", default: "32" },
    verify: { type: "string", default: "1000000" },
    "no-postgres": { type: "boolean", default: false },
  },
});
const EVENTS = Number(values.events);
const CONCURRENCY = Number(values.concurrency);
const VERIFY = Number(values.verify);

function event(i: number) {
  return {
    type: "data_access" as const,
    actor: `user-${i % 100}`,
    action: "records.read",
    outcome: "success" as const,
    resource: `record:${i}`,
    ip: "10.0.0.1",
    userAgent: "bench/1",
    requestId: `req-${i}`,
    details: { rows: i % 17, table: "orders" },
  };
}

async function appendThroughput(
  store: Store,
  n: number,
  concurrency: number,
): Promise<{ perSecond: number; log: AuditLog }> {
  const keyring = await Keyring.open(store, { current: masterKeyFromBytes(randomBytes(32)) });
  const log = new AuditLog({ store, keyring });
  await log.append(event(-1)); // warm the data key cache and the statement path
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        await log.append(event(i));
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { perSecond: n / seconds, log };
}

// The rows AuditLog stores, shaped the same (same columns, same sizes), inserted by plain batched
// statements: the baseline of "what the database does with this durability and no audit logic".
function plainRow(i: number) {
  return [
    i + 1,
    Date.now(),
    "data_access",
    `user-${i % 100}`,
    "records.read",
    `record:${i}`,
    "success",
    "10.0.0.1",
    "bench/1",
    `req-${i}`,
    "dk-audit-2026-11-1-00000000",
    randomBytes(60).toString("base64url"),
    randomBytes(32).toString("hex"),
  ];
}
const COLUMNS = "(seq, ts, type, actor, action, resource, outcome, ip, user_agent, request_id, kid, details, leaf)";

// The baseline writes into agentwall's own audit_events table (same columns, same indexes), created by
// the migrations, so the comparison is "the same rows, the same durability, no audit logic".
async function plainSqlite(path: string, n: number, batch: number): Promise<number> {
  await (await openStore({ kind: "sqlite", path })).close();
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  const placeholders = `(${Array(13).fill("?").join(",")})`;
  const insert = db.prepare(`insert into audit_events ${COLUMNS} values ${Array(batch).fill(placeholders).join(",")}`);
  const tx = db.transaction((rows: unknown[]) => insert.run(rows));
  const start = process.hrtime.bigint();
  for (let i = 0; i + batch <= n; i += batch) tx(Array.from({ length: batch }, (_, j) => plainRow(i + j)).flat());
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  return (Math.floor(n / batch) * batch) / seconds;
}

async function plainPostgres(url: string, n: number, batch: number): Promise<number> {
  await (await openStore({ kind: "postgres", url })).close();
  const client = new pg.Client({ connectionString: url, options: "-c synchronous_commit=on" });
  await client.connect();
  const placeholders = Array.from(
    { length: batch },
    (_, r) => `(${Array.from({ length: 13 }, (_, c) => `$${r * 13 + c + 1}`).join(",")})`,
  ).join(",");
  const start = process.hrtime.bigint();
  for (let i = 0; i + batch <= n; i += batch) {
    await client.query("begin");
    await client.query(
      `insert into audit_events ${COLUMNS} values ${placeholders}`,
      Array.from({ length: batch }, (_, j) => plainRow(i + j)).flat(),
    );
    await client.query("commit");
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  await client.end();
  return (Math.floor(n / batch) * batch) / seconds;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "agentwall-bench-"));
  try {
    console.log(`audit append: ${fmt(EVENTS)} events, ${CONCURRENCY} concurrent appenders, node ${process.version}`);
    const results: Array<[string, number, number]> = [];

    const sqlite = await openStore({ kind: "sqlite", path: join(dir, "audit.db") });
    const a = await appendThroughput(sqlite, EVENTS, CONCURRENCY);
    await sqlite.close();
    const plain = await plainSqlite(join(dir, "plain.db"), EVENTS, CONCURRENCY);
    results.push(["SQLite", a.perSecond, plain]);

    if (!values["no-postgres"]) {
      const db1 = await freshPostgres();
      const db2 = await freshPostgres();
      try {
        const store = await openStore({ kind: "postgres", url: db1.url } satisfies StoreLocation);
        const p = await appendThroughput(store, EVENTS, CONCURRENCY);
        await store.close();
        const plainPg = await plainPostgres(db2.url, EVENTS, CONCURRENCY);
        results.push(["PostgreSQL", p.perSecond, plainPg]);
      } finally {
        await db1.drop();
        await db2.drop();
      }
    }
    console.log("\nbackend      agentwall durable/s   plain batched/s   ratio (agentwall/plain)");
    for (const [name, ours, base] of results) {
      console.log(
        `${name.padEnd(12)} ${fmt(ours).padStart(19)} ${fmt(base).padStart(17)}   ${(ours / base).toFixed(2)}`,
      );
    }

    if (VERIFY > 0) {
      console.log(`\naudit verify: filling ${fmt(VERIFY)} entries on SQLite…`);
      const store = await openStore({ kind: "sqlite", path: join(dir, "verify.db") });
      const keyring = await Keyring.open(store, { current: masterKeyFromBytes(randomBytes(32)) });
      const log = new AuditLog({ store, keyring, maxBatch: 2000 });
      let next = 0;
      const fillStart = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: 2000 }, async () => {
          while (next < VERIFY) await log.append(event(next++));
        }),
      );
      console.log(`filled in ${(Number(process.hrtime.bigint() - fillStart) / 1e9).toFixed(1)} s`);
      await log.checkpoint();
      const start = process.hrtime.bigint();
      const result = await log.verify();
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      console.log(
        `verify ${fmt(result.ok ? result.size : 0)} entries: ${seconds.toFixed(2)} s (${result.ok ? "intact" : "FAILED"})`,
      );
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
