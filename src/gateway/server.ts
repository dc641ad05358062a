import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Logger } from "pino";
import { permits } from "../access/permission.js";
import { AgentwallError, isAgentwallError, type ErrorCode } from "../errors.js";
import type { Instance } from "../instance.js";
import { authenticate, type Principal } from "./auth.js";
import { pendingChecks, permissionAudited } from "./pending-audit.js";
import { FailureAggregator, type SuppressedFailures } from "./failure-aggregator.js";
import { applySecurityHeaders } from "./headers.js";
import { PUBLIC_ROUTES, type GatewayRoute } from "./route.js";
import { coreRoutes } from "./routes.js";
import { ProxyClients, proxyRoutes } from "./proxy.js";
import { agentRoutes } from "./agent-routes.js";
import { EgressClient } from "../egress/client.js";
import { bucketKey } from "../monitor/ratelimit/limiter.js";
import { MAX_JSON_DEPTH, jsonDepthWithin } from "../guard/json-strict.js";

/** Options of {@link buildServer}. */
export interface BuildServerOptions {
  /** A pino logger; the gateway logs allow-listed fields only. Default: silent. */
  readonly logger?: Logger;
  /** Failed authentications recorded one by one per client address and minute; the rest are summarised. Default 20. */
  readonly failuresPerMinute?: number;
  /** Length of an address's failure window (default one minute) and how often ended ones are swept (5 s). */
  readonly failureWindowMs?: number;
  readonly failureSweepMs?: number;
  /** Extra routes (later capabilities), each with its declared access. */
  readonly routes?: readonly GatewayRoute[];
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  ERR_BAD_REQUEST: 400,
  ERR_INVALID_ARGUMENT: 400,
  ERR_UNAUTHENTICATED: 401,
  ERR_FORBIDDEN: 403,
  ERR_NOT_FOUND: 404,
  ERR_CA_NOT_INITIALIZED: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_REQUEST_TIMEOUT: 408,
  ERR_BODY_TOO_LARGE: 413,
  ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_RATE_LIMITED: 429,
  ERR_NOT_READY: 503,
  ERR_DATABASE_UNAVAILABLE: 503,
  ERR_AUDIT_CLOSED: 503,
  ERR_LOCK_BUSY: 503,
  ERR_PERMISSION_INVALID: 400,
  ERR_ROLE_UNKNOWN: 400,
  ERR_ROLE_CYCLE: 400,
  ERR_TOOL_UNKNOWN: 403,
  ERR_TOOL_DENIED: 403,
  ERR_TOOL_ARGS_INVALID: 400,
  ERR_GUARD_BLOCKED: 400,
  ERR_MODEL_NOT_ALLOWED: 403,
  ERR_UPSTREAM_FAILED: 502,
  ERR_BUDGET_EXHAUSTED: 429,
  ERR_EGRESS_FAILED: 502,
};

// Fastify's own error codes, mapped onto ours so every error has one shape and a stable code.
const FASTIFY_CODES: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "ERR_BODY_TOO_LARGE",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "ERR_UNSUPPORTED_MEDIA_TYPE",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "ERR_BAD_REQUEST",
  FST_ERR_CTP_EMPTY_JSON_BODY: "ERR_BAD_REQUEST",
  FST_ERR_CTP_INVALID_JSON_BODY: "ERR_BAD_REQUEST",
  FST_ERR_VALIDATION: "ERR_BAD_REQUEST",
};

function sendError(reply: FastifyReply, request: FastifyRequest, code: ErrorCode, message: string): FastifyReply {
  return reply.code(STATUS[code] ?? 500).send({ error: { code, message, requestId: request.id } });
}

/**
 * Builds the gateway (not listening): security headers, limits, request ids, authentication, route
 * permissions, JSON errors. `listen()` is separate so tests drive it in-process with `inject()`.
 *
 * @example
 * ```ts
 * const app = await buildServer(instance);
 * const res = await app.inject({ method: "GET", url: "/healthz" });
 * ```
 */
