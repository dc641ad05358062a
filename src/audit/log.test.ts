import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { sql } from "kysely";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  sqliteStore,
  tempDir,
} from "../../test/helpers.js";
import { Keyring } from "../crypto/keyring.js";
import type { Store } from "../store/database.js";
import { FileWitness, readWitnessFile, type Checkpoint } from "./checkpoint.js";
import type { AuditEventInput } from "./event.js";
import { AuditLog, rowLeaf, type AuditVerifyResult } from "./log.js";

function event(i: number, extra: Partial<AuditEventInput> = {}): AuditEventInput {
  return {
    type: "data_access",
    actor: `user-${i % 3}`,
    action: "records.read",
    outcome: "success",
    resource: `record:${i}`,
    ...extra,
  };
}

async function setup(store?: Store, witnessPath?: string) {
  const s = store ?? (await sqliteStore());
  const keyring = await Keyring.open(s, { current: randomMasterKey() });
  const log = new AuditLog({ store: s, keyring, witnesses: witnessPath ? [new FileWitness(witnessPath)] : [] });
  return { store: s, keyring, log };
}

/** Verifies on this thread and on the worker thread; both must agree. */
async function verifyBoth(log: AuditLog, options: { witness?: Checkpoint[] } = {}): Promise<AuditVerifyResult> {
  const inThread = await log.verify({ ...options, parallelFrom: Number.MAX_SAFE_INTEGER });
  const onWorker = await log.verify({ ...options, parallelFrom: 0 });
  assert.deepEqual(onWorker, inThread);
  return inThread;
}

async function fill(log: AuditLog, n: number, from = 0): Promise<number[]> {
  const receipts = await Promise.all(Array.from({ length: n }, (_, i) => log.append(event(from + i))));
  return receipts.map((r) => r.seq);
}

/** Rewrites a row and recomputes its leaf, as an attacker with database access would. */
async function forgeRow(store: Store, seq: number, changes: { actor?: string; outcome?: string }) {
  const row = await store.db.selectFrom("audit_events").selectAll().where("seq", "=", seq).executeTakeFirstOrThrow();
  const { leaf: _leaf, ...fields } = row;
  const next = { ...fields, ...changes };
  await store.db
    .updateTable("audit_events")
    .set({ ...changes, leaf: rowLeaf(next).toString("hex") })
    .where("seq", "=", seq)
    .execute();
}

