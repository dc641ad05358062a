import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { freshPostgresDatabase, postgresReachable, postgresStore, auditedStore } from "../../test/helpers.js";
import type { Store } from "../store/database.js";
import { canonicalPermission } from "./catalog.js";
import { RolePolicy } from "./policy.js";
import { Rbac, type Actor } from "./rbac.js";

const ADMIN: Actor = { id: "key:admin", grants: ["*"] };

async function setup(store?: Store, now?: () => number) {
  const { store: s, audit } = await auditedStore(store === undefined ? {} : { store });
  return { store: s, audit, rbac: new Rbac({ store: s, audit, now }) };
}

describe("RolePolicy (pure)", () => {
  it("built-in roles: admin implies everything, the others deny by default", () => {
    const p = RolePolicy.compile();
    assert.equal(p.check([{ role: "admin" }], "users:manage").allowed, true);
    assert.equal(p.check([{ role: "viewer" }], "audit:read").allowed, true);
    assert.equal(p.check([{ role: "viewer" }], "data:delete").allowed, false);
    assert.equal(p.check([{ role: "developer" }], "agents:read").allowed, true, "inherited from viewer via user");
    assert.equal(p.check([], "audit:read").allowed, false, "no assignment");
    assert.equal(p.check([{ role: "ghost" }], "audit:read").allowed, false, "unknown role");
    assert.equal(p.check([{ role: "admin" }], "").allowed, false, "empty permission");
    assert.equal(p.check([{ role: "admin" }], "not a permission").allowed, false, "malformed permission");
  });

  it("accepts the guides' permission names as aliases", () => {
    assert.equal(canonicalPermission("view_logs"), "audit:read");
    assert.equal(canonicalPermission("create_api_keys"), "keys:create");
    const p = RolePolicy.compile([{ name: "auditor", grants: ["view_logs"] }]);
    assert.equal(p.check([{ role: "auditor" }], "audit:read").allowed, true);
    assert.equal(p.check([{ role: "auditor" }], "view_logs").allowed, true);
  });

  it("custom roles inherit; cycles and unknown parents are refused", () => {
    const p = RolePolicy.compile([
      { name: "auditor", inherits: ["viewer"], grants: ["audit:verify"] },
      { name: "lead", inherits: ["auditor", "user"], grants: [] },
    ]);
    assert.ok(p.grantsOf("lead").includes("audit:verify"));
    assert.ok(p.grantsOf("lead").includes("workflows:execute"));
    assert.throws(
      () =>
        RolePolicy.compile([
          { name: "a", inherits: ["b"], grants: [] },
          { name: "b", inherits: ["a"], grants: [] },
        ]),
      { code: "ERR_ROLE_CYCLE" },
    );
    assert.throws(() => RolePolicy.compile([{ name: "a", inherits: ["a"], grants: [] }]), { code: "ERR_ROLE_CYCLE" });
    assert.throws(() => RolePolicy.compile([{ name: "a", inherits: ["nope"], grants: [] }]), {
      code: "ERR_ROLE_UNKNOWN",
    });
    assert.throws(() => RolePolicy.compile([{ name: "admin", grants: [] }]), { code: "ERR_INVALID_ARGUMENT" });
  });

  it("scoped assignments apply only on their resource", () => {
    const p = RolePolicy.compile();
    const a = [{ role: "developer", resource: "agent:billing" }];
    assert.equal(p.check(a, "agents:write", "agent:billing").allowed, true);
    assert.equal(p.check(a, "agents:write", "agent:payroll").allowed, false);
    assert.equal(p.check(a, "agents:write").allowed, false, "no resource named: only global assignments count");
    assert.equal(p.check([{ role: "developer", resource: "agent:*" }], "agents:write", "agent:payroll").allowed, true);
    assert.equal(p.check([{ role: "developer", resource: "agent:*" }], "agents:write", "workflow:x").allowed, false);
  });

  it("delegation is bounded by the holder's own grants", () => {
    const p = RolePolicy.compile([{ name: "auditor", inherits: ["viewer"], grants: ["audit:verify"] }]);
    assert.equal(p.canDelegate(["*"], ["admin"]).allowed, true);
    assert.equal(p.canDelegate(p.grantsOf("developer"), ["user"]).allowed, true);
    assert.equal(p.canDelegate(p.grantsOf("developer"), ["admin"]).allowed, false);
    assert.equal(p.canDelegate(p.grantsOf("viewer"), ["auditor"]).allowed, false);
    assert.equal(p.canDelegate(p.grantsOf("developer"), ["ghost"]).allowed, false);
  });

  it("a grant never covers more than itself plus trailing wildcards (property)", () => {
    const seg = fc.constantFrom("agents", "audit", "data", "read", "write", "x");
    fc.assert(
      fc.property(
        fc.array(seg, { minLength: 2, maxLength: 3 }),
        fc.array(seg, { minLength: 2, maxLength: 3 }),
        (g, r) => {
          const p = RolePolicy.compile([{ name: "r", grants: [g.join(":")] }]);
          const allowed = p.check([{ role: "r" }], r.join(":")).allowed;
          return allowed === (g.join(":") === r.join(":"));
        },
      ),
    );
  });
});

