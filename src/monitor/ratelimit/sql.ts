import type { Store } from "../../store/database.js";
import { writeTransaction } from "../../store/transaction.js";
import { gcra, type RateDecision, type RateLimit, type RateLimiter } from "./limiter.js";

/**
 * GCRA over the database, for deployments with several instances and no Redis: one row per key, read
 * and written in one write transaction (row lock on PostgreSQL, the write lock on SQLite), so instances
 * share the limit exactly. Slower than Redis (a commit per decision); expired rows are swept as it goes.
 */
export class SqlRateLimiter implements RateLimiter {
  readonly #store: Store;
  readonly #now: () => number;
  #sweeps = 0;

  constructor(options: { store: Store; now?: () => number }) {
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
  }

  async take(key: string, limit: RateLimit, cost = 1): Promise<RateDecision> {
    gcra(undefined, 0, limit, cost);
    const now = this.#now();
    const decision = await writeTransaction(this.#store, async (trx) => {
      // Make the row exist first: FOR UPDATE locks nothing when there is no row, and two instances would
      // both start from "empty". An expired placeholder (expires_at 0) reads as absent.
      await trx
        .insertInto("rate_limits")
        .values({ key, tat: 0, expires_at: 0 })
        .onConflict((oc) => oc.doNothing())
        .execute();
      const q = trx.selectFrom("rate_limits").select(["tat", "expires_at"]).where("key", "=", key);
      const row = await (this.#store.dialect === "postgres" ? q.forUpdate() : q).executeTakeFirst();
      const stored = row === undefined || row.expires_at <= now ? undefined : row.tat;
      const { decision: d, tat } = gcra(stored, now, limit, cost);
      if (tat !== undefined && tat !== stored) {
        const expires = Math.ceil(tat);
        await trx
          .insertInto("rate_limits")
          .values({ key, tat, expires_at: expires })
          .onConflict((oc) => oc.column("key").doUpdateSet({ tat, expires_at: expires }))
          .execute();
      }
      return d;
    });
    if (++this.#sweeps % 1000 === 0) {
      await this.#store.db.deleteFrom("rate_limits").where("expires_at", "<=", now).execute();
    }
    return decision;
  }
}
