import type { FastifyReply, FastifyRequest, HTTPMethods } from "fastify";
import type { Permission } from "../access/permission.js";
import type { Principal } from "./auth.js";

/**
 * What a route needs: a permission, or `public` for the short allowlist of routes that answer without
 * a credential. A route with neither is refused when the server is built.
 */
export type RouteAccess = { readonly permission: Permission } | { readonly public: true };

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
