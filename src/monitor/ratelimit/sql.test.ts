import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  sqliteStore,
  assertGcraTable,
} from "../../../test/helpers.js";
import type { Store } from "../../store/database.js";
import { SqlRateLimiter } from "./sql.js";

function table(store: Store): Promise<void> {
  return assertGcraTable((now) => new SqlRateLimiter({ store, now }));
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
