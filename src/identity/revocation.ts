import { Redis } from "ioredis";

/**
 * Tells every instance that a credential was revoked, so caches drop what they hold at once. Only a
 * speed-up: a cached verification is trusted for at most a second without it (see `ApiKeys`), so a
 * lost message or a Redis outage can delay a revocation by that second and never undo one.
 */
export interface RevocationBus {
  /** Announces a revocation; never throws (a failed publish leaves the one-second bound in force). */
  publish(what: string): Promise<void>;
  /** Registers a listener, also called when the bus may have missed messages (after a reconnect). */
  onRevocation(listener: () => void): void;
  close(): Promise<void>;
}

const CHANNEL = "aw:revocations";

/**
 * {@link RevocationBus} over Redis pub/sub: one publishing and one subscribed connection.
 *
 * @example
 * ```ts
 * const bus = new RedisRevocationBus({ url: "redis://127.0.0.1:6379" });
 * const keys = new ApiKeys({ store, keyring, audit, cacheMs: 1000, revocations: bus });
 * ```
 */
export class RedisRevocationBus implements RevocationBus {
  readonly #pub: Redis;
  readonly #sub: Redis;
  readonly #channel: string;
  readonly #listeners: (() => void)[] = [];
  #everReady = false;

  constructor(options: { url: string; channel?: string }) {
    this.#channel = options.channel ?? CHANNEL;
    const common = { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000 } as const;
    this.#pub = new Redis(options.url, common);
    // ioredis's own resubscription after a reconnect has no rejection handler (redis/ioredis#2187, not
    // released in 6.0.0): closing the bus while it is in flight was an unhandled rejection, which ends
    // the process. The bus subscribes again itself.
    this.#sub = new Redis(options.url, { ...common, enableOfflineQueue: true, autoResubscribe: false });
    this.#pub.on("error", () => undefined);
    this.#sub.on("error", () => undefined);
    this.#sub.on("message", (channel: string) => {
      if (channel === this.#channel) this.#notify();
    });
    this.#sub.on("ready", () => {
      // Every connection subscribes anew: a SUBSCRIBE queued before the first one, while Redis was
      // unreachable, is dropped after maxRetriesPerRequest attempts.
      this.#sub.subscribe(this.#channel).catch(() => undefined);
      // After a reconnect messages may have been missed: treat it as a revocation of everything.
      if (this.#everReady) this.#notify();
      this.#everReady = true;
    });
  }

  /** Resolves once the subscription is active (for tests and orderly start-up). */
  async ready(): Promise<void> {
    await this.#sub.subscribe(this.#channel);
  }

  async publish(what: string): Promise<void> {
    try {
      await this.#pub.publish(this.#channel, what);
    } catch {
      // The one-second bound still holds; nothing else to do.
    }
  }

  onRevocation(listener: () => void): void {
    this.#listeners.push(listener);
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }

  async close(): Promise<void> {
    this.#pub.disconnect();
    this.#sub.disconnect();
    return Promise.resolve();
  }
}
