import type { FastifyRequest } from "fastify";
import { AgentwallError } from "../errors.js";
import type { Instance } from "../instance.js";
import { checkStore } from "../store/database.js";
import { mintsSessions } from "../identity/sessions.js";
import type { GatewayRoute } from "./route.js";
import { parseTime } from "../audit/time.js";
import { guardRoutes } from "./guard-routes.js";
import { caRoutes } from "./ca-routes.js";

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
    ...guardRoutes(instance),
    ...caRoutes(instance),
    {
      method: "GET",
      url: "/v1/admin/alerts",
      access: { permission: "alerts:read" },
      handler: async (request) => {
        const since = queryString(request, "since");
        const alerts = await instance.anomaly.list({
          limit: queryInt(request, "limit"),
          subject: queryString(request, "subject"),
          since: since === undefined ? undefined : parseTime(since, Date.now(), "since"),
        });
        return { alerts };
      },
    },
    {
      method: "GET",
      url: "/metrics",
      access: { permission: "metrics:read" },
      handler: async (_request, reply) =>
        reply.type(instance.metrics.registry.contentType).send(await instance.metrics.registry.metrics()),
    },
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
      url: "/v1/sessions",
      access: { permission: "sessions:self" },
      handler: async (request, reply, principal) => {
        if (principal === undefined || !mintsSessions(principal.credentialId)) {
          throw new AgentwallError("ERR_FORBIDDEN", "sessions are created with an API key");
        }
        const session = await instance.sessions.issue({
          subject: principal.subject,
          roles: principal.roles,
          creator: principal.credentialId,
          ip: request.ip,
          userAgent: request.headers["user-agent"] ?? "",
        });
        return reply.code(201).send(session);
      },
    },
    {
      method: "DELETE",
      url: "/v1/sessions/current",
      access: { permission: "sessions:self" },
      handler: async (request, reply, principal) => {
        if (principal?.method !== "session") {
          throw new AgentwallError("ERR_BAD_REQUEST", "not authenticated with a session");
        }
        await instance.sessions.revoke(principal.credentialId.slice("session:".length), principal.credentialId);
        return reply.code(204).send();
      },
    },
    {
      method: "GET",
      url: "/v1/admin/sessions",
      access: { permission: "sessions:read" },
      handler: async (request) => ({ sessions: await instance.sessions.listActive(queryString(request, "subject")) }),
    },
    {
      method: "DELETE",
      url: "/v1/admin/sessions/:jti",
      access: { permission: "sessions:revoke" },
      handler: async (request, reply, principal) => {
        const { jti } = request.params as { jti: string };
        if (!/^[A-Za-z0-9_-]{10,64}$/.test(jti)) throw new AgentwallError("ERR_BAD_REQUEST", "invalid session id");
        const revoked = await instance.sessions.revoke(jti, principal?.credentialId ?? "unknown");
        if (!revoked) throw new AgentwallError("ERR_NOT_FOUND", "no active session with this id");
        return reply.code(204).send();
      },
    },
    {
      method: "GET",
      url: "/v1/admin/keys",
      access: { permission: "keys:read" },
      handler: async (request) => ({ keys: await instance.apiKeys.list(queryString(request, "subject")) }),
    },
    {
      method: "POST",
      url: "/v1/admin/keys",
      access: { permission: "keys:create" },
      handler: async (request, reply, principal) => {
        const body = request.body as
          { subject?: unknown; name?: unknown; roles?: unknown; expiresInMs?: unknown } | undefined;
        const roles = body?.roles ?? [];
        if (
          typeof body?.subject !== "string" ||
          (body.name !== undefined && typeof body.name !== "string") ||
          !Array.isArray(roles) ||
          !roles.every((r): r is string => typeof r === "string") ||
          (body.expiresInMs !== undefined &&
            (typeof body.expiresInMs !== "number" ||
              !Number.isSafeInteger(body.expiresInMs) ||
              body.expiresInMs < 1000))
        ) {
          throw new AgentwallError("ERR_BAD_REQUEST", "body must be {subject, name?, roles?: string[], expiresInMs?}");
        }
        // Bounded delegation: a caller can only create keys with permissions it holds itself.
        const delegation = (await instance.rbac.policy()).canDelegate(principal?.grants ?? [], roles);
        if (!delegation.allowed) throw new AgentwallError("ERR_FORBIDDEN", delegation.reason);
        const created = await instance.apiKeys.create({
          owner: body.subject,
          name: typeof body.name === "string" ? body.name : "api key",
          roles,
          creator: principal?.credentialId ?? "unknown",
          expiresAt: typeof body.expiresInMs === "number" ? Date.now() + body.expiresInMs : null,
        });
        return reply.code(201).send(created);
      },
    },
    {
      method: "DELETE",
      url: "/v1/admin/keys/:id",
      access: { permission: "keys:revoke" },
      handler: async (request, reply, principal) => {
        const { id } = request.params as { id: string };
        if (!/^[0-9a-z]{12}$/.test(id)) throw new AgentwallError("ERR_BAD_REQUEST", "invalid key id");
        if (!(await instance.apiKeys.revoke(id, principal?.credentialId ?? "unknown")))
          throw new AgentwallError("ERR_NOT_FOUND", "no active key with this id");
        return reply.code(204).send();
      },
    },
    ...(["suspend", "resume"] as const).map((action): GatewayRoute => ({
      method: "POST",
      url: `/v1/admin/keys/:id/${action}`,
      access: { permission: "keys:suspend" },
      handler: async (request, reply, principal) => {
        const { id } = request.params as { id: string };
        if (!/^[0-9a-z]{12}$/.test(id)) throw new AgentwallError("ERR_BAD_REQUEST", "invalid key id");
        const actor = principal?.credentialId ?? "unknown";
        const changed =
          action === "suspend" ? await instance.apiKeys.suspend(id, actor) : await instance.apiKeys.resume(id, actor);
        if (!changed)
          throw new AgentwallError(
            "ERR_NOT_FOUND",
            action === "suspend" ? "no live, unsuspended key with this id" : "no suspended, unrevoked key with this id",
          );
        return reply.code(204).send();
      },
    })),
    {
      method: "GET",
      url: "/v1/admin/roles",
      access: { permission: "roles:manage" },
      handler: async () => {
        const policy = await instance.rbac.policy();
        return {
          roles: policy
            .roles()
            .map((r) => ({ name: r.name, inherits: r.inherits ?? [], grants: policy.grantsOf(r.name) })),
        };
      },
    },
    {
      method: "POST",
      url: "/v1/admin/roles/assignments",
      access: { permission: "roles:manage" },
      handler: async (request, reply, principal) => {
        const body = request.body as
          { subject?: unknown; role?: unknown; resource?: unknown; remove?: unknown } | undefined;
        if (
          typeof body?.subject !== "string" ||
          typeof body.role !== "string" ||
          (body.resource !== undefined && typeof body.resource !== "string")
        ) {
          throw new AgentwallError("ERR_BAD_REQUEST", "body must be {subject, role, resource?, remove?}");
        }
        const actor = {
          id: principal?.credentialId ?? "unknown",
          grants: principal?.grants ?? [],
          ip: request.ip,
          userAgent: request.headers["user-agent"] ?? "",
        };
        const changed =
          body.remove === true
            ? await instance.rbac.remove(body.subject, body.role, body.resource, actor)
            : await instance.rbac.assign(body.subject, body.role, body.resource, actor);
        return reply.code(200).send({ changed });
      },
    },
    {
      method: "GET",
      url: "/v1/admin/vault",
      access: { permission: "vault:manage" },
      handler: async () => ({ secrets: await instance.vault.list() }),
    },
    {
      method: "PUT",
      url: "/v1/admin/vault/:name",
      access: { permission: "vault:manage" },
      // Write-only: the value goes in, only metadata ever comes out.
      handler: async (request, reply, principal) => {
        const { name } = request.params as { name: string };
        const body = request.body as { value?: unknown; hosts?: unknown } | undefined;
        if (typeof body?.value !== "string" || !Array.isArray(body.hosts)) {
          throw new AgentwallError("ERR_BAD_REQUEST", "body must be {value: string, hosts: string[]}");
        }
        const version = await instance.vault.set(
          name,
          body.value,
          body.hosts as string[],
          principal?.credentialId ?? "unknown",
        );
        return reply.code(201).send({ name, version });
      },
    },
    {
      method: "POST",
      url: "/v1/admin/vault/:name/rollback",
      access: { permission: "vault:manage" },
      handler: async (request, reply, principal) => {
        const { name } = request.params as { name: string };
        const version = (request.body as { version?: unknown } | undefined)?.version;
        if (typeof version !== "number" || !Number.isSafeInteger(version))
          throw new AgentwallError("ERR_BAD_REQUEST", "body must be {version: integer}");
        await instance.vault.rollback(name, version, principal?.credentialId ?? "unknown");
        return reply.code(204).send();
      },
    },
    {
      method: "DELETE",
      url: "/v1/admin/vault/:name",
      access: { permission: "vault:manage" },
      handler: async (request, reply, principal) => {
        const { name } = request.params as { name: string };
        if (!(await instance.vault.delete(name, principal?.credentialId ?? "unknown")))
          throw new AgentwallError("ERR_NOT_FOUND", "no such secret");
        return reply.code(204).send();
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
