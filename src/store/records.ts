import { randomBytes } from "node:crypto";
import { AgentwallError, isAgentwallError } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import { openAesGcm, sealAesGcm } from "../crypto/aead.js";
import { fromBase64Url } from "../crypto/encoding.js";
import { sealedKeyId, type Keyring } from "../crypto/keyring.js";
import type { Store } from "./database.js";
import type { RecordsTable } from "./schema.js";

/** A record as its owner reads it back. */
export interface StoredRecord {
  readonly id: string;
  readonly owner: string;
  readonly type: string;
  readonly data: Buffer;
  readonly metadata: Readonly<Record<string, unknown>>;
  readonly size: number;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/**
 * What {@link RecordStore.list} shows: everything but the data. A record that fails to decrypt (moved
 * or altered in the database) is listed with `damaged` set to the error code and empty metadata, so
 * one bad row neither hides the others nor passes unnoticed.
 */
export type RecordInfo = Omit<StoredRecord, "data" | "owner"> & { readonly damaged?: string };

const OWNER = /^[\p{L}\p{N} _.:@/-]{1,200}$/u;
const TYPE = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
const ID = /^rec_[0-9a-f]{32}$/;
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;
const MAX_METADATA_BYTES = 64 * 1024;

function recordAad(id: string, owner: string, type: string, part: "data" | "metadata"): Buffer {
  return Buffer.from(JSON.stringify(["agentwall/record/v1", id, owner, type, part]));
}

function sealPart(key: Buffer, plaintext: Uint8Array, aad: Buffer): string {
  return sealAesGcm(key, plaintext, aad).toString("base64url");
}

function openPart(key: Buffer, sealed: string, aad: Buffer): Buffer {
  return openAesGcm(key, fromBase64Url(sealed), aad);
}

/** A stable code for an error met while opening a record (never its message, which may carry data). */
const codeOf = (error: unknown): string => (isAgentwallError(error) ? error.code : "ERR_INTERNAL");

const keyBinding = (id: string, owner: string) => ({ table: "records", row: id, owner });

/**
 * The guides' secure storage: encrypted records per owner. Each record has its own random data key,
 * wrapped by the `records` data key of the key hierarchy; data and metadata are sealed with it, bound to
 * the record id, owner and type. Every query names the owner, so one owner never reads, lists or deletes
 * another's records, and a missing record and another owner's record give the same `ERR_NOT_FOUND`.
 * Every access is audited.
 *
 * @example
 * ```ts
 * const records = new RecordStore({ store, keyring, audit });
 * const { id } = await records.store("alice", "note", Buffer.from("secret"), { title: "t" });
 * (await records.retrieve(id, "alice")).data.toString(); // "secret"
 * ```
 */
export class RecordStore {
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

