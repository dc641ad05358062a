// The CLI as users run it: a real process, real exit codes, real files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { loadConfig } from "../src/config/load.js";
import { openInstance } from "../src/instance.js";
import Database from "better-sqlite3";
import { tempDir } from "./helpers.js";

// The built CLI (npm test builds first): what users run, and 0.7 s a call instead of 2 s through tsx.
const MAIN = join(import.meta.dirname, "../dist/cli/main.js");

function cli(args: string[], env: Record<string, string>, input?: string) {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    input: input ?? "",
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function setupHome() {
  const home = tempDir();
  const env = { AGENTWALL_HOME: home, AGENTWALL_MASTER_KEY: randomBytes(32).toString("hex") };
  return { home, env, db: join(home, "agentwall.db") };
}

describe("agentwall CLI", () => {
  it("help exits 0, unknown commands and bad options exit 2", () => {
    assert.equal(cli(["--help"], {}).code, 0);
    assert.equal(cli(["audit", "--help"], {}).code, 0);
    assert.equal(cli(["frobnicate"], {}).code, 2);
    assert.equal(cli(["audit", "query", "--limit", "0"], setupHome().env).code, 2);
    const bad = cli(["audit", "query"], { ...setupHome().env, AGENTWALL_PORT: "99999" });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ERR_CONFIG_INVALID.*AGENTWALL_PORT/);
  });

  it("init creates the first admin key once; keys verify reads it from stdin", () => {
    const { env } = setupHome();
    const init = cli(["init", "--json"], env);
    assert.equal(init.code, 0, init.stderr);
    const created = JSON.parse(init.stdout) as { id: string; key: string; expiresAt: null };
    assert.match(created.key, /^aw_[0-9a-z]{12}_[0-9A-Za-z]{49}$/);
    assert.equal(created.expiresAt, null);
    assert.deepEqual(JSON.parse(cli(["init", "--json"], env).stdout), { initialized: true, adminKeyCreated: false });
    const ok = cli(["keys", "verify", "-", "--json"], env, created.key + "\n");
    assert.equal(ok.code, 0);
    assert.equal(JSON.parse(ok.stdout).result, "VALID");
    const miss = cli(["keys", "verify", "-", "--json"], env, "aw_notakey");
    assert.equal(miss.code, 1);
    assert.equal(JSON.parse(miss.stdout).result, "NOT_FOUND");
    assert.equal(cli(["keys", "verify", created.key], env).code, 2, "keys are never taken from the command line");
    const made = JSON.parse(
      cli(["keys", "create", "--subject", "bob", "--name", "ci", "--expires", "1d", "--json"], env).stdout,
    );
    assert.deepEqual(Object.keys(made).sort(), ["expiresAt", "id", "key"]);
    const unknownRole = cli(["keys", "create", "--subject", "bob", "--role", "nope"], env);
    assert.equal(unknownRole.code, 2, "a key with a role nobody defined is refused");
    assert.match(unknownRole.stderr, /ERR_ROLE_UNKNOWN: role nope is not defined/);
    assert.ok(made.expiresAt > Date.now());
    const rotated = cli(["keys", "rotate", made.id, "--grace", "1h", "--json"], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const next = JSON.parse(rotated.stdout) as { id: string; key: string };
    assert.equal(JSON.parse(cli(["keys", "verify", "-", "--json"], env, next.key).stdout).result, "VALID");
    assert.equal(
      JSON.parse(cli(["keys", "verify", "-", "--json"], env, made.key).stdout).result,
      "VALID",
      "grace period",
    );
    assert.equal(cli(["keys", "rotate", made.id, "--grace", "soon"], env).code, 2);
    assert.equal(cli(["keys", "revoke", made.id], env).code, 0);
    assert.equal(cli(["sessions", "revoke"], env).code, 2, "an id or --subject is required");
    assert.equal(cli(["sessions", "revoke", "nosuchsession123"], env).code, 1);
    const sessions = cli(["sessions", "list", "--json"], env);
    assert.equal(sessions.code, 0);
    assert.equal(sessions.stdout, "");
    assert.equal(JSON.parse(cli(["keys", "verify", "-", "--json"], env, made.key).stdout).result, "REVOKED");
    assert.equal(cli(["keys", "revoke"], env).code, 2, "an id or --subject is required");
    assert.equal(cli(["keys", "suspend", next.id], env).stdout, `suspended ${next.id}\n`);
    assert.equal(JSON.parse(cli(["keys", "verify", "-", "--json"], env, next.key).stdout).result, "SUSPENDED");
    assert.match(cli(["keys", "list", "--subject", "bob"], env).stdout, /\tsuspended \(cli\)\n/);
    assert.equal(cli(["keys", "resume", next.id], env).code, 0);
    assert.equal(cli(["keys", "resume", next.id], env).code, 1, "not suspended any more");
    assert.equal(JSON.parse(cli(["keys", "verify", "-", "--json"], env, next.key).stdout).result, "VALID");
    const bySubject = cli(["keys", "revoke", "--subject", "bob"], env);
    assert.equal(bySubject.stdout, "revoked 1 key(s) of bob\n", "the rotated replacement was bob's last key");
    assert.equal(JSON.parse(cli(["keys", "verify", "-", "--json"], env, next.key).stdout).result, "REVOKED");
  });

  it("roles: define, assign on a resource, check with exit codes, refuse cycles", () => {
    const { env } = setupHome();
    assert.equal(cli(["roles", "define", "auditor", "--grant", "audit:verify", "--inherits", "viewer"], env).code, 0);
    assert.equal(cli(["roles", "assign", "dana", "auditor", "--on", "agent:billing"], env).code, 0);
    assert.equal(cli(["roles", "check", "dana", "audit:verify", "--on", "agent:billing"], env).code, 0);
    const denied = cli(["roles", "check", "dana", "audit:verify", "--json"], env);
    assert.equal(denied.code, 1);
    assert.equal((JSON.parse(denied.stdout) as { allowed: boolean }).allowed, false);
    assert.equal(cli(["roles", "define", "viewer2", "--inherits", "nope"], env).code, 2);
    const listed = cli(["roles", "list", "--json"], env)
      .stdout.trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { name: string });
    assert.deepEqual(listed.map((r) => r.name).sort(), ["admin", "auditor", "developer", "user", "viewer"]);
  });

  it("vault: values only from stdin or an env var, printed only with --reveal", () => {
    const { env } = setupHome();
    const secret = "sk-cli-vault-secret-value-123456";
    assert.equal(cli(["vault", "set", "openai", "--host", "api.openai.com"], env, secret + "\n").code, 0);
    assert.equal(cli(["vault", "rotate", "openai", "--value-env", "V"], { ...env, V: secret + "-v2" }).code, 0);
    const list = cli(["vault", "list", "--json"], env);
    assert.equal(list.code, 0);
    assert.ok(!list.stdout.includes(secret));
    assert.equal((JSON.parse(list.stdout) as { currentVersion: number }).currentVersion, 2);
    assert.equal(cli(["vault", "get", "openai"], env).code, 2, "--reveal is required");
    assert.equal(cli(["vault", "get", "openai", "--reveal"], env).stdout.trim(), secret + "-v2");
    assert.equal(cli(["vault", "rollback", "openai", "--version", "1"], env).code, 0);
    assert.equal(cli(["vault", "get", "openai", "--reveal"], env).stdout.trim(), secret);
    assert.equal(cli(["vault", "set", "empty", "--host", "a.example"], env, "").code, 2);
    assert.equal(cli(["vault", "delete", "openai"], env).code, 0);
    assert.equal(cli(["vault", "get", "openai", "--reveal"], env).code, 1);
  });

  it("a wrong master key exits 3 and never looks like tampering", () => {
    const { env } = setupHome();
    assert.equal(cli(["init", "--json"], env).code, 0);
    const wrong = cli(["audit", "verify"], { ...env, AGENTWALL_MASTER_KEY: randomBytes(32).toString("hex") });
    assert.equal(wrong.code, 3);
    assert.match(wrong.stderr, /ERR_MASTER_KEY_MISMATCH/);
    const malformed = cli(["audit", "verify"], { ...env, AGENTWALL_MASTER_KEY: "secret-value-that-is-wrong" });
    assert.equal(malformed.code, 3);
    assert.ok(!malformed.stderr.includes("secret-value"));
    const unreachable = cli(["audit", "verify"], { ...env, AGENTWALL_DATABASE_URL: "postgres://127.0.0.1:1/none" });
    assert.equal(unreachable.code, 3);
  });

  it("without a master key the SQLite default generates one, and never a second one for existing data", () => {
    const { home } = setupHome();
    assert.equal(cli(["init", "--json"], { AGENTWALL_HOME: home }).code, 0);
    rmSync(join(home, "master.key"));
    const again = cli(["audit", "verify"], { AGENTWALL_HOME: home });
    assert.equal(again.code, 3);
    assert.match(again.stderr, /ERR_MASTER_KEY_MISSING/);
    const pg = cli(["audit", "verify"], {
      AGENTWALL_HOME: home,
      AGENTWALL_DATABASE_URL: "postgres://127.0.0.1:5432/test",
    });
    assert.equal(pg.code, 3);
    assert.match(pg.stderr, /ERR_MASTER_KEY_MISSING/);
  });

  describe("audit verify exit codes", () => {
    // Seeded in-process through the library (fast); then only `audit verify` runs as a process.
    async function seeded(extraEnv: Record<string, string> = {}, s = setupHome()) {
      const env = { ...s.env, ...extraEnv };
      const { config, secrets } = loadConfig(env, { cwd: s.home });
      const instance = await openInstance(config, secrets);
      for (let i = 0; i < 4; i++) await instance.apiKeys.create({ owner: `u${i}`, name: "k", creator: "test" });
      await instance.audit.checkpoint();
      for (let i = 4; i < 6; i++) await instance.apiKeys.create({ owner: `u${i}`, name: "k", creator: "test" });
      await instance.audit.checkpoint();
      await instance.close();
      const intact = cli(["audit", "verify"], env);
      assert.equal(intact.code, 0, intact.stdout + intact.stderr);
      const sqlite = new Database(s.db);
      after(() => sqlite.close());
      return { ...s, env, sqlite };
    }

    it("altered row -> 1 with its sequence number", async () => {
      const { env, sqlite } = await seeded();
      sqlite.prepare("update audit_events set actor = 'mallory' where seq = 3").run();
      const r = cli(["audit", "verify"], env);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /first bad sequence number 3 /);
    });

    it("deleted row -> 1", async () => {
      const { env, sqlite } = await seeded();
      sqlite.prepare("delete from audit_events where seq = 2").run();
      const r = cli(["audit", "verify", "--json"], env);
      assert.equal(r.code, 1);
      assert.deepEqual([JSON.parse(r.stdout).problem, JSON.parse(r.stdout).firstBadSeq], ["ROW_MISSING", 2]);
    });

    it("swapped rows -> 1", async () => {
      const { env, sqlite } = await seeded();
      sqlite.exec(
        "update audit_events set seq = -1 where seq = 2; update audit_events set seq = 2 where seq = 3; update audit_events set seq = 3 where seq = -1;",
      );
      assert.equal(cli(["audit", "verify"], env).code, 1);
    });

    it("truncated tail -> 1", async () => {
      const { env, sqlite } = await seeded();
      sqlite.prepare("delete from audit_events where seq > 4").run();
      assert.equal(cli(["audit", "verify"], env).code, 1);
    });

    it("tail truncated with its checkpoints -> 1 with --witness", async () => {
      const s = setupHome();
      const witness = join(tempDir(), "witness.jsonl");
      const { env, sqlite } = await seeded(
        { AGENTWALL_CONFIG: writeConfig(s.home, { audit: { witnessFile: witness } }) },
        s,
      );
      const size = (sqlite.prepare("select max(size) as n from audit_checkpoints").get() as { n: number }).n;
      const first = (sqlite.prepare("select min(size) as n from audit_checkpoints").get() as { n: number }).n;
      sqlite.prepare("delete from audit_events where seq > ?").run(first);
      sqlite.prepare("delete from audit_checkpoints where size > ?").run(first);
      const leaves = sqlite.prepare("select leaf from audit_events order by seq").all() as Array<{ leaf: string }>;
      rewindHead(
        sqlite,
        leaves.map((l) => l.leaf),
      );
      assert.ok(size > first);
      assert.equal(cli(["audit", "verify"], env).code, 0, "invisible without the witness");
      const r = cli(["audit", "verify", "--witness", witness], env);
      assert.equal(r.code, 1);
      assert.match(r.stdout, new RegExp(`first bad sequence number ${first + 1} `));
      // `check` verifies against the configured witness file by itself.
      const checked = cli(["check", "--json"], env);
      assert.equal(checked.code, 1, checked.stdout);
      assert.ok(
        JSON.parse(checked.stdout).checks.some(
          (c: { name: string; status: string }) => c.name === "audit-integrity" && c.status === "fail",
        ),
      );
    });

    it("forged checkpoint -> 1", async () => {
      const { env, sqlite } = await seeded();
      sqlite
        .prepare("update audit_checkpoints set root = ? where size = (select max(size) from audit_checkpoints)")
        .run("00".repeat(32));
      const r = cli(["audit", "verify"], env);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /CHECKPOINT_FORGED/);
    });

    it("a malformed witness file -> 2", async () => {
      const { env, home } = await seeded();
      const bad = join(home, "bad.jsonl");
      writeFileSync(bad, "not json\n");
      assert.equal(cli(["audit", "verify", "--witness", bad], env).code, 2);
    });
  });

  it("audit query and export print what was logged", () => {
    const { env, home } = setupHome();
    cli(["init", "--json"], env);
    const q = cli(["audit", "query", "--type", "key_created", "--json"], env);
    assert.equal(q.code, 0);
    const rows = q.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.type, "key_created");
    const out = join(home, "export.jsonl");
    assert.equal(cli(["audit", "export", "--out", out], env).code, 0);
    const exported = readFileSync(out, "utf8").trim().split("\n");
    assert.equal(exported.length, 1);
    // An export never overwrites, and a path it cannot write is ERR_IO (it was ERR_INTERNAL).
    const again = cli(["audit", "export", "--out", out], env);
    assert.deepEqual([again.code, /ERR_IO: .* exists/.test(again.stderr)], [3, true], again.stderr);
    const nowhere = cli(["audit", "export", "--out", join(home, "no", "such", "dir.jsonl")], env);
    assert.deepEqual([nowhere.code, /ERR_IO: cannot write/.test(nowhere.stderr)], [3, true], nowhere.stderr);
    assert.equal(readFileSync(out, "utf8").trim().split("\n").length, 1);
    assert.equal(cli(["audit", "query", "--since", "tomorrow"], env).code, 2);
  });

  it("check exits 0 on the default setup with warnings, 1 when a check fails", () => {
    const { env, home } = setupHome();
    cli(["init", "--json"], env);
    const ok = cli(["check", "--json"], env);
    assert.equal(ok.code, 0, ok.stdout);
    const report = JSON.parse(ok.stdout);
    assert.ok(
      report.checks.some((c: { name: string; status: string }) => c.name === "admin-key-expiry" && c.status === "warn"),
    );
    const names = (report.checks as Array<{ name: string; status: string }>).map((c) => `${c.name}:${c.status}`);
    for (const n of [
      "upstream-tls:pass",
      "metrics-listener:pass",
      "guard-fail-open:pass",
      "route-permissions:pass",
      "key-expiry:warn",
      "key-age:pass",
      "master-key-age:pass",
      "session-secret:pass",
    ])
      assert.ok(names.includes(n), n);
    // A plain-HTTP upstream off this machine fails; guards failing open and a public metrics listener warn.
    const risky = cli(["check", "--json"], {
      ...env,
      AGENTWALL_UPSTREAM_URL: "http://llm.internal.example:8000/v1",
      AGENTWALL_SESSION_SECRET: "ab".repeat(20),
      AGENTWALL_CONFIG: writeConfig(home, {
        guard: { onScannerError: "flag" },
        metricsListen: { host: "0.0.0.0", port: 9464 },
        // Two halves of the address space trust everyone as surely as 0.0.0.0/0.
        trustProxy: ["10.0.0.0/8", "0.0.0.0/1", "128.0.0.0/1"],
      }),
    });
    assert.equal(risky.code, 1, risky.stdout);
    const riskyNames = (JSON.parse(risky.stdout).checks as Array<{ name: string; status: string }>).map(
      (c) => `${c.name}:${c.status}`,
    );
    for (const n of [
      "upstream-tls:fail",
      "metrics-listener:warn",
      "guard-fail-open:warn",
      "session-secret:fail",
      "trust-proxy:fail",
    ])
      assert.ok(riskyNames.includes(n), n);
    // Keys older than their rotation periods (the clock moved back in the database).
    const db = new Database(join(home, "agentwall.db"));
    db.prepare("update master_keys set created_at = ?").run(Date.now() - 400 * 86_400_000);
    db.prepare("update api_keys set created_at = ?").run(Date.now() - 91 * 86_400_000);
    db.close();
    const aged = cli(["check", "--json"], env);
    const agedNames = (JSON.parse(aged.stdout).checks as Array<{ name: string; status: string }>).map(
      (c) => `${c.name}:${c.status}`,
    );
    for (const n of ["master-key-age:warn", "key-age:warn"]) assert.ok(agedNames.includes(n), n);
    // An audit sink that has taken nothing for over ten minutes (events made an hour ago, never shipped).
    const shipping = { ...env, AGENTWALL_CONFIG: writeConfig(home, { audit: { ship: [{ kind: "stdout" }] } }) };
    const fresh = cli(["check", "--json", "--no-verify-audit"], shipping);
    assert.ok(fresh.stdout.includes('"audit-shipping","status":"pass"'), fresh.stdout);
    const rewound = new Database(join(home, "agentwall.db"));
    rewound.prepare("update audit_events set ts = ?").run(Date.now() - 3_600_000);
    rewound.close();
    const stuck = cli(["check", "--json", "--no-verify-audit"], shipping);
    const stuckItem = (
      JSON.parse(stuck.stdout).checks as Array<{ name: string; status: string; message: string }>
    ).find((c) => c.name === "audit-shipping");
    assert.equal(stuckItem?.status, "warn", stuck.stdout);
    assert.match(stuckItem?.message ?? "", /stdout has not taken \d+ events/);
    chmodSync(home, 0o755);
    const bad = cli(["check", "--json"], env);
    assert.equal(bad.code, 1);
    assert.ok(
      JSON.parse(bad.stdout).checks.some(
        (c: { name: string; status: string }) => c.name === "data-directory-permissions" && c.status === "fail",
      ),
    );
  });
});

function writeConfig(home: string, config: unknown): string {
  const path = join(home, "agentwall.config.json");
  writeFileSync(path, JSON.stringify(config));
  return path;
}

function rewindHead(sqlite: Database.Database, leaves: string[]) {
  // Recompute the frontier the way an attacker with the code would.
  const node = (l: Buffer, r: Buffer) =>
    createHash("sha256")
      .update(Buffer.from([1]))
      .update(l)
      .update(r)
      .digest();
  const stack: Array<[number, Buffer]> = [];
  for (const hex of leaves) {
    let h = 0;
    let v = Buffer.from(hex, "hex");
    while (stack.length > 0 && stack[stack.length - 1]?.[0] === h) {
      v = node((stack.pop() as [number, Buffer])[1], v);
      h += 1;
    }
    stack.push([h, v]);
  }
  let root = (stack[stack.length - 1] as [number, Buffer])[1];
  for (let i = stack.length - 2; i >= 0; i--) root = node((stack[i] as [number, Buffer])[1], root);
  sqlite
    .prepare("update audit_head set size = ?, frontier = ?, root = ? where id = 1")
    .run(leaves.length, JSON.stringify(stack.map(([h, b]) => [h, b.toString("hex")])), root.toString("hex"));
}
