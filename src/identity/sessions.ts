import { createHash, randomBytes, type KeyObject } from "node:crypto";
import { SignJWT, decodeProtectedHeader } from "jose";
import { AgentwallError } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import type { Keyring, SigningKey } from "../crypto/keyring.js";
import type { Store } from "../store/database.js";
import type { SessionsTable } from "../store/schema.js";
import { bumpCounter } from "../store/counters.js";
import { writeTransaction } from "../store/transaction.js";
import { creatorChainActive } from "./api-keys.js";
import { verifyJwtStrict, type JwtFailure } from "./jwt.js";
import type { RevocationBus } from "./revocation.js";
import { RevocationCache } from "./revocation-cache.js";

/** An active session as listed (never the token). */
export interface SessionRecord {
  readonly jti: string;
  readonly subject: string;
  readonly roles: readonly string[];
  readonly creator: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly revokedAt: number | null;
}

export type SessionVerification =
  | { readonly valid: true; readonly session: SessionRecord }
  | {
      readonly valid: false;
      readonly result: "INVALID" | "EXPIRED" | "REVOKED" | "NOT_FOUND";
      readonly failure?: JwtFailure;
      readonly jti?: string;
    };

export interface SessionsOptions {
  readonly store: Store;
  readonly keyring: Keyring;
  readonly audit: AuditSink;
  /** `iss` of agentwall's own tokens. Default `agentwall`. */
  readonly issuer?: string;
  /** `aud` of agentwall's own tokens. Default `agentwall`. */
  readonly audience?: string;
  /** Lifetime of a session. Default 15 minutes, at most 24 hours. */
  readonly ttlMs?: number;
  /**
   * Sign with HS256 and this secret instead of the shared Ed25519 key (for verifiers that only speak
   * HS256). At least 32 bytes; there is no default secret.
   */
  readonly hs256Secret?: Uint8Array;
  readonly now?: () => number;
  /**
   * Verification cache: 0 (default) reads the session's row and its creator chain on every
   * verification; up to {@link MAX_KEY_CACHE_MS} keeps sessions that verified in memory, trusted while the
   * shared revocation counter holds (reread at most that often), so a revocation made on another
   * instance holds within that time (at once with a revocation bus). The token's signature and claims
   * are checked on every call.
   */
  readonly cacheMs?: number;
  /** Most sessions held in the cache (default 10,000; the oldest entry makes room). */
  readonly cacheEntries?: number;
  readonly revocations?: RevocationBus;
}

const TYP = "JWT";
const MAX_TTL_MS = 24 * 3_600_000;
const SUBJECT = /^[\p{L}\p{N} _.:@/-]{1,100}$/u;

