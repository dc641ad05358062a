/**
 * Every failure agentwall reports carries one of these stable codes. Callers and tests switch on the
 * code, never on the message. A retired code is never reused; `docs/errors.md` documents each one and
 * a test keeps that page and this list in sync.
 */
export const ERROR_CODES = [
  "ERR_INVALID_ARGUMENT",
  "ERR_CONFIG_INVALID",
  "ERR_CONFIG_FILE",
  "ERR_MASTER_KEY_INVALID",
  "ERR_MASTER_KEY_MISMATCH",
  "ERR_MASTER_KEY_MISSING",
  "ERR_DECRYPT",
  "ERR_DATA_KEY_UNKNOWN",
  "ERR_DATA_KEY_EXHAUSTED",
  "ERR_MASTER_KEY_RETIRED",
  "ERR_ROTATION_INCOMPLETE",
  "ERR_EGRESS_URL_INVALID",
  "ERR_EGRESS_SCHEME",
  "ERR_EGRESS_CREDENTIALS_IN_URL",
  "ERR_EGRESS_PORT",
  "ERR_EGRESS_HOST_DENIED",
  "ERR_EGRESS_DNS",
  "ERR_EGRESS_ADDRESS_BLOCKED",
  "ERR_EGRESS_ADDRESS_INVALID",
  "ERR_EGRESS_TOO_MANY_REDIRECTS",
  "ERR_EGRESS_RESPONSE_TOO_LARGE",
  "ERR_EGRESS_FAILED",
  "ERR_CA_NOT_INITIALIZED",
  "ERR_CA_INVALID",
  "ERR_CERT_UNKNOWN",
  "ERR_CERT_REVOKED",
  "ERR_CERT_INVALID",
  "ERR_CRL_INVALID",
  "ERR_CHANNEL_TLS",
  "ERR_CHANNEL_FRAME_TOO_LARGE",
  "ERR_CHANNEL_FRAME_TRUNCATED",
  "ERR_CHANNEL_MESSAGE_INVALID",
  "ERR_CHANNEL_SIGNATURE",
  "ERR_CHANNEL_MISADDRESSED",
  "ERR_CHANNEL_STALE",
  "ERR_CHANNEL_REPLAY",
  "ERR_CHANNEL_REPLAY_CACHE_FULL",
  "ERR_CHANNEL_CLOSED",
  "ERR_GUARD_BLOCKED",
  "ERR_MODEL_NOT_ALLOWED",
  "ERR_UPSTREAM_FAILED",
  "ERR_BUDGET_EXHAUSTED",
  "ERR_SIGNING_KEY_UNKNOWN",
  "ERR_DATABASE_UNAVAILABLE",
  "ERR_DATABASE_URL_INVALID",
  "ERR_MIGRATION_FAILED",
  "ERR_AUDIT_CLOSED",
  "ERR_AUDIT_EVENT_INVALID",
  "ERR_AUDIT_WITNESS_INVALID",
  "ERR_AUDIT_INCONSISTENT",
  "ERR_MERKLE_PROOF_INVALID",
  "ERR_LOCK_BUSY",
  "ERR_PERMISSION_INVALID",
  "ERR_ROLE_UNKNOWN",
  "ERR_ROLE_CYCLE",
  "ERR_TOOL_UNKNOWN",
  "ERR_TOOL_DENIED",
  "ERR_TOOL_ARGS_INVALID",
  "ERR_ROUTE_PERMISSION_MISSING",
  "ERR_UNAUTHENTICATED",
  "ERR_FORBIDDEN",
  "ERR_NOT_FOUND",
  "ERR_METHOD_NOT_ALLOWED",
  "ERR_BAD_REQUEST",
  "ERR_BODY_TOO_LARGE",
  "ERR_UNSUPPORTED_MEDIA_TYPE",
  "ERR_RATE_LIMITED",
  "ERR_REQUEST_TIMEOUT",
  "ERR_NOT_READY",
  "ERR_INTERNAL",
  "ERR_USAGE",
  "ERR_IO",
  "ERR_LISTEN_FAILED",
] as const;

/** A stable error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

const KNOWN = new Set<string>(ERROR_CODES);

/** True when `value` is one of agentwall's error codes. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && KNOWN.has(value);
}

/**
 * The one error class of agentwall. Messages never contain a secret (a key, a token, a password or
 * plaintext): they name ids, fields or hash prefixes only.
 *
 * @example
 * ```ts
 * try { await keyring.open(); } catch (e) {
 *   if (e instanceof AgentwallError && e.code === "ERR_MASTER_KEY_MISMATCH") process.exit(3);
 * }
 * ```
 */
export class AgentwallError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AgentwallError";
    this.code = code;
  }
}

/** True when `error` is an AgentwallError, optionally with the given code. */
export function isAgentwallError(error: unknown, code?: ErrorCode): error is AgentwallError {
  return error instanceof AgentwallError && (code === undefined || error.code === code);
}
