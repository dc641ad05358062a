import type { FastifyRequest } from "fastify";
import { AgentwallError } from "../errors.js";
import type { Instance } from "../instance.js";
import { checkStore } from "../store/database.js";
import type { GatewayRoute } from "./route.js";
import { parseTime } from "../audit/time.js";

function queryString(request: FastifyRequest, name: string): string | undefined {
  const value = (request.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length > 200)
    throw new AgentwallError("ERR_BAD_REQUEST", `query parameter ${name} is invalid`);
  return value;
}

function queryInt(request: FastifyRequest, name: string): number | undefined {
  const value = queryString(request, name);
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value))
    throw new AgentwallError("ERR_BAD_REQUEST", `query parameter ${name} must be a whole number`);
  return Number(value);
}

/** The core platform's routes: health, readiness and audit administration. */
export function coreRoutes(instance: Instance): GatewayRoute[] {
  return [
    {
      method: "GET",
      url: "/healthz",
      access: { public: true },
      handler: async () => ({ status: "ok" }),
    },
    {
      method: "GET",
      url: "/readyz",
      access: { public: true },
      handler: async (_request, reply) => {
        const store = await checkStore(instance.store);
        // The key check ran when the instance opened; a wrong key never gets this far.
        if (!store.ok) {
          return reply.code(503).send({ status: "not_ready", checks: { database: store.reason, masterKey: "ok" } });
        }
        return { status: "ready", checks: { database: "ok", migrations: "ok", masterKey: "ok" } };
      },
    },
    {
      method: "GET",
      url: "/v1/admin/audit/events",
      access: { permission: "audit:read" },
      handler: async (request) => {
        const now = Date.now();
        const since = queryString(request, "since");
        const until = queryString(request, "until");
        const page = await instance.audit.query({
          type: queryString(request, "type"),
          actor: queryString(request, "actor"),
          outcome: queryString(request, "outcome"),
          since: since === undefined ? undefined : parseTime(since, now, "since"),
          until: until === undefined ? undefined : parseTime(until, now, "until"),
          limit: queryInt(request, "limit") ?? 100,
          cursor: queryInt(request, "cursor"),
        });
        return { events: page.events, next: page.next ?? null };
      },
    },
    {
      method: "POST",
      url: "/v1/admin/audit/verify",
      access: { permission: "audit:verify" },
      handler: async () => instance.audit.verify(),
    },
  ];
}
