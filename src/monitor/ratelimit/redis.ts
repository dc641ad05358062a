import { Redis } from "ioredis";
import { AgentwallError } from "../../errors.js";
import { MemoryRateLimiter, gcra, type RateDecision, type RateLimit, type RateLimiter } from "./limiter.js";

// GCRA in one Lua script so the read-decide-write is atomic across every gateway process. The clock is
// Redis's own (TIME), so instances with skewed clocks still share one timeline; tests pass ARGV[4].
const GCRA_SCRIPT = `
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local increment = interval * tonumber(ARGV[3])
local now
if ARGV[4] and ARGV[4] ~= "" then
  now = tonumber(ARGV[4])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local stored = redis.call("GET", KEYS[1])
local tat = stored and tonumber(stored) or now
local nexttat = math.max(tat, now) + increment
if now < nexttat - tolerance then
  return {0, tostring(now), stored or ""}
end
local ttl = math.ceil(nexttat - now)
if ttl > 0 then
  redis.call("SET", KEYS[1], tostring(nexttat), "PX", ttl)
end
return {1, tostring(now), stored or ""}
`;

export interface RedisRateLimiterOptions {
  /** `redis://` URL. */
  readonly url: string;
  /** Key prefix (default `aw:rl:`), so several deployments can share one Redis. */
  readonly prefix?: string;
  /**
   * How many gateway instances share the limit. While Redis is unreachable each instance falls back to
   * a local limit of `limit / expectedInstances`, so together they stay within the limit. Default 1.
   */
  readonly expectedInstances?: number;
  /** Told once when Redis becomes unreachable and once when it is back. */
  readonly onAlert?: (event: { state: "degraded" | "recovered"; reason: string }) => void;
  /** Injected clock for tests; production uses Redis's TIME. */
  readonly now?: () => number;
}

/**
 * Rate limiting shared by every gateway process through Redis (one atomic Lua script). When Redis
 * cannot answer, decisions continue from a bounded local limiter at limit/N — never "allow everything" —
 * with an alert, and Redis takes over again when it returns.
 *
 * @example
 * ```ts
 * const limiter = new RedisRateLimiter({ url: "redis://127.0.0.1:6379", expectedInstances: 2 });
 * const d = await limiter.take("ip:203.0.113.9", { limit: 100, periodMs: 60_000, burst: 20 });
 * ```
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #instances: number;
  readonly #fallback = new MemoryRateLimiter();
  readonly #onAlert: RedisRateLimiterOptions["onAlert"];
  readonly #now: (() => number) | undefined;
  #degraded = false;
  readonly #firstConnect: Promise<void>;
  #connectedOnce = false;

  constructor(options: RedisRateLimiterOptions) {
    const instances = options.expectedInstances ?? 1;
    if (!Number.isSafeInteger(instances) || instances < 1) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "expectedInstances must be a positive integer");
    }
    this.#instances = instances;
    this.#prefix = options.prefix ?? "aw:rl:";
    this.#onAlert = options.onAlert;
    this.#now = options.now;
    this.#redis = new Redis(options.url, {
      lazyConnect: false,
      // Fail fast instead of queueing: a limiter that waits for Redis would stall every request.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      commandTimeout: 500,
      retryStrategy: (times) => Math.min(times * 100, 1000),
    });
    // Connection errors are handled per command (fallback); without a listener ioredis would log them.
    this.#redis.on("error", () => undefined);
    this.#redis.defineCommand("awGcra", { numberOfKeys: 1, lua: GCRA_SCRIPT });
    // Without an offline queue a command sent before the first connection completes fails at once; the
    // first decisions wait for that connection (at most the connect timeout), later outages do not wait.
    this.#firstConnect = new Promise<void>((resolve) => {
      const done = () => {
        this.#connectedOnce = true;
        resolve();
      };
      this.#redis.once("ready", done);
      setTimeout(done, 1500).unref();
    });
  }

  /** Whether decisions currently come from the local fallback. */
  get degraded(): boolean {
    return this.#degraded;
  }

  async take(key: string, limit: RateLimit, cost = 1): Promise<RateDecision> {
    // Validates the limit the same way every backend does (throws for nonsense).
    gcra(undefined, 0, limit, cost);
    const interval = limit.periodMs / limit.limit;
    const tolerance = interval * (limit.burst + 1);
    if (!this.#connectedOnce) await this.#firstConnect;
    try {
      const reply = await (
        this.#redis as unknown as {
          awGcra(key: string, ...args: string[]): Promise<[number, string, string]>;
        }
      ).awGcra(
        this.#prefix + key,
        String(interval),
        String(tolerance),
        String(cost),
        this.#now === undefined ? "" : String(this.#now()),
      );
      this.#recovered();
      const now = Number(reply[1]);
      const stored = reply[2] === "" ? undefined : Number(reply[2]);
      // The same arithmetic as the script, to shape the decision value.
      return gcra(stored, now, limit, cost).decision;
    } catch (error) {
      return this.#local(key, limit, cost, error);
    }
  }

  #recovered(): void {
    if (!this.#degraded) return;
    this.#degraded = false;
    this.#onAlert?.({ state: "recovered", reason: "redis answers again" });
  }

  #local(key: string, limit: RateLimit, cost: number, error: unknown): Promise<RateDecision> {
    if (!this.#degraded) {
      this.#degraded = true;
      const reason = error instanceof Error ? error.message.slice(0, 200) : "redis unavailable";
      this.#onAlert?.({ state: "degraded", reason });
    }
    const share = {
      limit: Math.max(1, Math.floor(limit.limit / this.#instances)),
      periodMs: limit.periodMs,
      burst: Math.floor(limit.burst / this.#instances),
    };
    return this.#fallback.take(key, share, cost);
  }

  async close(): Promise<void> {
    this.#redis.disconnect();
    await Promise.resolve();
  }
}
