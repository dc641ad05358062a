import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assertGcraTable } from "../../../test/helpers.js";
import fc from "fast-check";
import { MemoryRateLimiter, gcra } from "./limiter.js";

describe("GCRA", () => {
  it("matches redis-cell's table case by case", () => assertGcraTable((now) => new MemoryRateLimiter({ now })));

  it("never allows more than limit * elapsed / period + burst + 1 (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 0, max: 10 }),
        fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 200 }),
        (perPeriod, burst, gaps) => {
          const limit = { limit: perPeriod, periodMs: 1000, burst };
          let tat: number | undefined;
          let now = 0;
          let allowed = 0;
          for (const gap of gaps) {
            now += gap;
            const r = gcra(tat, now, limit);
            tat = r.tat;
            if (r.decision.allowed) allowed += 1;
          }
          return allowed <= Math.floor((now * perPeriod) / 1000) + burst + 1;
        },
      ),
    );
  });

  it("keeps memory bounded and rejects nonsense limits", async () => {
    const limiter = new MemoryRateLimiter({ maxKeys: 10 });
    for (let i = 0; i < 100; i++) await limiter.take(`k${i}`, { limit: 1, periodMs: 1000, burst: 0 });
    assert.equal(limiter.size, 10);
    assert.throws(() => gcra(undefined, 0, { limit: 0, periodMs: 1000, burst: 0 }), { code: "ERR_INVALID_ARGUMENT" });
    assert.throws(() => gcra(undefined, 0, { limit: 1, periodMs: 1000, burst: -1 }), { code: "ERR_INVALID_ARGUMENT" });
  });
});
