import { AgentwallError, isAgentwallError } from "../errors.js";
import { permits } from "../access/permission.js";
import { decryptEnvelope, encryptWithKey, encryptWithPassword, envelopeToJson } from "../crypto/envelope.js";
import { generateEd25519KeyPair, generateRsaKeyPair } from "../crypto/asymmetric.js";
import type { EgressClient } from "../egress/client.js";
import { InputValidator, fromFieldSchema, type GuideFieldRule } from "../guard/validate.js";
import { sanitize } from "../guard/sanitize.js";
import type { Instance } from "../instance.js";
import { mintsSessions } from "../identity/sessions.js";

/** Who runs an agent: the authenticated caller of the gateway (or of the library). */
export interface AgentContext {
  readonly instance: Instance;
  readonly egress: EgressClient;
  readonly caller: { readonly subject: string; readonly roles: readonly string[]; readonly credentialId: string };
  readonly requestId?: string;
  readonly ip?: string;
  /**
   * Whether the caller may see the guard's scores (the gateway: permission `guard:details`). Without
   * it `prompt_security` answers the verdict and finding types only, so it is no oracle for tuning a
   * bypass. Default false.
   */
  readonly details?: boolean;
}

/** Result fields of the source guides' agents (`authenticated`, `authorized`, `valid`, `error`, …). */
export type AgentResult = Record<string, unknown>;

/** A security capability as a workflow node: `execute(input, context)` → result. */
export interface SecurityAgent {
  readonly name: string;
  readonly operations: readonly string[];
  execute(operation: string, input: Record<string, unknown>, context: AgentContext): Promise<AgentResult>;
}

const str = (input: Record<string, unknown>, name: string, max = 100_000): string => {
  const v = input[name];
  if (typeof v !== "string" || v.length === 0 || v.length > max)
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `input.${name} must be a non-empty string of at most ${max}`);
  return v;
};

const authentication: SecurityAgent = {
  name: "authentication",
  operations: ["api_key", "jwt", "oauth", "session"],
  async execute(operation, input, { instance, caller, ip }) {
    if (operation === "session") {
      // A session only for the caller itself: no one mints tokens for someone else's identity; and only
      // for an API key, as POST /v1/sessions.
      if (!mintsSessions(caller.credentialId))
        throw new AgentwallError("ERR_FORBIDDEN", "sessions are created with an API key");
      const s = await instance.sessions.issue({
        subject: caller.subject,
        roles: caller.roles,
        creator: caller.credentialId,
        ...(ip === undefined ? {} : { ip }),
      });
      return { authenticated: true, user_id: caller.subject, session_token: s.token, expires_at: s.expiresAt };
    }
    const credential = str(input, "credential", 10_000);
    let subject: string | undefined;
    let roles: readonly string[] = [];
    if (operation === "api_key") {
      const v = await instance.apiKeys.verify(credential);
      if (v.result === "VALID") {
        subject = v.key.owner;
        roles = v.key.roles;
      } else return { authenticated: false, error: v.result };
    } else if (operation === "jwt") {
      const v = await instance.sessions.verify(credential);
      if (v.valid) {
        subject = v.session.subject;
        roles = v.session.roles;
      } else return { authenticated: false, error: v.result };
    } else {
      const v = await instance.oidc.verify(credential);
      if (v.valid) {
        subject = v.subject;
        roles = v.roles;
      } else return { authenticated: false, error: v.failure };
    }
    const policy = await instance.rbac.policy();
    return { authenticated: true, user_id: subject, roles, permissions: policy.grantsOfRoles(roles) };
  },
};

