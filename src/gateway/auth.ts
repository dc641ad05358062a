import type { FastifyRequest } from "fastify";
import { grantsOfRoles } from "../access/roles.js";
import type { ApiKeys } from "../identity/api-keys.js";

/** Who is calling, after authentication. */
export interface Principal {
  readonly subject: string;
  /** `key:<id>` for an API key. */
  readonly credentialId: string;
  readonly method: "api_key";
  readonly roles: readonly string[];
  readonly grants: readonly string[];
}

export type AuthDecision =
  | { readonly allowed: true; readonly principal: Principal }
  | {
      readonly allowed: false;
      readonly code: "ERR_UNAUTHENTICATED";
      readonly reason: string;
      readonly credentialId?: string;
    };

/**
 * Authenticates a request by the form of its credential. An `aw_` bearer is an API key; any other
 * bearer is refused here (sessions and OIDC plug in beside it) — an error in one method is a denial,
 * never a fall-through to another.
 */
export async function authenticate(request: FastifyRequest, apiKeys: ApiKeys): Promise<AuthDecision> {
  const header = request.headers.authorization;
  if (header === undefined) return { allowed: false, code: "ERR_UNAUTHENTICATED", reason: "no credential" };
  const m = /^Bearer ([\x21-\x7e]{1,4096})$/.exec(header);
  if (m === null) return { allowed: false, code: "ERR_UNAUTHENTICATED", reason: "malformed authorization header" };
  const token = m[1] as string;
  if (!token.startsWith("aw_"))
    return { allowed: false, code: "ERR_UNAUTHENTICATED", reason: "unsupported credential" };
  const verdict = await apiKeys.verify(token);
  if (verdict.result !== "VALID") {
    return {
      allowed: false,
      code: "ERR_UNAUTHENTICATED",
      reason: `api key ${verdict.result.toLowerCase()}`,
      ...(verdict.keyId !== undefined ? { credentialId: `key:${verdict.keyId}` } : {}),
    };
  }
  const key = verdict.key;
  const grants = grantsOfRoles(key.roles);
  return {
    allowed: true,
    principal: Object.freeze({
      subject: key.owner,
      credentialId: `key:${key.id}`,
      method: "api_key",
      roles: key.roles,
      grants,
    }),
  };
}
