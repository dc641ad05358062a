import { sql } from "kysely";
import { AgentwallError } from "../errors.js";
import type { AgentwallConfig } from "../config/schema.js";
import type { Store } from "../store/database.js";
import { sqliteImmediate, writeTransaction } from "../store/transaction.js";
import type { Statement as SqliteStatement } from "better-sqlite3";

function exhausted(over: { rule: string; unit: "tokens" | "spend" }): AgentwallError {
  return new AgentwallError(
    "ERR_BUDGET_EXHAUSTED",
    `budget ${over.rule} (${over.unit === "tokens" ? "tokens" : "spend"}) is used up for this period`,
  );
}

/** Who spends: the credential, the subject behind it, and its roles. */
export interface BudgetPrincipal {
  readonly credentialId: string;
  readonly subject: string;
  readonly roles: readonly string[];
}

/** Tokens of one request (estimated before, counted after). */
export interface TokenCount {
  readonly prompt: number;
  readonly completion: number;
}

/** What {@link Budgets.reserve} took, to be settled with the real counts. */
export interface Reservation {
  readonly entries: readonly { readonly key: string; readonly amount: number; readonly unit: "tokens" | "spend" }[];
  readonly model: string;
  readonly estimate: TokenCount;
}

type Rule = AgentwallConfig["budgets"][number];

interface Entry {
  key: string;
  amount: number;
  unit: "tokens" | "spend";
  limit: number;
  rule: string;
  expires: number;
}

type Op = { kind: "reserve"; entries: Entry[] } | { kind: "settle"; deltas: { key: string; delta: number }[] };

function periodOf(period: Rule["period"], now: number): { start: string; end: number } {
  const d = new Date(now);
  if (period === "hour") {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours());
    return { start: new Date(start).toISOString().slice(0, 13), end: start + 3_600_000 };
  }
  if (period === "day") {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return { start: new Date(start).toISOString().slice(0, 10), end: start + 86_400_000 };
  }
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  return {
    start: new Date(start).toISOString().slice(0, 7),
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  };
}

/**
 * Token and spend budgets per API key, subject or role and period (UTC hour, day or month), held in the
 * database so every instance counts against the same numbers. Before a request is forwarded its
 * estimate (prompt from the text, completion from `max_tokens`) is reserved against every applicable
 * budget inside one write transaction — all or none, never past the limit, however many instances
 * race; after the answer the reservation is corrected to the upstream's usage. Operations are group
 * committed (see {@link Budgets.reserve}).
 */
export class Budgets {
  readonly #store: Store;
  #rules: readonly Rule[] = [];
  #pricing: AgentwallConfig["pricing"] = {};
  readonly #now: () => number;
  readonly #queue: { op: Op; resolve: () => void; reject: (e: unknown) => void }[] = [];
  #flushing = false;
  #statements:
    { insert: SqliteStatement; used: SqliteStatement; add: SqliteStatement; settle: SqliteStatement } | undefined;

  constructor(options: {
    store: Store;
    rules: readonly Rule[];
    pricing: AgentwallConfig["pricing"];
    now?: () => number;
  }) {
    this.#store = options.store;
    this.#now = options.now ?? Date.now;
    this.configure(options.rules, options.pricing);
  }

  /**
   * Replaces the rules and prices (a configuration reload), or throws `ERR_CONFIG_INVALID` and keeps
   * the old ones. Counters are kept: a rule keeps its usage across a reload as long as its name does.
   * Reservations already made settle against the counters they reserved on.
   */
  configure(rules: readonly Rule[], pricing: AgentwallConfig["pricing"]): void {
    for (const r of rules) {
      if (r.tokens === undefined && r.spendMicroUsd === undefined)
        throw new AgentwallError(
          "ERR_CONFIG_INVALID",
          `config field /budgets: ${r.name} sets neither tokens nor spendMicroUsd`,
        );
      if (r.per === "role" && r.role === undefined)
        throw new AgentwallError("ERR_CONFIG_INVALID", `config field /budgets: ${r.name} is per role but names none`);
    }
    this.#rules = rules;
    this.#pricing = pricing;
  }

  get enabled(): boolean {
    return this.#rules.length > 0;
  }

  /** Micro-USD of a token count for a model (0 when the model has no price). */
  spend(model: string, tokens: TokenCount): number {
    const price = this.#pricing[model];
    if (price === undefined) return 0;
    return Math.ceil(tokens.prompt * price.inputPerMTok + tokens.completion * price.outputPerMTok);
  }

