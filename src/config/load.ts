import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { extname, resolve } from "node:path";
import { Ajv } from "ajv";
import { parse as parseYaml } from "yaml";
import { AgentwallError } from "../errors.js";
import { CONFIG_DEFAULTS, CONFIG_SCHEMA, type AgentwallConfig, type AgentwallSecrets } from "./schema.js";

type Env = Readonly<Record<string, string | undefined>>;

const ajv = new Ajv({ allErrors: false, strict: true });
const validate = ajv.compile(CONFIG_SCHEMA);

function fail(field: string, message: string): never {
  throw new AgentwallError("ERR_CONFIG_INVALID", `config field ${field}: ${message}`);
}

function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new AgentwallError("ERR_CONFIG_FILE", `cannot read config file ${path}`, { cause: error });
  }
  try {
    const ext = extname(path).toLowerCase();
    return ext === ".yaml" || ext === ".yml" ? parseYaml(text, { maxAliasCount: 100 }) : JSON.parse(text);
  } catch {
    throw new AgentwallError("ERR_CONFIG_FILE", `config file ${path} is not valid ${extname(path) || "JSON"}`);
  }
}

function envInt(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  if (!/^\d{1,9}$/.test(raw)) fail(name, "must be a whole number");
  return Number(raw);
}

function envString(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === "" ? undefined : raw;
}

/**
 * Loads the configuration: defaults, then the config file (`AGENTWALL_CONFIG`, or
 * `./agentwall.config.json` when present), then `AGENTWALL_*` environment variables. The result is
 * validated as a whole; an error names the exact field (`ERR_CONFIG_INVALID`).
 *
 * @example
 * ```ts
 * const { config, secrets } = loadConfig(process.env);
 * ```
 */
