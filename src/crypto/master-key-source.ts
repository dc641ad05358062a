import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AgentwallError } from "../errors.js";
import type { Store } from "../store/database.js";
import { generateMasterKeyText, parseMasterKey, type MasterKey } from "./master-key.js";

/** Where the current master key came from; `agentwall check` warns about `home-file`. */
export type MasterKeyOrigin = "env" | "file" | "home-file" | "generated";

export interface MasterKeys {
  readonly current: MasterKey;
  readonly previous: readonly MasterKey[];
  readonly origin: MasterKeyOrigin;
  /** Path of the key file when the key came from one. */
  readonly path?: string;
}

function readKeyFile(path: string, origin: string): MasterKey {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new Error("not a file");
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new AgentwallError("ERR_MASTER_KEY_MISSING", `cannot read the master key file ${path} (${origin})`, {
      cause: error,
    });
  }
  return parseMasterKey(text, origin);
}

/**
 * Resolves the master keys: `AGENTWALL_MASTER_KEY`, else the key file, else (SQLite only)
 * `home/master.key`, generated 0600 when the database holds no data yet. PostgreSQL requires the key to
 * be given; a database that already has a registered key never gets a new generated one.
 */
export async function resolveMasterKeys(input: {
  store: Store;
  home: string;
  masterKey?: string;
  masterKeyFile?: string;
  masterKeyPrevious?: string;
  masterKeyPreviousFile?: string;
}): Promise<MasterKeys> {
  const previous: MasterKey[] = [];
  if (input.masterKeyPrevious !== undefined)
    previous.push(parseMasterKey(input.masterKeyPrevious, "AGENTWALL_MASTER_KEY_PREVIOUS"));
  if (input.masterKeyPreviousFile !== undefined)
    previous.push(readKeyFile(input.masterKeyPreviousFile, "AGENTWALL_MASTER_KEY_PREVIOUS_FILE"));
  if (input.masterKey !== undefined) {
    return { current: parseMasterKey(input.masterKey, "AGENTWALL_MASTER_KEY"), previous, origin: "env" };
  }
  if (input.masterKeyFile !== undefined) {
    return {
      current: readKeyFile(input.masterKeyFile, "masterKeyFile"),
      previous,
      origin: "file",
      path: input.masterKeyFile,
    };
  }
  if (input.store.dialect === "postgres") {
    throw new AgentwallError(
      "ERR_MASTER_KEY_MISSING",
      "with PostgreSQL the master key must be given (AGENTWALL_MASTER_KEY or AGENTWALL_MASTER_KEY_FILE), the same on every instance",
    );
  }
  const path = join(input.home, "master.key");
  if (existsSync(path)) return { current: readKeyFile(path, path), previous, origin: "home-file", path };
  const registered = await input.store.db.selectFrom("master_keys").select("id").limit(1).executeTakeFirst();
  if (registered !== undefined) {
    throw new AgentwallError(
      "ERR_MASTER_KEY_MISSING",
      `the database already holds data under master key ${registered.id}; give that key instead of generating a new one`,
    );
  }
  try {
    // wx: never overwrite a key another process wrote in the meantime.
    writeFileSync(path, generateMasterKeyText() + "\n", { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new AgentwallError("ERR_IO", `cannot write ${path}`, { cause: error });
    }
  }
  return { current: readKeyFile(path, path), previous, origin: "generated", path };
}
