import type { RegExpEngine, RegExpLike } from "ajv/dist/types/index.js";
import { RE2JS } from "re2js";
import { AgentwallError } from "../errors.js";

/**
 * JavaScript's white space (`\s` with the `u` flag): RE2's `\s` is ASCII only. Written with `\u`
 * escapes, which {@link RE2JS.translateRegExp} turns into RE2's `\x{…}`.
 */
const JS_SPACE = "\\t\\n\\v\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff";

function unsupported(pattern: string, what: string): AgentwallError {
  return new AgentwallError(
    "ERR_INVALID_ARGUMENT",
    `pattern ${JSON.stringify(pattern.slice(0, 200))}: ${what} (patterns run on a linear-time engine)`,
  );
}

/**
 * Rewrites the parts of a JavaScript pattern that RE2 reads differently: `.` (JavaScript excludes
 * `\r`, U+2028 and U+2029 besides `\n`), `\s` and `\S` (Unicode white space, not ASCII), and the empty
 * classes `[]` and `[^]` (RE2 reads a `]` right after `[` as a literal). Everything else is copied.
 */
function withJavaScriptMeaning(pattern: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === "\\") {
      const next = pattern[i + 1] ?? "";
      i++;
      if (next === "s") out += inClass ? JS_SPACE : `[${JS_SPACE}]`;
      else if (next === "S") {
        if (inClass) throw unsupported(pattern, "\\S inside a character class is not supported");
        out += `[^${JS_SPACE}]`;
      } else out += c + next;
    } else if (inClass) {
      if (c === "]") inClass = false;
      out += c;
    } else if (c === "[") {
      const negated = pattern[i + 1] === "^";
      const close = i + (negated ? 2 : 1);
      if (pattern[close] === "]") {
        out += negated ? "[\\u{0}-\\u{10FFFF}]" : "[^\\u{0}-\\u{10FFFF}]";
        i = close;
      } else {
        inClass = true;
        out += negated ? "[^" : "[";
        if (negated) i++;
      }
    } else if (c === ".") out += "[^\\n\\r\\u2028\\u2029]";
    else out += c;
  }
  return out;
}

/**
 * Compiles a JSON Schema `pattern` (ECMA-262 syntax, Unicode mode) for RE2's linear-time engine
 * (re2js, a JavaScript port of RE2): no input can make a match take more than linear time, so a
 * pattern from an untrusted caller cannot stall the process. The pattern must first be valid
 * JavaScript; lookaround and backreferences, which need backtracking, are refused with
 * `ERR_INVALID_ARGUMENT`.
 */
export function linearRegExp(pattern: string): LinearRegExp {
  try {
    new RegExp(pattern, "u"); // syntax only: compiling never runs the pattern
  } catch (error) {
    throw unsupported(pattern, `not a valid regular expression (${(error as Error).message})`);
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(RE2JS.translateRegExp(withJavaScriptMeaning(pattern)));
  } catch (error) {
    if (error instanceof AgentwallError) throw error;
    throw unsupported(pattern, `not supported: ${(error as Error).message}`);
  }
  // The compiled program's size (re2js keeps it as `prog`; its typings say `any`).
  const size = (re.re2() as { prog: { numInst(): number } }).prog.numInst();
  if (size > MAX_PATTERN_SIZE)
    throw unsupported(pattern, `too large (${size} instructions compiled, at most ${MAX_PATTERN_SIZE})`);
  // Ajv shares compiled patterns by their `toString()`: it must name the pattern, or every pattern of
  // an Ajv instance would run as the first one it compiled.
  const source = `/${pattern}/u`;
  return { test: (s: string) => re.test(s), toString: () => source, size };
}

/** A compiled pattern: Ajv's `RegExpLike`, named by its source, with its program's size. */
export interface LinearRegExp extends RegExpLike {
  toString(): string;
  /** Instructions in the compiled program: what the pattern costs in memory and per character. */
  readonly size: number;
}

/**
 * The largest program a pattern may compile to, as RE2 itself caps programs by memory: a counted
 * repetition multiplies its body (`[a-z]{500,1000}` is 1,503 instructions), and every compiled pattern
 * is kept while its schema is.
 */
export const MAX_PATTERN_SIZE = 2000;

/** {@link linearRegExp} as Ajv's `code.regExp` engine (`code` names it in generated standalone code). */
export const LINEAR_REGEXP_ENGINE: RegExpEngine = Object.assign((pattern: string) => linearRegExp(pattern), {
  code: 'require("agentwall/guard").linearRegExp',
});