const authorization: SecurityAgent = {
  name: "authorization",
  operations: ["check"],
  async execute(_operation, input, { instance, caller, ip, requestId }) {
    const subject = typeof input.user_id === "string" ? input.user_id : caller.subject;
    const permission = str(input, "permission", 200);
    const resource = typeof input.resource === "string" ? input.resource : undefined;
    const d = await instance.rbac.check(subject, permission, resource, {
      ...(ip === undefined ? {} : { ip }),
      ...(requestId === undefined ? {} : { requestId }),
    });
    // The caller's own roles come with its credential (an API key's roles), beside RBAC assignments.
    const own =
      subject === caller.subject && resource === undefined
        ? permits((await instance.rbac.policy()).grantsOfRoles(caller.roles), permission)
        : false;
    if (d.allowed || own) return { authorized: true, user_id: subject };
    return { authorized: false, user_id: subject, error: d.reason };
  },
};

function callerSecret(input: Record<string, unknown>): { password: string } | { key: Buffer } {
  // Only what the caller brings: the server's own keys are never applied to a caller's ciphertext.
  if (typeof input.password === "string" && input.password.length >= 8 && input.password.length <= 1024)
    return { password: input.password };
  if (typeof input.key === "string") {
    const key = Buffer.from(input.key, "base64");
    if (key.length === 32) return { key };
  }
  throw new AgentwallError(
    "ERR_INVALID_ARGUMENT",
    "input.password (8+ characters) or input.key (32 bytes, base64) is required",
  );
}

const secureData: SecurityAgent = {
  name: "secure_data",
  operations: ["encrypt", "decrypt", "generate_keys"],
  async execute(operation, input) {
    if (operation === "generate_keys") {
      const kind = input.algorithm === "ed25519" ? "ed25519" : "rsa";
      const pair = kind === "ed25519" ? await generateEd25519KeyPair() : await generateRsaKeyPair(3072);
      return {
        public_key: pair.publicKeyPem,
        private_key: pair.privateKeyPem,
        algorithm: kind === "rsa" ? "RSA-3072" : "Ed25519",
      };
    }
    const secret = callerSecret(input);
    if (operation === "encrypt") {
      const data = str(input, "data", 1_000_000);
      const plaintext = Buffer.from(data, "utf8");
      const env =
        "password" in secret
          ? await encryptWithPassword(secret.password, plaintext)
          : encryptWithKey(secret.key, plaintext);
      return { encrypted_data: envelopeToJson(env) };
    }
    const plain = await decryptEnvelope(str(input, "encrypted_data", 2_000_000), secret);
    return { decrypted_data: plain.toString("utf8") };
  },
};

const secureNetwork: SecurityAgent = {
  name: "secure_network",
  operations: ["request"],
  async execute(_operation, input, { instance, egress, requestId }) {
    // A public URL, or a path on a destination the operator configured on this agent's egress client
    // (an internal tool host); the gateway's agent client has none.
    const target: { url: string } | { destination: string; path: string } =
      input.destination === undefined
        ? { url: str(input, "url", 8192) }
        : { destination: str(input, "destination", 128), path: str(input, "path", 8192) };
    const method = typeof input.method === "string" ? input.method.toUpperCase() : "GET";
    if (!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].includes(method))
      throw new AgentwallError("ERR_INVALID_ARGUMENT", "input.method is an HTTP method");
    const headers: Record<string, string> = {};
    if (typeof input.headers === "object" && input.headers !== null)
      for (const [k, v] of Object.entries(input.headers as Record<string, unknown>))
        if (typeof v === "string" && /^[A-Za-z0-9-]{1,64}$/.test(k)) headers[k] = v;
    const init = {
      method,
      headers,
      ...(typeof input.body === "string" ? { body: input.body } : {}),
      ...(requestId === undefined ? {} : { requestId }),
    };
    const res =
      "url" in target
        ? await egress.fetch(target.url, init)
        : await egress.fetchOperator(target.destination, target.path, init);
    // What a fetched page says goes back into an agent's context: it is a document to the guard (the
    // stricter injection threshold), its secrets are redacted, and a blocked body is withheld.
    const body = res.body.toString("utf8").slice(0, 1_000_000);
    const v = await instance.guard.scanAsync(body, { direction: "input", source: "document" });
    const findings = [...new Set(v.findings.map((f) => f.type))];
    if (v.verdict === "block")
      return { status: res.status, error: "ERR_GUARD_BLOCKED", findings, hops: res.chain.length };
    return { status: res.status, body: v.text, verdict: v.verdict, findings, hops: res.chain.length };
  },
};

