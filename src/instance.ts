import { join } from "node:path";
import { AgentwallError } from "./errors.js";
import { AuditLog } from "./audit/log.js";
import { FileWitness, StreamWitness, type CheckpointWitness } from "./audit/checkpoint.js";
import { ensureHome } from "./config/load.js";
import type { AgentwallConfig, AgentwallSecrets } from "./config/schema.js";
import { Keyring } from "./crypto/keyring.js";
import { resolveMasterKeys, type MasterKeyOrigin } from "./crypto/master-key-source.js";
import { openStore, parseDatabaseUrl, type Store } from "./store/database.js";
import { ApiKeys } from "./identity/api-keys.js";
import { Sessions } from "./identity/sessions.js";
import { OidcVerifier } from "./identity/oidc.js";
import { Rbac } from "./access/rbac.js";
import { ToolPolicy } from "./access/tool-policy.js";
import { Vault } from "./identity/vault.js";
import { RecordStore } from "./store/records.js";
import { VerdictCache } from "./guard/cache.js";
import { DEFAULT_GUARD_POLICY, Guard, type DirectionPolicy, type GuardPolicy } from "./guard/pipeline.js";
import type { TextSource } from "./guard/injection.js";
import { MemoryRateLimiter, type RateLimiter } from "./monitor/ratelimit/limiter.js";
import { RedisRateLimiter } from "./monitor/ratelimit/redis.js";
import { RedisRevocationBus } from "./identity/revocation.js";
import { upstreamsFromConfig, type ProxyUpstream } from "./gateway/proxy.js";
import { Budgets } from "./monitor/budget.js";
import { Metrics } from "./monitor/metrics.js";
import { AnomalyDetector } from "./monitor/anomaly.js";
import { EgressClient } from "./egress/client.js";
import { AuditShipper, FileShipSink, HttpShipSink, StreamShipSink, type AuditShipSink } from "./audit/ship.js";

/** One running agentwall: its store, key hierarchy, audit log and identity services, wired together. */
export interface Instance {
  readonly config: AgentwallConfig;
  readonly store: Store;
  readonly keyring: Keyring;
  readonly audit: AuditLog;
  readonly apiKeys: ApiKeys;
  readonly sessions: Sessions;
  readonly oidc: OidcVerifier;
  readonly rbac: Rbac;
  /** Memory on one machine; Redis (with a bounded local fallback) when `redisUrl` is configured. */
  readonly rateLimiter: RateLimiter;
  readonly tools: ToolPolicy;
  readonly vault: Vault;
  /** The encrypted per-owner record store. */
  readonly records: RecordStore;
  /** The content guards with the default policy. */
  readonly guard: Guard;
  /** Anomaly detection: per-subject baselines and the alerts they raise. */
  readonly anomaly: AnomalyDetector;
  /** Prometheus metrics of this instance (`GET /metrics`). */
  readonly metrics: Metrics;
  /** Ships the audit trail to the configured sinks (`audit.ship`); the gateway starts it. */
  readonly shipper: AuditShipper | undefined;
  /** Token and spend budgets of the proxy (exact across instances: counted in the database). */
  readonly budgets: Budgets;
  /** The proxy's LLM upstreams (the environment's key, if any, held in memory only). */
  readonly upstreams: readonly ProxyUpstream[];
  readonly masterKeyOrigin: MasterKeyOrigin;
  readonly masterKeyPath: string | undefined;
  /**
   * Takes on a new configuration's reloadable parts (SIGHUP): guard and tool policies, upstreams,
   * budgets and pricing, `maxTokensCap`, the per-IP limit, `alerts.suspendAt`, `logLevel`. Everything is
   * built and checked before anything changes, so an invalid configuration leaves the running one whole
   * (and throws `ERR_CONFIG_INVALID`). A request already at its upstream finishes on the connection it
   * started with; every check made after the reload uses the new policies. The
   * other fields need a restart: they are kept as they were and named in the report. Audited.
   */
  reload(next: AgentwallConfig): Promise<ReloadReport>;
  /** Commits queued audit events and closes the database; `checkpoint` also signs a last checkpoint. */
  close(options?: { checkpoint?: boolean }): Promise<void>;
}

/** What {@link Instance.reload} did: top-level fields it changed, and changed fields it could not apply. */
export interface ReloadReport {
  readonly applied: readonly string[];
  readonly restartRequired: readonly string[];
}

/**
 * The parts of the configuration a running instance can swap. Paths are top-level fields, or
 * `field.sub` where only part of a field is read per request.
 */
