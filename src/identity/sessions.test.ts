import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SignJWT, UnsecuredJWT } from "jose";
import {
  freshPostgresDatabase,
  postgresReachable,
  postgresStore,
  randomMasterKey,
  auditedStore,
} from "../../test/helpers.js";
import type { Store } from "../store/database.js";
import { ApiKeys } from "./api-keys.js";
import { Sessions } from "./sessions.js";

async function setup(options: { store?: Store; now?: () => number; master?: ReturnType<typeof randomMasterKey> } = {}) {
  const { store, keyring, audit } = await auditedStore(options);
  const apiKeys = new ApiKeys({ store, keyring, audit, now: options.now });
  const sessions = new Sessions({ store, keyring, audit, now: options.now, ttlMs: 600_000 });
  return { store, keyring, audit, apiKeys, sessions };
}

describe("sessions", () => {
  it("issue and verify; the token names its signing key and carries no secret", async () => {
    const { sessions, audit } = await setup();
    const { token, jti, expiresAt } = await sessions.issue({ subject: "alice", roles: ["user"], creator: "test" });
    const r = await sessions.verify(token);
    assert.ok(r.valid);
    assert.equal(r.session.jti, jti);
    assert.deepEqual(r.session.roles, ["user"]);
    assert.equal(r.session.expiresAt, expiresAt);
    const header = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()) as Record<string, string>;
    assert.deepEqual([header.alg, header.typ], ["EdDSA", "JWT"]);
    assert.match(header.kid!, /^sk-sessions-/);
    const created = await audit.query({ type: "session_created" });
    assert.equal(created.events.length, 1);
    assert.ok(!JSON.stringify(created.events).includes(token.split(".")[2]!));
  });

  it("expires by the clock", async () => {
    let now = Date.UTC(2026, 10, 27, 12);
    const { sessions } = await setup({ now: () => now });
    const { token } = await sessions.issue({ subject: "alice", roles: [], creator: "test" });
    now += 599_000;
    assert.equal((await sessions.verify(token)).valid, true);
    now += 40_000; // past expiry and the 30 s tolerance
    assert.deepEqual(await sessions.verify(token).then((r) => !r.valid && r.result), "EXPIRED");
  });

  it("revokes one session, a subject's sessions, and those made from a revoked key", async () => {
    const { sessions, apiKeys } = await setup();
    const a = await sessions.issue({ subject: "alice", roles: [], creator: "test" });
    const b = await sessions.issue({ subject: "alice", roles: [], creator: "test" });
    const c = await sessions.issue({ subject: "bob", roles: [], creator: "test" });
    assert.equal(await sessions.revoke(a.jti, "admin"), true);
    assert.equal(await sessions.revoke(a.jti, "admin"), false);
    assert.deepEqual(await sessions.verify(a.token).then((r) => !r.valid && r.result), "REVOKED");
    assert.equal((await sessions.verify(b.token)).valid, true);
    assert.equal((await sessions.listActive("alice")).length, 1);
    assert.equal(await sessions.revokeSubject("alice", "admin"), 1);
    assert.equal((await sessions.verify(b.token)).valid, false);
    assert.equal((await sessions.verify(c.token)).valid, true);

    const key = await apiKeys.create({ owner: "carol", name: "k", creator: "test" });
    const d = await sessions.issue({ subject: "carol", roles: [], creator: `key:${key.id}` });
    assert.equal((await sessions.verify(d.token)).valid, true);
    await apiKeys.revoke(key.id, "admin");
    assert.deepEqual(await sessions.verify(d.token).then((r) => !r.valid && r.result), "REVOKED");
  });

  it("refuses forged, altered, unsigned and foreign tokens", async () => {
    const { sessions, keyring } = await setup();
    const { token } = await sessions.issue({ subject: "alice", roles: ["user"], creator: "test" });
    const [h, p, s] = token.split(".") as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, "base64url").toString()) as Record<string, unknown>;
    const elevated = Buffer.from(JSON.stringify({ ...payload, roles: ["admin"] })).toString("base64url");
    const unsigned = new UnsecuredJWT({ ...payload }).encode();
    const other = await setup();
    const foreign = (await other.sessions.issue({ subject: "alice", roles: ["admin"], creator: "test" })).token;
    const audit = await keyring.signingKey("audit");
    const wrongPurpose = await new SignJWT({ ...payload, roles: ["admin"] })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid: audit.kid })
      .sign(audit.privateKey);
    for (const bad of [
      `${h}.${elevated}.${s}`,
      `${h}.${p}.`,
      unsigned,
      foreign,
      wrongPurpose,
      "",
      "x.y.z",
      token + "x",
    ]) {
      const r = await sessions.verify(bad);
      assert.equal(r.valid, false, bad.slice(0, 40));
    }
  });

  it("refuses a token whose session row is gone", async () => {
    const { sessions, store } = await setup();
    const { token, jti } = await sessions.issue({ subject: "alice", roles: [], creator: "test" });
    await store.db.deleteFrom("sessions").where("jti", "=", jti).execute();
    assert.deepEqual(await sessions.verify(token).then((r) => !r.valid && r.result), "NOT_FOUND");
  });

  it("rejects nonsense lifetimes and subjects", async () => {
    const { store, keyring, audit } = await setup();
    assert.throws(() => new Sessions({ store, keyring, audit, ttlMs: 0 }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => new Sessions({ store, keyring, audit, ttlMs: 48 * 3_600_000 }), {
      code: "ERR_INVALID_ARGUMENT",
    });
    const sessions = new Sessions({ store, keyring, audit });
    await assert.rejects(sessions.issue({ subject: "", roles: [], creator: "t" }), { code: "ERR_INVALID_ARGUMENT" });
  });
});

