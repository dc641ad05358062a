export * from "./ratelimit/limiter.js";
