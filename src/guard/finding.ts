/** What a scanner found: a type, where (UTF-16 offsets into the scanned text, end exclusive), how sure. */
export interface Finding {
  readonly type: string;
  readonly start: number;
  readonly end: number;
  /** 0..1: how likely the match is a real instance of `type`. */
  readonly confidence: number;
  /** The broad class the type belongs to. */
  readonly kind: "secret" | "pii" | "injection" | "unsafe_output" | "canary" | "marked_secret";
}

/** Shannon entropy of a string in bits per character. */
export function entropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const ch of text) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    h -= p * Math.log2(p);
  }
  return h;
}

/** Keeps the longest of overlapping findings of one kind (the first on ties), sorted by start. */
export function dedupe(findings: readonly Finding[]): Finding[] {
  const sorted = [...findings].sort((a, b) => a.start - b.start || b.end - b.start - (a.end - a.start));
  const out: Finding[] = [];
  for (const f of sorted) {
    const last = out.at(-1);
    if (last !== undefined && last.kind === f.kind && f.start < last.end) {
      if (f.end - f.start > last.end - last.start) out[out.length - 1] = f;
      continue;
    }
    out.push(f);
  }
  return out;
}
