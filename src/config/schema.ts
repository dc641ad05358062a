/** The configuration of an agentwall instance, after defaults and environment overrides. */
export interface AgentwallConfig {
  /** Data directory (SQLite database, generated master key). Created 0700. */
  home: string;
  host: string;
  port: number;
  /** PostgreSQL URL; absent means the embedded SQLite database in `home`. */
  databaseUrl?: string;
  redisUrl?: string;
  /** Path of a file holding the master key (recommended outside `home`). */
  masterKeyFile?: string;
  masterKeyPreviousFile?: string;
  /** Addresses (or CIDR ranges) of reverse proxies whose X-Forwarded-For is believed. Empty: none. */
  trustProxy: string[];
  tls?: { certFile: string; keyFile: string };
  limits: {
    bodyBytes: number;
    headerBytes: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    connectionTimeoutMs: number;
  };
  audit: {
    /** JSON Lines file every checkpoint is appended to (a witness outside the database). */
    witnessFile?: string;
    /** Also print checkpoints to stdout as JSON Lines. */
    witnessStdout: boolean;
    checkpointIntervalMs: number;
    /** Entries older than this many days are pruned; absent keeps everything. */
    retentionDays?: number;
    maxBatch: number;
  };
  sessions: {
    /** `iss` and `aud` of agentwall's session tokens. */
    issuer: string;
    /** Session lifetime in ms (1 s .. 24 h). */
    ttlMs: number;
  };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  upstream?: { url: string };
}

/** Secrets read from the environment only; never part of a config file and never logged. */
export interface AgentwallSecrets {
  masterKey?: string;
  masterKeyPrevious?: string;
  upstreamKey?: string;
}

const positiveInt = (min: number, max: number) => ({ type: "integer", minimum: min, maximum: max }) as const;
const path = { type: "string", minLength: 1, maxLength: 4096 } as const;

/** JSON Schema of the config file (the same shape as {@link AgentwallConfig}, every field optional). */
export const CONFIG_SCHEMA = {
  $id: "https://agentwall.dev/schema/config.json",
  type: "object",
  additionalProperties: false,
  properties: {
    $schema: { type: "string" },
    home: path,
    host: { type: "string", minLength: 1, maxLength: 255 },
    port: positiveInt(0, 65535),
    databaseUrl: { type: "string", pattern: "^postgres(ql)?://" },
    redisUrl: { type: "string", pattern: "^rediss?://" },
    masterKeyFile: path,
    masterKeyPreviousFile: path,
    trustProxy: { type: "array", items: { type: "string", minLength: 1, maxLength: 64 }, maxItems: 64 },
    tls: {
      type: "object",
      additionalProperties: false,
      required: ["certFile", "keyFile"],
      properties: { certFile: path, keyFile: path },
    },
    limits: {
      type: "object",
      additionalProperties: false,
      properties: {
        bodyBytes: positiveInt(1024, 64 * 1024 * 1024),
        headerBytes: positiveInt(1024, 64 * 1024),
        requestTimeoutMs: positiveInt(1000, 3_600_000),
        keepAliveTimeoutMs: positiveInt(100, 600_000),
        connectionTimeoutMs: positiveInt(100, 600_000),
      },
    },
    audit: {
      type: "object",
      additionalProperties: false,
      properties: {
        witnessFile: path,
        witnessStdout: { type: "boolean" },
        checkpointIntervalMs: positiveInt(100, 86_400_000),
        retentionDays: positiveInt(1, 36_500),
        maxBatch: positiveInt(1, 10_000),
      },
    },
    sessions: {
      type: "object",
      additionalProperties: false,
      properties: {
        issuer: { type: "string", minLength: 1, maxLength: 200 },
        ttlMs: positiveInt(1000, 86_400_000),
      },
    },
    logLevel: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] },
    upstream: {
      type: "object",
      additionalProperties: false,
      required: ["url"],
      properties: { url: { type: "string", pattern: "^https?://" } },
    },
  },
} as const;

export const CONFIG_DEFAULTS: AgentwallConfig = {
  home: ".agentwall",
  host: "127.0.0.1",
  port: 8787,
  trustProxy: [],
  limits: {
    bodyBytes: 1024 * 1024,
    headerBytes: 16 * 1024,
    requestTimeoutMs: 120_000,
    keepAliveTimeoutMs: 5_000,
    connectionTimeoutMs: 10_000,
  },
  audit: { witnessStdout: false, checkpointIntervalMs: 10_000, maxBatch: 512 },
  sessions: { issuer: "agentwall", ttlMs: 15 * 60_000 },
  logLevel: "info",
};
