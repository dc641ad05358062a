import {
  createHash,
  createPrivateKey,
  createSecretKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from "node:crypto";
import { sql } from "kysely";
import { AgentwallError } from "../errors.js";
import type { Store } from "../store/database.js";
import { AES_KEY_BYTES, IvSource, openAesGcm, sealAesGcm } from "./aead.js";
import { fromBase64Url } from "./encoding.js";
import type { MasterKey } from "./master-key.js";

/**
 * What an encrypted value belongs to. It is bound into the ciphertext as associated data, so a value
 * copied to another table, row or owner fails to decrypt.
 */
export interface Binding {
  readonly table: string;
  readonly row: string | number;
  readonly owner: string;
}

/** Purposes of data keys; each purpose has its own key per period. */
export type DataKeyPurpose = "audit" | "vault" | "records" | "keys" | "sessions";
/** Purposes of signing keys. */
export type SigningPurpose = "audit" | "sessions" | "ca";

const PURPOSE = /^[a-z]{1,16}$/;

/** How many encryptions a data key may perform, reserved by instances in blocks. */
export interface DataKeyLimits {
  /** Retire a data key before this many encryptions (random 96-bit IVs: NIST's bound is 2^32). */
  readonly useLimit: number;
  /** Encryptions one instance reserves at a time (one database write per block). */
  readonly reserveBlock: number;
}

/** 2^31 uses (half of NIST's 2^32 bound for random IVs), reserved 2^20 at a time. */
export const DATA_KEY_LIMITS: DataKeyLimits = Object.freeze({ useLimit: 2 ** 31, reserveBlock: 2 ** 20 });

/** How long an instance keeps using a current data key before checking it was not retired elsewhere. */
export const CURRENT_KEY_RECHECK_MS = 10_000;

function bindingBytes(binding: Binding, kid: string): Buffer {
  return Buffer.from(JSON.stringify(["agentwall/v1", binding.table, String(binding.row), binding.owner, kid]));
}

/** The period of a data key: one calendar month, UTC. */
export function keyPeriod(at: number): string {
  const d = new Date(at);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

/**
 * One unwrapped data key. `seal` output is `kid.base64url(iv || ciphertext || tag)`; the key id
 * travels with every ciphertext so old data stays readable after rotation.
 */
export class DataKey {
  readonly kid: string;
  readonly purpose: string;
  // A KeyObject: Node imports a raw key on every createCipheriv call, which cost ~1 µs per seal.
  readonly #key: KeyObject;
  readonly #ivs = new IvSource();
  /** Encryptions this instance has reserved in the database for this key and not yet used. */
  #budget = 0;

  constructor(kid: string, purpose: string, key: Buffer) {
    this.kid = kid;
    this.purpose = purpose;
    this.#key = createSecretKey(key);
    key.fill(0);
  }

  /** Reserved encryptions left (0 for a key loaded only to decrypt). */
  get budget(): number {
    return this.#budget;
  }

  /** @internal Called by the keyring after reserving `n` encryptions in the database. */
  addBudget(n: number): void {
    this.#budget += n;
  }

  /**
   * Encrypts, bound to `binding`. Fails closed with `ERR_DATA_KEY_EXHAUSTED` when no reserved
   * encryption is left: keys come from {@link Keyring.dataKey}, which reserves ahead.
   */
  seal(plaintext: Uint8Array, binding: Binding): string {
    if (this.#budget <= 0) {
      throw new AgentwallError("ERR_DATA_KEY_EXHAUSTED", `data key ${this.kid} has no reserved encryptions left`);
    }
    this.#budget--;
    return `${this.kid}.${sealAesGcm(this.#key, plaintext, bindingBytes(binding, this.kid), this.#ivs).toString("base64url")}`;
  }

  open(sealed: string, binding: Binding): Buffer {
    const dot = sealed.indexOf(".");
    if (dot <= 0 || sealed.slice(0, dot) !== this.kid) throw new AgentwallError("ERR_DECRYPT", "decryption failed");
    let body: Buffer;
    try {
      body = fromBase64Url(sealed.slice(dot + 1));
    } catch {
      throw new AgentwallError("ERR_DECRYPT", "decryption failed");
    }
    return openAesGcm(this.#key, body, bindingBytes(binding, this.kid));
  }
}

/** A signing key pair (Ed25519) shared by all instances through the database. */
export interface SigningKey {
  readonly kid: string;
  readonly purpose: string;
  readonly alg: "EdDSA";
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject;
}

/** Splits `kid.body` and returns the kid, or undefined when the text has no kid. */
export function sealedKeyId(sealed: string): string | undefined {
  const dot = sealed.indexOf(".");
  return dot > 0 ? sealed.slice(0, dot) : undefined;
}

/**
 * The key hierarchy: master keys (given from outside the data) wrap per-purpose, per-period data keys
 * and the signing keys; everything wrapped lives in the database so every instance shares it.
 *
 * @example
 * ```ts
 * const keyring = await Keyring.open(store, { current: parseMasterKey(env, "AGENTWALL_MASTER_KEY") });
 * const sealed = await keyring.seal("records", Buffer.from("x"), { table: "records", row: 7, owner: "alice" });
 * ```
 */
export class Keyring {
  readonly #store: Store;
  readonly #masters: ReadonlyMap<string, MasterKey>;
  readonly #current: MasterKey;
  readonly #now: () => number;
  readonly #byKid = new Map<string, DataKey>();
  readonly #currentByPeriod = new Map<string, { key: DataKey; checkedAt: number }>();
  readonly #limits: DataKeyLimits;
  readonly #signing = new Map<string, SigningKey>();
  readonly #signingByPurpose = new Map<string, SigningKey>();

  private constructor(
    store: Store,
    masters: Map<string, MasterKey>,
    current: MasterKey,
    now: () => number,
    limits: DataKeyLimits,
  ) {
    this.#store = store;
    this.#masters = masters;
    this.#current = current;
    this.#now = now;
    this.#limits = limits;
  }

  /** The id of the master key new data keys are wrapped with. */
  get masterKeyId(): string {
    return this.#current.id;
  }

  /**
   * Checks the given master keys against the key-check values in the database and registers the
   * current key when the database is new, or when the previous key is given (a rotation). Throws
   * `ERR_MASTER_KEY_MISMATCH` for a key this database does not know.
   */
  static async open(
    store: Store,
    keys: { current: MasterKey; previous?: readonly MasterKey[] },
    options: { now?: () => number; limits?: Partial<DataKeyLimits> } = {},
  ): Promise<Keyring> {
    const now = options.now ?? Date.now;
    const limits = { ...DATA_KEY_LIMITS, ...options.limits };
    const db = store.db;
    const registered = await db.selectFrom("master_keys").selectAll().orderBy("ordinal").execute();
    const known = new Map(registered.map((r) => [r.id, r]));
    const given = [keys.current, ...(keys.previous ?? [])];
    const accepted = new Map<string, MasterKey>();
    for (const key of given) {
      const row = known.get(key.id);
      if (row !== undefined && row.kcv === key.kcv) accepted.set(key.id, key);
      else if (row !== undefined) {
        throw new AgentwallError("ERR_MASTER_KEY_MISMATCH", `master key ${key.id} fails its key-check value`);
      }
    }
    if (!accepted.has(keys.current.id)) {
      if (registered.length === 0) {
        if (await holdsWrappedData(store)) {
          throw new AgentwallError(
            "ERR_MASTER_KEY_MISMATCH",
            "the database holds encrypted data but no registered master key",
          );
        }
        // Ordinal 1 is unique: when two instances with different keys start on an empty database,
        // exactly one registers and the other re-reads and refuses.
        await db
          .insertInto("master_keys")
          .values({ id: keys.current.id, ordinal: 1, kcv: keys.current.kcv, created_at: now(), retired_at: null })
          .onConflict((oc) => oc.doNothing())
          .execute();
        return Keyring.open(store, keys, options);
      }
      if (accepted.size === 0) {
        throw new AgentwallError(
          "ERR_MASTER_KEY_MISMATCH",
          `master key ${keys.current.id} is not the key of this database (registered: ${registered
            .map((r) => r.id)
            .join(", ")})`,
        );
      }
      // A rotation: the previous key proves access, so the new key is registered beside it.
      const ordinal = Math.max(...registered.map((r) => r.ordinal)) + 1;
      await db
        .insertInto("master_keys")
        .values({ id: keys.current.id, ordinal, kcv: keys.current.kcv, created_at: now(), retired_at: null })
        .onConflict((oc) => oc.doNothing())
        .execute();
      return Keyring.open(store, keys, options);
    }
    if (known.get(keys.current.id)?.retired_at != null) {
      throw new AgentwallError(
        "ERR_MASTER_KEY_RETIRED",
        `master key ${keys.current.id} was retired by a rotation; give the key that replaced it`,
      );
    }
    return new Keyring(store, accepted, keys.current, now, limits);
  }

  /**
   * The current data key of a purpose for the period containing `at`, created on first use, with
   * encryptions reserved for this instance. A key whose reservations reach the use limit is retired and
   * the next generation takes over; a retired key (a rotation on any instance) is noticed within
   * {@link CURRENT_KEY_RECHECK_MS}.
   */
  async dataKey(purpose: DataKeyPurpose, at: number = this.#now()): Promise<DataKey> {
    if (!PURPOSE.test(purpose)) throw new AgentwallError("ERR_INVALID_ARGUMENT", "invalid data key purpose");
    const period = keyPeriod(at);
    const cacheKey = `${purpose}|${period}`;
    const now = this.#now();
    const cached = this.#currentByPeriod.get(cacheKey);
    const lowWater = Math.ceil(this.#limits.reserveBlock / 16);
    if (cached !== undefined && cached.key.budget >= lowWater && now - cached.checkedAt < CURRENT_KEY_RECHECK_MS) {
      return cached.key;
    }
    const db = this.#store.db;
    for (let attempt = 0; attempt < 8; attempt++) {
      const row = await db
        .selectFrom("data_keys")
        .selectAll()
        .where("purpose", "=", purpose)
        .where("period", "=", period)
        .where("retired_at", "is", null)
        .orderBy("generation", "desc")
        .limit(1)
        .executeTakeFirst();
      if (row === undefined) {
        await this.#createDataKey(purpose, period);
        continue;
      }
      const key = cached?.key.kid === row.kid ? cached.key : this.#unwrapDataKey(row);
      if (key.budget < lowWater) {
        const block = this.#limits.reserveBlock;
        const reserved = await db
          .updateTable("data_keys")
          .set((eb) => ({ uses: eb("uses", "+", block) }))
          .where("kid", "=", row.kid)
          .where("retired_at", "is", null)
          .where("uses", "<=", this.#limits.useLimit - block)
          .executeTakeFirst();
        if (reserved.numUpdatedRows === 0n) {
          // Used up (or retired meanwhile): retire it and move to the next generation.
          await db
            .updateTable("data_keys")
            .set({ retired_at: now })
            .where("kid", "=", row.kid)
            .where("retired_at", "is", null)
            .execute();
          continue;
        }
        key.addBudget(block);
      }
      this.#currentByPeriod.set(cacheKey, { key, checkedAt: now });
      return key;
    }
    throw new AgentwallError("ERR_DATA_KEY_EXHAUSTED", `no usable data key for ${purpose} ${period}`);
  }

  async #createDataKey(purpose: string, period: string): Promise<void> {
    const key = randomBytes(AES_KEY_BYTES);
    // The generation is read from the table by the insert itself: the next generation, only while no
    // key of the purpose and period is active. One statement sees one snapshot, so an instance cannot
    // add a generation beside a key another instance has just created; two instances racing to create
    // the same generation meet the unique (purpose, period, generation) index and one insert is dropped.
    const kid = `dk-${purpose}-${period}-${randomBytes(6).toString("hex")}`;
    const wrapped = this.#wrap(key, wrapBinding("data_keys", kid, purpose, period));
    key.fill(0);
    await sql`
      insert into data_keys (kid, purpose, period, generation, master_key_id, wrapped, created_at, retired_at, uses)
      select ${kid}, ${purpose}, ${period}, coalesce(max(generation), 0) + 1, ${this.#current.id}, ${wrapped},
             ${this.#now()}, null, 0
      from data_keys
      where purpose = ${purpose} and period = ${period}
      having not exists (
        select 1 from data_keys where purpose = ${purpose} and period = ${period} and retired_at is null
      )
      on conflict do nothing`.execute(this.#store.db);
  }

  /**
   * Retires every active data key of `purpose` (all periods): new encryptions get a new generation on
   * every instance within {@link CURRENT_KEY_RECHECK_MS}; old ciphertexts stay readable. Returns how many
   * keys were retired.
   */
  async rotateDataKeys(purpose: DataKeyPurpose): Promise<number> {
    if (!PURPOSE.test(purpose)) throw new AgentwallError("ERR_INVALID_ARGUMENT", "invalid data key purpose");
    const result = await this.#store.db
      .updateTable("data_keys")
      .set({ retired_at: this.#now() })
      .where("purpose", "=", purpose)
      .where("retired_at", "is", null)
      .executeTakeFirst();
    for (const k of [...this.#currentByPeriod.keys()]) if (k.startsWith(`${purpose}|`)) this.#currentByPeriod.delete(k);
    return Number(result.numUpdatedRows);
  }

  /** Whether a data key id is the current (unretired) key of its purpose and period. */
  async isCurrentDataKey(kid: string): Promise<boolean> {
    const row = await this.#store.db
      .selectFrom("data_keys")
      .select("retired_at")
      .where("kid", "=", kid)
      .executeTakeFirst();
    return row !== undefined && row.retired_at === null;
  }

  /**
   * Re-wraps every data key and signing key wrapped by another master key under the current one. Safe
   * to interrupt and run again: each key is re-wrapped in its own statement, only if still wrapped by
   * the old key. Needs the old master keys (given as previous). `onProgress(done, total)`.
   */
  async rewrapAll(
    onProgress?: (done: number, total: number) => void,
  ): Promise<{ dataKeys: number; signingKeys: number }> {
    const db = this.#store.db;
    const current = this.#current.id;
    const dataRows = await db.selectFrom("data_keys").selectAll().where("master_key_id", "!=", current).execute();
    const signingRows = await db.selectFrom("signing_keys").selectAll().where("master_key_id", "!=", current).execute();
    const total = dataRows.length + signingRows.length;
    let done = 0;
    onProgress?.(0, total);
    for (const row of dataRows) {
      const aad = wrapBinding("data_keys", row.kid, row.purpose, row.period);
      const secret = this.#unwrap(row.master_key_id, row.wrapped, aad, `data key ${row.kid}`);
      await db
        .updateTable("data_keys")
        .set({ wrapped: this.#wrap(secret, aad), master_key_id: current })
        .where("kid", "=", row.kid)
        .where("master_key_id", "=", row.master_key_id)
        .execute();
      secret.fill(0);
      onProgress?.(++done, total);
    }
    for (const row of signingRows) {
      const aad = wrapBinding("signing_keys", row.kid, row.purpose, row.public_key);
      const secret = this.#unwrap(row.master_key_id, row.private_sealed, aad, `signing key ${row.kid}`);
      await db
        .updateTable("signing_keys")
        .set({ private_sealed: this.#wrap(secret, aad), master_key_id: current })
        .where("kid", "=", row.kid)
        .where("master_key_id", "=", row.master_key_id)
        .execute();
      secret.fill(0);
      onProgress?.(++done, total);
    }
    return { dataKeys: dataRows.length, signingKeys: signingRows.length };
  }

  /**
   * Ends a master-key rotation: marks every other master key retired, after checking that no key is
   * still wrapped by one (`ERR_ROTATION_INCOMPLETE` otherwise: run {@link rewrapAll} first). A retired
   * key is refused as the current key from then on. Returns the ids retired.
   */
  async retireOtherMasterKeys(): Promise<string[]> {
    const db = this.#store.db;
    const current = this.#current.id;
    const left =
      (await db
        .selectFrom("data_keys")
        .select("kid")
        .where("master_key_id", "!=", current)
        .limit(1)
        .executeTakeFirst()) ??
      (await db
        .selectFrom("signing_keys")
        .select("kid")
        .where("master_key_id", "!=", current)
        .limit(1)
        .executeTakeFirst());
    if (left !== undefined) {
      throw new AgentwallError(
        "ERR_ROTATION_INCOMPLETE",
        `key ${left.kid} is still wrapped by an older master key; re-wrap first`,
      );
    }
    const others = await db
      .selectFrom("master_keys")
      .select("id")
      .where("id", "!=", current)
      .where("retired_at", "is", null)
      .execute();
    if (others.length > 0) {
      await db
        .updateTable("master_keys")
        .set({ retired_at: this.#now() })
        .where("id", "!=", current)
        .where("retired_at", "is", null)
        .execute();
    }
    return others.map((o) => o.id);
  }

  /** The registered master keys and how many keys each wraps. */
  async masterKeyStatus(): Promise<Array<{ id: string; current: boolean; retiredAt: number | null; wraps: number }>> {
    const db = this.#store.db;
    const masters = await db.selectFrom("master_keys").selectAll().orderBy("ordinal").execute();
    const out = [];
    for (const m of masters) {
      const d = await db
        .selectFrom("data_keys")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("master_key_id", "=", m.id)
        .executeTakeFirst();
      const g = await db
        .selectFrom("signing_keys")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("master_key_id", "=", m.id)
        .executeTakeFirst();
      out.push({
        id: m.id,
        current: m.id === this.#current.id,
        retiredAt: m.retired_at,
        wraps: Number(d?.n ?? 0) + Number(g?.n ?? 0),
      });
    }
    return out;
  }

  /** A data key by id, for decryption. */
  async dataKeyById(kid: string): Promise<DataKey> {
    const cached = this.#byKid.get(kid);
    if (cached !== undefined) return cached;
    const row = await this.#store.db.selectFrom("data_keys").selectAll().where("kid", "=", kid).executeTakeFirst();
    if (row === undefined) throw new AgentwallError("ERR_DATA_KEY_UNKNOWN", `data key ${kid} is unknown`);
    return this.#unwrapDataKey(row);
  }

  /** Encrypts `plaintext` with the current data key of `purpose`, bound to `binding`. */
  async seal(purpose: DataKeyPurpose, plaintext: Uint8Array, binding: Binding): Promise<string> {
    return (await this.dataKey(purpose)).seal(plaintext, binding);
  }

  /** Decrypts a value made by {@link seal}; any mismatch is `ERR_DECRYPT`. */
  async open(sealed: string, binding: Binding): Promise<Buffer> {
    const kid = sealedKeyId(sealed);
    if (kid === undefined) throw new AgentwallError("ERR_DECRYPT", "decryption failed");
    return (await this.dataKeyById(kid)).open(sealed, binding);
  }

  /** The active signing key of a purpose, generated once and shared through the database. */
  async signingKey(purpose: SigningPurpose): Promise<SigningKey> {
    const cached = this.#signingByPurpose.get(purpose);
    if (cached !== undefined) return cached;
    const db = this.#store.db;
    const find = () =>
      db
        .selectFrom("signing_keys")
        .selectAll()
        .where("purpose", "=", purpose)
        .where("retired_at", "is", null)
        .orderBy("generation", "desc")
        .limit(1)
        .executeTakeFirst();
    let row = await find();
    if (row === undefined) {
      const { publicKey, privateKey } = generateKeyPairSync("ed25519");
      const spki = publicKey.export({ format: "der", type: "spki" });
      const kid = `sk-${purpose}-${createHash("sha256").update(spki).digest("base64url").slice(0, 16)}`;
      const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
      const publicText = spki.toString("base64url");
      await db
        .insertInto("signing_keys")
        .values({
          kid,
          purpose,
          generation: 1,
          alg: "EdDSA",
          public_key: publicText,
          private_sealed: this.#wrap(pkcs8, wrapBinding("signing_keys", kid, purpose, publicText)),
          master_key_id: this.#current.id,
          created_at: this.#now(),
          retired_at: null,
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
      row = await find();
      if (row === undefined) throw new AgentwallError("ERR_SIGNING_KEY_UNKNOWN", `signing key for ${purpose} vanished`);
    }
    const key = this.#unwrapSigningKey(row);
    this.#signingByPurpose.set(purpose, key);
    return key;
  }

  /**
   * A signing key by id. The public key is taken from the decrypted private key, never from the
   * clear column alone: someone who can write the database but lacks the master key cannot swap in a
   * key of their own.
   */
  async signingKeyById(kid: string): Promise<SigningKey> {
    const cached = this.#signing.get(kid);
    if (cached !== undefined) return cached;
    const row = await this.#store.db.selectFrom("signing_keys").selectAll().where("kid", "=", kid).executeTakeFirst();
    if (row === undefined) throw new AgentwallError("ERR_SIGNING_KEY_UNKNOWN", `signing key ${kid} is unknown`);
    return this.#unwrapSigningKey(row);
  }

  #wrap(secret: Uint8Array, aad: Buffer): string {
    return sealAesGcm(this.#current.kek, secret, aad).toString("base64url");
  }

  #unwrap(masterKeyId: string, wrapped: string, aad: Buffer, what: string): Buffer {
    const master = this.#masters.get(masterKeyId);
    if (master === undefined) {
      throw new AgentwallError(
        "ERR_MASTER_KEY_MISSING",
        `${what} is wrapped by master key ${masterKeyId}, which was not given`,
      );
    }
    try {
      return openAesGcm(master.kek, fromBase64Url(wrapped), aad);
    } catch {
      throw new AgentwallError("ERR_DECRYPT", `${what} failed to unwrap`);
    }
  }

  #unwrapDataKey(row: {
    kid: string;
    purpose: string;
    period: string;
    master_key_id: string;
    wrapped: string;
  }): DataKey {
    const key = this.#unwrap(
      row.master_key_id,
      row.wrapped,
      wrapBinding("data_keys", row.kid, row.purpose, row.period),
      `data key ${row.kid}`,
    );
    const dataKey = new DataKey(row.kid, row.purpose, key);
    this.#byKid.set(row.kid, dataKey);
    return dataKey;
  }

  #unwrapSigningKey(row: {
    kid: string;
    purpose: string;
    public_key: string;
    private_sealed: string;
    master_key_id: string;
  }): SigningKey {
    const pkcs8 = this.#unwrap(
      row.master_key_id,
      row.private_sealed,
      wrapBinding("signing_keys", row.kid, row.purpose, row.public_key),
      `signing key ${row.kid}`,
    );
    const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
    const publicKey = createPublicKey(privateKey);
    const key: SigningKey = Object.freeze({ kid: row.kid, purpose: row.purpose, alg: "EdDSA", publicKey, privateKey });
    this.#signing.set(row.kid, key);
    return key;
  }
}

function wrapBinding(table: string, kid: string, purpose: string, extra: string): Buffer {
  return Buffer.from(JSON.stringify(["agentwall/wrap/v1", table, kid, purpose, extra]));
}

async function holdsWrappedData(store: Store): Promise<boolean> {
  const db = store.db;
  const dk = await db.selectFrom("data_keys").select("kid").limit(1).executeTakeFirst();
  if (dk !== undefined) return true;
  const sk = await db.selectFrom("signing_keys").select("kid").limit(1).executeTakeFirst();
  return sk !== undefined;
}
