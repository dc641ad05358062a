import { errors, jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyGetKey, type KeyObject } from "jose";
import { AgentwallError } from "../errors.js";

/** The algorithms agentwall verifies; `none` and everything else is refused before jose sees it. */
export type JwtAlgorithm = "EdDSA" | "ES256" | "RS256" | "PS256" | "HS256";

/** Strict verification options: every one is required, so nothing is left to a permissive default. */
export interface StrictJwtOptions {
  readonly algorithms: readonly JwtAlgorithm[];
  readonly issuer: string | readonly string[];
  readonly audience: string | readonly string[];
  /** Expected `typ` header (`JWT`, `at+jwt`). */
  readonly typ: string;
  /** Claims that must be present; `exp`, `iat` and `sub` are always added. */
  readonly requiredClaims?: readonly string[];
  /** Oldest acceptable `iat`, in seconds. */
  readonly maxTokenAgeSeconds: number;
  /** Allowed clock skew, in seconds (default 30). */
  readonly clockToleranceSeconds?: number;
  readonly now?: () => number;
}

/** Why a token was refused: a closed set, for logs and audit (never the token). */
export type JwtFailure =
  | "MALFORMED"
  | "ALGORITHM"
  | "SIGNATURE"
  | "EXPIRED"
  | "NOT_YET_VALID"
  | "CLAIM"
  | "TYPE"
  | "UNSUPPORTED"
  | "KEYS_UNAVAILABLE";

export type JwtVerification =
  | { readonly valid: true; readonly payload: JWTPayload; readonly header: Readonly<Record<string, unknown>> }
  | { readonly valid: false; readonly failure: JwtFailure };

/** Bound on a token's length: a JWT larger than this is refused without parsing. */
export const MAX_JWT_LENGTH = 8192;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

function classify(error: unknown): JwtFailure {
  if (error instanceof errors.JWTExpired) return "EXPIRED";
  if (error instanceof errors.JWTClaimValidationFailed) {
    return error.claim === "nbf" ? "NOT_YET_VALID" : error.claim === "typ" ? "TYPE" : "CLAIM";
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return "SIGNATURE";
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) return "SIGNATURE";
  // The key source could not answer (timeout, bad JWKS, network, over-size): a denial, reported as such.
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid || error instanceof TypeError) {
    return "KEYS_UNAVAILABLE";
  }
  if (error instanceof AgentwallError) return "KEYS_UNAVAILABLE";
  if (error instanceof errors.JOSEAlgNotAllowed) return "ALGORITHM";
  if (error instanceof errors.JOSENotSupported) return "UNSUPPORTED";
  return "MALFORMED";
}

/**
 * Verifies a JWT with jose under strict options: fixed algorithms, issuer, audience, `typ`, required
 * `exp`/`iat`/`sub`, a maximum age and a bounded clock tolerance. jose fails open when options are unset,
 * so this is the only way agentwall verifies a JWT. Failures are values, never exceptions.
 *
 * @example
 * ```ts
 * const r = await verifyJwtStrict(token, publicKey, { algorithms: ["EdDSA"], issuer, audience, typ: "JWT", maxTokenAgeSeconds: 3600 });
 * if (!r.valid) deny(r.failure);
 * ```
 */
export async function verifyJwtStrict(
  token: string,
  key: CryptoKey | KeyObject | Uint8Array | JWTVerifyGetKey,
  options: StrictJwtOptions,
): Promise<JwtVerification> {
  if (options.algorithms.length === 0) throw new AgentwallError("ERR_INVALID_ARGUMENT", "algorithms must not be empty");
  if (!(options.maxTokenAgeSeconds > 0))
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "maxTokenAgeSeconds must be positive");
  if (typeof token !== "string" || token.length > MAX_JWT_LENGTH || !JWT_SHAPE.test(token)) {
    return { valid: false, failure: "MALFORMED" };
  }
  const required = [...new Set(["exp", "iat", "sub", ...(options.requiredClaims ?? [])])];
  const now = options.now?.() ?? Date.now();
  try {
    const verifyOptions = {
      algorithms: [...options.algorithms],
      issuer: typeof options.issuer === "string" ? options.issuer : [...options.issuer],
      audience: typeof options.audience === "string" ? options.audience : [...options.audience],
      typ: options.typ,
      requiredClaims: required,
      maxTokenAge: options.maxTokenAgeSeconds,
      clockTolerance: options.clockToleranceSeconds ?? 30,
      currentDate: new Date(now),
    };
    const { payload, protectedHeader } =
      typeof key === "function"
        ? await jwtVerify(token, key, verifyOptions)
        : await jwtVerify(token, key, verifyOptions);
    return { valid: true, payload, header: protectedHeader };
  } catch (error) {
    return { valid: false, failure: classify(error) };
  }
}
