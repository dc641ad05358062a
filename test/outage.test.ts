// PostgreSQL cut under a running gateway (through a TCP proxy this test controls; the machine's server
// keeps running): requests needing state fail closed with 503, /readyz says why, and service resumes
// when the database is back.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { freshPostgresDatabase, postgresReachable, tempDir } from "./helpers.js";

const MAIN = join(import.meta.dirname, "../dist/cli/main.js");
const pgUp = await postgresReachable();
const databaseUrl = pgUp ? await freshPostgresDatabase() : "";

/** A TCP proxy to the real PostgreSQL that can be cut (every connection dropped, new ones refused). */
async function cuttableProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  const open = async () => {
    server = net.createServer((client) => {
      const up = net.connect(Number(target.port || 5432), target.hostname);
      for (const s of [client, up]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(up).pipe(client);
    });
    await new Promise<void>((r) => server?.listen(port, "127.0.0.1", r));
    port = (server.address() as net.AddressInfo).port;
  };
  await open();
  return {
    get port() {
      return port;
    },
    async cut() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server?.close(r));
    },
    restore: open,
  };
}

describe("PostgreSQL outage under a running gateway", { skip: !pgUp }, () => {
  it("fails closed with 503 while the database is cut, and recovers", async () => {
    const target = new URL(databaseUrl);
    const proxy = await cuttableProxy(target);
    const viaProxy = new URL(databaseUrl);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const env = {
      PATH: process.env.PATH ?? "",
      AGENTWALL_HOME: tempDir(),
      AGENTWALL_DATABASE_URL: viaProxy.toString(),
      AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url"),
      AGENTWALL_LOG_LEVEL: "warn",
    };
    // Not spawnSync: the proxy lives in this process's event loop.
    const created = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [MAIN, "keys", "create", "--subject", "ops", "--role", "admin", "--json"], {
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      c.on("exit", (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(created.status, 0, created.stdout + created.stderr);
    const key = (JSON.parse(created.stdout) as { key: string }).key;
    const child = spawn(process.execPath, [MAIN, "serve", "--port", "0"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let childErr = "";
    child.stderr.on("data", (d: Buffer) => (childErr += d.toString()));
    child.on("exit", (code, signal) => {
      if (code !== 0) process.stderr.write(`gateway exited ${code} ${signal}: ${childErr.slice(0, 2000)}\n`);
    });
    const exited = new Promise((resolve) => child.on("exit", resolve));
    let url: string | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      url = /^agentwall listening on (\S+)$/.exec(line)?.[1];
      if (url !== undefined) break;
    }
    const events = () => fetch(`${url}/v1/admin/audit/events?limit=1`, { headers: { authorization: `Bearer ${key}` } });
    try {
      assert.equal((await events()).status, 200);
      await proxy.cut();
      const during = await events();
      assert.equal(during.status, 503, await during.clone().text());
      assert.equal(((await during.json()) as { error: { code: string } }).error.code, "ERR_DATABASE_UNAVAILABLE");
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 503);
      assert.equal(((await ready.json()) as { checks: { database: string } }).checks.database, "database unreachable");
      assert.equal((await fetch(`${url}/healthz`)).status, 200, "the process itself is alive");
      await proxy.restore();
      let after = 0;
      for (let i = 0; i < 50 && after !== 200; i++) {
        after = (await events()).status;
        if (after !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(after, 200, "service resumes when the database is back");
    } finally {
      child.kill("SIGTERM");
      await exited;
      await proxy.cut().catch(() => undefined);
    }
  });
});
