import type { FastifyRequest } from "fastify";

/** What an allowed check held back for the route's own event records: the permission and the roles. */
export interface CheckRecord {
  readonly permission: string;
  readonly roles: readonly string[];
}

/** An allowed check held back (`checkInRouteEvent`): recorded by the route's event, or appended. */
export interface HeldCheck {
  readonly record: CheckRecord;
  readonly append: () => Promise<unknown>;
}

/**
 * The permission check of each request in flight whose answer has not left yet: its audit event (being
 * committed with the request's next event), or the check held back for the route's own event.
 */
export const pendingChecks = new WeakMap<FastifyRequest, Promise<unknown> | HeldCheck>();

/**
 * Takes the request's held-back check for the event being appended now, which records it in its
 * details; undefined when there is none (the check has an event of its own).
 */
export function claimPermissionCheck(request: FastifyRequest): CheckRecord | undefined {
  const pending = pendingChecks.get(request);
  if (pending === undefined || pending instanceof Promise) return undefined;
  pendingChecks.delete(request);
  return pending.record;
}

/**
 * Resolves once the request's permission-check audit event is durable (at once if there is none or a
 * route event recorded it; a held-back check no event claimed is appended now); rejects if it could
 * not be stored. Every answer waits for it: plain ones in the gateway's onSend
 * hook, streamed ones (which bypass it) by calling this before their first byte.
 */
export async function permissionAudited(request: FastifyRequest): Promise<void> {
  const pending = pendingChecks.get(request);
  if (pending === undefined) return;
  pendingChecks.delete(request);
  await (pending instanceof Promise ? pending : pending.append());
}
