import type { Finding } from "./finding.js";

/**
 * Incremental scanning for streamed text: feed chunks, get back the prefix that is safe to release.
 * All but the last `holdBack` characters are released; the held tail is scanned again with the next
 * chunk (and `holdBack` characters of released text are kept as left context), so no match can
 * straddle a release and matches that look behind them see what they would see in the whole text. A
 * finding is reported once, when the text it covers is released. `holdBack` must be at least the
 * longest match the scanner makes. Whole-text and streamed scans give the same findings
 * (property-tested on random chunkings).
 */
export interface StreamRelease {
  /** Text that may be sent on now. */
  readonly text: string;
  /** Findings that lie in the released text, with offsets into the whole stream. */
  readonly findings: readonly Finding[];
}

export class StreamScanner {
  readonly #scan: (text: string, offset: number) => readonly Finding[];
  readonly #holdBack: (pending: string) => number;
  readonly #minRelease: number;
  /** Released text kept as left context (never released again). */
  #context = "";
  #pending = "";
  /** Offset in the whole stream of `#pending[0]`. */
  #base = 0;
  #ended = false;

  /**
   * @param scan A whole-text scanner; it is also given where the window starts in the whole stream.
   * @param holdBack At least the longest match the scanner can make (a PEM key, a long URL).
   * @param minRelease Scan only when at least this much new text can be released (fewer rescans of
   *   the held tail when chunks are small, as SSE tokens are).
   */
  constructor(
    scan: (text: string, offset: number) => readonly Finding[],
    holdBack: number | ((pending: string) => number),
    minRelease = 256,
  ) {
    this.#scan = scan;
    this.#holdBack = typeof holdBack === "number" ? () => holdBack : holdBack;
    this.#minRelease = minRelease;
  }

  push(chunk: string): StreamRelease {
    if (this.#ended) throw new Error("stream already ended");
    this.#pending += chunk;
    if (this.#pending.length - this.#holdBack(this.#pending) < this.#minRelease) return { text: "", findings: [] };
    return this.#release(false);
  }

  end(): StreamRelease {
    this.#ended = true;
    return this.#release(true);
  }

  #release(final: boolean): StreamRelease {
    const offset = this.#context.length;
    const window = this.#context + this.#pending;
    const findings = this.#scan(window, this.#base - offset)
      .filter((f) => f.end > offset)
      .map((f) => ({ ...f, start: f.start - offset, end: f.end - offset }))
      .sort((a, b) => a.start - b.start);
    const holdBack = this.#holdBack(this.#pending);
    let cut = final ? this.#pending.length : Math.max(0, this.#pending.length - holdBack);
    // Never cut inside a finding: hold back from its start instead — until no finding straddles the cut
    // (findings of different kinds overlap: moving the cut back to a phone number's start could put it
    // inside the key before it, which one pass in order of start released but the last character of).
    for (let moved = true; moved;) {
      moved = false;
      for (const f of findings)
        if (f.start < cut && f.end > cut) {
          cut = Math.max(0, f.start);
          moved = true;
        }
    }
    // Nor inside a surrogate pair.
    if (cut > 0 && cut < this.#pending.length) {
      const code = this.#pending.charCodeAt(cut - 1);
      if (code >= 0xd800 && code <= 0xdbff) cut--;
    }
    const released = findings
      .filter((f) => f.start >= 0 && f.end <= cut)
      .map((f) => ({ ...f, start: f.start + this.#base, end: f.end + this.#base }));
    const text = this.#pending.slice(0, cut);
    this.#context = (this.#context + text).slice(-holdBack);
    this.#pending = this.#pending.slice(cut);
    this.#base += cut;
    return { text, findings: released };
  }
}
