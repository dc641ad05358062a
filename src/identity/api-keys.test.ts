import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  auditedStore,
} from "../../test/helpers.js";
import type { Store } from "../store/database.js";
import { parseApiKey } from "./api-key-format.js";
import { ApiKeys } from "./api-keys.js";
import { Sessions } from "./sessions.js";

async function setup(options: { store?: Store; now?: () => number; master?: ReturnType<typeof randomMasterKey> } = {}) {
  const { store, keyring, audit } = await auditedStore(options);
  return { store, keyring, audit, keys: new ApiKeys({ store, keyring, audit, now: options.now }) };
}

const result = async (keys: ApiKeys, key: string) => (await keys.verify(key)).result;

describe("API keys", () => {
  it("have the aw_ format with a checksum, and only a hash is stored", async () => {
    const { keys, store } = await setup();
    const { id, key } = await keys.create({
      owner: "alice",
      name: "ci",
      roles: ["user"],
      creator: "test",
      meta: { note: "private-note" },
    });
    assert.deepEqual(parseApiKey(key), { id });
    assert.equal(parseApiKey(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A")), undefined, "checksum catches a typo");
    const dump = JSON.stringify(await store.db.selectFrom("api_keys").selectAll().execute());
    assert.ok(!dump.includes(key.slice(16, 58)) && !dump.includes("private-note"));
  });

  it("verify returns each result code, never throws for a bad key", async () => {
    let now = Date.UTC(2026, 10, 27);
    const { keys } = await setup({ now: () => now });
    const valid = await keys.create({ owner: "a", name: "k", creator: "test" });
    const expiring = await keys.create({ owner: "a", name: "k", creator: "test", expiresAt: now + 1000 });
    const revoked = await keys.create({ owner: "a", name: "k", creator: "test" });
    const twoUses = await keys.create({ owner: "a", name: "k", creator: "test", remainingUses: 2 });
    const limited = await keys.create({
      owner: "a",
      name: "k",
      creator: "test",
      rateLimit: { limit: 1, periodMs: 60_000, burst: 1 },
    });
    await keys.revoke(revoked.id, "admin");
    assert.equal(await result(keys, valid.key), "VALID");
    for (const bad of [
      "",
      "aw_",
      "aw_x_y",
      valid.key + "x",
      valid.key.replace(/.$/, valid.key.endsWith("0") ? "1" : "0"), // a changed checksum character
      "Bearer x",
      "\u0000".repeat(300),
    ]) {
      assert.equal(await result(keys, bad), "NOT_FOUND", JSON.stringify(bad.slice(0, 20)));
    }
    assert.equal(await result(keys, revoked.key), "REVOKED");
    assert.equal(await result(keys, expiring.key), "VALID");
    now += 1000;
    assert.equal(await result(keys, expiring.key), "EXPIRED");
    assert.deepEqual(
      [await result(keys, twoUses.key), await result(keys, twoUses.key), await result(keys, twoUses.key)],
      ["VALID", "VALID", "USAGE_EXCEEDED"],
    );
    assert.deepEqual(
      [await result(keys, limited.key), await result(keys, limited.key), await result(keys, limited.key)],
      ["VALID", "VALID", "RATE_LIMITED"],
    );
    await assert.rejects(keys.create({ owner: "a", name: "k", creator: "t", expiresAt: now - 1 }), {
      code: "ERR_INVALID_ARGUMENT",
    });
    await assert.rejects(
      keys.create({ owner: "a", name: "k", creator: "t", rateLimit: { limit: 0, periodMs: 1, burst: 0 } }),
      { code: "ERR_INVALID_ARGUMENT" },
    );
  });

  it("rotation: the old key works for the grace period, then stops; the new one carries the same roles", async () => {
    let now = Date.UTC(2026, 10, 27);
    const { keys, audit } = await setup({ now: () => now });
    const old = await keys.create({ owner: "bob", name: "deploy", roles: ["developer"], creator: "test" });
    const fresh = await keys.rotate(old.id, { graceMs: 60_000, actor: "admin" });
    const v = await keys.verify(fresh.key);
    assert.deepEqual(v.result === "VALID" && [v.key.owner, v.key.roles], ["bob", ["developer"]]);
    assert.equal(await result(keys, old.key), "VALID");
    now += 60_001;
    assert.equal(await result(keys, old.key), "EXPIRED");
    assert.equal(await result(keys, fresh.key), "VALID");
    await assert.rejects(keys.rotate(old.id, { actor: "admin" }), { code: "ERR_NOT_FOUND" });
    assert.equal((await audit.query({ type: "key_rotated" })).events.length, 1);
  });

  it("suspension refuses a key and what it made until resumed; revocation stays final", async () => {
    const { keys, store, keyring, audit } = await setup();
    const sessions = new Sessions({ store, keyring, audit });
    // A second instance on the same database that trusts its cache for a second.
    const cached = new ApiKeys({ store, keyring, audit, cacheMs: 1000 });
    const key = await keys.create({ owner: "ops", name: "k", creator: "bootstrap" });
    const child = await keys.create({ owner: "ops", name: "child", creator: `key:${key.id}` });
    const session = await sessions.issue({ subject: "ops", roles: [], creator: `key:${child.id}` });
    assert.equal(await result(cached, key.key), "VALID");
    assert.equal(await keys.suspend(key.id, "monitor:alert:a1", "high guard_blocks"), true);
    assert.equal(await keys.suspend(key.id, "admin"), false, "already suspended");
    assert.equal(await result(keys, key.key), "SUSPENDED");
    assert.equal(await result(keys, child.key), "SUSPENDED");
    assert.equal((await sessions.verify(session.token)).valid, false);
    // The other instance's cached answer is dropped through the shared revocation counter.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await result(cached, key.key), "SUSPENDED");
    const listed = (await keys.list("ops")).find((k) => k.id === key.id);
    assert.equal(listed?.suspendedBy, "monitor:alert:a1");
    assert.equal(typeof listed?.suspendedAt, "number");
    assert.equal(await keys.resume(key.id, "admin"), true);
    assert.equal(await keys.resume(key.id, "admin"), false, "not suspended any more");
    assert.deepEqual(
      [await result(keys, key.key), await result(cached, key.key), await result(keys, child.key)],
      ["VALID", "VALID", "VALID"],
    );
    assert.equal((await sessions.verify(session.token)).valid, true);
    await keys.suspend(key.id, "admin");
    await keys.revoke(key.id, "admin");
    assert.equal(await keys.resume(key.id, "admin"), false, "a revoked key is not brought back");
    assert.equal(await result(keys, key.key), "REVOKED");
    assert.equal(await keys.suspend(child.id, "admin"), true);
    assert.equal(await result(keys, child.key), "REVOKED", "a revoked parent outranks a suspension");
    const events = (await audit.query({})).events.map((e) => `${e.type}:${e.outcome}`);
    for (const e of ["key_suspended:success", "key_suspended:failure", "key_resumed:success", "key_resumed:failure"])
      assert.ok(events.includes(e), e);
  });

  it("the creator chain: revoking a key ends the keys and sessions created from it, at any depth", async () => {
    const { keys, store, keyring, audit } = await setup();
    const sessions = new Sessions({ store, keyring, audit });
    const root = await keys.create({ owner: "ops", name: "root", roles: ["admin"], creator: "bootstrap" });
    const child = await keys.create({ owner: "ops", name: "child", creator: `key:${root.id}` });
    const grandchild = await keys.create({ owner: "ops", name: "grandchild", creator: `key:${child.id}` });
    const session = await sessions.issue({ subject: "ops", roles: [], creator: `key:${grandchild.id}` });
    assert.equal(await result(keys, grandchild.key), "VALID");
    assert.equal((await sessions.verify(session.token)).valid, true);
    await keys.revoke(root.id, "admin");
    assert.equal(await result(keys, child.key), "REVOKED");
    assert.equal(await result(keys, grandchild.key), "REVOKED");
    assert.equal((await sessions.verify(session.token)).valid, false);
  });

  it("the creator chain runs through sessions: a key made in a session ends with that session's revocation or its key's", async () => {
    let clock = Date.now();
    const now = () => clock;
    const { keys, store, keyring, audit } = await setup({ now });
    const sessions = new Sessions({ store, keyring, audit, now, ttlMs: 60_000 });
    const sessionResult = async (token: string) => {
      const v = await sessions.verify(token);
      return v.valid ? "VALID" : v.result;
    };
    const admin = await keys.create({ owner: "ops", name: "admin", roles: ["admin"], creator: "bootstrap" });
    const web = await sessions.issue({ subject: "ops", roles: ["admin"], creator: `key:${admin.id}` });
    const made = await keys.create({ owner: "ci", name: "made in a session", creator: `session:${web.jti}` });
    assert.equal(await result(keys, made.key), "VALID");
    // The session ending on its own is no revocation: what was made in it stays.
    clock += 120_000;
    assert.equal(await sessionResult(web.token), "EXPIRED");
    assert.equal(await result(keys, made.key), "VALID");
    const itsSession = await sessions.issue({ subject: "ci", roles: [], creator: `key:${made.id}` });
    assert.equal((await sessions.verify(itsSession.token)).valid, true);
    await sessions.revoke(web.jti, "admin");
    assert.equal(await result(keys, made.key), "REVOKED");
    assert.equal(await sessionResult(itsSession.token), "REVOKED");
    // Revoking the key the session came from reaches a key made in it.
    const admin2 = await keys.create({ owner: "ops", name: "admin 2", roles: ["admin"], creator: "bootstrap" });
    const web2 = await sessions.issue({ subject: "ops", roles: ["admin"], creator: `key:${admin2.id}` });
    const made2 = await keys.create({ owner: "ci", name: "made 2", creator: `session:${web2.jti}` });
    assert.equal(await result(keys, made2.key), "VALID");
    await keys.revoke(admin2.id, "admin");
    assert.equal(await result(keys, made2.key), "REVOKED");
    // A session that does not exist breaks the chain.
    const orphan = await keys.create({ owner: "ci", name: "orphan", creator: "session:nosuchsession0000000" });
    assert.equal(await result(keys, orphan.key), "REVOKED");
  });
});

describe("API keys on PostgreSQL", async () => {
  const ok = await postgresReachable();
  it(
    "remaining uses are spent atomically across instances (no double spend)",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      const master = randomMasterKey();
      const one = await setup({ store: await postgresStore(url), master });
      const two = await setup({ store: await postgresStore(url), master });
      const { key } = await one.keys.create({ owner: "a", name: "k", creator: "test", remainingUses: 5 });
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? one.keys : two.keys).verify(key)),
      );
      assert.equal(results.filter((r) => r.result === "VALID").length, 5);
      assert.equal(results.filter((r) => r.result === "USAGE_EXCEEDED").length, 15);
      const revokedByTwo = await two.keys.revoke((await one.keys.list("a"))[0]!.id, "admin");
      assert.equal(revokedByTwo, true);
      assert.equal(
        (await one.keys.verify(key)).result,
        "REVOKED",
        "a revocation by one instance holds at once on the other",
      );
    },
  );
});
