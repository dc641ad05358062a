// An append() that resolved is on disk: kill -9 the appender mid-burst and every acknowledged event
// is still there, and the log still verifies.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { AuditLog } from "../src/audit/log.js";
import { Keyring } from "../src/crypto/keyring.js";
import { parseMasterKey } from "../src/crypto/master-key.js";
import { openStore, type StoreLocation } from "../src/store/database.js";
import { freshPostgresDatabase, postgresReachable, tempDir } from "./helpers.js";

/** Starts `processes` appender children on one database, kills them all with SIGKILL after `acks` each. */
async function burstAndKill(
  location: StoreLocation,
  env: Record<string, string>,
  processes = 1,
  acks = 3000,
): Promise<void> {
  const masterKey = randomBytes(32).toString("hex");
  const acked = new Map<string, number>();
  await Promise.all(
    Array.from({ length: processes }, async (_, p) => {
      const child = spawn(process.execPath, ["--import", "tsx", join(import.meta.dirname, "children/audit-burst.ts")], {
        env: { ...process.env, ...env, BURST_MASTER_KEY: masterKey },
        stdio: ["ignore", "pipe", "inherit"],
      });
      const exited = new Promise<NodeJS.Signals | null>((resolve) =>
        child.on("exit", (_code, signal) => resolve(signal)),
      );
      let mine = 0;
      for await (const line of createInterface({ input: child.stdout })) {
        const m = /^ack (\S+) (\d+)$/.exec(line);
        if (m === null) continue;
        acked.set(`p${p}-${m[1]}`, Number(m[2]));
        if (++mine === acks) child.kill("SIGKILL");
      }
      assert.equal(await exited, "SIGKILL");
      assert.ok(mine >= acks, `${mine} acknowledged`);
    }),
  );

  const store = await openStore(location);
  try {
    const keyring = await Keyring.open(store, { current: parseMasterKey(masterKey, "test") });
    const rows = await store.db.selectFrom("audit_events").select(["seq", "request_id"]).execute();
    const bySeq = new Map(rows.map((r) => [r.seq, r.request_id]));
    let lost = 0;
    for (const [id, seq] of acked) if (bySeq.get(seq) !== id.slice(id.indexOf("-") + 1)) lost += 1;
    assert.equal(lost, 0, `${lost} acknowledged events lost out of ${acked.size}`);
    assert.equal(new Set(acked.values()).size, acked.size, "two appenders were given the same sequence number");
    const result = await new AuditLog({ store, keyring }).verify();
    assert.ok(result.ok, JSON.stringify(result));
    assert.ok(result.size >= acked.size);
  } finally {
    await store.close();
  }
}

describe("audit durability under SIGKILL", async () => {
  it("SQLite: no acknowledged event is lost", async () => {
    const path = join(tempDir(), "burst.db");
    await burstAndKill({ kind: "sqlite", path }, { BURST_SQLITE_PATH: path });
  });

  const pg = await postgresReachable();
  it("PostgreSQL: no acknowledged event is lost", { skip: !pg && "PostgreSQL unreachable" }, async () => {
    const url = await freshPostgresDatabase();
    await burstAndKill({ kind: "postgres", url }, { BURST_DATABASE_URL: url });
  });

  it(
    "PostgreSQL: two processes appending to one database produce one valid log",
    { skip: !pg && "PostgreSQL unreachable" },
    async () => {
      const url = await freshPostgresDatabase();
      await burstAndKill({ kind: "postgres", url }, { BURST_DATABASE_URL: url }, 2, 1500);
    },
  );

  it("SQLite: two processes appending to one file produce one valid log", async () => {
    const path = join(tempDir(), "burst2.db");
    await burstAndKill({ kind: "sqlite", path }, { BURST_SQLITE_PATH: path }, 2, 1500);
  });
});