const RELOADABLE = [
  "guard",
  "tools",
  "upstream",
  "upstreams",
  "budgets",
  "pricing",
  "maxTokensCap",
  "rateLimits.perIp",
  "alerts.suspendAt",
  "logLevel",
] as const;

/** `next`'s reloadable parts over a copy of `current`; the rest of `current` stays as it is. */
function reloadable(current: AgentwallConfig, next: AgentwallConfig): AgentwallConfig {
  const merged = structuredClone(current) as unknown as Record<string, Record<string, unknown> | undefined>;
  const from = next as unknown as Record<string, Record<string, unknown> | undefined>;
  for (const path of RELOADABLE) {
    const [field, sub] = path.split(".") as [string, string | undefined];
    if (sub === undefined) {
      if (from[field] === undefined) delete merged[field];
      else merged[field] = structuredClone(from[field]);
      continue;
    }
    const target = { ...merged[field] };
    const value = from[field]?.[sub];
    if (value === undefined) delete target[sub];
    else target[sub] = structuredClone(value);
    merged[field] = target;
  }
  return merged as unknown as AgentwallConfig;
}

/** Top-level fields whose value differs between two configurations. */
function changedFields(a: AgentwallConfig, b: AgentwallConfig): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const ra = a as unknown as Record<string, unknown>;
  const rb = b as unknown as Record<string, unknown>;
  return [...keys].filter((k) => JSON.stringify(ra[k]) !== JSON.stringify(rb[k])).sort();
}

/** The guard with the configured policy merged over the defaults. */
export function guardFromConfig(config: AgentwallConfig): Guard {
  const g = config.guard;
  // A new guard on every reload, with a new cache: no verdict outlives the policy it was made under.
  const cache = g?.cache === false ? undefined : new VerdictCache(g?.cache ?? {});
  // Long texts are scanned off the event loop (one thread unless configured).
  const threads = g?.threads ?? {};
  if (g === undefined) return new Guard({}, { cache, threads });
  const bySource: GuardPolicy["bySource"] = { ...DEFAULT_GUARD_POLICY.bySource };
  for (const [source, policy] of Object.entries(g.bySource ?? {}) as [TextSource, Partial<DirectionPolicy>][]) {
    bySource[source] = { ...bySource[source], ...policy };
  }
  return new Guard(
    {
      input: { ...DEFAULT_GUARD_POLICY.input, ...g.input },
      output: { ...DEFAULT_GUARD_POLICY.output, ...g.output },
      bySource,
      ...(g.allowedHosts === undefined ? {} : { allowedHosts: g.allowedHosts }),
      ...(g.onScannerError === undefined ? {} : { onScannerError: g.onScannerError }),
      ...(g.codeIsText === undefined ? {} : { codeIsText: g.codeIsText }),
    },
    { cache, threads },
  );
}

/**
 * The shipping sinks of `audit.ship`. The HTTP sink goes through an egress client of its own (its
 * origin an operator destination) that is not audited, and its credential is released from the vault
 * once and again only after a 401/403 — auditing each shipment would itself make events to ship.
 */
function shipSinks(config: AgentwallConfig, vault: Vault): AuditShipSink[] {
  return (config.audit.ship ?? []).map((s) => {
    if (s.kind === "file") return new FileShipSink(s.path);
    if (s.kind === "stdout") return new StreamShipSink(process.stdout);
    const url = new URL(s.url);
    if (url.username !== "" || url.password !== "")
      throw new AgentwallError("ERR_CONFIG_INVALID", "config field /audit/ship: a sink URL carries credentials");
    const client = new EgressClient({
      operatorDestinations: [{ name: "audit-ship", origin: url.origin }],
      actor: "audit-ship",
      totalTimeoutMs: 30_000,
    });
    let token: string | undefined;
    return new HttpShipSink(
      `http:${url.origin}${url.pathname}`,
      async (body) => {
        if (s.credential !== undefined && token === undefined) {
          const r = await vault.releaseFor(s.credential, url.hostname, "audit-ship");
          if (!r.allowed) throw new AgentwallError(r.code, r.reason);
          token = r.value;
        }
        const res = await client.fetchOperator("audit-ship", url.pathname + url.search, {
          method: "POST",
          headers: {
            "content-type": "application/x-ndjson",
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          },
          body,
        });
        if (res.status === 401 || res.status === 403) token = undefined;
        return res.status;
      },
      () => client.close(),
    );
  });
}

