import { AgentwallError } from "../errors.js";

/** Largest JSON text accepted by {@link parseStrictJson}. */
export const MAX_STRICT_JSON_BYTES = 64 * 1024;

/**
 * Deepest nesting of arrays and objects accepted in JSON from outside. `JSON.parse` takes thousands of
 * levels, but `JSON.stringify`, `structuredClone` and recursive validators run out of stack on what it
 * returns (a request with a 20,000-level `response_format` schema ended in a 500 when it was forwarded).
 * Real documents stay far below: OpenAI's structured outputs allow 10 levels of schema nesting.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether JSON text nests arrays and objects at most `max` levels deep. Linear, no recursion; brackets
 * inside strings do not count. Meant for text about to be parsed (it does not validate the JSON).
 */
export function jsonDepthWithin(text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string: to the next quote not escaped (an odd run of backslashes before it escapes it).
      for (;;) {
        const q = text.indexOf('"', i + 1);
        if (q < 0) return true;
        let b = q - 1;
        while (text.charCodeAt(b) === 0x5c) b--;
        i = q;
        if ((q - 1 - b) % 2 === 0) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return false;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return true;
}

/**
 * Parses JSON text, refusing what `JSON.parse` silently accepts: duplicate keys in one object (the last
 * one wins in JSON.parse, so a validator and a tool could read different values), and text over the
 * size bound. Hand-written scanner: no maintained npm package detects duplicate keys without also
 * replacing the parser; this one only scans (linear, no recursion) and then defers to JSON.parse. Text
 * nested deeper than {@link MAX_JSON_DEPTH} is refused too.
 */
export function parseStrictJson(text: string): unknown {
  if (typeof text !== "string" || Buffer.byteLength(text) > MAX_STRICT_JSON_BYTES) {
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      `JSON text must be a string of at most ${MAX_STRICT_JSON_BYTES} bytes`,
    );
  }
  if (!jsonDepthWithin(text))
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`);
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
