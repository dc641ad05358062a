// agentwall ca init / issue / list / revoke / renew / crl as operators run them, and the issued files
// used for a real channel.
import assert from "node:assert/strict";
import { X509Certificate, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ChannelServer, CrlVerifier, connectChannel } from "../src/channel/index.js";
import { runCli, tempDir } from "./helpers.js";

describe("agentwall ca", () => {
  const dir = tempDir();
  const env = { AGENTWALL_HOME: join(dir, "home"), AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url") };
  const cli = (args: string[]) => runCli(args, { env });

  it("refuses to issue before init (usage, exit 2), then inits idempotently", () => {
    const early = cli(["ca", "issue", "hub"]);
    assert.equal(early.code, 2, early.stderr);
    assert.match(early.stderr, /ERR_CA_NOT_INITIALIZED/);
    const first = cli(["ca", "init"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^-----BEGIN CERTIFICATE-----/);
    assert.equal(cli(["ca", "init"]).stdout, first.stdout);
    assert.ok(statSync(join(env.AGENTWALL_HOME, "ca", "crl.pem")).isFile());
  });

  it("issues files a channel runs on, lists, revokes (CRL file rewritten) and renews", async () => {
    const out = join(dir, "certs");
    for (const agent of ["hub", "worker"]) {
      const r = cli(["ca", "issue", agent, "--out", out, "--hours", "2", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const line = JSON.parse(r.stdout) as { serial: string; agent: string; privateKey: string | null };
      assert.equal(line.agent, agent);
      assert.equal(line.privateKey, null, "with --out the key goes to the file only");
    }
    assert.equal(statSync(join(out, "worker.key")).mode & 0o777, 0o600);
    assert.equal(cli(["ca", "issue", "Not Valid"]).code, 2);

    const files = (agent: string) => ({
      certificatePem: readFileSync(join(out, `${agent}.crt`), "utf8"),
      privateKeyPem: readFileSync(join(out, `${agent}.key`), "utf8"),
    });
    const caPem = readFileSync(join(out, "ca.crt"), "utf8");
    const crlPath = join(env.AGENTWALL_HOME, "ca", "crl.pem");
    const verifier = () => new CrlVerifier({ caCertificatePem: caPem, loadCrl: async () => readFileSync(crlPath) });
    const server = await ChannelServer.listen({
      identity: files("hub"),
      verifier: verifier(),
      authorize: async (from) => from === "worker",
      onMessage: (m, c) => c.send("ack", {}, m.nonce).then(() => undefined),
    });
    const dial = () =>
      connectChannel({
        identity: files("worker"),
        verifier: verifier(),
        authorize: async () => true,
        host: "127.0.0.1",
        port: server.address.port,
        expectedPeer: "hub",
      });
    try {
      const c = await dial();
      assert.equal((await c.request("ping", {})).type, "ack");
      c.close();

      const list = cli(["ca", "list", "--agent", "worker", "--json"]);
      const rows = list.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { serial: string; status: string });
      assert.equal(rows.length, 1);
      const serial = rows[0]?.serial ?? "";
      assert.equal(serial, new X509Certificate(files("worker").certificatePem).serialNumber);

      const revoked = cli(["ca", "revoke", serial, "--reason", "keyCompromise"]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal(cli(["ca", "revoke", serial]).code, 1, "already revoked");
      assert.equal(cli(["ca", "revoke", "ABCDEF"]).code, 1, "unknown serial");
      assert.equal(cli(["ca", "revoke", serial, "--reason", "bored"]).code, 2);
      // The hub (a fresh verifier reading the rewritten file) now refuses the worker.
      await server.close();
      const hub2 = await ChannelServer.listen({
        identity: files("hub"),
        verifier: verifier(),
        authorize: async () => true,
        onMessage: () => undefined,
      });
      try {
        const again = await connectChannel({
          identity: files("worker"),
          verifier: verifier(),
          authorize: async () => true,
          host: "127.0.0.1",
          port: hub2.address.port,
          expectedPeer: "hub",
        });
        await assert.rejects(again.request("ping", {}), { code: "ERR_CERT_REVOKED" });
      } finally {
        await hub2.close();
      }
      assert.equal(cli(["ca", "renew", serial]).code, 1, "a revoked certificate is not renewed");

      const hubSerial = new X509Certificate(files("hub").certificatePem).serialNumber;
      const renewed = cli(["ca", "renew", hubSerial, "--hours", "1"]);
      assert.equal(renewed.code, 0, renewed.stderr);
      const fresh = new X509Certificate(renewed.stdout);
      assert.equal(fresh.subject, "CN=hub");
      assert.notEqual(fresh.serialNumber, hubSerial);
      assert.ok(fresh.publicKey.equals(new X509Certificate(files("hub").certificatePem).publicKey));

      const crl = cli(["ca", "crl"]);
      assert.equal(crl.code, 0);
      assert.match(crl.stdout, /^-----BEGIN X509 CRL-----/);
      const fromCli = new CrlVerifier({ caCertificatePem: caPem, loadCrl: async () => Buffer.from(crl.stdout) });
      await assert.rejects(fromCli.verifyPeer(new X509Certificate(files("worker").certificatePem)), {
        code: "ERR_CERT_REVOKED",
      });
    } finally {
      await server.close().catch(() => undefined);
    }
  });
});
