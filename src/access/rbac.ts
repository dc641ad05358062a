import { AgentwallError } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import type { Store } from "../store/database.js";
import { writeTransaction } from "../store/transaction.js";
import { bumpCounter, readCounter } from "../store/counters.js";
import {
  BUILTIN_ROLE_DEFINITIONS,
  RolePolicy,
  parseResource,
  type AccessDecision,
  type RoleAssignment,
  type RoleDefinition,
} from "./policy.js";

/** Who performs an administrative change, with the grants it holds (for bounded delegation). */
export interface Actor {
  readonly id: string;
  readonly grants: readonly string[];
  readonly ip?: string;
  readonly userAgent?: string;
}

const BUILTIN = new Set(BUILTIN_ROLE_DEFINITIONS.map((r) => r.name));
const SUBJECT = /^[\p{L}\p{N} _.:@/-]{1,200}$/u;
const POLICY_TTL_MS = 1000;

function list(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

/**
 * Role-based access control over the database: custom roles (with inheritance, cycles refused) beside
 * the built-in ones, assignments of roles to subjects globally or on a resource, checks that deny by
 * default, and delegation that is bounded (an actor can only hand out what it holds). Every change and
 * every check through {@link check} is audited. The compiled policy is shared by all instances through
 * a version counter and trusted for at most one second.
 *
 * @example
 * ```ts
 * const rbac = new Rbac({ store, audit });
 * await rbac.assign("alice", "developer", undefined, adminActor);
 * (await rbac.check("alice", "agents:write")).allowed; // true
 * ```
 */
export class Rbac {
  readonly #store: Store;
  readonly #audit: AuditSink;
  readonly #now: () => number;
  #cache: { version: number; policy: RolePolicy; checkedAt: number } | undefined;

  constructor(options: { store: Store; audit: AuditSink; now?: () => number }) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#now = options.now ?? Date.now;
  }

  /** The compiled policy (built-in plus custom roles), refreshed when any instance changed roles. */
  async policy(): Promise<RolePolicy> {
    const now = this.#now();
    if (this.#cache !== undefined && now - this.#cache.checkedAt < POLICY_TTL_MS) return this.#cache.policy;
    const version = await this.#version();
    if (this.#cache !== undefined && this.#cache.version === version) {
      this.#cache = { ...this.#cache, checkedAt: now };
      return this.#cache.policy;
    }
    const policy = RolePolicy.compile(await this.#customRoles());
    this.#cache = { version, policy, checkedAt: now };
    return policy;
  }

  async #version(): Promise<number> {
    return (await readCounter(this.#store.db, "roles")) ?? 0;
  }

  async #customRoles(): Promise<RoleDefinition[]> {
    const rows = await this.#store.db.selectFrom("roles").selectAll().orderBy("name").execute();
    return rows.map((r) => ({
      name: r.name,
      description: r.description,
      inherits: list(r.inherits),
      grants: list(r.grants),
    }));
  }

  /** Defines or replaces a custom role. The actor must hold every permission the role would grant. */
  async defineRole(role: RoleDefinition, actor: Actor): Promise<void> {
    if (BUILTIN.has(role.name)) throw new AgentwallError("ERR_INVALID_ARGUMENT", `role ${role.name} is built in`);
    const others = (await this.#customRoles()).filter((r) => r.name !== role.name);
    const policy = RolePolicy.compile([...others, role]);
    const delegation = policy.canDelegate(actor.grants, [role.name]);
    await this.#auditChange(actor, "role.define", `role:${role.name}`, delegation, {
      inherits: role.inherits ?? [],
      grants: role.grants,
    });
    if (!delegation.allowed) throw new AgentwallError("ERR_FORBIDDEN", delegation.reason);
    const now = this.#now();
    await writeTransaction(this.#store, async (trx) => {
      await trx.deleteFrom("roles").where("name", "=", role.name).execute();
      await trx
        .insertInto("roles")
        .values({
          name: role.name,
          description: role.description ?? "",
          inherits: JSON.stringify(role.inherits ?? []),
          grants: JSON.stringify(role.grants),
          created_at: now,
          updated_at: now,
        })
        .execute();
      await bumpCounter(trx, "roles");
    });
    this.#cache = undefined;
  }

  /** Deletes a custom role that no role inherits and no subject holds. */
  async deleteRole(name: string, actor: Actor): Promise<void> {
    if (BUILTIN.has(name)) throw new AgentwallError("ERR_INVALID_ARGUMENT", `role ${name} is built in`);
    const roles = await this.#customRoles();
    if (!roles.some((r) => r.name === name))
      throw new AgentwallError("ERR_ROLE_UNKNOWN", `role ${name} is not defined`);
    const heir = roles.find((r) => (r.inherits ?? []).includes(name));
    if (heir !== undefined) throw new AgentwallError("ERR_INVALID_ARGUMENT", `role ${heir.name} inherits ${name}`);
    const held = await this.#store.db
      .selectFrom("role_assignments")
      .select("subject")
      .where("role", "=", name)
      .limit(1)
      .executeTakeFirst();
    if (held !== undefined) throw new AgentwallError("ERR_INVALID_ARGUMENT", `role ${name} is still assigned`);
    await this.#auditChange(actor, "role.delete", `role:${name}`, { allowed: true, via: "admin" });
    await writeTransaction(this.#store, async (trx) => {
      await trx.deleteFrom("roles").where("name", "=", name).execute();
      await bumpCounter(trx, "roles");
    });
    this.#cache = undefined;
  }

  /** Assigns a role to a subject (on a resource when given), within the actor's own grants. */
  async assign(subject: string, role: string, resource: string | undefined, actor: Actor): Promise<boolean> {
    if (typeof subject !== "string" || !SUBJECT.test(subject))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "invalid subject");
    const scope = resource === undefined ? "" : parseResource(resource);
    const policy = await this.policy();
    if (!policy.has(role)) throw new AgentwallError("ERR_ROLE_UNKNOWN", `role ${role} is not defined`);
    const delegation = policy.canDelegate(actor.grants, [role]);
    await this.#auditChange(actor, "role.assign", `subject:${subject}`, delegation, { role, resource: scope || null });
    if (!delegation.allowed) throw new AgentwallError("ERR_FORBIDDEN", delegation.reason);
    const result = await this.#store.db
      .insertInto("role_assignments")
      .values({ subject, role, resource: scope, granted_by: actor.id, created_at: this.#now() })
      .onConflict((oc) => oc.doNothing())
      .executeTakeFirst();
    return (result.numInsertedOrUpdatedRows ?? 0n) > 0n;
  }

  /** Removes an assignment. Removing also needs the role's grants (no privilege laundering by removal). */
  async remove(subject: string, role: string, resource: string | undefined, actor: Actor): Promise<boolean> {
    const scope = resource === undefined ? "" : parseResource(resource);
    const policy = await this.policy();
    const delegation = policy.has(role)
      ? policy.canDelegate(actor.grants, [role])
      : ({ allowed: true, via: "unknown role" } as const);
    await this.#auditChange(actor, "role.remove", `subject:${subject}`, delegation, { role, resource: scope || null });
    if (!delegation.allowed) throw new AgentwallError("ERR_FORBIDDEN", delegation.reason);
    const result = await this.#store.db
      .deleteFrom("role_assignments")
      .where("subject", "=", subject)
      .where("role", "=", role)
      .where("resource", "=", scope)
      .executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /** A subject's assignments. */
  async assignments(subject: string): Promise<RoleAssignment[]> {
    const rows = await this.#store.db
      .selectFrom("role_assignments")
      .select(["role", "resource"])
      .where("subject", "=", subject)
      .orderBy("role")
      .execute();
    return rows.map((r) => (r.resource === "" ? { role: r.role } : { role: r.role, resource: r.resource }));
  }

  /** A subject's effective permissions: global, and per resource. */
  async effectivePermissions(
    subject: string,
  ): Promise<{ global: string[]; scoped: Array<{ resource: string; grants: string[] }> }> {
    const policy = await this.policy();
    const assignments = await this.assignments(subject);
    const global = policy.grantsOfRoles(assignments.filter((a) => a.resource === undefined).map((a) => a.role)).sort();
    const byResource = new Map<string, Set<string>>();
    for (const a of assignments) {
      if (a.resource === undefined) continue;
      const set = byResource.get(a.resource) ?? new Set<string>();
      for (const g of policy.grantsOf(a.role)) set.add(g);
      byResource.set(a.resource, set);
    }
    return { global, scoped: [...byResource].map(([resource, set]) => ({ resource, grants: [...set].sort() })) };
  }

  /** Checks a subject's permission (on a resource), audited with the caller's IP and user agent. */
  async check(
    subject: string,
    permission: string,
    resource?: string,
    context: { ip?: string; userAgent?: string; requestId?: string } = {},
  ): Promise<AccessDecision> {
    const policy = await this.policy();
    const decision = policy.check(await this.assignments(subject), permission, resource);
    await this.#audit.append({
      type: "permission_check",
      actor: subject,
      action: "rbac.check",
      resource: resource === undefined ? permission : `${permission} on ${resource}`,
      outcome: decision.allowed ? "allowed" : "denied",
      ip: context.ip,
      userAgent: context.userAgent,
      requestId: context.requestId,
      details: decision.allowed ? { via: decision.via } : { reason: decision.reason },
    });
    return decision;
  }

  async #auditChange(
    actor: Actor,
    action: string,
    resource: string,
    decision: AccessDecision,
    details: Record<string, unknown> = {},
  ): Promise<void> {
    await this.#audit.append({
      type: "permission_change",
      actor: actor.id,
      action,
      resource,
      outcome: decision.allowed ? "success" : "denied",
      ip: actor.ip,
      userAgent: actor.userAgent,
      details: decision.allowed ? details : { ...details, reason: decision.reason },
    });
  }
}
