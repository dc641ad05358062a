// Child process for the durability test: appends as fast as it can from 32 concurrent appenders and
// prints "ack <requestId> <seq>" after each append() resolves, until it is killed.
import { openStore } from "../../src/store/database.js";
import { Keyring } from "../../src/crypto/keyring.js";
import { parseMasterKey } from "../../src/crypto/master-key.js";
import { AuditLog } from "../../src/audit/log.js";

const url = process.env.BURST_DATABASE_URL;
const store = await openStore(
  url ? { kind: "postgres", url } : { kind: "sqlite", path: process.env.BURST_SQLITE_PATH ?? "" },
);
const keyring = await Keyring.open(store, { current: parseMasterKey(process.env.BURST_MASTER_KEY ?? "", "env") });
const log = new AuditLog({ store, keyring });
process.stdout.write("ready\n");
let n = 0;
async function appender(worker: number): Promise<void> {
  for (;;) {
    const requestId = `w${worker}-${n++}`;
    const { seq } = await log.append({
      type: "data_modify",
      actor: `worker-${worker}`,
      action: "burst",
      outcome: "success",
      requestId,
    });
    process.stdout.write(`ack ${requestId} ${seq}\n`);
  }
}
await Promise.all(Array.from({ length: 32 }, (_, i) => appender(i)));
