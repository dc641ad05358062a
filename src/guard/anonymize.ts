import { randomBytes } from "node:crypto";
import { dedupe, type Finding } from "./finding.js";
import { findPii } from "./pii.js";

/**
 * Reversible anonymization for one request: personal data in a prompt is replaced by placeholders
 * (`⟦EMAIL_1·k3⟧`), the mapping stays in this object (one per request, so concurrent requests never
 * share it), and the model's answer gets the original values back. The placeholder carries a random
 * per-request tag, so text that merely looks like a placeholder — or one from another request — is
 * never restored.
 */
export class Anonymizer {
  readonly #tag = randomBytes(3).toString("hex");
  readonly #byValue = new Map<string, string>();
  readonly #byPlaceholder = new Map<string, string>();
  readonly #counts = new Map<string, number>();
  readonly #find: (text: string) => readonly Finding[];

  constructor(options: { find?: (text: string) => readonly Finding[] } = {}) {
    this.#find = options.find ?? ((t) => findPii(t));
  }

  /** The longest placeholder this anonymizer makes (for streaming hold-back). */
  get maxPlaceholderLength(): number {
    let max = 0;
    for (const p of this.#byPlaceholder.keys()) max = Math.max(max, p.length);
    return max;
  }

  #placeholder(type: string, value: string): string {
    const known = this.#byValue.get(value);
    if (known !== undefined) return known;
    const label = type.toUpperCase().replace(/[^A-Z0-9]+/g, "_");
    const n = (this.#counts.get(label) ?? 0) + 1;
    this.#counts.set(label, n);
    const placeholder = `⟦${label}_${n}·${this.#tag}⟧`;
    this.#byValue.set(value, placeholder);
    this.#byPlaceholder.set(placeholder, value);
    return placeholder;
  }

  /** Replaces the findings of the scanner (PII by default) with placeholders. */
  anonymize(text: string): string {
    const findings = dedupe(this.#find(text)).sort((a, b) => a.start - b.start);
    let out = "";
    let at = 0;
    for (const f of findings) {
      if (f.start < at) continue;
      out += text.slice(at, f.start) + this.#placeholder(f.type, text.slice(f.start, f.end));
      at = f.end;
    }
    return out + text.slice(at);
  }

  /** Puts the original values back where this anonymizer's placeholders appear. */
  restore(text: string): string {
    if (this.#byPlaceholder.size === 0) return text;
    return text.replace(/⟦[A-Z0-9_]{1,40}_\d{1,6}·[0-9a-f]{6}⟧/g, (p) => this.#byPlaceholder.get(p) ?? p);
  }

  /**
   * A restorer for a streamed answer: returns what can be released of each chunk, holding back a
   * possible placeholder prefix until it is complete.
   */
  streamRestorer(): { push(chunk: string): string; end(): string } {
    let held = "";
    return {
      push: (chunk: string) => {
        const text = held + chunk;
        const open = text.lastIndexOf("⟦");
        if (open !== -1 && !text.includes("⟧", open) && text.length - open <= 64) {
          held = text.slice(open);
          return this.restore(text.slice(0, open));
        }
        held = "";
        return this.restore(text);
      },
      end: () => {
        const rest = this.restore(held);
        held = "";
        return rest;
      },
    };
  }
}
