// Re-exports only. Each concern is also its own subpath (agentwall/audit, agentwall/crypto, …).
export * from "./errors.js";
export * from "./access/index.js";
export * from "./audit/index.js";
export * from "./config/index.js";
export * from "./crypto/index.js";
export * from "./identity/index.js";
export * from "./monitor/index.js";
export * from "./store/index.js";
export { openInstance, sqlitePath, type Instance } from "./instance.js";
