import { AgentwallError } from "../errors.js";

const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `1h`, `30m`, `7d` (relative to now, into the past) or an ISO date into ms. */
export function parseTime(text: string, now: number, field: string): number {
  const m = DURATION.exec(text);
  if (m !== null) return now - Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const t = Date.parse(text);
    if (!Number.isNaN(t)) return t;
  }
  throw new AgentwallError("ERR_INVALID_ARGUMENT", `${field} must be a duration like 1h or an ISO date`);
}

/** A duration such as `30d` or `1500ms` in ms, or undefined when `text` is not one. */
export function parseDurationMs(text: string): number | undefined {
  const m = DURATION.exec(text);
  return m === null ? undefined : Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}
