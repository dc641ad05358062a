// The verification cache keeps revocations holding: at most cacheMs of staleness on another instance
// without a bus, none with the Redis bus, none after a restart, and never a revoked key made valid by
// a lost message or an unreachable Redis. On SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import {
  REDIS_URL,
  auditedStore,
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  redisReachable,
  sqliteStore,
  tempDir,
} from "../../test/helpers.js";
import type { Store } from "../store/database.js";
import { ApiKeys } from "./api-keys.js";
import { RedisRevocationBus, type RevocationBus } from "./revocation.js";
import { Sessions } from "./sessions.js";

/** Two instances sharing one database (each its own cache), on one injected clock. */
async function twoInstances(
  storeOf: () => Promise<Store>,
  master: ReturnType<typeof randomMasterKey>,
  buses: [RevocationBus?, RevocationBus?] = [],
): Promise<{ one: ApiKeys; two: ApiKeys; restart: () => ApiKeys; tick: (ms: number) => void }> {
  let now = Date.UTC(2026, 10, 27);
  const a = await auditedStore({ store: await storeOf(), master });
  const b = await auditedStore({ store: await storeOf(), master });
  const make = (s: typeof a, bus?: RevocationBus) =>
    new ApiKeys({ ...s, now: () => now, cacheMs: 1000, ...(bus === undefined ? {} : { revocations: bus }) });
  return { one: make(a, buses[0]), two: make(b, buses[1]), restart: () => make(a), tick: (ms) => (now += ms) };
}

const result = async (keys: ApiKeys, key: string) => (await keys.verify(key)).result;

const pgSkip = !(await postgresReachable()) && "PostgreSQL unreachable";
const redisUp = await redisReachable();
const pgUrl = pgSkip === false ? await freshPostgresDatabase() : "";
const pgSessionsUrl = pgSkip === false ? await freshPostgresDatabase() : "";

for (const engine of ["SQLite", "PostgreSQL"] as const) {
  describe(`API-key verification cache on ${engine}`, () => {
    const skip = engine === "PostgreSQL" && pgSkip;
    const redisSkip = skip || (!redisUp && "Redis unreachable");
    const master = randomMasterKey();
    // One database per engine, shared by the instances of each test.
    const where = engine === "SQLite" ? tempDir() : pgUrl;
    const storeOf = (): Promise<Store> => (engine === "SQLite" ? sqliteStore(where) : postgresStore(where));

    it(
      "without a bus, another instance's revocation holds within cacheMs; after a restart at once",
      { skip },
      async () => {
        const { one, two, restart, tick } = await twoInstances(storeOf, master);
        const { id, key } = await one.create({ owner: "cache-a", name: "k", creator: "test" });
        assert.equal(await result(one, key), "VALID");
        assert.equal(await result(two, key), "VALID");
        assert.equal(await two.revoke(id, "admin"), true);
        assert.equal(await result(two, key), "REVOKED", "the revoking instance drops its cache at once");
        assert.equal(await result(restart(), key), "REVOKED", "a restarted instance has nothing cached");
        // The other instance may answer from memory for at most cacheMs…
        tick(999);
        assert.equal(await result(one, key), "VALID");
        // …and not a millisecond longer.
        tick(1);
        assert.equal(await result(one, key), "REVOKED");
      },
    );

    it(
      "a rotation's shortened expiry and a subject revocation reach the other instance the same way",
      { skip },
      async () => {
        const { one, two, tick } = await twoInstances(storeOf, master);
        const old = await one.create({ owner: "cache-b", name: "k", creator: "test" });
        const other = await one.create({ owner: "cache-c", name: "k", creator: "test" });
        assert.equal(await result(one, old.key), "VALID");
        assert.equal(await result(one, other.key), "VALID");
        await two.rotate(old.id, { graceMs: 0, actor: "admin" });
        assert.equal(await two.revokeOwner("cache-c", "admin"), 1);
        tick(1000);
        assert.equal(await result(one, old.key), "EXPIRED");
        assert.equal(await result(one, other.key), "REVOKED");
      },
    );

    it("uses are never cached: the last use is spent once across instances", { skip }, async () => {
      const { one, two } = await twoInstances(storeOf, master);
      const { key } = await one.create({ owner: "cache-d", name: "k", creator: "test", remainingUses: 1 });
      const results = await Promise.all([one.verify(key), two.verify(key), one.verify(key)]);
      assert.equal(results.filter((r) => r.result === "VALID").length, 1);
    });

    it("with the Redis bus, the other instance drops its cache at once", { skip: redisSkip }, async () => {
      const channel = `aw:test:revocations:${engine}:${process.pid}`;
      const busOne = new RedisRevocationBus({ url: REDIS_URL, channel });
      const busTwo = new RedisRevocationBus({ url: REDIS_URL, channel });
      try {
        await Promise.all([busOne.ready(), busTwo.ready()]);
        const { one, two } = await twoInstances(storeOf, master, [busOne, busTwo]);
        const { id, key } = await one.create({ owner: "cache-e", name: "k", creator: "test" });
        assert.equal(await result(one, key), "VALID");
        await two.revoke(id, "admin");
        let seen = "VALID";
        for (let i = 0; i < 50 && seen === "VALID"; i++) {
          await sleep(10);
          seen = await result(one, key);
        }
        assert.equal(seen, "REVOKED", "the clock never moved: only the bus message can have dropped the cache");
      } finally {
        await busOne.close();
        await busTwo.close();
      }
    });

    it("with Redis unreachable, revocations still hold within cacheMs", { skip }, async () => {
      const dead = new RedisRevocationBus({ url: "redis://127.0.0.1:1" });
      try {
        const { one, two, tick } = await twoInstances(storeOf, master, [dead, dead]);
        const { id, key } = await one.create({ owner: "cache-f", name: "k", creator: "test" });
        assert.equal(await result(one, key), "VALID");
        await two.revoke(id, "admin");
        tick(1000);
        assert.equal(await result(one, key), "REVOKED");
      } finally {
        await dead.close();
      }
    });
  });
}

