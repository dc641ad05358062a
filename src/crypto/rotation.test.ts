// Key rotation: data written before, during and after a master-key rotation reads back; an interrupted
// re-wrap resumes; retired keys are refused; data keys retire before their use limit and on demand.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  sqliteStore,
} from "../../test/helpers.js";
import type { Store } from "../store/database.js";
import { Keyring, sealedKeyId } from "./keyring.js";

const bind = (row: number) => ({ table: "records", row, owner: "alice" });

const pgSkip = !(await postgresReachable()) && "PostgreSQL unreachable";
const pgUrl = pgSkip === false ? await freshPostgresDatabase() : "";

for (const engine of ["SQLite", "PostgreSQL"] as const) {
  describe(`key rotation on ${engine}`, { skip: engine === "PostgreSQL" && pgSkip }, () => {
    let pgCount = 0;
    const storeOf = async (): Promise<Store> => {
      if (engine === "SQLite") return sqliteStore();
      // A schema per test is not available; a fresh database per test keeps them independent.
      pgCount++;
      return pgCount === 1 ? postgresStore(pgUrl) : postgresStore(await freshPostgresDatabase());
    };

    it("master key: before, during and after the rotation everything reads back; an interrupted re-wrap resumes", async () => {
      const store = await storeOf();
      const oldKey = randomMasterKey();
      const newKey = randomMasterKey();
      const before = await Keyring.open(store, { current: oldKey });
      const sealedBefore = await before.seal("records", Buffer.from("before"), bind(1));
      await before.signingKey("audit");
      // During: instances run with the new key as current and the old one as previous.
      const during = await Keyring.open(store, { current: newKey, previous: [oldKey] });
      const sealedDuring = await during.seal("vault", Buffer.from("during"), bind(2));
      await assert.rejects(during.retireOtherMasterKeys(), { code: "ERR_ROTATION_INCOMPLETE" });
      let calls = 0;
      await assert.rejects(
        during.rewrapAll(() => {
          if (++calls === 2) throw new Error("interrupted");
        }),
        /interrupted/,
      );
      const status = await during.masterKeyStatus();
      assert.ok(status.find((m) => m.id === oldKey.id)!.wraps >= 1, "the interruption left work");
      const resumed = await during.rewrapAll();
      assert.ok(resumed.dataKeys + resumed.signingKeys >= 1);
      assert.deepEqual(await during.rewrapAll(), { dataKeys: 0, signingKeys: 0 }, "a rerun has nothing left");
      assert.deepEqual(await during.retireOtherMasterKeys(), [oldKey.id]);
      // After: the new key alone opens everything; the old one is refused as current.
      const after = await Keyring.open(store, { current: newKey });
      const sealedAfter = await after.seal("records", Buffer.from("after"), bind(3));
      assert.equal((await after.open(sealedBefore, bind(1))).toString(), "before");
      assert.equal((await after.open(sealedDuring, bind(2))).toString(), "during");
      assert.equal((await after.open(sealedAfter, bind(3))).toString(), "after");
      await after.signingKey("audit");
      await assert.rejects(Keyring.open(store, { current: oldKey }), { code: "ERR_MASTER_KEY_RETIRED" });
      assert.deepEqual(
        (await after.masterKeyStatus()).map((m) => [m.id === newKey.id, m.retiredAt === null]),
        [
          [false, false],
          [true, true],
        ],
      );
    });

    it("data keys: retired before their use limit across instances, and on demand; old data stays readable", async () => {
      const store = await storeOf();
      const master = randomMasterKey();
      const limits = { useLimit: 8, reserveBlock: 4 };
      const one = await Keyring.open(store, { current: master }, { limits });
      const two = await Keyring.open(store, { current: master }, { limits });
      const sealed: string[] = [];
      for (let i = 0; i < 40; i++)
        sealed.push(await (i % 2 === 0 ? one : two).seal("records", Buffer.from(`v${i}`), bind(i)));
      const perKey = new Map<string, number>();
      for (const s of sealed) perKey.set(sealedKeyId(s)!, (perKey.get(sealedKeyId(s)!) ?? 0) + 1);
      assert.ok(perKey.size >= 5, `${perKey.size} keys`);
      for (const [kid, n] of perKey) assert.ok(n <= 8, `${kid} used ${n} times`);
      for (let i = 0; i < 40; i++) assert.equal((await one.open(sealed[i]!, bind(i))).toString(), `v${i}`);
      const current = sealedKeyId(await one.seal("vault", Buffer.from("x"), bind(99)))!;
      assert.equal(await one.rotateDataKeys("vault"), 1);
      assert.equal(await one.isCurrentDataKey(current), false);
      const next = sealedKeyId(await one.seal("vault", Buffer.from("y"), bind(100)))!;
      assert.notEqual(next, current);
      assert.ok(await one.isCurrentDataKey(next));
      const reader = await Keyring.open(store, { current: master }, { limits });
      const key = await reader.dataKeyById(current);
      assert.throws(
        () => key.seal(Buffer.from("z"), bind(1)),
        { code: "ERR_DATA_KEY_EXHAUSTED" },
        "a key loaded to decrypt never encrypts",
      );
    });
  });
}
