// Child process for the shared-limit test: takes from one Redis-backed limit and prints how many passed.
import { RedisRateLimiter } from "../../src/monitor/ratelimit/redis.js";

const limiter = new RedisRateLimiter({
  url: process.env.TAKER_REDIS_URL ?? "",
  prefix: process.env.TAKER_PREFIX ?? "",
});
const limit = { limit: 1, periodMs: 3_600_000, burst: 49 };
let allowed = 0;
for (let i = 0; i < 100; i++) if ((await limiter.take("shared", limit)).allowed) allowed += 1;
process.stdout.write(`${allowed}\n`);
await limiter.close();
