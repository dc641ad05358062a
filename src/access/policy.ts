import { AgentwallError } from "../errors.js";
import { canonicalPermission } from "./catalog.js";
import { grantCovers, type Permission } from "./permission.js";

/** A role: its own grants plus those of the roles it inherits. */
export interface RoleDefinition {
  readonly name: string;
  readonly description?: string;
  readonly inherits?: readonly string[];
  readonly grants: readonly string[];
}

/** A role given to a subject, globally or only on a resource pattern (`agent:billing`, `workflow:*`). */
export interface RoleAssignment {
  readonly role: string;
  readonly resource?: string;
}

/** An access decision: a value, never an exception. */
export type AccessDecision =
  | { readonly allowed: true; readonly via: string }
  | { readonly allowed: false; readonly code: "ERR_FORBIDDEN"; readonly reason: string };

/** The default roles of both source guides. `admin` implies everything. */
export const BUILTIN_ROLE_DEFINITIONS: readonly RoleDefinition[] = Object.freeze([
  { name: "admin", description: "everything", grants: ["*"] },
  {
    name: "viewer",
    description: "read agents, logs and metrics",
    grants: ["agents:read", "audit:read", "metrics:read", "sessions:self"],
  },
  {
    name: "user",
    description: "run agents and workflows",
    inherits: ["viewer"],
    grants: [
      "agents:*:execute",
      "agents:execute",
      "workflows:execute",
      "workflows:*:execute",
      "guard:check",
      "data:read",
      "llm:chat",
    ],
  },
  {
    name: "developer",
    description: "build agents and read the trail",
    inherits: ["user"],
    grants: ["agents:*", "workflows:*", "keys:create", "data:write", "guard:details"],
  },
]);

const ROLE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const RESOURCE = /^[a-z][a-z0-9_-]{0,31}:(?:\*|[A-Za-z0-9_.@-]{1,128})$/;

/** Validates a resource pattern such as `agent:billing` or `workflow:*`. */
export function parseResource(text: string): string {
  if (typeof text !== "string" || !RESOURCE.test(text)) {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "a resource is type:name or type:* (e.g. agent:billing)");
  }
  return text;
}

/** Bound of each check memo (distinct permission strings); a full memo starts over. */
const MEMO_ENTRIES = 4096;

function resourceCovers(pattern: string, resource: string): boolean {
  if (pattern === resource) return true;
  const [type, name] = pattern.split(":");
  return name === "*" && resource.startsWith(`${type}:`);
}

/**
 * Roles compiled into flat permission sets (inheritance resolved, cycles refused), so a check is a few
 * set lookups. Pure: built from definitions, no I/O; rebuild it when roles change.
 *
 * @example
 * ```ts
 * const policy = RolePolicy.compile([{ name: "auditor", inherits: ["viewer"], grants: ["audit:verify"] }]);
 * policy.check([{ role: "auditor" }], "audit:verify").allowed; // true
 * ```
 */
export class RolePolicy {
  readonly #grants: ReadonlyMap<string, readonly string[]>;
  readonly #definitions: ReadonlyMap<string, RoleDefinition>;
  /** Memo of the pure parts of a check (the policy never changes): permission text → canonical form. */
  readonly #canonical = new Map<string, Permission | null>();
  /** role → canonical permission → whether the role's grants cover it. */
  readonly #covers = new Map<string, Map<string, boolean>>();

  private constructor(definitions: Map<string, RoleDefinition>, grants: Map<string, readonly string[]>) {
    this.#definitions = definitions;
    this.#grants = grants;
  }

