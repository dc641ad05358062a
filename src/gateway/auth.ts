import type { FastifyRequest } from "fastify";
import { decodeJwt } from "jose";
import type { Rbac } from "../access/rbac.js";
import type { ApiKeys } from "../identity/api-keys.js";
import type { Sessions } from "../identity/sessions.js";
import type { OidcVerifier } from "../identity/oidc.js";
import { permits } from "../access/permission.js";
import type { SourceTrust } from "./proxy-responses.js";

/** Who is calling, after authentication. */
export interface Principal {
  readonly subject: string;
  /** `key:<id>` for an API key, `session:<jti>` for a session, `oidc:<issuer>` for a provider token. */
  readonly credentialId: string;
  readonly method: "api_key" | "session" | "oidc";
  readonly roles: readonly string[];
  readonly grants: readonly string[];
}

/** What the caller's configuration lets its messages be scanned as ({@link SourceTrust}). */
export function sourceTrust(principal: Principal): SourceTrust {
  return {
    system: permits(principal.grants, "guard:trusted_system"),
    agent: principal.subject.startsWith("agent:") && permits(principal.grants, "guard:trusted_agent"),
  };
}

export type AuthDecision =
  | { readonly allowed: true; readonly principal: Principal }
  | {
      readonly allowed: false;
      readonly code: "ERR_UNAUTHENTICATED";
      readonly reason: string;
      readonly credentialId?: string;
    };

const JWT_FORM = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function deny(reason: string, credentialId?: string): AuthDecision {
  return {
    allowed: false,
    code: "ERR_UNAUTHENTICATED",
    reason,
    ...(credentialId !== undefined ? { credentialId } : {}),
  };
}

/**
 * Authenticates a request by the form of its credential: an `aw_` bearer is an API key; a JWT whose
 * issuer is agentwall's is a session; a JWT from a configured OIDC issuer is verified against that
 * issuer's configured JWKS. Anything else is refused. The method is chosen before any check
 * runs, and an error in the chosen method is a denial — never a fall-through to another method.
 */
export async function authenticate(
  request: FastifyRequest,
  identity: { apiKeys: ApiKeys; sessions: Sessions; oidc: OidcVerifier; rbac: Rbac },
): Promise<AuthDecision> {
  const apiKeyHeader = request.headers["x-api-key"];
  if (request.headers.authorization !== undefined && apiKeyHeader !== undefined) return deny("two credentials");
  const header =
    request.headers.authorization ?? (typeof apiKeyHeader === "string" ? `Bearer ${apiKeyHeader}` : undefined);
  if (header === undefined) return deny("no credential");
  const m = /^Bearer ([\x21-\x7e]{1,8192})$/.exec(header);
  if (m === null) return deny("malformed authorization header");
  const token = m[1] as string;
  if (token.startsWith("aw_")) {
    const verdict = await identity.apiKeys.verify(token);
    if (verdict.result !== "VALID") {
      return deny(
        `api key ${verdict.result.toLowerCase()}`,
        verdict.keyId !== undefined ? `key:${verdict.keyId}` : undefined,
      );
    }
    const key = verdict.key;
    return {
      allowed: true,
      principal: Object.freeze({
        subject: key.owner,
        credentialId: `key:${key.id}`,
        method: "api_key",
        roles: key.roles,
        grants: (await identity.rbac.policy()).grantsOfRoles(key.roles),
      }),
    };
  }
  if (JWT_FORM.test(token)) {
    let issuer: unknown;
    try {
      // Unverified, only to choose the method; the chosen method verifies everything.
      issuer = decodeJwt(token).iss;
    } catch {
      return deny("malformed token");
    }
    if (identity.oidc.knows(issuer)) {
      const verdict = await identity.oidc.verify(token);
      if (!verdict.valid) return deny(`oidc token ${verdict.failure.toLowerCase()}`, `oidc:${String(issuer)}`);
      return {
        allowed: true,
        principal: Object.freeze({
          subject: verdict.subject,
          credentialId: `oidc:${verdict.issuer}`,
          method: "oidc",
          roles: verdict.roles,
          grants: (await identity.rbac.policy()).grantsOfRoles(verdict.roles),
        }),
      };
    }
    if (issuer !== identity.sessions.issuer) return deny("token from an unknown issuer");
    const verdict = await identity.sessions.verify(token);
    if (!verdict.valid) {
      return deny(
        `session ${verdict.result.toLowerCase()}`,
        verdict.jti !== undefined ? `session:${verdict.jti}` : undefined,
      );
    }
    const session = verdict.session;
    return {
      allowed: true,
      principal: Object.freeze({
        subject: session.subject,
        credentialId: `session:${session.jti}`,
        method: "session",
        roles: session.roles,
        grants: (await identity.rbac.policy()).grantsOfRoles(session.roles),
      }),
    };
  }
  return deny("unsupported credential");
}