  #scopes(rule: Rule, who: BudgetPrincipal): string[] {
    if (rule.per === "key") return [who.credentialId];
    if (rule.per === "subject") return [who.subject];
    return rule.role !== undefined && who.roles.includes(rule.role) ? [`role:${rule.role}`] : [];
  }

  /** Reserves an estimate against every applicable budget, or throws `ERR_BUDGET_EXHAUSTED`. */
  async reserve(who: BudgetPrincipal, model: string, estimate: TokenCount): Promise<Reservation> {
    const now = this.#now();
    const entries: Entry[] = [];
    for (const rule of this.#rules) {
      const period = periodOf(rule.period, now);
      for (const scope of this.#scopes(rule, who)) {
        if (rule.tokens !== undefined)
          entries.push({
            key: `${rule.name}:tokens:${scope}:${period.start}`,
            amount: estimate.prompt + estimate.completion,
            unit: "tokens",
            limit: rule.tokens,
            rule: rule.name,
            expires: period.end,
          });
        if (rule.spendMicroUsd !== undefined)
          entries.push({
            key: `${rule.name}:spend:${scope}:${period.start}`,
            amount: this.spend(model, estimate),
            unit: "spend",
            limit: rule.spendMicroUsd,
            rule: rule.name,
            expires: period.end,
          });
      }
    }
    if (entries.length > 0) await this.#enqueue({ kind: "reserve", entries });
    return { entries: entries.map(({ key, amount, unit }) => ({ key, amount, unit })), model, estimate };
  }

  /** Corrects a reservation to what was used (nothing, if the request failed before the upstream). */
  async settle(reservation: Reservation, actual: TokenCount): Promise<void> {
    const deltas: { key: string; delta: number }[] = [];
    for (const e of reservation.entries) {
      const real = e.unit === "tokens" ? actual.prompt + actual.completion : this.spend(reservation.model, actual);
      if (real !== e.amount) deltas.push({ key: e.key, delta: real - e.amount });
    }
    if (deltas.length > 0) await this.#enqueue({ kind: "settle", deltas });
  }

  /**
   * Group commit: the operations queued while one transaction runs go together into the next one, in
   * order — one commit (one fsync on SQLite) for a burst of requests instead of one each. Inside the
   * transaction a reservation reads its counters (locked `FOR UPDATE` on PostgreSQL; SQLite's write
   * lock covers the whole transaction), and applies all its increments only if every one fits.
   */
  #enqueue(op: Op): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ op, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, 1000);
      let outcome: (AgentwallError | undefined)[];
      try {
        outcome = await this.#apply(batch.map((b) => b.op));
      } catch (error) {
        for (const b of batch) b.reject(error);
        continue;
      }
      batch.forEach((b, i) => {
        const e = outcome[i];
        if (e === undefined) b.resolve();
        else b.reject(e);
      });
    }
    this.#flushing = false;
  }

  /**
   * One transaction for a batch of operations, in order; a reservation applies all its increments only
   * if every one fits. Not flushed to disk on its own: atomic and seen by every instance at once, and
   * durable with the request's audit event, which commits after it through the same write-ahead log.
   */
  async #apply(ops: readonly Op[]): Promise<(AgentwallError | undefined)[]> {
    const sqlite = this.#store.sqlite;
    if (sqlite !== undefined) {
      // Cached statements on the connection, inside Kysely's connection lock (Kysely prepares every
      // statement anew: measured as most of this path's time under load).
      const st = (this.#statements ??= {
        insert: sqlite.prepare(
          "insert into budget_usage (key, used, expires_at) values (?, 0, ?) on conflict(key) do nothing",
        ),
        used: sqlite.prepare("select used from budget_usage where key = ?").pluck(),
        add: sqlite.prepare("update budget_usage set used = used + ? where key = ?"),
        settle: sqlite.prepare(
          "update budget_usage set used = case when used + ? < 0 then 0 else used + ? end where key = ?",
        ),
      });
      const run = sqlite.transaction(() =>
        ops.map((op) => {
          if (op.kind === "settle") {
            for (const d of op.deltas) st.settle.run(d.delta, d.delta, d.key);
            return undefined;
          }
          for (const e of op.entries) st.insert.run(e.key, e.expires);
          const over = op.entries.find((e) => Number(st.used.get(e.key) ?? 0) + e.amount > e.limit);
          if (over !== undefined) return exhausted(over);
          for (const e of op.entries) st.add.run(e.amount, e.key);
          return undefined;
        }),
      );
      return sqliteImmediate(this.#store, () => run.immediate(), { durable: false });
    }
    return writeTransaction(
      this.#store,
      async (trx) => {
        const outcome: (AgentwallError | undefined)[] = [];
        for (const op of ops) {
          if (op.kind === "settle") {
            for (const d of op.deltas)
              await trx
                .updateTable("budget_usage")
                .set({ used: sql<number>`case when used + ${d.delta} < 0 then 0 else used + ${d.delta} end` })
                .where("key", "=", d.key)
                .execute();
            outcome.push(undefined);
            continue;
          }
          for (const e of op.entries)
            await trx
              .insertInto("budget_usage")
              .values({ key: e.key, used: 0, expires_at: e.expires })
              .onConflict((oc) => oc.column("key").doNothing())
              .execute();
          const rows = await trx
            .selectFrom("budget_usage")
            .select(["key", "used"])
            .where(
              "key",
              "in",
              op.entries.map((e) => e.key),
            )
            .forUpdate()
            .execute();
          const used = new Map(rows.map((r) => [r.key, Number(r.used)]));
          const over = op.entries.find((e) => (used.get(e.key) ?? 0) + e.amount > e.limit);
          if (over !== undefined) {
            outcome.push(exhausted(over));
            continue;
          }
          for (const e of op.entries)
            await trx
              .updateTable("budget_usage")
              .set({ used: sql<number>`used + ${e.amount}` })
              .where("key", "=", e.key)
              .execute();
          outcome.push(undefined);
        }
        return outcome;
      },
      { durable: false },
    );
  }

  /** Drops counters of periods that are over. */
  async prune(): Promise<number> {
    const r = await this.#store.db.deleteFrom("budget_usage").where("expires_at", "<=", this.#now()).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/** A rough token count for budgeting before the upstream has counted: four characters a token. */
export function estimateTokens(texts: readonly string[]): number {
  let chars = 0;
  for (const t of texts) chars += t.length;
  return Math.ceil(chars / 4) + 4 * texts.length;
}