export function loadConfig(
  env: Env = process.env,
  options: { cwd?: string; overrides?: Partial<Pick<AgentwallConfig, "host" | "port" | "home">> } = {},
): { config: AgentwallConfig; secrets: AgentwallSecrets; source: string | undefined } {
  const cwd = options.cwd ?? process.cwd();
  const explicit = envString(env, "AGENTWALL_CONFIG");
  const implicit = resolve(cwd, "agentwall.config.json");
  const source = explicit !== undefined ? resolve(cwd, explicit) : existsSync(implicit) ? implicit : undefined;
  const fromFile = source === undefined ? {} : readConfigFile(source);
  if (typeof fromFile !== "object" || fromFile === null || Array.isArray(fromFile)) {
    throw new AgentwallError("ERR_CONFIG_FILE", `config file ${source ?? ""} must hold an object`);
  }
  if (!validate(fromFile)) {
    const e = validate.errors?.[0];
    const where =
      (e?.instancePath ?? "") +
      (e?.keyword === "additionalProperties" ? `/${String(e.params.additionalProperty)}` : "");
    fail(
      where === "" ? "(root)" : where,
      e?.keyword === "additionalProperties" ? "is not a known setting" : (e?.message ?? "invalid"),
    );
  }
  const file = fromFile as Partial<AgentwallConfig>;

  const envConfig: Partial<AgentwallConfig> = {};
  const home = envString(env, "AGENTWALL_HOME");
  if (home !== undefined) envConfig.home = home;
  const host = envString(env, "AGENTWALL_HOST");
  if (host !== undefined) envConfig.host = host;
  const port = envInt(env, "AGENTWALL_PORT");
  if (port !== undefined) envConfig.port = port;
  const databaseUrl = envString(env, "AGENTWALL_DATABASE_URL");
  if (databaseUrl !== undefined) envConfig.databaseUrl = databaseUrl;
  const redisUrl = envString(env, "AGENTWALL_REDIS_URL");
  if (redisUrl !== undefined) envConfig.redisUrl = redisUrl;
  const keyFile = envString(env, "AGENTWALL_MASTER_KEY_FILE");
  if (keyFile !== undefined) envConfig.masterKeyFile = keyFile;
  const prevFile = envString(env, "AGENTWALL_MASTER_KEY_PREVIOUS_FILE");
  if (prevFile !== undefined) envConfig.masterKeyPreviousFile = prevFile;
  const upstream = envString(env, "AGENTWALL_UPSTREAM_URL");
  if (upstream !== undefined) envConfig.upstream = { url: upstream };
  const level = envString(env, "AGENTWALL_LOG_LEVEL");
  if (level !== undefined) envConfig.logLevel = level as AgentwallConfig["logLevel"];

  const config: AgentwallConfig = {
    ...CONFIG_DEFAULTS,
    ...file,
    ...envConfig,
    ...options.overrides,
    limits: { ...CONFIG_DEFAULTS.limits, ...file.limits },
    audit: { ...CONFIG_DEFAULTS.audit, ...file.audit },
    apiKeys: { ...CONFIG_DEFAULTS.apiKeys, ...file.apiKeys },
    rotation: { ...CONFIG_DEFAULTS.rotation, ...file.rotation },
    sessions: { ...CONFIG_DEFAULTS.sessions, ...file.sessions },
    oidc: { issuers: [...(file.oidc?.issuers ?? [])] },
    tools: [...(file.tools ?? [])],
    rateLimits: {
      perIp: { ...CONFIG_DEFAULTS.rateLimits.perIp, ...file.rateLimits?.perIp },
      expectedInstances: file.rateLimits?.expectedInstances ?? CONFIG_DEFAULTS.rateLimits.expectedInstances,
    },
    trustProxy: [...(file.trustProxy ?? CONFIG_DEFAULTS.trustProxy)],
  };
  // The merged result is validated again, so env values get the same checks and field names.
  if (!validate(JSON.parse(JSON.stringify(config)))) {
    const e = validate.errors?.[0];
    const field = e?.instancePath ?? "(root)";
    const envName = ENV_FOR_FIELD[field];
    fail(envName !== undefined ? `${field} (from ${envName})` : field, e?.message ?? "invalid");
  }

  const secrets: AgentwallSecrets = {};
  const masterKey = envString(env, "AGENTWALL_MASTER_KEY");
  if (masterKey !== undefined) secrets.masterKey = masterKey;
  const previous = envString(env, "AGENTWALL_MASTER_KEY_PREVIOUS");
  if (previous !== undefined) secrets.masterKeyPrevious = previous;
  const sessionSecret = envString(env, "AGENTWALL_SESSION_SECRET");
  if (sessionSecret !== undefined) secrets.sessionSecret = sessionSecret;
  const upstreamKey = envString(env, "AGENTWALL_UPSTREAM_KEY");
  if (upstreamKey !== undefined) secrets.upstreamKey = upstreamKey;
  if (masterKey !== undefined && config.masterKeyFile !== undefined) {
    fail("masterKeyFile", "AGENTWALL_MASTER_KEY and a master key file are both set; give one");
  }
  if (previous !== undefined && config.masterKeyPreviousFile !== undefined) {
    fail("masterKeyPreviousFile", "AGENTWALL_MASTER_KEY_PREVIOUS and a previous key file are both set; give one");
  }
  config.home = resolve(cwd, config.home);
  return { config: Object.freeze(config), secrets, source };
}

const ENV_FOR_FIELD: Record<string, string> = {
  "/home": "AGENTWALL_HOME",
  "/host": "AGENTWALL_HOST",
  "/port": "AGENTWALL_PORT",
  "/databaseUrl": "AGENTWALL_DATABASE_URL",
  "/redisUrl": "AGENTWALL_REDIS_URL",
  "/masterKeyFile": "AGENTWALL_MASTER_KEY_FILE",
  "/masterKeyPreviousFile": "AGENTWALL_MASTER_KEY_PREVIOUS_FILE",
  "/upstream/url": "AGENTWALL_UPSTREAM_URL",
  "/logLevel": "AGENTWALL_LOG_LEVEL",
};

/**
 * Creates the data directory with mode 0700. An existing directory is left as it is (it may be one the
 * operator chose on purpose); `agentwall check` reports one that others can read.
 */
export function ensureHome(home: string): void {
  if (!existsSync(home)) mkdirSync(home, { recursive: true, mode: 0o700 });
  else if (!statSync(home).isDirectory()) {
    throw new AgentwallError("ERR_CONFIG_INVALID", `config field /home: ${home} is not a directory`);
  }
}
