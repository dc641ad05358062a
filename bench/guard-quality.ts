// Guard quality, measured in one run on the same rows for agentwall and the peers.
//
//   npx tsx bench/guard-quality.ts [--no-peers] [--corpora ../shared/corpora]
//
// Prompt injection: ../shared/corpora/prompt-injection/dev.jsonl, leave-one-source-out — for each
// source, agentwall's model is trained on every other source and tested on this one; the rules and the
// threshold (the default policy's 0.5) are fixed before the run. Peers (no training): @andersmyrmel/vard
// (moderate preset), llm-guard (jailbreak + promptInjection), @presidio-dev/hai-guardrails (injection
// guard, pattern mode, threshold 0.7), llm_guardrail (injection or jailbreak detected).
// Secrets: gitleaks' rule tests (tp recall, fp flagged). PII: Presidio's synthetic sentences, span
// precision/recall per type, next to @openredaction/openredaction and @redactpii/node.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { detectInjection } from "../src/guard/injection.js";
import { normalize } from "../src/guard/normalize.js";
import { findPii } from "../src/guard/pii.js";
import { findSecrets } from "../src/guard/secrets.js";
import { shippedInjectionModel } from "../src/guard/pipeline.js";
import { TRAINING, trainLogistic } from "../src/guard/train.js";
import {
  HELD_OUT_PACKAGES,
  TRAINING_PACKAGES,
  documentationSentences,
  technicalRows,
} from "../scripts/technical-text.js";

const { values } = parseArgs({
  options: {
    "no-peers": { type: "boolean", default: false },
    corpora: { type: "string", default: "../shared/corpora" },
  },
});
const jsonl = <T>(path: string): T[] =>
  readFileSync(join(values.corpora, path), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as T);

// A peer's worker pool (hai-guardrails) can fail after its answers are in; that must not end the run.
process.on("uncaughtException", (e) => console.error(`(peer error ignored: ${String(e).slice(0, 120)})`));

interface Row {
  text: string;
  label: 0 | 1;
  source: string;
}
type Detector = (text: string) => Promise<boolean> | boolean;

async function peers(): Promise<Record<string, Detector>> {
  if (values["no-peers"]) return {};
  const { default: vard } = await import("@andersmyrmel/vard");
  const { LLMGuard } = await import("llm-guard");
  const hai = await import("@presidio-dev/hai-guardrails");
  const { checkAll } = await import("llm_guardrail");
  const moderate = vard.moderate();
  const llmGuard = new LLMGuard({ jailbreak: true, promptInjection: true });
  const engine = new hai.GuardrailsEngine({
    guards: [hai.injectionGuard({ roles: ["user"] }, { mode: "pattern", threshold: 0.7 })],
  });
  return {
    vard: (t) => !moderate.safeParse(t).safe,
    "llm-guard": async (t) => !(await llmGuard.validate(t)).isValid,
    "hai-guardrails": async (t) => {
      const r = await engine.run([{ role: "user", content: t }]);
      return r.messagesWithGuardResult.some((g) => g.messages.some((m) => !m.passed));
    },
    llm_guardrail: async (t) => {
      const r = (await checkAll(t)) as { injection?: { detected?: boolean }; jailbreak?: { detected?: boolean } };
      return r.injection?.detected === true || r.jailbreak?.detected === true;
    },
  };
}