function parseRoles(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/**
 * Short-lived session JWTs signed with the shared Ed25519 key of the key hierarchy (`kid` in the
 * header), verified strictly with jose, tracked in the database so one session, all of a subject's, or
 * all made from a revoked API key end at once. No secret is configured or defaulted: the signing key is
 * generated once and shared by every instance through the database.
 *
 * @example
 * ```ts
 * const sessions = new Sessions({ store, keyring, audit });
 * const { token } = await sessions.issue({ subject: "alice", roles: ["user"], creator: "key:abc" });
 * (await sessions.verify(token)).valid; // true
 * ```
 */
/**
 * Whether the credential `credentialId` names (`key:<id>`, `session:<jti>`, `oidc:<issuer>`) may be
 * exchanged for a session: an API key only. A session minting the next one would live past its own
 * expiry for ever and out of reach of its revocation; an OIDC token's session would outlive the token.
 * The gateway's `POST /v1/sessions` and the authentication agent's `session` operation both ask this.
 */
export function mintsSessions(credentialId: string): boolean {
  return credentialId.startsWith("key:");
}

export class Sessions {
  readonly issuer: string;
  readonly audience: string;
  readonly #store: Store;
  readonly #keyring: Keyring;
  readonly #audit: AuditSink;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #hs256: { secret: Uint8Array; kid: string } | undefined;
  /** Sessions that verified (row and creator chain), by jti. */
  readonly #cache: RevocationCache<{ row: SessionsTable; record: SessionRecord }>;

  constructor(options: SessionsOptions) {
    const ttl = options.ttlMs ?? 15 * 60_000;
    if (!Number.isSafeInteger(ttl) || ttl < 1000 || ttl > MAX_TTL_MS) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "session ttlMs must be between 1 s and 24 h");
    }
    this.#store = options.store;
    this.#keyring = options.keyring;
    this.#audit = options.audit;
    this.#ttlMs = ttl;
    this.#now = options.now ?? Date.now;
    if (options.hs256Secret !== undefined) {
      if (options.hs256Secret.length < 32) {
        throw new AgentwallError(
          "ERR_CONFIG_INVALID",
          "config field AGENTWALL_SESSION_SECRET: an HS256 secret needs at least 32 bytes",
        );
      }
      const kid = `hs-${createHash("sha256").update(options.hs256Secret).digest("base64url").slice(0, 12)}`;
      this.#hs256 = { secret: Uint8Array.from(options.hs256Secret), kid };
    }
    this.issuer = options.issuer ?? "agentwall";
    this.audience = options.audience ?? "agentwall";
    this.#cache = new RevocationCache(options.store, {
      ms: options.cacheMs,
      max: options.cacheEntries,
      bus: options.revocations,
    });
  }

  /** Issues a session for an authenticated subject. The token is returned once and never stored. */
  async issue(input: {
    subject: string;
    roles: readonly string[];
    creator: string;
    ttlMs?: number;
    ip?: string;
    userAgent?: string;
  }): Promise<{ token: string; jti: string; expiresAt: number }> {
    if (typeof input.subject !== "string" || !SUBJECT.test(input.subject)) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "subject must be 1..100 name characters");
    }
    const ttl = Math.min(input.ttlMs ?? this.#ttlMs, this.#ttlMs);
    const now = this.#now();
    const iat = Math.floor(now / 1000);
    const expiresAt = (iat + Math.ceil(ttl / 1000)) * 1000;
    const jti = randomBytes(16).toString("base64url");
    const hs = this.#hs256;
    const key = hs === undefined ? await this.#keyring.signingKey("sessions") : undefined;
    const kid = hs?.kid ?? (key as SigningKey).kid;
    const token = await new SignJWT({ roles: [...input.roles] })
      .setProtectedHeader({ alg: hs === undefined ? "EdDSA" : "HS256", typ: TYP, kid })
      .setIssuer(this.issuer)
      .setAudience(this.audience)
      .setSubject(input.subject)
      .setJti(jti)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(expiresAt / 1000)
      .sign(hs?.secret ?? (key as SigningKey).privateKey);
    await this.#store.db
      .insertInto("sessions")
      .values({
        jti,
        subject: input.subject,
        roles: JSON.stringify(input.roles),
        creator: input.creator,
        kid,
        created_at: now,
        expires_at: expiresAt,
        revoked_at: null,
        ip: input.ip ?? "",
        user_agent: (input.userAgent ?? "").slice(0, 512),
      })
      .execute();
    await this.#audit.append({
      type: "session_created",
      actor: input.creator,
      action: "session.create",
      resource: `session:${jti}`,
      outcome: "success",
      ip: input.ip,
      userAgent: input.userAgent,
      details: { subject: input.subject, roles: input.roles, expiresAt },
    });
    return { token, jti, expiresAt };
  }

  /**
   * Verifies a session token: signature with the key its `kid` names (a `sessions` key of this
   * database only), strict claims, then the session's row — revoked, unknown, or made from a credential
   * that has since been revoked means invalid. Never throws for a bad token.
   */
  async verify(token: string): Promise<SessionVerification> {
    let kid: unknown;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return { valid: false, result: "INVALID", failure: "MALFORMED" };
    }
    // Only the configured method verifies: with an HS256 secret, only HS256 tokens under its kid; without
    // one, only EdDSA tokens signed by a sessions key of this database.
    const hs = this.#hs256;
    if (typeof kid !== "string" || (hs === undefined ? !kid.startsWith("sk-sessions-") : kid !== hs.kid)) {
      return { valid: false, result: "INVALID", failure: "SIGNATURE" };
    }
    let publicKey: KeyObject | Uint8Array | undefined = hs?.secret;
    if (hs === undefined) {
      try {
        const key = await this.#keyring.signingKeyById(kid);
        if (key.purpose !== "sessions") return { valid: false, result: "INVALID", failure: "SIGNATURE" };
        publicKey = key.publicKey;
      } catch (error) {
        if (error instanceof AgentwallError && error.code === "ERR_SIGNING_KEY_UNKNOWN") {
          return { valid: false, result: "INVALID", failure: "SIGNATURE" };
        }
        throw error;
      }
    }
    const checked = await verifyJwtStrict(token, publicKey as KeyObject | Uint8Array, {
      algorithms: [hs === undefined ? "EdDSA" : "HS256"],
      issuer: this.issuer,
      audience: this.audience,
      typ: TYP,
      requiredClaims: ["jti", "nbf"],
      maxTokenAgeSeconds: Math.ceil(MAX_TTL_MS / 1000),
      clockToleranceSeconds: 30,
      now: this.#now,
    });
    if (!checked.valid) {
      return { valid: false, result: checked.failure === "EXPIRED" ? "EXPIRED" : "INVALID", failure: checked.failure };
    }
    const jti = checked.payload.jti as string;
    const now = this.#now();
    // A cache hit means this session's row and creator chain passed the checks below within cacheMs,
    // with no revocation since; the subject, key and expiry are compared again.
    const cached = await this.#cache.get(jti, now);
    if (cached !== undefined) {
      const { row } = cached;
      if (row.subject !== checked.payload.sub || row.kid !== kid) return { valid: false, result: "NOT_FOUND", jti };
      if (row.expires_at <= now) return { valid: false, result: "EXPIRED", jti };
      return { valid: true, session: cached.record };
    }
    const generation = this.#cache.generation;
    const row = await this.#store.db.selectFrom("sessions").selectAll().where("jti", "=", jti).executeTakeFirst();
    if (row === undefined || row.subject !== checked.payload.sub || row.kid !== kid) {
      return { valid: false, result: "NOT_FOUND", jti };
    }
    if (row.revoked_at !== null) return { valid: false, result: "REVOKED", jti };
    if (row.expires_at <= now) return { valid: false, result: "EXPIRED", jti };
    if (!(await creatorChainActive(this.#store, row.creator))) return { valid: false, result: "REVOKED", jti };
    const record = toRecord(row);
    this.#cache.remember(jti, { row, record }, generation);
    return { valid: true, session: record };
  }

  /** Ends one session. Returns false when it was unknown or already ended. */
  async revoke(jti: string, actor: string): Promise<boolean> {
    const updated = await this.#revokeWhere("jti", jti, this.#now());
    const revoked = updated > 0;
    await this.#audit.append({
      type: "session_revoked",
      actor,
      action: "session.revoke",
      resource: `session:${jti}`,
      outcome: revoked ? "success" : "failure",
    });
    return revoked;
  }

  /** Ends every session of a subject; returns how many. */
  async revokeSubject(subject: string, actor: string): Promise<number> {
    const count = await this.#revokeWhere("subject", subject, this.#now());
    await this.#audit.append({
      type: "session_revoked",
      actor,
      action: "session.revoke_subject",
      resource: `subject:${subject}`,
      outcome: "success",
      details: { count },
    });
    return count;
  }

  /**
   * Ends the live sessions matching one column and bumps the shared revocation counter in the same
   * transaction, then drops this instance's cache and tells the others.
   */
  async #revokeWhere(column: "jti" | "subject", value: string, now: number): Promise<number> {
    const count = await writeTransaction(this.#store, async (trx) => {
      let q = trx
        .updateTable("sessions")
        .set({ revoked_at: now })
        .where(column, "=", value)
        .where("revoked_at", "is", null);
      // A subject's expired sessions are left as they are; one named session is ended whatever its expiry.
      if (column === "subject") q = q.where("expires_at", ">", now);
      const result = await q.executeTakeFirst();
      await bumpCounter(trx, "revocations");
      return Number(result.numUpdatedRows);
    });
    await this.#cache.revoked(`session-${column}:${value}`);
    return count;
  }

  /** Active (unexpired, unrevoked) sessions, optionally of one subject, newest first. */
  async listActive(subject?: string): Promise<SessionRecord[]> {
    let q = this.#store.db
      .selectFrom("sessions")
      .selectAll()
      .where("revoked_at", "is", null)
      .where("expires_at", ">", this.#now());
    if (subject !== undefined) q = q.where("subject", "=", subject);
    return (await q.orderBy("created_at", "desc").limit(1000).execute()).map(toRecord);
  }
}

function toRecord(row: {
  jti: string;
  subject: string;
  roles: string;
  creator: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}): SessionRecord {
  return Object.freeze({
    jti: row.jti,
    subject: row.subject,
    roles: Object.freeze(parseRoles(row.roles)),
    creator: row.creator,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  });
}
