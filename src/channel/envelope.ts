import { randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { AgentwallError } from "../errors.js";

const DOMAIN = "agentwall-channel-v1\n";
const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const TYPE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;
const NONCE = /^[A-Za-z0-9_-]{16,64}$/;
const SIGNATURE = /^[A-Za-z0-9_-]{86}$/;

/** A signed message as it travels: every field but `sig` is covered by the signature. */
export interface SignedEnvelope {
  readonly v: 1;
  readonly from: string;
  readonly to: string;
  readonly type: string;
  /** Sender's clock, ms since the epoch. */
  readonly ts: number;
  readonly nonce: string;
  /** Nonce of the message this answers, or empty. */
  readonly re: string;
  /** The message body as JSON text (signed as these exact bytes). */
  readonly payload: string;
  /** Ed25519 signature, base64url. */
  readonly sig: string;
}

/** A message after its envelope verified. */
export interface ChannelMessage {
  readonly from: string;
  readonly to: string;
  readonly type: string;
  readonly ts: number;
  readonly nonce: string;
  readonly re: string;
  readonly payload: unknown;
}

function signedBytes(e: Omit<SignedEnvelope, "sig">): Buffer {
  return Buffer.from(DOMAIN + JSON.stringify([e.v, e.from, e.to, e.type, e.ts, e.nonce, e.re, e.payload]), "utf8");
}

/** Signs a message from `from` to `to` with the sender's Ed25519 key (the one its certificate carries). */
export function signEnvelope(
  privateKey: KeyObject,
  message: { from: string; to: string; type: string; payload: unknown; re?: string; ts?: number; nonce?: string },
): SignedEnvelope {
  if (!ID.test(message.from) || !ID.test(message.to))
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "from and to must be agent ids");
  if (!TYPE.test(message.type)) throw new AgentwallError("ERR_INVALID_ARGUMENT", "type must be 1-128 safe characters");
  const payload = JSON.stringify(message.payload);
  if (typeof payload !== "string") throw new AgentwallError("ERR_INVALID_ARGUMENT", "payload must be JSON");
  const unsigned = {
    v: 1 as const,
    from: message.from,
    to: message.to,
    type: message.type,
    ts: message.ts ?? Date.now(),
    nonce: message.nonce ?? randomBytes(16).toString("base64url"),
    re: message.re ?? "",
    payload,
  };
  return { ...unsigned, sig: sign(null, signedBytes(unsigned), privateKey).toString("base64url") };
}

function isEnvelope(v: unknown): v is SignedEnvelope {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const e = v as Record<string, unknown>;
  return (
    Object.keys(e).length === 9 &&
    e.v === 1 &&
    typeof e.from === "string" &&
    ID.test(e.from) &&
    typeof e.to === "string" &&
    ID.test(e.to) &&
    typeof e.type === "string" &&
    TYPE.test(e.type) &&
    typeof e.ts === "number" &&
    Number.isSafeInteger(e.ts) &&
    typeof e.nonce === "string" &&
    NONCE.test(e.nonce) &&
    typeof e.re === "string" &&
    (e.re === "" || NONCE.test(e.re)) &&
    typeof e.payload === "string" &&
    typeof e.sig === "string" &&
    SIGNATURE.test(e.sig)
  );
}

/**
 * Remembers nonces per sender for the acceptance window. Bounded: when every slot holds a nonce that
 * is still inside the window, new messages are refused (`ERR_CHANNEL_REPLAY_CACHE_FULL`) — forgetting a
 * live nonce would let its message be replayed. Messages stamped before the guard was created (the
 * process start) are refused, so a restart, which empties the cache, does not reopen the window.
 */
export class ReplayGuard {
  readonly #windowMs: number;
  readonly #capacity: number;
  readonly #startedAt: number;
  readonly #now: () => number;
  readonly #perSender: number;
  /** `sender nonce` → [time after which the entry can go (its message would be stale anyway), sender]. */
  readonly #seen = new Map<string, readonly [number, string]>();
  /** Live entries per sender: one peer cannot fill the cache and lock the others out. */
  readonly #bySender = new Map<string, number>();
  /**
   * Keys by when they can go, in slices of {@link #slice} ms, so pruning visits only what expired: a
   * walk over every entry, as pruning was, cost a sender at its share the whole cache per message it
   * sent (100,000 entries by default) — an authenticated peer could keep the process busy that way.
   */
  readonly #expiring = new Map<number, string[]>();
  readonly #slice: number;
  /** Slices before this one have been pruned. */
  #prunedUpTo: number;

