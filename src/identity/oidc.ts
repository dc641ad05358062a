import { createRemoteJWKSet, customFetch, decodeJwt, type FetchImplementation, type JWTPayload } from "jose";
import { AgentwallError } from "../errors.js";
import type { OidcIssuerConfig } from "../config/schema.js";
import { verifyJwtStrict, type JwtFailure } from "./jwt.js";

export type { OidcIssuerConfig };

export type OidcVerification =
  | { readonly valid: true; readonly subject: string; readonly roles: readonly string[]; readonly issuer: string }
  | { readonly valid: false; readonly failure: JwtFailure | "UNKNOWN_ISSUER" | "TENANT" };

const MAX_JWKS_BYTES = 64 * 1024;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/**
 * A fetch for JWKS documents with a size bound (jose bounds time and redirects, not size): a provider
 * answering with an endless body cannot exhaust memory.
 */
export const boundedJwksFetch: FetchImplementation = async (url, options) => {
  const response = await fetch(url, options);
  const reader = (response.body as ReadableStream<Uint8Array> | null)?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (reader !== undefined) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > MAX_JWKS_BYTES) {
        await reader.cancel();
        throw new AgentwallError("ERR_BAD_REQUEST", `JWKS document larger than ${MAX_JWKS_BYTES} bytes`);
      }
      chunks.push(value);
    }
  }
  return new Response(Buffer.concat(chunks), { status: response.status, headers: response.headers });
};

function checkConfig(c: OidcIssuerConfig): void {
  let jwks: URL;
  try {
    new URL(c.issuer);
    jwks = new URL(c.jwksUrl);
  } catch {
    throw new AgentwallError(
      "ERR_CONFIG_INVALID",
      `config field /oidc/issuers: ${c.issuer} needs a valid issuer and jwksUrl`,
    );
  }
  // Plain HTTP only for a provider on this machine (a development IdP); anything else must be HTTPS.
  if (jwks.protocol !== "https:" && !(jwks.protocol === "http:" && LOOPBACK_HOSTS.has(jwks.hostname))) {
    throw new AgentwallError("ERR_CONFIG_INVALID", `config field /oidc/issuers: jwksUrl of ${c.issuer} must use https`);
  }
  if (c.tenants !== undefined && c.tenantClaim === undefined) {
    throw new AgentwallError(
      "ERR_CONFIG_INVALID",
      `config field /oidc/issuers: ${c.issuer} lists tenants without a tenantClaim`,
    );
  }
}

function claimStrings(payload: JWTPayload, claim: string): string[] {
  const value = payload[claim];
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === "string");
  return [];
}

/**
 * Verifies bearer tokens from configured OIDC providers against the JWKS URL in the configuration
 * (cached, refetched at most every 30 s on an unknown `kid`, bounded in time and size), with strict
 * claims, tenant admission and a role mapping. Failures are values.
 *
 * @example
 * ```ts
 * const oidc = new OidcVerifier([{ issuer: "https://idp.example", jwksUrl: "https://idp.example/jwks", audience: "agentwall", roleMap: { ops: "admin" } }]);
 * const r = await oidc.verify(token);
 * ```
 */
export class OidcVerifier {
  readonly #issuers: ReadonlyMap<string, { config: OidcIssuerConfig; jwks: ReturnType<typeof createRemoteJWKSet> }>;
  readonly #now: () => number;

  constructor(issuers: readonly OidcIssuerConfig[], options: { now?: () => number; fetch?: FetchImplementation } = {}) {
    const map = new Map<string, { config: OidcIssuerConfig; jwks: ReturnType<typeof createRemoteJWKSet> }>();
    for (const config of issuers) {
      checkConfig(config);
      if (map.has(config.issuer))
        throw new AgentwallError("ERR_CONFIG_INVALID", `config field /oidc/issuers: ${config.issuer} is listed twice`);
      const jwks = createRemoteJWKSet(new URL(config.jwksUrl), {
        timeoutDuration: 5000,
        cooldownDuration: 30_000,
        cacheMaxAge: 600_000,
        [customFetch]: options.fetch ?? boundedJwksFetch,
      });
      map.set(config.issuer, { config, jwks });
    }
    this.#issuers = map;
    this.#now = options.now ?? Date.now;
  }

  /** Whether `issuer` is a configured provider (used to choose the authentication method). */
  knows(issuer: unknown): boolean {
    return typeof issuer === "string" && this.#issuers.has(issuer);
  }

  async verify(token: string): Promise<OidcVerification> {
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      return { valid: false, failure: "MALFORMED" };
    }
    const entry = typeof issuer === "string" ? this.#issuers.get(issuer) : undefined;
    if (entry === undefined) return { valid: false, failure: "UNKNOWN_ISSUER" };
    const { config, jwks } = entry;
    const result = await verifyJwtStrict(token, jwks, {
      algorithms: config.algorithms ?? ["RS256", "ES256", "EdDSA", "PS256"],
      issuer: config.issuer,
      audience: config.audience,
      typ: "JWT",
      maxTokenAgeSeconds: config.maxTokenAgeSeconds ?? 3600,
      clockToleranceSeconds: 30,
      now: this.#now,
    });
    if (!result.valid) return { valid: false, failure: result.failure };
    const payload = result.payload;
    if (config.tenantClaim !== undefined && config.tenants !== undefined) {
      const tenant = payload[config.tenantClaim];
      if (typeof tenant !== "string" || !config.tenants.includes(tenant)) return { valid: false, failure: "TENANT" };
    }
    const roles = [
      ...new Set(
        claimStrings(payload, config.rolesClaim ?? "roles")
          .filter((r) => Object.hasOwn(config.roleMap, r))
          .map((r) => config.roleMap[r] as string),
      ),
    ];
    const prefix = config.subjectPrefix ?? `${new URL(config.issuer).host}:`;
    return { valid: true, subject: `${prefix}${String(payload.sub)}`, roles, issuer: config.issuer };
  }
}