  async #log(
    actor: string,
    action: string,
    id: string,
    outcome: "success" | "denied" | "failure",
    details?: Record<string, unknown>,
  ) {
    await this.#audit.append({
      type: "data_access",
      actor,
      action: `records.${action}`,
      resource: id === "" ? "records" : `record:${id}`,
      outcome,
      ...(details === undefined ? {} : { details }),
    });
  }

  async #seal(id: string, owner: string, type: string, data: Uint8Array, metadata: Record<string, unknown>) {
    const key = randomBytes(32);
    try {
      const wrapped = await this.#keyring.seal("records", key, keyBinding(id, owner));
      return {
        kid: sealedKeyId(wrapped) as string,
        wrapped_key: wrapped,
        data: sealPart(key, data, recordAad(id, owner, type, "data")),
        metadata: sealPart(key, Buffer.from(JSON.stringify(metadata)), recordAad(id, owner, type, "metadata")),
      };
    } finally {
      key.fill(0);
    }
  }

  async #key(row: RecordsTable): Promise<Buffer> {
    return this.#keyring.open(row.wrapped_key, keyBinding(row.id, row.owner));
  }

  /** Stores a record; returns its id. `actor` (default: the owner) is who is audited. */
  async store(
    owner: string,
    type: string,
    data: Uint8Array | string,
    metadata: Record<string, unknown> = {},
    actor: string = owner,
  ): Promise<{ id: string }> {
    if (typeof owner !== "string" || !OWNER.test(owner))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "invalid owner");
    if (typeof type !== "string" || !TYPE.test(type)) {
      throw new AgentwallError(
        "ERR_INVALID_ARGUMENT",
        "a type is 1..64 of a-z 0-9 _ . : - starting with a letter or digit",
      );
    }
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data);
    if (bytes.length > MAX_RECORD_BYTES)
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "a record holds at most 16 MiB");
    if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "metadata must be an object");
    }
    if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "metadata must be at most 64 KiB of JSON");
    }
    const id = `rec_${randomBytes(16).toString("hex")}`;
    const now = this.#now();
    const sealed = await this.#seal(id, owner, type, bytes, metadata);
    await this.#store.db
      .insertInto("records")
      .values({ id, owner, type, ...sealed, size: bytes.length, created_at: now, updated_at: now })
      .execute();
    await this.#log(actor, "store", id, "success", { owner, type, size: bytes.length });
    return { id };
  }

  async #owned(id: string, owner: string): Promise<RecordsTable | undefined> {
    if (typeof id !== "string" || !ID.test(id) || typeof owner !== "string") return undefined;
    return this.#store.db
      .selectFrom("records")
      .selectAll()
      .where("id", "=", id)
      .where("owner", "=", owner)
      .executeTakeFirst();
  }

  /** Reads a record of `owner`. Missing, or another owner's: `ERR_NOT_FOUND` (audited as denied). */
  async retrieve(id: string, owner: string, actor: string = owner): Promise<StoredRecord> {
    const row = await this.#owned(id, owner);
    if (row === undefined) {
      await this.#log(actor, "retrieve", typeof id === "string" && ID.test(id) ? id : "", "denied", { owner });
      throw new AgentwallError("ERR_NOT_FOUND", "no such record");
    }
    let opened: { data: Buffer; metadata: Record<string, unknown> };
    try {
      opened = await this.#open(row, true);
    } catch (error) {
      // A row moved or altered in the database: audited, so tampering leaves a trace.
      await this.#log(actor, "retrieve", id, "failure", { owner, code: codeOf(error) });
      throw error;
    }
    await this.#log(actor, "retrieve", id, "success", { owner });
    return Object.freeze({
      id: row.id,
      owner: row.owner,
      type: row.type,
      data: opened.data,
      metadata: Object.freeze(opened.metadata),
      size: row.size,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    });
  }

  /** Decrypts a row's metadata, and its data when asked; `ERR_DECRYPT` when either was altered. */
  async #open(row: RecordsTable, withData: boolean): Promise<{ data: Buffer; metadata: Record<string, unknown> }> {
    const key = await this.#key(row);
    try {
      const data = withData ? openPart(key, row.data, recordAad(row.id, row.owner, row.type, "data")) : Buffer.alloc(0);
      const metadata = JSON.parse(
        openPart(key, row.metadata, recordAad(row.id, row.owner, row.type, "metadata")).toString("utf8"),
      ) as Record<string, unknown>;
      return { data, metadata };
    } finally {
      key.fill(0);
    }
  }

  /** Deletes a record of `owner`; false when there is none (another owner's included). */
  async delete(id: string, owner: string, actor: string = owner): Promise<boolean> {
    let deleted = false;
    if (typeof id === "string" && ID.test(id) && typeof owner === "string") {
      const result = await this.#store.db
        .deleteFrom("records")
        .where("id", "=", id)
        .where("owner", "=", owner)
        .executeTakeFirst();
      deleted = result.numDeletedRows > 0n;
    }
    await this.#log(actor, "delete", typeof id === "string" && ID.test(id) ? id : "", deleted ? "success" : "denied", {
      owner,
    });
    return deleted;
  }

  /** The records of `owner`, newest first, without their data (metadata decrypted). */
  async list(
    owner: string,
    options: { type?: string; limit?: number } = {},
    actor: string = owner,
  ): Promise<RecordInfo[]> {
    const limit = options.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 1000)
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "limit must be 1..1000");
    let q = this.#store.db.selectFrom("records").selectAll().where("owner", "=", owner);
    if (options.type !== undefined) q = q.where("type", "=", options.type);
    const rows = await q.orderBy("created_at", "desc").orderBy("id").limit(limit).execute();
    const out: RecordInfo[] = [];
    for (const row of rows) {
      let metadata: Record<string, unknown> = {};
      let code: string | undefined;
      try {
        metadata = (await this.#open(row, false)).metadata;
      } catch (error) {
        code = codeOf(error);
      }
      out.push(
        Object.freeze({
          id: row.id,
          type: row.type,
          metadata,
          size: row.size,
          createdAt: row.created_at,
          updatedAt: row.updated_at,
          ...(code === undefined ? {} : { damaged: code }),
        }),
      );
    }
    const damaged = out.filter((r) => r.damaged !== undefined).map((r) => r.id);
    await this.#log(
      actor,
      "list",
      "",
      damaged.length === 0 ? "success" : "failure",
      damaged.length === 0 ? { owner, count: out.length } : { owner, count: out.length, damaged },
    );
    return out;
  }

  /**
   * Re-encrypts one batch of records (ids after `cursor`, in id order) whose wrapping data key is
   * retired: a new record key, data and metadata sealed again, wrapped by the current data key. Each
   * record is rewritten only if unchanged since it was read. Returns the new cursor (undefined at the end).
   */
  async reencryptBatch(
    cursor: string,
    batch = 200,
  ): Promise<{ cursor: string | undefined; seen: number; rewritten: number }> {
    const rows = await this.#store.db
      .selectFrom("records")
      .selectAll()
      .where("id", ">", cursor)
      .orderBy("id")
      .limit(batch)
      .execute();
    const current = new Map<string, boolean>();
    let rewritten = 0;
    for (const row of rows) {
      if (!current.has(row.kid)) current.set(row.kid, await this.#keyring.isCurrentDataKey(row.kid));
      if (current.get(row.kid) === true) continue;
      const key = await this.#key(row);
      let data: Buffer;
      let metadata: Record<string, unknown>;
      try {
        data = openPart(key, row.data, recordAad(row.id, row.owner, row.type, "data"));
        metadata = JSON.parse(
          openPart(key, row.metadata, recordAad(row.id, row.owner, row.type, "metadata")).toString("utf8"),
        ) as Record<string, unknown>;
      } finally {
        key.fill(0);
      }
      const sealed = await this.#seal(row.id, row.owner, row.type, data, metadata);
      data.fill(0);
      const r = await this.#store.db
        .updateTable("records")
        .set({ ...sealed, updated_at: this.#now() })
        .where("id", "=", row.id)
        .where("wrapped_key", "=", row.wrapped_key)
        .executeTakeFirst();
      if (r.numUpdatedRows > 0n) rewritten++;
    }
    return { cursor: rows.length < batch ? undefined : rows.at(-1)?.id, seen: rows.length, rewritten };
  }

  /** How many records there are (for progress). */
  async count(): Promise<number> {
    const r = await this.#store.db
      .selectFrom("records")
      .select((eb) => eb.fn.countAll().as("n"))
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }
}
