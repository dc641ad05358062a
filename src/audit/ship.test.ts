import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { auditedStore, sqliteStore, tempDir } from "../../test/helpers.js";
import { AuditShipper, FileShipSink, type AuditShipSink } from "./ship.js";

// One database per test: a shipper holds the shipping lease of its database.
const stores = [await sqliteStore(), await sqliteStore(), await sqliteStore(), await sqliteStore()];
let store = stores[0] as Awaited<ReturnType<typeof sqliteStore>>;
let { audit } = await auditedStore({ store });
async function useStore(i: number): Promise<void> {
  store = stores[i] as typeof store;
  ({ audit } = await auditedStore({ store }));
}

async function appendMany(n: number, from = 0): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      audit.append({
        type: "data_access",
        actor: "alice",
        action: "records.read",
        outcome: "success",
        resource: `record:${from + i}`,
        details: { n: from + i },
      }),
    ),
  );
}

const seqsOf = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => (JSON.parse(l) as { seq: number }).seq);

/** A sink that keeps what it took, failing while `failing` is set. */
class MemorySink implements AuditShipSink {
  readonly lines: string[] = [];
  failing = false;
  calls = 0;
  constructor(readonly name: string) {}
  write(lines: string): Promise<void> {
    this.calls += 1;
    if (this.failing) return Promise.reject(new Error("sink down"));
    this.lines.push(lines);
    return Promise.resolve();
  }
}

describe("AuditShipper", () => {
  it("ships every event once, in order, as the export records, and continues after a restart from its cursor", async () => {
    const path = join(tempDir(), "audit.jsonl");
    await appendMany(30);
    const first = new AuditShipper({ audit, store, sinks: [new FileShipSink(path)], batch: 7 });
    await first.ship();
    const shipped = readFileSync(path, "utf8");
    const { size } = await audit.head();
    assert.deepEqual(
      seqsOf(shipped),
      Array.from({ length: size }, (_, i) => i + 1),
    );
    const record = JSON.parse(shipped.split("\n")[size - 1] ?? "") as Record<string, unknown>;
    assert.deepEqual(record.details, { n: 29 }, "details decrypted, as `audit export` prints them");
    assert.equal(record.resource, "record:29");
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(await first.lag(), { [`file:${path}`]: 0 });

    await appendMany(5, 30);
    assert.deepEqual(await first.lag(), { [`file:${path}`]: 5 });
    // A new shipper (a restart) picks up where the last acknowledged batch ended.
    await first.stop();
    const second = new AuditShipper({ audit, store, sinks: [new FileShipSink(path)] });
    await second.ship();
    await second.ship();
    assert.deepEqual(
      seqsOf(readFileSync(path, "utf8")),
      Array.from({ length: size + 5 }, (_, i) => i + 1),
    );
  });

  it("keeps a batch until the sink takes it, backing off between attempts, and loses nothing", async () => {
    await useStore(1);
    let now = 1_000_000;
    const sink = new MemorySink("memory-retry");
    const errors: string[] = [];
    const shipper = new AuditShipper({
      audit,
      store,
      sinks: [sink],
      batch: 10,
      now: () => now,
      onError: (name) => errors.push(name),
    });
    sink.failing = true;
    await appendMany(12, 100);
    await shipper.ship();
    assert.deepEqual(errors, ["memory-retry"]);
    await shipper.ship();
    assert.equal(sink.calls, 1, "backing off: no attempt before the retry time");
    now += 31_000;
    await shipper.ship();
    assert.equal(sink.calls, 2);
    assert.equal(errors.length, 2);
    sink.failing = false;
    now += 31_000;
    await shipper.ship();
    const { size } = await audit.head();
    assert.deepEqual(
      seqsOf(sink.lines.join("")),
      Array.from({ length: size }, (_, i) => i + 1),
    );
    assert.deepEqual(await shipper.lag(), { "memory-retry": 0 });
  });

  it("ships from one instance at a time (a lease in the database)", async () => {
    await useStore(2);
    await appendMany(3);
    const a = new MemorySink("memory-lease");
    const b = new MemorySink("memory-lease");
    const one = new AuditShipper({ audit, store, sinks: [a] });
    const two = new AuditShipper({ audit, store, sinks: [b] });
    await one.ship();
    await two.ship();
    assert.ok(a.lines.length > 0);
    assert.equal(b.calls, 0, "the second shipper does not hold the lease");
    await one.stop();
    await appendMany(2);
    await two.ship();
    assert.ok(b.lines.length > 0, "the lease is free once the first stops");
  });

  it("retention never prunes what a sink has not acknowledged", async () => {
    await useStore(3);
    await appendMany(10);
    const fast = new MemorySink("memory-fast");
    const slow = new MemorySink("memory-slow");
    const shipper = new AuditShipper({ audit, store, sinks: [fast, slow] });
    audit.limitPruning(() => shipper.shippedThrough());
    slow.failing = true;
    await shipper.ship();
    assert.ok(fast.lines.length > 0 && slow.lines.length === 0);
    // Everything is older than "now + 1 s", but the slow sink has taken nothing: nothing goes.
    assert.deepEqual(await audit.prune(Date.now() + 1000), { pruned: 0, through: 0 });
    slow.failing = false;
    await shipper.stop();
    // After a restart (the failed sink's back-off is not kept) the slow sink catches up.
    const restarted = new AuditShipper({ audit, store, sinks: [fast, slow] });
    await restarted.ship();
    const { size } = await audit.head();
    assert.deepEqual(await restarted.lag(), { "memory-fast": 0, "memory-slow": 0 });
    const pruned = await audit.prune(Date.now() + 1000);
    assert.equal(pruned.through, size);
    assert.equal(seqsOf(slow.lines.join("")).length, size, "every pruned event reached the slow sink first");
    assert.equal((await audit.verify()).ok, true);
    await restarted.stop();
  });

  it("refuses two sinks of the same name and bad batch sizes", () => {
    assert.throws(() => new AuditShipper({ audit, store, sinks: [new MemorySink("x"), new MemorySink("x")] }), {
      code: "ERR_CONFIG_INVALID",
    });
    assert.throws(() => new AuditShipper({ audit, store, sinks: [], batch: 0 }), { code: "ERR_INVALID_ARGUMENT" });
  });
});
