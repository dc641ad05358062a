import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { AgentwallError } from "../errors.js";
import type { GuardPolicy, GuardVerdict, ScanOptions } from "./pipeline.js";
import type { LinearModel } from "./train.js";

/** Where long texts are scanned ({@link GuardThreads}); every field optional. */
export interface GuardThreadOptions {
  /** Threads (default 1); 0 scans every text on the caller's thread. */
  readonly count?: number;
  /** Texts at least this long go to a thread (default 32,768 characters); shorter ones cost less than the hop. */
  readonly minChars?: number;
  /** A scan not done within this long is ended — its thread replaced — and fails closed (default 30,000 ms). */
  readonly timeoutMs?: number;
  /** Scans waiting for a thread, at most (default 64); one more is refused with `ERR_NOT_READY`. */
  readonly maxQueue?: number;
}

/** What a thread is told of a scan: the caller's options less the cache partition (the cache stays here). */
export type ThreadScanOptions = Pick<
  ScanOptions,
  "direction" | "source" | "trustedSource" | "markedSecrets" | "canaries"
>;

interface Task {
  readonly text: string;
  readonly options: ThreadScanOptions;
  /** The verdict, or undefined when the scan failed (timed out, or its thread died). */
  readonly done: (verdict: GuardVerdict | undefined) => void;
}

interface Slot {
  readonly worker: Worker;
  task: Task | undefined;
  timer: NodeJS.Timeout | undefined;
}

// The thread's entry is this module's sibling, with this module's extension: `.js` when built, `.ts`
// when the test suite runs the sources through tsx — whose loader a worker does not inherit, so the
// bootstrap registers it for a `.ts` entry (tsx is then a development dependency present).
const ENTRY = new URL(`./guard-thread${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;
const BOOTSTRAP = `const { workerData } = require("node:worker_threads");
(async () => {
  if (workerData.entry.endsWith(".ts")) (await import("tsx/esm/api")).register();
  await import(workerData.entry);
})();`;

/**
 * Worker threads that scan long texts, so that a megabyte-long prompt does not stop the event loop —
 * and every other request with it — for the third of a second its scan takes. Each thread runs the
 * same pipeline with the same policy and model, so a verdict is the one the caller's thread would give.
 * A scan that takes longer than the timeout, or whose thread dies, resolves as failed (the caller
 * fails it closed) and its thread is replaced; scans wait in order for a free thread, at most
 * `maxQueue` of them. Threads start on first use and do not keep the process alive while idle.
 */
export class GuardThreads {
  readonly threads: number;
  readonly minChars: number;
  readonly #timeoutMs: number;
  readonly #maxQueue: number;
  readonly #data: { entry: string; policy: GuardPolicy; model: LinearModel | undefined };
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  #closed = false;
  #drained: (() => void) | undefined;
  #scanned = 0;
  #failed = 0;

  constructor(policy: GuardPolicy, model: LinearModel | undefined, options: GuardThreadOptions = {}) {
    const threads = options.count ?? 1;
    const minChars = options.minChars ?? 32_768;
    const timeoutMs = options.timeoutMs ?? 30_000;
    const maxQueue = options.maxQueue ?? 64;
    const check = (ok: boolean, what: string) => {
      if (!ok) throw new AgentwallError("ERR_INVALID_ARGUMENT", `guard threads: ${what}`);
    };
    check(Number.isInteger(threads) && threads >= 0 && threads <= 64, "count is an integer in 0..64");
    check(Number.isInteger(minChars) && minChars >= 1, "minChars is a positive integer");
    check(Number.isInteger(timeoutMs) && timeoutMs >= 1, "timeoutMs is a positive integer");
    check(Number.isInteger(maxQueue) && maxQueue >= 0, "maxQueue is a non-negative integer");
    this.threads = threads;
    this.minChars = minChars;
    this.#timeoutMs = timeoutMs;
    this.#maxQueue = maxQueue;
    this.#data = { entry: ENTRY, policy, model };
  }

  /** Whether a text of this length is scanned on a thread. */
  takes(length: number): boolean {
    return this.threads > 0 && !this.#closed && length >= this.minChars;
  }

  /**
   * Scans on a thread: the verdict, or undefined when the scan failed. Throws `ERR_NOT_READY` when
   * `maxQueue` scans are already waiting, `ERR_INVALID_ARGUMENT` once closed.
   */
  scan(text: string, options: ThreadScanOptions): Promise<GuardVerdict | undefined> {
    if (this.#closed) return Promise.reject(new AgentwallError("ERR_INVALID_ARGUMENT", "the guard threads are closed"));
    if (this.#queue.length >= this.#maxQueue && this.#idle() === undefined)
      return Promise.reject(
        new AgentwallError("ERR_NOT_READY", `the guard threads are busy (${this.#queue.length} scans waiting)`),
      );
    return new Promise((done) => {
      this.#queue.push({ text, options, done });
      this.#dispatch();
    });
  }

  /** Scans the threads finished and failed (timed out, or their thread died) so far, and those waiting. */
  stats(): { scanned: number; failed: number; waiting: number } {
    return { scanned: this.#scanned, failed: this.#failed, waiting: this.#queue.length };
  }

  /** Lets the scans already asked for finish, then ends the threads; no new scan is taken. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#queue.length > 0 || this.#slots.some((s) => s.task !== undefined))
      await new Promise<void>((resolve) => (this.#drained = resolve));
    await Promise.all(this.#slots.splice(0).map((s) => s.worker.terminate()));
  }

  #idle(): Slot | undefined {
    const free = this.#slots.find((s) => s.task === undefined);
    if (free !== undefined || this.#slots.length >= this.threads) return free;
    return this.#start();
  }

  #start(): Slot {
    const worker = new Worker(BOOTSTRAP, { eval: true, workerData: this.#data });
    const slot: Slot = { worker, task: undefined, timer: undefined };
    worker.unref();
    worker.on("message", (reply: { verdict?: GuardVerdict }) => this.#finish(slot, reply.verdict));
    // A thread that fails to start or dies mid-scan: its scan fails closed, the next scan gets a new one.
    const lost = () => {
      if (!this.#slots.includes(slot)) return;
      this.#slots.splice(this.#slots.indexOf(slot), 1);
      this.#finish(slot, undefined);
    };
    worker.on("error", lost);
    worker.on("exit", lost);
    this.#slots.push(slot);
    return slot;
  }

  #dispatch(): void {
    for (;;) {
      const task = this.#queue[0];
      if (task === undefined) break;
      const slot = this.#idle();
      if (slot === undefined) break;
      this.#queue.shift();
      slot.task = task;
      // Kept alive while it scans: a caller awaiting the verdict must not see the process exit under it.
      slot.worker.ref();
      slot.timer = setTimeout(() => {
        this.#slots.splice(this.#slots.indexOf(slot), 1);
        this.#finish(slot, undefined);
        void slot.worker.terminate();
      }, this.#timeoutMs);
      slot.worker.postMessage({ text: task.text, options: task.options });
    }
    if (this.#closed && this.#queue.length === 0 && this.#slots.every((s) => s.task === undefined)) this.#drained?.();
  }

  #finish(slot: Slot, verdict: GuardVerdict | undefined): void {
    const task = slot.task;
    if (task !== undefined) {
      if (verdict === undefined) this.#failed++;
      else this.#scanned++;
    }
    if (slot.timer !== undefined) clearTimeout(slot.timer);
    slot.task = undefined;
    slot.timer = undefined;
    slot.worker.unref();
    task?.done(verdict);
    this.#dispatch();
  }
}
