// Shared test setup: temporary SQLite stores, fresh PostgreSQL databases, keys. Real engines only.
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after } from "node:test";
import pg from "pg";
import { masterKeyFromBytes, type MasterKey } from "../src/crypto/master-key.js";
import { openStore, type Store } from "../src/store/database.js";

export function tempDir(prefix = "agentwall-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function randomMasterKey(): MasterKey {
  return masterKeyFromBytes(randomBytes(32));
}

export async function sqliteStore(dir: string = tempDir()): Promise<Store> {
  const store = await openStore({ kind: "sqlite", path: join(dir, "agentwall.db") });
  after(() => store.close());
  return store;
}

/** Base URL of the test PostgreSQL server. */
export const POSTGRES_URL =
  process.env.AGENTWALL_TEST_DATABASE_URL ?? `postgres://${userInfo().username}@127.0.0.1:5432/test`;

let reachable: Promise<boolean> | undefined;

/**
 * Whether PostgreSQL answers. Under CI=true an unreachable server is a failure, not a skip: the
 * promise rejects and the suite fails.
 */
export function postgresReachable(): Promise<boolean> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query("select 1");
      return true;
    } catch (error) {
      if (process.env.CI === "true")
        throw new Error(`PostgreSQL at ${POSTGRES_URL} is unreachable under CI`, { cause: error });
      process.stderr.write(`# SKIP: PostgreSQL at ${POSTGRES_URL} is unreachable; PostgreSQL suites are skipped\n`);
      return false;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return reachable;
}

/** A new empty database on the test server, dropped after the file's tests. Returns its URL. */
export async function freshPostgresDatabase(): Promise<string> {
  const name = `aw_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  after(async () => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    await c.query(`drop database if exists ${name} with (force)`);
    await c.end();
  });
  return url.toString();
}

export async function postgresStore(url: string): Promise<Store> {
  const store = await openStore({ kind: "postgres", url });
  after(() => store.close());
  return store;
}

/** A real instance on a temporary SQLite home, closed after the file's tests. */
export async function testInstance(
  overrides: Partial<import("../src/config/schema.js").AgentwallConfig> = {},
  env: Record<string, string> = {},
): Promise<import("../src/instance.js").Instance> {
  const { loadConfig } = await import("../src/config/load.js");
  const { openInstance } = await import("../src/instance.js");
  const home = tempDir();
  const { config, secrets } = loadConfig(
    { AGENTWALL_HOME: home, AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url"), ...env },
    { cwd: home },
  );
  const instance = await openInstance({ ...config, ...overrides }, secrets);
  after(() => instance.close());
  return instance;
}

/** URL of the test Redis server. */
export const REDIS_URL = process.env.AGENTWALL_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

let redisUp: Promise<boolean> | undefined;

/** Whether Redis answers; under CI=true an unreachable server fails the suite instead of skipping. */
export function redisReachable(): Promise<boolean> {
  redisUp ??= (async () => {
    const { Redis } = await import("ioredis");
    const client = new Redis(REDIS_URL, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      retryStrategy: () => null,
    });
    client.on("error", () => undefined);
    try {
      await client.connect();
      return (await client.ping()) === "PONG";
    } catch (error) {
      if (process.env.CI === "true") throw new Error(`Redis at ${REDIS_URL} is unreachable under CI`, { cause: error });
      process.stderr.write(`# SKIP: Redis at ${REDIS_URL} is unreachable; Redis suites are skipped\n`);
      return false;
    } finally {
      client.disconnect();
    }
  })();
  return redisUp;
}

/** Whether a redis-server binary is installed (for suites that start and stop one of their own). */
export const redisServerInstalled = spawnSync("redis-server", ["--version"]).status === 0;

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A redis-server of the test's own on `port` (no persistence), resolved once it accepts connections:
 * outage tests stop it, never the machine's shared server. Killed after the test at the latest.
 */
