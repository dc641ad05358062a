// The gateway under a steady load for a long time (default 10 minutes at 200 requests/s, loopback only):
// the full pipeline (API key, RBAC, per-IP limit, budget, input and output guards, durable audit on
// SQLite, audit shipped to a JSON Lines file) in front of a fake upstream. Every sampling interval it
// prints answers, errors, the gateway's heap and RSS (from its own /metrics), the audit head and the
// shipping lag; at the end, the totals, heap and RSS growth after warm-up, and whether the audit log
// verifies. A script, not a test:
//
//   npm run build && bash bench/soak.sh [--minutes 10] [--rate 200] [--sample 30]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { benchGateway } from "./common.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    rate: { type: "string", default: "200" },
    sample: { type: "string", default: "30" },
    connections: { type: "string", default: "16" },
  },
});
const MINUTES = Number(values.minutes);
const RATE = Number(values.rate);
const SAMPLE_S = Number(values.sample);
const CONNECTIONS = Number(values.connections);
if (![MINUTES, RATE, SAMPLE_S, CONNECTIONS].every((n) => Number.isFinite(n) && n > 0) || RATE > 5000)
  throw new Error("--minutes, --rate (≤ 5000), --sample and --connections must be positive numbers");
const ROOT = join(import.meta.dirname, "..");
const MAIN = join(ROOT, "dist/cli/main.js");

const dir = mkdtempSync(join(tmpdir(), "agentwall-soak-"));
const shipped = join(dir, "shipped.jsonl");
const aw = await benchGateway({
  name: "soak",
  answer: "The capital of France is Paris.",
  usage: { prompt: 260, completion: 8 },
  config: {
    logLevel: "warn",
    audit: { ship: [{ kind: "file", path: shipped }] },
  },
  keys: [
    ["soak", "user"],
    ["ops", "admin"],
  ],
});
try {
  const { env, gateway, base } = aw;
  const key = aw.keys.soak as string;
  const admin = aw.keys.ops as string;
  const metric = (text: string, name: string): number => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
    return m?.[1] === undefined ? Number.NaN : Number(m[1]);
  };
  const sample = async () => {
    const headers = { authorization: `Bearer ${admin}` };
    const text = await (await fetch(`${base}/metrics`, { headers })).text();
    const head = (await (await fetch(`${base}/v1/admin/audit/events?limit=1`, { headers })).json()) as {
      events: { seq: number }[];
    };
    return {
      heapMb: metric(text, "agentwall_nodejs_heap_size_used_bytes") / 2 ** 20,
      rssMb: metric(text, "agentwall_process_resident_memory_bytes") / 2 ** 20,
      shipLag: metric(text, "agentwall_audit_ship_lag_events"),
      auditHead: head.events[0]?.seq ?? 0,
    };
  };

  const prompt =
    "I am planning a week-long trip to France next spring with my family, and we would like to spend a few days in Paris " +
    "before heading south. My two children are eight and eleven, and they enjoy museums as long as the visits are not too " +
    "long. We are interested in art, history and food markets, and we would prefer to travel by train rather than rent a car. " +
    "Could you suggest how to split the days between Paris and one or two other cities, which neighbourhoods are pleasant " +
    "for families to stay in, and which museums have good activities for children? We also wonder whether it is worth " +
    "buying a museum pass, how far in advance we should book train tickets, and what the weather is usually like in April.";
  const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: prompt }] });
  let ok = 0;
  let failed = 0;
  const started = Date.now();
  // The callback form: it returns the running instance, whose events count answers as they come.
  let finish: (r: autocannon.Result) => void = () => undefined;
  let fail: (e: unknown) => void = () => undefined;
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const run = autocannon(
    {
      url: `${base}/v1/chat/completions`,
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body,
      connections: CONNECTIONS,
      overallRate: RATE,
      duration: MINUTES * 60,
    },
    (error, r) => (error ? fail(error) : finish(r)),
  );
  run.on("response", (_client, status) => {
    if (status === 200) ok += 1;
    else failed += 1;
  });
  run.on("reqError", () => (failed += 1));
  const series: {
    t: number;
    ok: number;
    failed: number;
    heapMb: number;
    rssMb: number;
    shipLag: number;
    auditHead: number;
  }[] = [];
  process.stdout.write(
    `soak: ${MINUTES} min at ${RATE} req/s, ${CONNECTIONS} connections, sample every ${SAMPLE_S} s\n` +
      "   t(s)   answered  errors  heap(MB)  rss(MB)  audit head  ship lag\n",
  );
  const timer = setInterval(() => {
    void sample().then((s) => {
      const row = { t: Math.round((Date.now() - started) / 1000), ok, failed, ...s };
      series.push(row);
      process.stdout.write(
        `${String(row.t).padStart(7)} ${String(ok).padStart(10)} ${String(failed).padStart(7)} ${s.heapMb.toFixed(1).padStart(9)} ${s.rssMb.toFixed(1).padStart(8)} ${String(s.auditHead).padStart(11)} ${String(s.shipLag).padStart(9)}\n`,
      );
    });
  }, SAMPLE_S * 1000);
  const result = await done;
  clearInterval(timer);
  await new Promise((r) => setTimeout(r, 2000));
  const end = await sample();
  // After warm-up (the first quarter of the samples), how much heap and RSS grew.
  const steady = series.slice(Math.floor(series.length / 4));
  const first = steady[0];
  const growth = (f: (s: (typeof series)[number]) => number) =>
    first === undefined ? Number.NaN : Math.max(...steady.map(f)) - f(first);
  process.stdout.write(
    `\nanswered ${result["2xx"]}, non-2xx ${result.non2xx}, errors ${result.errors}, timeouts ${result.timeouts}; ` +
      `mean ${result.requests.average.toFixed(1)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms\n` +
      `heap after warm-up: ${first?.heapMb.toFixed(1)} MB, largest rise ${growth((s) => s.heapMb).toFixed(1)} MB; ` +
      `RSS after warm-up: ${first?.rssMb.toFixed(1)} MB, largest rise ${growth((s) => s.rssMb).toFixed(1)} MB\n` +
      `largest ship lag seen: ${Math.max(...series.map((s) => s.shipLag))} events; 2 s after the load: ${end.shipLag} events\n`,
  );
  gateway.kill("SIGTERM");
  await new Promise((r) => gateway.on("exit", r));
  const lines = readFileSync(shipped, "utf8")
    .split("\n")
    .filter((l) => l !== "").length;
  const verify = spawnSync(process.execPath, [MAIN, "audit", "verify"], { env, encoding: "utf8" });
  process.stdout.write(
    `audit: ${end.auditHead} events, ${lines} shipped to the file; verify: ${verify.status === 0 ? "ok" : `FAILED ${verify.stdout}${verify.stderr}`}\n`,
  );
  if (result.non2xx + result.errors + result.timeouts > 0 || verify.status !== 0) process.exitCode = 1;
} finally {
  await aw.stop(0);
  rmSync(dir, { recursive: true, force: true });
}
