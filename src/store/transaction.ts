import { sql, type Kysely } from "kysely";
import type SQLite from "better-sqlite3";
import { AgentwallError } from "../errors.js";
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

/**
 * Runs a better-sqlite3 transaction function (`db.transaction(fn).immediate`) inside Kysely's
 * connection lock, so it never interleaves with a Kysely transaction. `durable: false` relaxes the
 * flush for this transaction only, as {@link writeTransaction} does; a durable one first makes sure
 * the connection is back at `synchronous=FULL`, so it never returns before the disk has it.
 */
export function sqliteImmediate<T>(store: Store, run: () => T, options: WriteOptions = {}): Promise<T> {
  const sqlite = store.sqlite;
  if (sqlite === undefined) throw new AgentwallError("ERR_INVALID_ARGUMENT", "sqliteImmediate needs a SQLite store");
  const pragma = synchronousPragmas(sqlite);
  return store.db.connection().execute(async () => {
    if (options.durable === false) {
      pragma.normal.run();
      try {
        return run();
      } finally {
        pragma.full.run();
      }
    }
    if (pragma.read.get() !== 2) pragma.full.run();
    return run();
  });
}

/**
 * The `synchronous` pragmas as statements prepared once per connection: `db.pragma()` prepares its
 * statement on every call, and a request ran three of them (2 % of the gateway's busy time).
 */
const SYNCHRONOUS = new WeakMap<
  SQLite.Database,
  { normal: SQLite.Statement; full: SQLite.Statement; read: SQLite.Statement<[], number> }
>();
function synchronousPragmas(sqlite: SQLite.Database) {
  let pragmas = SYNCHRONOUS.get(sqlite);
  if (pragmas === undefined) {
    pragmas = {
      normal: sqlite.prepare("pragma synchronous = NORMAL"),
      full: sqlite.prepare("pragma synchronous = FULL"),
      read: sqlite.prepare<[], number>("pragma synchronous").pluck(),
    };
    SYNCHRONOUS.set(sqlite, pragmas);
  }
  return pragmas;
}