describe("AuditLog append", () => {
  it("gives one gap-free sequence to concurrent appenders", async () => {
    const { log } = await setup();
    const seqs = await fill(log, 200);
    assert.deepEqual(
      [...seqs].sort((a, b) => a - b),
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
    assert.deepEqual(await log.head().then((h) => h.size), 200);
    assert.deepEqual(await log.verify().then((r) => r.ok), true);
  });

  it("commits a deferred event with the next one, or on its own within 50 ms", async () => {
    const { log } = await setup();
    await log.append(event(0));
    const deferred = log.append(event(1), { defer: true });
    let settled = false;
    void deferred.then(() => (settled = true));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, "waits for company");
    assert.equal((await log.head()).size, 1, "nothing committed yet");
    const next = await log.append(event(2));
    assert.equal(settled, true, "committed in the same batch as the next event, before it resolved");
    assert.deepEqual([(await deferred).seq, next.seq], [2, 3]);
    const started = Date.now();
    const alone = await log.append(event(3), { defer: true });
    assert.equal(alone.seq, 4);
    assert.ok(Date.now() - started < 1000, "a lone deferred event is not left behind");
    const flushed = log.append(event(4), { defer: true });
    await log.flush();
    assert.equal((await log.head()).size, 5, "flush commits deferred events");
    await flushed;
  });

  it("redacts secrets and encrypts details at rest", async () => {
    const { log, store } = await setup();
    await log.append(
      event(1, {
        resource: "https://api.example.com/v1?api_key=sk-abcdefghijklmnopqrstuvwxyz123456",
        details: { password: "hunter2-very-secret", note: "Bearer abcdefghijklmnop1234", visible: "plain-note-xyz" },
      }),
    );
    const raw = JSON.stringify(await store.db.selectFrom("audit_events").selectAll().execute());
    for (const secret of ["hunter2", "sk-abcdefghij", "abcdefghijklmnop1234", "plain-note-xyz"])
      assert.ok(!raw.includes(secret), secret);
    const [record] = (await log.query()).events;
    assert.equal(record?.details?.password, "[REDACTED]");
    assert.equal(record?.details?.visible, "plain-note-xyz");
    assert.match(String(record?.details?.note), /\[REDACTED\]/);
    assert.ok(!record?.resource.includes("sk-abc"));
  });

  it("rejects malformed events with a stable code and nothing is written", async () => {
    const { log } = await setup();
    const bad: unknown[] = [
      { type: "nope", actor: "a", action: "x", outcome: "success" },
      { type: "login", actor: "", action: "x", outcome: "success" },
      { type: "login", actor: "a", action: "x", outcome: "maybe" },
      { type: "login", actor: "a", action: "x", outcome: "success", details: [1] },
      { type: "login", actor: 5, action: "x", outcome: "success" },
      null,
    ];
    for (const b of bad) await assert.rejects(log.append(b as AuditEventInput), { code: "ERR_AUDIT_EVENT_INVALID" });
    assert.equal((await log.head()).size, 0);
  });

  it("refuses appends after close", async () => {
    const { log } = await setup();
    await fill(log, 3);
    await log.close();
    await assert.rejects(log.append(event(9)), { code: "ERR_AUDIT_CLOSED" });
  });

  it("queries by type, actor, outcome and time with pagination", async () => {
    let now = 1_000_000;
    const store = await sqliteStore();
    const keyring = await Keyring.open(store, { current: randomMasterKey() });
    const log = new AuditLog({ store, keyring, now: () => now });
    for (let i = 0; i < 30; i++) {
      now += 1000;
      await log.append(
        event(i, { type: i % 2 === 0 ? "login" : "data_access", outcome: i % 5 === 0 ? "denied" : "success" }),
      );
    }
    assert.equal((await log.query({ type: "login", limit: 1000 })).events.length, 15);
    assert.equal((await log.query({ actor: "user-0", limit: 1000 })).events.length, 10);
    assert.equal((await log.query({ outcome: "denied", limit: 1000 })).events.length, 6);
    assert.equal((await log.query({ since: 1_010_000, until: 1_020_000, limit: 1000 })).events.length, 10);
    const seen: number[] = [];
    let cursor: number | undefined;
    do {
      const page = await log.query({ limit: 7, cursor });
      seen.push(...page.events.map((e) => e.seq));
      cursor = page.next;
    } while (cursor !== undefined);
    assert.deepEqual(
      seen,
      Array.from({ length: 30 }, (_, i) => 30 - i),
    );
    await assert.rejects(log.query({ limit: 0 }), { code: "ERR_INVALID_ARGUMENT" });
  });
});

