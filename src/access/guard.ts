import { AgentwallError } from "../errors.js";
import type { Rbac } from "./rbac.js";

/**
 * Wraps a function so it runs only when the subject holds `permission` (on `resource`, when given); the
 * check is audited by {@link Rbac.check}. Denied → `ERR_FORBIDDEN`, and the function is not called.
 *
 * @example
 * ```ts
 * const deleteRecord = requirePermission(rbac, "data:delete", async (subject: string, id: string) => store.delete(id));
 * await deleteRecord("alice", "r-1");
 * ```
 */
export function requirePermission<A extends unknown[], R>(
  rbac: Rbac,
  permission: string,
  fn: (subject: string, ...args: A) => Promise<R>,
  options: { resource?: (...args: A) => string } = {},
): (subject: string, ...args: A) => Promise<R> {
  return async (subject: string, ...args: A): Promise<R> => {
    const resource = options.resource?.(...args);
    const decision = await rbac.check(subject, permission, resource);
    if (!decision.allowed) throw new AgentwallError("ERR_FORBIDDEN", `${permission} required`);
    return fn(subject, ...args);
  };
}
