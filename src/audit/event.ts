import { AgentwallError } from "../errors.js";
import { redactValue, redactText } from "./redact.js";

/** The kinds of events every module writes. Add new kinds at the end; never rename one. */
export const AUDIT_EVENT_TYPES = [
  "login",
  "logout",
  "auth_failed",
  "data_access",
  "data_modify",
  "agent_execute",
  "permission_check",
  "permission_change",
  "key_created",
  "key_revoked",
  "key_rotated",
  "key_suspended",
  "key_resumed",
  "session_created",
  "session_revoked",
  "security_alert",
  "egress",
  "guard_block",
  "config_change",
  "system",
  "certificate",
  "channel",
  "llm_request",
] as const;
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export const AUDIT_OUTCOMES = ["success", "failure", "allowed", "denied", "blocked", "error"] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** What a caller hands to {@link AuditSink.append}. */
export interface AuditEventInput {
  readonly type: AuditEventType;
  /** Who acted: a subject id, a key id (`key:…`), `system`, or `anonymous`. Never a secret. */
  readonly actor: string;
  readonly action: string;
  readonly outcome: AuditOutcome;
  readonly resource?: string;
  readonly ip?: string;
  readonly userAgent?: string;
  readonly requestId?: string;
  /** Free-form details; secrets are redacted, then the whole object is encrypted at rest. */
  readonly details?: Readonly<Record<string, unknown>>;
  /** Event time in ms; defaults to the log's clock. */
  readonly at?: number;
}

/** An event after validation and redaction, ready to be sealed and stored. */
export interface PreparedEvent {
  readonly ts: number;
  readonly type: AuditEventType;
  readonly actor: string;
  readonly action: string;
  readonly resource: string;
  readonly outcome: AuditOutcome;
  readonly ip: string;
  readonly userAgent: string;
  readonly requestId: string;
  readonly details: string;
}

/** An event as read back from the log. `details` is null when its data key was destroyed (erasure). */
export interface AuditRecord {
  readonly seq: number;
  readonly ts: number;
  readonly type: string;
  readonly actor: string;
  readonly action: string;
  readonly resource: string;
  readonly outcome: string;
  readonly ip: string;
  readonly userAgent: string;
  readonly requestId: string;
  readonly details: Record<string, unknown> | null;
  /**
   * Why `details` is null: `erased` when its data key was destroyed, `undecryptable` when the ciphertext
   * does not open for this row (moved or altered; `verify` reports where).
   */
  readonly detailsUnavailable?: "erased" | "undecryptable";
}

/** The receipt of a durable append. */
export interface AuditReceipt {
  readonly seq: number;
}

/**
 * Where modules write their audit events. `append` resolves only once the event is durable. Library
 * modules receive a sink instead of importing the audit log, so they stay free of the database.
 */
export interface AuditSink {
  /**
   * `defer` (a hint a sink may ignore): the event may wait to be committed with the caller's next
   * event that is not deferred, so one disk flush covers both; do not await a deferred append before
   * making that next one.
   */
  append(event: AuditEventInput, options?: { defer?: boolean }): Promise<AuditReceipt>;
}

const TYPES = new Set<string>(AUDIT_EVENT_TYPES);
const OUTCOMES = new Set<string>(AUDIT_OUTCOMES);
const MAX_FIELD = 512;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
const CONTROL = /[\u0000-\u001f\u007f]/;
// eslint-disable-next-line no-control-regex -- as above
const CONTROL_ALL = /[\u0000-\u001f\u007f]/g;

function clearField(value: unknown, name: string, required: boolean): string {
  if (value === undefined || value === null) {
    if (required) throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", `audit event field ${name} is required`);
    return "";
  }
  if (typeof value !== "string") {
    throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", `audit event field ${name} must be a string`);
  }
  if (required && value.length === 0) {
    throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", `audit event field ${name} is empty`);
  }
  // Searchable columns stay in clear, so they get the same secret redaction as details.
  const redacted = redactText(CONTROL.test(value) ? value.replace(CONTROL_ALL, " ") : value);
  return redacted.length > MAX_FIELD ? redacted.slice(0, MAX_FIELD) + "…" : redacted;
}

/** Validates and redacts an event. Throws `ERR_AUDIT_EVENT_INVALID` for a malformed one. */
export function prepareEvent(input: AuditEventInput, now: number): PreparedEvent {
  if (typeof input !== "object" || input === null) {
    throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", "an audit event must be an object");
  }
  if (!TYPES.has(input.type)) {
    throw new AgentwallError(
      "ERR_AUDIT_EVENT_INVALID",
      `unknown audit event type ${JSON.stringify(String(input.type)).slice(0, 40)}`,
    );
  }
  if (!OUTCOMES.has(input.outcome)) {
    throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", "unknown audit event outcome");
  }
  const ts = input.at ?? now;
  if (!Number.isSafeInteger(ts) || ts < 0) {
    throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", "audit event time must be integer milliseconds");
  }
  if (
    input.details !== undefined &&
    (typeof input.details !== "object" || input.details === null || Array.isArray(input.details))
  ) {
    throw new AgentwallError("ERR_AUDIT_EVENT_INVALID", "audit event details must be an object");
  }
  return Object.freeze({
    ts,
    type: input.type,
    actor: clearField(input.actor, "actor", true),
    action: clearField(input.action, "action", true),
    resource: clearField(input.resource, "resource", false),
    outcome: input.outcome,
    ip: clearField(input.ip, "ip", false),
    userAgent: clearField(input.userAgent, "userAgent", false),
    requestId: clearField(input.requestId, "requestId", false),
    details: JSON.stringify(redactValue(input.details ?? {})),
  });
}
