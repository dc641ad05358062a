// After a realistic run (keys, sessions, vault values, audit events, request logs), the bytes at rest —
// the SQLite file with its -wal, a PostgreSQL dump, the log — hold none of the secrets in plain form; the
// same scan finds a secret planted in clear, so it can fail.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { loadConfig } from "../src/config/load.js";
import { buildServer } from "../src/gateway/server.js";
import { openInstance, sqlitePath } from "../src/instance.js";
import { POSTGRES_URL, freshPostgresDatabase, postgresReachable, tempDir } from "./helpers.js";

async function scenario(env: Record<string, string>) {
  const home = tempDir();
  const { config, secrets } = loadConfig(
    { AGENTWALL_HOME: home, AGENTWALL_MASTER_KEY: randomBytes(32).toString("hex"), ...env },
    { cwd: home },
  );
  const instance = await openInstance(config, secrets);
  const log: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, done) {
      log.push(chunk.toString());
      done();
    },
  });
  const app = await buildServer(instance, { logger: pino({ level: "debug" }, sink) });
  const planted: string[] = [];
  const admin = await instance.apiKeys.create({
    owner: "root",
    name: "admin",
    roles: ["admin"],
    creator: "test",
    meta: { note: "meta-secret-" + randomBytes(8).toString("hex") },
  });
  planted.push(admin.key);
  const vaultValue = "sk-proj-" + randomBytes(24).toString("hex");
  planted.push(vaultValue);
  const auth = { authorization: `Bearer ${admin.key}`, "content-type": "application/json" };
  await app.inject({
    method: "PUT",
    url: "/v1/admin/vault/openai",
    headers: auth,
    payload: { value: vaultValue, hosts: ["api.openai.com"] },
  });
  const session = (
    await app.inject({ method: "POST", url: "/v1/sessions", headers: { authorization: `Bearer ${admin.key}` } })
  ).json<{ token: string }>().token;
  planted.push(session);
  await app.inject({ method: "GET", url: "/v1/admin/audit/events", headers: { authorization: `Bearer ${session}` } });
  await app.inject({
    method: "GET",
    url: `/v1/admin/audit/events?token=${vaultValue}`,
    headers: { authorization: `Bearer ${admin.key}x` },
  });
  const recordBody = "record-secret-" + randomBytes(8).toString("hex");
  const recordMeta = "record-meta-" + randomBytes(8).toString("hex");
  await instance.records.store("root", "note", recordBody, { note: recordMeta });
  planted.push(recordBody, recordMeta);
  const password = "hunter2-" + randomBytes(6).toString("hex");
  planted.push(password);
  await instance.audit.append({
    type: "login",
    actor: "root",
    action: "login",
    outcome: "success",
    details: { password, authorization: `Bearer ${session}` },
  });
  await instance.audit.checkpoint();
  await app.close();
  return { instance, home, log, planted, config };
}

function scan(haystacks: readonly Buffer[], needles: readonly string[]): string[] {
  // Secrets are looked for whole and by a distinctive middle part (a partial copy is still a leak).
  return needles.filter((n) => haystacks.some((h) => h.includes(n) || h.includes(n.slice(8, 40))));
}

describe("secret scan of everything at rest", async () => {
  it("SQLite file, -wal and logs hold no planted secret; a planted clear copy is found", async () => {
    const { instance, log, planted, config } = await scenario({});
    const db = sqlitePath(config);
    const files = [db, `${db}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f));
    assert.ok(files.length === 2, "database and WAL both scanned");
    const haystacks = [...files, Buffer.from(log.join("\n"))];
    assert.deepEqual(scan(haystacks, planted), []);
    // Negative control: the same scan finds a secret written in clear.
    const canary = "sk-proj-" + randomBytes(24).toString("hex");
    await instance.apiKeys.create({ owner: "x", name: canary.slice(0, 60), creator: "test" });
    await instance.close();
    const after = [db, `${db}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f));
    assert.deepEqual(scan(after, [canary.slice(0, 60)]), [canary.slice(0, 60)]);
  });

  const pg = await postgresReachable();
  const dump = spawnSync("pg_dump", ["--version"]).status === 0;
  it(
    "a PostgreSQL dump holds no planted secret",
    { skip: (!pg && "PostgreSQL unreachable") || (!dump && "pg_dump not installed") },
    async () => {
      const url = await freshPostgresDatabase();
      const { instance, planted } = await scenario({ AGENTWALL_DATABASE_URL: url });
      await instance.close();
      const out = spawnSync("pg_dump", ["--data-only", url], { maxBuffer: 64 * 1024 * 1024 });
      assert.equal(out.status, 0, out.stderr?.toString());
      assert.ok(out.stdout.length > 1000);
      assert.deepEqual(scan([out.stdout], planted), []);
      assert.ok(POSTGRES_URL.length > 0);
    },
  );
});
