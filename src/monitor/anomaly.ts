import { randomUUID } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { AuditSink } from "../audit/event.js";
import type { Store } from "../store/database.js";

export type AlertSeverity = "medium" | "high" | "critical";
export type AlertKind =
  "request_rate" | "token_spike" | "new_ip" | "error_rate" | "guard_blocks" | "auth_failures" | "dependency_degraded";

export interface Alert {
  readonly id: string;
  readonly subject: string;
  readonly kind: AlertKind;
  readonly severity: AlertSeverity;
  readonly message: string;
  readonly details: Readonly<Record<string, unknown>>;
  readonly at: number;
}

/** Welford's running mean and variance: constant memory however many samples. */
export class RunningStats {
  count = 0;
  mean = 0;
  #m2 = 0;

  constructor(state?: { count: number; mean: number; m2: number }) {
    if (state !== undefined) {
      this.count = state.count;
      this.mean = state.mean;
      this.#m2 = state.m2;
    }
  }

  add(x: number): void {
    this.count++;
    const d = x - this.mean;
    this.mean += d / this.count;
    this.#m2 += d * (x - this.mean);
  }

  get std(): number {
    return this.count < 2 ? 0 : Math.sqrt(this.#m2 / (this.count - 1));
  }

  state(): { count: number; mean: number; m2: number } {
    return { count: this.count, mean: this.mean, m2: this.#m2 };
  }
}

/** Per subject: baselines (persisted) and the current minute's counters (memory only). */
interface SubjectState {
  rate: RunningStats;
  tokens: RunningStats;
  ips: string[];
  minute: number;
  requests: number;
  errors: number;
  raisedThisMinute: Set<AlertKind>;
  blocks: number[];
  dirty: boolean;
}

export interface AnomalyOptions {
  readonly store: Store;
  readonly audit: AuditSink;
  readonly now?: () => number;
  /** Called for every alert after it is stored (a webhook, a key suspension). */
  readonly onAlert?: (alert: Alert) => Promise<void>;
  /** Most subjects tracked at once (least recently seen dropped from memory; their baselines stay stored). */
  readonly maxSubjects?: number;
}

const MIN_BASELINE_MINUTES = 10;
const MIN_TOKEN_SAMPLES = 20;
const KNOWN_IPS = 50;
const BLOCK_WINDOW_MS = 10 * 60_000;

/**
 * Anomaly detection over what the gateway sees, with bounded memory: per subject a Welford baseline of
 * requests per minute and of tokens per request (persisted, so a restart keeps them), its recent
 * addresses (at most 50) and the current minute's counters; per client address the minute's
 * authentication failures. Rules: request rate above mean + 3σ, tokens above 5× the mean, a new address
 * once a subject has more than 5, error rate above 50 %, 5 guard blocks in 10 minutes, 20 failed
 * authentications from one address in a minute. An alert is raised at most once per kind, subject and
 * minute; alerts are stored, audited (`security_alert`) and handed to `onAlert`.
 */
export class AnomalyDetector {
  readonly #store: Store;
  readonly #audit: AuditSink;
  readonly #now: () => number;
  readonly #onAlert: ((alert: Alert) => Promise<void>) | undefined;
  /**
   * Per authenticated subject, most recently seen kept: lru-cache, O(1) per request. A Map re-inserted on
   * every request (its order the eviction order) left a hole each time that an eviction walked past.
   * An evicted subject's changed baseline is written before its slot is reused ({@link #evicted}).
   */
  readonly #subjects: LRUCache<string, SubjectState>;
  readonly #evicted: Array<[string, SubjectState]> = [];
  readonly #loading = new Map<string, Promise<SubjectState>>();
  /**
   * Per client address (unauthenticated, so an attacker picks as many as it likes): lru-cache, O(1) per
   * failure. A Map kept in recency order left a hole per update that every eviction walked past.
   */
  readonly #authFailures: LRUCache<string, { minute: number; count: number; raised: boolean }>;

  constructor(options: AnomalyOptions) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
    this.#onAlert = options.onAlert;
    const max = options.maxSubjects ?? 100_000;
    this.#authFailures = new LRUCache({ max });
    this.#subjects = new LRUCache({
      max,
      dispose: (state, subject, reason) => {
        if (reason === "evict" && state.dirty) this.#evicted.push([subject, state]);
      },
    });
  }

  async #state(subject: string): Promise<SubjectState> {
    const held = this.#subjects.get(subject);
    if (held !== undefined) return held;
    let loading = this.#loading.get(subject);
    if (loading === undefined) {
      loading = this.#load(subject);
      this.#loading.set(subject, loading);
    }
    try {
      return await loading;
    } finally {
      this.#loading.delete(subject);
    }
  }

  async #load(subject: string): Promise<SubjectState> {
    const row = await this.#store.db
      .selectFrom("anomaly_baselines")
      .selectAll()
      .where("subject", "=", subject)
      .executeTakeFirst();
    const parsed =
      row === undefined
        ? undefined
        : (JSON.parse(row.state) as {
            rate: { count: number; mean: number; m2: number };
            tokens: { count: number; mean: number; m2: number };
            ips: string[];
          });
    const state: SubjectState = {
      rate: new RunningStats(parsed?.rate),
      tokens: new RunningStats(parsed?.tokens),
      ips: parsed?.ips ?? [],
      minute: Math.floor(this.#now() / 60_000),
      requests: 0,
      errors: 0,
      raisedThisMinute: new Set(),
      blocks: [],
      dirty: false,
    };
    const again = this.#subjects.get(subject);
    if (again !== undefined) return again;
    this.#subjects.set(subject, state);
    for (let e = this.#evicted.shift(); e !== undefined; e = this.#evicted.shift()) await this.#persist(e[0], e[1]);
    return state;
  }

  /** Closes finished minutes into the rate baseline (empty minutes in between count as zero, up to an hour). */
  #roll(s: SubjectState, minute: number): boolean {
    if (minute === s.minute) return false;
    const gap = Math.min(minute - s.minute, 60);
    s.rate.add(s.requests);
    for (let i = 1; i < gap; i++) s.rate.add(0);
    s.minute = minute;
    s.requests = 0;
    s.errors = 0;
    s.raisedThisMinute.clear();
    s.dirty = true;
    return true;
  }

  /** One answered request of an authenticated subject. */
  async observeRequest(event: { subject: string; ip: string; status: number; credentialId?: string }): Promise<void> {
    const now = this.#now();
    const s = await this.#state(event.subject);
    if (this.#roll(s, Math.floor(now / 60_000))) await this.#persist(event.subject, s);
    s.requests++;
    if (event.status >= 500 || event.status === 401 || event.status === 403 || event.status === 429) s.errors++;
    const alerts: Array<Omit<Alert, "id" | "at" | "subject">> = [];
    if (s.rate.count >= MIN_BASELINE_MINUTES) {
      const limit = s.rate.mean + 3 * Math.max(s.rate.std, 1);
      if (s.requests > limit && s.requests >= 10)
        alerts.push({
          kind: "request_rate",
          severity: s.requests > 2 * limit ? "high" : "medium",
          message: `${s.requests} requests this minute; baseline ${s.rate.mean.toFixed(1)} ± ${s.rate.std.toFixed(1)}`,
          details: { requests: s.requests, mean: s.rate.mean, std: s.rate.std },
        });
    }
    if (s.requests >= 10 && s.errors / s.requests > 0.5)
      alerts.push({
        kind: "error_rate",
        severity: "medium",
        message: `${s.errors} of ${s.requests} requests failed this minute`,
        details: { errors: s.errors, requests: s.requests },
      });
    if (!s.ips.includes(event.ip)) {
      if (s.ips.length > 5)
        alerts.push({
          kind: "new_ip",
          severity: "medium",
          message: `a new address after ${s.ips.length} known ones`,
          details: { ip: event.ip, known: s.ips.length },
        });
      s.ips.push(event.ip);
      if (s.ips.length > KNOWN_IPS) s.ips.shift();
      s.dirty = true;
      await this.#persist(event.subject, s);
    }
    for (const a of alerts) await this.#raise(event.subject, s, a, event.credentialId);
  }

  /** Tokens one request used (from the upstream's usage). */
  async observeTokens(event: { subject: string; tokens: number; credentialId?: string }): Promise<void> {
    const s = await this.#state(event.subject);
    if (s.tokens.count >= MIN_TOKEN_SAMPLES && event.tokens > 5 * s.tokens.mean)
      await this.#raise(
        event.subject,
        s,
        {
          kind: "token_spike",
          severity: event.tokens > 20 * s.tokens.mean ? "high" : "medium",
          message: `${event.tokens} tokens in one request; mean ${s.tokens.mean.toFixed(0)}`,
          details: { tokens: event.tokens, mean: s.tokens.mean },
        },
        event.credentialId,
      );
    s.tokens.add(event.tokens);
    s.dirty = true;
  }

  /** A text of this subject was blocked by the guards. */
  async observeGuardBlock(event: { subject: string; credentialId?: string }): Promise<void> {
    const now = this.#now();
    const s = await this.#state(event.subject);
    s.blocks = s.blocks.filter((t) => now - t < BLOCK_WINDOW_MS);
    s.blocks.push(now);
    if (s.blocks.length >= 5) {
      await this.#raise(
        event.subject,
        s,
        {
          kind: "guard_blocks",
          severity: s.blocks.length >= 20 ? "critical" : "high",
          message: `${s.blocks.length} blocked texts in 10 minutes`,
          details: { blocks: s.blocks.length },
        },
        event.credentialId,
      );
    }
    if (s.blocks.length > 100) s.blocks.splice(0, s.blocks.length - 100);
  }

  /** A failed authentication (401) or refused permission (403) from an address. */
  async observeAuthFailure(ip: string): Promise<void> {
    const minute = Math.floor(this.#now() / 60_000);
    let f = this.#authFailures.get(ip);
    if (f === undefined || f.minute !== minute) {
      f = { minute, count: 0, raised: false };
      this.#authFailures.set(ip, f);
    }
    f.count++;
    if (f.count >= 20 && !f.raised) {
      f.raised = true;
      await this.#store_alert({
        id: randomUUID(),
        subject: `ip:${ip}`,
        kind: "auth_failures",
        severity: "high",
        message: `${f.count} failed authentications or refusals from one address in a minute`,
        details: { ip, count: f.count },
        at: this.#now(),
      });
    }
  }

  /**
   * A shared service this instance depends on stopped answering and it runs degraded (Redis: rate
   * limits from the local share). Stored and sent like every alert; subject `system:<dependency>`.
   */
  async dependencyDegraded(dependency: string, reason: string): Promise<void> {
    await this.#store_alert({
      id: randomUUID(),
      subject: `system:${dependency}`,
      kind: "dependency_degraded",
      severity: "high",
      message: `${dependency} is unreachable; this instance runs degraded`,
      details: { dependency, reason },
      at: this.#now(),
    });
  }

  async #raise(
    subject: string,
    s: SubjectState,
    a: Omit<Alert, "id" | "at" | "subject">,
    credentialId: string | undefined,
  ): Promise<void> {
    if (s.raisedThisMinute.has(a.kind)) return;
    s.raisedThisMinute.add(a.kind);
    await this.#store_alert({
      ...a,
      id: randomUUID(),
      subject,
      at: this.#now(),
      details: credentialId === undefined ? a.details : { ...a.details, credential: credentialId },
    });
  }

  async #store_alert(alert: Alert): Promise<void> {
    await this.#store.db
      .insertInto("alerts")
      .values({
        id: alert.id,
        subject: alert.subject,
        kind: alert.kind,
        severity: alert.severity,
        message: alert.message,
        details: JSON.stringify(alert.details),
        created_at: alert.at,
      })
      .execute();
    await this.#audit.append({
      type: "security_alert",
      actor: "monitor",
      action: `alert.${alert.kind}`,
      resource: alert.subject,
      outcome: "success",
      details: { severity: alert.severity, message: alert.message, id: alert.id },
    });
    await this.#onAlert?.(alert).catch(() => undefined);
  }

  async #persist(subject: string, s: SubjectState): Promise<void> {
    const state = JSON.stringify({ rate: s.rate.state(), tokens: s.tokens.state(), ips: s.ips });
    const now = this.#now();
    await this.#store.db
      .insertInto("anomaly_baselines")
      .values({ subject, state, updated_at: now })
      .onConflict((oc) => oc.column("subject").doUpdateSet({ state, updated_at: now }))
      .execute();
    s.dirty = false;
  }

  /** Subjects held in memory now (bounded by `maxSubjects`). */
  get trackedSubjects(): number {
    return this.#subjects.size;
  }

  /** Writes every changed baseline (on shutdown, and periodically). */
  async flush(): Promise<void> {
    for (const [subject, s] of [...this.#evicted.splice(0), ...this.#subjects.entries()])
      if (s.dirty) await this.#persist(subject, s);
  }

  /** Stored alerts, newest first. */
  async list(options: { limit?: number; subject?: string; since?: number } = {}): Promise<Alert[]> {
    let q = this.#store.db
      .selectFrom("alerts")
      .selectAll()
      .orderBy("created_at", "desc")
      .limit(Math.min(Math.max(options.limit ?? 100, 1), 1000));
    if (options.subject !== undefined) q = q.where("subject", "=", options.subject);
    if (options.since !== undefined) q = q.where("created_at", ">=", options.since);
    return (await q.execute()).map((r) => ({
      id: r.id,
      subject: r.subject,
      kind: r.kind as AlertKind,
      severity: r.severity as AlertSeverity,
      message: r.message,
      details: JSON.parse(r.details) as Record<string, unknown>,
      at: Number(r.created_at),
    }));
  }
}
