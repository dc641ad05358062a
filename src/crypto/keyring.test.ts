import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  sqliteStore,
  tempDir,
} from "../../test/helpers.js";
import { verifyMessage, signMessage } from "../audit/checkpoint.js";
import { Keyring } from "./keyring.js";
import { masterKeyFromBytes, parseMasterKey } from "./master-key.js";
import { openStore } from "../store/database.js";
import { join } from "node:path";

const binding = { table: "records", row: 7, owner: "alice" };

describe("master keys", () => {
  it("parses hex, base64url and base64 and rejects anything else without echoing it", () => {
    const bytes = Buffer.alloc(32, 7);
    const id = masterKeyFromBytes(bytes).id;
    assert.equal(parseMasterKey(bytes.toString("hex"), "env").id, id);
    assert.equal(parseMasterKey(bytes.toString("base64url"), "env").id, id);
    assert.equal(parseMasterKey(bytes.toString("base64") + "\n", "env").id, id);
    for (const bad of ["", "short", "zz".repeat(32), Buffer.alloc(31).toString("hex"), "!".repeat(43)]) {
      assert.throws(
        () => parseMasterKey(bad, "env"),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "ERR_MASTER_KEY_INVALID");
          if (bad.length > 4) assert.ok(!e.message.includes(bad));
          return true;
        },
      );
    }
  });

  it("a wrong master key refuses to open the database", async () => {
    const store = await sqliteStore();
    await Keyring.open(store, { current: randomMasterKey() });
    await assert.rejects(Keyring.open(store, { current: randomMasterKey() }), { code: "ERR_MASTER_KEY_MISMATCH" });
  });

  it("rotation: the previous key admits the new one, after which both open the data", async () => {
    const store = await sqliteStore();
    const oldKey = randomMasterKey();
    const newKey = randomMasterKey();
    const k1 = await Keyring.open(store, { current: oldKey });
    const sealed = await k1.seal("records", Buffer.from("before rotation"), binding);
    const k2 = await Keyring.open(store, { current: newKey, previous: [oldKey] });
    assert.equal((await k2.open(sealed, binding)).toString(), "before rotation");
    const k3 = await Keyring.open(store, { current: newKey });
    // The data key is still wrapped by the old key until a re-wrap; without the old key it is refused.
    await assert.rejects(k3.open(sealed, binding), { code: "ERR_MASTER_KEY_MISSING" });
    await assert.rejects(Keyring.open(store, { current: randomMasterKey() }), { code: "ERR_MASTER_KEY_MISMATCH" });
  });
});

describe("sealed values", () => {
  it("round-trip and are bound to table, row and owner", async () => {
    const store = await sqliteStore();
    const keyring = await Keyring.open(store, { current: randomMasterKey() });
    const sealed = await keyring.seal("records", Buffer.from("secret"), binding);
    assert.ok(!sealed.includes("secret"));
    assert.equal((await keyring.open(sealed, binding)).toString(), "secret");
    for (const other of [
      { ...binding, row: 8 },
      { ...binding, owner: "bob" },
      { ...binding, table: "vault" },
    ]) {
      await assert.rejects(keyring.open(sealed, other), { code: "ERR_DECRYPT" });
    }
    // One character of the tag changed (it must differ from the one it replaces, or nothing is flipped).
    const flipped = sealed.slice(0, -2) + (sealed.at(-2) === "A" ? "B" : "A") + sealed.slice(-1);
    assert.notEqual(flipped, sealed);
    await assert.rejects(keyring.open(flipped, binding), { code: "ERR_DECRYPT" });
    await assert.rejects(keyring.open("garbage", binding), { code: "ERR_DECRYPT" });
  });

  it("data keys are per purpose and period and carry their kid", async () => {
    const store = await sqliteStore();
    let now = Date.UTC(2026, 10, 27);
    const keyring = await Keyring.open(store, { current: randomMasterKey() }, { now: () => now });
    const nov = await keyring.dataKey("audit");
    now = Date.UTC(2026, 11, 2);
    const dec = await keyring.dataKey("audit");
    const vault = await keyring.dataKey("vault");
    assert.notEqual(nov.kid, dec.kid);
    assert.notEqual(dec.kid, vault.kid);
    assert.match(nov.kid, /^dk-audit-2026-11-/);
    const rows = await store.db.selectFrom("data_keys").selectAll().execute();
    assert.equal(rows.length, 3);
    for (const row of rows) assert.equal(row.master_key_id, keyring.masterKeyId);
  });

  it("no secret key material is stored in clear", async () => {
    const dir = tempDir();
    const store = await openStore({ kind: "sqlite", path: join(dir, "a.db") });
    const keyring = await Keyring.open(store, { current: randomMasterKey() });
    const key = await keyring.signingKey("audit");
    const pkcs8 = key.privateKey.export({ format: "der", type: "pkcs8" });
    const row = await store.db.selectFrom("signing_keys").selectAll().executeTakeFirstOrThrow();
    assert.ok(!row.private_sealed.includes(pkcs8.toString("base64url").slice(-40)));
    await store.close();
  });
});

describe("PostgreSQL: two instances share one key hierarchy", async () => {
  const ok = await postgresReachable();
  it(
    "decrypt each other's data and verify each other's signatures",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      const master = randomMasterKey();
      const [a, b] = [await postgresStore(url), await postgresStore(url)];
      const [ka, kb] = await Promise.all([Keyring.open(a, { current: master }), Keyring.open(b, { current: master })]);
      const [sa, sb] = await Promise.all([ka.signingKey("audit"), kb.signingKey("audit")]);
      assert.equal(sa.kid, sb.kid);
      const [da, db] = await Promise.all([ka.dataKey("records"), kb.dataKey("records")]);
      assert.equal(da.kid, db.kid);
      const sealed = await ka.seal("records", Buffer.from("shared"), binding);
      assert.equal((await kb.open(sealed, binding)).toString(), "shared");
      const message = Buffer.from("checkpoint");
      assert.ok(verifyMessage(await kb.signingKeyById(sa.kid), message, signMessage(sa, message)));
      await assert.rejects(Keyring.open(b, { current: randomMasterKey() }), { code: "ERR_MASTER_KEY_MISMATCH" });
    },
  );

  it(
    "two instances with different keys on an empty database: exactly one wins",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      const [a, b] = [await postgresStore(url), await postgresStore(url)];
      const results = await Promise.allSettled([
        Keyring.open(a, { current: randomMasterKey() }),
        Keyring.open(b, { current: randomMasterKey() }),
      ]);
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    },
  );
});
