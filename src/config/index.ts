export { loadConfig, ensureHome } from "./load.js";
export { CONFIG_SCHEMA, CONFIG_DEFAULTS, type AgentwallConfig, type AgentwallSecrets } from "./schema.js";
