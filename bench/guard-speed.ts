// Guard speed: MB/s per core of the whole input pipeline (normalization, injection rules and model,
// secrets, PII) on 2 KB prompts and 100 KB documents, next to the peers on the same texts, one run.
//
//   npm run build && npx tsx bench/guard-speed.ts [--seconds 2] [--no-peers] [--baseline DIR]
//
// --baseline DIR: also compares this checkout's build (`npm run build` first) with the one built in DIR
// (another checkout, e.g. `git worktree add /tmp/base <commit> && (cd /tmp/base && npm ci && npm run
// build)`), both in this process, alternating over the same texts, so a machine whose speed drifts
// between runs slows both alike. Both sides run tsc's output: the sources as tsx compiles them ran 5-9 %
// slower than the same code built (2026-11-30), which an A/B of source against build reads as a change.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
// The pipeline as it ships (`npm run build` first): tsx's compile of the sources ran 5-9 % slower.
import type { VerdictCache as VerdictCacheType } from "../src/guard/cache.js";
import type { Guard as GuardType } from "../src/guard/pipeline.js";
import { fmt } from "./common.js";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "2" },
    "no-peers": { type: "boolean", default: false },
    baseline: { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
process.on("uncaughtException", () => undefined); // a peer's worker pool failing late must not end the run
const built = (dir: string, module: string) => pathToFileURL(join(resolve(dir), "dist/guard", module)).href;
const ROOT = join(import.meta.dirname, "..");
const { Guard } = (await import(built(ROOT, "pipeline.js"))) as { Guard: typeof GuardType };
const { VerdictCache } = (await import(built(ROOT, "cache.js"))) as { VerdictCache: typeof VerdictCacheType };
type Guard = GuardType;

// Realistic text: prompts from the corpus, joined to the sizes measured.
const rows = readFileSync("../shared/corpora/prompt-injection/dev.jsonl", "utf8")
  .trim()
  .split("\n")
  .map((l) => (JSON.parse(l) as { text: string }).text);
function texts(size: number, count: number): string[] {
  const out: string[] = [];
  let i = 0;
  for (let n = 0; n < count; n++) {
    let t = "";
    while (t.length < size) t += rows[i++ % rows.length] + "\n";
    out.push(t.slice(0, size));
  }
  return out;
}

async function mbPerSecond(sample: readonly string[], op: (t: string) => unknown): Promise<number> {
  let bytes = 0;
  let i = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < SECONDS) {
    const t = sample[i++ % sample.length] as string;
    await op(t);
    bytes += Buffer.byteLength(t);
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return bytes / 1e6 / elapsed;
}

const guard = new Guard();
const tools: Record<string, (t: string) => unknown> = { agentwall: (t) => guard.scan(t) };
if (!values["no-peers"]) {
  const { default: vard } = await import("@andersmyrmel/vard");
  const { LLMGuard } = await import("llm-guard");
  const hai = await import("@presidio-dev/hai-guardrails");
  const { checkAll } = await import("llm_guardrail");
  const moderate = vard.moderate().maxLength(200_000);
  const llmGuard = new LLMGuard({ jailbreak: true, promptInjection: true, pii: true });
  const engine = new hai.GuardrailsEngine({
    guards: [hai.injectionGuard({ roles: ["user"] }, { mode: "pattern", threshold: 0.7 })],
  });
  tools.vard = (t) => moderate.safeParse(t);
  tools["llm-guard"] = (t) => llmGuard.validate(t);
  tools["hai-guardrails"] = (t) => engine.run([{ role: "user", content: t }]);
  tools.llm_guardrail = (t) => checkAll(t);
}
console.log(`guard speed, node ${process.version}, ${SECONDS} s per cell, MB/s on one core`);
console.log(`${"tool".padEnd(16)}${"2 KB prompts".padStart(16)}${"100 KB documents".padStart(20)}`);
const prompts = texts(2048, 200);
const documents = texts(100_000, 8);
for (const [name, op] of Object.entries(tools)) {
  const a = await mbPerSecond(prompts, op);
  const b = await mbPerSecond(documents, op);
  console.log(
    `${name.padEnd(16)}${fmt(a * 100) === "0" ? a.toFixed(3) : a.toFixed(2).padStart(16)}${b.toFixed(2).padStart(20)}`,
  );
}

// A conversation as the gateway sees it: an agent resends its whole history with every call, so turn t
// scans 2t messages (t asked, t answered) of about 600 characters. Without kept verdicts that is
// n²-ish scanning over a conversation; with them (a VerdictCache, on in the gateway by default) each
// message is scanned once. A new cache for each conversation, 20 turns each.
const messages = texts(600, 40);
const cache = new VerdictCache();
const cached = new Guard({}, { cache });
function conversation(g: Guard, partition: string | undefined): void {
  cache.clear();
  for (let turn = 1; turn <= 20; turn++)
    for (let m = 0; m < 2 * turn; m++) g.scan(messages[m] as string, { source: "user", partition });
}
function perTurnMs(g: Guard, partition: string | undefined): number {
  let runs = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < SECONDS || runs < 2) {
    conversation(g, partition);
    runs++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  return (elapsed * 1000) / (runs * 20);
}
const scanned = perTurnMs(guard, undefined);
const kept = perTurnMs(cached, "caller");
console.log(
  `\nconversation of 20 turns (history resent, 600-character messages), agentwall, ms per turn: ` +
    `${scanned.toFixed(2)} scanning every message, ${kept.toFixed(2)} with kept verdicts (${(scanned / kept).toFixed(1)}x)`,
);

if (values.baseline !== undefined) {
  const baseline = new ((await import(built(values.baseline, "pipeline.js"))) as { Guard: typeof GuardType }).Guard();
  const ours = new Guard();
  console.log(`\nagainst the build in ${values.baseline}, alternating in this process (MB/s on one core):`);
  for (const [name, sample] of [
    ["2 KB prompts", prompts],
    ["100 KB documents", documents],
  ] as const) {
    const bytes = sample.reduce((sum, t) => sum + Buffer.byteLength(t), 0);
    const time = (g: Pick<Guard, "scan">) => {
      const start = process.hrtime.bigint();
      for (const t of sample) g.scan(t);
      return Number(process.hrtime.bigint() - start) / 1e9;
    };
    let [mine, theirs, rounds] = [0, 0, 0];
    // Each goes first every other round: whoever runs second pays for the first's garbage.
    for (; mine < SECONDS || rounds < 2; rounds++)
      if (rounds % 2 === 0) [mine, theirs] = [mine + time(ours), theirs + time(baseline)];
      else [theirs, mine] = [theirs + time(baseline), mine + time(ours)];
    const [a, b] = [(bytes * rounds) / 1e6 / mine, (bytes * rounds) / 1e6 / theirs];
    console.log(
      `${name.padEnd(18)} this checkout ${a.toFixed(2)}, baseline ${b.toFixed(2)}, ratio ${(a / b).toFixed(3)}`,
    );
  }
}
process.exit(0);
