import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { AgentwallError } from "../errors.js";
import type { Finding } from "./finding.js";
import type { InjectionResult, TextSource } from "./injection.js";

/** Options of {@link VerdictCache}. */
export interface VerdictCacheOptions {
  /** Most verdicts kept (default 10,000); the least recently used goes first. */
  readonly maxEntries?: number;
  /** Most characters of redacted text kept over all entries (default 4,000,000). */
  readonly maxChars?: number;
  /** Texts shorter than this are scanned every time: cheaper than hashing them (default 64). */
  readonly minChars?: number;
}

/** A verdict as kept: everything but the text, unless the scan changed it (redaction). */
export interface CachedVerdict {
  readonly verdict: "allow" | "flag" | "block";
  /** The redacted text; undefined when the verdict's text is the scanned text itself. */
  readonly redacted: string | undefined;
  readonly findings: readonly (Finding & { readonly action: "block" | "redact" | "flag" | "off" })[];
  readonly injection: Pick<InjectionResult, "score" | "detected" | "signals">;
  readonly source: TextSource;
}

/** What identifies a scan: whose text it is, the direction, the source the checks ran for, the text. */
export interface VerdictKey {
  readonly partition: string;
  readonly direction: "input" | "output";
  readonly source: TextSource;
  readonly text: string;
  /**
   * For a seam's verdict (`Guard.scanSeam`: the injection rules only), where the two ends meet in
   * `text`: kept apart from a scan's, and from another split of the same text.
   */
  readonly seam?: number;
}

/**
 * Verdicts of texts already scanned, for a {@link Guard} to answer again without scanning. An agent
 * sends its whole conversation with every call, so without a cache the gateway scans message one on
 * every turn, message two on every turn after it, and so on: a conversation of n turns costs n²/2
 * scans of its messages. The scan is deterministic for a guard (its policy and model are fixed; a
 * reload makes a new guard and so a new cache), so a kept verdict is exactly what a new scan gives.
 *
 * Keys are SHA-256 digests of the partition, direction, source and text, so no crafted text can take
 * another's verdict. The partition is whose texts these are (the gateway uses the caller's subject):
 * a hit is faster than a scan, and across callers that would tell one caller whether another had sent
 * a given text. Memory is bounded by entry count and by the characters of redacted text kept.
 */
export class VerdictCache {
  readonly maxEntries: number;
  readonly maxChars: number;
  readonly minChars: number;
  /** lru-cache: O(1) recency; a Map re-inserted on every hit cost 45-50 us a turn at 10,000 entries. */
  readonly #entries: LRUCache<string, CachedVerdict>;
  #chars = 0;
  #hits = 0;
  #misses = 0;

  constructor(options: VerdictCacheOptions = {}) {
    const int = (name: string, value: number, min: number, max: number) => {
      if (!Number.isInteger(value) || value < min || value > max)
        throw new AgentwallError("ERR_INVALID_ARGUMENT", `${name} must be an integer in ${min}..${max}`);
      return value;
    };
    this.maxEntries = int("maxEntries", options.maxEntries ?? 10_000, 1, 10_000_000);
    this.maxChars = int("maxChars", options.maxChars ?? 4_000_000, 0, 1_000_000_000);
    this.minChars = int("minChars", options.minChars ?? 64, 0, 1_000_000);
    this.#entries = new LRUCache<string, CachedVerdict>({
      max: this.maxEntries,
      // Every way out (evicted, replaced, cleared) gives its characters back.
      dispose: (entry) => {
        this.#chars -= entry.redacted?.length ?? 0;
      },
    });
  }

  /** The digest a verdict is kept under. */
  static key(k: VerdictKey): string {
    // Length-prefixed, so no two different keys share a preimage; one-shot hashing (no Hash object).
    return hash(
      "sha256",
      `${k.partition.length}:${k.partition}\n${k.direction}${k.seam === undefined ? "" : `/seam ${k.seam}`}\n${k.source}\n${k.text.length}:${k.text}`,
      "base64url",
    );
  }

  get(key: string): CachedVerdict | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) this.#misses++;
    else this.#hits++;
    return entry;
  }

  set(key: string, entry: CachedVerdict): void {
    const chars = entry.redacted?.length ?? 0;
    if (chars > this.maxChars) return;
    this.#entries.set(key, freeze(entry));
    this.#chars += chars;
    while (this.#chars > this.maxChars && this.#entries.pop() !== undefined);
  }

  clear(): void {
    this.#entries.clear();
  }

  /** Entries kept, characters of redacted text kept, and lookups answered and missed so far. */
  stats(): { entries: number; chars: number; hits: number; misses: number } {
    return { entries: this.#entries.size, chars: this.#chars, hits: this.#hits, misses: this.#misses };
  }
}

/** A kept verdict is handed to every later caller: none of them may change it for the others. */
function freeze(entry: CachedVerdict): CachedVerdict {
  for (const f of entry.findings) Object.freeze(f);
  Object.freeze(entry.findings);
  Object.freeze(entry.injection.signals);
  Object.freeze(entry.injection);
  return Object.freeze(entry);
}
