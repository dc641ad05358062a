import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import {
  REDIS_URL,
  assertGcraTable,
  freePort,
  privateRedis,
  redisReachable,
  redisServerInstalled,
} from "../../../test/helpers.js";
import { RedisRateLimiter } from "./redis.js";

describe("Redis rate limiter", async () => {
  const ok = await redisReachable();
  const skip = !ok && "Redis unreachable";

  it("matches redis-cell's table through the Lua script", { skip }, async () => {
    const prefix = `aw:test:${randomBytes(4).toString("hex")}:`;
    let limiter: RedisRateLimiter | undefined;
    await assertGcraTable((now) => (limiter = new RedisRateLimiter({ url: REDIS_URL, prefix, now })));
    assert.equal(limiter?.degraded, false, "every decision came from Redis");
    await limiter?.close();
  });

  it("two processes sharing one limit together admit exactly the limit", { skip }, async () => {
    const prefix = `aw:test:${randomBytes(4).toString("hex")}:`;
    const run = () =>
      new Promise<number>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          ["--import", "tsx", join(import.meta.dirname, "../../../test/children/ratelimit-taker.ts")],
          {
            env: { ...process.env, TAKER_REDIS_URL: REDIS_URL, TAKER_PREFIX: prefix },
            stdio: ["ignore", "pipe", "inherit"],
          },
        );
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.on("exit", (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`exit ${code}`))));
      });
    const [a, b] = await Promise.all([run(), run()]);
    assert.equal(a + b, 50, `${a} + ${b}`);
  });

  it(
    "falls back to limit/N with an alert when Redis dies, and recovers when it returns",
    {
      skip:
        !redisServerInstalled && process.env.CI !== "true" && "redis-server is not installed (required under CI=true)",
    },
    async () => {
      const port = await freePort();
      let redis = await privateRedis(port);
      const alerts: string[] = [];
      const limiter = new RedisRateLimiter({
        url: `redis://127.0.0.1:${port}`,
        expectedInstances: 2,
        onAlert: (e) => alerts.push(e.state),
      });
      after(() => limiter.close());
      const limit = { limit: 1, periodMs: 3_600_000, burst: 9 };
      for (let i = 0; i < 3; i++) assert.equal((await limiter.take("a", limit)).allowed, true);
      await redis.stop();
      let allowed = 0;
      for (let i = 0; i < 20; i++) if ((await limiter.take("b", limit)).allowed) allowed += 1;
      assert.equal(limiter.degraded, true);
      assert.equal(allowed, 5, "local share: burst 9 / 2 instances -> 4, plus one");
      assert.deepEqual(alerts, ["degraded"]);
      redis = await privateRedis(port);
      let recovered = false;
      for (let i = 0; i < 50 && !recovered; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        await limiter.take("c", limit);
        recovered = !limiter.degraded;
      }
      assert.ok(recovered, "Redis is used again");
      assert.deepEqual(alerts, ["degraded", "recovered"]);
    },
  );
});