describe("AuditLog verify detects tampering", () => {
  it("an intact log with checkpoints verifies", async () => {
    const { log } = await setup();
    await fill(log, 20);
    await log.checkpoint();
    await fill(log, 10, 20);
    const result = await verifyBoth(log);
    assert.deepEqual(result.ok && [result.size, result.checkpoints], [30, 1]);
  });

  it("an altered row (leaf not recomputed) is found at its sequence number", async () => {
    const { log, store } = await setup();
    await fill(log, 20);
    await store.db
      .updateTable("audit_events")
      .set({ outcome: "success", actor: "mallory" })
      .where("seq", "=", 7)
      .execute();
    const result = await verifyBoth(log);
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["ROW_ALTERED", 7]);
  });

  it("an altered row with a recomputed leaf fails against the signed checkpoint", async () => {
    const { log, store } = await setup();
    await fill(log, 10);
    await log.checkpoint();
    await fill(log, 10, 10);
    await log.checkpoint();
    await forgeRow(store, 14, { actor: "mallory" });
    const result = await verifyBoth(log);
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["CHECKPOINT_MISMATCH", 11]);
  });

  it("a deleted row is reported as missing", async () => {
    const { log, store } = await setup();
    await fill(log, 20);
    await store.db.deleteFrom("audit_events").where("seq", "=", 5).execute();
    const result = await verifyBoth(log);
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["ROW_MISSING", 5]);
  });

  it("two swapped rows are detected", async () => {
    const { log, store } = await setup();
    await fill(log, 20);
    await log.checkpoint();
    const a = await store.db.selectFrom("audit_events").selectAll().where("seq", "=", 3).executeTakeFirstOrThrow();
    const b = await store.db.selectFrom("audit_events").selectAll().where("seq", "=", 4).executeTakeFirstOrThrow();
    await store.db.deleteFrom("audit_events").where("seq", "in", [3, 4]).execute();
    await store.db
      .insertInto("audit_events")
      .values([
        { ...a, seq: 4 },
        { ...b, seq: 3 },
      ])
      .execute();
    const result = await verifyBoth(log);
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["ROW_ALTERED", 3]);
  });

  it("a truncated tail is detected by the head and by checkpoints", async () => {
    const { log, store } = await setup();
    await fill(log, 20);
    await log.checkpoint();
    await store.db.deleteFrom("audit_events").where("seq", ">", 15).execute();
    const result = await verifyBoth(log);
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["TRUNCATED", 16]);
  });

  it("a tail truncated together with its checkpoints and head is caught only with the witness", async () => {
    const dir = tempDir();
    const witness = join(dir, "witness.jsonl");
    const { log, store } = await setup(undefined, witness);
    await fill(log, 10);
    const first = await log.checkpoint();
    await fill(log, 10, 10);
    await log.checkpoint();
    assert.equal(readWitnessFile(witness).length, 2);
    // The attacker deletes the tail, the checkpoints that cover it, and rewinds the head.
    await store.db.deleteFrom("audit_events").where("seq", ">", 10).execute();
    await store.db.deleteFrom("audit_checkpoints").where("size", ">", 10).execute();
    const frontier = await store.db.selectFrom("audit_events").select("leaf").orderBy("seq").execute();
    const { MerkleFrontier } = await import("./merkle.js");
    const f = new MerkleFrontier();
    for (const r of frontier) f.append(Buffer.from(r.leaf, "hex"));
    await store.db
      .updateTable("audit_head")
      .set({ size: 10, frontier: f.serialize(), root: f.root().toString("hex") })
      .execute();
    assert.equal(f.root().toString("hex"), first?.root);
    assert.equal((await verifyBoth(log)).ok, true, "without a witness the rewrite is invisible");
    const result = await verifyBoth(log, { witness: readWitnessFile(witness) });
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["TRUNCATED", 11]);
  });

  it("a forged checkpoint is rejected", async () => {
    const { log, store } = await setup();
    await fill(log, 10);
    const c = await log.checkpoint();
    assert.ok(c);
    await store.db
      .insertInto("audit_checkpoints")
      .values({ ...c, size: 12, root: "ab".repeat(32), frontier: "[]" })
      .execute();
    let result = await verifyBoth(log);
    assert.deepEqual(!result.ok && result.problem, "CHECKPOINT_FORGED");
    await store.db.deleteFrom("audit_checkpoints").where("size", "=", 12).execute();
    await store.db
      .updateTable("audit_checkpoints")
      .set({ ts: c.ts + 1 })
      .execute();
    result = await verifyBoth(log);
    assert.deepEqual(!result.ok && result.problem, "CHECKPOINT_FORGED");
  });

  it("a witness line with a bad signature is rejected", async () => {
    const dir = tempDir();
    const witness = join(dir, "w.jsonl");
    const { log } = await setup(undefined, witness);
    await fill(log, 5);
    await log.checkpoint();
    const [c] = readWitnessFile(witness);
    assert.ok(c);
    const result = await verifyBoth(log, { witness: [{ ...c, root: "00".repeat(32) }] });
    assert.deepEqual(!result.ok && result.problem, "CHECKPOINT_FORGED");
    assert.ok(readFileSync(witness, "utf8").endsWith("\n"));
  });
});

