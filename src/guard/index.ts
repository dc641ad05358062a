export {
  Guard,
  GuardStream,
  DEFAULT_GUARD_POLICY,
  shippedInjectionModel,
  SEAM_REACH,
  stricterSource,
  type GuardStreamRelease,
} from "./pipeline.js";
export type { GuardPolicy, GuardVerdict, DirectionPolicy, ScanOptions, ScannerAction, Direction } from "./pipeline.js";
export { GuardThreads, type GuardThreadOptions } from "./threads.js";
export { VerdictCache, type VerdictCacheOptions, type CachedVerdict, type VerdictKey } from "./cache.js";
export { normalize, originalSpan, type NormalizedText, type HiddenPayload } from "./normalize.js";
export { detectInjection, type InjectionResult, type TextSource } from "./injection.js";
export { findSecrets } from "./secrets.js";
export { findPii, type PiiType } from "./pii.js";
export { findCanaries, findUnsafeOutput, makeCanary, type OutputCheckOptions } from "./output.js";
export { redact, findMarkedSecrets, type RedactionStyle } from "./redact.js";
export { entropy, type Finding } from "./finding.js";
export { parseStrictJson } from "./json-strict.js";
export { linearRegExp } from "./regexp.js";
export { StreamScanner, type StreamRelease } from "./stream.js";
export { Anonymizer } from "./anonymize.js";
export {
  cleanHtml,
  stripHtml,
  escapeHtml,
  sanitize,
  detectInputAttacks,
  type SanitizeOptions,
  type InputAttack,
} from "./sanitize.js";
export {
  InputValidator,
  fromFieldSchema,
  type FieldError,
  type ValidationResult,
  type GuideFieldRule,
} from "./validate.js";
