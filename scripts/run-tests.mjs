// Runs every *.test.ts under src/ and test/ with Node's test runner (TypeScript through tsx).
// Node 20's runner does not expand globs, so the files are listed here.
// The timeout applies to a whole file under Node 20 (each file is one subprocess); test/cli.test.ts
// spawns the CLI over 60 times (about 1 s each, mostly module loading) and needs over 2 minutes when
// it shares the machine with the rest of the suite.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "fixtures") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) find(path, out);
    else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = [...find("src", []), ...find("test", [])].sort();
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=300000", ...files],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
