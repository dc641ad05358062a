import type { FastifyRequest } from "fastify";

/** The permission check's audit event of each request in flight whose answer has not left yet. */
export const pendingChecks = new WeakMap<FastifyRequest, Promise<unknown>>();

/**
 * Resolves once the request's permission-check audit event is durable (at once if there is none);
 * rejects if it could not be stored. Every answer waits for it: plain ones in the gateway's onSend
 * hook, streamed ones (which bypass it) by calling this before their first byte.
 */
export async function permissionAudited(request: FastifyRequest): Promise<void> {
  const pending = pendingChecks.get(request);
  if (pending === undefined) return;
  pendingChecks.delete(request);
  await pending;
}
