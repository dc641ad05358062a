import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AgentwallError } from "../errors.js";
import { AES_KEY_BYTES, GCM_TAG_BYTES } from "./aead.js";
import type { DecryptSecret } from "./envelope.js";
import { KDF_LIMITS, SCRYPT_DEFAULT, checkKdfParams, derivePasswordKey, type KdfParams } from "./kdf.js";

/**
 * Streaming file encryption in the STREAM construction (as in age and Tink): a per-file key from HKDF
 * over the user's key (or password-derived key) and a random file salt; the plaintext cut into chunks,
 * each sealed with AES-256-GCM under the nonce `index (8 bytes) ‖ 0 0 0 ‖ final flag`, with the whole
 * header as associated data. Dropping the tail, reordering, repeating or splicing chunks from another
 * file all fail authentication; memory stays at one chunk whatever the file size.
 *
 * Layout: `AWF1 ‖ kdf id ‖ kdf params ‖ [password salt 16] ‖ file salt 16 ‖ chunk size u32` then chunks of
 * `chunk size + 16` bytes; the last chunk (0..chunk size bytes of plaintext + 16) carries the final flag.
 */
const MAGIC = Buffer.from("AWF1", "latin1");
export const DEFAULT_CHUNK_BYTES = 64 * 1024;
const MIN_CHUNK = 1024;
const MAX_CHUNK = 16 * 1024 * 1024;
const KDF_ID = { none: 0, scrypt: 1, "pbkdf2-sha256": 2 } as const;

const fail = (): never => {
  throw new AgentwallError("ERR_DECRYPT", "decryption failed");
};

function nonce(index: bigint, final: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(index);
  n[11] = final ? 1 : 0;
  return n;
}

function fileKey(root: Uint8Array, fileSalt: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", root, fileSalt, "agentwall/file/v1", AES_KEY_BYTES));
}

async function rootKey(secret: DecryptSecret, kdf: KdfParams | null, salt: Buffer | null): Promise<Uint8Array> {
  if ("key" in secret) {
    if (kdf !== null || secret.key.length !== AES_KEY_BYTES) return fail();
    return secret.key;
  }
  if (kdf === null || salt === null) return fail();
  const password = typeof secret.password === "string" ? Buffer.from(secret.password, "utf8") : secret.password;
  if (password.length === 0) throw new AgentwallError("ERR_INVALID_ARGUMENT", "a password must not be empty");
  return derivePasswordKey(password, salt, kdf, KDF_LIMITS);
}

function encodeHeader(kdf: KdfParams | null, salt: Buffer | null, fileSalt: Buffer, chunk: number): Buffer {
  const parts: Buffer[] = [MAGIC, Buffer.from([kdf === null ? KDF_ID.none : KDF_ID[kdf.name]])];
  if (kdf?.name === "scrypt") parts.push(Buffer.from([kdf.log2N, kdf.r, kdf.p]));
  if (kdf?.name === "pbkdf2-sha256") {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(kdf.iterations);
    parts.push(b);
  }
  if (salt !== null) parts.push(salt);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(chunk);
  parts.push(fileSalt, size);
  return Buffer.concat(parts);
}

/** Parses a header from the start of `buf`; undefined when more bytes are needed. */
function decodeHeader(
  buf: Buffer,
): { kdf: KdfParams | null; salt: Buffer | null; fileSalt: Buffer; chunk: number; length: number } | undefined {
  if (buf.length < 5) return undefined;
  if (!buf.subarray(0, 4).equals(MAGIC)) fail();
  const id = buf[4];
  const paramBytes = id === KDF_ID.none ? 0 : id === KDF_ID.scrypt ? 3 : id === KDF_ID["pbkdf2-sha256"] ? 4 : fail();
  const saltBytes = id === KDF_ID.none ? 0 : 16;
  const length = 5 + paramBytes + saltBytes + 16 + 4;
  if (buf.length < length) return undefined;
  let kdf: KdfParams | null = null;
  if (id === KDF_ID.scrypt) kdf = { name: "scrypt", log2N: buf[5] as number, r: buf[6] as number, p: buf[7] as number };
  if (id === KDF_ID["pbkdf2-sha256"]) kdf = { name: "pbkdf2-sha256", iterations: buf.readUInt32BE(5) };
  const at = 5 + paramBytes;
  const salt = saltBytes === 0 ? null : Buffer.from(buf.subarray(at, at + 16));
  const fileSalt = Buffer.from(buf.subarray(at + saltBytes, at + saltBytes + 16));
  const chunk = buf.readUInt32BE(at + saltBytes + 16);
  if (chunk < MIN_CHUNK || chunk > MAX_CHUNK) fail();
  return { kdf, salt, fileSalt, chunk, length };
}

/** A Transform that encrypts a byte stream into the agentwall file format. */
export class FileEncryptor extends Transform {
  readonly #secret: DecryptSecret;
  readonly #kdf: KdfParams | null;
  readonly #chunk: number;
  #key: Buffer | undefined;
  #header: Buffer | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #index = 0n;