describe("AuditLog proofs and reads", () => {
  it("proves inclusion and consistency against signed checkpoints", async () => {
    const { log } = await setup();
    await fill(log, 13);
    const c1 = await log.checkpoint();
    await fill(log, 8, 13);
    const c2 = await log.checkpoint();
    assert.ok(c1 && c2);
    const { verifyInclusion, verifyConsistency } = await import("./merkle.js");
    const hex = (h: string) => Buffer.from(h, "hex");
    for (const seq of [1, 7, 13]) {
      const p = await log.proveInclusion(seq, c1.size);
      assert.ok(verifyInclusion(seq - 1, c1.size, hex(p.leaf), p.proof.map(hex), hex(c1.root)), `seq ${seq}`);
      assert.equal(verifyInclusion(seq, c1.size, hex(p.leaf), p.proof.map(hex), hex(c1.root)), false);
    }
    const proof = await log.proveConsistency(c1.size, c2.size);
    assert.ok(verifyConsistency(c1.size, c2.size, hex(c1.root), hex(c2.root), proof.map(hex)));
    await assert.rejects(log.proveInclusion(99), { code: "ERR_INVALID_ARGUMENT" });
  });

  it("a details ciphertext moved to another row does not open there, and is marked", async () => {
    const { log, store } = await setup();
    await log.append(event(1, { details: { secret: "x", note: "first" } }));
    await log.append(event(2, { details: { note: "second" } }));
    const first = await store.db
      .selectFrom("audit_events")
      .select("details")
      .where("seq", "=", 1)
      .executeTakeFirstOrThrow();
    await store.db.updateTable("audit_events").set({ details: first.details }).where("seq", "=", 2).execute();
    const moved = (await log.query({ ascending: true })).events;
    assert.equal(moved[0]?.details?.note, "first");
    assert.equal(moved[1]?.details, null);
    assert.equal(moved[1]?.detailsUnavailable, "undecryptable");
    const result = await log.verify();
    assert.deepEqual(!result.ok && [result.problem, result.firstBadSeq], ["ROW_ALTERED", 2]);
  });
});

describe("AuditLog checkpoints", () => {
  it("refuses to sign over a log rewritten since the last checkpoint, and raises an alert", async () => {
    const { log, store } = await setup();
    await fill(log, 10);
    await log.checkpoint();
    await fill(log, 5, 10);
    // Rewrite an entry covered by the checkpoint, with its leaf and the head recomputed to match.
    await forgeRow(store, 4, { actor: "mallory" });
    const leaves = await store.db.selectFrom("audit_events").select("leaf").orderBy("seq").execute();
    const { MerkleFrontier } = await import("./merkle.js");
    const f = new MerkleFrontier();
    for (const r of leaves) f.append(Buffer.from(r.leaf, "hex"));
    await store.db
      .updateTable("audit_head")
      .set({ frontier: f.serialize(), root: f.root().toString("hex") })
      .execute();
    await assert.rejects(log.checkpoint(), { code: "ERR_AUDIT_INCONSISTENT" });
    assert.equal((await log.checkpoints()).length, 1, "nothing new was signed");
    const alerts = await log.query({ type: "security_alert" });
    assert.equal(alerts.events[0]?.action, "audit.checkpoint.refused");
  });

  it("extends the previous checkpoint's frontier across many checkpoints", async () => {
    const { log } = await setup();
    for (let i = 0; i < 5; i++) {
      await fill(log, 7, i * 7);
      assert.equal((await log.checkpoint())?.size, (i + 1) * 7);
    }
    assert.equal(await log.checkpoint(), undefined, "nothing new to sign");
    assert.equal((await log.verify()).ok, true);
  });
});

