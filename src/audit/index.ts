export * from "./event.js";
export {
  AuditLog,
  rowLeaf,
  type AuditLogOptions,
  type AuditQuery,
  type AuditVerifyResult,
  type AuditVerifyProblem,
} from "./log.js";
export * from "./checkpoint.js";
export * from "./merkle.js";
export { redactText, redactValue, isSecretField, REDACTED } from "./redact.js";
export { parseTime, parseDurationMs } from "./time.js";
export * from "./ship.js";
