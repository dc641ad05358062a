// Every gateway route joins this suite: no credential -> 401, a credential without the permission ->
// 403, malformed input -> 4xx and never 500, and no secret in any response or log line.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { ProxyClients, proxyRoutes } from "../src/gateway/proxy.js";
import { agentRoutes } from "../src/gateway/agent-routes.js";
import { EgressClient } from "../src/egress/client.js";
import { coreRoutes } from "../src/gateway/routes.js";
import { buildServer } from "../src/gateway/server.js";
import { freshPostgresDatabase, postgresReachable, testInstance } from "./helpers.js";

const SECRET_VALUE = "sk-proj-routesuitesecret0123456789";

function concrete(url: string): string {
  return url.replace(":jti", "abcdefghijklmnop").replace(":name", "openai").replace(":id", "abcdefghijkl");
}

const ENGINES = [
  { name: "SQLite", databaseUrl: async (): Promise<string | undefined> => undefined },
  {
    name: "PostgreSQL",
    databaseUrl: async (): Promise<string | undefined> =>
      (await postgresReachable()) ? freshPostgresDatabase() : "skip",
  },
];

for (const engine of ENGINES)
  describe(`route security suite on ${engine.name}`, async () => {
    const databaseUrl = await engine.databaseUrl();
    if (databaseUrl === "skip") return;
    const instance = await testInstance({
      rateLimits: { perIp: { limit: 100_000, periodMs: 60_000, burst: 100_000 }, expectedInstances: 1 },
      ...(databaseUrl === undefined ? {} : { databaseUrl }),
    });
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const app = await buildServer(instance, { logger: pino({ level: "debug" }, sink) });
    const admin = (await instance.apiKeys.create({ owner: "root", name: "admin", roles: ["admin"], creator: "test" }))
      .key;
    const nobody = (await instance.apiKeys.create({ owner: "nobody", name: "none", roles: [], creator: "test" })).key;
    await instance.vault.set("openai", SECRET_VALUE, ["api.openai.com"], "test");
    const routes = [
      ...coreRoutes(instance),
      ...proxyRoutes(instance, new ProxyClients(instance)),
      ...agentRoutes(instance, new EgressClient()),
    ];
    const responses: string[] = [];

    it("covers every route", () => assert.ok(routes.length >= 12, `${routes.length} routes`));

    for (const route of routes) {
      const url = concrete(route.url);
      const name = `${route.method} ${route.url}`;
      if ("public" in route.access) {
        it(`${name}: public, answers without a credential`, async () => {
          const res = await app.inject({ method: route.method, url });
          assert.ok(res.statusCode < 500, String(res.statusCode));
          responses.push(res.body);
        });
        continue;
      }
      it(`${name}: 401 without a credential, 403 without ${route.access.permission}`, async () => {
        const none = await app.inject({ method: route.method, url });
        assert.equal(none.statusCode, 401);
        assert.equal(none.json<{ error: { code: string } }>().error.code, "ERR_UNAUTHENTICATED");
        const garbage = await app.inject({
          method: route.method,
          url,
          headers: { authorization: "Bearer aw_zzzzzzzzzzzz_" + "a".repeat(49) },
        });
        assert.equal(garbage.statusCode, 401);
        const forbidden = await app.inject({
          method: route.method,
          url,
          headers: { authorization: `Bearer ${nobody}` },
        });
        assert.equal(forbidden.statusCode, 403);
        assert.equal(forbidden.json<{ error: { code: string } }>().error.code, "ERR_FORBIDDEN");
        responses.push(none.body, forbidden.body);
      });
      it(`${name}: malformed input is a 4xx, never a 500`, async () => {
        const auth = { authorization: `Bearer ${admin}` };
        const attempts = [
          { headers: { ...auth, "content-type": "application/json" }, payload: "{not json" },
          { headers: { ...auth, "content-type": "application/json" }, payload: '{"__proto__":{"x":1}}' },
          { headers: { ...auth, "content-type": "application/json" }, payload: "[]" },
          // Deeper than JSON.stringify (or a recursive validator) can follow.
          {
            headers: { ...auth, "content-type": "application/json" },
            payload: `{"subject":${'{"a":'.repeat(20_000)}1${"}".repeat(20_000)}}`,
          },
          {
            headers: { ...auth, "content-type": "application/json" },
            payload: '{"subject":5,"role":[],"value":{},"hosts":"x","version":"1"}',
          },
          { headers: { ...auth, "content-type": "text/plain" }, payload: "hello" },
          { headers: auth, query: "?limit=-1&since=%00&type[]=x" },
        ];
        for (const a of attempts) {
          const res = await app.inject({
            method: route.method,
            url:
              url.replace(/\/[a-z0-9]+$/i, (m) => (route.url.includes(":") ? "/..%2F" + m.slice(1) : m)) +
              ("query" in a ? a.query : ""),
            headers: a.headers,
            ...("payload" in a && route.method !== "GET" ? { payload: a.payload } : {}),
          });
          assert.ok(
            res.statusCode < 500,
            `${res.statusCode} for ${JSON.stringify(a).slice(0, 80)}: ${res.body.slice(0, 200)}`,
          );
          responses.push(res.body);
        }
      });
    }

    it("no response and no log line carries a key or a secret value", () => {
      const everything = [...responses, ...lines].join("\n");
      for (const secret of [admin, nobody, SECRET_VALUE]) assert.ok(!everything.includes(secret), "a secret leaked");
      assert.ok(lines.length > 20, "the suite's requests were logged");
    });
  });