describe("AuditLog retention", () => {
  it("prunes old entries and the remainder still verifies; a forged prune record fails", async () => {
    let now = 5_000_000;
    const store = await sqliteStore();
    const keyring = await Keyring.open(store, { current: randomMasterKey() });
    const log = new AuditLog({ store, keyring, now: () => now });
    for (let i = 0; i < 25; i++) {
      now += 1000;
      await log.append(event(i));
      if (i % 10 === 9) await log.checkpoint();
    }
    const { pruned, through } = await log.prune(5_000_000 + 12_500);
    assert.deepEqual([pruned, through], [12, 12]);
    assert.equal(
      (
        await store.db
          .selectFrom("audit_events")
          .select(sql<number>`count(*)`.as("n"))
          .executeTakeFirstOrThrow()
      ).n,
      13,
    );
    for (let i = 25; i < 30; i++) await log.append(event(i));
    await log.checkpoint();
    const result = await log.verify();
    assert.deepEqual(result.ok && [result.size, result.prunedThrough], [30, 12]);
    // Pruning again continues from the recorded frontier.
    assert.deepEqual(await log.prune(5_000_000 + 20_500), { pruned: 8, through: 20 });
    assert.equal((await log.verify()).ok, true);
    await store.db.updateTable("audit_prune").set({ through: 19 }).execute();
    const bad = await log.verify();
    assert.deepEqual(!bad.ok && bad.problem, "PRUNE_FORGED");
  });

  it("refuses to prune a log that fails verification", async () => {
    const { log, store } = await setup();
    await fill(log, 10);
    await store.db.updateTable("audit_events").set({ actor: "x" }).where("seq", "=", 2).execute();
    await assert.rejects(log.prune(Date.now() + 1000), { code: "ERR_INVALID_ARGUMENT" });
  });
});

describe("PostgreSQL audit log", async () => {
  const ok = await postgresReachable();
  it(
    "two instances appending concurrently produce one valid log",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      const master = randomMasterKey();
      const stores = [await postgresStore(url), await postgresStore(url)];
      const logs = await Promise.all(
        stores.map(async (store) => new AuditLog({ store, keyring: await Keyring.open(store, { current: master }) })),
      );
      const all = await Promise.all(
        logs.flatMap((log, j) => Array.from({ length: 150 }, (_, i) => log.append(event(i + j * 1000)))),
      );
      const seqs = all.map((r) => r.seq).sort((a, b) => a - b);
      assert.deepEqual(
        seqs,
        Array.from({ length: 300 }, (_, i) => i + 1),
      );
      await logs[0]?.checkpoint();
      const result = await logs[1]?.verify();
      assert.deepEqual(result?.ok && result.size, 300);
      const mine = await logs[1]?.query({ actor: "user-1", limit: 1000 });
      assert.equal(mine?.events.length, 100);
    },
  );
});

describe("AuditLog verify under load", () => {
  it("appends landing while another instance verifies never look like tampering", async () => {
    const { log, store, keyring } = await setup();
    await fill(log, 12_000);
    await log.checkpoint();
    // A second AuditLog on the same database, as `agentwall audit verify` beside a running gateway.
    const verifier = new AuditLog({ store, keyring });
    let appending = true;
    const writer = (async () => {
      for (let i = 0; appending && i < 200; i++) await fill(log, 32, 20_000 + i * 32);
    })();
    const results: AuditVerifyResult[] = [];
    for (let i = 0; i < 30 && !results.some((r) => r.ok && r.size > 12_500); i++) results.push(await verifier.verify());
    appending = false;
    await writer;
    for (const r of results) assert.equal(r.ok, true, JSON.stringify(r));
    assert.ok(
      results.some((r) => r.ok && r.size > 12_000),
      "appends did land between verifications",
    );
  });
});
