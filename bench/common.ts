// Helpers shared by the benchmark scripts.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The PostgreSQL server benchmarks create their throwaway databases on. */
export const PG_URL =
  process.env.AGENTWALL_TEST_DATABASE_URL ?? `postgres://${userInfo().username}@127.0.0.1:5432/test`;

/** The Redis server benchmarks use. */
export const REDIS_URL = process.env.AGENTWALL_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A new empty database on the benchmark server, and how to drop it. */
export async function freshPostgres(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `aw_bench_${randomBytes(4).toString("hex")}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(PG_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

/** A number with thousands separators. */
export function fmt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Operations per second of `n` sequential awaited calls of `op(i)`. */
export async function perSecond(n: number, op: (i: number) => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await op(i);
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `url` answers (any status); throws after 30 s. */
export async function waitFor(url: string, init: RequestInit = {}): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      const r = await fetch(url, init);
      await r.arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`${url} did not come up`);
}

/** What {@link benchGateway} started: the fake upstream and a gateway on SQLite, each its own process. */
export interface BenchGateway {
  /** The fake upstream's base URL (`…/v1`). */
  readonly upstream: string;
  /** The gateway's base URL. */
  readonly base: string;
  /** The gateway process (for its pid, CPU time, signals). */
  readonly gateway: ChildProcess;
  /** The keys created before the start, by subject. */
  readonly keys: Readonly<Record<string, string>>;
  /** The environment the gateway and the CLI ran with. */
  readonly env: Readonly<Record<string, string>>;
  /** Every process this started (the gateway last). */
  readonly procs: readonly ChildProcess[];
  /** Stops every process (SIGTERM, then SIGKILL after `graceMs`) and removes the directory. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts what the gateway benchmarks measure: a fake OpenAI-compatible upstream that answers every
 * chat completion at once with `answer` (prompt and completion token counts as given), and
 * `agentwall serve` from `dist/` on a fresh SQLite home with `config`, after creating one API key per
 * `[subject, role]`. `nodeOptions` go before the gateway's script (a CPU profile, say). Every check is
 * on, but the per-IP limit and the per-key token budget are set out of reach, so a load measures the
 * checks and is never refused by them; `config` adds to this or overrides it.
 */
export async function benchGateway(options: {
  name: string;
  answer: string;
  usage: { prompt: number; completion: number };
  config: Record<string, unknown>;
  keys: readonly (readonly [subject: string, role: string])[];
  nodeOptions?: readonly string[];
}): Promise<BenchGateway> {
  const main = join(import.meta.dirname, "..", "dist/cli/main.js");
  const dir = mkdtempSync(join(tmpdir(), `agentwall-${options.name}-`));
  const procs: ChildProcess[] = [];
  const start = (args: string[], env: Record<string, string> = {}) => {
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "ignore", "inherit"],
    });
    procs.push(child);
    return child;
  };
  const stop = async (graceMs = 3000) => {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, graceMs));
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const upPort = await freePort();
    const answer = JSON.stringify({
      id: "chatcmpl-b",
      object: "chat.completion",
      created: 1,
      model: "gpt-4o-mini",
      choices: [{ index: 0, message: { role: "assistant", content: options.answer }, finish_reason: "stop" }],
      usage: {
        prompt_tokens: options.usage.prompt,
        completion_tokens: options.usage.completion,
        total_tokens: options.usage.prompt + options.usage.completion,
      },
    });
    start([
      "-e",
      `const answer = ${JSON.stringify(answer)};
       require("node:http").createServer((req, res) => { req.resume(); req.on("end", () => {
         res.writeHead(200, { "content-type": "application/json" }); res.end(answer); }); })
         .listen(${upPort}, "127.0.0.1");`,
    ]);
    const upstream = `http://127.0.0.1:${upPort}/v1`;
    await waitFor(`${upstream}/models`);

    const port = await freePort();
    const env = {
      PATH: process.env.PATH ?? "",
      AGENTWALL_HOME: join(dir, "home"),
      AGENTWALL_PORT: String(port),
      AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url"),
      AGENTWALL_UPSTREAM_URL: upstream,
      AGENTWALL_UPSTREAM_KEY: "sk-bench-upstream-0000000000000000",
      AGENTWALL_CONFIG: join(dir, "agentwall.json"),
    };
    const config = {
      rateLimits: { perIp: { limit: 1_000_000, periodMs: 1000, burst: 1_000_000 } },
      budgets: [{ name: options.name, per: "key", period: "day", tokens: 1_000_000_000_000 }],
      ...options.config,
    };
    writeFileSync(env.AGENTWALL_CONFIG, JSON.stringify(config));
    const keys: Record<string, string> = {};
    for (const [subject, role] of options.keys) {
      const made = spawnSync(
        process.execPath,
        [main, "keys", "create", "--subject", subject, "--role", role, "--json"],
        {
          env,
          encoding: "utf8",
        },
      );
      if (made.status !== 0) throw new Error(`keys create failed: ${made.stderr}`);
      keys[subject] = (JSON.parse(made.stdout) as { key: string }).key;
    }
    const gateway = start([...(options.nodeOptions ?? []), main, "serve"], env);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${base}/healthz`);
    return { upstream, base, gateway, keys, env, procs, stop };
  } catch (error) {
    await stop(0);
    throw error;
  }
}