for (const engine of ["SQLite", "PostgreSQL"] as const) {
  describe(`session verification cache on ${engine}`, () => {
    const skip = engine === "PostgreSQL" && pgSkip;
    const master = randomMasterKey();
    const where = engine === "SQLite" ? tempDir() : pgSessionsUrl;
    const storeOf = (): Promise<Store> => (engine === "SQLite" ? sqliteStore(where) : postgresStore(where));

    /** Two instances (keys and sessions each, caches of 1 s) on one database and one clock. */
    async function instances() {
      let now = Date.UTC(2026, 10, 27);
      const clock = () => now;
      const make = async () => {
        const s = await auditedStore({ store: await storeOf(), master });
        return {
          keys: new ApiKeys({ ...s, now: clock, cacheMs: 1000 }),
          sessions: new Sessions({ ...s, now: clock, cacheMs: 1000 }),
        };
      };
      return { one: await make(), two: await make(), tick: (ms: number) => (now += ms) };
    }
    const check = async (sessions: Sessions, token: string) => {
      const v = await sessions.verify(token);
      return v.valid ? "VALID" : v.result;
    };

    it("another instance's session revocation holds within cacheMs; the revoking one at once", { skip }, async () => {
      const { one, two, tick } = await instances();
      const { token, jti } = await one.sessions.issue({ subject: "cache-s1", roles: ["user"], creator: "test" });
      assert.equal(await check(one.sessions, token), "VALID");
      assert.equal(await check(two.sessions, token), "VALID");
      assert.equal(await two.sessions.revoke(jti, "admin"), true);
      assert.equal(await check(two.sessions, token), "REVOKED");
      tick(999);
      assert.equal(await check(one.sessions, token), "VALID", "served from memory within cacheMs");
      tick(1);
      assert.equal(await check(one.sessions, token), "REVOKED");
    });

    it("revoking the key that made a session ends the cached session on that instance at once", { skip }, async () => {
      const { one, two, tick } = await instances();
      const { id } = await one.keys.create({ owner: "cache-s2", name: "k", creator: "test" });
      const { token } = await one.sessions.issue({ subject: "cache-s2", roles: ["user"], creator: `key:${id}` });
      assert.equal(await check(one.sessions, token), "VALID");
      assert.equal(await check(two.sessions, token), "VALID");
      await one.keys.revoke(id, "admin");
      assert.equal(await check(one.sessions, token), "REVOKED", "the key cache's owner dropped the session cache too");
      tick(1000);
      assert.equal(await check(two.sessions, token), "REVOKED");
    });

    it("a subject's revocation and the session's expiry hold for cached sessions", { skip }, async () => {
      const { one, two, tick } = await instances();
      const a = await one.sessions.issue({ subject: "cache-s3", roles: ["user"], creator: "test", ttlMs: 60_000 });
      const b = await one.sessions.issue({ subject: "cache-s4", roles: ["user"], creator: "test", ttlMs: 60_000 });
      assert.equal(await check(one.sessions, a.token), "VALID");
      assert.equal(await check(one.sessions, b.token), "VALID");
      assert.equal(await two.sessions.revokeSubject("cache-s3", "admin"), 1);
      tick(1000);
      assert.equal(await check(one.sessions, a.token), "REVOKED");
      assert.equal(await check(one.sessions, b.token), "VALID");
      tick(59_000);
      assert.equal(await check(one.sessions, b.token), "EXPIRED", "a cached session still ends at its expiry");
    });
  });
}

describe("API-key cache settings", () => {
  it("refuses a cache longer than one second", async () => {
    const s = await auditedStore();
    assert.throws(() => new ApiKeys({ ...s, cacheMs: 1001 }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => new ApiKeys({ ...s, cacheMs: -1 }), { code: "ERR_INVALID_ARGUMENT" });
  });
});
