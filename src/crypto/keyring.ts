import {
  createHash,
  createPrivateKey,
  createSecretKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  type KeyObject,
} from "node:crypto";
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

  constructor(kid: string, purpose: string, key: Buffer) {
    this.kid = kid;
    this.purpose = purpose;
    this.#key = createSecretKey(key);
    key.fill(0);
  }

  seal(plaintext: Uint8Array, binding: Binding): string {
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
  readonly #currentByPeriod = new Map<string, DataKey>();
  readonly #signing = new Map<string, SigningKey>();
  readonly #signingByPurpose = new Map<string, SigningKey>();

  private constructor(store: Store, masters: Map<string, MasterKey>, current: MasterKey, now: () => number) {
    this.#store = store;
    this.#masters = masters;
    this.#current = current;
    this.#now = now;
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
    options: { now?: () => number } = {},
  ): Promise<Keyring> {
    const now = options.now ?? Date.now;
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
    return new Keyring(store, accepted, keys.current, now);
  }

  /** The current data key of a purpose for the period containing `at`, created on first use. */
  async dataKey(purpose: DataKeyPurpose, at: number = this.#now()): Promise<DataKey> {
    if (!PURPOSE.test(purpose)) throw new AgentwallError("ERR_INVALID_ARGUMENT", "invalid data key purpose");
    const period = keyPeriod(at);
    const cacheKey = `${purpose}|${period}`;
    const cached = this.#currentByPeriod.get(cacheKey);
    if (cached !== undefined) return cached;
    const db = this.#store.db;
    const find = () =>
      db
        .selectFrom("data_keys")
        .selectAll()
        .where("purpose", "=", purpose)
        .where("period", "=", period)
        .where("retired_at", "is", null)
        .orderBy("generation", "desc")
        .limit(1)
        .executeTakeFirst();
    let row = await find();
    if (row === undefined) {
      const kid = `dk-${purpose}-${period}-1-${randomBytes(4).toString("hex")}`;
      const key = randomBytes(AES_KEY_BYTES);
      await db
        .insertInto("data_keys")
        .values({
          kid,
          purpose,
          period,
          generation: 1,
          master_key_id: this.#current.id,
          wrapped: this.#wrap(key, wrapBinding("data_keys", kid, purpose, period)),
          created_at: this.#now(),
          retired_at: null,
        })
        .onConflict((oc) => oc.doNothing())
        .execute();
      row = await find();
      if (row === undefined) throw new AgentwallError("ERR_DATA_KEY_UNKNOWN", `data key for ${purpose} vanished`);
    }
    const dataKey = this.#unwrapDataKey(row);
    this.#currentByPeriod.set(cacheKey, dataKey);
    return dataKey;
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
