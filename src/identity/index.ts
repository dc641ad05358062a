export * from "./api-keys.js";
export { generateApiKey, parseApiKey, hashApiKey, API_KEY_PATTERN } from "./api-key-format.js";
export { createFirstAdminKey } from "./bootstrap.js";
export * from "./jwt.js";
export * from "./sessions.js";
export * from "./oidc.js";
export * from "./vault.js";
