import { sql, type Kysely, type Migration, type MigrationProvider } from "kysely";

// Migrations are code, versioned by name, and never edited after release: add a new one instead.
const migrations: Record<string, Migration> = {
  "0001_core": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("master_keys")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("ordinal", "integer", (c) => c.notNull().unique())
        .addColumn("kcv", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("retired_at", "bigint")
        .execute();
      await db.schema
        .createTable("data_keys")
        .addColumn("kid", "text", (c) => c.primaryKey())
        .addColumn("purpose", "text", (c) => c.notNull())
        .addColumn("period", "text", (c) => c.notNull())
        .addColumn("generation", "integer", (c) => c.notNull())
        .addColumn("master_key_id", "text", (c) => c.notNull())
        .addColumn("wrapped", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("retired_at", "bigint")
        .addUniqueConstraint("data_keys_purpose_period_generation", ["purpose", "period", "generation"])
        .execute();
      await db.schema
        .createTable("signing_keys")
        .addColumn("kid", "text", (c) => c.primaryKey())
        .addColumn("purpose", "text", (c) => c.notNull())
        .addColumn("generation", "integer", (c) => c.notNull())
        .addColumn("alg", "text", (c) => c.notNull())
        .addColumn("public_key", "text", (c) => c.notNull())
        .addColumn("private_sealed", "text", (c) => c.notNull())
        .addColumn("master_key_id", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("retired_at", "bigint")
        .addUniqueConstraint("signing_keys_purpose_generation", ["purpose", "generation"])
        .execute();
      await db.schema
        .createTable("audit_events")
        .addColumn("seq", "bigint", (c) => c.primaryKey())
        .addColumn("ts", "bigint", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("resource", "text", (c) => c.notNull())
        .addColumn("outcome", "text", (c) => c.notNull())
        .addColumn("ip", "text", (c) => c.notNull())
        .addColumn("user_agent", "text", (c) => c.notNull())
        .addColumn("request_id", "text", (c) => c.notNull())
        .addColumn("kid", "text", (c) => c.notNull())
        .addColumn("details", "text", (c) => c.notNull())
        .addColumn("leaf", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("audit_events_ts").on("audit_events").column("ts").execute();
      await db.schema.createIndex("audit_events_type_ts").on("audit_events").columns(["type", "ts"]).execute();
      await db.schema.createIndex("audit_events_actor_ts").on("audit_events").columns(["actor", "ts"]).execute();
      await db.schema
        .createTable("audit_head")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("size", "bigint", (c) => c.notNull())
        .addColumn("frontier", "text", (c) => c.notNull())
        .addColumn("root", "text", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("audit_checkpoints")
        .addColumn("size", "bigint", (c) => c.primaryKey())
        .addColumn("root", "text", (c) => c.notNull())
        .addColumn("frontier", "text", (c) => c.notNull())
        .addColumn("ts", "bigint", (c) => c.notNull())
        .addColumn("kid", "text", (c) => c.notNull())
        .addColumn("signature", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("audit_prune")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("through", "bigint", (c) => c.notNull())
        .addColumn("frontier", "text", (c) => c.notNull())
        .addColumn("root", "text", (c) => c.notNull())
        .addColumn("ts", "bigint", (c) => c.notNull())
        .addColumn("kid", "text", (c) => c.notNull())
        .addColumn("signature", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("locks")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("holder", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("api_keys")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("hash", "text", (c) => c.notNull().unique())
        .addColumn("prefix", "text", (c) => c.notNull())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("roles", "text", (c) => c.notNull())
        .addColumn("scopes", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint")
        .addColumn("last_used_at", "bigint")
        .addColumn("remaining_uses", "bigint")
        .addColumn("revoked_at", "bigint")
        .addColumn("meta", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("api_keys_owner").on("api_keys").column("owner").execute();
      await sql`insert into audit_head (id, size, frontier, root, updated_at) values (1, 0, '[]', '', 0)`.execute(db);
    },
  },
  "0002_sessions": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("sessions")
        .addColumn("jti", "text", (c) => c.primaryKey())
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("roles", "text", (c) => c.notNull())
        .addColumn("creator", "text", (c) => c.notNull())
        .addColumn("kid", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .addColumn("ip", "text", (c) => c.notNull())
        .addColumn("user_agent", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("sessions_subject").on("sessions").columns(["subject", "expires_at"]).execute();
      await db.schema.createIndex("sessions_creator").on("sessions").column("creator").execute();
    },
  },
  "0003_rbac": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("roles")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("description", "text", (c) => c.notNull())
        .addColumn("inherits", "text", (c) => c.notNull())
        .addColumn("grants", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("role_assignments")
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("resource", "text", (c) => c.notNull())
        .addColumn("granted_by", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addPrimaryKeyConstraint("role_assignments_pk", ["subject", "role", "resource"])
        .execute();
      await db.schema.createIndex("role_assignments_role").on("role_assignments").column("role").execute();
      await db.schema
        .createTable("counters")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "bigint", (c) => c.notNull())
        .execute();
      await sql`insert into counters (name, value) values ('roles', 0)`.execute(db);
    },
  },
  "0004_vault": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("vault_entries")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("current_version", "integer", (c) => c.notNull())
        .addColumn("hosts", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("vault_versions")
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("version", "integer", (c) => c.notNull())
        .addColumn("sealed", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("vault_versions_pk", ["name", "version"])
        .execute();
    },
  },
  "0005_api_key_limits": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("api_keys").addColumn("rate_limit", "text").execute();
      await db.schema.createIndex("api_keys_creator").on("api_keys").column("creator").execute();
    },
  },
  "0006_rate_limits": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("rate_limits")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("tat", "double precision", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("rate_limits_expires").on("rate_limits").column("expires_at").execute();
    },
  },
  "0007_revocation_counter": {
    async up(db: Kysely<unknown>): Promise<void> {
      // Bumped with every key revocation: caches of verified keys reread it at least once a second.
      await sql`insert into counters (name, value) values ('revocations', 0)`.execute(db);
    },
  },
  "0008_data_protection": {
    async up(db: Kysely<unknown>): Promise<void> {
      // Encryptions reserved per data key (in blocks), so no key is used 2^32 times across instances.
      await db.schema
        .alterTable("data_keys")
        .addColumn("uses", "bigint", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createIndex("data_keys_generation")
        .on("data_keys")
        .columns(["purpose", "period", "generation"])
        .unique()
        .execute();
      await db.schema
        .createTable("records")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("type", "text", (c) => c.notNull())
        .addColumn("kid", "text", (c) => c.notNull())
        .addColumn("wrapped_key", "text", (c) => c.notNull())
        .addColumn("data", "text", (c) => c.notNull())
        .addColumn("metadata", "text", (c) => c.notNull())
        .addColumn("size", "bigint", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("records_owner").on("records").columns(["owner", "created_at"]).execute();
      await db.schema.createIndex("records_kid").on("records").column("kid").execute();
      await db.schema
        .createTable("jobs")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("detail", "text", (c) => c.notNull())
        .addColumn("started_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
    },
  },
  "0009_agent_ca": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("certificates")
        .addColumn("serial", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("public_key", "text", (c) => c.notNull())
        .addColumn("certificate", "text", (c) => c.notNull())
        .addColumn("signing_kid", "text", (c) => c.notNull())
        .addColumn("not_before", "bigint", (c) => c.notNull())
        .addColumn("not_after", "bigint", (c) => c.notNull())
        .addColumn("issued_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .addColumn("revocation_reason", "text")
        .execute();
      await db.schema
        .createIndex("certificates_subject")
        .on("certificates")
        .columns(["subject", "issued_at"])
        .execute();
      // One root per database: two instances racing through `ca init` cannot both create one.
      await db.schema
        .createIndex("certificates_one_root")
        .on("certificates")
        .column("kind")
        .unique()
        .where(sql.ref("kind"), "=", "ca")
        .execute();
      // Bumped with every revocation, so cached CRLs are rebuilt by every instance.
      await sql`insert into counters (name, value) values ('ca_revocations', 0)`.execute(db);
    },
  },
  "0010_budgets": {
    async up(db: Kysely<unknown>): Promise<void> {
      // One counter per budget, scope and period: conditional increments keep budgets exact across instances.
      await db.schema
        .createTable("budget_usage")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("used", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("budget_usage_expires").on("budget_usage").column("expires_at").execute();
    },
  },
  "0011_anomaly": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable("anomaly_baselines")
        .addColumn("subject", "text", (c) => c.primaryKey())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("alerts")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("subject", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("severity", "text", (c) => c.notNull())
        .addColumn("message", "text", (c) => c.notNull())
        .addColumn("details", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("alerts_created").on("alerts").column("created_at").execute();
      await db.schema.createIndex("alerts_subject").on("alerts").columns(["subject", "created_at"]).execute();
    },
  },
  "0012_key_suspension": {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable("api_keys").addColumn("suspended_at", "bigint").execute();
      await db.schema.alterTable("api_keys").addColumn("suspended_by", "text").execute();
    },
  },
};

/** The migrations shipped with this version, in order. */
export class BuiltInMigrations implements MigrationProvider {
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(migrations);
  }
}

/** Names of every migration this version ships, in order. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations).sort();

/** Name of the newest migration this version knows. */
export const LATEST_MIGRATION = Object.keys(migrations).sort().at(-1) ?? "";
