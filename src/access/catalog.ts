import { AgentwallError } from "../errors.js";
import { parsePermission, type Permission } from "./permission.js";

/**
 * The permission catalogue: the union of both source guides' permissions (as `area:action`) and the
 * names the later capabilities use. Custom permissions (any valid `area:action[:resource]`) are allowed
 * beside these; the catalogue is what `docs/permissions.md` documents and `roles list` shows.
 */
export const PERMISSION_CATALOG: Readonly<Record<string, string>> = Object.freeze({
  "agents:read": "read agent definitions (guides: read_agents)",
  "agents:write": "create and change agents (guides: write_agents)",
  "agents:execute": "run an agent (guides: execute_agent); per agent and operation as agents:<name>:<operation>",
  "workflows:execute": "run workflows (guides: execute_workflows)",
  "users:manage": "manage users, roles and assignments (guides: manage_users)",
  "audit:read": "read the audit trail (guides: view_logs)",
  "audit:verify": "verify the audit trail",
  "admin:access": "administrative routes (guides: admin_access)",
  "keys:create": "create API keys (guides: create_api_keys)",
  "keys:revoke": "revoke API keys",
  "keys:suspend": "suspend API keys and lift a suspension (POST /v1/admin/keys/:id/suspend, /resume)",
  "keys:read": "list API keys (never their secrets)",
  "data:read": "read stored data (guides: read_data)",
  "data:write": "write stored data (guides: write_data)",
  "data:delete": "delete stored data (guides: delete_data)",
  "sessions:self": "exchange one's API key for a session and log out",
  "sessions:read": "list sessions",
  "sessions:revoke": "end other subjects' sessions",
  "roles:manage": "define roles and assign them",
  "guard:check": "run the content guards",
  "guard:details": "see detailed guard findings",
  "guard:trusted_system":
    "the caller's system/developer messages are the operator's system prompt: injection there is flagged, not blocked",
  "guard:trusted_agent":
    "an agent identity (subject agent:<id>) whose user messages are scanned as a trusted agent's (agents may brief each other)",
  "channel:message": "send agent-to-agent messages (on resource agent:<id>)",
  "metrics:read": "read metrics",
  "vault:manage": "set, rotate and delete provider secrets",
  "llm:chat": "call models through the proxy (POST /v1/chat/completions)",
  "alerts:read": "list anomaly alerts (GET /v1/admin/alerts)",
});

/** The source guides' permission names, accepted as aliases of catalogue entries. */
export const GUIDE_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  read_agents: "agents:read",
  write_agents: "agents:write",
  execute_workflows: "workflows:execute",
  execute_agent: "agents:execute",
  manage_users: "users:manage",
  view_logs: "audit:read",
  admin_access: "admin:access",
  create_api_keys: "keys:create",
  delete_data: "data:delete",
  read_data: "data:read",
  write_data: "data:write",
});

/** A permission in canonical form: a guide name is translated, anything else must parse. */
export function canonicalPermission(text: string): Permission {
  if (typeof text !== "string") throw new AgentwallError("ERR_PERMISSION_INVALID", "a permission is a string");
  const alias = Object.hasOwn(GUIDE_ALIASES, text) ? GUIDE_ALIASES[text] : undefined;
  return parsePermission(alias ?? text);
}
