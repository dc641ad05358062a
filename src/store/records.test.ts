import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  auditedStore,
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  sqliteStore,
} from "../../test/helpers.js";
import { Vault } from "../identity/vault.js";
import type { Store } from "./database.js";
import { RecordStore } from "./records.js";
import { reencryptStoredData } from "./reencrypt.js";

const pgSkip = !(await postgresReachable()) && "PostgreSQL unreachable";

for (const engine of ["SQLite", "PostgreSQL"] as const) {
  describe(`encrypted record store on ${engine}`, { skip: engine === "PostgreSQL" && pgSkip }, () => {
    const storeOf = async (): Promise<Store> =>
      engine === "SQLite" ? sqliteStore() : postgresStore(await freshPostgresDatabase());

    it("stores, retrieves, lists and deletes per owner; one owner never reaches another's records", async () => {
      const { store, keyring, audit } = await auditedStore({ store: await storeOf() });
      const records = new RecordStore({ store, keyring, audit });
      const a = await records.store("alice", "note", "alice's secret", { title: "mine" });
      const b = await records.store("bob", "note", Buffer.from([0, 1, 2, 255]), {});
      const got = await records.retrieve(a.id, "alice");
      assert.deepEqual(
        [got.data.toString(), got.type, got.metadata, got.size],
        ["alice's secret", "note", { title: "mine" }, 14],
      );
      assert.deepEqual((await records.retrieve(b.id, "bob")).data, Buffer.from([0, 1, 2, 255]));
      await assert.rejects(records.retrieve(b.id, "alice"), { code: "ERR_NOT_FOUND" });
      await assert.rejects(records.retrieve("rec_" + "0".repeat(32), "alice"), { code: "ERR_NOT_FOUND" });
      await assert.rejects(records.retrieve("'; drop table records; --", "alice"), { code: "ERR_NOT_FOUND" });
      assert.deepEqual(
        (await records.list("alice")).map((r) => r.id),
        [a.id],
      );
      assert.equal(await records.delete(b.id, "alice"), false, "alice cannot delete bob's record");
      assert.equal((await records.retrieve(b.id, "bob")).size, 4);
      assert.equal(await records.delete(a.id, "alice"), true);
      assert.deepEqual(await records.list("alice"), []);
      const denied = await audit.query({ type: "data_access" });
      assert.ok(denied.events.some((e) => e.action === "records.retrieve" && e.outcome === "denied"));
      assert.ok(denied.events.some((e) => e.action === "records.delete" && e.outcome === "denied"));
      const dump = JSON.stringify(await store.db.selectFrom("records").selectAll().execute());
      assert.ok(!dump.includes("alice's secret") && !dump.includes("mine"), "data and metadata are encrypted");
    });

    it("a ciphertext moved to another record or owner in the database fails to decrypt", async () => {
      const { store, keyring, audit } = await auditedStore({ store: await storeOf() });
      const records = new RecordStore({ store, keyring, audit });
      const a = await records.store("alice", "note", "A");
      const b = await records.store("alice", "note", "B");
      const rowA = await store.db.selectFrom("records").selectAll().where("id", "=", a.id).executeTakeFirstOrThrow();
      await store.db
        .updateTable("records")
        .set({ data: rowA.data, wrapped_key: rowA.wrapped_key })
        .where("id", "=", b.id)
        .execute();
      await assert.rejects(records.retrieve(b.id, "alice"), { code: "ERR_DECRYPT" });
      // The altered record is listed as damaged; it neither hides alice's good record nor passes unnoticed.
      const c = await records.store("alice", "note", "C", { label: "kept" });
      await store.db
        .updateTable("records")
        .set({ metadata: rowA.metadata, wrapped_key: rowA.wrapped_key })
        .where("id", "=", b.id)
        .execute();
      const listed = await records.list("alice");
      assert.deepEqual(
        listed.map((r) => [r.id, r.damaged, r.metadata]).sort(),
        [
          [a.id, undefined, {}],
          [b.id, "ERR_DECRYPT", {}],
          [c.id, undefined, { label: "kept" }],
        ].sort(),
      );
      const trail = (await audit.query({ type: "data_access" })).events;
      assert.ok(
        trail.some(
          (e) => e.action === "records.retrieve" && e.outcome === "failure" && e.resource === `record:${b.id}`,
        ),
        "the failed read is audited",
      );
      const list = trail.find((e) => e.action === "records.list" && e.outcome === "failure");
      assert.deepEqual((list?.details as { damaged?: string[] } | undefined)?.damaged, [b.id]);
      await store.db.updateTable("records").set({ owner: "mallory" }).where("id", "=", a.id).execute();
      await assert.rejects(records.retrieve(a.id, "mallory"), { code: "ERR_DECRYPT" });
    });

    it("re-encryption moves records and vault secrets to new data keys and resumes after an interruption", async () => {
      const master = randomMasterKey();
      const { store, keyring, audit } = await auditedStore({ store: await storeOf(), master });
      const records = new RecordStore({ store, keyring, audit });
      const vault = new Vault({ store, keyring, audit });
      const ids = [];
      for (let i = 0; i < 25; i++) ids.push((await records.store(`owner${i % 3}`, "doc", `payload ${i}`, { i })).id);
      await vault.set("openai", "sk-test-value-1", ["api.openai.com"], "test");
      await vault.rotate("openai", "sk-test-value-2", "test");
      const kidsBefore = new Set((await store.db.selectFrom("records").select("kid").execute()).map((r) => r.kid));
      // Interrupted: the third batch fails, after two batches of records were re-encrypted.
      let batches = 0;
      const failingRecords = {
        count: () => records.count(),
        reencryptBatch: async (cursor: string, batch?: number) => {
          if (++batches === 3) throw new Error("power cut");
          return records.reencryptBatch(cursor, batch);
        },
      };
      await assert.rejects(
        reencryptStoredData({ store, keyring, records: failingRecords, vault, audit, actor: "test", batch: 5 }),
        /power cut/,
      );
      const job = await store.db.selectFrom("jobs").selectAll().executeTakeFirstOrThrow();
      assert.equal(job.state, "running");
      const resumed = await reencryptStoredData({ store, keyring, records, vault, audit, actor: "test", batch: 5 });
      assert.equal(resumed.resumed, true);
      assert.equal(resumed.vault, 2);
      const kidsAfter = new Set((await store.db.selectFrom("records").select("kid").execute()).map((r) => r.kid));
      assert.equal(kidsAfter.size, 1);
      assert.ok(![...kidsAfter].some((k) => kidsBefore.has(k)), "every record is under the new data key");
      for (let i = 0; i < 25; i++)
        assert.equal((await records.retrieve(ids[i]!, `owner${i % 3}`)).data.toString(), `payload ${i}`);
      assert.equal(await vault.reveal("openai", "test"), "sk-test-value-2");
      await vault.rollback("openai", 1, "test");
      assert.equal(await vault.reveal("openai", "test"), "sk-test-value-1");
      const again = await reencryptStoredData({ store, keyring, records, vault, audit, actor: "test" });
      assert.deepEqual([again.resumed, again.records], [false, 25], "a new run rotates again and rewrites all");
    });
  });
}
