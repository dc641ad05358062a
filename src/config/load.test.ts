import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../../test/helpers.js";
import { loadConfig } from "./load.js";

function fieldError(fn: () => unknown, code: string, field: string) {
  assert.throws(fn, (e: Error & { code?: string }) => {
    assert.equal(e.code, code);
    assert.ok(e.message.includes(field), `${e.message} should name ${field}`);
    return true;
  });
}

describe("loadConfig", () => {
  it("has safe defaults: loopback, 8787, no trusted proxy, ./.agentwall", () => {
    const dir = tempDir();
    const { config, secrets } = loadConfig({}, { cwd: dir });
    assert.equal(config.host, "127.0.0.1");
    assert.equal(config.port, 8787);
    assert.deepEqual(config.trustProxy, []);
    assert.equal(config.home, join(dir, ".agentwall"));
    assert.deepEqual(secrets, {});
  });

  it("reads JSON and YAML files and lets AGENTWALL_* override them", () => {
    const dir = tempDir();
    writeFileSync(join(dir, "agentwall.config.json"), JSON.stringify({ port: 9000, limits: { bodyBytes: 2048 } }));
    assert.equal(loadConfig({}, { cwd: dir }).config.port, 9000);
    assert.equal(loadConfig({}, { cwd: dir }).config.limits.bodyBytes, 2048);
    assert.equal(loadConfig({}, { cwd: dir }).config.limits.headerBytes, 16 * 1024);
    assert.equal(loadConfig({ AGENTWALL_PORT: "9100" }, { cwd: dir }).config.port, 9100);
    writeFileSync(join(dir, "c.yaml"), "host: 0.0.0.0\naudit:\n  witnessFile: /tmp/w.jsonl\n");
    const y = loadConfig({ AGENTWALL_CONFIG: "c.yaml" }, { cwd: dir }).config;
    assert.equal(y.host, "0.0.0.0");
    assert.equal(y.audit.witnessFile, "/tmp/w.jsonl");
  });

  it("names the exact field of an error", () => {
    const dir = tempDir();
    fieldError(() => loadConfig({ AGENTWALL_PORT: "70000" }, { cwd: dir }), "ERR_CONFIG_INVALID", "AGENTWALL_PORT");
    fieldError(() => loadConfig({ AGENTWALL_PORT: "8o80" }, { cwd: dir }), "ERR_CONFIG_INVALID", "AGENTWALL_PORT");
    fieldError(
      () => loadConfig({ AGENTWALL_DATABASE_URL: "mysql://x" }, { cwd: dir }),
      "ERR_CONFIG_INVALID",
      "/databaseUrl",
    );
    writeFileSync(join(dir, "a.json"), JSON.stringify({ limits: { bodyBytes: -1 } }));
    fieldError(
      () => loadConfig({ AGENTWALL_CONFIG: "a.json" }, { cwd: dir }),
      "ERR_CONFIG_INVALID",
      "/limits/bodyBytes",
    );
    writeFileSync(join(dir, "b.json"), JSON.stringify({ audit: { witnesFile: "x" } }));
    fieldError(
      () => loadConfig({ AGENTWALL_CONFIG: "b.json" }, { cwd: dir }),
      "ERR_CONFIG_INVALID",
      "/audit/witnesFile",
    );
    writeFileSync(join(dir, "c.json"), "{ not json");
    fieldError(() => loadConfig({ AGENTWALL_CONFIG: "c.json" }, { cwd: dir }), "ERR_CONFIG_FILE", "c.json");
    fieldError(() => loadConfig({ AGENTWALL_CONFIG: "missing.json" }, { cwd: dir }), "ERR_CONFIG_FILE", "missing.json");
    writeFileSync(join(dir, "p.json"), '{"__proto__": {"port": 1}}');
    fieldError(() => loadConfig({ AGENTWALL_CONFIG: "p.json" }, { cwd: dir }), "ERR_CONFIG_INVALID", "__proto__");
  });

  it("keeps secrets out of the config object and refuses two master key sources", () => {
    const dir = tempDir();
    const { config, secrets } = loadConfig(
      { AGENTWALL_MASTER_KEY: "k".repeat(43), AGENTWALL_UPSTREAM_KEY: "sk-up" },
      { cwd: dir },
    );
    assert.ok(!JSON.stringify(config).includes("kkkk"));
    assert.equal(secrets.upstreamKey, "sk-up");
    fieldError(
      () => loadConfig({ AGENTWALL_MASTER_KEY: "k".repeat(43), AGENTWALL_MASTER_KEY_FILE: "/x" }, { cwd: dir }),
      "ERR_CONFIG_INVALID",
      "masterKeyFile",
    );
  });
});

describe("guard policy in the configuration", () => {
  it("merges over the defaults, refuses unknown actions and thresholds out of range, and reaches the instance's guard", async () => {
    const { guardFromConfig } = await import("../instance.js");
    const dir = tempDir();
    writeFileSync(
      join(dir, "agentwall.config.json"),
      JSON.stringify({
        guard: { input: { pii: "redact", injectionThreshold: 0.7 }, bySource: { tool: { injection: "flag" } } },
      }),
    );
    const { config } = loadConfig({}, { cwd: dir });
    const guard = guardFromConfig(config);
    assert.equal(guard.policy.input.pii, "redact");
    assert.equal(guard.policy.input.injectionThreshold, 0.7);
    assert.equal(guard.policy.input.secrets, "redact", "unset fields keep the default");
    assert.equal(guard.policy.bySource.tool?.injection, "flag");
    assert.equal(guard.policy.bySource.tool?.injectionThreshold, 0.4, "the default per-source setting stays");
    assert.equal(guard.scan("mail jane@example.org").text, "mail [REDACTED:email]");
    assert.deepEqual(guard.cache?.maxEntries, 10_000, "verdicts are kept by default");
    const sized = { guard: { cache: { maxEntries: 50, maxChars: 1000 } } };
    writeFileSync(join(dir, "agentwall.config.json"), JSON.stringify(sized));
    const kept = guardFromConfig(loadConfig({}, { cwd: dir }).config).cache;
    assert.deepEqual([kept?.maxEntries, kept?.maxChars], [50, 1000]);
    writeFileSync(join(dir, "agentwall.config.json"), JSON.stringify({ guard: { cache: false } }));
    assert.equal(guardFromConfig(loadConfig({}, { cwd: dir }).config).cache, undefined);
    for (const bad of [
      { input: { pii: "shred" } },
      { input: { injectionThreshold: 2 } },
      { bySource: { root: {} } },
      { cache: true },
      { cache: { maxEntries: 0 } },
      { cache: { ttl: 5 } },
    ]) {
      writeFileSync(join(dir, "agentwall.config.json"), JSON.stringify({ guard: bad }));
      assert.throws(() => loadConfig({}, { cwd: dir }), { code: "ERR_CONFIG_INVALID" }, JSON.stringify(bad));
    }
  });
});
