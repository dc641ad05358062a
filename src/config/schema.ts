/** One external identity provider, as the operator configures it. */
export interface OidcIssuerConfig {
  /** Exact `iss` value. */
  readonly issuer: string;
  /** Where its keys are: from the configuration only, never from a token (`jku`/`x5u` are ignored). */
  readonly jwksUrl: string;
  readonly audience: string | readonly string[];
  readonly algorithms?: readonly ("EdDSA" | "ES256" | "RS256" | "PS256")[];
  /** Claim holding the tenant, and the tenants admitted; absent admits any tenant. */
  readonly tenantClaim?: string;
  readonly tenants?: readonly string[];
  /** Claim holding the provider's roles or groups (string or list). Default `roles`. */
  readonly rolesClaim?: string;
  /** Provider role → agentwall role. Unmapped provider roles grant nothing. */
  readonly roleMap: Readonly<Record<string, string>>;
  /** Prefix of the subject agentwall sees (default: the issuer's host and a colon). */
  readonly subjectPrefix?: string;
  readonly maxTokenAgeSeconds?: number;
}

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
    /**
     * Where every audit event is also shipped, as JSON Lines, at least once and in order (the gateway
     * ships; a CLI command does not): a file, stdout, or an HTTP endpoint (POST `application/x-ndjson`
     * through the egress client; `credential` names a vault secret bound to its host, sent as bearer).
     */
    ship?: Array<
      { kind: "file"; path: string } | { kind: "stdout" } | { kind: "http"; url: string; credential?: string }
    >;
  };
  apiKeys: {
    /**
     * How long a verified key is trusted from memory before the shared revocation counter is reread
     * (0..1000 ms; 0 reads the database on every request). With `redisUrl`, revocations reach every
     * instance at once through pub/sub; without it they hold within this time.
     */
    cacheMs: number;
  };
  sessions: {
    /** `iss` and `aud` of agentwall's session tokens. */
    issuer: string;
    /** Session lifetime in ms (1 s .. 24 h). */
    ttlMs: number;
  };
  rateLimits: {
    /** Requests per client address, checked before any credential lookup. */
    perIp: { limit: number; periodMs: number; burst: number };
    /** Gateway instances sharing the limits (used for the local share while Redis is unreachable). */
    expectedInstances: number;
  };
  /**
   * Content-guard policy: per direction and per source, what each scanner does and the injection
   * threshold; merged over the built-in defaults (docs/guards.md). Absent: the defaults.
   */
  guard?: {
    input?: GuardDirectionConfig;
    output?: GuardDirectionConfig;
    bySource?: Partial<Record<"user" | "agent" | "tool" | "document" | "system", GuardDirectionConfig>>;
    allowedHosts?: string[];
    onScannerError?: "block" | "flag";
    /** Markup inside markdown code is text (default true); false where outputs are inserted as HTML. */
    codeIsText?: boolean;
    /**
     * Verdicts kept per caller for texts sent again (a conversation's history on every turn); `false`
     * scans every text every time. Default: on, 10,000 verdicts, 4,000,000 characters of redacted text.
     */
    cache?: false | { maxEntries?: number; maxChars?: number };
    /**
     * Worker threads for long texts (a scan of a megabyte takes about a third of a second, which on
     * the event loop would hold every other request): `count` threads (default 1, 0: none), texts of
     * at least `minChars` characters (default 32,768), a scan ended and failed closed after `timeoutMs`
     * (default 30,000), at most `maxQueue` scans waiting (default 64; then 503 `ERR_NOT_READY`).
     */
    threads?: { count?: number; minChars?: number; timeoutMs?: number; maxQueue?: number };
  };
  /** Tool policies: which role or agent may call which tool with which arguments. Unlisted tools are denied. */
  tools: Array<{
    name: string;
    allow: { roles?: string[]; agents?: string[] };
    argsSchema?: Record<string, unknown>;
    callsPerMinute?: number;
  }>;
  /** External identity providers whose bearer tokens are accepted (the guides' "oauth" method). */
  oidc: { issuers: OidcIssuerConfig[] };
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  upstream?: { url: string };
  /**
   * LLM upstreams of the proxy (OpenAI-compatible), each an operator destination of the egress client.
   * `credential` names a vault secret (bound to the upstream's host) sent as the bearer token; `models`
   * lists what may be asked of it (empty: any); `modelsByRole` narrows that per role.
   */
  /**
   * Token and spend budgets of the proxy, per API key, subject or role and period. `tokens` counts
   * prompt + completion tokens; `spendMicroUsd` uses `pricing` (USD per million tokens, per model).
   */
  budgets: Array<{
    name: string;
    per: "key" | "subject" | "role";
    role?: string;
    period: "hour" | "day" | "month";
    tokens?: number;
    spendMicroUsd?: number;
  }>;
  pricing: Record<string, { inputPerMTok: number; outputPerMTok: number }>;
  /**
   * What alerts do beyond being stored and audited: `suspendAt` suspends the API key an alert names
   * when its severity reaches that level; `webhookUrl` receives each alert as JSON (an operator
   * destination of the egress client).
   */
  alerts: { suspendAt?: "high" | "critical"; webhookUrl?: string };
  /**
   * A separate listener for `GET /metrics` without authentication (for a scraper on a private
   * network); absent, metrics are served by the gateway to `metrics:read` only.
   */
  metricsListen?: { host?: string; port: number };
  /** Largest `max_tokens` a request may ask for (and what an unset one is counted as). */
  maxTokensCap: number;
  /** Rotation periods `agentwall check` holds keys to (days): the master key, and API keys. */
  rotation: { masterKeyDays: number; apiKeyDays: number };
  upstreams: Array<{
    name: string;
    url: string;
    credential?: string;
    models?: string[];
    modelsByRole?: Record<string, string[]>;
  }>;
}

