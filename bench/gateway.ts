// The guarded gateway under a fixed load (autocannon, 32 connections, a 1 KB prompt), in one run, against:
// a fake OpenAI-compatible upstream directly; agentwall with the full pipeline (API key, RBAC, per-IP
// rate limit, budget, input and output guards, durable audit on SQLite); and Portkey's open-source
// gateway (@portkey-ai/gateway, --headless, forced onto 127.0.0.1 by a preload) pointed at the same
// upstream with x-portkey-custom-host. Prints requests/s, p50/p99, agentwall's CPU time per request,
// the ratios, and the latency each adds at one connection.
//
//   npm run build && npx tsx bench/gateway.ts [--seconds 10] [--connections 32]
//
// Each server is its own process (the upstream too), so one's CPU never counts against another.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import { Client } from "undici";
import { benchGateway, freePort, waitFor } from "./common.js";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "10" }, connections: { type: "string", default: "32" } },
});
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);
const ROOT = join(import.meta.dirname, "..");

const procs: ChildProcess[] = [];
function start(args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "ignore", "inherit"],
  });
  procs.push(child);
  return child;
}

/** utime + stime of a process, in ms (Linux /proc). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1000) / 100;
}

const dir = mkdtempSync(join(tmpdir(), "agentwall-bench-gateway-"));
// AGENTWALL_BENCH_PROFILE=<dir> writes a CPU profile of the gateway there (on its orderly exit).
const profile = process.env.AGENTWALL_BENCH_PROFILE;
// The upstream answers a fixed chat completion at once; agentwall runs the full pipeline on SQLite.
const aw = await benchGateway({
  name: "bench-gateway",
  answer: "The capital of France is Paris. It has been the capital for centuries and is known for its museums.",
  usage: { prompt: 260, completion: 24 },
  config: {
    logLevel: "silent",
  },
  keys: [["bench", "user"]],
  nodeOptions: profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`],
});
try {
  const { upstream, gateway } = aw;
  const key = aw.keys.bench as string;
  const awPort = Number(new URL(aw.base).port);

  // Portkey, forced onto loopback.
  const pkPort = await freePort();
  const preload = join(dir, "loopback.cjs");
  writeFileSync(
    preload,
    `const net = require("node:net"); const listen = net.Server.prototype.listen;
     net.Server.prototype.listen = function (...args) {
       if (typeof args[0] === "number") { const cb = args.find((a) => typeof a === "function"); return listen.call(this, args[0], "127.0.0.1", cb); }
       if (args[0] && typeof args[0] === "object") args[0] = { ...args[0], host: "127.0.0.1" };
       return listen.apply(this, args); };`,
  );
  start([
    "--require",
    preload,
    join(ROOT, "node_modules/@portkey-ai/gateway/build/start-server.js"),
    `--port=${pkPort}`,
    "--headless",
  ]);
  await waitFor(`http://127.0.0.1:${pkPort}/`);

  // About 1 KB of ordinary prose (a repeated sentence would trip the repetition signal, as it should).
  const prompt =
    "I am planning a week-long trip to France next spring with my family, and we would like to spend a few days in Paris " +
    "before heading south. My two children are eight and eleven, and they enjoy museums as long as the visits are not too " +
    "long. We are interested in art, history and food markets, and we would prefer to travel by train rather than rent a car. " +
    "Could you suggest how to split the days between Paris and one or two other cities, which neighbourhoods are pleasant " +
    "for families to stay in, and which museums have good activities for children? We also wonder whether it is worth " +
    "buying a museum pass, how far in advance we should book train tickets, and what the weather is usually like in April. " +
    "Finally, please mention a few regional dishes we should try and any customs about tipping in restaurants that " +
    "visitors often get wrong. What is the capital of France, and how long has it been the capital? Thank you very much.";
  // Every request carries a prompt of its own (a request number in it), as real traffic does: a
  // fixed body would let a gateway that caches verdicts skip its input guard after the first request.
  let sent = 0;
  const bodyOf = (n: number) =>
    JSON.stringify({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `${prompt.slice(0, 1000)} (request ${String(n).padStart(9, "0")})` }],
    });
  const body = bodyOf(0);
  // An agent's next turn: its conversation so far comes again with the new message (chat completions
  // are stateless), about 3.4 KB of history before the 1 KB prompt.
  const history = [
    {
      role: "system",
      content:
        "You are a travel planning assistant for a small agency. Answer in plain prose, keep each answer under " +
        "two hundred words, say when prices or opening hours may have changed, and suggest checking official " +
        "sources for visas, health requirements and rail strikes before anyone books a ticket.",
    },
    {
      role: "user",
      content:
        "We are a family of four thinking about a spring holiday in Europe. We have about ten days, we like " +
        "walking and food markets, and we would rather not drive. Which countries are easy to get around by " +
        "train, and is April a good month for that kind of trip, or should we wait until May?",
    },
    {
      role: "assistant",
      content:
        "April works well for a rail holiday: trains are less crowded than in summer and most museums keep " +
        "their longer spring hours. France, Switzerland, the Netherlands and northern Italy all have dense " +
        "networks with frequent regional services. May is warmer, but school holidays in several countries " +
        "make popular routes busier, so if your dates are flexible the second half of April is a good choice.",
    },
    {
      role: "user",
      content:
        "France sounds good. We were thinking of starting in Paris and then going south, maybe to Lyon and " +
        "the coast. How many nights would you spend in each place, and are there regional passes that make " +
        "the trains cheaper for a family, or is it better to book each journey separately in advance?",
    },
    {
      role: "assistant",
      content:
        "Four nights in Paris, three in Lyon and three on the coast around Marseille or Nice would give each " +
        "place time without rushing. Long-distance high-speed trains are usually cheapest when booked a few " +
        "weeks ahead, and children travel at reduced fares. A rail pass rarely pays off for three or four " +
        "journeys; booking each leg separately is simpler and often cheaper for a family of four.",
    },
    {
      role: "user",
      content:
        "Thanks, that helps. Our children are eight and eleven. Which museums in Paris and Lyon are good for " +
        "that age, and how long should a visit be before they get tired? We would also like a few ideas for " +
        "rainy afternoons that do not involve another museum, in case the weather turns.",
    },
    {
      role: "assistant",
      content:
        "In Paris the science museum at La Villette and the natural history galleries in the Jardin des " +
        "Plantes hold children's attention well; two hours is usually enough. In Lyon the Musée des " +
        "Confluences mixes science and anthropology in short rooms. For rainy afternoons, covered passages, " +
        "a cooking class or the aquarium are good choices, and many bakeries welcome children to watch.",
    },
  ];
  const conversationOf = (n: number) =>
    JSON.stringify({
      model: "gpt-4o-mini",
      messages: [
        ...history,
        { role: "user", content: `${prompt.slice(0, 1000)} (request ${String(n).padStart(9, "0")})` },
      ],
    });
  const targets = {
    upstream: { url: `${upstream}/chat/completions`, headers: { "content-type": "application/json" } },
    agentwall: {
      url: `http://127.0.0.1:${awPort}/v1/chat/completions`,
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    },
    portkey: {
      url: `http://127.0.0.1:${pkPort}/v1/chat/completions`,
      headers: {
        "content-type": "application/json",
        authorization: "Bearer sk-bench-upstream-0000000000000000",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream,
      },
    },
  } as const;

  // Every target must answer both requests correctly before it is timed.
  for (const [name, t] of Object.entries(targets))
    for (const sample of [body, conversationOf(0)]) {
      const r = await fetch(t.url, { method: "POST", headers: t.headers, body: sample });
      const text = await r.text();
      if (r.status !== 200 || !text.includes("Paris"))
        throw new Error(`${name} answered ${r.status}: ${text.slice(0, 200)}`);
    }

  const load = async (
    name: keyof typeof targets,
    connections: number,
    seconds: number,
    shape: "prompt" | "conversation" = "prompt",
  ) => {
    const t = targets[name];
    const make = shape === "prompt" ? bodyOf : conversationOf;
    const r = await autocannon({
      url: t.url,
      method: "POST",
      headers: t.headers,
      connections,
      duration: seconds,
      requests: [
        {
          body,
          setupRequest: (req) => ({ ...req, body: make(++sent) }),
        },
      ],
    });
    return {
      rps: r.requests.average,
      p50: r.latency.p50,
      p99: r.latency.p99,
      ok: r["2xx"],
      errors: r.errors + r.non2xx,
    };
  };
  // Warm-up, then the timed runs.
  for (const name of Object.keys(targets) as Array<keyof typeof targets>) await load(name, CONNECTIONS, 2);
  const cpuBefore = cpuMs(gateway.pid ?? 0);
  const results = {
    upstream: await load("upstream", CONNECTIONS, SECONDS),
    agentwall: await load("agentwall", CONNECTIONS, SECONDS),
  };
  const cpuAfter = cpuMs(gateway.pid ?? 0);
  const portkey = await load("portkey", CONNECTIONS, SECONDS);
  // One connection, one request at a time, each timed to the microsecond (autocannon's histogram keeps
  // whole milliseconds: a 0.2 ms answer counts as 0 and a 2.9 ms one as 2, so its means are no measure
  // of a sub-millisecond difference). The targets take turns, a second each, so a drift of the machine
  // falls on all three alike.
  const clients = Object.fromEntries(
    Object.entries(targets).map(([name, t]) => [name, new Client(new URL(t.url).origin, { pipelining: 1 })]),
  ) as Record<keyof typeof targets, Client>;
  const samples: Record<keyof typeof targets, number[]> = { upstream: [], agentwall: [], portkey: [] };
  let singleErrors = 0;
  const oneAtATime = async (name: keyof typeof targets, ms: number) => {
    const t = targets[name];
    const path = new URL(t.url).pathname;
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const body = bodyOf(++sent);
      const started = process.hrtime.bigint();
      const res = await clients[name].request({ method: "POST", path, headers: t.headers, body });
      await res.body.text();
      samples[name].push(Number(process.hrtime.bigint() - started) / 1e6);
      if (res.statusCode !== 200) singleErrors++;
    }
  };
  for (const name of Object.keys(targets) as Array<keyof typeof targets>) await oneAtATime(name, 500); // warm-up
  for (const s of Object.values(samples)) s.length = 0;
  for (let round = 0; round < Math.max(3, SECONDS / 2); round++)
    for (const name of Object.keys(targets) as Array<keyof typeof targets>) await oneAtATime(name, 1000);
  for (const c of Object.values(clients)) await c.close();
  const stats = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    return {
      p50: sorted[Math.floor(sorted.length / 2)] ?? NaN,
      mean: xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1),
      n: xs.length,
    };
  };
  const single = {
    upstream: stats(samples.upstream),
    agentwall: stats(samples.agentwall),
    portkey: stats(samples.portkey),
  };
  // An agent's next turn, its history resent (agentwall keeps the history's input verdicts per caller).
  await load("agentwall", CONNECTIONS, 2, "conversation");
  const cpuConversation = cpuMs(gateway.pid ?? 0);
  const conversation = {
    agentwall: await load("agentwall", CONNECTIONS, SECONDS, "conversation"),
    cpuMs: cpuMs(gateway.pid ?? 0) - cpuConversation,
    portkey: await load("portkey", CONNECTIONS, SECONDS, "conversation"),
  };

  console.log(`gateway, ${CONNECTIONS} connections, ${SECONDS} s each, 1 KB prompt, node ${process.version}`);
  const row = (name: string, r: { rps: number; p50: number; p99: number; ok: number; errors: number }) =>
    console.log(
      `${name.padEnd(34)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${String(r.p50).padStart(4)} ms   p99 ${String(r.p99).padStart(4)} ms   ${r.ok} ok, ${r.errors} errors`,
    );
  row("fake upstream directly", results.upstream);
  row("agentwall, full pipeline", results.agentwall);
  row("portkey gateway (no checks)", portkey);
  console.log(
    `agentwall CPU per request: ${((cpuAfter - cpuBefore) / Math.max(results.agentwall.ok, 1)).toFixed(3)} ms ` +
      `(${((cpuAfter - cpuBefore) / 1000).toFixed(1)} s CPU for ${results.agentwall.ok} requests)`,
  );
  console.log(
    `ratios: agentwall / portkey ${(results.agentwall.rps / portkey.rps).toFixed(2)} (aim >= 5), ` +
      `agentwall / upstream ${(results.agentwall.rps / results.upstream.rps).toFixed(2)}`,
  );
  console.log(
    `next turn of a conversation (7 messages of history, 3.4 KB, then the prompt): agentwall ` +
      `${conversation.agentwall.rps.toFixed(0)} req/s (${conversation.agentwall.errors} errors, ` +
      `${(conversation.cpuMs / Math.max(conversation.agentwall.ok, 1)).toFixed(3)} ms CPU per request), portkey ` +
      `${conversation.portkey.rps.toFixed(0)} req/s (${conversation.portkey.errors} errors); ratio ` +
      `${(conversation.agentwall.rps / conversation.portkey.rps).toFixed(2)}`,
  );
  const added = (name: "agentwall" | "portkey", k: "p50" | "mean") => (single[name][k] - single.upstream[k]).toFixed(3);
  console.log(
    `added latency at 1 connection (one request at a time, ${single.agentwall.n}/${single.portkey.n}/${single.upstream.n} ` +
      `requests, ${singleErrors} errors; upstream directly p50 ${single.upstream.p50.toFixed(3)} ms): ` +
      `p50 agentwall +${added("agentwall", "p50")} ms (aim < 1), portkey +${added("portkey", "p50")} ms; ` +
      `mean agentwall +${added("agentwall", "mean")} ms, portkey +${added("portkey", "mean")} ms`,
  );
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await aw.stop();
  rmSync(dir, { recursive: true, force: true });
}
