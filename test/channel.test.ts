import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import {
  CertificateAuthority,
  ChannelServer,
  CrlVerifier,
  FrameDecoder,
  ReplayGuard,
  connectChannel,
  encodeFrame,
  rbacAuthorizer,
  signEnvelope,
  type ChannelConnection,
  type ChannelMessage,
  type IssuedCertificate,
} from "../src/channel/index.js";
import type { Instance } from "../src/instance.js";
import { buildServer } from "../src/gateway/server.js";
import pino from "pino";
import { freshPostgresDatabase, postgresReachable, tempDir, testInstance } from "./helpers.js";
import { randomBytes } from "node:crypto";

const ADMIN = { id: "admin", grants: ["*"] };
const identity = (c: IssuedCertificate) => ({ certificatePem: c.certificatePem, privateKeyPem: c.privateKeyPem ?? "" });

// Opened at module level: testInstance registers its own `after` to close them.
const instance: Instance = await testInstance();
const otherInstance: Instance = await testInstance();

describe("agent channels over mutual TLS 1.3", () => {
  let ca: CertificateAuthority;
  let hub: IssuedCertificate;
  let billing: IssuedCertificate;
  let intruder: IssuedCertificate;
  let server: ChannelServer;
  const received: ChannelMessage[] = [];

  before(async () => {
    ca = await CertificateAuthority.init({ store: instance.store, keyring: instance.keyring, audit: instance.audit });
    hub = await ca.issue("hub");
    billing = await ca.issue("billing");
    intruder = await ca.issue("intruder");
    await instance.rbac.defineRole({ name: "hub-client", grants: ["channel:message"] }, ADMIN);
    await instance.rbac.assign("agent:billing", "hub-client", "agent:hub", ADMIN);
    server = await ChannelServer.listen({
      identity: identity(hub),
      verifier: ca,
      authorize: rbacAuthorizer(instance.rbac),
      audit: instance.audit,
      maxFrameBytes: 64 * 1024,
      onMessage: async (message, connection) => {
        received.push(message);
        await connection.send("ack", { got: message.payload }, message.nonce);
      },
    });
  });
  after(() => server.close());

  const connect = (who: IssuedCertificate, options: { expectedPeer?: string } = {}) =>
    connectChannel({
      identity: identity(who),
      verifier: ca,
      authorize: async (from) => from === "hub",
      host: "127.0.0.1",
      port: server.address.port,
      expectedPeer: options.expectedPeer ?? "hub",
    });

  /** A refused client: the handshake fails, or the server closes before any message is handled. */
  async function assertRefused(attempt: () => Promise<ChannelConnection>): Promise<string> {
    const before = received.length;
    let code: string;
    try {
      const connection = await attempt();
      const answer = await connection.request("ping", {}, 3000).then(
        () => "answered",
        (e: { code?: string }) => e.code ?? "error",
      );
      code = answer;
    } catch (error) {
      code = (error as { code?: string }).code ?? "error";
    }
    assert.notEqual(code, "answered");
    assert.equal(received.length, before, "no message reached the handler");
    return code;
  }

  it("issues certificates naming the agent, chained to the CA, with Ed25519 keys", () => {
    const cert = new X509Certificate(billing.certificatePem);
    assert.equal(cert.subject, "CN=billing");
    assert.equal(cert.subjectAltName, "URI:urn:agentwall:agent:billing");
    assert.equal(cert.checkIssued(ca.caCertificate), true);
    assert.equal(cert.verify(ca.caCertificate.publicKey), true);
    assert.equal(cert.publicKey.asymmetricKeyType, "ed25519");
    assert.equal(cert.ca, false);
    assert.ok(Date.parse(cert.validTo) - Date.now() <= 24 * 3_600_000);
  });

  it("carries a message both ways between authorised agents, each learning the other's id", async () => {
    const client = await connect(billing);
    assert.equal(client.peer, "hub");
    const answer = await client.request("invoice.create", { amount: 12 });
    assert.equal(answer.from, "hub");
    assert.equal(answer.type, "ack");
    assert.deepEqual(answer.payload, { got: { amount: 12 } });
    assert.equal(received.at(-1)?.from, "billing");
    client.close();
  });

  it("refuses a message to a recipient the sender may not address, without handling it", async () => {
    const client = await connect(intruder);
    const before = received.length;
    await assert.rejects(client.request("invoice.create", { amount: 1 }), { code: "ERR_FORBIDDEN" });
    assert.equal(received.length, before);
    client.close();
  });

  it("rejects a replayed message, also on a second connection", async () => {
    const client = await connect(billing);
    const envelope = signEnvelope(createPrivateKey(billing.privateKeyPem ?? ""), {
      from: "billing",
      to: "hub",
      type: "invoice.create",
      payload: { amount: 5 },
    });
    await client.requestEnvelope(envelope);
    await assert.rejects(client.requestEnvelope(envelope), { code: "ERR_CHANNEL_REPLAY" });
    const other = await connect(billing);
    await assert.rejects(other.requestEnvelope(envelope), { code: "ERR_CHANNEL_REPLAY" });
    // The connection stays usable after a refused message.
    assert.equal((await client.request("invoice.create", { amount: 6 })).type, "ack");
    client.close();
    other.close();
  });

  it("rejects an altered, a re-addressed and a forged-sender message", async () => {
    const client = await connect(billing);
    const key = createPrivateKey(billing.privateKeyPem ?? "");
    const original = signEnvelope(key, { from: "billing", to: "hub", type: "pay", payload: { amount: 5 } });
    await assert.rejects(client.requestEnvelope({ ...original, payload: '{"amount":5000}' }), {
      code: "ERR_CHANNEL_SIGNATURE",
    });
    await assert.rejects(client.requestEnvelope({ ...original, type: "refund" }), { code: "ERR_CHANNEL_SIGNATURE" });
    const forLedger = signEnvelope(key, { from: "billing", to: "ledger", type: "pay", payload: {} });
    await assert.rejects(client.requestEnvelope(forLedger), { code: "ERR_CHANNEL_MISADDRESSED" });
    const forged = signEnvelope(key, { from: "intruder", to: "hub", type: "pay", payload: {} });
    await assert.rejects(client.requestEnvelope(forged), { code: "ERR_CHANNEL_MISADDRESSED" });
    const stale = signEnvelope(key, { from: "billing", to: "hub", type: "pay", payload: {}, ts: Date.now() - 120_000 });
    await assert.rejects(client.requestEnvelope(stale), { code: "ERR_CHANNEL_STALE" });
    await assert.rejects(client.requestEnvelope({ ...original, sig: "A".repeat(86) }), {
      code: "ERR_CHANNEL_SIGNATURE",
    });
    client.close();
  });

  it("closes the connection on an oversized frame before buffering it, and on a malformed message keeps it", async () => {
    const client = await connect(billing);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(64 * 1024 + 1);
    await client.writeRaw(header);
    const reason = await client.closed;
    assert.equal(reason?.code, "ERR_CHANNEL_FRAME_TOO_LARGE");

    const second = await connect(billing);
    const refused = new Promise<string>((resolve) => second.onRefused((e) => resolve(e.code)));
    await second.writeFrame(Buffer.from('{"v":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}'));
    assert.equal(await refused, "ERR_CHANNEL_MESSAGE_INVALID");
    assert.equal((await second.request("pay", {})).type, "ack");
    second.close();
  });

  it("records a connection that ended inside a frame as truncated", async () => {
    const client = await connect(billing);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(100);
    await client.writeRaw(Buffer.concat([header, Buffer.alloc(10, 0x41)]));
    client.close();
    let closes: string[] = [];
    for (let i = 0; i < 50 && !closes.includes("ERR_CHANNEL_FRAME_TRUNCATED"); i++) {
      await new Promise((r) => setTimeout(r, 20));
      const events = await instance.audit.query({ type: "channel" });
      closes = events.events.filter((e) => e.action === "channel.close").map((e) => String(e.details?.code));
    }
    assert.ok(closes.includes("ERR_CHANNEL_FRAME_TRUNCATED"), closes.join(","));
  });

  it("refuses a revoked client certificate at the next handshake", async () => {
    const doomed = await ca.issue("billing");
    const ok = await connect(doomed);
    assert.equal((await ok.request("pay", {})).type, "ack");
    ok.close();
    await ca.revoke(doomed.serial, { reason: "keyCompromise" });
    assert.equal(await assertRefused(() => connect(doomed)), "ERR_CERT_REVOKED");
  });

  it("refuses an expired certificate, one from another CA, and a client without one", async () => {
    const past = await CertificateAuthority.open({
      store: instance.store,
      keyring: instance.keyring,
      audit: instance.audit,
      now: () => Date.now() - 3 * 3_600_000,
    });
    const expired = await past.issue("billing", { validityHours: 1 });
    assert.equal(await assertRefused(() => connect(expired)), "ERR_CHANNEL_TLS");

    const otherCa = await CertificateAuthority.init({
      store: otherInstance.store,
      keyring: otherInstance.keyring,
      audit: otherInstance.audit,
    });
    const stranger = await otherCa.issue("billing");
    assert.equal(await assertRefused(() => connect(stranger)), "ERR_CHANNEL_TLS");

    const bare = tls.connect({
      host: "127.0.0.1",
      port: server.address.port,
      ca: ca.caCertificatePem,
      checkServerIdentity: () => undefined,
    });
    // The server answers a certificate-less client with one error frame and closes; nothing is handled.
    const before = received.length;
    const frames = await new Promise<Buffer[]>((resolve) => {
      const decoder = new FrameDecoder();
      const got: Buffer[] = [];
      bare.on("data", (d: Buffer) => got.push(...decoder.push(d)));
      bare.on("close", () => resolve(got));
      bare.on("error", () => undefined);
      bare.on("secureConnect", () => bare.write(encodeFrame(Buffer.from("{}"))));
    });
    assert.equal(frames.length, 1);
    assert.equal((JSON.parse(String(frames[0])) as { code: string }).code, "ERR_CHANNEL_TLS");
    assert.equal(received.length, before);
  });

  it("refuses TLS 1.2 and a plain TCP client, and the server keeps serving", async () => {
    const old = tls.connect({
      host: "127.0.0.1",
      port: server.address.port,
      ca: ca.caCertificatePem,
      cert: billing.certificatePem,
      key: billing.privateKeyPem,
      maxVersion: "TLSv1.2",
      checkServerIdentity: () => undefined,
    });
    const oldOutcome = await new Promise<string>((resolve) => {
      old.on("secureConnect", () => resolve("connected"));
      old.on("error", (e: Error & { code?: string }) => resolve(e.code ?? "error"));
    });
    assert.notEqual(oldOutcome, "connected");
    old.destroy();

    const plain = net.connect(server.address.port, "127.0.0.1");
    const plainOutcome = await new Promise<string>((resolve) => {
      plain.on("connect", () => plain.write(encodeFrame(Buffer.from('{"v":1}'))));
      plain.on("data", (d: Buffer) => resolve(d[0] === 0x15 ? "tls-alert" : "data"));
      plain.on("close", () => resolve("closed"));
      plain.on("error", () => resolve("error"));
    });
    assert.notEqual(plainOutcome, "data");
    plain.destroy();

    const client = await connect(billing);
    assert.equal((await client.request("pay", {})).type, "ack");
    client.close();
  });

  it("makes the client refuse a server that is not the agent it expected", async () => {
    await assert.rejects(connect(billing, { expectedPeer: "ledger" }), { code: "ERR_CHANNEL_TLS" });
  });

  it("publishes a signed CRL that OpenSSL reads and that a CRL-based verifier enforces", async () => {
    const revoked = await ca.issue("billing");
    await ca.revoke(revoked.serial, { reason: "superseded" });
    const der = await ca.crl();
    const dir = tempDir();
    writeFileSync(join(dir, "crl.der"), der);
    writeFileSync(join(dir, "ca.pem"), ca.caCertificatePem);
    const openssl = spawnSync("openssl", [
      "crl",
      "-inform",
      "DER",
      "-in",
      join(dir, "crl.der"),
      "-CAfile",
      join(dir, "ca.pem"),
      "-noout",
      "-text",
    ]);
    assert.match(openssl.stderr.toString(), /verify OK/);
    const text = openssl.stdout.toString();
    assert.match(text, new RegExp(`Serial Number: ${revoked.serial}`, "i"));

    const verifier = new CrlVerifier({ caCertificatePem: ca.caCertificatePem, loadCrl: () => Promise.resolve(der) });
    await assert.rejects(verifier.verifyPeer(new X509Certificate(revoked.certificatePem)), {
      code: "ERR_CERT_REVOKED",
    });
    assert.equal(await verifier.verifyPeer(new X509Certificate(billing.certificatePem)), "billing");

    // A remote agent checking the hub against the CRL file, not the database.
    const client = await connectChannel({
      identity: identity(billing),
      verifier,
      authorize: async (from) => from === "hub",
      host: "127.0.0.1",
      port: server.address.port,
      expectedPeer: "hub",
    });
    assert.equal((await client.request("pay", {})).type, "ack");
    client.close();

    const stale = new CrlVerifier({
      caCertificatePem: ca.caCertificatePem,
      loadCrl: () => Promise.resolve(der),
      now: () => Date.now() + 2 * 24 * 3_600_000,
    });
    await assert.rejects(stale.refresh(), { code: "ERR_CRL_INVALID" });
    const otherCa = await CertificateAuthority.init({
      store: otherInstance.store,
      keyring: otherInstance.keyring,
      audit: otherInstance.audit,
    });
    const foreign = new CrlVerifier({
      caCertificatePem: ca.caCertificatePem,
      loadCrl: async () => otherCa.crl(),
    });
    await assert.rejects(foreign.refresh(), { code: "ERR_CRL_INVALID" });
  });

  it("refuses to open a CA whose stored certificate was swapped in the database", async () => {
    const otherCa = await CertificateAuthority.init({
      store: otherInstance.store,
      keyring: otherInstance.keyring,
      audit: otherInstance.audit,
    });
    await instance.store.db
      .updateTable("certificates")
      .set({ certificate: otherCa.caCertificatePem })
      .where("kind", "=", "ca")
      .execute();
    try {
      await assert.rejects(
        CertificateAuthority.open({ store: instance.store, keyring: instance.keyring, audit: instance.audit }),
        { code: "ERR_CA_INVALID" },
      );
    } finally {
      await instance.store.db
        .updateTable("certificates")
        .set({ certificate: ca.caCertificatePem })
        .where("kind", "=", "ca")
        .execute();
    }
  });
});

