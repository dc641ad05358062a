import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  sqliteStore,
  gcraCorpus,
} from "../../../test/helpers.js";
import type { Store } from "../../store/database.js";
import { SqlRateLimiter } from "./sql.js";

const corpus = gcraCorpus();

async function table(store: Store) {
  let now = 0;
  const limiter = new SqlRateLimiter({ store, now: () => now });
  const limit = corpus.limit;
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