/** The peers' packages (their documentation quotes attacks). */
const PEER_PACKAGES = [
  "@andersmyrmel/vard",
  "llm-guard",
  "@presidio-dev/hai-guardrails",
  "llm_guardrail",
  "@portkey-ai/gateway",
];
const rows = jsonl<Row>("prompt-injection/dev.jsonl");
const sources = [...new Set(rows.map((r) => r.source))];
const HARD_NEGATIVES = [
  "PIGuard/NotInject_one",
  "PIGuard/NotInject_two",
  "PIGuard/wildguard_benign",
  "OpenPromptInjection",
  "CyberSecEval/mitre_frr",
];
const flagged = new Map<string, boolean[]>(); // tool -> per row
const ours: boolean[] = new Array<boolean>(rows.length).fill(false);
const asDocument: boolean[] = new Array<boolean>(rows.length).fill(false);
const started = Date.now();
// The shipped model also trains on benign technical text (code and READMEs of installed packages);
// so does every fold here. Packages it never trains on measure how it treats technical text.
const technical = technicalRows(TRAINING_PACKAGES).map((r) => ({ ...r, text: normalize(r.text, 0).text }));
const heldOut = technicalRows(HELD_OUT_PACKAGES);
for (const source of sources) {
  const model = trainLogistic(
    [
      ...rows
        .filter((r) => r.source !== source)
        .map((r) => ({ text: normalize(r.text, 0).text, label: r.label, group: r.source })),
      ...technical,
    ],
    TRAINING,
  );
  rows.forEach((r, i) => {
    if (r.source !== source) return;
    const n = normalize(r.text);
    ours[i] = detectInjection(n, { model, threshold: 0.5 }).detected;
    // The same text inside a retrieved document, at the policy's document threshold.
    asDocument[i] = detectInjection(n, { model, source: "document", threshold: 0.4 }).detected;
  });
}
flagged.set("agentwall", ours);
console.log(
  `prompt injection, ${rows.length} rows, ${sources.length} sources, leave-one-source-out (${((Date.now() - started) / 1000).toFixed(0)} s)`,
);
for (const [name, detect] of Object.entries(await peers())) {
  const t0 = Date.now();
  const out: boolean[] = [];
  for (const r of rows) {
    try {
      out.push(await detect(r.text));
    } catch {
      out.push(false);
    }
  }
  flagged.set(name, out);
  console.log(`  ${name}: ${((Date.now() - t0) / rows.length).toFixed(2)} ms per prompt`);
}
const rate = (tool: string, pick: (r: Row) => boolean) => {
  const f = flagged.get(tool) as boolean[];
  const idx = rows.map((r, i) => (pick(r) ? i : -1)).filter((i) => i >= 0);
  return idx.length === 0 ? "" : (idx.filter((i) => f[i]).length / idx.length).toFixed(3);
};
const tools = [...flagged.keys()];
console.log(`\n${"source".padEnd(52)} ${"n".padStart(5)}  ${tools.map((t) => t.padStart(14)).join("")}`);
for (const source of sources) {
  for (const label of [1, 0] as const) {
    const n = rows.filter((r) => r.source === source && r.label === label);
    if (n.length === 0) continue;
    console.log(
      `${(source + (label === 1 ? " (TPR)" : " (FPR)")).slice(0, 52).padEnd(52)} ${String(n.length).padStart(5)}  ${tools
        .map((t) => rate(t, (r) => r.source === source && r.label === label).padStart(14))
        .join("")}`,
    );
  }
}
console.log(
  `${"overall TPR (attacks caught)".padEnd(58)} ${tools.map((t) => rate(t, (r) => r.label === 1).padStart(14)).join("")}`,
);
console.log(
  `${"overall FPR (benign flagged)".padEnd(58)} ${tools.map((t) => rate(t, (r) => r.label === 0).padStart(14)).join("")}`,
);
{
  // Technical text from packages no model here trained on: the shipped model, flagged share.
  const shipped = shippedInjectionModel();
  const flaggedShare = (group: string) => {
    const texts = heldOut.filter((r) => r.group === group).map((r) => r.text);
    const n = texts.filter((t) => detectInjection(normalize(t), { model: shipped }).detected).length;
    return `${(n / texts.length).toFixed(3)} (${n}/${texts.length})`;
  };
  console.log(
    `technical text of held-out packages flagged by the shipped model: code ${flaggedShare("technical/code")}, READMEs ${flaggedShare("technical/readme")}`,
  );
  // Every row as the text of a retrieved document (source document, threshold 0.4), same folds.
  const share = (keep: (r: Row, i: number) => boolean) => {
    const idx = rows.flatMap((r, i) => (keep(r, i) ? [i] : []));
    return (idx.filter((i) => asDocument[i]).length / idx.length).toFixed(3);
  };
  const docShare = (group: string) => {
    const texts = heldOut.filter((r) => r.group === group).map((r) => r.text);
    const n = texts.filter(
      (t) => detectInjection(normalize(t), { model: shipped, source: "document", threshold: 0.4 }).detected,
    ).length;
    return `${(n / texts.length).toFixed(3)} (${n}/${texts.length})`;
  };
  console.log(
    `as documents (threshold 0.4): TPR ${share((r) => r.label === 1)}, FPR ${share((r) => r.label === 0)}; ` +
      `held-out code ${docShare("technical/code")}, READMEs ${docShare("technical/readme")}`,
  );
  // Documentation one sentence at a time (what a tool returns or an agent retrieves), from the Markdown
  // of installed packages the model does not train on; the peers' own files quote attacks, so they are
  // left out. Flagged share by the shipped model and rules, and by the rules alone.
  const sentences = documentationSentences([...TRAINING_PACKAGES, ...PEER_PACKAGES]).map((t) => normalize(t));
  const sentenceShare = (options: Parameters<typeof detectInjection>[1]) => {
    const n = sentences.filter((t) => detectInjection(t, options).detected).length;
    return `${((100 * n) / sentences.length).toFixed(2)} % (${n})`;
  };
  console.log(
    `documentation sentences (${sentences.length}) flagged: as user prompts ${sentenceShare({ model: shipped })}, ` +
      `as tool results ${sentenceShare({ model: shipped, source: "tool", threshold: 0.4 })}, ` +
      `by the rules alone ${sentenceShare({ source: "tool", threshold: 0.4 })}`,
  );
}
console.log(
  `${"hard negatives FPR".padEnd(58)} ${tools.map((t) => rate(t, (r) => r.label === 0 && HARD_NEGATIVES.some((h) => r.source.startsWith(h))).padStart(14)).join("")}`,
);

