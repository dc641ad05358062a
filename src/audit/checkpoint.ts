import { createHash, sign, verify } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import type { Writable } from "node:stream";
import { AgentwallError } from "../errors.js";
import type { SigningKey } from "../crypto/keyring.js";

/** A signed statement "the log had `size` entries with Merkle root `root` at `ts`". */
export interface Checkpoint {
  readonly size: number;
  /** Hex SHA-256 root. */
  readonly root: string;
  readonly ts: number;
  readonly kid: string;
  /** Base64url Ed25519 signature over {@link checkpointMessage}. */
  readonly signature: string;
}

/** The signed record of a pruned prefix: the tree's right edge at `through`, so the rest still verifies. */
export interface PruneRecord {
  readonly through: number;
  readonly frontier: string;
  readonly root: string;
  readonly ts: number;
  readonly kid: string;
  readonly signature: string;
}

/** The exact bytes a checkpoint signature covers. */
export function checkpointMessage(c: Pick<Checkpoint, "size" | "root" | "ts" | "kid">): Buffer {
  return Buffer.from(`agentwall-audit-checkpoint/v1\n${c.size}\n${c.root}\n${c.ts}\n${c.kid}`);
}

/** The exact bytes a prune record's signature covers. */
export function pruneMessage(p: Omit<PruneRecord, "signature">): Buffer {
  const frontierHash = createHash("sha256").update(p.frontier).digest("hex");
  return Buffer.from(`agentwall-audit-prune/v1\n${p.through}\n${p.root}\n${frontierHash}\n${p.ts}\n${p.kid}`);
}

export function signMessage(key: SigningKey, message: Buffer): string {
  return sign(null, message, key.privateKey).toString("base64url");
}

export function verifyMessage(key: SigningKey, message: Buffer, signature: string): boolean {
  if (!/^[A-Za-z0-9_-]{86}$/.test(signature)) return false;
  try {
    return verify(null, message, key.publicKey, Buffer.from(signature, "base64url"));
  } catch {
    return false;
  }
}

/**
 * Somewhere outside the database that keeps every checkpoint, so deleting the log's tail together
 * with its checkpoints is still detected (`agentwall audit verify --witness FILE`).
 */
export interface CheckpointWitness {
  record(checkpoint: Checkpoint): Promise<void>;
}

/** Appends checkpoints as JSON Lines to a file, fsynced before `record` resolves. */
export class FileWitness implements CheckpointWitness {
  readonly path: string;
  constructor(path: string) {
    this.path = path;
  }
  record(checkpoint: Checkpoint): Promise<void> {
    const fd = openSync(this.path, "a", 0o600);
    try {
      writeSync(fd, JSON.stringify(checkpoint) + "\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return Promise.resolve();
  }
}

/** Writes checkpoints as JSON Lines to a stream (stdout, a pipe to a remote log shipper). */
export class StreamWitness implements CheckpointWitness {
  readonly #stream: Writable;
  constructor(stream: Writable) {
    this.#stream = stream;
  }
  record(checkpoint: Checkpoint): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#stream.write(JSON.stringify({ auditCheckpoint: checkpoint }) + "\n", (error) =>
        error ? reject(error) : resolve(),
      );
    });
  }
}

function parseCheckpoint(value: unknown, where: string): Checkpoint {
  const v = (
    typeof value === "object" && value !== null && "auditCheckpoint" in value ? value.auditCheckpoint : value
  ) as Record<string, unknown> | null;
  if (
    typeof v !== "object" ||
    v === null ||
    !Number.isSafeInteger(v.size) ||
    (v.size as number) < 0 ||
    typeof v.root !== "string" ||
    !/^[0-9a-f]{64}$/.test(v.root) ||
    !Number.isSafeInteger(v.ts) ||
    typeof v.kid !== "string" ||
    typeof v.signature !== "string"
  ) {
    throw new AgentwallError("ERR_AUDIT_WITNESS_INVALID", `${where} is not a checkpoint`);
  }
  return { size: v.size as number, root: v.root, ts: v.ts as number, kid: v.kid, signature: v.signature };
}

/** Reads a witness file (JSON Lines of checkpoints). Every line must parse. */
export function readWitnessFile(path: string): Checkpoint[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new AgentwallError("ERR_IO", `cannot read witness file ${path}`, { cause: error });
  }
  const out: Checkpoint[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new AgentwallError("ERR_AUDIT_WITNESS_INVALID", `witness line ${i + 1} is not JSON`);
    }
    out.push(parseCheckpoint(parsed, `witness line ${i + 1}`));
  });
  return out;
}
