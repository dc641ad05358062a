// Benign technical text for the injection model: source code and READMEs of npm packages that
// `npm ci` installs (versions pinned by package-lock.json, so the rows are the same on every machine).
// The prompt-injection corpus's benign rows are conversation; trained on them alone, the model took
// code and documentation for attacks (76 % of 1,500-character chunks of fastify, undici and kysely code
// and 75 % of README chunks flagged by the model alone, 2026-11-29), and an agent's prompts are full of
// both. Licences: every package listed is MIT, BSD-2-Clause or (MPL-2.0 OR Apache-2.0) — see each
// package's package.json.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** Packages whose text trains the shipped model. */
export const TRAINING_PACKAGES = [
  "fastify",
  "undici",
  "pino",
  "commander",
  "ajv",
  "ioredis",
  "autocannon",
  "ipaddr.js",
  "jsdom",
  "pg",
  "eslint",
] as const;

/** Packages the model never trains on: the measure of how it treats technical text it has not seen. */
export const HELD_OUT_PACKAGES = [
  "kysely",
  "jose",
  "fast-check",
  "better-sqlite3",
  "@peculiar/x509",
  "libphonenumber-js",
  "commonmark",
  "dompurify",
  "entities",
] as const;

const CHUNK = 1200;
const CODE_CHUNKS = 30;
const README_CHUNKS = 10;

/** Benign rows (label 0) cut from the packages' code and READMEs, in a fixed order. */
export function technicalRows(
  packages: readonly string[],
  root = "node_modules",
): { text: string; label: 0; group: string }[] {
  const rows: { text: string; label: 0; group: string }[] = [];
  for (const name of packages) {
    const dir = join(root, name);
    if (!existsSync(dir)) throw new Error(`technical text: ${dir} is missing (run npm ci)`);
    const readme = readdirSync(dir).find((f) => /^readme\.md$/i.test(f));
    if (readme !== undefined)
      for (const text of chunks(readFileSync(join(dir, readme), "utf8"), README_CHUNKS))
        rows.push({ text, label: 0, group: "technical/readme" });
    let taken = 0;
    for (const file of codeFiles(dir)) {
      for (const text of chunks(readFileSync(file, "utf8"), CODE_CHUNKS - taken)) {
        rows.push({ text, label: 0, group: "technical/code" });
        taken++;
      }
      if (taken >= CODE_CHUNKS) break;
    }
  }
  return rows;
}

function chunks(text: string, max: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length && out.length < max; i += CHUNK) {
    const piece = text.slice(i, i + CHUNK).trim();
    if (piece.length >= 200) out.push(piece);
  }
  return out;
}

/**
 * Prose sentences (20–200 characters, starting with a capital letter; code fences, tables, headings and
 * HTML lines skipped; each once) of the Markdown files of every installed package not in `excluded`, in
 * a fixed order: how documentation a tool returns or an agent retrieves reads, one sentence at a time.
 */
export function documentationSentences(excluded: readonly string[], root = "node_modules"): string[] {
  const skip = new Set(excluded);
  const packages = readdirSync(root)
    .sort()
    .flatMap((name) =>
      name.startsWith("@")
        ? readdirSync(join(root, name))
            .sort()
            .map((inner) => `${name}/${inner}`)
        : [name],
    )
    .filter((name) => !name.startsWith(".") && !skip.has(name));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const name of packages)
    for (const file of packageFiles(join(root, name), (entry) => /\.md$/i.test(entry)))
      for (const line of readFileSync(file, "utf8").split("\n")) {
        if (/^\s*(?:```|\||#|<|!\[|\[!)/.test(line)) continue;
        for (const piece of line.replace(/^[-*\d.\s]+/, "").split(/(?<=[.!?])\s+/)) {
          const sentence = piece.trim();
          if (sentence.length < 20 || sentence.length > 200 || !/^[A-Z]/.test(sentence)) continue;
          if (!/[a-z]{3}/.test(sentence) || seen.has(sentence)) continue;
          seen.add(sentence);
          out.push(sentence);
        }
      }
  return out;
}

/** Source files under `dir` (not nested packages, not minified), sorted. */
function codeFiles(dir: string): string[] {
  return packageFiles(dir, (entry) => /\.(?:js|mjs|cjs|ts)$/.test(entry) && !/\.min\./.test(entry));
}

/** Files under `dir` whose names `keep` accepts (not in nested packages or dot folders), sorted. */
function packageFiles(dir: string, keep: (entry: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d).sort()) {
      const path = join(d, entry);
      if (entry === "node_modules" || entry.startsWith(".")) continue;
      if (statSync(path).isDirectory()) walk(path);
      else if (keep(entry)) out.push(path);
    }
  };
  walk(dir);
  return out;
}
