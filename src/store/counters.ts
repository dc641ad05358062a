import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

/**
 * Shared version counters (`roles`, `revocations`): bumped in the same transaction as the change they
 * announce, read by instances to learn that their caches are stale.
 */
export async function bumpCounter(db: Kysely<Database>, name: string): Promise<void> {
  await db
    .updateTable("counters")
    .set((eb) => ({ value: eb("value", "+", 1) }))
    .where("name", "=", name)
    .execute();
}

/** The counter's value, or undefined when the database has no such counter. */
export async function readCounter(db: Kysely<Database>, name: string): Promise<number | undefined> {
  const row = await db.selectFrom("counters").select("value").where("name", "=", name).executeTakeFirst();
  return row === undefined ? undefined : Number(row.value);
}