describe("HS256 sessions (configured secret only)", () => {
  it("signs and verifies with the secret; refuses EdDSA tokens, other secrets and short secrets", async () => {
    const { store, keyring, audit, sessions: ed } = await setup();
    const secret = Buffer.from("a-configured-session-secret-of-32+bytes!");
    const hs = new Sessions({ store, keyring, audit, hs256Secret: secret });
    const { token } = await hs.issue({ subject: "alice", roles: [], creator: "test" });
    assert.equal(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).alg, "HS256");
    assert.equal((await hs.verify(token)).valid, true);
    assert.equal((await ed.verify(token)).valid, false, "an EdDSA-configured verifier never accepts HS256");
    const edToken = (await ed.issue({ subject: "alice", roles: [], creator: "test" })).token;
    assert.equal((await hs.verify(edToken)).valid, false);
    const other = new Sessions({
      store,
      keyring,
      audit,
      hs256Secret: Buffer.from("another-configured-secret-of-32+bytes!!"),
    });
    assert.equal((await other.verify(token)).valid, false);
    assert.throws(() => new Sessions({ store, keyring, audit, hs256Secret: Buffer.from("short") }), {
      code: "ERR_CONFIG_INVALID",
    });
  });

  it("EdDSA mode refuses an HS256 token keyed with the public key (key confusion)", async () => {
    const { sessions, keyring } = await setup();
    const key = await keyring.signingKey("sessions");
    const spki = key.publicKey.export({ format: "der", type: "spki" });
    const confused = await new SignJWT({ roles: ["admin"] })
      .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: key.kid })
      .setIssuer("agentwall")
      .setAudience("agentwall")
      .setSubject("root")
      .setJti("abcdefghijklmnop")
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime("5m")
      .sign(spki);
    assert.deepEqual(await sessions.verify(confused).then((r) => !r.valid && r.failure), "ALGORITHM");
  });
});

describe("sessions on PostgreSQL", async () => {
  const ok = await postgresReachable();
  it(
    "a session issued by one instance is verified, and its revocation seen, by another",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      const master = randomMasterKey();
      const one = await setup({ store: await postgresStore(url), master });
      const two = await setup({ store: await postgresStore(url), master });
      const { token, jti } = await one.sessions.issue({ subject: "alice", roles: ["user"], creator: "test" });
      assert.equal((await two.sessions.verify(token)).valid, true);
      await two.sessions.revoke(jti, "admin");
      assert.deepEqual(await one.sessions.verify(token).then((r) => !r.valid && r.result), "REVOKED");
    },
  );
});