/** What the guards do in one direction (every field optional: unset fields keep the default). */
export interface GuardDirectionConfig {
  injection?: "block" | "flag" | "off";
  injectionThreshold?: number;
  secrets?: "block" | "redact" | "flag" | "off";
  pii?: "block" | "redact" | "flag" | "off";
  unsafeOutput?: "block" | "redact" | "flag" | "off";
  canary?: "block" | "flag" | "off";
  markedSecrets?: "block" | "redact" | "flag" | "off";
}

/** Secrets read from the environment only; never part of a config file and never logged. */
export interface AgentwallSecrets {
  masterKey?: string;
  masterKeyPrevious?: string;
  upstreamKey?: string;
  /** HS256 secret for session tokens (`AGENTWALL_SESSION_SECRET`, ≥ 32 bytes); absent: Ed25519. */
  sessionSecret?: string;
}

const positiveInt = (min: number, max: number) => ({ type: "integer", minimum: min, maximum: max }) as const;
const path = { type: "string", minLength: 1, maxLength: 4096 } as const;

/** JSON Schema of the config file (the same shape as {@link AgentwallConfig}, every field optional). */
const SCANNER_ACTION = { enum: ["block", "redact", "flag", "off"] } as const;

export const CONFIG_SCHEMA = {
  $id: "https://agentwall.dev/schema/config.json",
  type: "object",
  additionalProperties: false,
  $defs: {
    guardDirection: {
      type: "object",
      additionalProperties: false,
      properties: {
        injection: { enum: ["block", "flag", "off"] },
        injectionThreshold: { type: "number", minimum: 0.05, maximum: 0.99 },
        secrets: SCANNER_ACTION,
        pii: SCANNER_ACTION,
        unsafeOutput: SCANNER_ACTION,
        canary: { enum: ["block", "flag", "off"] },
        markedSecrets: SCANNER_ACTION,
      },
    },
  },
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
        ship: {
          type: "array",
          maxItems: 10,
          items: {
            oneOf: [
              {
                type: "object",
                additionalProperties: false,
                required: ["kind", "path"],
                properties: { kind: { const: "file" }, path },
              },
              {
                type: "object",
                additionalProperties: false,
                required: ["kind"],
                properties: { kind: { const: "stdout" } },
              },
              {
                type: "object",
                additionalProperties: false,
                required: ["kind", "url"],
                properties: {
                  kind: { const: "http" },
                  url: { type: "string", pattern: "^https?://", maxLength: 2048 },
                  credential: { type: "string", minLength: 1, maxLength: 100 },
                },
              },
            ],
          },
        },
      },
    },
    apiKeys: {
      type: "object",
      additionalProperties: false,
      properties: { cacheMs: positiveInt(0, 1000) },
    },
    sessions: {
      type: "object",
      additionalProperties: false,
      properties: {
        issuer: { type: "string", minLength: 1, maxLength: 200 },
        ttlMs: positiveInt(1000, 86_400_000),
      },
    },
    guard: {
      type: "object",
      additionalProperties: false,
      properties: {
        input: { $ref: "#/$defs/guardDirection" },
        output: { $ref: "#/$defs/guardDirection" },
        bySource: {
          type: "object",
          additionalProperties: false,
          properties: Object.fromEntries(
            ["user", "agent", "tool", "document", "system"].map((k) => [k, { $ref: "#/$defs/guardDirection" }]),
          ),
        },
        allowedHosts: {
          type: "array",
          maxItems: 256,
          items: { type: "string", pattern: "^(?:\\*\\.)?[a-z0-9.-]{1,253}$" },
        },
        onScannerError: { enum: ["block", "flag"] },
        codeIsText: { type: "boolean" },
        cache: {
          oneOf: [
            { const: false },
            {
              type: "object",
              additionalProperties: false,
              properties: { maxEntries: positiveInt(1, 10_000_000), maxChars: positiveInt(0, 1_000_000_000) },
            },
          ],
        },
        threads: {
          type: "object",
          additionalProperties: false,
          properties: {
            count: positiveInt(0, 64),
            minChars: positiveInt(1024, 100_000_000),
            timeoutMs: positiveInt(100, 600_000),
            maxQueue: positiveInt(0, 10_000),
          },
        },
      },
    },
    tools: {
      type: "array",
      maxItems: 1000,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "allow"],
        properties: {
          name: { type: "string", minLength: 1, maxLength: 128 },
          allow: {
            type: "object",
            additionalProperties: false,
            properties: {
              roles: { type: "array", items: { type: "string", minLength: 1 } },
              agents: { type: "array", items: { type: "string", minLength: 1 } },
            },
          },
          argsSchema: { type: "object" },
          callsPerMinute: positiveInt(1, 1_000_000),
        },
      },
    },
    rateLimits: {
      type: "object",
      additionalProperties: false,
      properties: {
        perIp: {
          type: "object",
          additionalProperties: false,
          required: ["limit", "periodMs"],
          properties: {
            limit: positiveInt(1, 1_000_000),
            periodMs: positiveInt(1000, 86_400_000),
            burst: positiveInt(0, 1_000_000),
          },
        },
        expectedInstances: positiveInt(1, 1000),
      },
    },
    oidc: {
      type: "object",
      additionalProperties: false,
      properties: {
        issuers: {
          type: "array",
          maxItems: 32,
          items: {
            type: "object",
            additionalProperties: false,
            required: ["issuer", "jwksUrl", "audience", "roleMap"],
            properties: {
              issuer: { type: "string", minLength: 1, maxLength: 500 },
              jwksUrl: { type: "string", pattern: "^https?://", maxLength: 2000 },
              audience: {
                anyOf: [
                  { type: "string", minLength: 1 },
                  { type: "array", items: { type: "string", minLength: 1 }, minItems: 1 },
                ],
              },
              algorithms: { type: "array", items: { enum: ["EdDSA", "ES256", "RS256", "PS256"] }, minItems: 1 },
              tenantClaim: { type: "string", minLength: 1 },
              tenants: { type: "array", items: { type: "string" }, minItems: 1 },
              rolesClaim: { type: "string", minLength: 1 },
              roleMap: { type: "object", additionalProperties: { type: "string", minLength: 1 } },
              subjectPrefix: { type: "string", maxLength: 200 },
              maxTokenAgeSeconds: positiveInt(1, 86_400),
            },
          },
        },
      },
    },
    logLevel: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] },
    upstream: {
      type: "object",
      additionalProperties: false,
      required: ["url"],
      properties: { url: { type: "string", pattern: "^https?://" } },
    },
    budgets: {
      type: "array",
      maxItems: 1000,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "per", "period"],
        properties: {
          name: { type: "string", pattern: "^[a-z0-9][a-z0-9_-]{0,63}$" },
          per: { enum: ["key", "subject", "role"] },
          role: { type: "string", minLength: 1, maxLength: 64 },
          period: { enum: ["hour", "day", "month"] },
          tokens: positiveInt(1, 1e15),
          spendMicroUsd: positiveInt(1, 1e15),
        },
      },
    },
    pricing: {
      type: "object",
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        required: ["inputPerMTok", "outputPerMTok"],
        properties: {
          inputPerMTok: { type: "number", minimum: 0, maximum: 1e6 },
          outputPerMTok: { type: "number", minimum: 0, maximum: 1e6 },
        },
      },
    },
    maxTokensCap: positiveInt(1, 10_000_000),
    rotation: {
      type: "object",
      additionalProperties: false,
      properties: { masterKeyDays: positiveInt(1, 36_500), apiKeyDays: positiveInt(1, 36_500) },
    },
    metricsListen: {
      type: "object",
      additionalProperties: false,
      required: ["port"],
      properties: {
        host: { type: "string", minLength: 1, maxLength: 255 },
        port: { type: "integer", minimum: 0, maximum: 65535 },
      },
    },
    alerts: {
      type: "object",
      additionalProperties: false,
      properties: {
        suspendAt: { enum: ["high", "critical"] },
        webhookUrl: { type: "string", pattern: "^https?://", maxLength: 2048 },
      },
    },
    upstreams: {
      type: "array",
      maxItems: 100,
      items: {
        type: "object",
        additionalProperties: false,
        required: ["name", "url"],
        properties: {
          name: { type: "string", pattern: "^[a-z0-9][a-z0-9_-]{0,63}$" },
          url: { type: "string", pattern: "^https?://", maxLength: 2048 },
          credential: { type: "string", minLength: 1, maxLength: 128 },
          models: { type: "array", maxItems: 1000, items: { type: "string", minLength: 1, maxLength: 200 } },
          modelsByRole: {
            type: "object",
            additionalProperties: {
              type: "array",
              maxItems: 1000,
              items: { type: "string", minLength: 1, maxLength: 200 },
            },
          },
        },
      },
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
  apiKeys: { cacheMs: 1000 },
  sessions: { issuer: "agentwall", ttlMs: 15 * 60_000 },
  oidc: { issuers: [] },
  tools: [],
  upstreams: [],
  budgets: [],
  pricing: {},
  maxTokensCap: 32_768,
  rotation: { masterKeyDays: 365, apiKeyDays: 90 },
  alerts: {},
  rateLimits: { perIp: { limit: 1200, periodMs: 60_000, burst: 200 }, expectedInstances: 1 },
  logLevel: "info",
};