  /** Compiles the built-in roles plus `custom` ones. Throws `ERR_ROLE_UNKNOWN` / `ERR_ROLE_CYCLE`. */
  static compile(custom: readonly RoleDefinition[] = []): RolePolicy {
    const definitions = new Map<string, RoleDefinition>();
    for (const role of [...BUILTIN_ROLE_DEFINITIONS, ...custom]) {
      if (!ROLE_NAME.test(role.name))
        throw new AgentwallError("ERR_INVALID_ARGUMENT", `invalid role name ${JSON.stringify(role.name)}`);
      if (definitions.has(role.name))
        throw new AgentwallError("ERR_INVALID_ARGUMENT", `role ${role.name} is defined twice`);
      definitions.set(role.name, { ...role, grants: role.grants.map((g) => canonicalPermission(g)) });
    }
    const grants = new Map<string, readonly string[]>();
    const resolve = (name: string, path: readonly string[]): readonly string[] => {
      const done = grants.get(name);
      if (done !== undefined) return done;
      if (path.includes(name))
        throw new AgentwallError("ERR_ROLE_CYCLE", `role inheritance cycle: ${[...path, name].join(" -> ")}`);
      const role = definitions.get(name);
      if (role === undefined) throw new AgentwallError("ERR_ROLE_UNKNOWN", `role ${name} is not defined`);
      const all = new Set(role.grants);
      for (const parent of role.inherits ?? []) for (const g of resolve(parent, [...path, name])) all.add(g);
      const list = Object.freeze([...all].sort());
      grants.set(name, list);
      return list;
    };
    for (const name of definitions.keys()) resolve(name, []);
    return new RolePolicy(definitions, grants);
  }

  has(role: string): boolean {
    return this.#definitions.has(role);
  }

  roles(): RoleDefinition[] {
    return [...this.#definitions.values()];
  }

  /** The flat grants of a role (inherited included); empty for an unknown role. */
  grantsOf(role: string): readonly string[] {
    return this.#grants.get(role) ?? [];
  }

  /** The grants of several roles together (for a principal's global roles). */
  grantsOfRoles(roles: readonly string[]): string[] {
    return [...new Set(roles.flatMap((r) => this.grantsOf(r)))];
  }

  /**
   * Whether the assignments allow `permission` (on `resource`, when given). Deny by default: no
   * assignments, an unknown role, a malformed permission or a scoped assignment on another resource.
   * A request without a resource is only allowed by global assignments.
   */
  check(assignments: readonly RoleAssignment[], permission: string, resource?: string): AccessDecision {
    const required = this.#canonicalOf(permission);
    if (required === null) return { allowed: false, code: "ERR_FORBIDDEN", reason: "malformed permission" };
    for (const a of assignments) {
      if (a.resource !== undefined && (resource === undefined || !resourceCovers(a.resource, resource))) continue;
      if (this.#roleCovers(a.role, required)) {
        return { allowed: true, via: a.resource === undefined ? a.role : `${a.role}@${a.resource}` };
      }
    }
    return { allowed: false, code: "ERR_FORBIDDEN", reason: `${permission} is not granted` };
  }

  #canonicalOf(permission: string): Permission | null {
    let required = this.#canonical.get(permission);
    if (required === undefined) {
      try {
        required = canonicalPermission(permission);
      } catch {
        required = null;
      }
      if (this.#canonical.size >= MEMO_ENTRIES) this.#canonical.clear();
      this.#canonical.set(permission, required);
    }
    return required;
  }

  #roleCovers(role: string, required: Permission): boolean {
    let memo = this.#covers.get(role);
    if (memo === undefined) {
      if (!this.#definitions.has(role)) return false;
      memo = new Map();
      this.#covers.set(role, memo);
    }
    let covered = memo.get(required);
    if (covered === undefined) {
      covered = this.grantsOf(role).some((g) => grantCovers(g, required));
      if (memo.size >= MEMO_ENTRIES) memo.clear();
      memo.set(required, covered);
    }
    return covered;
  }

  /**
   * Bounded delegation: whether a holder of `holderGrants` may hand out `roles` — only when every grant
   * of those roles is covered by one of the holder's own grants.
   */
  canDelegate(holderGrants: readonly string[], roles: readonly string[]): AccessDecision {
    for (const role of roles) {
      if (!this.has(role)) return { allowed: false, code: "ERR_FORBIDDEN", reason: `role ${role} is not defined` };
      for (const g of this.grantsOf(role)) {
        if (!holderGrants.some((h) => grantCovers(h, g))) {
          return {
            allowed: false,
            code: "ERR_FORBIDDEN",
            reason: `cannot delegate ${g} (role ${role}) without holding it`,
          };
        }
      }
    }
    return { allowed: true, via: "delegation" };
  }
}
