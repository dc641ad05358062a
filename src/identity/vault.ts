import { AgentwallError } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import { sealedKeyId, type Keyring } from "../crypto/keyring.js";
import type { Store } from "../store/database.js";
import { writeTransaction } from "../store/transaction.js";

/** What the vault says about a secret: never its value. */
export interface VaultSecretInfo {
  readonly name: string;
  readonly currentVersion: number;
  readonly hosts: readonly string[];
  readonly versions: ReadonlyArray<{
    readonly version: number;
    readonly createdAt: number;
    readonly createdBy: string;
  }>;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type VaultRelease =
  | { readonly allowed: true; readonly value: string; readonly version: number }
  | { readonly allowed: false; readonly code: "ERR_NOT_FOUND" | "ERR_FORBIDDEN"; readonly reason: string };

const NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
const HOST = /^(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?::\d{1,5})?$/;
const MAX_VALUE = 16 * 1024;

function checkName(name: string): void {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      "a secret name is 1..64 of a-z 0-9 _ . - starting with a letter or digit",
    );
  }
}

function checkHosts(hosts: readonly string[]): string[] {
  if (!Array.isArray(hosts) || hosts.length === 0 || hosts.length > 32) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "a secret is bound to 1..32 hosts");
  }
  return hosts.map((h) => {
    const host = String(h).toLowerCase();
    if (!HOST.test(host))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", `invalid host ${JSON.stringify(String(h).slice(0, 80))}`);
    return host;
  });
}

function checkValue(value: string): void {
  if (typeof value !== "string" || value.length === 0 || Buffer.byteLength(value) > MAX_VALUE) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `a secret value is 1..${MAX_VALUE} bytes`);
  }
}

/** Whether `host` (`name` or `name:port`, lower case) is one a secret bound to `bound` may be sent to. */
export function hostAllowed(bound: readonly string[], host: string): boolean {
  const h = host.toLowerCase();
  return bound.some((b) => (b.startsWith("*.") ? h.endsWith(b.slice(1)) && h.length > b.length - 1 : b === h));
}

