import { loadConfig } from "../config/load.js";
import type { AgentwallConfig } from "../config/schema.js";
import { openInstance, type Instance } from "../instance.js";

/** Global options every command accepts. */
export interface GlobalOptions {
  home?: string;
  json?: boolean;
}

/** Loads the configuration with the command line's overrides. */
export function configFor(options: GlobalOptions & { host?: string; port?: number }): ReturnType<typeof loadConfig> {
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
  const { config, secrets } = configFor(options.home === undefined ? {} : { home: options.home });
  const instance = await openInstance(config, secrets);
  try {
    return await fn(instance);
  } finally {
    await instance.close();
  }
}