// Secrets.
const leaks = jsonl<{ text: string; label: string; secret?: string }>("sensitive-data/gitleaks-rule-cases.jsonl");
let hit = 0;
let tp = 0;
let fpFlagged = 0;
let fpByProviderRule = 0;
let fp = 0;
// gitleaks' tests are per rule: a row one rule must not match can be another rule's true case
// (a Cloudflare origin CA key in the global-API-key rule's negatives). Flagging those is right.
const trueCase = new Set(leaks.filter((r) => r.label === "tp").flatMap((r) => [r.text, r.secret ?? r.text]));
let fpOwnedElsewhere = 0;
let fpFlaggedOwnedElsewhere = 0;
for (const r of leaks) {
  const found = findSecrets(r.text);
  if (r.label === "tp") {
    tp++;
    const at = r.secret === undefined ? -1 : r.text.indexOf(r.secret);
    if (at < 0 ? found.length > 0 : found.some((f) => f.start < at + (r.secret as string).length && f.end > at)) hit++;
  } else {
    fp++;
    if (found.length > 0) fpFlagged++;
    const owned = trueCase.has(r.text) || found.some((f) => trueCase.has(r.text.slice(f.start, f.end)));
    if (owned) fpOwnedElsewhere++;
    if (owned && found.length > 0) fpFlaggedOwnedElsewhere++;
    if (found.some((f) => f.type !== "secret-assignment")) fpByProviderRule++;
  }
}
console.log(
  `\nsecrets (gitleaks rule tests): recall ${(hit / tp).toFixed(3)} (${hit}/${tp}), fp rows flagged ${(fpFlagged / fp).toFixed(3)} (${fpFlagged}/${fp}); ` +
    `by a provider rule ${(fpByProviderRule / fp).toFixed(3)} (${fpByProviderRule}/${fp}) — the rest by the generic ` +
    `name = value detector, which flags e.g. cloudflare_api_key = "<40 random chars>" that the rule under test rightly does not own`,
);
console.log(
  `  fp rows that are not another rule's true case: ${((fpFlagged - fpFlaggedOwnedElsewhere) / (fp - fpOwnedElsewhere)).toFixed(3)} ` +
    `flagged (${fpFlagged - fpFlaggedOwnedElsewhere}/${fp - fpOwnedElsewhere})`,
);