function parseHosts(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/**
 * The provider-secret vault: the LLM provider keys agents use, encrypted with the vault data key of the
 * key hierarchy, versioned (rotate, roll back), each bound to the hosts it may be sent to. Values leave
 * only through {@link releaseFor} (for a bound host) or {@link reveal} (the local operator); every
 * change and every release is audited, never the value.
 *
 * @example
 * ```ts
 * await vault.set("openai", process.env.OPENAI_KEY!, ["api.openai.com"], "cli");
 * const r = await vault.releaseFor("openai", "api.openai.com", "egress");
 * ```
 */
export class Vault {
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #audit: AuditSink;
  readonly #now: () => number;

  constructor(options: { store: Store; keyring: Keyring; audit: AuditSink; now?: () => number }) {
    this.#store = options.store;
    this.#keyring = options.keyring;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
  }

  async #seal(name: string, version: number, value: string): Promise<string> {
    return this.#keyring.seal("vault", Buffer.from(value, "utf8"), {
      table: "vault_versions",
      row: `${name}#${version}`,
      owner: name,
    });
  }

  /** Stores a new secret, or a new version of an existing one with new hosts. Returns the version. */
  /**
   * Re-encrypts every stored version whose data key is retired with the current vault data key. Each
   * version is rewritten only if unchanged since it was read, so a rerun after an interruption resumes.
   */
  async reencryptAll(): Promise<{ seen: number; rewritten: number }> {
    const rows = await this.#store.db
      .selectFrom("vault_versions")
      .selectAll()
      .orderBy("name")
      .orderBy("version")
      .execute();
    const current = new Map<string, boolean>();
    let rewritten = 0;
    for (const row of rows) {
      const kid = sealedKeyId(row.sealed) ?? "";
      if (!current.has(kid)) current.set(kid, await this.#keyring.isCurrentDataKey(kid));
      if (current.get(kid) === true) continue;
      const binding = { table: "vault_versions", row: `${row.name}#${row.version}`, owner: row.name };
      const value = await this.#keyring.open(row.sealed, binding);
      const sealed = await this.#keyring.seal("vault", value, binding);
      value.fill(0);
      const r = await this.#store.db
        .updateTable("vault_versions")
        .set({ sealed })
        .where("name", "=", row.name)
        .where("version", "=", row.version)
        .where("sealed", "=", row.sealed)
        .executeTakeFirst();
      if (r.numUpdatedRows > 0n) rewritten++;
    }
    return { seen: rows.length, rewritten };
  }

  async set(name: string, value: string, hosts: readonly string[], actor: string): Promise<number> {
    checkName(name);
    checkValue(value);
    const bound = checkHosts(hosts);
    const now = this.#now();
    const existing = await this.#store.db
      .selectFrom("vault_versions")
      .select((eb) => eb.fn.max("version").as("v"))
      .where("name", "=", name)
      .executeTakeFirst();
    const version = (Number(existing?.v ?? 0) || 0) + 1;
    const sealed = await this.#seal(name, version, value);
    await writeTransaction(this.#store, async (trx) => {
      await trx
        .insertInto("vault_versions")
        .values({ name, version, sealed, created_at: now, created_by: actor })
        .execute();
      await trx
        .insertInto("vault_entries")
        .values({ name, current_version: version, hosts: JSON.stringify(bound), created_at: now, updated_at: now })
        .onConflict((oc) =>
          oc.column("name").doUpdateSet({ current_version: version, hosts: JSON.stringify(bound), updated_at: now }),
        )
        .execute();
    });
    await this.#audit.append({
      type: "data_modify",
      actor,
      action: version === 1 ? "vault.set" : "vault.set_version",
      resource: `vault:${name}`,
      outcome: "success",
      details: { version, hosts: bound },
    });
    return version;
  }

  /** A new version of an existing secret, same hosts. */
  async rotate(name: string, value: string, actor: string): Promise<number> {
    const info = await this.info(name);
    if (info === undefined) throw new AgentwallError("ERR_NOT_FOUND", `no secret ${name}`);
    return this.set(name, value, info.hosts, actor);
  }

  /** Makes an earlier version current again. */
  async rollback(name: string, version: number, actor: string): Promise<void> {
    checkName(name);
    const row = await this.#store.db
      .selectFrom("vault_versions")
      .select("version")
      .where("name", "=", name)
      .where("version", "=", version)
      .executeTakeFirst();
    if (row === undefined) throw new AgentwallError("ERR_NOT_FOUND", `no version ${version} of secret ${name}`);
    await this.#store.db
      .updateTable("vault_entries")
      .set({ current_version: version, updated_at: this.#now() })
      .where("name", "=", name)
      .execute();
    await this.#audit.append({
      type: "data_modify",
      actor,
      action: "vault.rollback",
      resource: `vault:${name}`,
      outcome: "success",
      details: { version },
    });
  }

  /** Deletes a secret and every version of it. */
  async delete(name: string, actor: string): Promise<boolean> {
    checkName(name);
    const deleted = await writeTransaction(this.#store, async (trx) => {
      await trx.deleteFrom("vault_versions").where("name", "=", name).execute();
      return (await trx.deleteFrom("vault_entries").where("name", "=", name).executeTakeFirst()).numDeletedRows > 0n;
    });
    await this.#audit.append({
      type: "data_modify",
      actor,
      action: "vault.delete",
      resource: `vault:${name}`,
      outcome: deleted ? "success" : "failure",
    });
    return deleted;
  }

  /** Metadata of one secret, or undefined. */
  async info(name: string): Promise<VaultSecretInfo | undefined> {
    return (await this.list(name))[0];
  }

  /** Metadata of every secret (or one): names, versions with timestamps, hosts. Never values. */
  async list(only?: string): Promise<VaultSecretInfo[]> {
    let q = this.#store.db.selectFrom("vault_entries").selectAll().orderBy("name");
    if (only !== undefined) q = q.where("name", "=", only);
    const entries = await q.execute();
    const out: VaultSecretInfo[] = [];
    for (const e of entries) {
      const versions = await this.#store.db
        .selectFrom("vault_versions")
        .select(["version", "created_at", "created_by"])
        .where("name", "=", e.name)
        .orderBy("version")
        .execute();
      out.push({
        name: e.name,
        currentVersion: e.current_version,
        hosts: parseHosts(e.hosts),
        versions: versions.map((v) => ({ version: v.version, createdAt: v.created_at, createdBy: v.created_by })),
        createdAt: e.created_at,
        updatedAt: e.updated_at,
      });
    }
    return out;
  }

  async #current(name: string): Promise<{ value: string; version: number; hosts: string[] } | undefined> {
    const entry = await this.#store.db
      .selectFrom("vault_entries")
      .selectAll()
      .where("name", "=", name)
      .executeTakeFirst();
    if (entry === undefined) return undefined;
    const row = await this.#store.db
      .selectFrom("vault_versions")
      .select("sealed")
      .where("name", "=", name)
      .where("version", "=", entry.current_version)
      .executeTakeFirst();
    if (row === undefined) return undefined;
    const value = (
      await this.#keyring.open(row.sealed, {
        table: "vault_versions",
        row: `${name}#${entry.current_version}`,
        owner: name,
      })
    ).toString("utf8");
    return { value, version: entry.current_version, hosts: parseHosts(entry.hosts) };
  }

  /** The current value for a request to `host` — only when the secret is bound to that host. Audited. */
  async releaseFor(name: string, host: string, actor: string): Promise<VaultRelease> {
    const current = NAME.test(name) ? await this.#current(name) : undefined;
    let result: VaultRelease;
    if (current === undefined) result = { allowed: false, code: "ERR_NOT_FOUND", reason: `no secret ${name}` };
    else if (!hostAllowed(current.hosts, host))
      result = { allowed: false, code: "ERR_FORBIDDEN", reason: `secret ${name} is not bound to ${host}` };
    else result = { allowed: true, value: current.value, version: current.version };
    await this.#audit.append({
      type: "data_access",
      actor,
      action: "vault.release",
      resource: `vault:${name}`,
      outcome: result.allowed ? "allowed" : "denied",
      details: { host, ...(result.allowed ? { version: result.version } : { reason: result.reason }) },
    });
    return result;
  }

  /** The current value, for the local operator (`agentwall vault get --reveal`). Audited. */
  async reveal(name: string, actor: string): Promise<string> {
    checkName(name);
    const current = await this.#current(name);
    await this.#audit.append({
      type: "data_access",
      actor,
      action: "vault.reveal",
      resource: `vault:${name}`,
      outcome: current === undefined ? "failure" : "success",
    });
    if (current === undefined) throw new AgentwallError("ERR_NOT_FOUND", `no secret ${name}`);
    return current.value;
  }
}
