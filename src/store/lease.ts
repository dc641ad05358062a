import { randomBytes } from "node:crypto";
import type { Store } from "./database.js";

/**
 * A named lease in the database: at most one holder at a time across every instance sharing the
 * database, expiring on its own if the holder dies. Used for work that one instance does for all
 * (audit checkpoints, pruning).
 */
export class Lease {
  readonly name: string;
  readonly holder: string;
  readonly #store: Store;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(store: Store, name: string, options: { ttlMs?: number; now?: () => number } = {}) {
    this.#store = store;
    this.name = name;
    this.holder = randomBytes(12).toString("hex");
    this.#ttlMs = options.ttlMs ?? 30_000;
    this.#now = options.now ?? Date.now;
  }

  /** Takes or renews the lease; returns whether this holder has it now. */
  async acquire(): Promise<boolean> {
    const now = this.#now();
    const expires = now + this.#ttlMs;
    await this.#store.db
      .insertInto("locks")
      .values({ name: this.name, holder: this.holder, expires_at: expires })
      .onConflict((oc) =>
        oc
          .column("name")
          .doUpdateSet({ holder: this.holder, expires_at: expires })
          .where((eb) => eb.or([eb("locks.expires_at", "<", now), eb("locks.holder", "=", this.holder)])),
      )
      .execute();
    const row = await this.#store.db
      .selectFrom("locks")
      .select("holder")
      .where("name", "=", this.name)
      .executeTakeFirst();
    return row?.holder === this.holder;
  }

  /** Gives the lease up if this holder has it. */
  async release(): Promise<void> {
    await this.#store.db.deleteFrom("locks").where("name", "=", this.name).where("holder", "=", this.holder).execute();
  }
}