  /**
   * @param options.perSender Live nonces one sender may hold (default: a quarter of `capacity`, at
   *   least `min(capacity, 1000)`): a peer that floods signed messages fills its own share, not the
   *   cache every other peer needs.
   */
  constructor(options: { windowMs?: number; capacity?: number; perSender?: number; now?: () => number } = {}) {
    this.#windowMs = options.windowMs ?? 30_000;
    this.#capacity = options.capacity ?? 100_000;
    this.#perSender = options.perSender ?? Math.max(Math.ceil(this.#capacity / 4), Math.min(this.#capacity, 1000));
    if (
      !(this.#windowMs > 0) ||
      !Number.isSafeInteger(this.#capacity) ||
      this.#capacity < 1 ||
      !Number.isSafeInteger(this.#perSender) ||
      this.#perSender < 1
    )
      throw new AgentwallError(
        "ERR_INVALID_ARGUMENT",
        "windowMs must be positive, capacity and perSender positive integers",
      );
    this.#now = options.now ?? Date.now;
    this.#startedAt = this.#now();
    this.#slice = Math.max(1, Math.floor(this.#windowMs / 100));
    this.#prunedUpTo = Math.floor(this.#startedAt / this.#slice);
  }

  get size(): number {
    return this.#seen.size;
  }

  /** Admits a (sender, nonce, timestamp) once; throws for stale, replayed or when full. */
  admit(sender: string, nonce: string, ts: number): void {
    const now = this.#now();
    if (ts < this.#startedAt)
      throw new AgentwallError("ERR_CHANNEL_STALE", "the message is older than this process (sent before a restart)");
    if (Math.abs(now - ts) > this.#windowMs)
      throw new AgentwallError("ERR_CHANNEL_STALE", `the message's timestamp is more than ${this.#windowMs} ms off`);
    const key = `${sender} ${nonce}`;
    if (this.#seen.has(key)) throw new AgentwallError("ERR_CHANNEL_REPLAY", "the message was already received");
    this.#prune(now);
    if (this.#seen.size >= this.#capacity)
      throw new AgentwallError("ERR_CHANNEL_REPLAY_CACHE_FULL", "too many messages inside the replay window");
    const held = this.#bySender.get(sender) ?? 0;
    if (held >= this.#perSender)
      throw new AgentwallError(
        "ERR_CHANNEL_REPLAY_CACHE_FULL",
        "this sender has too many messages inside the replay window",
      );
    const until = ts + this.#windowMs;
    this.#seen.set(key, [until, sender]);
    this.#bySender.set(sender, held + 1);
    // Not before the slices already pruned (the clock went back): such an entry stays a little longer.
    const slice = Math.max(Math.floor(until / this.#slice), this.#prunedUpTo);
    const keys = this.#expiring.get(slice);
    if (keys === undefined) this.#expiring.set(slice, [key]);
    else keys.push(key);
  }

  /**
   * Forgets the entries of every slice that ended by `now` (their messages would be stale); an entry
   * stays at most one slice (1 % of the window) past its time, never less.
   */
  #prune(now: number): void {
    const upTo = Math.floor(now / this.#slice);
    if (upTo <= this.#prunedUpTo) return;
    const forget = (keys: readonly string[]) => {
      for (const key of keys) {
        const entry = this.#seen.get(key);
        if (entry === undefined) continue;
        this.#seen.delete(key);
        const left = (this.#bySender.get(entry[1]) ?? 1) - 1;
        if (left === 0) this.#bySender.delete(entry[1]);
        else this.#bySender.set(entry[1], left);
      }
    };
    if (upTo - this.#prunedUpTo <= this.#expiring.size) {
      for (let slice = this.#prunedUpTo; slice < upTo; slice++) {
        const keys = this.#expiring.get(slice);
        if (keys === undefined) continue;
        forget(keys);
        this.#expiring.delete(slice);
      }
    } else {
      // Long idle: fewer slices held than elapsed, so look at those held.
      for (const [slice, keys] of this.#expiring) {
        if (slice >= upTo) continue;
        forget(keys);
        this.#expiring.delete(slice);
      }
    }
    this.#prunedUpTo = upTo;
  }
}

/**
 * Parses and checks one envelope: shape, sender = the authenticated peer, recipient = us, signature
 * with the sender's certificate key, then time window and nonce. The nonce is only recorded after the
 * signature verified, so unsigned junk cannot fill the cache.
 */
export function openEnvelope(
  text: string,
  expect: { from: string; to: string; publicKey: KeyObject; replay: ReplayGuard },
): ChannelMessage {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AgentwallError("ERR_CHANNEL_MESSAGE_INVALID", "the frame is not JSON");
  }
  if (!isEnvelope(parsed)) throw new AgentwallError("ERR_CHANNEL_MESSAGE_INVALID", "not a signed message envelope");
  if (parsed.from !== expect.from)
    throw new AgentwallError("ERR_CHANNEL_MISADDRESSED", "the sender is not the authenticated peer");
  if (parsed.to !== expect.to) throw new AgentwallError("ERR_CHANNEL_MISADDRESSED", "the message is for another agent");
  const { sig, ...unsigned } = parsed;
  if (!verify(null, signedBytes(unsigned), expect.publicKey, Buffer.from(sig, "base64url")))
    throw new AgentwallError("ERR_CHANNEL_SIGNATURE", "the message signature does not verify");
  expect.replay.admit(parsed.from, parsed.nonce, parsed.ts);
  let payload: unknown;
  try {
    payload = JSON.parse(parsed.payload);
  } catch {
    throw new AgentwallError("ERR_CHANNEL_MESSAGE_INVALID", "the payload is not JSON");
  }
  return {
    from: parsed.from,
    to: parsed.to,
    type: parsed.type,
    ts: parsed.ts,
    nonce: parsed.nonce,
    re: parsed.re,
    payload,
  };
}
