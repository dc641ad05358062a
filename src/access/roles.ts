/**
 * The built-in roles' grants. `admin` holds `*` (every permission). Identity and access extend the
 * catalogue; these are what the core platform's routes and the first admin key need.
 */
export const BUILTIN_ROLES: Readonly<Record<string, readonly string[]>> = Object.freeze({
  admin: Object.freeze(["*"]),
  developer: Object.freeze(["agents:*", "workflows:*", "audit:read", "metrics:read", "guard:check", "sessions:self"]),
  user: Object.freeze(["agents:*:execute", "workflows:*:execute", "guard:check", "sessions:self"]),
  viewer: Object.freeze(["agents:read", "audit:read", "metrics:read", "sessions:self"]),
});

/** The grants of a set of role names; unknown roles grant nothing. */
export function grantsOfRoles(roles: readonly string[]): string[] {
  return roles.flatMap((r) => (Object.hasOwn(BUILTIN_ROLES, r) ? [...(BUILTIN_ROLES[r] ?? [])] : []));
}
