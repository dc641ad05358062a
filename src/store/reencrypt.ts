import type { AuditSink } from "../audit/event.js";
import type { Keyring } from "../crypto/keyring.js";
import type { Store } from "./database.js";
import type { RecordStore } from "./records.js";

export interface ReencryptProgress {
  readonly phase: "records" | "vault";
  readonly done: number;
  readonly total: number;
}

const JOB = "reencrypt";

/**
 * `agentwall data reencrypt`: retires the `records` and `vault` data keys, then re-encrypts every record
 * and vault version still under a retired key. The job's cursor is kept in the `jobs` table after every
 * batch, so a run that was interrupted resumes where it stopped instead of rotating again. Audit rows are
 * never rewritten (their Merkle leaves cover the ciphertext); only their data keys are re-wrapped by a
 * master-key rotation.
 */
export async function reencryptStoredData(options: {
  store: Store;
  keyring: Keyring;
  records: Pick<RecordStore, "count" | "reencryptBatch">;
  vault: { reencryptAll(): Promise<{ seen: number; rewritten: number }> };
  audit: AuditSink;
  actor: string;
  batch?: number;
  onProgress?: (p: ReencryptProgress) => void;
  now?: () => number;
}): Promise<{ resumed: boolean; records: number; vault: number }> {
  const { store, keyring, records } = options;
  const now = options.now ?? Date.now;
  const db = store.db;
  const job = await db.selectFrom("jobs").selectAll().where("name", "=", JOB).executeTakeFirst();
  const resumed = job !== undefined && job.state === "running";
  let cursor = "";
  let rewritten = 0;
  if (resumed) {
    const detail = JSON.parse(job.detail) as { cursor?: unknown; rewritten?: unknown };
    cursor = typeof detail.cursor === "string" ? detail.cursor : "";
    rewritten = typeof detail.rewritten === "number" ? detail.rewritten : 0;
  } else {
    const retired = (await keyring.rotateDataKeys("records")) + (await keyring.rotateDataKeys("vault"));
    const t = now();
    const row = {
      name: JOB,
      state: "running",
      detail: JSON.stringify({ cursor, rewritten }),
      started_at: t,
      updated_at: t,
    };
    await db
      .insertInto("jobs")
      .values(row)
      .onConflict((oc) =>
        oc.column("name").doUpdateSet({ state: "running", detail: row.detail, started_at: t, updated_at: t }),
      )
      .execute();
    await options.audit.append({
      type: "key_rotated",
      actor: options.actor,
      action: "data.reencrypt.start",
      resource: "data_keys",
      outcome: "success",
      details: { retiredDataKeys: retired },
    });
  }
  const total = await records.count();
  let done = 0;
  options.onProgress?.({ phase: "records", done, total });
  for (;;) {
    const step = await records.reencryptBatch(cursor, options.batch ?? 200);
    done += step.seen;
    rewritten += step.rewritten;
    if (step.cursor === undefined) break;
    cursor = step.cursor;
    await db
      .updateTable("jobs")
      .set({ detail: JSON.stringify({ cursor, rewritten }), updated_at: now() })
      .where("name", "=", JOB)
      .execute();
    options.onProgress?.({ phase: "records", done, total: Math.max(total, done) });
  }
  options.onProgress?.({ phase: "records", done: Math.max(total, done), total: Math.max(total, done) });
  const vault = await options.vault.reencryptAll();
  options.onProgress?.({ phase: "vault", done: vault.seen, total: vault.seen });
  await db
    .updateTable("jobs")
    .set({ state: "done", detail: JSON.stringify({ cursor: "", rewritten }), updated_at: now() })
    .where("name", "=", JOB)
    .execute();
  await options.audit.append({
    type: "key_rotated",
    actor: options.actor,
    action: "data.reencrypt.done",
    resource: "data_keys",
    outcome: "success",
    details: { records: rewritten, vault: vault.rewritten, resumed },
  });
  return { resumed, records: rewritten, vault: vault.rewritten };
}
