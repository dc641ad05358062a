import { LRUCache } from "lru-cache";
import { AgentwallError } from "../../errors.js";

/** A limit: `limit` requests per `periodMs`, with bursts of up to `burst` beyond the steady rate. */
export interface RateLimit {
  readonly limit: number;
  readonly periodMs: number;
  readonly burst: number;
}

/**
 * The decision of a rate limiter: a value, never an exception. `remaining` is what could still be
 * taken now; `resetMs` is when the key is back to its full allowance. `retryAfterMs` is -1 when the
 * request can never succeed (it costs more than the whole burst).
 */
export type RateDecision =
  | { readonly allowed: true; readonly remaining: number; readonly resetMs: number }
  | {
      readonly allowed: false;
      readonly code: "ERR_RATE_LIMITED";
      readonly remaining: number;
      readonly retryAfterMs: number;
      readonly resetMs: number;
    };

/**
 * The rate-limiting seam: memory here, SQL and Redis backends behind the same interface, so the gateway
 * and library modules take whichever the deployment has. Implementations fail closed: a backend that
 * cannot answer rejects (the caller denies), it never allows by default.
 */
export interface RateLimiter {
  take(key: string, limit: RateLimit, cost?: number): Promise<RateDecision>;
}

function checkLimit(limit: RateLimit, cost: number): void {
  if (!Number.isSafeInteger(limit.limit) || limit.limit < 1)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "limit must be a positive integer");
  if (!Number.isSafeInteger(limit.periodMs) || limit.periodMs < 1)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "periodMs must be a positive integer");
  if (!Number.isSafeInteger(limit.burst) || limit.burst < 0)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "burst must be a non-negative integer");
  if (!Number.isSafeInteger(cost) || cost < 0)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "cost must be a non-negative integer");
}

/**
 * The key of one bucket: what is limited (`kind`, `id`) and the limit's parameters. With the parameters
 * in the key, a limit changed by a configuration reload starts fresh buckets instead of carrying the
 * old limit's debt (up to period × (burst + 1) / limit of it).
 */
export function bucketKey(kind: string, limit: RateLimit, id: string): string {
  return `${kind}:${limit.limit}/${limit.periodMs}/${limit.burst}:${id}`;
}

/**
 * GCRA (the generic cell rate algorithm, as in redis-cell): one timestamp per key, the "theoretical
 * arrival time". A pure function so every backend (memory, SQL, Redis script) shares the arithmetic.
 * `cost` 0 peeks without taking.
 */
export function gcra(
  tat: number | undefined,
  now: number,
  limit: RateLimit,
  cost = 1,
): { decision: RateDecision; tat: number | undefined } {
  checkLimit(limit, cost);
  const interval = limit.periodMs / limit.limit;
  const tolerance = interval * (limit.burst + 1);
  const increment = interval * cost;
  const stored = tat ?? now;
  const next = Math.max(stored, now) + increment;
  const allowAt = next - tolerance;
  const remainingFor = (ttl: number) =>
    tolerance - ttl > -interval ? Math.max(0, Math.floor((tolerance - ttl) / interval + 1e-9)) : 0;
  if (now < allowAt) {
    const ttl = Math.max(0, stored - now);
    return {
      decision: {
        allowed: false,
        code: "ERR_RATE_LIMITED",
        remaining: remainingFor(ttl),
        retryAfterMs: increment <= tolerance ? Math.ceil(allowAt - now) : -1,
        resetMs: Math.ceil(ttl),
      },
      tat,
    };
  }
  const ttl = next - now;
  return { decision: { allowed: true, remaining: remainingFor(ttl), resetMs: Math.ceil(ttl) }, tat: next };
}

/**
 * In-process GCRA limiter with bounded memory: at most `maxKeys` keys, the least recently used evicted
 * first (an evicted key restarts with a full allowance, so the bound must exceed the active key count).
 */
export class MemoryRateLimiter implements RateLimiter {
  /**
   * lru-cache, O(1) whatever the traffic. A Map kept in recency order (delete and set again on every
   * take, the oldest dropped from its front) left a hole per take that every eviction walked past: once
   * full, a returning and a new address took 42-74 us together instead of 5 (100,000 keys — a flood
   * from spread-out addresses, which the per-IP limit exists for).
   */
  readonly #tat: LRUCache<string, number>;
  readonly #now: () => number;

  constructor(options: { maxKeys?: number; now?: () => number } = {}) {
    const maxKeys = options.maxKeys ?? 100_000;
    this.#now = options.now ?? Date.now;
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1)
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "maxKeys must be a positive integer");
    this.#tat = new LRUCache<string, number>({ max: maxKeys });
  }

  /** Number of keys currently tracked. */
  get size(): number {
    return this.#tat.size;
  }

  take(key: string, limit: RateLimit, cost = 1): Promise<RateDecision> {
    const now = this.#now();
    const previous = this.#tat.get(key);
    const { decision, tat } = gcra(previous, now, limit, cost);
    if (tat !== undefined) this.#tat.set(key, tat);
    return Promise.resolve(decision);
  }
}
