import { writeFileSync } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { AgentwallError, isAgentwallError, type ErrorCode } from "../errors.js";

/** CLI exit codes (a contract scripts rely on). */
export const EXIT = Object.freeze({ OK: 0, DENIED: 1, USAGE: 2, UNAVAILABLE: 3 });

const USAGE_CODES = new Set<ErrorCode>([
  "ERR_USAGE",
  "ERR_CONFIG_INVALID",
  "ERR_CONFIG_FILE",
  "ERR_INVALID_ARGUMENT",
  "ERR_DATABASE_URL_INVALID",
  "ERR_PERMISSION_INVALID",
  "ERR_AUDIT_WITNESS_INVALID",
  "ERR_ROLE_UNKNOWN",
  "ERR_ROLE_CYCLE",
  "ERR_CA_NOT_INITIALIZED",
]);

// Not found is a result ("no such secret"), not an outage.
const RESULT_CODES = new Set<ErrorCode>([
  "ERR_NOT_FOUND",
  "ERR_FORBIDDEN",
  "ERR_ROTATION_INCOMPLETE",
  "ERR_CERT_UNKNOWN",
  "ERR_CERT_REVOKED",
  "ERR_CERT_INVALID",
]);

/** A URL the egress policy refused is an answer (exit 1); a request that failed is an outage (3). */
function isResult(code: ErrorCode): boolean {
  return RESULT_CODES.has(code) || (code.startsWith("ERR_EGRESS_") && code !== "ERR_EGRESS_FAILED");
}

/** The exit code for an error: usage problems 2, everything that kept us from checking 3. */
export function exitCodeFor(error: unknown): number {
  if (isAgentwallError(error) && USAGE_CODES.has(error.code)) return EXIT.USAGE;
  if (isAgentwallError(error) && isResult(error.code)) return EXIT.DENIED;
  return EXIT.UNAVAILABLE;
}

/** Prints an error without stack or secrets: `agentwall: ERR_CODE: message`. */
export function printError(error: unknown, json: boolean): void {
  const code = isAgentwallError(error) ? error.code : "ERR_INTERNAL";
  const message = isAgentwallError(error) ? error.message : "unexpected failure";
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + "\n");
  else process.stderr.write(`agentwall: ${code}: ${message}\n`);
}

/** Reads all of stdin as text (bounded). */
export async function readStdin(limit = 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > limit) throw new AgentwallError("ERR_USAGE", "standard input is too large");
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/**
 * A one-line progress bar on stderr, drawn only on a terminal. Hand-written: ten lines do not justify a
 * dependency, and nothing here needs multi-bar or ETA support.
 */
export function progressBar(label: string): { update(done: number, total: number): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return {
    update(done, total) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const width = 30;
      const ratio = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(ratio * width);
      process.stderr.write(`\r${label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}`);
    },
    end() {
      if (tty) process.stderr.write("\n");
    },
  };
}

/** Writes the whole output atomically to `--out`, or to stdout. */
export async function writeOutput(path: string | undefined, data: string | Buffer): Promise<void> {
  if (path === undefined) {
    process.stdout.write(data);
    return;
  }
  const temp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, data, { mode: 0o600, flag: "wx" });
    const handle = await open(temp, "r");
    await handle.sync();
    await handle.close();
    await rename(temp, path);
  } catch {
    await rm(temp, { force: true });
    throw new AgentwallError("ERR_IO", `cannot write ${path}`);
  }
}
