// Two real gateway processes on one PostgreSQL database and one Redis: shared keys, revocations seen by
// the other at once, budgets exact across both, and one audit log that verifies.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import pg from "pg";
import {
  REDIS_URL,
  freshPostgresDatabase,
  postgresReachable,
  redisReachable,
  runCli,
  startGateway,
  tempDir,
} from "./helpers.js";

const services = (await postgresReachable()) && (await redisReachable());
const databaseUrl = services ? await freshPostgresDatabase() : "";

// The upstream: every answer reports 17 tokens.
const upstream = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        choices: [{ index: 0, message: { role: "assistant", content: "Paris." }, finish_reason: "stop" }],
        usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
      }),
    );
  });
});
await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
after(() => new Promise<void>((r) => upstream.close(() => r())));

const dir = tempDir();
const config = join(dir, "agentwall.json");
writeFileSync(
  config,
  JSON.stringify({
    rateLimits: { perIp: { limit: 100_000, periodMs: 60_000, burst: 100_000 }, expectedInstances: 2 },
    budgets: [{ name: "daily", per: "key", period: "day", tokens: 200 }],
  }),
);
const env = (home: string) => ({
  AGENTWALL_HOME: join(dir, home),
  AGENTWALL_DATABASE_URL: databaseUrl,
  AGENTWALL_REDIS_URL: REDIS_URL,
  AGENTWALL_MASTER_KEY: masterKey,
  AGENTWALL_CONFIG: config,
  AGENTWALL_LOG_LEVEL: "warn",
  AGENTWALL_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`,
  AGENTWALL_UPSTREAM_KEY: "sk-upstream-multi-0000000000000000",
});
const masterKey = randomBytes(32).toString("base64url");

const gateway = (home: string) => startGateway(env(home));

const cli = (args: string[]) => {
  const r = runCli(args, { env: env("cli") });
  return { status: r.code, stdout: r.stdout, stderr: r.stderr };
};

describe("two gateway processes on PostgreSQL and Redis", { skip: !services }, () => {
  it("share keys, see a revocation at once, keep one budget exact and one audit log", async () => {
    const a = await gateway("a");
    const b = await gateway("b");
    try {
      const created = cli(["keys", "create", "--subject", "multi", "--role", "user", "--json"]);
      assert.equal(created.status, 0, created.stderr);
      const { id, key } = JSON.parse(created.stdout) as { id: string; key: string };
      const chat = (url: string) =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({
            model: "gpt-4o-mini",
            max_tokens: 20,
            messages: [{ role: "user", content: "Capital of France?" }],
          }),
        });

      // Budget: 200 tokens; each request reserves about 30 and settles at 17. Fired at both at once.
      const statuses = await Promise.all(
        Array.from({ length: 24 }, async (_, i) => (await chat(i % 2 === 0 ? a.url : b.url)).status),
      );
      const ok = statuses.filter((s) => s === 200).length;
      assert.ok(
        statuses.every((s) => s === 200 || s === 429),
        statuses.join(","),
      );
      assert.ok(ok >= 6, `${ok} answered`);
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        const used = await db.query<{ used: string }>("select used from budget_usage where key like 'daily:tokens:%'");
        assert.equal(Number(used.rows[0]?.used), 17 * ok, "settled usage is exactly what was answered");
        assert.ok(17 * ok <= 200);
      } finally {
        await db.end();
      }

      // A revocation through the CLI is seen by both gateways without waiting for the cache bound.
      assert.equal(cli(["keys", "revoke", id]).status, 0);
      const started = Date.now();
      let refusedA = 0;
      let refusedB = 0;
      while ((refusedA !== 401 || refusedB !== 401) && Date.now() - started < 1500) {
        refusedA = (await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).status;
        refusedB = (await fetch(`${b.url}/metrics`, { headers: { authorization: `Bearer ${key}` } })).status;
      }
      assert.deepEqual([refusedA, refusedB], [401, 401], `still accepted after ${Date.now() - started} ms`);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    const verify = cli(["audit", "verify"]);
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  });
});
