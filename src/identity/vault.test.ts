import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { auditedStore } from "../../test/helpers.js";
import { Vault, hostAllowed } from "./vault.js";

const SECRET = "sk-test-vault-value-0123456789abcdef";

async function setup() {
  const { store, keyring, audit } = await auditedStore();
  return { store, audit, vault: new Vault({ store, keyring, audit }) };
}

describe("provider-secret vault", () => {
  it("stores encrypted, lists metadata only, releases only to bound hosts, audits without the value", async () => {
    const { vault, store, audit } = await setup();
    assert.equal(await vault.set("openai", SECRET, ["api.openai.com", "*.openai.azure.com"], "cli"), 1);
    const dump = JSON.stringify(await store.db.selectFrom("vault_versions").selectAll().execute());
    assert.ok(!dump.includes(SECRET) && !dump.includes("0123456789abcdef"));
    const [info] = await vault.list();
    assert.deepEqual(
      [info?.name, info?.currentVersion, info?.hosts],
      ["openai", 1, ["api.openai.com", "*.openai.azure.com"]],
    );
    assert.ok(!JSON.stringify(info).includes(SECRET));
    const ok = await vault.releaseFor("openai", "api.openai.com", "egress");
    assert.deepEqual(ok, { allowed: true, value: SECRET, version: 1 });
    assert.equal((await vault.releaseFor("openai", "eu.openai.azure.com", "egress")).allowed, true);
    assert.deepEqual(
      await vault.releaseFor("openai", "evil.example", "egress").then((r) => !r.allowed && r.code),
      "ERR_FORBIDDEN",
    );
    assert.deepEqual(
      await vault.releaseFor("nope", "api.openai.com", "egress").then((r) => !r.allowed && r.code),
      "ERR_NOT_FOUND",
    );
    const trail = JSON.stringify(await audit.query({ limit: 100 }));
    assert.ok(!trail.includes(SECRET));
    assert.equal((await audit.query({ type: "data_access", outcome: "denied" })).events.length, 2);
  });

  it("rotates with versions and timestamps, rolls back, deletes", async () => {
    const { vault } = await setup();
    await vault.set("anthropic", "v1-secret-value", ["api.anthropic.com"], "cli");
    assert.equal(await vault.rotate("anthropic", "v2-secret-value", "cli"), 2);
    assert.equal(await vault.reveal("anthropic", "cli"), "v2-secret-value");
    await vault.rollback("anthropic", 1, "cli");
    assert.equal(await vault.reveal("anthropic", "cli"), "v1-secret-value");
    const info = await vault.info("anthropic");
    assert.deepEqual(
      info?.versions.map((v) => v.version),
      [1, 2],
    );
    assert.equal(info?.currentVersion, 1);
    await assert.rejects(vault.rollback("anthropic", 9, "cli"), { code: "ERR_NOT_FOUND" });
    await assert.rejects(vault.rotate("missing", "x", "cli"), { code: "ERR_NOT_FOUND" });
    assert.equal(await vault.delete("anthropic", "cli"), true);
    assert.equal(await vault.info("anthropic"), undefined);
    await assert.rejects(vault.reveal("anthropic", "cli"), { code: "ERR_NOT_FOUND" });
  });

  it("a sealed value moved to another version does not open", async () => {
    const { vault, store } = await setup();
    await vault.set("k", "first-value", ["a.example"], "cli");
    await vault.rotate("k", "second-value", "cli");
    const v1 = await store.db
      .selectFrom("vault_versions")
      .select("sealed")
      .where("version", "=", 1)
      .executeTakeFirstOrThrow();
    await store.db.updateTable("vault_versions").set({ sealed: v1.sealed }).where("version", "=", 2).execute();
    await assert.rejects(vault.reveal("k", "cli"), { code: "ERR_DECRYPT" });
  });

  it("validates names, hosts and values", async () => {
    const { vault } = await setup();
    await assert.rejects(vault.set("Bad Name", "v", ["a.example"], "cli"), { code: "ERR_INVALID_ARGUMENT" });
    await assert.rejects(vault.set("ok", "v", [], "cli"), { code: "ERR_INVALID_ARGUMENT" });
    await assert.rejects(vault.set("ok", "v", ["http://a.example"], "cli"), { code: "ERR_INVALID_ARGUMENT" });
    await assert.rejects(vault.set("ok", "", ["a.example"], "cli"), { code: "ERR_INVALID_ARGUMENT" });
    assert.equal(hostAllowed(["*.example.com"], "example.com"), false);
    assert.equal(hostAllowed(["*.example.com"], "a.example.com"), true);
    assert.equal(hostAllowed(["*.example.com"], "a.example.com.evil.io"), false);
    assert.equal(hostAllowed(["api.example.com"], "API.example.com"), true);
  });
});
