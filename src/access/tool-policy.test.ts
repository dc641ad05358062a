import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AgentwallError } from "../errors.js";
import { MemoryRateLimiter } from "../monitor/ratelimit/limiter.js";
import { ToolPolicy, type ToolCaller } from "./tool-policy.js";

const alice: ToolCaller = { id: "alice", roles: ["user"], kind: "user" };
const bob: ToolCaller = { id: "bob", roles: ["viewer"], kind: "user" };
const crawler: ToolCaller = { id: "crawler", roles: [], kind: "agent" };
const app: ToolCaller = { id: "support-app", roles: ["user"], kind: "agent" };

const policy = () =>
  new ToolPolicy(
    [
      {
        name: "search",
        allow: { roles: ["user"], agents: ["crawler"] },
        argsSchema: {
          type: "object",
          properties: {
            q: { type: "string", maxLength: 200 },
            limit: { type: "integer", minimum: 1, maximum: 50, default: 10 },
          },
          required: ["q"],
        },
        callsPerMinute: 3,
      },
      { name: "reset_password", allow: { roles: ["developer"] } },
    ],
    { rateLimiter: new MemoryRateLimiter() },
  );

describe("tool policies", () => {
  it("a tool not listed is denied; roles and agents are allowed only where listed", async () => {
    const p = policy();
    assert.equal((await p.checkToolCall(alice, "shell", "{}")).allowed, false);
    assert.deepEqual(await p.checkToolCall(alice, "shell", "{}").then((d) => !d.allowed && d.code), "ERR_TOOL_UNKNOWN");
    assert.equal((await p.checkToolCall(alice, "search", '{"q":"x"}')).allowed, true);
    assert.deepEqual(
      await p.checkToolCall(bob, "search", '{"q":"x"}').then((d) => !d.allowed && d.code),
      "ERR_TOOL_DENIED",
    );
    assert.equal((await p.checkToolCall(crawler, "search", '{"q":"x"}')).allowed, true);
    assert.equal(
      (await p.checkToolCall({ ...crawler, kind: "user" }, "search", '{"q":"x"}')).allowed,
      false,
      "an agent id only counts for agents",
    );
    assert.equal(
      (await p.checkToolCall({ id: "root", roles: ["admin"], kind: "user" }, "reset_password", "{}")).allowed,
      true,
    );
  });

  it("validates arguments strictly: no extra properties, no coercion, no defaults, no duplicate keys", async () => {
    const p = policy();
    const code = async (args: unknown) => {
      const d = await p.checkToolCall(alice, "search", args);
      return d.allowed ? "ok" : d.code;
    };
    assert.equal(await code('{"q":"x","limit":5}'), "ok");
    assert.equal(await code('{"q":"x","cmd":"rm -rf /"}'), "ERR_TOOL_ARGS_INVALID");
    assert.equal(await code('{"q":"x","limit":"5"}'), "ERR_TOOL_ARGS_INVALID");
    assert.equal(await code('{"q":"x","q":"rm"}'), "ERR_TOOL_ARGS_INVALID");
    assert.equal(await code('{"limit":5}'), "ERR_TOOL_ARGS_INVALID");
    assert.equal(await code('{"q":"x","__proto__":{"admin":true}}'), "ERR_TOOL_ARGS_INVALID");
    assert.equal(await code("not json"), "ERR_TOOL_ARGS_INVALID");
    const mine = { q: "x" };
    const d = await p.checkToolCall(alice, "search", mine);
    assert.ok(d.allowed);
    assert.deepEqual(mine, { q: "x" }, "no default written into the caller's object");
    assert.equal(
      (await p.checkToolCall({ id: "d", roles: ["developer"], kind: "user" }, "reset_password", '{"user":"x"}'))
        .allowed,
      false,
      "a tool without a schema takes no arguments",
    );
  });

  it("an app acting for a user is checked as both", async () => {
    const p = policy();
    assert.equal((await p.checkToolCall(app, "search", '{"q":"x"}', alice)).allowed, true);
    const d = await p.checkToolCall(app, "search", '{"q":"x"}', bob);
    assert.deepEqual(!d.allowed && [d.code, d.reason], ["ERR_TOOL_DENIED", "user bob may not call search"]);
  });

  it("limits calls per minute per caller", async () => {
    const p = policy();
    const results = [];
    for (let i = 0; i < 5; i++) results.push((await p.checkToolCall(alice, "search", '{"q":"x"}')).allowed);
    assert.deepEqual(results, [true, true, true, false, false]);
    assert.equal(
      (await p.checkToolCall(crawler, "search", '{"q":"x"}')).allowed,
      true,
      "another caller has its own budget",
    );
  });

  it("applies a per-tool limit raised by a reload at once (the limit is part of the bucket's key)", async () => {
    const rateLimiter = new MemoryRateLimiter(); // shared across the reload, as the instance's is
    const rule = (callsPerMinute: number) => [{ name: "search", allow: { roles: ["user"] }, callsPerMinute }];
    const before = new ToolPolicy(rule(1), { rateLimiter });
    assert.equal((await before.checkToolCall(alice, "search", "{}")).allowed, true);
    assert.equal((await before.checkToolCall(alice, "search", "{}")).allowed, false);
    const after = new ToolPolicy(rule(100), { rateLimiter });
    assert.equal((await after.checkToolCall(alice, "search", "{}")).allowed, true);
  });

  it("refuses bad configuration up front", () => {
    assert.throws(() => new ToolPolicy([{ name: "a b", allow: {} }]), { code: "ERR_CONFIG_INVALID" });
    assert.throws(
      () =>
        new ToolPolicy([
          { name: "a", allow: {} },
          { name: "a", allow: {} },
        ]),
      { code: "ERR_CONFIG_INVALID" },
    );
    assert.throws(() => new ToolPolicy([{ name: "a", allow: {}, argsSchema: { type: "nonsense" } }]), {
      code: "ERR_CONFIG_INVALID",
    });
  });

  it("argument patterns run on the linear-time engine: no backtracking blow-up, lookaround refused by name", async () => {
    const tools = new ToolPolicy([
      {
        name: "lookup",
        allow: { roles: ["user"] },
        argsSchema: { type: "object", properties: { q: { type: "string", pattern: "^(a|a)*$" } }, required: ["q"] },
      },
    ]);
    const decision = await tools.checkToolCall(
      { id: "alice", roles: ["user"], kind: "user" },
      "lookup",
      JSON.stringify({ q: `${"a".repeat(10_000)}!` }),
    );
    assert.equal(decision.allowed, false);
    assert.throws(
      () =>
        new ToolPolicy([
          {
            name: "b",
            allow: {},
            argsSchema: { type: "object", properties: { q: { type: "string", pattern: "(?<=x)y" } } },
          },
        ]),
      (e: unknown) =>
        e instanceof AgentwallError && e.code === "ERR_CONFIG_INVALID" && e.message.includes("argument schema of b"),
    );
  });
});
