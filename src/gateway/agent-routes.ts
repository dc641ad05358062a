import { AgentwallError } from "../errors.js";
import { permits } from "../access/permission.js";
import { runAgent } from "../agents/index.js";
import type { EgressClient } from "../egress/client.js";
import type { Instance } from "../instance.js";
import type { GatewayRoute } from "./route.js";

/**
 * `POST /v1/agents/:name/execute` with `{"operation","input"}`: the security agents as workflow nodes.
 * The route needs `agents:execute`; each agent and operation needs `agents:<name>:<operation>` too.
 */
export function agentRoutes(instance: Instance, egress: EgressClient): GatewayRoute[] {
  return [
    {
      method: "POST",
      url: "/v1/agents/:name/execute",
      access: { permission: "agents:execute" },
      handler: async (request, _reply, principal) => {
        if (principal === undefined) throw new AgentwallError("ERR_UNAUTHENTICATED", "no credential");
        const name = (request.params as { name?: unknown }).name;
        const body = request.body as { operation?: unknown; input?: unknown } | null;
        if (typeof name !== "string" || !/^[a-z_]{1,64}$/.test(name))
          throw new AgentwallError("ERR_NOT_FOUND", "no such agent");
        if (body === null || typeof body !== "object" || typeof body.operation !== "string")
          throw new AgentwallError("ERR_BAD_REQUEST", 'the body is {"operation": string, "input": object}');
        if (!/^[a-z_]{1,64}$/.test(body.operation)) throw new AgentwallError("ERR_BAD_REQUEST", "unknown operation");
        const input = body.input ?? {};
        if (typeof input !== "object" || input === null || Array.isArray(input))
          throw new AgentwallError("ERR_BAD_REQUEST", "input must be an object");
        const permission = `agents:${name}:${body.operation}`;
        if (!permits(principal.grants, permission))
          throw new AgentwallError("ERR_FORBIDDEN", `permission ${permission} required`);
        return runAgent(name, body.operation, input as Record<string, unknown>, {
          instance,
          egress,
          caller: { subject: principal.subject, roles: principal.roles, credentialId: principal.credentialId },
          requestId: request.id,
          ip: request.ip,
          details: permits(principal.grants, "guard:details"),
        });
      },
    },
  ];
}