/** The SQLite file used when no `databaseUrl` is configured. */
export function sqlitePath(config: AgentwallConfig): string {
  return join(config.home, "agentwall.db");
}

/**
 * Opens an instance: data directory, database (migrated), master keys (checked against the database),
 * audit log. Throws AgentwallError with `ERR_MASTER_KEY_*`, `ERR_DATABASE_*` or `ERR_CONFIG_*`.
 *
 * @example
 * ```ts
 * const { config, secrets } = loadConfig();
 * const instance = await openInstance(config, secrets);
 * ```
 */
export async function openInstance(
  config: AgentwallConfig,
  secrets: AgentwallSecrets,
  options: { extraWitnesses?: readonly CheckpointWitness[]; now?: () => number } = {},
): Promise<Instance> {
  ensureHome(config.home);
  if (config.oidc.issuers.some((i) => i.issuer === config.sessions.issuer)) {
    throw new AgentwallError("ERR_CONFIG_INVALID", "config field /oidc/issuers: an issuer equals sessions.issuer");
  }
  const oidc = new OidcVerifier(config.oidc.issuers, options.now === undefined ? {} : { now: options.now });
  if (config.databaseUrl !== undefined && secrets.masterKey === undefined && config.masterKeyFile === undefined) {
    // Checked before connecting: several instances must share one key given from outside.
    throw new AgentwallError(
      "ERR_MASTER_KEY_MISSING",
      "with PostgreSQL the master key must be given (AGENTWALL_MASTER_KEY or AGENTWALL_MASTER_KEY_FILE), the same on every instance",
    );
  }
  const store = await openStore(
    config.databaseUrl !== undefined
      ? parseDatabaseUrl(config.databaseUrl)
      : { kind: "sqlite", path: sqlitePath(config) },
  );
  try {
    const keys = await resolveMasterKeys({ store, home: config.home, ...secrets, ...pickFiles(config) });
    const keyring = await Keyring.open(store, { current: keys.current, previous: keys.previous }, { now: options.now });
    const witnesses: CheckpointWitness[] = [...(options.extraWitnesses ?? [])];
    if (config.audit.witnessFile !== undefined) witnesses.push(new FileWitness(config.audit.witnessFile));
    if (config.audit.witnessStdout) witnesses.push(new StreamWitness(process.stdout));
    const audit = new AuditLog({ store, keyring, witnesses, maxBatch: config.audit.maxBatch, now: options.now });
    const rbac = new Rbac({ store, audit, now: options.now });
    const redisLimiter =
      config.redisUrl === undefined
        ? undefined
        : new RedisRateLimiter({
            url: config.redisUrl,
            expectedInstances: config.rateLimits.expectedInstances,
            onAlert: (e) => {
              // Degraded: an alert (stored, listed, sent to the webhook, audited). Recovered: audited.
              const done =
                e.state === "degraded"
                  ? anomaly.dependencyDegraded("redis", e.reason)
                  : audit.append({
                      type: "security_alert",
                      actor: "system",
                      action: "ratelimit.redis.recovered",
                      outcome: "success",
                      details: { reason: e.reason, severity: "info" },
                    });
              done.catch(() => undefined);
            },
          });
    const rateLimiter: RateLimiter =
      redisLimiter ?? new MemoryRateLimiter(options.now === undefined ? {} : { now: options.now });
    const revocations = config.redisUrl === undefined ? undefined : new RedisRevocationBus({ url: config.redisUrl });
    const apiKeys = new ApiKeys({
      store,
      keyring,
      audit,
      rateLimiter,
      now: options.now,
      cacheMs: config.apiKeys.cacheMs,
      ...(revocations === undefined ? {} : { revocations }),
    });
    const tools = new ToolPolicy(config.tools, { rateLimiter });
    const sessions = new Sessions({
      store,
      keyring,
      audit,
      issuer: config.sessions.issuer,
      audience: config.sessions.issuer,
      ttlMs: config.sessions.ttlMs,
      ...(secrets.sessionSecret === undefined ? {} : { hs256Secret: Buffer.from(secrets.sessionSecret, "utf8") }),
      now: options.now,
      cacheMs: config.apiKeys.cacheMs,
      ...(revocations === undefined ? {} : { revocations }),
    });
    const vault = new Vault({ store, keyring, audit, now: options.now });
    const webhook =
      config.alerts.webhookUrl === undefined
        ? undefined
        : (() => {
            const url = new URL(config.alerts.webhookUrl);
            return {
              path: url.pathname + url.search,
              client: new EgressClient({
                operatorDestinations: [{ name: "alerts-webhook", origin: url.origin }],
                audit,
                actor: "monitor",
                totalTimeoutMs: 10_000,
              }),
            };
          })();
    const severities = ["medium", "high", "critical"];
    const anomaly = new AnomalyDetector({
      store,
      audit,
      now: options.now,
      onAlert: async (alert) => {
        const credential = alert.details.credential;
        const at = live.config.alerts.suspendAt;
        if (
          at !== undefined &&
          severities.indexOf(alert.severity) >= severities.indexOf(at) &&
          typeof credential === "string" &&
          credential.startsWith("key:")
        )
          await apiKeys.suspend(credential.slice(4), `monitor:alert:${alert.id}`, `${alert.severity} ${alert.kind}`);
        if (webhook !== undefined)
          await webhook.client.fetchOperator("alerts-webhook", webhook.path, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ alert }),
          });
      },
    });
    const sinks = shipSinks(config, vault);
    const shipper = sinks.length === 0 ? undefined : new AuditShipper({ audit, store, sinks });
    const metrics = new Metrics();
    if (shipper !== undefined) {
      metrics.auditShipLag(() => shipper.lag());
      audit.limitPruning(() => shipper.shippedThrough());
    }
    const budgets = new Budgets({ store, rules: config.budgets, pricing: config.pricing, now: options.now });
    metrics.guardCache(() => live.guard.cache?.stats());
    metrics.guardThreads(() => live.guard.threadStats());
    let live = {
      config,
      guard: guardFromConfig(config),
      tools,
      upstreams: upstreamsFromConfig(config, secrets) as readonly ProxyUpstream[],
    };
    let closed = false;
    return {
      get config() {
        return live.config;
      },
      get guard() {
        return live.guard;
      },
      get tools() {
        return live.tools;
      },
      get upstreams() {
        return live.upstreams;
      },
      store,
      keyring,
      audit,
      apiKeys,
      sessions,
      oidc,
      rbac,
      rateLimiter,
      vault,
      anomaly,
      records: new RecordStore({ store, keyring, audit, now: options.now }),
      metrics,
      budgets,
      shipper,
      masterKeyOrigin: keys.origin,
      masterKeyPath: keys.path,
      async reload(next) {
        const effective = reloadable(live.config, next);
        const applied = changedFields(live.config, effective);
        const restartRequired = changedFields(effective, next);
        const report = async (outcome: "success" | "error", reason?: string) =>
          audit.append({
            type: "config_change",
            actor: "system",
            action: "config.reload",
            outcome,
            details: { applied, restartRequired, ...(reason === undefined ? {} : { reason }) },
          });
        let built;
        try {
          // Everything new is built (and so checked) before anything is swapped.
          built = {
            config: effective,
            guard: guardFromConfig(effective),
            tools: new ToolPolicy(effective.tools, { rateLimiter }),
            upstreams: upstreamsFromConfig(effective, secrets),
          };
          budgets.configure(effective.budgets, effective.pricing);
        } catch (error) {
          await report("error", error instanceof AgentwallError ? error.code : "ERR_CONFIG_INVALID");
          throw error instanceof AgentwallError
            ? error
            : new AgentwallError("ERR_CONFIG_INVALID", "the new configuration could not be applied");
        }
        const replaced = live.guard;
        live = built;
        // The old guard's threads end once the scans in flight on them are done.
        void replaced.close().catch(() => undefined);
        await report("success");
        return { applied, restartRequired };
      },
      async close(closeOptions = {}) {
        if (closed) return;
        closed = true;
        await anomaly.flush().catch(() => undefined);
        await live.guard.close().catch(() => undefined);
        await shipper?.stop();
        await webhook?.client.close();
        await redisLimiter?.close();
        await revocations?.close();
        try {
          // Only the gateway signs on the way out; a CLI command (verify above all) never does.
          await audit.close({ checkpoint: closeOptions.checkpoint === true });
        } finally {
          await store.close();
        }
      },
    };
  } catch (error) {
    await store.close().catch(() => undefined);
    throw error;
  }
}

function pickFiles(config: AgentwallConfig): { masterKeyFile?: string; masterKeyPreviousFile?: string } {
  const out: { masterKeyFile?: string; masterKeyPreviousFile?: string } = {};
  if (config.masterKeyFile !== undefined) out.masterKeyFile = config.masterKeyFile;
  if (config.masterKeyPreviousFile !== undefined) out.masterKeyPreviousFile = config.masterKeyPreviousFile;
  return out;
}
