import { sql } from "kysely";
import { AgentwallError } from "../errors.js";
import type { AgentwallConfig } from "../config/schema.js";
import type { Store } from "../store/database.js";
import { writeTransaction } from "../store/transaction.js";

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
 * estimate (prompt from the text, completion from `max_tokens`) is reserved with one conditional
 * increment per budget in one transaction — all or none, never past the limit, however many instances
 * race; after the answer the reservation is corrected to the upstream's usage.
 */
export class Budgets {
  readonly #store: Store;
  readonly #rules: readonly Rule[];
  readonly #pricing: AgentwallConfig["pricing"];
  readonly #now: () => number;

  constructor(options: {
    store: Store;
    rules: readonly Rule[];
    pricing: AgentwallConfig["pricing"];
    now?: () => number;
  }) {
    this.#store = options.store;
    this.#rules = options.rules;
    this.#pricing = options.pricing;
    this.#now = options.now ?? Date.now;
    for (const r of this.#rules) {
      if (r.tokens === undefined && r.spendMicroUsd === undefined)
        throw new AgentwallError(
          "ERR_CONFIG_INVALID",
          `config field /budgets: ${r.name} sets neither tokens nor spendMicroUsd`,
        );
      if (r.per === "role" && r.role === undefined)
        throw new AgentwallError("ERR_CONFIG_INVALID", `config field /budgets: ${r.name} is per role but names none`);
    }
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
    const entries: {
      key: string;
      amount: number;
      unit: "tokens" | "spend";
      limit: number;
      rule: string;
      expires: number;
    }[] = [];
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
    if (entries.length > 0) {
      await writeTransaction(this.#store, async (trx) => {
        for (const e of entries) {
          await trx
            .insertInto("budget_usage")
            .values({ key: e.key, used: 0, expires_at: e.expires })
            .onConflict((oc) => oc.column("key").doNothing())
            .execute();
          const r = await trx
            .updateTable("budget_usage")
            .set({ used: sql<number>`used + ${e.amount}` })
            .where("key", "=", e.key)
            .where(sql<boolean>`used + ${e.amount} <= ${e.limit}`)
            .executeTakeFirst();
          if (Number(r.numUpdatedRows) === 0)
            throw new AgentwallError(
              "ERR_BUDGET_EXHAUSTED",
              `budget ${e.rule} (${e.unit === "tokens" ? "tokens" : "spend"}) is used up for this period`,
            );
        }
      });
    }
    return { entries: entries.map(({ key, amount, unit }) => ({ key, amount, unit })), model, estimate };
  }

  /** Corrects a reservation to what was used (nothing, if the request failed before the upstream). */
  async settle(reservation: Reservation, actual: TokenCount): Promise<void> {
    if (reservation.entries.length === 0) return;
    await writeTransaction(this.#store, async (trx) => {
      for (const e of reservation.entries) {
        const real = e.unit === "tokens" ? actual.prompt + actual.completion : this.spend(reservation.model, actual);
        const delta = real - e.amount;
        if (delta === 0) continue;
        await trx
          .updateTable("budget_usage")
          .set({ used: sql<number>`case when used + ${delta} < 0 then 0 else used + ${delta} end` })
          .where("key", "=", e.key)
          .execute();
      }
    });
  }

  /** Drops counters of periods that are over. */
  async prune(): Promise<number> {
    const r = await this.#store.db.deleteFrom("budget_usage").where("expires_at", "<", this.#now()).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/** A rough token count for budgeting before the upstream has counted: four characters a token. */
export function estimateTokens(texts: readonly string[]): number {
  let chars = 0;
  for (const t of texts) chars += t.length;
  return Math.ceil(chars / 4) + 4 * texts.length;
}