describe("Rbac (database)", () => {
  it("assigns, checks, lists and removes; every change and check is audited", async () => {
    const { rbac, audit } = await setup();
    assert.equal(await rbac.assign("alice", "developer", undefined, ADMIN), true);
    assert.equal(await rbac.assign("alice", "developer", undefined, ADMIN), false, "idempotent");
    await rbac.assign("alice", "admin", "agent:billing", ADMIN);
    assert.equal(
      (await rbac.check("alice", "agents:write", undefined, { ip: "10.0.0.5", userAgent: "t/1" })).allowed,
      true,
    );
    assert.equal((await rbac.check("alice", "users:manage")).allowed, false);
    assert.equal((await rbac.check("alice", "users:manage", "agent:billing")).allowed, true);
    assert.equal((await rbac.check("bob", "audit:read")).allowed, false, "unknown subject");
    const eff = await rbac.effectivePermissions("alice");
    assert.ok(eff.global.includes("agents:*"));
    assert.deepEqual(eff.scoped, [{ resource: "agent:billing", grants: ["*"] }]);
    assert.equal(await rbac.remove("alice", "admin", "agent:billing", ADMIN), true);
    assert.equal((await rbac.check("alice", "users:manage", "agent:billing")).allowed, false);
    const checks = await audit.query({ type: "permission_check", limit: 10 });
    assert.equal(checks.events.length, 5);
    assert.equal(checks.events.at(-1)?.ip, "10.0.0.5");
    assert.equal(checks.events.at(-1)?.userAgent, "t/1");
    assert.equal((await audit.query({ type: "permission_change" })).events.length, 4);
  });

  it("delegation: an actor cannot assign or define more than it holds, and the attempt is audited", async () => {
    const { rbac, audit } = await setup();
    const policy = await rbac.policy();
    const dev: Actor = { id: "key:dev", grants: policy.grantsOf("developer") };
    await assert.rejects(rbac.assign("mallory", "admin", undefined, dev), { code: "ERR_FORBIDDEN" });
    assert.equal(await rbac.assign("carol", "user", undefined, dev), true);
    await assert.rejects(rbac.defineRole({ name: "sneaky", grants: ["users:manage"] }, dev), { code: "ERR_FORBIDDEN" });
    await assert.rejects(rbac.assign("x", "ghost", undefined, ADMIN), { code: "ERR_ROLE_UNKNOWN" });
    await assert.rejects(rbac.assign("x", "user", "not a resource", ADMIN), { code: "ERR_INVALID_ARGUMENT" });
    const denied = await audit.query({ type: "permission_change", outcome: "denied" });
    assert.equal(denied.events.length, 2);
    assert.deepEqual(await rbac.assignments("mallory"), []);
  });

  it("custom roles: define with inheritance, refuse cycles, delete only when unused", async () => {
    const { rbac } = await setup();
    await rbac.defineRole({ name: "auditor", inherits: ["viewer"], grants: ["audit:verify"] }, ADMIN);
    await rbac.assign("dana", "auditor", undefined, ADMIN);
    assert.equal((await rbac.check("dana", "audit:verify")).allowed, true);
    assert.equal((await rbac.check("dana", "audit:read")).allowed, true);
    await rbac.defineRole({ name: "chief", inherits: ["auditor"], grants: [] }, ADMIN);
    await assert.rejects(rbac.defineRole({ name: "auditor", inherits: ["chief"], grants: [] }, ADMIN), {
      code: "ERR_ROLE_CYCLE",
    });
    await assert.rejects(rbac.defineRole({ name: "admin", grants: [] }, ADMIN), { code: "ERR_INVALID_ARGUMENT" });
    await assert.rejects(rbac.deleteRole("auditor", ADMIN), { code: "ERR_INVALID_ARGUMENT" });
    await rbac.deleteRole("chief", ADMIN);
    await rbac.remove("dana", "auditor", undefined, ADMIN);
    await rbac.deleteRole("auditor", ADMIN);
    assert.equal((await rbac.check("dana", "audit:verify")).allowed, false);
  });
});

describe("requirePermission", () => {
  it("runs the function only for a subject holding the permission on the resource", async () => {
    const { rbac } = await setup();
    await rbac.assign("erin", "developer", "agent:billing", ADMIN);
    const { requirePermission } = await import("./guard.js");
    const calls: string[] = [];
    const write = requirePermission(
      rbac,
      "agents:write",
      async (subject: string, agent: string) => {
        calls.push(`${subject}:${agent}`);
        return "done";
      },
      { resource: (agent) => `agent:${agent}` },
    );
    assert.equal(await write("erin", "billing"), "done");
    await assert.rejects(write("erin", "payroll"), { code: "ERR_FORBIDDEN" });
    await assert.rejects(write("mallory", "billing"), { code: "ERR_FORBIDDEN" });
    assert.deepEqual(calls, ["erin:billing"]);
  });
});

describe("Rbac on PostgreSQL", async () => {
  const ok = await postgresReachable();
  it(
    "a role defined by one instance is seen by another within a second",
    { skip: !ok && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      let now = 1_000_000;
      const one = await setup(await postgresStore(url), () => now);
      const two = new Rbac({ store: await postgresStore(url), audit: one.audit, now: () => now });
      assert.equal((await two.policy()).has("auditor"), false);
      await one.rbac.defineRole({ name: "auditor", grants: ["audit:verify"] }, ADMIN);
      assert.equal((await two.policy()).has("auditor"), false, "cached for up to a second");
      now += 1001;
      assert.equal((await two.policy()).has("auditor"), true);
    },
  );
});
