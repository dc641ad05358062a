import { AgentwallError } from "../errors.js";

/**
 * A permission: `area:action`, optionally on a resource (`agents:billing:execute`). A grant may use `*`
 * for one segment, and a trailing `*` covers everything below (`agents:*`, or `*` for admin).
 */
export type Permission = string & { readonly __permission?: never };

const SEGMENT = /^(?:\*|[a-z0-9][a-z0-9_.-]{0,63})$/;

/** Validates a permission string; throws `ERR_PERMISSION_INVALID`. */
export function parsePermission(text: string): Permission {
  if (typeof text !== "string" || text.length === 0 || text.length > 200) {
    throw new AgentwallError("ERR_PERMISSION_INVALID", "a permission is a non-empty string of at most 200 characters");
  }
  const parts = text.split(":");
  if (text !== "*" && (parts.length < 2 || parts.length > 4)) {
    throw new AgentwallError(
      "ERR_PERMISSION_INVALID",
      `permission ${JSON.stringify(text)} is not area:action[:resource]`,
    );
  }
  for (const part of parts) {
    if (!SEGMENT.test(part))
      throw new AgentwallError("ERR_PERMISSION_INVALID", `permission ${JSON.stringify(text)} has an invalid segment`);
  }
  return text;
}

/** Whether one grant covers the required permission. Unknown or malformed means no. */
export function grantCovers(grant: string, required: string): boolean {
  const g = grant.split(":");
  const r = required.split(":");
  for (let i = 0; i < g.length; i++) {
    const gi = g[i];
    if (gi === "*" && i === g.length - 1) return true;
    const ri = r[i];
    if (ri === undefined || (gi !== "*" && gi !== ri)) return false;
  }
  return g.length === r.length;
}

/** Whether any of `grants` covers `required`. */
export function permits(grants: readonly string[], required: Permission): boolean {
  return grants.some((g) => grantCovers(g, required));
}
