import { sql, type Kysely } from "kysely";
import type { Store } from "./database.js";
import type { Database } from "./schema.js";

/**
 * Runs `fn` in a write transaction. On SQLite the transaction starts with BEGIN IMMEDIATE, taking the
 * write lock up front (a deferred transaction that upgrades later can fail with SQLITE_BUSY instead of
 * waiting); on PostgreSQL it is an ordinary transaction and `fn` takes row locks (FOR UPDATE) itself.
 */
export async function writeTransaction<T>(store: Store, fn: (trx: Kysely<Database>) => Promise<T>): Promise<T> {
  if (store.dialect === "postgres") return store.db.transaction().execute(fn);
  return store.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    try {
      const result = await fn(conn);
      await sql`commit`.execute(conn);
      return result;
    } catch (error) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw error;
    }
  });
}
