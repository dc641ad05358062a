import { sql, type Kysely } from "kysely";
import type { Store } from "./database.js";
import type { Database } from "./schema.js";

/** Options of {@link writeTransaction}. */
export interface WriteOptions {
  /**
   * `false`: the commit does not wait for its own flush to disk (SQLite `synchronous=NORMAL` for this
   * transaction; PostgreSQL `synchronous_commit=off`). It is atomic and visible at once, and durable
   * when the next durable commit flushes the log behind it — the write-ahead log is sequential, so a
   * later durable commit (the request's audit event) carries it. Default `true`.
   */
  readonly durable?: boolean;
}

/**
 * Runs `fn` in a write transaction. On SQLite the transaction starts with BEGIN IMMEDIATE, taking the
 * write lock up front (a deferred transaction that upgrades later can fail with SQLITE_BUSY instead of
 * waiting); on PostgreSQL it is an ordinary transaction and `fn` takes row locks (FOR UPDATE) itself.
 */
export async function writeTransaction<T>(
  store: Store,
  fn: (trx: Kysely<Database>) => Promise<T>,
  options: WriteOptions = {},
): Promise<T> {
  const durable = options.durable !== false;
  if (store.dialect === "postgres")
    return store.db.transaction().execute(async (trx) => {
      if (!durable) await sql`set local synchronous_commit = off`.execute(trx);
      return fn(trx);
    });
  return store.db.connection().execute(async (conn) => {
    // Inside the connection's lock: no other transaction runs while the setting is relaxed.
    if (!durable) await sql`pragma synchronous = NORMAL`.execute(conn);
    try {
      await sql`begin immediate`.execute(conn);
      try {
        const result = await fn(conn);
        await sql`commit`.execute(conn);
        return result;
      } catch (error) {
        await sql`rollback`.execute(conn).catch(() => undefined);
        throw error;
      }
    } finally {
      if (!durable) await sql`pragma synchronous = FULL`.execute(conn);
    }
  });
}
