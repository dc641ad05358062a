import { AgentwallError } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import type { Keyring } from "../crypto/keyring.js";
import type { Store } from "../store/database.js";
import type { ApiKeysTable } from "../store/schema.js";
import { generateApiKey, hashApiKey, parseApiKey } from "./api-key-format.js";

/** The closed set of verification results. */
export type ApiKeyResult =
  | "VALID"
  | "NOT_FOUND"
  | "EXPIRED"
  | "REVOKED"
  | "DISABLED"
  | "RATE_LIMITED"
  | "USAGE_EXCEEDED"
  | "INSUFFICIENT_PERMISSIONS";

/** The public record of a key (no hash, no secret). */
export interface ApiKeyRecord {
  readonly id: string;
  readonly prefix: string;
  readonly owner: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
  readonly creator: string;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly lastUsedAt: number | null;
  readonly remainingUses: number | null;
  readonly revokedAt: number | null;
}

export type ApiKeyVerification =
  | { readonly result: "VALID"; readonly key: ApiKeyRecord }
  | { readonly result: Exclude<ApiKeyResult, "VALID">; readonly keyId?: string };

export interface CreateApiKeyInput {
  readonly owner: string;
  readonly name: string;
  readonly roles?: readonly string[];
  readonly scopes?: readonly string[];
  /** Who made it: a key id (`key:…`), a session, or `bootstrap`. */
  readonly creator: string;
  readonly expiresAt?: number | null;
  readonly remainingUses?: number | null;
  /** Sensitive metadata, encrypted at rest. */
  readonly meta?: Readonly<Record<string, unknown>>;
}

const NAME = /^[\p{L}\p{N} _.:@/-]{1,100}$/u;

/**
 * API keys in the `aw_` format: only a SHA-256 hash and a display prefix are stored, metadata is
 * encrypted, verification returns a closed set of results and never throws for a bad key.
 *
 * @example
 * ```ts
 * const keys = new ApiKeys({ store, keyring, audit });
 * const { key } = await keys.create({ owner: "alice", name: "ci", roles: ["developer"], creator: "bootstrap" });
 * (await keys.verify(key)).result; // "VALID"
 * ```
 */
export class ApiKeys {
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

  /** Creates a key; the returned `key` is the only time the secret exists outside the caller. */
  async create(input: CreateApiKeyInput): Promise<{ id: string; key: string; expiresAt: number | null }> {
    if (typeof input.owner !== "string" || !NAME.test(input.owner))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "owner must be 1..100 name characters");
    if (typeof input.name !== "string" || !NAME.test(input.name))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "name must be 1..100 name characters");
    const now = this.#now();
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && (!Number.isSafeInteger(expiresAt) || expiresAt <= now)) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "expiresAt must be a future time in ms");
    }
    const remainingUses = input.remainingUses ?? null;
    if (remainingUses !== null && (!Number.isSafeInteger(remainingUses) || remainingUses < 1)) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "remainingUses must be a positive integer");
    }
    const { id, key, prefix } = generateApiKey();
    const meta = await this.#keyring.seal("keys", Buffer.from(JSON.stringify(input.meta ?? {})), {
      table: "api_keys",
      row: id,
      owner: input.owner,
    });
    await this.#store.db
      .insertInto("api_keys")
      .values({
        id,
        hash: hashApiKey(key),
        prefix,
        owner: input.owner,
        name: input.name,
        roles: JSON.stringify(input.roles ?? []),
        scopes: JSON.stringify(input.scopes ?? []),
        creator: input.creator,
        created_at: now,
        expires_at: expiresAt,
        last_used_at: null,
        remaining_uses: remainingUses,
        revoked_at: null,
        meta,
      })
      .execute();
    await this.#audit.append({
      type: "key_created",
      actor: input.creator,
      action: "api_key.create",
      resource: `key:${id}`,
      outcome: "success",
      details: { owner: input.owner, name: input.name, roles: input.roles ?? [], expiresAt },
    });
    return { id, key, expiresAt };
  }

  /**
   * Verifies a presented key. A malformed key is hashed and looked up like any other, so it costs the
   * same work as a miss; the answer is NOT_FOUND either way.
   */
  async verify(presented: string): Promise<ApiKeyVerification> {
    const text = typeof presented === "string" ? presented.slice(0, 200) : "";
    const hash = hashApiKey(text);
    const row = await this.#store.db.selectFrom("api_keys").selectAll().where("hash", "=", hash).executeTakeFirst();
    if (row === undefined || parseApiKey(text) === undefined) return { result: "NOT_FOUND" };
    const now = this.#now();
    if (row.revoked_at !== null) return { result: "REVOKED", keyId: row.id };
    if (row.expires_at !== null && row.expires_at <= now) return { result: "EXPIRED", keyId: row.id };
    if (row.remaining_uses !== null) {
      // One atomic decrement: two instances can never spend the last use twice.
      const updated = await this.#store.db
        .updateTable("api_keys")
        .set((eb) => ({ remaining_uses: eb("remaining_uses", "-", 1), last_used_at: now }))
        .where("id", "=", row.id)
        .where("remaining_uses", ">", 0)
        .executeTakeFirst();
      if (updated.numUpdatedRows === 0n) return { result: "USAGE_EXCEEDED", keyId: row.id };
    } else {
      await this.#store.db.updateTable("api_keys").set({ last_used_at: now }).where("id", "=", row.id).execute();
    }
    const remaining = row.remaining_uses === null ? null : Math.max(0, row.remaining_uses - 1);
    return { result: "VALID", key: toRecord({ ...row, remaining_uses: remaining }, now) };
  }

  /** Revokes a key; returns false when there is no such key. */
  async revoke(id: string, actor: string): Promise<boolean> {
    const now = this.#now();
    const result = await this.#store.db
      .updateTable("api_keys")
      .set({ revoked_at: now })
      .where("id", "=", id)
      .where("revoked_at", "is", null)
      .executeTakeFirst();
    const revoked = result.numUpdatedRows > 0n;
    await this.#audit.append({
      type: "key_revoked",
      actor,
      action: "api_key.revoke",
      resource: `key:${id}`,
      outcome: revoked ? "success" : "failure",
    });
    return revoked;
  }

  /** Keys, optionally of one owner, newest first. */
  async list(owner?: string): Promise<ApiKeyRecord[]> {
    let q = this.#store.db.selectFrom("api_keys").selectAll().orderBy("created_at", "desc");
    if (owner !== undefined) q = q.where("owner", "=", owner);
    return (await q.limit(1000).execute()).map((r) => toRecord(r, r.last_used_at));
  }
}

function parseList(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

function toRecord(row: Omit<ApiKeysTable, "hash" | "meta" | "last_used_at">, lastUsedAt: number | null): ApiKeyRecord {
  return Object.freeze({
    id: row.id,
    prefix: row.prefix,
    owner: row.owner,
    name: row.name,
    roles: Object.freeze(parseList(row.roles)),
    scopes: Object.freeze(parseList(row.scopes)),
    creator: row.creator,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt,
    remainingUses: row.remaining_uses,
    revokedAt: row.revoked_at,
  });
}
