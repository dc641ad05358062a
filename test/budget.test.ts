// Token and spend budgets: exact under concurrency (one SQLite file, and two instances on PostgreSQL).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Budgets } from "../src/monitor/budget.js";
import type { Store } from "../src/store/database.js";
import { freshPostgresDatabase, postgresReachable, postgresStore, sqliteStore, tempDir } from "./helpers.js";

const pgUrl = (await postgresReachable()) ? await freshPostgresDatabase() : undefined;
const who = { credentialId: "key:abc", subject: "alice", roles: ["user"] };

function suite(open: () => Promise<Store>): void {
  it("never lets concurrent reservations pass the limit, and settles to the real usage", async () => {
    const [a, b] = [await open(), await open()];
    try {
      const rules = [{ name: "daily", per: "key" as const, period: "day" as const, tokens: 1000 }];
      const budgets = [a, b].map((store) => new Budgets({ store, rules, pricing: {} }));
      const results = await Promise.allSettled(
        Array.from({ length: 60 }, (_, i) =>
          (budgets[i % 2] as Budgets).reserve(who, "m", { prompt: 10, completion: 40 }),
        ),
      );
      const ok = results.filter((r) => r.status === "fulfilled");
      assert.equal(ok.length, 20, "exactly 1000 / 50 reservations fit");
      for (const r of results)
        if (r.status === "rejected") assert.equal((r.reason as { code: string }).code, "ERR_BUDGET_EXHAUSTED");
      // The real usage was 30 each: 600 used, room for 8 more estimates of 50.
      for (const r of ok)
        if (r.status === "fulfilled") await (budgets[0] as Budgets).settle(r.value, { prompt: 10, completion: 20 });
      const more = await Promise.allSettled(
        Array.from({ length: 20 }, () => (budgets[1] as Budgets).reserve(who, "m", { prompt: 10, completion: 40 })),
      );
      assert.equal(more.filter((r) => r.status === "fulfilled").length, 8);
    } finally {
      if (b !== a) {
        await a.close();
        await b.close();
      }
    }
  });

  it("prune drops the counters of periods that are over, and only those", async () => {
    const store = await open();
    try {
      let now = Date.UTC(2026, 0, 10, 12);
      const rules = [{ name: "hourly", per: "key" as const, period: "hour" as const, tokens: 100 }];
      const budgets = new Budgets({ store, rules, pricing: {}, now: () => now });
      await budgets.reserve(who, "m", { prompt: 10, completion: 10 });
      assert.equal(await budgets.prune(), 0, "the hour is not over");
      now += 3_600_000;
      await budgets.reserve(who, "m", { prompt: 10, completion: 10 });
      assert.equal(await budgets.prune(), 1, "last hour's counter goes");
      const left = await store.db.selectFrom("budget_usage").select("key").where("key", "like", "hourly:%").execute();
      assert.equal(left.length, 1);
    } finally {
      if (store !== sqlite) await store.close();
    }
  });

  it("counts spend by model price and applies role budgets only to that role", async () => {
    const store = await open();
    try {
      const budgets = new Budgets({
        store,
        rules: [{ name: "interns", per: "role", role: "intern", period: "month", spendMicroUsd: 1_000_000 }],
        pricing: { "gpt-x": { inputPerMTok: 2.5, outputPerMTok: 10 } },
      });
      assert.equal(budgets.spend("gpt-x", { prompt: 1000, completion: 1000 }), 12_500);
      const intern = { ...who, subject: "bob", roles: ["intern"] };
      let n = 0;
      for (let attempt = 0; attempt < 100; attempt++) {
        try {
          await budgets.reserve(intern, "gpt-x", { prompt: 20_000, completion: 20_000 }); // 250,000 µ$ each
          n++;
        } catch (e) {
          assert.equal((e as { code: string }).code, "ERR_BUDGET_EXHAUSTED", String(e));
          break;
        }
      }
      assert.equal(n, 4);
      await budgets.reserve(who, "gpt-x", { prompt: 20_000, completion: 20_000 }); // not an intern: no budget
    } finally {
      if (store !== sqlite) await store.close();
    }
  });
}

// One SQLite connection per process (two would wait on each other's write lock in one thread).
const sqlite = await sqliteStore(tempDir());
describe("budgets on SQLite", () => suite(() => Promise.resolve(sqlite)));
describe("budgets on PostgreSQL (two instances)", { skip: pgUrl === undefined }, () =>
  suite(() => postgresStore(pgUrl ?? "")),
);
