import type { FastifyReply, FastifyRequest, HTTPMethods } from "fastify";
import type { Permission } from "../access/permission.js";
import type { Principal } from "./auth.js";

/**
 * What a route needs: a permission, or `public` for the short allowlist of routes that answer without
 * a credential. A route with neither is refused when the server is built.
 *
 * `checkInRouteEvent`: the handler's own durable event about the request records an allowed check
 * (it puts `claimPermissionCheck`'s answer, pending-audit.ts, in its details), so the check takes no row of its own;
 * if the answer leaves before the handler claimed it (an error on the way), the check is appended and
 * made durable first, as for every other route. A denied check is always its own event.
 */
export type RouteAccess =
  { readonly permission: Permission; readonly checkInRouteEvent?: boolean } | { readonly public: true };

/** A route of the gateway, with its access declared next to its handler. */
export interface GatewayRoute {
  readonly method: HTTPMethods;
  readonly url: string;
  readonly access: RouteAccess;
  readonly handler: (
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal | undefined,
  ) => Promise<unknown>;
}

/** Routes allowed to be public. Anything else declared public is refused at startup. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/v1/ca/crl", "/v1/ca/certificate"]);
