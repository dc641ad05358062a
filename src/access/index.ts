export * from "./permission.js";
export * from "./catalog.js";
export * from "./policy.js";
export * from "./rbac.js";
export * from "./tool-policy.js";
export * from "./guard.js";
