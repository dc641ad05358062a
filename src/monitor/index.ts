export * from "./ratelimit/limiter.js";
export * from "./ratelimit/redis.js";
export * from "./ratelimit/sql.js";
export * from "./budget.js";
export * from "./metrics.js";
export * from "./anomaly.js";
