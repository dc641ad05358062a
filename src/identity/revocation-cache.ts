import { AgentwallError } from "../errors.js";
import type { Store } from "../store/database.js";
import { readCounter } from "../store/counters.js";
import type { RevocationBus } from "./revocation.js";

/** The longest a cached verification is trusted without rereading the revocation counter. */
export const MAX_KEY_CACHE_MS = 1000;

/**
 * Verified credentials kept in memory, valid while the shared `revocations` counter holds: every
 * revocation, suspension or shortened expiry bumps the counter in the same transaction, and the cache
 * rereads it at most every `ms` milliseconds, so a change made on another instance holds within that
 * time (at once with a {@link RevocationBus}). Shared by API keys and sessions.
 *
 * A lookup that raced a drop must not refill the cache with what it read before the drop: callers take
 * {@link generation} before reading the database and hand it to {@link remember}.
 */
export class RevocationCache<V> {
  /** The caches of each store in this process: a revocation drops them all (keys and sessions alike). */
  static readonly #byStore = new WeakMap<Store, Set<RevocationCache<unknown>>>();
  readonly ms: number;
  readonly #store: Store;
  readonly #bus: RevocationBus | undefined;
  readonly #max: number;
  readonly #entries = new Map<string, V>();
  #version: number | undefined;
  #checkedAt = -Infinity;
  #generation = 0;

  /** `ms`: 0 (nothing cached) up to {@link MAX_KEY_CACHE_MS}; anything else is `ERR_INVALID_ARGUMENT`. */
  constructor(store: Store, options: { ms?: number; max?: number | undefined; bus?: RevocationBus | undefined }) {
    const ms = options.ms ?? 0;
    if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_KEY_CACHE_MS) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", `cacheMs must be 0..${MAX_KEY_CACHE_MS}`);
    }
    this.#store = store;
    this.ms = ms;
    this.#max = options.max ?? 10_000;
    this.#bus = options.bus;
    options.bus?.onRevocation(() => this.drop());
    const peers = RevocationCache.#byStore.get(store) ?? new Set<RevocationCache<unknown>>();
    peers.add(this);
    RevocationCache.#byStore.set(store, peers);
  }

  /** Whether anything is cached at all (`ms` > 0). */
  get enabled(): boolean {
    return this.ms > 0;
  }

  /** Bumped whenever the cache is dropped. */
  get generation(): number {
    return this.#generation;
  }

  /** The cached value for a key, after rereading the revocation counter when it is older than `ms`. */
  async get(key: string, now: number): Promise<V | undefined> {
    if (!this.enabled) return undefined;
    if (now - this.#checkedAt >= this.ms) {
      const generation = this.#generation;
      const version = await readCounter(this.#store.db, "revocations");
      // A drop that raced the read, or no counter at all: this verification reads the database.
      if (generation !== this.#generation || version === undefined) return undefined;
      if (version !== this.#version) {
        this.drop();
        this.#version = version;
      }
      this.#checkedAt = now;
    }
    return this.#entries.get(key);
  }

  /** Keeps a value read under `generation`; nothing when a drop came since (or caching is off). */
  remember(key: string, value: V, generation: number): void {
    if (!this.enabled || generation !== this.#generation || this.#version === undefined) return;
    if (this.#entries.size >= this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, value);
  }

  /** Updates a value only if it is cached. */
  replace(key: string, value: V): void {
    if (this.#entries.has(key)) this.#entries.set(key, value);
  }

  /**
   * After this process revoked something (after the commit that bumped the counter): drops every cache
   * on the same store at once (a revoked key also ends the sessions it made, cached by another object),
   * then tells the other instances through the bus. `what` names the revocation in the message.
   */
  async revoked(what: string): Promise<void> {
    for (const cache of RevocationCache.#byStore.get(this.#store) ?? [this]) cache.drop();
    await this.#bus?.publish(what);
  }

  /** Forgets everything; the next lookup rereads the counter. */
  drop(): void {
    this.#entries.clear();
    this.#generation++;
    this.#checkedAt = -Infinity;
  }
}
