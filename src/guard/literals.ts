/**
 * Which of many literal strings occur in a text, for rules that run only when one of their literals is
 * present (the secret rules, the injection rules that start with a symbol). Each position is looked up
 * by its two characters in a table, then compared with the few literals starting so; literals of one
 * character or with a head beyond ASCII are searched with `includes()`. One regex alternation of all
 * the literals cost three times more (it tries the whole alternation at every position), an
 * `includes()` per literal once per literal.
 */
export class LiteralTable {
  /** Every distinct literal, by id. */
  readonly literals: readonly string[];
  /** Per rule, the ids of its literals (empty: the rule has none and always runs). */
  readonly #ruleIds: readonly Int32Array[];
  readonly #heads: ({ id: number; text: string }[] | undefined)[] = new Array<
    { id: number; text: string }[] | undefined
  >(128 * 128).fill(undefined);
  readonly #others: { id: number; text: string }[] = [];
  /** Which literals the last {@link mark} found. */
  readonly present: Uint8Array;
  /** 1 at `a * 128 + b` where a literal starts with the two ASCII characters `a`, `b`. */
  readonly asciiPairs = new Uint8Array(128 * 128);

  /** `rules[k]`: the literals one of which every match of rule `k` contains. */
  constructor(rules: readonly (readonly string[])[]) {
    this.literals = [...new Set(rules.flat())];
    const ids = new Map(this.literals.map((literal, id) => [literal, id]));
    this.#ruleIds = rules.map((literals) => Int32Array.from(literals, (l) => ids.get(l) as number));
    for (const [id, text] of this.literals.entries()) {
      const [a, b] = [text.charCodeAt(0), text.charCodeAt(1)];
      if (text.length >= 2 && a < 128 && b < 128) {
        (this.#heads[a * 128 + b] ??= []).push({ id, text });
        this.asciiPairs[a * 128 + b] = 1;
      } else this.#others.push({ id, text });
    }
    this.present = new Uint8Array(this.literals.length);
  }

  /** Forgets what the last text held (before a walk that calls {@link markAt} itself). */
  clear(): void {
    this.present.fill(0);
  }

  /** Marks the literals starting at `i`, whose first two characters have the codes `a` and `b`. */
  markAt(text: string, i: number, a: number, b: number): void {
    if (a >= 128 || b >= 128) return;
    const candidates = this.#heads[a * 128 + b];
    if (candidates === undefined) return;
    for (const { id, text: literal } of candidates)
      if (literal.length === 2 || text.startsWith(literal, i)) this.present[id] = 1;
  }

  /** Marks the literals the table does not look up by position (single characters, heads beyond ASCII). */
  markOthers(text: string): void {
    for (const { id, text: literal } of this.#others) if (text.includes(literal)) this.present[id] = 1;
  }

  /** Marks every literal of `text` (forgetting the last text's). */
  mark(text: string): void {
    this.clear();
    const n = text.length - 1;
    let b = text.charCodeAt(0);
    for (let i = 0; i < n; i++) {
      const a = b;
      b = text.charCodeAt(i + 1);
      this.markAt(text, i, a, b);
    }
    this.markOthers(text);
  }

  /** Whether rule `k` may match the marked text: it has no literals, or one of them is present. */
  allows(k: number): boolean {
    return anyPresent(this.#ruleIds[k] as Int32Array, this.present);
  }
}

/** Whether `ids` is empty or one of its ids is flagged in `present`. */
export function anyPresent(ids: Int32Array, present: Uint8Array): boolean {
  if (ids.length === 0) return true;
  for (let j = 0; j < ids.length; j++) if (present[ids[j] as number] === 1) return true;
  return false;
}
