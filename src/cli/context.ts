import type { AgentwallConfig } from "../config/schema.js";
import type { Instance } from "../instance.js";

// The configuration schema (Ajv) and the instance (database drivers, Redis, jose) are loaded when a
// command needs them, so commands that do not (encrypt, decrypt, keygen, --help) start small: a 2 GB
// file encryption must stay under 100 MB of resident memory.

/** Global options every command accepts. */
export interface GlobalOptions {
  home?: string;
  json?: boolean;
}

/** Loads the configuration with the command line's overrides. */
export async function configFor(
  options: GlobalOptions & { host?: string; port?: number },
): Promise<ReturnType<(typeof import("../config/load.js"))["loadConfig"]>> {
  const { loadConfig } = await import("../config/load.js");
  const overrides: Partial<Pick<AgentwallConfig, "host" | "port" | "home">> = {};
  if (options.home !== undefined) overrides.home = options.home;
  if (options.host !== undefined) overrides.host = options.host;
  if (options.port !== undefined) overrides.port = options.port;
  return loadConfig(process.env, { overrides });
}

/** Opens an instance for a command and closes it afterwards. */
export async function withInstance<T>(options: GlobalOptions, fn: (instance: Instance) => Promise<T>): Promise<T> {
  // Only the global options reach the configuration: a command's own options (vault's --host) are not
  // listen settings.
  const { config, secrets } = await configFor(options.home === undefined ? {} : { home: options.home });
  const { openInstance } = await import("../instance.js");
  const instance = await openInstance(config, secrets);
  try {
    return await fn(instance);
  } finally {
    await instance.close();
  }
}
