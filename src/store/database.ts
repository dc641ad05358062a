import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import SQLite from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from "kysely";
import { AgentwallError } from "../errors.js";
import { BuiltInMigrations, LATEST_MIGRATION } from "./migrations.js";
import type { Database } from "./schema.js";

/** Which engine a {@link Store} runs on. */
export type StoreDialect = "sqlite" | "postgres";

/** Where the database lives: a SQLite file (the single-machine default) or a PostgreSQL URL. */
export type StoreLocation = { kind: "sqlite"; path: string } | { kind: "postgres"; url: string };

/** An open database: a Kysely instance plus what callers need to know about the engine. */
export interface Store {
  readonly db: Kysely<Database>;
  readonly dialect: StoreDialect;
  /** Human-readable location without credentials, for logs and `readyz`. */
  readonly description: string;
  /**
   * The SQLite connection itself, for hot paths that need cached prepared statements (the audit append).
   * Use only inside `db.connection().execute(...)`, which serializes it with Kysely's own use.
   */
  readonly sqlite?: SQLite.Database;
  /** The SQLite file, for readers on other threads (absent for `:memory:`). */
  readonly sqlitePath?: string;
  close(): Promise<void>;
}

const BIGINT_OID = 20;
const NUMERIC_OID = 1700;

/** Parses `AGENTWALL_DATABASE_URL`; only `postgres://` and `postgresql://` are accepted. */
export function parseDatabaseUrl(url: string): StoreLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AgentwallError("ERR_DATABASE_URL_INVALID", "the database URL is not a valid URL");
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new AgentwallError(
      "ERR_DATABASE_URL_INVALID",
      `the database URL must start with postgres:// (got ${parsed.protocol}//)`,
    );
  }
  return { kind: "postgres", url };
}

/** The URL with its password removed, safe to log. */
export function redactDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(invalid url)";
  }
}

/**
 * Opens the database and applies pending migrations under the engine's migration lock (PostgreSQL
 * advisory lock; SQLite's write lock), so instances starting together migrate exactly once.
 *
 * @example
 * ```ts
 * const store = await openStore({ kind: "sqlite", path: ".agentwall/agentwall.db" });
 * ```
 */
export async function openStore(location: StoreLocation): Promise<Store> {
  const store = location.kind === "sqlite" ? openSqlite(location.path) : await openPostgres(location.url);
  try {
    await migrateWithRetry(store);
  } catch (error) {
    await store.close().catch(() => undefined);
    if (error instanceof AgentwallError) throw error;
    throw toUnavailable(error, store.description);
  }
  return store;
}

function openSqlite(path: string): Store {
  if (path !== ":memory:") {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Create the file private before SQLite does (it would use the umask); -wal and -shm inherit its mode.
    closeSync(openSync(path, "a", 0o600));
  }
  let database: SQLite.Database;
  try {
    database = new SQLite(path);
  } catch (error) {
    throw new AgentwallError("ERR_DATABASE_UNAVAILABLE", `cannot open SQLite database at ${path}`, {
      cause: error,
    });
  }
  // WAL with synchronous=FULL: a commit returns only after the WAL is fsynced, which is what
  // "durable" means for the audit log.
  database.pragma("journal_mode = WAL");
  database.pragma("synchronous = FULL");
  database.pragma("busy_timeout = 10000");
  database.pragma("foreign_keys = ON");
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return {
    db,
    dialect: "sqlite",
    description: `sqlite:${path}`,
    sqlite: database,
    ...(path === ":memory:" ? {} : { sqlitePath: path }),
    close: () => db.destroy(),
  };
}

async function openPostgres(url: string): Promise<Store> {
  const { default: pg } = await import("pg");
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30000,
    // synchronous_commit=on: a commit returns after the WAL is flushed on the server.
    options: "-c synchronous_commit=on",
    types: {
      getTypeParser: ((oid: number, format?: "text" | "binary"): unknown =>
        oid === BIGINT_OID || oid === NUMERIC_OID
          ? (value: string) => Number(value)
          : (pg.types.getTypeParser(oid, format) as unknown)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client that loses its connection emits 'error' on the pool; without a listener that
  // would crash the process. The next query reports the outage instead.
  pool.on("error", () => undefined);
  // A client that loses its connection while checked out (inside a transaction, between statements)
  // emits 'error' on itself; unheard, that would end the process. The failure still reaches whoever
  // is using the client (its next statement fails), and the pool drops the dead connection.
  pool.on("connect", (client) => client.on("error", () => undefined));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: "postgres",
    description: redactDatabaseUrl(url),
    close: () => db.destroy(),
  };
}

// PostgreSQL serializes migrators with an advisory lock. SQLite's migrator lock is its transaction, and a
// second process that started the same migration concurrently fails with SQLITE_BUSY or "already
// exists" once the first commits; it then simply finds the work done on a retry.
async function migrateWithRetry(store: Store): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await migrate(store.db);
      return;
    } catch (error) {
      if (store.dialect !== "sqlite" || attempt >= 10) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20 * attempt + Math.random() * 50));
    }
  }
}

async function migrate(db: Kysely<Database>): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: new BuiltInMigrations(),
    migrationTableName: "agentwall_migrations",
    migrationLockTableName: "agentwall_migrations_lock",
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "(connection)";
    if (failed === "(connection)")
      throw error instanceof Error ? error : new Error("migration failed", { cause: error });
    throw new AgentwallError("ERR_MIGRATION_FAILED", `migration ${failed} failed`, { cause: error });
  }
}

/** Reports whether the database answers and holds the newest migration (for `readyz`). */
export async function checkStore(store: Store): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    const row = await sql<{ name: string }>`select name from agentwall_migrations order by name desc limit 1`.execute(
      store.db,
    );
    const newest = row.rows[0]?.name;
    if (newest !== LATEST_MIGRATION) return { ok: false, reason: "migrations not applied" };
    return { ok: true };
  } catch {
    return { ok: false, reason: "database unreachable" };
  }
}

/** Wraps a driver error as ERR_DATABASE_UNAVAILABLE without leaking connection strings. */
export function toUnavailable(error: unknown, where: string): AgentwallError {
  return new AgentwallError("ERR_DATABASE_UNAVAILABLE", `database unavailable (${where})`, { cause: error });
}
