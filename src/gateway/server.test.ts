import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { testInstance } from "../../test/helpers.js";
import { SECURITY_HEADERS } from "./headers.js";
import { buildServer } from "./server.js";

async function setup(overrides = {}) {
  const instance = await testInstance(overrides);
  const app = await buildServer(instance);
  const admin = await instance.apiKeys.create({ owner: "root", name: "admin", roles: ["admin"], creator: "test" });
  const viewer = await instance.apiKeys.create({ owner: "vera", name: "viewer", roles: ["viewer"], creator: "test" });
  return { instance, app, admin: admin.key, viewer: viewer.key };
}

describe("gateway skeleton", () => {
  it("answers /healthz and /readyz without auth, with security headers and a request id", async () => {
    const { app } = await setup();
    for (const url of ["/healthz", "/readyz"]) {
      const res = await app.inject({ method: "GET", url, headers: { "x-request-id": "caller-chosen" } });
      assert.equal(res.statusCode, 200);
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers[name], value, name);
      assert.match(String(res.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
    }
    assert.deepEqual((await app.inject({ method: "GET", url: "/readyz" })).json().checks, {
      database: "ok",
      migrations: "ok",
      masterKey: "ok",
    });
  });

  it("readyz reports 503 when the database is gone", async () => {
    const { app, instance } = await setup();
    await instance.store.close();
    const res = await app.inject({ method: "GET", url: "/readyz" });
    assert.equal(res.statusCode, 503);
    assert.equal(res.json().status, "not_ready");
  });

  it("unknown routes get the JSON error shape with a stable code", async () => {
    const { app } = await setup();
    const res = await app.inject({ method: "GET", url: "/nope" });
    assert.equal(res.statusCode, 404);
    const body = res.json();
    assert.equal(body.error.code, "ERR_NOT_FOUND");
    assert.equal(body.error.requestId, res.headers["x-request-id"]);
    assert.equal(res.headers["x-content-type-options"], "nosniff");
  });

  it("authenticates by API key, checks the route's permission and audits both outcomes", async () => {
    const { app, admin, viewer, instance } = await setup();
    const cases: Array<[Record<string, string>, string, string, number]> = [
      [{}, "GET", "/v1/admin/audit/events", 401],
      [{ authorization: "Bearer nonsense" }, "GET", "/v1/admin/audit/events", 401],
      [{ authorization: "Basic YTpi" }, "GET", "/v1/admin/audit/events", 401],
      // The last character changed (to one it is not: a key may already end in "x").
      [
        { authorization: `Bearer ${admin.slice(0, -1)}${admin.endsWith("x") ? "y" : "x"}` },
        "GET",
        "/v1/admin/audit/events",
        401,
      ],
      [{ authorization: `Bearer ${viewer}` }, "POST", "/v1/admin/audit/verify", 403],
      [{ authorization: `Bearer ${viewer}` }, "GET", "/v1/admin/audit/events", 200],
      [{ authorization: `Bearer ${admin}` }, "POST", "/v1/admin/audit/verify", 200],
    ];
    for (const [headers, method, url, status] of cases) {
      const res = await app.inject({ method: method as "GET", url, headers: { "user-agent": "t/1", ...headers } });
      assert.equal(res.statusCode, status, `${JSON.stringify(headers)} ${url}`);
      if (status === 401) assert.equal(res.json().error.code, "ERR_UNAUTHENTICATED");
      if (status === 403) assert.equal(res.json().error.code, "ERR_FORBIDDEN");
    }
    const failed = await instance.audit.query({ type: "auth_failed", limit: 100 });
    assert.equal(failed.events.length, 4);
    assert.equal(failed.events[0]?.ip, "127.0.0.1");
    assert.equal(failed.events[0]?.userAgent, "t/1");
    const denied = await instance.audit.query({ type: "permission_check", outcome: "denied" });
    assert.equal(denied.events.length, 1);
    const raw = JSON.stringify(await instance.store.db.selectFrom("audit_events").selectAll().execute());
    assert.ok(!raw.includes(admin) && !raw.includes(viewer), "keys never reach the audit trail");
  });

  it("exchanges an API key for a session, accepts the session, and ends it on logout", async () => {
    const { app, viewer, admin, instance } = await setup();
    const exchange = await app.inject({
      method: "POST",
      url: "/v1/sessions",
      headers: { authorization: `Bearer ${viewer}` },
    });
    assert.equal(exchange.statusCode, 201);
    const { token, jti } = exchange.json<{ token: string; jti: string }>();
    const bearer = { authorization: `Bearer ${token}` };
    assert.equal((await app.inject({ method: "GET", url: "/v1/admin/audit/events", headers: bearer })).statusCode, 200);
    assert.equal(
      (await app.inject({ method: "POST", url: "/v1/admin/audit/verify", headers: bearer })).statusCode,
      403,
    );
    const again = await app.inject({ method: "POST", url: "/v1/sessions", headers: bearer });
    assert.equal(again.statusCode, 403, "a session cannot mint sessions");
    const listed = await app.inject({
      method: "GET",
      url: "/v1/admin/sessions",
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.deepEqual(
      listed.json<{ sessions: Array<{ jti: string }> }>().sessions.map((s) => s.jti),
      [jti],
    );
    assert.ok(!listed.body.includes(token));
    assert.equal(
      (await app.inject({ method: "DELETE", url: "/v1/sessions/current", headers: bearer })).statusCode,
      204,
    );
    const after = await app.inject({ method: "GET", url: "/v1/admin/audit/events", headers: bearer });
    assert.equal(after.statusCode, 401);
    const failed = await instance.audit.query({ type: "auth_failed", limit: 1 });
    assert.equal(failed.events[0]?.actor, `session:${jti}`);
  });

  it("admin revocation and key revocation end sessions; foreign and unsigned JWTs are refused", async () => {
    const { app, viewer, admin, instance } = await setup();
    const auth = { authorization: `Bearer ${admin}` };
    const s1 = (
      await app.inject({ method: "POST", url: "/v1/sessions", headers: { authorization: `Bearer ${viewer}` } })
    ).json<{ token: string; jti: string }>();
    const s2 = (
      await app.inject({ method: "POST", url: "/v1/sessions", headers: { authorization: `Bearer ${viewer}` } })
    ).json<{ token: string; jti: string }>();
    assert.equal(
      (await app.inject({ method: "DELETE", url: `/v1/admin/sessions/${s1.jti}`, headers: auth })).statusCode,
      204,
    );
    assert.equal(
      (await app.inject({ method: "DELETE", url: `/v1/admin/sessions/${s1.jti}`, headers: auth })).statusCode,
      404,
    );
    assert.equal(
      (await app.inject({ method: "DELETE", url: "/v1/admin/sessions/..%2f", headers: auth })).statusCode,
      400,
    );
    const use = (token: string) =>
      app.inject({ method: "GET", url: "/v1/admin/audit/events", headers: { authorization: `Bearer ${token}` } });
    assert.equal((await use(s1.token)).statusCode, 401);
    assert.equal((await use(s2.token)).statusCode, 200);
    const viewerId = (await instance.apiKeys.list("vera"))[0]!.id;
    await instance.apiKeys.revoke(viewerId, "test");
    assert.equal((await use(s2.token)).statusCode, 401, "revoking the key ends the sessions made from it");
    const { SignJWT, UnsecuredJWT } = await import("jose");
    const { generateKeyPairSync } = await import("node:crypto");
    const foreign = await new SignJWT({ roles: ["admin"] })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
      .setIssuer("https://elsewhere.example")
      .setSubject("root")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(generateKeyPairSync("ed25519").privateKey);
    const forged = await new SignJWT({ roles: ["admin"] })
      .setProtectedHeader({ alg: "EdDSA", typ: "JWT", kid: "sk-sessions-x" })
      .setIssuer("agentwall")
      .setAudience("agentwall")
      .setSubject("root")
      .setJti("abcdefghijklmnop")
      .setIssuedAt()
      .setNotBefore("0s")
      .setExpirationTime("5m")
      .sign(generateKeyPairSync("ed25519").privateKey);
    const unsigned = new UnsecuredJWT({ roles: ["admin"], iss: "agentwall", sub: "root" }).encode();
    for (const bad of [foreign, forged, unsigned]) assert.equal((await use(bad)).statusCode, 401);
  });

  it("accepts OIDC tokens from a configured issuer, mapped to roles, and never falls through between methods", async () => {
    const { createServer } = await import("node:http");
    const { SignJWT, exportJWK, generateKeyPair } = await import("jose");
    const idp = await generateKeyPair("ES256");
    const jwk = { ...(await exportJWK(idp.publicKey)), kid: "idp-1", alg: "ES256" };
    const server = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as import("node:net").AddressInfo).port;
      const issuer = "https://login.example";
      const { app, instance } = await setup({
        oidc: {
          issuers: [
            {
              issuer,
              jwksUrl: `http://127.0.0.1:${port}/jwks`,
              audience: "agentwall-api",
              roleMap: { readers: "viewer" },
            },
          ],
        },
      });
      const token = (roles: string[], key = idp.privateKey, iss = issuer) =>
        new SignJWT({ roles })
          .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "idp-1" })
          .setIssuer(iss)
          .setAudience("agentwall-api")
          .setSubject("u-7")
          .setIssuedAt()
          .setExpirationTime("5m")
          .sign(key);
      const call = async (t: string, method: "GET" | "POST" = "GET", url = "/v1/admin/audit/events") =>
        (await app.inject({ method, url, headers: { authorization: `Bearer ${t}` } })).statusCode;
      assert.equal(await call(await token(["readers"])), 200);
      assert.equal(await call(await token(["readers"]), "POST", "/v1/admin/audit/verify"), 403);
      assert.equal(await call(await token([])), 403, "authenticated, but no mapped role grants anything");
      assert.equal(await call(await token(["readers"], (await generateKeyPair("ES256")).privateKey)), 401);
      // A token naming agentwall's session issuer is only ever a session: the IdP's signature does not help.
      assert.equal(await call(await token(["readers"], idp.privateKey, "agentwall")), 401);
      const checks = await instance.audit.query({ type: "permission_check", outcome: "allowed" });
      assert.equal(checks.events[0]?.actor, `oidc:${issuer}`);
      assert.equal(checks.events[0]?.details?.subject, "login.example:u-7");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("limits each client address before any credential lookup, with Retry-After; health probes are exempt", async () => {
    const { app, instance } = await setup({
      rateLimits: { perIp: { limit: 1, periodMs: 60_000, burst: 2 }, expectedInstances: 1 },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await app.inject({
        method: "GET",
        url: "/v1/admin/audit/events",
        headers: { authorization: "Bearer aw_garbage" },
      });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) {
        assert.equal(res.json().error.code, "ERR_RATE_LIMITED");
        assert.ok(Number(res.headers["retry-after"]) >= 1);
      }
    }
    assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
    assert.equal(
      (await instance.audit.query({ type: "auth_failed" })).events.length,
      3,
      "limited requests never reach the key lookup",
    );
    assert.equal((await app.inject({ method: "GET", url: "/healthz" })).statusCode, 200);
    const other = await app.inject({ method: "GET", url: "/v1/admin/audit/events", remoteAddress: "10.1.2.3" });
    assert.equal(other.statusCode, 401, "another address has its own budget");
  });

  it("under a flood of bad credentials the audit log gets the first failures and one summary", async () => {
    const instance = await testInstance({
      rateLimits: { perIp: { limit: 100_000, periodMs: 60_000, burst: 100_000 }, expectedInstances: 1 },
    });
    const app = await buildServer(instance, { failuresPerMinute: 5 });
    for (let i = 0; i < 50; i++) {
      const res = await app.inject({
        method: "GET",
        url: "/v1/admin/audit/events",
        headers: { authorization: `Bearer aw_garbage${i}` },
      });
      assert.equal(res.statusCode, 401, "every attempt is still refused");
    }
    assert.equal((await instance.audit.query({ type: "auth_failed", limit: 1000 })).events.length, 5);
    await app.close();
    const all = (await instance.audit.query({ type: "auth_failed", limit: 1000 })).events;
    assert.equal(all.length, 6);
    assert.equal(all[0]?.action, "auth.failures.aggregated");
    assert.equal(all[0]?.details?.suppressed, 45);
  });

  it("records the summary when an address's window ends, without waiting for its next failure or a shutdown", async () => {
    const instance = await testInstance({
      rateLimits: { perIp: { limit: 100_000, periodMs: 60_000, burst: 100_000 }, expectedInstances: 1 },
    });
    const app = await buildServer(instance, { failuresPerMinute: 5, failureWindowMs: 300, failureSweepMs: 50 });
    try {
      for (let i = 0; i < 30; i++) {
        const res = await app.inject({
          method: "GET",
          url: "/v1/admin/audit/events",
          headers: { authorization: `Bearer aw_garbage${i}` },
          remoteAddress: "10.9.8.7",
        });
        assert.equal(res.statusCode, 401);
      }
      // The address never comes back and the gateway keeps running: the sweep writes the summary.
      let events: Awaited<ReturnType<typeof instance.audit.query>>["events"] = [];
      for (let waited = 0; waited < 5_000 && events.length < 6; waited += 50) {
        await new Promise((r) => setTimeout(r, 50));
        events = (await instance.audit.query({ type: "auth_failed", limit: 1000 })).events;
      }
      assert.equal(events.length, 6);
      assert.deepEqual(
        [events[0]?.action, events[0]?.ip, events[0]?.details?.suppressed],
        ["auth.failures.aggregated", "10.9.8.7", 25],
      );
    } finally {
      await app.close();
    }
    // Nothing is summarized twice at shutdown.
    assert.equal((await instance.audit.query({ type: "auth_failed", limit: 1000 })).events.length, 6);
  });

  it("accepts the key in x-api-key, and refuses two credentials at once", async () => {
    const { app, admin } = await setup();
    assert.equal(
      (await app.inject({ method: "GET", url: "/v1/admin/audit/events", headers: { "x-api-key": admin } })).statusCode,
      200,
    );
    const both = await app.inject({
      method: "GET",
      url: "/v1/admin/audit/events",
      headers: { "x-api-key": admin, authorization: `Bearer ${admin}` },
    });
    assert.equal(both.statusCode, 401);
  });

  it("vault routes are write-only, behind vault:manage, and never echo a value", async () => {
    const { app, admin, viewer, instance } = await setup();
    const secret = "sk-proj-gatewayvaulttest0123456789";
    const auth = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
    const put = await app.inject({
      method: "PUT",
      url: "/v1/admin/vault/openai",
      headers: auth,
      payload: { value: secret, hosts: ["api.openai.com"] },
    });
    assert.equal(put.statusCode, 201);
    assert.deepEqual(put.json(), { name: "openai", version: 1 });
    const list = await app.inject({ method: "GET", url: "/v1/admin/vault", headers: auth });
    assert.equal(list.statusCode, 200);
    assert.ok(!list.body.includes(secret));
    assert.equal(
      (await app.inject({ method: "GET", url: "/v1/admin/vault", headers: { authorization: `Bearer ${viewer}` } }))
        .statusCode,
      403,
    );
    for (const payload of [{ value: 5, hosts: ["a.example"] }, { value: "x" }, { value: "x", hosts: ["not a host"] }]) {
      const bad = await app.inject({ method: "PUT", url: "/v1/admin/vault/openai", headers: auth, payload });
      assert.equal(bad.statusCode, 400, JSON.stringify(payload));
    }
    const status = async (method: "POST" | "DELETE", url: string, payload?: object) =>
      // No content-type without a body: an empty JSON body is itself a 400.
      (
        await app.inject({
          method,
          url,
          ...(payload === undefined ? { headers: { authorization: auth.authorization } } : { headers: auth, payload }),
        })
      ).statusCode;
    assert.equal(await status("POST", "/v1/admin/vault/openai/rollback", { version: 7 }), 404);
    assert.equal(await status("DELETE", "/v1/admin/vault/openai"), 204);
    assert.equal(await status("DELETE", "/v1/admin/vault/openai"), 404);
    assert.ok(
      !JSON.stringify(await instance.store.db.selectFrom("audit_events").selectAll().execute()).includes(secret),
    );
  });

  it("admin key routes bound delegation: a developer cannot mint an admin key; revoking it ends its children", async () => {
    const { app, admin, instance } = await setup();
    const adminAuth = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
    const dev = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: adminAuth,
      payload: { subject: "dan", roles: ["developer"] },
    });
    assert.equal(dev.statusCode, 201);
    const devKey = dev.json<{ id: string; key: string }>();
    const devAuth = { authorization: `Bearer ${devKey.key}`, "content-type": "application/json" };
    const escalate = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: devAuth,
      payload: { subject: "dan", roles: ["admin"] },
    });
    assert.equal(escalate.statusCode, 403);
    const child = await app.inject({
      method: "POST",
      url: "/v1/admin/keys",
      headers: devAuth,
      payload: { subject: "eve", roles: ["user"] },
    });
    assert.equal(child.statusCode, 201);
    const childKey = child.json<{ key: string }>().key;
    assert.equal((await instance.apiKeys.verify(childKey)).result, "VALID");
    assert.equal(
      (
        await app.inject({
          method: "DELETE",
          url: `/v1/admin/keys/${devKey.id}`,
          headers: { authorization: `Bearer ${admin}` },
        })
      ).statusCode,
      204,
    );
    assert.equal((await instance.apiKeys.verify(childKey)).result, "REVOKED");
    const listed = await app.inject({
      method: "GET",
      url: "/v1/admin/keys",
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.ok(!listed.body.includes(childKey) && !listed.body.includes(devKey.key));
    const assign = await app.inject({
      method: "POST",
      url: "/v1/admin/roles/assignments",
      headers: adminAuth,
      payload: { subject: "eve", role: "ghost" },
    });
    assert.equal(assign.statusCode, 400);
    assert.equal(assign.json<{ error: { code: string } }>().error.code, "ERR_ROLE_UNKNOWN");
  });

  it("serves audit queries with filters and rejects malformed parameters", async () => {
    const { app, admin } = await setup();
    const auth = { authorization: `Bearer ${admin}` };
    const res = await app.inject({
      method: "GET",
      url: "/v1/admin/audit/events?type=key_created&limit=10",
      headers: auth,
    });
    assert.equal(res.statusCode, 200);
    assert.equal(res.json().events.length, 2);
    for (const q of ["limit=0", "limit=abc", "since=yesterday", "limit=5000"]) {
      const bad = await app.inject({ method: "GET", url: `/v1/admin/audit/events?${q}`, headers: auth });
      assert.equal(bad.statusCode, 400, q);
    }
  });

  it("enforces the body limit and rejects prototype poisoning", async () => {
    const { app, admin } = await setup({
      limits: {
        bodyBytes: 1024,
        headerBytes: 16384,
        requestTimeoutMs: 10000,
        keepAliveTimeoutMs: 5000,
        connectionTimeoutMs: 10000,
      },
    });
    const auth = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
    const big = await app.inject({
      method: "POST",
      url: "/v1/admin/audit/verify",
      headers: auth,
      payload: JSON.stringify({ x: "a".repeat(5000) }),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, "ERR_BODY_TOO_LARGE");
    const poison = await app.inject({
      method: "POST",
      url: "/v1/admin/audit/verify",
      headers: auth,
      payload: '{"__proto__":{"admin":true}}',
    });
    assert.equal(poison.statusCode, 400);
    const broken = await app.inject({ method: "POST", url: "/v1/admin/audit/verify", headers: auth, payload: "{nope" });
    assert.equal(broken.statusCode, 400);
    assert.equal(broken.json().error.code, "ERR_BAD_REQUEST");
  });

  it("enforces the configured header size limit on a real socket", async () => {
    // 2 KiB, well under Node's own 16 KiB default, so the 4 KB header below is refused by our setting.
    const { app } = await setup({
      limits: {
        bodyBytes: 1 << 20,
        headerBytes: 2048,
        requestTimeoutMs: 10000,
        keepAliveTimeoutMs: 5000,
        connectionTimeoutMs: 10000,
      },
    });
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    try {
      const ok = await fetch(`${address}/healthz`, { headers: { "x-pad": "a".repeat(1000) } });
      assert.equal(ok.status, 200);
      const big = await fetch(`${address}/healthz`, { headers: { "x-pad": "a".repeat(4000) } }).then(
        (r) => r.status,
        () => "closed",
      );
      assert.ok(big === 431 || big === "closed", String(big));
    } finally {
      await app.close();
    }
  });

  it("no answer leaves before its permission check is in the audit log", async () => {
    const instance = await testInstance();
    const app = await buildServer(instance, {
      routes: [
        {
          method: "GET",
          url: "/v1/test/answer",
          access: { permission: "audit:read" },
          handler: async () => ({ answer: "the payload" }),
        },
      ],
    });
    const admin = await instance.apiKeys.create({ owner: "root", name: "admin", roles: ["admin"], creator: "test" });
    const headers = { authorization: `Bearer ${admin.key}` };
    const ok = await app.inject({ method: "GET", url: "/v1/test/answer", headers });
    assert.equal(ok.statusCode, 200);
    const logged = await instance.audit.query({ type: "permission_check", limit: 1 });
    assert.equal(logged.events[0]?.requestId, ok.headers["x-request-id"], "durable when the answer came");
    // The log refuses events from now on: the handler still runs, its answer must not leave.
    await instance.audit.close();
    const refused = await app.inject({ method: "GET", url: "/v1/test/answer", headers });
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.json().error.code, "ERR_AUDIT_CLOSED");
    assert.ok(!refused.body.includes("the payload"));
  });

  it("refuses to start with a route that declares no permission", async () => {
    const instance = await testInstance();
    await assert.rejects(
      buildServer(instance, {
        routes: [{ method: "GET", url: "/v1/secret", access: { public: true }, handler: async () => "x" }],
      }),
      { code: "ERR_ROUTE_PERMISSION_MISSING" },
    );
    const app = await buildServer(instance);
    assert.throws(() => app.get("/sneaky", async () => "x"), { code: "ERR_ROUTE_PERMISSION_MISSING" });
  });

  it("takes the client address from the socket unless the proxy is trusted", async () => {
    const plain = await setup();
    await plain.app.inject({
      method: "GET",
      url: "/v1/admin/audit/events",
      headers: { "x-forwarded-for": "203.0.113.9" },
    });
    assert.equal((await plain.instance.audit.query({ type: "auth_failed" })).events[0]?.ip, "127.0.0.1");
    const proxied = await setup({ trustProxy: ["127.0.0.1"] });
    await proxied.app.inject({
      method: "GET",
      url: "/v1/admin/audit/events",
      headers: { "x-forwarded-for": "203.0.113.9" },
    });
    assert.equal((await proxied.instance.audit.query({ type: "auth_failed" })).events[0]?.ip, "203.0.113.9");
  });
});