const pgUrl = (await postgresReachable()) ? await freshPostgresDatabase() : undefined;

describe("the agent CA shared by two instances on PostgreSQL", { skip: pgUrl === undefined }, () => {
  it("creates one root when both race through init, and a revocation at one holds at the other's next handshake", async () => {
    const env = { AGENTWALL_DATABASE_URL: pgUrl ?? "", AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url") };
    const [a, b] = await Promise.all([testInstance({}, env), testInstance({}, env)]);
    const [caA, caB] = await Promise.all(
      [a, b].map((i) => CertificateAuthority.init({ store: i.store, keyring: i.keyring, audit: i.audit })),
    );
    assert.equal(caA?.rootSerial, caB?.rootSerial);
    const roots = await a.store.db.selectFrom("certificates").select("serial").where("kind", "=", "ca").execute();
    assert.equal(roots.length, 1);
    if (caA === undefined || caB === undefined) return;

    const hubCert = await caA.issue("hub");
    const agent = await caA.issue("worker");
    const hubServer = await ChannelServer.listen({
      identity: identity(hubCert),
      verifier: caB,
      authorize: async () => true,
      onMessage: (m, c) => c.send("ack", {}, m.nonce).then(() => undefined),
    });
    try {
      const dial = () =>
        connectChannel({
          identity: identity(agent),
          verifier: caA,
          authorize: async () => true,
          host: "127.0.0.1",
          port: hubServer.address.port,
          expectedPeer: "hub",
        });
      const first = await dial();
      assert.equal((await first.request("ping", {})).type, "ack");
      first.close();
      await caA.revoke(agent.serial, { reason: "keyCompromise" });
      const second = await dial();
      await assert.rejects(second.request("ping", {}), { code: "ERR_CERT_REVOKED" });
      // The CRL served by the other instance lists it too.
      const verifier = new CrlVerifier({ caCertificatePem: caB.caCertificatePem, loadCrl: () => caB.crl() });
      await assert.rejects(verifier.verifyPeer(new X509Certificate(agent.certificatePem)), {
        code: "ERR_CERT_REVOKED",
      });
    } finally {
      await hubServer.close();
    }
  });
});

describe("the CA's public routes", () => {
  it("serve the signed CRL (DER or PEM) and the CA certificate without a credential; 404 before ca init", async () => {
    const fresh = await testInstance();
    const app = await buildServer(fresh, { logger: pino({ level: "silent" }) });
    try {
      const before = await app.inject({ method: "GET", url: "/v1/ca/crl" });
      assert.equal(before.statusCode, 404);
      assert.equal(before.json<{ error: { code: string } }>().error.code, "ERR_CA_NOT_INITIALIZED");
      const freshCa = await CertificateAuthority.init({
        store: fresh.store,
        keyring: fresh.keyring,
        audit: fresh.audit,
      });
      const victim = await freshCa.issue("victim");
      await freshCa.revoke(victim.serial);
      const der = await app.inject({ method: "GET", url: "/v1/ca/crl" });
      assert.equal(der.statusCode, 200);
      assert.equal(der.headers["content-type"], "application/pkix-crl");
      const viaHttp = new CrlVerifier({
        caCertificatePem: (await app.inject({ method: "GET", url: "/v1/ca/certificate" })).body,
        loadCrl: () => Promise.resolve(der.rawPayload),
      });
      await assert.rejects(viaHttp.verifyPeer(new X509Certificate(victim.certificatePem)), {
        code: "ERR_CERT_REVOKED",
      });
      const pem = await app.inject({ method: "GET", url: "/v1/ca/crl?format=pem" });
      assert.match(pem.body, /^-----BEGIN X509 CRL-----\n/);
      assert.equal((await app.inject({ method: "GET", url: "/v1/ca/crl?format=xml" })).statusCode, 400);
    } finally {
      await app.close();
    }
  });
});

describe("channel building blocks", () => {
  it("frames split on any chunking give back the same payloads; oversized headers throw at once", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
        (payloads, cuts) => {
          const stream = Buffer.concat(payloads.map((p) => encodeFrame(Buffer.from(p), 300)));
          const decoder = new FrameDecoder(300);
          const out: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < stream.length; i++) {
            const size = cuts[i % cuts.length] ?? 1;
            out.push(...decoder.push(stream.subarray(at, at + size)));
            at += size;
          }
          decoder.end();
          assert.deepEqual(
            out.map((b) => b.toString("hex")),
            payloads.map((p) => Buffer.from(p).toString("hex")),
          );
        },
      ),
    );
    const decoder = new FrameDecoder(10);
    assert.throws(() => decoder.push(Buffer.from([0, 0, 0, 11])), { code: "ERR_CHANNEL_FRAME_TOO_LARGE" });
    const partial = new FrameDecoder(10);
    partial.push(Buffer.from([0, 0, 0, 5, 1]));
    assert.throws(() => partial.end(), { code: "ERR_CHANNEL_FRAME_TRUNCATED" });
  });

  it("the replay guard refuses when full of live nonces, frees expired ones, and refuses pre-start messages", () => {
    let now = 1_000_000;
    const guard = new ReplayGuard({ windowMs: 1000, capacity: 3, now: () => now });
    guard.admit("a", "n1", now);
    guard.admit("a", "n2", now);
    guard.admit("b", "n1", now);
    assert.throws(() => guard.admit("a", "n1", now), { code: "ERR_CHANNEL_REPLAY" });
    assert.throws(() => guard.admit("a", "n3", now), { code: "ERR_CHANNEL_REPLAY_CACHE_FULL" });
    assert.throws(() => guard.admit("a", "n4", now - 1), { code: "ERR_CHANNEL_STALE" });
    now += 1500;
    guard.admit("a", "n3", now);
    assert.equal(guard.size, 1);
    assert.throws(() => guard.admit("a", "n5", now - 1200), { code: "ERR_CHANNEL_STALE" });
    assert.throws(() => guard.admit("a", "n5", now + 1200), { code: "ERR_CHANNEL_STALE" });
  });

  it("the replay guard gives each sender its own share: one peer flooding signed messages does not lock out the others", () => {
    let now = 1_000_000;
    const guard = new ReplayGuard({ windowMs: 1000, capacity: 100, perSender: 25, now: () => now });
    for (let i = 0; i < 25; i++) guard.admit("flooder", `n${i}`, now);
    assert.throws(() => guard.admit("flooder", "n25", now), {
      code: "ERR_CHANNEL_REPLAY_CACHE_FULL",
      message: /this sender/,
    });
    for (let i = 0; i < 25; i++) guard.admit(`peer${i}`, "n0", now); // the others still get in
    assert.equal(guard.size, 50);
    now += 1500; // the flood's window has passed: its share is free again
    guard.admit("flooder", "n26", now);
    assert.equal(guard.size, 1);
    assert.throws(() => new ReplayGuard({ perSender: 0 }), { code: "ERR_INVALID_ARGUMENT" });
  });

  it("the replay guard refuses a sender at its share in constant time, however many nonces it holds", () => {
    // A ratio, not a wall-clock limit: a refusal with 50,000 live nonces against one with 1,000 (best of
    // three). Pruning by a walk over every entry made each refusal walk the whole cache: 42x here (1 ms a refusal).
    const refusals = (share: number) => {
      let now = 1_000_000;
      const guard = new ReplayGuard({ windowMs: 30_000, capacity: share * 4, perSender: share, now: () => now });
      for (let i = 0; i < share; i++) guard.admit("flooder", `n${i}`, now);
      let best = Infinity;
      for (let round = 0; round < 3; round++) {
        const start = process.hrtime.bigint();
        for (let i = 0; i < 500; i++) {
          now += 1; // time moves, nothing expires yet
          assert.throws(() => guard.admit("flooder", `r${round}-${i}`, now), { code: "ERR_CHANNEL_REPLAY_CACHE_FULL" });
        }
        best = Math.min(best, Number(process.hrtime.bigint() - start));
      }
      now += 31_000; // and once the window has passed, the share is free again
      guard.admit("flooder", "later", now);
      assert.equal(guard.size, 1);
      return best;
    };
    const small = refusals(1_000);
    const large = refusals(50_000);
    assert.ok(large < 4 * small, `${large} ns for 500 refusals at 50,000 nonces, ${small} at 1,000`);
  });
});
