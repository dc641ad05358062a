import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]);

/**
 * Prometheus metrics of one instance, on a registry of its own (several instances in one process —
 * tests — never mix). Every label has a bounded set of values: routes are the declared route patterns
 * (or `(unmatched)`), methods a fixed list, upstreams the configured names.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #requests: Counter<"method" | "route" | "status">;
  readonly #duration: Histogram<"route">;
  readonly #llm: Counter<"upstream" | "outcome">;
  readonly #tokens: Counter<"upstream" | "kind">;
  readonly #guardBlocks: Counter<"direction">;
  readonly #budgetRefusals: Counter;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.#requests = new Counter({
      name: "agentwall_http_requests_total",
      help: "HTTP requests answered, by method, route pattern and status",
      labelNames: ["method", "route", "status"],
      registers,
    });
    this.#duration = new Histogram({
      name: "agentwall_http_request_duration_seconds",
      help: "Time to answer, by route pattern",
      labelNames: ["route"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#llm = new Counter({
      name: "agentwall_llm_requests_total",
      help: "Proxied model calls, by upstream and outcome",
      labelNames: ["upstream", "outcome"],
      registers,
    });
    this.#tokens = new Counter({
      name: "agentwall_llm_tokens_total",
      help: "Tokens reported by upstreams, by upstream and kind (prompt, completion)",
      labelNames: ["upstream", "kind"],
      registers,
    });
    this.#guardBlocks = new Counter({
      name: "agentwall_guard_blocks_total",
      help: "Texts blocked by the content guards, by direction",
      labelNames: ["direction"],
      registers,
    });
    this.#budgetRefusals = new Counter({
      name: "agentwall_budget_refusals_total",
      help: "Requests refused because a budget was used up",
      registers,
    });
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: "agentwall_" });
  }

  request(method: string, route: string | undefined, status: number, seconds: number): void {
    const m = METHODS.has(method) ? method : "OTHER";
    const r = route ?? "(unmatched)";
    this.#requests.inc({ method: m, route: r, status: String(status) });
    this.#duration.observe({ route: r }, seconds);
  }

  llm(
    upstream: string,
    outcome: "success" | "blocked" | "error",
    usage: { prompt?: number; completion?: number },
  ): void {
    this.#llm.inc({ upstream, outcome });
    if (usage.prompt !== undefined) this.#tokens.inc({ upstream, kind: "prompt" }, usage.prompt);
    if (usage.completion !== undefined) this.#tokens.inc({ upstream, kind: "completion" }, usage.completion);
  }

  guardBlock(direction: "input" | "output"): void {
    this.#guardBlocks.inc({ direction });
  }

  budgetRefusal(): void {
    this.#budgetRefusals.inc();
  }

  /**
   * Adds the kept-verdict cache's figures, read from `stats` at each scrape (the guard in force; a
   * reload starts a new cache, which Prometheus sees as a counter reset):
   * `agentwall_guard_cache_lookups_total{result="hit"|"miss"}` and `agentwall_guard_cache_entries`.
   */
  guardCache(stats: () => { entries: number; hits: number; misses: number } | undefined): void {
    new Counter({
      name: "agentwall_guard_cache_lookups_total",
      help: "Input texts looked up among the kept guard verdicts, by result (hit: not scanned again)",
      labelNames: ["result"],
      registers: [this.registry],
      collect() {
        const s = stats();
        this.reset();
        this.inc({ result: "hit" }, s?.hits ?? 0);
        this.inc({ result: "miss" }, s?.misses ?? 0);
      },
    });
    new Gauge({
      name: "agentwall_guard_cache_entries",
      help: "Guard verdicts kept for texts sent again",
      registers: [this.registry],
      collect() {
        this.set(stats()?.entries ?? 0);
      },
    });
  }

  /** Adds the guard threads' scans by outcome and their queue, read from `stats` at each scrape. */
  guardThreads(stats: () => { scanned: number; failed: number; waiting: number } | undefined): void {
    new Counter({
      name: "agentwall_guard_thread_scans_total",
      help: "Long texts scanned on the guard's worker threads, by outcome (failed: timed out or the thread died; failed closed)",
      labelNames: ["outcome"],
      registers: [this.registry],
      collect() {
        const s = stats();
        this.reset();
        this.inc({ outcome: "done" }, s?.scanned ?? 0);
        this.inc({ outcome: "failed" }, s?.failed ?? 0);
      },
    });
    new Gauge({
      name: "agentwall_guard_thread_queue",
      help: "Long texts waiting for a guard thread",
      registers: [this.registry],
      collect() {
        this.set(stats()?.waiting ?? 0);
      },
    });
  }

  /** Adds `agentwall_audit_ship_lag_events{sink}`, read from `lag` at each scrape. */
  auditShipLag(lag: () => Promise<Record<string, number>>): void {
    new Gauge({
      name: "agentwall_audit_ship_lag_events",
      help: "Audit events committed but not yet acknowledged by a shipping sink",
      labelNames: ["sink"],
      registers: [this.registry],
      async collect() {
        for (const [sink, n] of Object.entries(await lag())) this.set({ sink }, n);
      },
    });
  }
}
