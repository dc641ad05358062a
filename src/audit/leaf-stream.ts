import { hash } from "node:crypto";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { AgentwallError } from "../errors.js";

/**
 * Recomputed leaves of a range of stored rows, in order, in chunks (32 bytes per leaf), or the first row
 * that is missing or does not match its stored leaf.
 */
export type LeafChunk =
  | { readonly leaves: Buffer; readonly count: number }
  | { readonly problem: "ROW_MISSING" | "ROW_ALTERED"; readonly seq: number };

/** The columns a leaf covers, in order; `leaf` follows them in every row array. */
export const ROW_COLUMNS = [
  "seq",
  "ts",
  "type",
  "actor",
  "action",
  "resource",
  "outcome",
  "ip",
  "user_agent",
  "request_id",
  "kid",
  "details",
] as const;
export const LEAF_INDEX = ROW_COLUMNS.length;

/**
 * The leaf of a row given as values in {@link ROW_COLUMNS} order (extra trailing values are ignored),
 * as hex: SHA-256 of 0x00 followed by the UTF-8 JSON text, hashed in one shot from the string.
 */
export function leafOfFields(values: readonly unknown[]): string {
  const json = JSON.stringify(values.length === LEAF_INDEX ? values : values.slice(0, LEAF_INDEX));
  return hash("sha256", "\u0000" + json, "hex");
}

/**
 * Checks a page of rows (arrays: the leaf's columns, then the stored leaf) against the expected next
 * sequence number. Returns the packed leaves and how many rows passed, and the problem that stopped it.
 */
export function checkRows(
  rows: readonly (readonly unknown[])[],
  nextSeq: number,
): { leaves: Buffer; count: number; problem?: { problem: "ROW_MISSING" | "ROW_ALTERED"; seq: number } } {
  const leaves = Buffer.alloc(rows.length * 32);
  let count = 0;
  for (const row of rows) {
    const want = nextSeq + count;
    if (row[0] !== want) return { leaves, count, problem: { problem: "ROW_MISSING", seq: want } };
    const leaf = leafOfFields(row);
    if (leaf !== row[LEAF_INDEX]) return { leaves, count, problem: { problem: "ROW_ALTERED", seq: want } };
    leaves.write(leaf, count * 32, "hex");
    count += 1;
  }
  return { leaves, count };
}

// The worker is evaluated from this string so it needs no file of its own (it runs the same way from
// src/ under tsx and from dist/). It repeats checkRows: a worker cannot import TypeScript source.
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { hash } = require("node:crypto");
const Database = require(workerData.sqliteModule);
const db = new Database(workerData.path, { readonly: true, fileMustExist: true });
db.pragma("busy_timeout = 10000");
const page = db.prepare(workerData.sql).raw(true);
const LEAF_INDEX = workerData.leafIndex;
let next = workerData.from + 1;
let credits = 4;
let finished = false;
function pump() {
  while (credits > 0 && !finished) {
    const rows = page.all(next - 1, workerData.upTo, workerData.page);
    if (rows.length === 0) { finished = true; parentPort.postMessage({ done: true }); return; }
    const leaves = new Uint8Array(rows.length * 32);
    const buffer = Buffer.from(leaves.buffer);
    let count = 0;
    let problem;
    for (const row of rows) {
      const want = next + count;
      if (row[0] !== want) { problem = { problem: "ROW_MISSING", seq: want }; break; }
      const leaf = hash("sha256", "\\u0000" + JSON.stringify(row.length === LEAF_INDEX ? row : row.slice(0, LEAF_INDEX)), "hex");
      if (leaf !== row[LEAF_INDEX]) { problem = { problem: "ROW_ALTERED", seq: want }; break; }
      buffer.write(leaf, count * 32, "hex");
      count += 1;
    }
    next += count;
    credits -= 1;
    parentPort.postMessage({ leaves, count, problem }, [leaves.buffer]);
    if (problem) { finished = true; return; }
  }
}
parentPort.on("message", (n) => { credits += n; pump(); });
pump();
`;

/**
 * Reads rows `from+1 .. upTo` of a SQLite audit log on a worker thread with its own read-only
 * connection, recomputing leaves there, while the caller folds them into the Merkle tree: verifying a
 * million entries uses both cores instead of one. Rows up to `upTo` are committed and immutable, so the
 * second connection sees exactly what the caller would.
 */
export async function* workerLeafChunks(options: {
  path: string;
  from: number;
  upTo: number;
  pageSize: number;
}): AsyncGenerator<LeafChunk> {
  const sql = `select ${ROW_COLUMNS.join(", ")}, leaf from audit_events where seq > ? and seq <= ? order by seq limit ?`;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      sqliteModule: createRequire(import.meta.url).resolve("better-sqlite3"),
      path: options.path,
      sql,
      from: options.from,
      upTo: options.upTo,
      page: options.pageSize,
      leafIndex: LEAF_INDEX,
    },
  });
  type Message =
    | { done: true }
    | { leaves: Uint8Array; count: number; problem?: { problem: "ROW_MISSING" | "ROW_ALTERED"; seq: number } };
  const queue: Message[] = [];
  let failure: unknown;
  let exited = false;
  let wake: (() => void) | undefined;
  worker.on("message", (m: Message) => {
    queue.push(m);
    wake?.();
  });
  worker.on("error", (error) => {
    failure = error;
    wake?.();
  });
  worker.on("exit", () => {
    exited = true;
    wake?.();
  });
  try {
    for (;;) {
      while (queue.length === 0 && failure === undefined && !exited) {
        await new Promise<void>((resolve) => (wake = resolve));
      }
      if (queue.length === 0 && failure === undefined) failure = new Error("the reader stopped early");
      if (failure !== undefined && queue.length === 0)
        throw new AgentwallError("ERR_DATABASE_UNAVAILABLE", "audit verification reader failed", { cause: failure });
      const message = queue.shift() as Message;
      if ("done" in message) return;
      yield {
        leaves: Buffer.from(message.leaves.buffer, message.leaves.byteOffset, message.leaves.byteLength),
        count: message.count,
      };
      if (message.problem !== undefined) {
        yield message.problem;
        return;
      }
      worker.postMessage(1);
    }
  } finally {
    await worker.terminate();
  }
}
