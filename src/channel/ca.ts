import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import {
  X509Certificate,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  webcrypto,
  type KeyObject,
} from "node:crypto";
import { AgentwallError } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import type { Keyring, SigningKey } from "../crypto/keyring.js";
import type { Store } from "../store/database.js";
import { writeTransaction } from "../store/transaction.js";
import { bumpCounter, readCounter } from "../store/counters.js";
import type { CertificatesTable } from "../store/schema.js";

const ED25519 = { name: "Ed25519" } as const;
const ROOT_SUBJECT = "agentwall-ca";
const HOUR = 3_600_000;
/** Agent ids: what a certificate, an RBAC resource (`agent:<id>`) and a file name can all carry. */
const AGENT_ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const SAN_PREFIX = "urn:agentwall:agent:";
const CRL_VALIDITY_MS = 24 * HOUR;
/** A cached CRL is rebuilt after this long even without a revocation, so its next update stays far. */
const CRL_REFRESH_MS = HOUR;

export const REVOCATION_REASONS = [
  "unspecified",
  "keyCompromise",
  "affiliationChanged",
  "superseded",
  "cessationOfOperation",
] as const;
export type RevocationReason = (typeof REVOCATION_REASONS)[number];

/** What the CA tells about one certificate (never a private key). */
export interface CertificateInfo {
  readonly serial: string;
  readonly kind: "ca" | "agent";
  readonly agentId: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly issuedAt: number;
  readonly revokedAt: number | null;
  readonly revocationReason: string | null;
  readonly certificatePem: string;
}

/** An issued certificate; `privateKeyPem` only when the CA generated the key (it keeps no copy). */
export interface IssuedCertificate extends CertificateInfo {
  readonly privateKeyPem?: string;
}

/** Decides whether a peer's certificate is a live agent certificate, and whose it is. */
export interface PeerVerifier {
  /** The PEM of the CA the peers' certificates chain to. */
  readonly caCertificatePem: string;
  /** The agent id of a certificate valid now and not revoked; throws `ERR_CERT_*` otherwise. */
  verifyPeer(certificate: X509Certificate): Promise<string>;
}

/** Checks a certificate claims to be an agent certificate of `ca`: issuer, signature, time, key, usage. */
export function agentIdOf(certificate: X509Certificate, ca: X509Certificate, now: number): string {
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey))
    throw new AgentwallError("ERR_CERT_INVALID", "the certificate was not issued by this CA");
  if (certificate.ca) throw new AgentwallError("ERR_CERT_INVALID", "a CA certificate is not an agent certificate");
  if (Date.parse(certificate.validFrom) > now || Date.parse(certificate.validTo) < now)
    throw new AgentwallError("ERR_CERT_INVALID", "the certificate is outside its validity period");
  if (certificate.publicKey.asymmetricKeyType !== "ed25519")
    throw new AgentwallError("ERR_CERT_INVALID", "agent certificates carry Ed25519 keys");
  const san = certificate.subjectAltName ?? "";
  const uris = san
    .split(", ")
    .filter((n) => n.startsWith(`URI:${SAN_PREFIX}`))
    .map((n) => n.slice(4 + SAN_PREFIX.length));
  const id = uris[0];
  if (uris.length !== 1 || id === undefined || !AGENT_ID.test(id) || certificate.subject !== `CN=${id}`)
    throw new AgentwallError("ERR_CERT_INVALID", "the certificate names no single agent id");
  return id;
}

/** Throws unless `id` is a valid agent id. */
export function checkAgentId(id: string): void {
  if (!AGENT_ID.test(id) || id === ROOT_SUBJECT)
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      "an agent id is 1-63 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit",
    );
}

/** PEM with the label OpenSSL reads (`X509 CRL`, not the `CRL` some libraries write). */
export function crlPem(der: Uint8Array): string {
  const body = Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n");
  return `-----BEGIN X509 CRL-----\n${body}-----END X509 CRL-----\n`;
}

/** An agent certificate's validity in hours: 24 unless given, at most 90 days. */
function validityHours(hours: number = 24): number {
  if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 90)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "validityHours must be in (0, 2160] (at most 90 days)");
  return hours;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  // A positive 127-bit serial whose hex has no leading zero byte: one spelling everywhere.
  bytes[0] = 0x10 + ((bytes[0] ?? 0) % 0x70);
  return bytes.toString("hex").toUpperCase();
}