export async function privateRedis(port: number): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise((resolve) => child.on("exit", resolve));
  for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
    if (line.includes("Ready to accept connections")) break;
  }
  after(() => child.kill("SIGKILL"));
  return {
    async stop() {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** One row of redis-cell's timed GCRA table (test/fixtures/ratelimit). */
export interface GcraCase {
  n: number;
  t_ms: number;
  volume: number;
  limited: boolean;
  remaining: number;
  reset_after_ms: number;
  retry_after_ms: number;
}

/**
 * Runs redis-cell's GCRA table through a limiter built on the given clock and asserts every column
 * (limited, remaining, reset, retry) of all 15 cases. Every rate-limit backend's test uses this.
 */
export async function assertGcraTable(
  makeLimiter: (now: () => number) => import("../src/monitor/ratelimit/limiter.js").RateLimiter,
): Promise<void> {
  const corpus = gcraCorpus();
  assert.equal(corpus.cases.length, 15);
  let now = 0;
  const limiter = makeLimiter(() => now);
  for (const c of corpus.cases) {
    now = c.t_ms;
    const d = await limiter.take("k", corpus.limit, c.volume);
    assert.equal(!d.allowed, c.limited, `case ${c.n} limited`);
    assert.equal(d.remaining, c.remaining, `case ${c.n} remaining`);
    assert.equal(d.resetMs, c.reset_after_ms, `case ${c.n} reset`);
    // The table writes "not applicable" as -1 s.
    const retry = d.allowed || d.retryAfterMs === -1 ? -1000 : d.retryAfterMs;
    assert.equal(retry, c.retry_after_ms, `case ${c.n} retry`);
  }
}

/** redis-cell's GCRA table, shared by every rate-limit backend's test. */
export function gcraCorpus(): {
  limit: { limit: number; periodMs: number; burst: number };
  cases: GcraCase[];
} {
  const raw = JSON.parse(
    readFileSync(join(import.meta.dirname, "fixtures/ratelimit/redis_cell_gcra_cases.json"), "utf8"),
  ) as { quota: { max_burst: number; count_per_period: number; period_ms: number }; cases: GcraCase[] };
  return {
    limit: { limit: raw.quota.count_per_period, periodMs: raw.quota.period_ms, burst: raw.quota.max_burst },
    cases: raw.cases,
  };
}

/**
 * A store (SQLite unless given) with its key hierarchy and audit log: what every identity and access
 * service is built on in the tests.
 */
export async function auditedStore(options: { store?: Store; master?: MasterKey } = {}): Promise<{
  store: Store;
  keyring: import("../src/crypto/keyring.js").Keyring;
  audit: import("../src/audit/log.js").AuditLog;
}> {
  const { Keyring } = await import("../src/crypto/keyring.js");
  const { AuditLog } = await import("../src/audit/log.js");
  const store = options.store ?? (await sqliteStore());
  const keyring = await Keyring.open(store, { current: options.master ?? randomMasterKey() });
  return { store, keyring, audit: new AuditLog({ store, keyring }) };
}

/**
 * The gateway in-process (Fastify `inject`) in front of a local OpenAI-compatible upstream: tool
 * policies `search` (users, argument `q` required) and `wire_money` (finance only), and one key for
 * a user (`alice`) and one for a viewer (`bob`). Call at module top level (it registers `after` hooks).
 */
export async function proxyTestGateway(upstreamPort: number, upstreamKey: string) {
  const { buildServer } = await import("../src/gateway/server.js");
  const { pino } = await import("pino");
  const instance = await testInstance(
    {
      tools: [
        {
          name: "search",
          allow: { roles: ["user"] },
          argsSchema: { type: "object", properties: { q: { type: "string" } }, required: ["q"] },
        },
        { name: "wire_money", allow: { roles: ["finance"] } },
      ],
    },
    { AGENTWALL_UPSTREAM_URL: `http://127.0.0.1:${upstreamPort}/v1`, AGENTWALL_UPSTREAM_KEY: upstreamKey },
  );
  const app = await buildServer(instance, { logger: pino({ level: "silent" }) });
  after(() => app.close());
  const create = async (owner: string, role: string) =>
    (await instance.apiKeys.create({ owner, name: role, roles: [role], creator: "test" })).key;
  return { instance, app, userKey: await create("alice", "user"), viewerKey: await create("bob", "viewer") };
}

/** The built CLI (npm test builds first), run as users run it: a real process, a clean environment. */
export function runCli(
  args: readonly string[],
  options: { input?: string; env?: Record<string, string> } = {},
): { code: number | null; stdout: string; stderr: string } {
  const main = join(import.meta.dirname, "../dist/cli/main.js");
  const r = spawnSync(process.execPath, [main, ...args], {
    input: options.input ?? "",
    encoding: "utf8",
    timeout: 120_000,
    env: { PATH: process.env.PATH ?? "", ...options.env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A throwaway TLS CA and one server certificate (ECDSA P-256) for `hosts` (DNS names or IP literals),
 * made with @peculiar/x509 — what a private deployment's internal CA would hand out.
 */
export async function testTlsServer(
  hosts: readonly string[],
): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  const { webcrypto, isIP } = {
    webcrypto: (await import("node:crypto")).webcrypto,
    isIP: (await import("node:net")).isIP,
  };
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const caKeys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString("hex").replace(/^./, "1"),
    name: "CN=agentwall test CA",
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: alg,
    keys: caKeys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  const serverKeys = await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString("hex").replace(/^./, "2"),
    subject: `CN=${hosts[0] ?? "localhost"}`,
    issuer: ca.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    signingAlgorithm: alg,
    publicKey: serverKeys.publicKey,
    signingKey: caKeys.privateKey,
    extensions: [
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        hosts.map((h) => ({ type: isIP(h) ? ("ip" as const) : ("dns" as const), value: h })),
      ),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", serverKeys.privateKey)).toString("base64");
  return {
    caPem: ca.toString("pem"),
    certPem: cert.toString("pem"),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END PRIVATE KEY-----\n`,
  };
}

const MAIN = join(import.meta.dirname, "../dist/cli/main.js");

/** A gateway started by {@link startGateway}. */
export interface RunningGateway {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>` as the gateway printed it. */
  readonly url: string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<number | string | null>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  /** Resolves with the next stdout line matching `pattern` (lines already read are not searched). */
  nextLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string | null>;
}

/**
 * `agentwall serve --port 0` from the built CLI, as `npm start` runs it: a real process on a real
 * socket, with a clean environment (`PATH` and `env`; warn-level logs unless `env` says otherwise).
 * Resolves once it prints the address it listens on; rejects with its stderr if it exits first.
 */
export async function startGateway(env: Record<string, string>): Promise<RunningGateway> {
  const child = spawn(process.execPath, [MAIN, "serve", "--port", "0"], {
    env: { PATH: process.env.PATH ?? "", AGENTWALL_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | string | null>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal)),
  );
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    const i = waiting.findIndex((w) => w.pattern.test(line));
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(line);
  });
  const nextLine = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; stderr: ${stderr}`)),
        timeoutMs,
      );
      waiting.push({
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  const listening = nextLine(/^agentwall listening on \S+$/);
  const line = await Promise.race([
    listening,
    exited.then((code) => {
      throw new Error(`gateway exited (${String(code)}) before listening: ${stderr}`);
    }),
  ]);
  return {
    child,
    url: line.slice("agentwall listening on ".length),
    exited,
    stderr: () => stderr,
    stdout: () => stdout,
    nextLine,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * The built CLI as a child process without blocking this process's event loop (use it when this
 * process hosts something the command reaches: a fake upstream, a TCP proxy).
 */
export function runCliAsync(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [MAIN, ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}
