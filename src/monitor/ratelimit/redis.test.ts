import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { REDIS_URL, assertGcraTable, redisReachable } from "../../../test/helpers.js";
import { RedisRateLimiter } from "./redis.js";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as import("node:net").AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  for (let i = 0; i < 50; i++) {
    if (spawnSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" }).stdout.trim() === "PONG")
      return child;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("private redis-server did not start");
}

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
    { skip: spawnSync("redis-server", ["--version"]).status !== 0 && "redis-server not installed" },
    async () => {
      const port = await freePort();
      let redis = await startRedis(port);
      after(() => redis.kill("SIGKILL"));
      const alerts: string[] = [];
      const limiter = new RedisRateLimiter({
        url: `redis://127.0.0.1:${port}`,
        expectedInstances: 2,
        onAlert: (e) => alerts.push(e.state),
      });
      after(() => limiter.close());
      const limit = { limit: 1, periodMs: 3_600_000, burst: 9 };
      for (let i = 0; i < 3; i++) assert.equal((await limiter.take("a", limit)).allowed, true);
      redis.kill("SIGKILL");
      await new Promise((resolve) => redis.on("exit", resolve));
      let allowed = 0;
      for (let i = 0; i < 20; i++) if ((await limiter.take("b", limit)).allowed) allowed += 1;
      assert.equal(limiter.degraded, true);
      assert.equal(allowed, 5, "local share: burst 9 / 2 instances -> 4, plus one");
      assert.deepEqual(alerts, ["degraded"]);
      redis = await startRedis(port);
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