async function webKeys(key: SigningKey): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey }> {
  const subtle = webcrypto.subtle;
  const privateKey = await subtle.importKey(
    "pkcs8",
    key.privateKey.export({ format: "der", type: "pkcs8" }),
    ED25519,
    false,
    ["sign"],
  );
  return { privateKey, publicKey: await webPublicKey(key.publicKey) };
}

function webPublicKey(key: KeyObject): Promise<CryptoKey> {
  return webcrypto.subtle.importKey("spki", key.export({ format: "der", type: "spki" }), ED25519, true, ["verify"]);
}

function info(row: CertificatesTable): CertificateInfo {
  return {
    serial: row.serial,
    kind: row.kind === "ca" ? "ca" : "agent",
    agentId: row.subject,
    notBefore: Number(row.not_before),
    notAfter: Number(row.not_after),
    issuedAt: Number(row.issued_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    revocationReason: row.revocation_reason,
    certificatePem: row.certificate,
  };
}

/**
 * The agents' certificate authority. Its Ed25519 key is the key hierarchy's `ca` signing key (stored
 * wrapped by the master key, shared by all instances); certificates and revocations live in the
 * database. The root certificate is checked against that key on every open, so someone who can write
 * the database but not read the master key cannot substitute a CA of their own.
 *
 * @example
 * ```ts
 * const ca = await CertificateAuthority.init({ store, keyring, audit });
 * const { certificatePem, privateKeyPem } = await ca.issue("billing", { actor: "admin" });
 * ```
 */
export class CertificateAuthority implements PeerVerifier {
  readonly #store: Store;
  readonly #audit: AuditSink;
  readonly #now: () => number;
  readonly #root: X509Certificate;
  readonly #rootSerial: string;
  readonly #keys: { privateKey: CryptoKey; publicKey: CryptoKey };
  readonly #signingKid: string;
  #crl: { der: Buffer; version: number; builtAt: number } | undefined;

  private constructor(
    options: CaOptions,
    root: X509Certificate,
    rootSerial: string,
    keys: { privateKey: CryptoKey; publicKey: CryptoKey },
    kid: string,
  ) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
    this.#root = root;
    this.#rootSerial = rootSerial;
    this.#keys = keys;
    this.#signingKid = kid;
  }

  /** Creates the root certificate when the database has none (idempotent, safe between instances). */
  static async init(options: CaOptions & { actor?: string; validityDays?: number }): Promise<CertificateAuthority> {
    const existing = await CertificateAuthority.#rootRow(options.store);
    if (existing === undefined) {
      const key = await options.keyring.signingKey("ca");
      const keys = await webKeys(key);
      const now = (options.now ?? Date.now)();
      const serial = serialNumber();
      const notAfter = now + (options.validityDays ?? 3650) * 24 * HOUR;
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial,
        name: `CN=${ROOT_SUBJECT}`,
        notBefore: new Date(now - 60_000),
        notAfter: new Date(notAfter),
        signingAlgorithm: ED25519,
        keys,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      const inserted = await options.store.db
        .insertInto("certificates")
        .values({
          serial,
          kind: "ca",
          subject: ROOT_SUBJECT,
          public_key: key.publicKey.export({ format: "der", type: "spki" }).toString("base64url"),
          certificate: cert.toString("pem"),
          signing_kid: key.kid,
          not_before: now - 60_000,
          not_after: notAfter,
          issued_at: now,
          revoked_at: null,
          revocation_reason: null,
        })
        .onConflict((oc) => oc.doNothing())
        .executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0) {
        await options.audit.append({
          type: "certificate",
          actor: options.actor ?? "system",
          action: "ca.init",
          resource: `certificate:${serial}`,
          outcome: "success",
          details: { notAfter },
        });
      }
    }
    return CertificateAuthority.open(options);
  }

  /** Opens the CA the database holds; `ERR_CA_NOT_INITIALIZED` when there is none. */
  static async open(options: CaOptions): Promise<CertificateAuthority> {
    const row = await CertificateAuthority.#rootRow(options.store);
    if (row === undefined) throw new AgentwallError("ERR_CA_NOT_INITIALIZED", "no agent CA: run `agentwall ca init`");
    const key = await options.keyring.signingKeyById(row.signing_kid);
    let root: X509Certificate;
    try {
      root = new X509Certificate(row.certificate);
    } catch {
      throw new AgentwallError("ERR_CA_INVALID", "the stored CA certificate cannot be parsed");
    }
    // The key comes from the decrypted private key, never from the certificate row.
    const spki = key.publicKey.export({ format: "der", type: "spki" });
    if (!root.publicKey.export({ format: "der", type: "spki" }).equals(spki) || !root.verify(key.publicKey))
      throw new AgentwallError("ERR_CA_INVALID", "the stored CA certificate does not match the CA signing key");
    return new CertificateAuthority(options, root, row.serial, await webKeys(key), key.kid);
  }

  static #rootRow(store: Store): Promise<CertificatesTable | undefined> {
    return store.db.selectFrom("certificates").selectAll().where("kind", "=", "ca").executeTakeFirst();
  }

  get caCertificatePem(): string {
    return this.#root.toString();
  }

  get caCertificate(): X509Certificate {
    return this.#root;
  }

  /**
   * Issues an agent certificate (subject and URI SAN name the agent; client and server auth). With no
   * public key, an Ed25519 key pair is generated and its private half returned once, never stored.
   */
  async issue(
    agentId: string,
    options: { publicKeyPem?: string; validityHours?: number; actor?: string } = {},
  ): Promise<IssuedCertificate> {
    checkAgentId(agentId);
    const hours = validityHours(options.validityHours);
    let publicKey: KeyObject;
    let privateKeyPem: string | undefined;
    if (options.publicKeyPem === undefined) {
      const pair = generateKeyPairSync("ed25519");
      publicKey = pair.publicKey;
      privateKeyPem = pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    } else {
      try {
        publicKey = createPublicKey(options.publicKeyPem);
      } catch {
        throw new AgentwallError("ERR_INVALID_ARGUMENT", "the public key is not a PEM public key");
      }
      if (publicKey.asymmetricKeyType !== "ed25519")
        throw new AgentwallError("ERR_INVALID_ARGUMENT", "agent certificates carry Ed25519 keys");
    }
    const row = await this.#sign(agentId, publicKey, hours * HOUR);
    await this.#audit.append({
      type: "certificate",
      actor: options.actor ?? "system",
      action: "ca.issue",
      resource: `certificate:${row.serial}`,
      outcome: "success",
      details: { agent: agentId, notAfter: row.notAfter, keyGenerated: privateKeyPem !== undefined },
    });
    return privateKeyPem === undefined ? row : { ...row, privateKeyPem };
  }

  /** A fresh certificate for the same agent and key (a revoked certificate is not renewed). */
  async renew(serial: string, options: { validityHours?: number; actor?: string } = {}): Promise<CertificateInfo> {
    const old = await this.#row(serial);
    if (old.kind !== "agent") throw new AgentwallError("ERR_INVALID_ARGUMENT", "only agent certificates are renewed");
    if (old.revoked_at !== null) throw new AgentwallError("ERR_CERT_REVOKED", `certificate ${serial} is revoked`);
    const hours = validityHours(options.validityHours);
    const key = createPublicKey({ key: Buffer.from(old.public_key, "base64url"), format: "der", type: "spki" });
    const row = await this.#sign(old.subject, key, hours * HOUR);
    await this.#audit.append({
      type: "certificate",
      actor: options.actor ?? "system",
      action: "ca.renew",
      resource: `certificate:${row.serial}`,
      outcome: "success",
      details: { agent: old.subject, previous: serial, notAfter: row.notAfter },
    });
    return row;
  }

  async #sign(agentId: string, publicKey: KeyObject, validityMs: number): Promise<CertificateInfo> {
    const now = this.#now();
    const serial = serialNumber();
    const notBefore = now - 60_000;
    const notAfter = Math.min(now + validityMs, Date.parse(this.#root.validTo));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${agentId}`,
      issuer: this.#root.subject,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      signingAlgorithm: ED25519,
      publicKey: await webPublicKey(publicKey),
      signingKey: this.#keys.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: "url", value: `${SAN_PREFIX}${agentId}` }]),
        await x509.AuthorityKeyIdentifierExtension.create(this.#keys.publicKey),
      ],
    });
    const row: CertificatesTable = {
      serial,
      kind: "agent",
      subject: agentId,
      public_key: publicKey.export({ format: "der", type: "spki" }).toString("base64url"),
      certificate: cert.toString("pem"),
      signing_kid: this.#signingKid,
      not_before: notBefore,
      not_after: notAfter,
      issued_at: now,
      revoked_at: null,
      revocation_reason: null,
    };
    await this.#store.db.insertInto("certificates").values(row).execute();
    return info(row);
  }

  async #row(serial: string): Promise<CertificatesTable> {
    const row = await this.#store.db
      .selectFrom("certificates")
      .selectAll()
      .where("serial", "=", serial.toUpperCase())
      .executeTakeFirst();
    if (row === undefined) throw new AgentwallError("ERR_CERT_UNKNOWN", `no certificate ${serial.slice(0, 40)}`);
    return row;
  }

  /** Revokes a certificate; every instance's CRL and handshake checks see it at once. */
  async revoke(
    serial: string,
    options: { reason?: RevocationReason; actor?: string } = {},
  ): Promise<{ revoked: boolean; certificate: CertificateInfo }> {
    const reason = options.reason ?? "unspecified";
    if (!REVOCATION_REASONS.includes(reason))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", `reason is one of ${REVOCATION_REASONS.join(", ")}`);
    const row = await this.#row(serial);
    if (row.kind === "ca") throw new AgentwallError("ERR_INVALID_ARGUMENT", "the CA's own certificate is not revoked");
    const now = this.#now();
    const changed = await writeTransaction(this.#store, async (trx) => {
      const result = await trx
        .updateTable("certificates")
        .set({ revoked_at: now, revocation_reason: reason })
        .where("serial", "=", row.serial)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      const n = Number(result.numUpdatedRows);
      if (n > 0) await bumpCounter(trx, "ca_revocations");
      return n > 0;
    });
    await this.#audit.append({
      type: "certificate",
      actor: options.actor ?? "system",
      action: "ca.revoke",
      resource: `certificate:${row.serial}`,
      outcome: changed ? "success" : "failure",
      details: changed ? { agent: row.subject, reason } : { agent: row.subject, reason: "already revoked" },
    });
    return { revoked: changed, certificate: info(await this.#row(row.serial)) };
  }

  /** Issued certificates, newest first (optionally one agent's). */
  async list(options: { agentId?: string; limit?: number } = {}): Promise<CertificateInfo[]> {
    let q = this.#store.db
      .selectFrom("certificates")
      .selectAll()
      .orderBy("issued_at", "desc")
      .limit(Math.min(Math.max(options.limit ?? 1000, 1), 10_000));
    if (options.agentId !== undefined) q = q.where("subject", "=", options.agentId);
    return (await q.execute()).map(info);
  }

  /** `valid`, `revoked` or `unknown` (a serial this CA never recorded). */
  async status(serial: string): Promise<"valid" | "revoked" | "unknown"> {
    const row = await this.#store.db
      .selectFrom("certificates")
      .select(["revoked_at", "kind"])
      .where("serial", "=", serial.toUpperCase())
      .executeTakeFirst();
    if (row === undefined) return "unknown";
    return row.revoked_at === null ? "valid" : "revoked";
  }

  /**
   * The agent id of a peer certificate issued by this CA, valid now and recorded as not revoked — read
   * from the database on every call, so a revocation holds from the next handshake on, on every instance.
   * A certificate signed by the CA but unknown to the database (a restored backup) is refused too.
   */
  async verifyPeer(certificate: X509Certificate): Promise<string> {
    const id = agentIdOf(certificate, this.#root, this.#now());
    const status = await this.status(certificate.serialNumber);
    if (status === "revoked") throw new AgentwallError("ERR_CERT_REVOKED", `certificate of ${id} is revoked`);
    if (status === "unknown") throw new AgentwallError("ERR_CERT_UNKNOWN", `certificate of ${id} is unknown`);
    return id;
  }

  /**
   * The signed CRL (DER): every revoked certificate still within its validity. Rebuilt when any
   * instance revoked something, and at least hourly; valid for a day.
   */
  async crl(): Promise<Buffer> {
    const version = (await readCounter(this.#store.db, "ca_revocations")) ?? 0;
    const now = this.#now();
    const cached = this.#crl;
    if (cached !== undefined && cached.version === version && now - cached.builtAt < CRL_REFRESH_MS) return cached.der;
    const revoked = await this.#store.db
      .selectFrom("certificates")
      .select(["serial", "revoked_at", "revocation_reason"])
      .where("revoked_at", "is not", null)
      .where("not_after", ">=", now)
      .orderBy("serial")
      .execute();
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.#root.subject,
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + CRL_VALIDITY_MS),
      entries: revoked.map((r) => ({
        serialNumber: r.serial,
        revocationDate: new Date(Number(r.revoked_at)),
        reason: x509.X509CrlReason[(r.revocation_reason ?? "unspecified") as RevocationReason],
      })),
      signingAlgorithm: ED25519,
      signingKey: this.#keys.privateKey,
      extensions: [
        await x509.AuthorityKeyIdentifierExtension.create(this.#keys.publicKey),
        // cRLNumber: the build time in ms, so numbers only grow, across instances too.
        new x509.Extension("2.5.29.20", false, derInteger(now)),
      ],
    });
    const der = Buffer.from(crl.rawData);
    this.#crl = { der, version, builtAt: now };
    return der;
  }

  get rootSerial(): string {
    return this.#rootSerial;
  }
}

export interface CaOptions {
  readonly store: Store;
  readonly keyring: Keyring;
  readonly audit: AuditSink;
  readonly now?: () => number;
}

/** DER INTEGER of a non-negative safe integer. */
function derInteger(n: number): Uint8Array<ArrayBuffer> {
  let hex = n.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`;
  const body = Buffer.from(hex, "hex");
  return Uint8Array.from([0x02, body.length, ...body]);
}

/**
 * Revocation from a CRL file, for agents without the database: the CRL must be signed by the CA and
 * not past its next update, else every peer is refused (`ERR_CRL_INVALID`) — revocation that cannot be
 * checked fails closed. The file is reread when it changes.
 */
export class CrlVerifier implements PeerVerifier {
  readonly #ca: X509Certificate;
  readonly #load: () => Promise<Uint8Array>;
  readonly #now: () => number;
  #revoked: { serials: ReadonlySet<string>; nextUpdate: number } | undefined;

  constructor(options: { caCertificatePem: string; loadCrl: () => Promise<Uint8Array>; now?: () => number }) {
    try {
      this.#ca = new X509Certificate(options.caCertificatePem);
    } catch {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "the CA certificate is not a PEM certificate");
    }
    this.#load = options.loadCrl;
    this.#now = options.now ?? Date.now;
  }

  get caCertificatePem(): string {
    return this.#ca.toString();
  }

  /** Reads the CRL again (call after the file changed; also done when the held one expires). */
  async refresh(): Promise<void> {
    let crl: x509.X509Crl;
    try {
      const bytes = Buffer.from(await this.#load());
      crl = new x509.X509Crl(
        bytes.subarray(0, 5).toString() === "-----" ? bytes.toString("utf8") : Uint8Array.from(bytes),
      );
    } catch {
      throw new AgentwallError("ERR_CRL_INVALID", "the CRL cannot be read or parsed");
    }
    const key = await webPublicKey(this.#ca.publicKey);
    const signed = await crl.verify({ publicKey: key }).catch(() => false);
    if (!signed || crl.issuer !== this.#ca.subject)
      throw new AgentwallError("ERR_CRL_INVALID", "the CRL is not signed by the CA");
    const nextUpdate = crl.nextUpdate?.getTime() ?? 0;
    if (nextUpdate < this.#now()) throw new AgentwallError("ERR_CRL_INVALID", "the CRL is past its next update");
    this.#revoked = {
      serials: new Set(crl.entries.map((e) => e.serialNumber.toUpperCase().replace(/^(00)+(?=[0-9A-F])/, ""))),
      nextUpdate,
    };
  }

  async verifyPeer(certificate: X509Certificate): Promise<string> {
    const id = agentIdOf(certificate, this.#ca, this.#now());
    if (this.#revoked === undefined || this.#revoked.nextUpdate < this.#now()) await this.refresh();
    const revoked = this.#revoked;
    if (revoked === undefined) throw new AgentwallError("ERR_CRL_INVALID", "no CRL");
    if (revoked.serials.has(certificate.serialNumber.toUpperCase()))
      throw new AgentwallError("ERR_CERT_REVOKED", `certificate of ${id} is revoked`);
    return id;
  }
}