// PII spans.
const MAP: Record<string, string> = {
  CREDIT_CARD: "credit_card",
  US_SSN: "us_ssn",
  IBAN_CODE: "iban",
  EMAIL_ADDRESS: "email",
  PHONE_NUMBER: "phone",
  IP_ADDRESS: "ip_address",
};
const PEER_MAP: Record<string, string> = {
  EMAIL: "email",
  EMAIL_ADDRESS: "email",
  CREDIT_CARD: "credit_card",
  CREDIT_CARD_NUMBER: "credit_card",
  SSN: "us_ssn",
  US_SOCIAL_SECURITY_NUMBER: "us_ssn",
  IBAN: "iban",
  IP_ADDRESS: "ip_address",
  IPV4: "ip_address",
  IPV6: "ip_address",
  PHONE_NUMBER: "phone",
};
const peerType = (t: string) =>
  PEER_MAP[t] ??
  (t.startsWith("PHONE")
    ? "phone"
    : t.startsWith("IP")
      ? "ip_address"
      : t.startsWith("CREDIT")
        ? "credit_card"
        : t.toLowerCase());
const presidio = jsonl<{ text: string; spans: { type: string; start: number; end: number }[] }>(
  "sensitive-data/presidio-research-synth-v2.jsonl",
);
type Span = { type: string; start: number; end: number };
const piiTools: Record<string, (t: string) => Promise<Span[]> | Span[]> = { agentwall: (t) => findPii(t) };
if (!values["no-peers"]) {
  const { OpenRedaction } = await import("@openredaction/openredaction");
  const { Redactor } = await import("@redactpii/node");
  const open = new OpenRedaction();
  const redactor = new Redactor();
  piiTools.openredaction = async (t) =>
    (
      (await Promise.resolve(open.detect(t))) as { detections: { type: string; position: [number, number] }[] }
    ).detections.map((d) => ({
      type: peerType(d.type),
      start: d.position[0],
      end: d.position[1],
    }));
  // redactpii returns only the redacted text: spans are recovered by aligning it with the original.
  piiTools.redactpii = (t) => {
    const red = redactor.redact(t);
    const spans: Span[] = [];
    const parts = red.split(/\b([A-Z][A-Z_]{3,})\b/);
    let at = 0;
    for (let i = 0; i < parts.length; i++) {
      const piece = parts[i] as string;
      if (i % 2 === 0) {
        const next = piece === "" ? (i + 1 < parts.length ? at : t.length) : t.indexOf(piece, at);
        if (next < 0) break;
        if (i > 0 && spans.length > 0) (spans.at(-1) as Span).end = next;
        at = next + piece.length;
      } else if (t.startsWith(piece, at)) {
        at += piece.length; // the text itself was upper-case
      } else spans.push({ type: peerType(piece), start: at, end: t.length });
    }
    return spans;
  };
}
console.log(`\nPII spans on ${presidio.length} Presidio sentences (precision / recall)`);
const types = Object.values(MAP);
console.log(
  `${"type".padEnd(14)}${Object.keys(piiTools)
    .map((t) => t.padStart(18))
    .join("")}`,
);
const stats: Record<string, Record<string, { tp: number; fp: number; fn: number }>> = {};
for (const [tool, find] of Object.entries(piiTools)) {
  stats[tool] = Object.fromEntries(types.map((t) => [t, { tp: 0, fp: 0, fn: 0 }]));
  for (const r of presidio) {
    let found: Span[] = [];
    try {
      found = await find(r.text);
    } catch {
      found = [];
    }
    for (const type of types) {
      const gold = r.spans.filter((s) => MAP[s.type] === type);
      const mine = found.filter((f) => f.type === type);
      const s = (stats[tool] as Record<string, { tp: number; fp: number; fn: number }>)[type] as {
        tp: number;
        fp: number;
        fn: number;
      };
      for (const g of gold)
        if (mine.some((f) => f.start < g.end && f.end > g.start)) s.tp++;
        else s.fn++;
      for (const f of mine) if (!gold.some((g) => f.start < g.end && f.end > g.start)) s.fp++;
    }
  }
}
for (const type of types) {
  const cells = Object.keys(piiTools).map((tool) => {
    const s = (stats[tool] as Record<string, { tp: number; fp: number; fn: number }>)[type] as {
      tp: number;
      fp: number;
      fn: number;
    };
    const p = s.tp + s.fp === 0 ? "-" : (s.tp / (s.tp + s.fp)).toFixed(2);
    return `${p} / ${(s.tp / Math.max(1, s.tp + s.fn)).toFixed(2)}`.padStart(18);
  });
  console.log(`${type.padEnd(14)}${cells.join("")}`);
}
process.exit(0);
