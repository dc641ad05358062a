import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { sql } from "kysely";
import { freshPostgresDatabase, postgresReachable, tempDir } from "../../test/helpers.js";
import {
  checkStore,
  openStore,
  parseDatabaseUrl,
  redactDatabaseUrl,
  type Store,
  type StoreLocation,
} from "./database.js";
import { Lease } from "./lease.js";
import { MIGRATION_NAMES } from "./migrations.js";
import { writeTransaction } from "./transaction.js";

async function suite(location: () => Promise<StoreLocation>) {
  it("instances starting together migrate exactly once", async () => {
    const loc = await location();
    const stores = await Promise.all([openStore(loc), openStore(loc), openStore(loc)]);
    try {
      const rows = await sql<{ name: string }>`select name from agentwall_migrations order by name`.execute(
        stores[0].db,
      );
      assert.deepEqual(
        rows.rows.map((r) => r.name),
        [...MIGRATION_NAMES],
      );
      for (const s of stores) assert.deepEqual(await checkStore(s), { ok: true });
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it("a failed write transaction leaves nothing behind", async () => {
    const store = await openStore(await location());
    try {
      await assert.rejects(
        writeTransaction(store, async (trx) => {
          await trx.insertInto("locks").values({ name: "x", holder: "h", expires_at: 1 }).execute();
          throw new Error("boom");
        }),
        /boom/,
      );
      assert.equal(
        await store.db.selectFrom("locks").selectAll().where("name", "=", "x").executeTakeFirst(),
        undefined,
      );
    } finally {
      await store.close();
    }
  });

  it("a write that is not flushed on its own commits, is seen at once, and leaves later commits flushed", async () => {
    const store = await openStore(await location());
    try {
      const setting = async () =>
        store.dialect === "postgres"
          ? (await sql<{ s: string }>`select current_setting('synchronous_commit') as s`.execute(store.db)).rows[0]?.s
          : store.sqlite?.pragma("synchronous", { simple: true });
      const relaxed = await writeTransaction(
        store,
        async (trx) => {
          await trx.insertInto("locks").values({ name: "nf", holder: "h", expires_at: 1 }).execute();
          return store.dialect === "postgres"
            ? (await sql<{ s: string }>`select current_setting('synchronous_commit') as s`.execute(trx)).rows[0]?.s
            : undefined;
        },
        { durable: false },
      );
      if (store.dialect === "postgres") assert.equal(relaxed, "off", "relaxed inside the transaction");
      assert.equal((await store.db.selectFrom("locks").selectAll().where("name", "=", "nf").execute()).length, 1);
      assert.equal(await setting(), store.dialect === "postgres" ? "on" : 2, "FULL / on again afterwards");
      await assert.rejects(
        writeTransaction(
          store,
          async () => {
            throw new Error("boom");
          },
          { durable: false },
        ),
        /boom/,
      );
      assert.equal(await setting(), store.dialect === "postgres" ? "on" : 2, "restored after a failure too");
    } finally {
      await store.close();
    }
  });

  it("a lease has one holder at a time and expires on its own", async () => {
    const loc = await location();
    const [a, b]: [Store, Store] = [await openStore(loc), await openStore(loc)];
    try {
      let now = 1000;
      const la = new Lease(a, "job", { ttlMs: 100, now: () => now });
      const lb = new Lease(b, "job", { ttlMs: 100, now: () => now });
      assert.equal(await la.acquire(), true);
      assert.equal(await lb.acquire(), false);
      assert.equal(await la.acquire(), true, "renewal by the holder");
      now += 101;
      assert.equal(await lb.acquire(), true, "taken over after expiry");
      assert.equal(await la.acquire(), false);
      await lb.release();
      assert.equal(await la.acquire(), true);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("parameters are data: an injection attempt has no effect", async () => {
    const store = await openStore(await location());
    try {
      const evil = "x'); drop table audit_events; --";
      await store.db.insertInto("locks").values({ name: evil, holder: evil, expires_at: 1 }).execute();
      const row = await store.db.selectFrom("locks").selectAll().where("name", "=", evil).executeTakeFirst();
      assert.equal(row?.holder, evil);
      assert.equal(
        (
          await store.db
            .selectFrom("audit_events")
            .select(sql<number>`count(*)`.as("n"))
            .executeTakeFirstOrThrow()
        ).n,
        0,
      );
    } finally {
      await store.close();
    }
  });
}

describe("store on SQLite", () => {
  void suite(async () => ({ kind: "sqlite", path: join(tempDir(), "db", "a.db") }));

  it("creates the database file private (0600)", async () => {
    const path = join(tempDir(), "p.db");
    const store = await openStore({ kind: "sqlite", path });
    await store.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });
});

describe("store on PostgreSQL", async () => {
  const ok = await postgresReachable();
  if (!ok) {
    it("skipped: PostgreSQL unreachable", { skip: "PostgreSQL unreachable" }, () => undefined);
    return;
  }
  await suite(async () => ({ kind: "postgres", url: await freshPostgresDatabase() }));

  it("an unreachable server is ERR_DATABASE_UNAVAILABLE without the password", async () => {
    await assert.rejects(
      openStore({ kind: "postgres", url: "postgres://u:hunter2@127.0.0.1:1/x" }),
      (e: Error & { code?: string }) => {
        assert.equal(e.code, "ERR_DATABASE_UNAVAILABLE");
        assert.ok(!e.message.includes("hunter2"));
        return true;
      },
    );
  });
});

describe("database URLs", () => {
  it("accept postgres:// only and redact passwords", () => {
    assert.deepEqual(parseDatabaseUrl("postgres://a@h/db"), { kind: "postgres", url: "postgres://a@h/db" });
    assert.throws(() => parseDatabaseUrl("mysql://h/db"), { code: "ERR_DATABASE_URL_INVALID" });
    assert.throws(() => parseDatabaseUrl("not a url"), { code: "ERR_DATABASE_URL_INVALID" });
    assert.equal(redactDatabaseUrl("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
  });
});
