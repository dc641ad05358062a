import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { freshPostgresDatabase, postgresReachable, postgresStore, sqliteStore } from "../../../test/helpers.js";
import type { Store } from "../../store/database.js";
import { SqlRateLimiter } from "./sql.js";

interface Case {
  n: number;
  t_ms: number;
  volume: number;
  limited: boolean;
  remaining: number;
  reset_after_ms: number;
}
const corpus = JSON.parse(
  readFileSync(join(import.meta.dirname, "../../../test/fixtures/ratelimit/redis_cell_gcra_cases.json"), "utf8"),
) as { quota: { max_burst: number; count_per_period: number; period_ms: number }; cases: Case[] };

async function table(store: Store) {
  let now = 0;
  const limiter = new SqlRateLimiter({ store, now: () => now });
  const limit = {
    limit: corpus.quota.count_per_period,
    periodMs: corpus.quota.period_ms,
    burst: corpus.quota.max_burst,
  };
  for (const c of corpus.cases) {
    now = c.t_ms;
    const d = await limiter.take("k", limit, c.volume);
    assert.equal(!d.allowed, c.limited, `case ${c.n}`);
    assert.equal(d.remaining, c.remaining, `case ${c.n} remaining`);
    assert.equal(d.resetMs, c.reset_after_ms, `case ${c.n} reset`);
  }
}

describe("SQL rate limiter", async () => {
  it("SQLite: matches redis-cell's table", async () => table(await sqliteStore()));
  const ok = await postgresReachable();
  it(
    "PostgreSQL: matches redis-cell's table, and two instances admit exactly the limit",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      await table(await postgresStore(url));
      const a = new SqlRateLimiter({ store: await postgresStore(url) });
      const b = new SqlRateLimiter({ store: await postgresStore(url) });
      const limit = { limit: 1, periodMs: 3_600_000, burst: 19 };
      const results = await Promise.all(
        Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? a : b).take("shared", limit)),
      );
      assert.equal(results.filter((r) => r.allowed).length, 20);
    },
  );
});