  constructor(secret: DecryptSecret, options: { kdf?: KdfParams; chunkBytes?: number } = {}) {
    super();
    this.#secret = secret;
    this.#kdf = "key" in secret ? null : (options.kdf ?? SCRYPT_DEFAULT);
    if (this.#kdf !== null) checkKdfParams(this.#kdf);
    if ("key" in secret && secret.key.length !== AES_KEY_BYTES) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", `a key must be ${AES_KEY_BYTES} bytes`);
    }
    this.#chunk = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isSafeInteger(this.#chunk) || this.#chunk < MIN_CHUNK || this.#chunk > MAX_CHUNK) {
      throw new AgentwallError("ERR_INVALID_ARGUMENT", `chunkBytes must be ${MIN_CHUNK}..${MAX_CHUNK}`);
    }
  }

  async #start(): Promise<void> {
    if (this.#key !== undefined) return;
    const salt = this.#kdf === null ? null : randomBytes(16);
    const fileSalt = randomBytes(16);
    const root = await rootKey(this.#secret, this.#kdf, salt);
    this.#key = fileKey(root, fileSalt);
    this.#header = encodeHeader(this.#kdf, salt, fileSalt, this.#chunk);
    this.push(this.#header);
  }

  #seal(plaintext: Buffer, final: boolean): void {
    const cipher = createCipheriv("aes-256-gcm", this.#key as Buffer, nonce(this.#index++, final), {
      authTagLength: GCM_TAG_BYTES,
    });
    cipher.setAAD(this.#header as Buffer);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    this.push(body);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#start().then(
      () => {
        this.#pending.push(data);
        this.#pendingBytes += data.length;
        // A chunk is sealed as non-final only once a byte after it is known to exist.
        if (this.#pendingBytes > this.#chunk) {
          let all = Buffer.concat(this.#pending);
          while (all.length > this.#chunk) {
            this.#seal(all.subarray(0, this.#chunk), false);
            all = all.subarray(this.#chunk);
          }
          this.#pending = [Buffer.from(all)];
          this.#pendingBytes = all.length;
        }
        done();
      },
      (error: unknown) => done(error as Error),
    );
  }

  override _flush(done: TransformCallback): void {
    this.#start().then(
      () => {
        this.#seal(Buffer.concat(this.#pending), true);
        this.#pending = [];
        done();
      },
      (error: unknown) => done(error as Error),
    );
  }
}

/** A Transform that decrypts the agentwall file format; any damage is `ERR_DECRYPT`. */
export class FileDecryptor extends Transform {
  readonly #secret: DecryptSecret;
  #key: Buffer | undefined;
  #header: Buffer | undefined;
  #chunk = 0;
  #buffer: Buffer = Buffer.alloc(0);
  #index = 0n;

  constructor(secret: DecryptSecret) {
    super();
    this.#secret = secret;
  }

  #open(sealed: Buffer, final: boolean): Buffer {
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key as Buffer, nonce(this.#index++, final), {
        authTagLength: GCM_TAG_BYTES,
      });
      decipher.setAAD(this.#header as Buffer);
      decipher.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
      return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES)), decipher.final()]);
    } catch {
      return fail();
    }
  }

  async #consume(data: Buffer | undefined): Promise<void> {
    this.#buffer = data === undefined ? this.#buffer : Buffer.concat([this.#buffer, data]);
    if (this.#key === undefined) {
      const h = decodeHeader(this.#buffer);
      if (h === undefined) return;
      this.#header = Buffer.from(this.#buffer.subarray(0, h.length));
      this.#chunk = h.chunk;
      this.#key = fileKey(await rootKey(this.#secret, h.kdf, h.salt), h.fileSalt);
      this.#buffer = this.#buffer.subarray(h.length);
    }
    const sealedChunk = this.#chunk + GCM_TAG_BYTES;
    // Only a chunk followed by more bytes can be non-final.
    while (this.#buffer.length > sealedChunk) {
      this.push(this.#open(this.#buffer.subarray(0, sealedChunk), false));
      this.#buffer = this.#buffer.subarray(sealedChunk);
    }
    this.#buffer = Buffer.from(this.#buffer);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#consume(data).then(
      () => done(),
      () => done(new AgentwallError("ERR_DECRYPT", "decryption failed")),
    );
  }

  override _flush(done: TransformCallback): void {
    this.#consume(undefined).then(
      () => {
        try {
          if (this.#key === undefined || this.#buffer.length < GCM_TAG_BYTES) fail();
          this.push(this.#open(this.#buffer, true));
          done();
        } catch {
          done(new AgentwallError("ERR_DECRYPT", "decryption failed"));
        }
      },
      () => done(new AgentwallError("ERR_DECRYPT", "decryption failed")),
    );
  }
}

/**
 * Writes `output` atomically from a transform of `input`: a temporary file beside it (0600), fsync,
 * rename. On any failure the temporary file is removed and `output` is untouched.
 */
async function atomicTransform(input: string, output: string, transform: Transform): Promise<void> {
  const temp = join(dirname(output), `.${basename(output)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await pipeline(createReadStream(input), transform, createWriteStream(temp, { mode: 0o600, flags: "wx" }));
    const handle = await open(temp, "r");
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, output);
    const dir = await open(dirname(output), "r");
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Encrypts a file of any size in constant memory. */
export function encryptFile(
  input: string,
  output: string,
  secret: DecryptSecret,
  options: { kdf?: KdfParams; chunkBytes?: number } = {},
): Promise<void> {
  return atomicTransform(input, output, new FileEncryptor(secret, options));
}

/** Decrypts a file written by {@link encryptFile}; on `ERR_DECRYPT` nothing is left at `output`. */
export function decryptFile(input: string, output: string, secret: DecryptSecret): Promise<void> {
  return atomicTransform(input, output, new FileDecryptor(secret));
}