export async function buildServer(instance: Instance, options: BuildServerOptions = {}): Promise<FastifyInstance> {
  const { config } = instance;
  const log = options.logger;
  const https =
    config.tls === undefined
      ? null
      : {
          cert: readFileSync(config.tls.certFile),
          key: readFileSync(config.tls.keyFile),
          minVersion: "TLSv1.2" as const,
          maxHeaderSize: config.limits.headerBytes,
        };
  const app = Fastify({
    logger: false,
    https,
    http: https === null ? { maxHeaderSize: config.limits.headerBytes } : undefined,
    bodyLimit: config.limits.bodyBytes,
    connectionTimeout: config.limits.connectionTimeoutMs,
    keepAliveTimeout: config.limits.keepAliveTimeoutMs,
    requestTimeout: config.limits.requestTimeoutMs,
    // The client address comes from the socket unless the operator lists the proxies to believe.
    trustProxy: config.trustProxy.length > 0 ? config.trustProxy : false,
    // Ids are always ours: a caller-supplied id could be used to forge or collide audit entries.
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    onProtoPoisoning: "error",
    onConstructorPoisoning: "error",
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  // Fastify's JSON parser (prototype and constructor poisoning refused), after a bound on nesting: what
  // JSON.parse accepts thousands of levels deep, JSON.stringify (the forward) and recursive validators
  // cannot handle, which made such a body a 500 instead of a refusal.
  const parseJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    if (!jsonDepthWithin(text))
      return done(new AgentwallError("ERR_BAD_REQUEST", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
    return parseJson(request, text, done);
  });

  app.addHook("onRequest", async (request, reply) => {
    applySecurityHeaders(reply);
    reply.header("x-request-id", request.id);
    // Per client address, before any credential is looked up: a flood of bad keys costs the attacker
    // their own budget, not a database lookup each. Health probes are exempt.
    if (request.url === "/healthz" || request.url === "/readyz") return;
    let decision;
    try {
      const perIp = instance.config.rateLimits.perIp;
      decision = await instance.rateLimiter.take(bucketKey("ip", perIp, request.ip), perIp);
    } catch {
      return sendError(reply, request, "ERR_NOT_READY", "rate limiter unavailable");
    }
    if (!decision.allowed) {
      if (decision.retryAfterMs >= 0)
        reply.header("retry-after", String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000))));
      return sendError(reply, request, "ERR_RATE_LIMITED", "too many requests");
    }
  });

  const principals = new WeakMap<FastifyRequest, Principal>();
  app.addHook("onSend", async (request, reply, payload) => {
    instance.audit.commitDeferred();
    try {
      await permissionAudited(request);
      return payload;
    } catch (error) {
      // The answer is replaced here (not thrown: an error raised while sending would leave Fastify's
      // bare 500): whatever the handler produced does not leave without its audit event.
      const code: ErrorCode = isAgentwallError(error) ? error.code : "ERR_DATABASE_UNAVAILABLE";
      reply.code(STATUS[code] ?? 503).header("content-type", "application/json; charset=utf-8");
      return JSON.stringify({ error: { code, message: "the request could not be audited", requestId: request.id } });
    }
  });
  app.addHook("onResponse", async (request, reply) => {
    instance.metrics.request(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
    // Anomaly detection never fails a request: its own errors are dropped here.
    const who = principals.get(request);
    if (who !== undefined)
      await instance.anomaly
        .observeRequest({
          subject: who.subject,
          ip: request.ip,
          status: reply.statusCode,
          credentialId: who.credentialId,
        })
        .catch(() => undefined);
    if (reply.statusCode === 401 || reply.statusCode === 403)
      await instance.anomaly.observeAuthFailure(request.ip).catch(() => undefined);
    // Allow-listed fields only: never headers, bodies or query strings (they can carry secrets).
    log?.info(
      {
        reqId: request.id,
        method: request.method,
        route: request.routeOptions.url ?? "(unmatched)",
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        ip: request.ip,
      },
      "request",
    );
  });

  app.setNotFoundHandler((request, reply) => sendError(reply, request, "ERR_NOT_FOUND", "no such route"));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (isAgentwallError(error)) return sendError(reply, request, error.code, error.message);
    const mapped = error.code !== undefined ? FASTIFY_CODES[error.code] : undefined;
    if (mapped !== undefined)
      return sendError(
        reply,
        request,
        mapped,
        mapped === "ERR_BODY_TOO_LARGE" ? "request body too large" : "malformed request",
      );
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, request, "ERR_BAD_REQUEST", "malformed request");
    }
    log?.error({ reqId: request.id, code: error.code ?? "unknown", name: error.name }, "unhandled error");
    return sendError(reply, request, "ERR_INTERNAL", "internal error");
  });

  const failures = new FailureAggregator({
    ...(options.failuresPerMinute === undefined ? {} : { perMinute: options.failuresPerMinute }),
    ...(options.failureWindowMs === undefined ? {} : { windowMs: options.failureWindowMs }),
  });
  const recordSuppressed = (s: SuppressedFailures) =>
    instance.audit.append({
      type: "auth_failed",
      actor: "anonymous",
      action: "auth.failures.aggregated",
      outcome: "denied",
      ip: s.ip,
      details: { suppressed: s.suppressed, windowStart: s.windowStart },
    });
  // Ended windows are summarized within seconds, not when the address fails again (which may be never)
  // or at shutdown (which a crash skips): at most a window and a sweep of suppressed counts is in memory.
  const sweeper = setInterval(() => {
    for (const s of failures.sweep())
      recordSuppressed(s).catch((error: unknown) =>
        log?.error({ code: (error as { code?: string }).code ?? "unknown" }, "audit of suppressed failures failed"),
      );
  }, options.failureSweepMs ?? 5_000);
  sweeper.unref();
  app.addHook("onClose", async () => {
    clearInterval(sweeper);
    for (const s of failures.drain()) await recordSuppressed(s).catch(() => undefined);
  });

  const proxy = new ProxyClients(instance);
  app.addHook("onClose", () => proxy.close());
  // The network agent's client: request URLs only (public addresses), audited as the agent.
  const agentEgress = new EgressClient({ audit: instance.audit, actor: "agent:secure_network" });
  app.addHook("onClose", () => agentEgress.close());
  const routes = [
    ...coreRoutes(instance),
    ...proxyRoutes(instance, proxy),
    ...agentRoutes(instance, agentEgress),
    ...(options.routes ?? []),
  ];
  for (const route of routes) {
    if (!("permission" in route.access) && !PUBLIC_ROUTES.has(route.url)) {
      throw new AgentwallError(
        "ERR_ROUTE_PERMISSION_MISSING",
        `route ${route.method} ${route.url} declares no permission`,
      );
    }
  }
  // Routes added to Fastify by any other path (a plugin) must also have declared access.
  const declared = new Set(routes.map((r) => `${r.method} ${r.url}`));
  app.addHook("onRoute", (opts) => {
    const methods = Array.isArray(opts.method) ? opts.method : [opts.method];
    for (const m of methods) {
      const method = m === "HEAD" ? "GET" : m;
      if (!declared.has(`${method} ${opts.url}`)) {
        throw new AgentwallError("ERR_ROUTE_PERMISSION_MISSING", `route ${m} ${opts.url} declares no permission`);
      }
    }
  });

  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.url,
      handler: async (request, reply) => {
        if ("public" in route.access) return route.handler(request, reply, undefined);
        const permission = route.access.permission;
        const auth = await authenticate(request, instance);
        if (!auth.allowed) {
          const { record, summary } = failures.register(request.ip);
          if (summary !== undefined) await recordSuppressed(summary);
          if (record) {
            await instance.audit.append({
              type: "auth_failed",
              actor: auth.credentialId ?? "anonymous",
              action: `${route.method} ${route.url}`,
              outcome: "denied",
              ip: request.ip,
              userAgent: request.headers["user-agent"] ?? "",
              requestId: request.id,
              details: { reason: auth.reason },
            });
          }
          reply.header("www-authenticate", 'Bearer realm="agentwall"');
          return sendError(reply, request, auth.code, "authentication required");
        }
        const principal: Principal = auth.principal;
        principals.set(request, principal);
        const allowed = permits(principal.grants, permission);
        const event = {
          type: "permission_check",
          actor: principal.credentialId,
          action: `${route.method} ${route.url}`,
          resource: permission,
          outcome: allowed ? "allowed" : "denied",
          ip: request.ip,
          userAgent: request.headers["user-agent"] ?? "",
          requestId: request.id,
          details: { subject: principal.subject, roles: principal.roles },
        } as const;
        if (allowed && route.access.checkInRouteEvent === true) {
          // Recorded by the route's own event (a row less per request), or appended before the answer.
          pendingChecks.set(request, {
            record: { permission, roles: principal.roles },
            append: () => instance.audit.append(event),
          });
          return route.handler(request, reply, principal);
        }
        // Allowed: committed with the request's own next event (one disk flush for both).
        const checked = instance.audit.append(event, { defer: allowed });
        if (!allowed) {
          await checked;
          return sendError(reply, request, "ERR_FORBIDDEN", `permission ${permission} required`);
        }
        // Allowed: the check's event commits with the request's own events (one disk flush instead of
        // two); no answer leaves before it is durable (onSend below, permissionAudited for streams).
        checked.catch(() => undefined);
        pendingChecks.set(request, checked);
        return route.handler(request, reply, principal);
      },
    });
  }
  return app;
}