const inputValidation: SecurityAgent = {
  name: "input_validation",
  operations: ["validate", "sanitize", "both"],
  async execute(operation, input) {
    const data = input.data;
    const out: AgentResult = {};
    if (operation !== "sanitize") {
      if (typeof input.schema !== "object" || input.schema === null)
        throw new AgentwallError("ERR_INVALID_ARGUMENT", "input.schema is the guides' field schema");
      const result = new InputValidator(fromFieldSchema(input.schema as Record<string, GuideFieldRule>)).validate(data);
      out.valid = result.valid;
      out.validation_results = result.valid ? [] : result.errors;
    }
    if (operation !== "validate") {
      const clean = (v: unknown): unknown =>
        typeof v === "string"
          ? sanitize(v, { html: "escape" })
          : Array.isArray(v)
            ? v.map(clean)
            : typeof v === "object" && v !== null
              ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, clean(x)]))
              : v;
      out.sanitized_data = clean(data);
    }
    return out;
  },
};

const promptSecurity: SecurityAgent = {
  name: "prompt_security",
  operations: ["check"],
  async execute(_operation, input, { instance, details, caller }) {
    // A workflow checks each message as it passes, the same ones again on later turns: kept per caller.
    const v = await instance.guard.scanAsync(str(input, "text", 200_000), {
      direction: "input",
      partition: caller.subject,
    });
    return {
      safe: v.verdict === "allow",
      verdict: v.verdict,
      ...(details === true ? { risk_score: v.injection.score, signals: v.injection.signals } : {}),
      findings: [...new Set(v.findings.map((f) => f.type))],
    };
  },
};

const outputFilter: SecurityAgent = {
  name: "output_filter",
  operations: ["filter"],
  async execute(_operation, input, { instance }) {
    const v = await instance.guard.scanAsync(str(input, "text", 200_000), { direction: "output", source: "agent" });
    return {
      filtered_text: v.verdict === "block" ? "" : v.text,
      blocked: v.verdict === "block",
      findings: [...new Set(v.findings.map((f) => f.type))],
    };
  },
};

/** The security agents, by name. */
export const SECURITY_AGENTS: ReadonlyMap<string, SecurityAgent> = new Map(
  [authentication, authorization, secureData, secureNetwork, inputValidation, promptSecurity, outputFilter].map((a) => [
    a.name,
    a,
  ]),
);

/**
 * Runs one agent operation; every run is audited (`agent_execute`, never the input). Failures come
 * back as `{ error }` with a stable code, as the guides' agents return them, unless they are the
 * caller's fault (`ERR_INVALID_ARGUMENT`), which throw.
 */
export async function runAgent(
  name: string,
  operation: string,
  input: Record<string, unknown>,
  context: AgentContext,
): Promise<AgentResult> {
  const agent = SECURITY_AGENTS.get(name);
  if (agent === undefined) throw new AgentwallError("ERR_NOT_FOUND", `no agent ${name.slice(0, 64)}`);
  if (!agent.operations.includes(operation))
    throw new AgentwallError("ERR_INVALID_ARGUMENT", `${name} operations: ${agent.operations.join(", ")}`);
  let result: AgentResult;
  try {
    result = await agent.execute(operation, input, context);
  } catch (error) {
    if (isAgentwallError(error) && error.code === "ERR_INVALID_ARGUMENT") throw error;
    result = { error: isAgentwallError(error) ? error.code : "ERR_INTERNAL" };
  }
  await context.instance.audit.append({
    type: "agent_execute",
    actor: context.caller.subject,
    action: `agent.${name}.${operation}`,
    resource: `agent:${name}`,
    outcome: result.error === undefined ? "success" : "failure",
    ...(context.ip === undefined ? {} : { ip: context.ip }),
    ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
    details: {
      credential: context.caller.credentialId,
      ...(typeof result.error === "string" ? { code: result.error } : {}),
    },
  });
  return result;
}
