import { AgentwallError } from "../errors.js";

/** Default largest frame payload: 1 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;
const HEADER = 4;

/** One frame: a 4-byte big-endian payload length, then the payload. */
export function encodeFrame(payload: Buffer, maxBytes: number = DEFAULT_MAX_FRAME_BYTES): Buffer {
  if (payload.length > maxBytes)
    throw new AgentwallError("ERR_CHANNEL_FRAME_TOO_LARGE", `frame of ${payload.length} bytes exceeds ${maxBytes}`);
  const frame = Buffer.allocUnsafe(HEADER + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, HEADER);
  return frame;
}

/**
 * Splits a byte stream into frames. It never holds more than one frame's header and payload: a
 * header declaring more than `maxBytes` throws at once, before any of that payload is buffered.
 */
export class FrameDecoder {
  readonly #max: number;
  #parts: Buffer[] = [];
  #buffered = 0;
  /** Length of the frame being read, once its header is complete. */
  #expected: number | undefined;

  constructor(maxBytes: number = DEFAULT_MAX_FRAME_BYTES) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1 || maxBytes > 0xffffffff)
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "maxBytes must be an integer in [1, 2^32-1]");
    this.#max = maxBytes;
  }

  /** Feeds bytes; returns the payloads completed by them, in order. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let data = chunk;
    while (data.length > 0) {
      if (this.#expected === undefined) {
        const need = HEADER - this.#buffered;
        this.#parts.push(data.subarray(0, need));
        this.#buffered += Math.min(need, data.length);
        data = data.subarray(need);
        if (this.#buffered < HEADER) break;
        const length = Buffer.concat(this.#parts).readUInt32BE(0);
        this.#parts = [];
        this.#buffered = 0;
        if (length > this.#max)
          throw new AgentwallError("ERR_CHANNEL_FRAME_TOO_LARGE", `frame of ${length} bytes exceeds ${this.#max}`);
        this.#expected = length;
      }
      const need = this.#expected - this.#buffered;
      const take = data.subarray(0, need);
      this.#parts.push(take);
      this.#buffered += take.length;
      data = data.subarray(take.length);
      if (this.#buffered === this.#expected) {
        out.push(this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts));
        this.#parts = [];
        this.#buffered = 0;
        this.#expected = undefined;
      }
    }
    return out;
  }

  /** True when no partial frame is held. */
  get idle(): boolean {
    return this.#expected === undefined && this.#buffered === 0;
  }

  /** Call when the stream ended: throws when it ended inside a frame. */
  end(): void {
    if (!this.idle)
      throw new AgentwallError("ERR_CHANNEL_FRAME_TRUNCATED", "the connection ended in the middle of a frame");
  }
}
