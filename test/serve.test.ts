// `agentwall serve` as `npm start` runs it: a real process on a real socket.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { startGateway, tempDir } from "./helpers.js";

const MAIN = join(import.meta.dirname, "../dist/cli/main.js");

const startServer = startGateway;

describe("agentwall serve", () => {
  it("starts on an empty data directory with nothing but SQLite, serves health, shuts down cleanly on SIGTERM", async () => {
    const home = tempDir();
    const { child, url, exited } = await startServer({ AGENTWALL_HOME: home });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(health.headers.get("x-frame-options"), "DENY");
    const ready = await fetch(`${url}/readyz`);
    assert.deepEqual(await ready.json(), {
      status: "ready",
      checks: { database: "ok", migrations: "ok", masterKey: "ok" },
    });
    const denied = await fetch(`${url}/v1/admin/audit/events`);
    assert.equal(denied.status, 401);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
    const db = new Database(join(home, "agentwall.db"), { readonly: true });
    const events = db.prepare("select count(*) as n from audit_events").get() as { n: number };
    const checkpoints = db.prepare("select max(size) as n from audit_checkpoints").get() as { n: number };
    db.close();
    assert.equal(events.n, 1);
    assert.equal(checkpoints.n, 1, "the audit log is flushed and checkpointed on shutdown");
  });

  it("names the address when it cannot listen (port in use): ERR_LISTEN_FAILED, exit 3", async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const { port } = busy.address() as AddressInfo;
    try {
      const env = { PATH: process.env.PATH ?? "", AGENTWALL_HOME: tempDir() };
      const r = spawnSync(process.execPath, [MAIN, "serve", "--port", String(port)], {
        env,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(r.status, 3, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`ERR_LISTEN_FAILED: cannot listen on 127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`),
      );
    } finally {
      busy.close();
    }
  });

  it("refuses to start with a wrong master key (exit 3)", () => {
    const home = tempDir();
    const env = { PATH: process.env.PATH ?? "", AGENTWALL_HOME: home };
    assert.equal(spawnSync(process.execPath, [MAIN, "init", "--json"], { env }).status, 0);
    writeFileSync(join(home, "master.key"), "11".repeat(32) + "\n", { mode: 0o600 });
    const r = spawnSync(process.execPath, [MAIN, "serve", "--port", "0"], { env, encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /ERR_MASTER_KEY_MISMATCH/);
  });

  it(
    "serves HTTPS (TLS 1.2+) when a certificate is configured",
    { skip: spawnSync("openssl", ["version"]).status !== 0 && "openssl not installed" },
    async () => {
      const home = tempDir();
      const cert = join(home, "cert.pem");
      const key = join(home, "key.pem");
      const made = spawnSync("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        cert,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ]);
      assert.equal(made.status, 0);
      const config = join(home, "agentwall.config.json");
      writeFileSync(config, JSON.stringify({ tls: { certFile: cert, keyFile: key } }));
      const { child, url, exited } = await startServer({ AGENTWALL_HOME: home, AGENTWALL_CONFIG: config });
      assert.match(url, /^https:/);
      const { readFileSync } = await import("node:fs");
      const body = await new Promise<{ status: number; protocol: string }>((resolve, reject) => {
        const req = httpsRequest(`${url}/healthz`, { ca: readFileSync(cert) }, (res) => {
          res.resume();
          resolve({
            status: res.statusCode ?? 0,
            protocol: (res.socket as import("node:tls").TLSSocket).getProtocol() ?? "",
          });
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(body.status, 200);
      assert.match(body.protocol, /^TLSv1\.[23]$/);
      const old = await new Promise<string>((resolve) => {
        const req = httpsRequest(
          `${url}/healthz`,
          { ca: readFileSync(cert), maxVersion: "TLSv1.1", minVersion: "TLSv1" },
          () => resolve("connected"),
        );
        req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
        req.end();
      });
      assert.notEqual(old, "connected", "TLS 1.1 is refused");
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    },
  );
});

describe("agentwall serve with a separate metrics listener", () => {
  it("serves /metrics there without a credential, and nothing else", async () => {
    const home = tempDir();
    const config = join(home, "agentwall.json");
    writeFileSync(config, JSON.stringify({ metricsListen: { port: 0 } }));
    const child = spawn(process.execPath, [MAIN, "serve", "--port", "0"], {
      env: {
        PATH: process.env.PATH ?? "",
        AGENTWALL_HOME: home,
        AGENTWALL_CONFIG: config,
        AGENTWALL_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    let gateway: string | undefined;
    let metrics: string | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      gateway ??= /^agentwall listening on (\S+)$/.exec(line)?.[1];
      metrics ??= /^agentwall metrics on (\S+)$/.exec(line)?.[1];
      if (gateway !== undefined && metrics !== undefined) break;
    }
    assert.match(String(metrics), /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    await fetch(`${gateway}/healthz`);
    const scraped = await fetch(String(metrics));
    assert.equal(scraped.status, 200);
    assert.match(
      await scraped.text(),
      /agentwall_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1/,
    );
    assert.equal((await fetch(String(metrics).replace("/metrics", "/v1/admin/audit/events"))).status, 404);
    assert.equal(
      (await fetch(`${gateway}/metrics`)).status,
      401,
      "the gateway's own /metrics still needs a credential",
    );
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  });
});
