export * from "./permission.js";
export * from "./roles.js";
