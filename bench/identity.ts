// Identity and access benchmark: key verification (cached and uncached, SQLite and PostgreSQL), session
// verification, RBAC checks, and rate-limit decisions next to rate-limiter-flexible on the same
// backends, all measured in this run.
//
//   npx tsx bench/identity.ts [--keys 1000] [--verifies 30000] [--rbac 5000000] [--limits 200000]
//                             [--no-postgres] [--no-redis]
//
// Peers: for key verification, the bare indexed SHA-256 lookup every key service does at minimum (a
// cached better-sqlite3 statement) and slow-hashed keys (the bcrypt pattern, here scrypt N=1024); for
// rate limits, rate-limiter-flexible's RateLimiterMemory and RateLimiterRedis (atomic) with the same
// allowance, checked to admit exactly the same number of requests.
import { createHash, randomBytes, scryptSync } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { RateLimiterMemory, RateLimiterRedis } from "rate-limiter-flexible";
import { RolePolicy } from "../src/access/policy.js";
import { AuditLog } from "../src/audit/log.js";
import { Keyring } from "../src/crypto/keyring.js";
import { masterKeyFromBytes } from "../src/crypto/master-key.js";
import { ApiKeys } from "../src/identity/api-keys.js";
import { Sessions } from "../src/identity/sessions.js";
import { MemoryRateLimiter, type RateLimiter } from "../src/monitor/ratelimit/limiter.js";
import { RedisRateLimiter } from "../src/monitor/ratelimit/redis.js";
import { openStore, type Store } from "../src/store/database.js";
import { REDIS_URL, fmt, freshPostgres, perSecond } from "./common.js";

const { values } = parseArgs({
  options: {
    keys: { type: "string", default: "1000" },
    verifies: { type: "string", default: "30000" },
    rbac: { type: "string", default: "5000000" },
    limits: { type: "string", default: "200000" },
    "no-postgres": { type: "boolean", default: false },
    "no-redis": { type: "boolean", default: false },
  },
});
const KEYS = Number(values.keys);
const VERIFIES = Number(values.verifies);
const RBAC = Number(values.rbac);
const LIMITS = Number(values.limits);

const row = (what: string, value: string, note = "") => {
  console.log(`${what.padEnd(52)} ${value.padStart(14)}  ${note}`);
};

async function keyBench(store: Store, engine: string): Promise<void> {
  const keyring = await Keyring.open(store, { current: masterKeyFromBytes(randomBytes(32)) });
  const audit = new AuditLog({ store, keyring });
  const uncached = new ApiKeys({ store, keyring, audit });
  const cached = new ApiKeys({ store, keyring, audit, cacheMs: 1000 });
  const created: string[] = [];
  for (let i = 0; i < KEYS; i++) {
    created.push((await uncached.create({ owner: `u${i % 100}`, name: "bench", roles: ["user"], creator: "b" })).key);
  }
  const pick = (i: number) => created[(i * 7919) % created.length] as string;
  const check = async (keys: ApiKeys, i: number) => {
    if ((await keys.verify(pick(i))).result !== "VALID") throw new Error("unexpected result");
  };
  // Warm both paths (statement caches, last-used writes of the first minute) before timing.
  for (let i = 0; i < KEYS; i++) await check(cached, i);
  const u = await perSecond(VERIFIES, (i) => check(uncached, i));
  const c = await perSecond(VERIFIES * 10, (i) => check(cached, i));
  row(`key verify, uncached, ${engine}`, `${fmt(u)} /s`);
  row(`key verify, cached (1 s, revocation counter), ${engine}`, `${fmt(c)} /s`, `${(c / u).toFixed(1)}x uncached`);
  if (store.sqlite !== undefined) {
    const lookup = store.sqlite.prepare("select id, revoked_at, expires_at from api_keys where hash = ?");
    const bare = await perSecond(VERIFIES, (i) => {
      if (lookup.get(createHash("sha256").update(pick(i)).digest("hex")) === undefined) throw new Error("missing");
    });
    row(
      "  peer: bare indexed SHA-256 lookup, SQLite",
      `${fmt(bare)} /s`,
      `uncached ${(u / bare).toFixed(2)}, cached ${(c / bare).toFixed(2)}`,
    );
    const salt = randomBytes(16);
    const slow = await perSecond(200, (i) => scryptSync(pick(i), salt, 32, { N: 1024, r: 8, p: 1 }));
    row("  peer: slow-hashed keys (scrypt N=1024)", `${fmt(slow)} /s`, `uncached ${(u / slow).toFixed(1)}x`);
    const sessions = new Sessions({ store, keyring, audit });
    const { token } = await sessions.issue({ subject: "alice", roles: ["user"], creator: "bench" });
    const s = await perSecond(VERIFIES, async () => {
      if (!(await sessions.verify(token)).valid) throw new Error("session invalid");
    });
    row(`session verify (EdDSA + session row), ${engine}`, `${fmt(s)} /s`);
    const cachedSessions = new Sessions({ store, keyring, audit, cacheMs: 1000 });
    const cs = await perSecond(VERIFIES, async () => {
      if (!(await cachedSessions.verify(token)).valid) throw new Error("session invalid");
    });
    row(
      `session verify, cached (≤ 1 s, revocation counter), ${engine}`,
      `${fmt(cs)} /s`,
      `${(cs / s).toFixed(2)}x uncached`,
    );
  }
  await audit.close();
}

