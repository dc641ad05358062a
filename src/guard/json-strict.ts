import { AgentwallError } from "../errors.js";

/** Largest JSON text accepted by {@link parseStrictJson}. */
export const MAX_STRICT_JSON_BYTES = 64 * 1024;

/**
 * Parses JSON text, refusing what `JSON.parse` silently accepts: duplicate keys in one object (the last
 * one wins in JSON.parse, so a validator and a tool could read different values), and text over the
 * size bound. Hand-written scanner: no maintained npm package detects duplicate keys without also
 * replacing the parser; this one only scans (linear, no recursion) and then defers to JSON.parse.
 */
export function parseStrictJson(text: string): unknown {
  if (typeof text !== "string" || Buffer.byteLength(text) > MAX_STRICT_JSON_BYTES) {
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      `JSON text must be a string of at most ${MAX_STRICT_JSON_BYTES} bytes`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "not valid JSON");
  }
  // Second pass over text already known to be valid JSON: track the keys of each open object.
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "{") {
      stack.push(new Set());
      expectKey = true;
    } else if (c === "[") {
      stack.push(null);
      expectKey = false;
    } else if (c === "}" || c === "]") {
      stack.pop();
      expectKey = false;
    } else if (c === ",") {
      expectKey = stack.at(-1) instanceof Set;
    } else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const keys = stack.at(-1);
        if (keys instanceof Set) {
          if (keys.has(key))
            throw new AgentwallError("ERR_INVALID_ARGUMENT", `duplicate key ${JSON.stringify(key.slice(0, 40))}`);
          keys.add(key);
        }
        expectKey = false;
      }
      i = j;
    }
  }
  return value;
}
