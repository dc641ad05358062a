/**
 * Keeps a flood of failed authentications from flooding the audit log: the first `perMinute` failures
 * from one client address in a minute are recorded one by one; the rest are counted and recorded as one
 * summary event when that address's minute ends — found by {@link sweep}, which the gateway runs every
 * few seconds, or at the address's next failure, whichever comes first. Memory is bounded: at most
 * `maxAddresses` addresses are tracked; beyond that every failure is recorded individually (nothing is
 * ever dropped silently), and a swept window frees its slot.
 */
/** The failures of one address's finished window that were counted, not recorded one by one. */
export interface SuppressedFailures {
  readonly ip: string;
  readonly suppressed: number;
  readonly windowStart: number;
}

export class FailureAggregator {
  readonly #perMinute: number;
  readonly #maxAddresses: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #windows = new Map<string, { start: number; count: number; suppressed: number }>();

  constructor(options: { perMinute?: number; maxAddresses?: number; windowMs?: number; now?: () => number } = {}) {
    this.#perMinute = options.perMinute ?? 20;
    this.#maxAddresses = options.maxAddresses ?? 10_000;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Forgets `ip`'s window; its summary when failures were suppressed in it. */
  #close(ip: string, w: { start: number; suppressed: number }): SuppressedFailures | undefined {
    this.#windows.delete(ip);
    return w.suppressed > 0 ? { ip, suppressed: w.suppressed, windowStart: w.start } : undefined;
  }

  /** Forgets every window `done` says is over; the summaries of those with failures suppressed. */
  #closeWhere(done: (w: { start: number }) => boolean): SuppressedFailures[] {
    const out: SuppressedFailures[] = [];
    for (const [ip, w] of this.#windows) {
      if (!done(w)) continue;
      const summary = this.#close(ip, w);
      if (summary !== undefined) out.push(summary);
    }
    return out;
  }

  /** Summaries of the windows that have ended with failures suppressed; every ended window is forgotten. */
  sweep(): SuppressedFailures[] {
    const now = this.#now();
    return this.#closeWhere((w) => now - w.start >= this.#windowMs);
  }

  /**
   * Registers one failure from `ip`. Returns whether to record it individually, and a summary of a
   * finished window to record first (when there is one).
   */
  register(ip: string): { record: boolean; summary?: SuppressedFailures } {
    const now = this.#now();
    let summary: SuppressedFailures | undefined;
    let w = this.#windows.get(ip);
    if (w !== undefined && now - w.start >= this.#windowMs) {
      summary = this.#close(ip, w);
      w = undefined;
    }
    if (w === undefined) {
      if (this.#windows.size >= this.#maxAddresses)
        return summary === undefined ? { record: true } : { record: true, summary };
      w = { start: now, count: 0, suppressed: 0 };
      this.#windows.set(ip, w);
    }
    w.count += 1;
    const record = w.count <= this.#perMinute;
    if (!record) w.suppressed += 1;
    return summary === undefined ? { record } : { record, summary };
  }

  /** Summaries of every window with suppressed failures (on shutdown), clearing them. */
  drain(): SuppressedFailures[] {
    return this.#closeWhere(() => true);
  }
}