function rbacBench(): void {
  const policy = RolePolicy.compile([{ name: "ops", inherits: ["developer"], grants: ["agents:billing:execute"] }]);
  const assignments = [{ role: "viewer" }, { role: "ops" }];
  const asks = [
    "agents:read",
    "agents:write",
    "workflows:execute",
    "admin:access",
    "audit:read",
    "agents:billing:execute",
  ];
  let allowed = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < RBAC; i++) if (policy.check(assignments, asks[i % asks.length] as string).allowed) allowed++;
  const rate = RBAC / (Number(process.hrtime.bigint() - start) / 1e9);
  row("RBAC check (2 roles, inheritance, 6 permissions)", `${fmt(rate)} /s`, `${fmt(allowed)} allowed`);
}

/** Decisions per second and admissions: `keys` keys, each asked `LIMITS / keys` times, allowance 50 each. */
async function limiterBench(
  name: string,
  take: (key: string) => Promise<boolean>,
  concurrency: number,
): Promise<{ rate: number; admitted: number }> {
  const keys = 1000;
  let admitted = 0;
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < LIMITS) {
        const i = next++;
        if (await take(`${name}:${i % keys}`)) admitted++;
      }
    }),
  );
  return { rate: LIMITS / (Number(process.hrtime.bigint() - start) / 1e9), admitted };
}

async function rateLimitBench(redisUp: boolean): Promise<void> {
  const allowance = 50;
  // GCRA admits burst + 1 at once; the hour-long period keeps refill out of a run of a few seconds.
  const limit = { limit: allowance, periodMs: 3_600_000, burst: allowance - 1 };
  const expected = 1000 * Math.min(allowance, LIMITS / 1000);
  const ours = (limiter: RateLimiter) => async (key: string) => (await limiter.take(key, limit)).allowed;
  const theirs = (rl: RateLimiterMemory | RateLimiterRedis) => async (key: string) => {
    try {
      await rl.consume(key);
      return true;
    } catch (e) {
      if (e instanceof Error) throw e;
      return false;
    }
  };
  const run = async (
    backend: string,
    ourTake: (k: string) => Promise<boolean>,
    peerTake: (k: string) => Promise<boolean>,
    concurrency: number,
  ) => {
    const us = await limiterBench(`aw:${backend}:${Date.now()}`, ourTake, concurrency);
    const peer = await limiterBench(`rlf:${backend}:${Date.now()}`, peerTake, concurrency);
    row(
      `rate limit, agentwall GCRA, ${backend}`,
      `${fmt(us.rate)} /s`,
      `admitted ${fmt(us.admitted)} (exact: ${fmt(expected)})`,
    );
    row(
      `  peer: rate-limiter-flexible, ${backend}`,
      `${fmt(peer.rate)} /s`,
      `admitted ${fmt(peer.admitted)}; agentwall ratio ${(us.rate / peer.rate).toFixed(2)}`,
    );
  };
  await run(
    "memory",
    ours(new MemoryRateLimiter()),
    theirs(new RateLimiterMemory({ points: allowance, duration: 3600 })),
    1,
  );
  if (!redisUp) return;
  const ourRedis = new RedisRateLimiter({ url: REDIS_URL, prefix: `aw:bench:${Date.now()}:` });
  const client = new Redis(REDIS_URL);
  try {
    await run(
      "Redis (64 in flight)",
      ours(ourRedis),
      theirs(
        new RateLimiterRedis({
          storeClient: client,
          points: allowance,
          duration: 3600,
          keyPrefix: `rlfbench${Date.now()}`,
        }),
      ),
      64,
    );
  } finally {
    await ourRedis.close();
    client.disconnect();
  }
}

async function redisReachable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

console.log(
  `identity and access, ${fmt(KEYS)} keys, ${fmt(VERIFIES)} verifications (cached: ${fmt(VERIFIES * 10)}), node ${process.version}`,
);
const dir = mkdtempSync(join(tmpdir(), "agentwall-bench-identity-"));
try {
  const sqlite = await openStore({ kind: "sqlite", path: join(dir, "identity.db") });
  await keyBench(sqlite, "SQLite");
  await sqlite.close();
  if (!values["no-postgres"]) {
    const db = await freshPostgres();
    try {
      const store = await openStore({ kind: "postgres", url: db.url });
      await keyBench(store, "PostgreSQL");
      await store.close();
    } finally {
      await db.drop();
    }
  }
  rbacBench();
  const redisUp = !values["no-redis"] && (await redisReachable());
  if (!values["no-redis"] && !redisUp) console.log(`Redis at ${REDIS_URL} unreachable: Redis rows skipped`);
  await rateLimitBench(redisUp);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
