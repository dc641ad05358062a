import { closeSync, fsyncSync, openSync, writeSync } from "node:fs";
import type { Writable } from "node:stream";
import { AgentwallError, isAgentwallError } from "../errors.js";
import type { Store } from "../store/database.js";
import { Lease } from "../store/lease.js";
import type { AuditRecord } from "./event.js";
import type { AuditLog } from "./log.js";

/** Where audit events are shipped: each call gets one batch of JSON Lines, in sequence order. */
export interface AuditShipSink {
  /** Stable name: the shipping cursor is kept under it (a renamed sink starts from the beginning). */
  readonly name: string;
  /** Delivers the lines or throws; the batch is sent again until this resolves (at-least-once). */
  write(lines: string): Promise<void>;
  close?(): Promise<void>;
}

/** Appends to a JSON Lines file (0600), flushed to disk before the cursor moves. */
export class FileShipSink implements AuditShipSink {
  readonly name: string;
  readonly #path: string;
  constructor(path: string) {
    this.#path = path;
    this.name = `file:${path}`;
  }
  write(lines: string): Promise<void> {
    const fd = openSync(this.#path, "a", 0o600);
    try {
      writeSync(fd, lines);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return Promise.resolve();
  }
}

/** Writes to a stream (stdout for a container's log collector); done when the stream took the data. */
export class StreamShipSink implements AuditShipSink {
  readonly name: string;
  readonly #stream: Writable;
  constructor(stream: Writable, name = "stdout") {
    this.#stream = stream;
    this.name = name;
  }
  write(lines: string): Promise<void> {
    return new Promise((resolve, reject) => this.#stream.write(lines, (error) => (error ? reject(error) : resolve())));
  }
}

/**
 * POSTs each batch as `application/x-ndjson` through a caller-supplied sender (the gateway passes its
 * egress client's operator destination). Any answer but 2xx is a failure and the batch is retried.
 */
export class HttpShipSink implements AuditShipSink {
  readonly name: string;
  readonly #send: (body: string) => Promise<number>;
  readonly #close: (() => Promise<void>) | undefined;
  constructor(name: string, send: (body: string) => Promise<number>, close?: () => Promise<void>) {
    this.name = name;
    this.#send = send;
    this.#close = close;
  }
  async write(lines: string): Promise<void> {
    const status = await this.#send(lines);
    if (status < 200 || status >= 300)
      throw new AgentwallError("ERR_EGRESS_FAILED", `the audit sink answered ${status}`);
  }
  async close(): Promise<void> {
    await this.#close?.();
  }
}

/** Options of {@link AuditShipper}. */
export interface AuditShipperOptions {
  readonly audit: AuditLog;
  readonly store: Store;
  readonly sinks: readonly AuditShipSink[];
  /** How often new events are looked for (ms, default 1000). */
  readonly intervalMs?: number;
  /** Events per batch (default 500, at most 1000). */
  readonly batch?: number;
  /** Told about every failed delivery (the shipper keeps trying, backing off up to 30 s). */
  readonly onError?: (sink: string, error: unknown) => void;
  readonly now?: () => number;
}

interface SinkState {
  readonly sink: AuditShipSink;
  cursor: number | undefined;
  failures: number;
  retryAt: number;
}

const JOB_PREFIX = "audit-ship:";

/**
 * Ships the audit trail to outside sinks (JSON Lines file, stdout, HTTP): every committed event, in
 * sequence order, as the record `audit export` prints (details decrypted; they hold no secrets — they
 * were redacted before they were stored). Reads from the database, not from memory, so nothing is lost
 * to a crash or a restart: each sink's cursor (the last sequence number it acknowledged) is kept in the
 * `jobs` table and moves only after the sink took the batch — delivery is at-least-once, and a
 * receiver de-duplicates by `seq`. With several instances one of them ships (a lease in the database).
 *
 * @example
 * ```ts
 * const shipper = new AuditShipper({ audit, store, sinks: [new FileShipSink("/var/log/agentwall.jsonl")] });
 * shipper.start();
 * ```
 */
export class AuditShipper {
  readonly #audit: AuditLog;
  readonly #store: Store;
  readonly #sinks: SinkState[];
  readonly #intervalMs: number;
  readonly #batch: number;
  #onError: AuditShipperOptions["onError"];
  readonly #now: () => number;
  readonly #lease: Lease;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: AuditShipperOptions) {
    const batch = options.batch ?? 500;
    if (!Number.isInteger(batch) || batch < 1 || batch > 1000)
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "batch must be an integer in 1..1000");
    const names = new Set(options.sinks.map((s) => s.name));
    if (names.size !== options.sinks.length)
      throw new AgentwallError("ERR_CONFIG_INVALID", "config field /audit/ship: two sinks have the same name");
    this.#audit = options.audit;
    this.#store = options.store;
    this.#sinks = options.sinks.map((sink) => ({ sink, cursor: undefined, failures: 0, retryAt: 0 }));
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#batch = batch;
    this.#onError = options.onError;
    this.#now = options.now ?? Date.now;
    this.#lease = new Lease(options.store, "audit-ship", { now: this.#now });
  }

  /** Ships now and then every `intervalMs` until {@link stop}; `onError` replaces the constructor's. */
  start(onError?: AuditShipperOptions["onError"]): void {
    if (onError !== undefined) this.#onError = onError;
    if (this.#timer !== undefined || this.#sinks.length === 0) return;
    const tick = () => {
      this.#running ??= this.ship().finally(() => (this.#running = undefined));
    };
    this.#timer = setInterval(tick, this.#intervalMs);
    this.#timer.unref();
    tick();
  }

  /**
   * One pass: while this instance holds the lease, each sink that is not backing off gets every event
   * after its cursor, batch by batch. Failures are reported and retried later, never thrown.
   */
  async ship(): Promise<void> {
    if (this.#stopped || this.#sinks.length === 0) return;
    let leader: boolean;
    try {
      leader = await this.#lease.acquire();
    } catch (error) {
      this.#onError?.("lease", error);
      return;
    }
    if (!leader) return;
    await this.#audit.flush();
    for (const state of this.#sinks) {
      if (this.#now() < state.retryAt) continue;
      try {
        await this.#shipTo(state);
        state.failures = 0;
        state.retryAt = 0;
      } catch (error) {
        state.failures += 1;
        state.retryAt = this.#now() + Math.min(30_000, 500 * 2 ** Math.min(state.failures, 6));
        this.#onError?.(state.sink.name, error);
      }
    }
  }

  async #shipTo(state: SinkState): Promise<void> {
    state.cursor ??= await this.#readCursor(state.sink.name);
    while (!this.#stopped) {
      const page = await this.#audit.query({ cursor: state.cursor, ascending: true, limit: this.#batch });
      if (page.events.length === 0) return;
      await state.sink.write(page.events.map((e: AuditRecord) => JSON.stringify(e) + "\n").join(""));
      const last: number = page.events.at(-1)?.seq ?? state.cursor;
      await this.#writeCursor(state.sink.name, last);
      state.cursor = last;
      if (page.events.length < this.#batch) return;
    }
  }

  async #readCursor(name: string): Promise<number> {
    const row = await this.#store.db
      .selectFrom("jobs")
      .select("detail")
      .where("name", "=", JOB_PREFIX + name)
      .executeTakeFirst();
    if (row === undefined) return 0;
    const seq = (JSON.parse(row.detail) as { seq?: unknown }).seq;
    return typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 0 ? seq : 0;
  }

  async #writeCursor(name: string, seq: number): Promise<void> {
    const now = this.#now();
    const detail = JSON.stringify({ seq });
    await this.#store.db
      .insertInto("jobs")
      .values({ name: JOB_PREFIX + name, state: "running", detail, started_at: now, updated_at: now })
      .onConflict((oc) => oc.column("name").doUpdateSet({ detail, updated_at: now }))
      .execute();
  }

  /** The lowest sequence number every sink has acknowledged (0 before any): what retention may prune. */
  async shippedThrough(): Promise<number> {
    let lowest = Number.MAX_SAFE_INTEGER;
    for (const s of this.#sinks) lowest = Math.min(lowest, await this.#readCursor(s.sink.name));
    return lowest;
  }

  /**
   * Per sink: events committed but not acknowledged, and the time of the oldest of them (undefined when
   * none wait). The shipper runs every second, so a wait of minutes means the sink is stuck — and,
   * since retention keeps what a sink has not taken, that the log is growing.
   */
  async status(): Promise<{ sink: string; lag: number; oldestWaiting: number | undefined }[]> {
    const { size } = await this.#audit.head();
    const out = [];
    for (const s of this.#sinks) {
      const cursor = await this.#readCursor(s.sink.name);
      const next = size > cursor ? await this.#audit.query({ cursor, ascending: true, limit: 1 }) : undefined;
      out.push({ sink: s.sink.name, lag: Math.max(0, size - cursor), oldestWaiting: next?.events[0]?.ts });
    }
    return out;
  }

  /** Events committed but not yet acknowledged, per sink (from the database: true for every instance). */
  async lag(): Promise<Record<string, number>> {
    const { size } = await this.#audit.head();
    const out: Record<string, number> = {};
    for (const s of this.#sinks) out[s.sink.name] = Math.max(0, size - (await this.#readCursor(s.sink.name)));
    return out;
  }

  /**
   * Stops the timer and, if it was started, makes a last pass (best effort: what it cannot ship stays for
   * the next start); gives up the lease and closes the sinks.
   */
  async stop(): Promise<void> {
    const started = this.#timer !== undefined;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
    if (started) {
      for (const s of this.#sinks) s.retryAt = 0;
      await this.ship().catch(() => undefined);
    }
    this.#stopped = true;
    // Another instance (or this one restarted) takes over at once instead of after the lease expires.
    await this.#lease.release().catch(() => undefined);
    for (const s of this.#sinks) await s.sink.close?.().catch(() => undefined);
  }
}

/** An error's stable code for logs (never its message: a sink's error can quote a URL with a token). */
export function shipErrorCode(error: unknown): string {
  return isAgentwallError(error) ? error.code : "ERR_EGRESS_FAILED";
}
