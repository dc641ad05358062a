import type { ApiKeys } from "./api-keys.js";
import type { Store } from "../store/database.js";
import { Lease } from "../store/lease.js";

/**
 * Creates the first admin key when the database has no key at all. Returns it (to be shown once) or
 * undefined when keys already exist. Runs under a lease so two instances starting together make one.
 */
export async function createFirstAdminKey(
  store: Store,
  apiKeys: ApiKeys,
): Promise<{ id: string; key: string; expiresAt: number | null } | undefined> {
  const lease = new Lease(store, "bootstrap", { ttlMs: 60_000 });
  if (!(await lease.acquire())) return undefined;
  try {
    const any = await store.db.selectFrom("api_keys").select("id").limit(1).executeTakeFirst();
    if (any !== undefined) return undefined;
    return await apiKeys.create({ owner: "admin", name: "first admin", roles: ["admin"], creator: "bootstrap" });
  } finally {
    await lease.release();
  }
}
