import type { Generated } from "kysely";

/**
 * Table types of agentwall's database. Times are milliseconds since the epoch (integers), binary
 * values are base64url text so one schema serves SQLite and PostgreSQL alike.
 */
export interface MasterKeysTable {
  id: string;
  ordinal: number;
  kcv: string;
  created_at: number;
  retired_at: number | null;
}

export interface DataKeysTable {
  kid: string;
  purpose: string;
  period: string;
  generation: number;
  master_key_id: string;
  wrapped: string;
  created_at: number;
  retired_at: number | null;
  uses: Generated<number>;
}

export interface SigningKeysTable {
  kid: string;
  purpose: string;
  generation: number;
  alg: string;
  public_key: string;
  private_sealed: string;
  master_key_id: string;
  created_at: number;
  retired_at: number | null;
}

export interface AuditEventsTable {
  seq: number;
  ts: number;
  type: string;
  actor: string;
  action: string;
  resource: string;
  outcome: string;
  ip: string;
  user_agent: string;
  request_id: string;
  kid: string;
  details: string;
  leaf: string;
}

export interface AuditHeadTable {
  id: number;
  size: number;
  frontier: string;
  root: string;
  updated_at: number;
}

export interface AuditCheckpointsTable {
  size: number;
  root: string;
  /** The tree's right edge at `size` (its root is `root`), so the next checkpoint extends it. */
  frontier: string;
  ts: number;
  kid: string;
  signature: string;
}

export interface AuditPruneTable {
  id: number;
  through: number;
  frontier: string;
  root: string;
  ts: number;
  kid: string;
  signature: string;
}

export interface LocksTable {
  name: string;
  holder: string;
  expires_at: number;
}

export interface ApiKeysTable {
  id: string;
  hash: string;
  prefix: string;
  owner: string;
  name: string;
  roles: string;
  scopes: string;
  creator: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  remaining_uses: number | null;
  revoked_at: number | null;
  meta: string;
  /** JSON `{limit, periodMs, burst}` of the key's own rate limit, or null. */
  rate_limit: string | null;
  /** When the key was suspended (refused until resumed), or null. Revocation is final; this is not. */
  suspended_at: number | null;
  /** Who or what suspended it (`monitor:alert:<id>`, `cli`, a credential id). */
  suspended_by: string | null;
}

export interface SessionsTable {
  jti: string;
  subject: string;
  roles: string;
  /** The credential the session was exchanged from (`key:<id>`); revoking it ends the session. */
  creator: string;
  kid: string;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
  ip: string;
  user_agent: string;
}

export interface RolesTable {
  name: string;
  description: string;
  inherits: string;
  grants: string;
  created_at: number;
  updated_at: number;
}

export interface RoleAssignmentsTable {
  subject: string;
  role: string;
  /** `''` for a global assignment, else a resource pattern such as `agent:billing`. */
  resource: string;
  granted_by: string;
  created_at: number;
}

export interface CountersTable {
  name: string;
  value: number;
}

export interface VaultEntriesTable {
  name: string;
  current_version: number;
  /** JSON list of the hosts the secret may be sent to (exact or `*.suffix`). */
  hosts: string;
  created_at: number;
  updated_at: number;
}

export interface VaultVersionsTable {
  name: string;
  version: number;
  sealed: string;
  created_at: number;
  created_by: string;
}

export interface RateLimitsTable {
  key: string;
  /** GCRA theoretical arrival time, ms. */
  tat: number;
  expires_at: number;
}

export interface Database {
  master_keys: MasterKeysTable;
  data_keys: DataKeysTable;
  records: RecordsTable;
  jobs: JobsTable;
  signing_keys: SigningKeysTable;
  audit_events: AuditEventsTable;
  audit_head: AuditHeadTable;
  audit_checkpoints: AuditCheckpointsTable;
  audit_prune: AuditPruneTable;
  locks: LocksTable;
  api_keys: ApiKeysTable;
  sessions: SessionsTable;
  roles: RolesTable;
  role_assignments: RoleAssignmentsTable;
  counters: CountersTable;
  vault_entries: VaultEntriesTable;
  vault_versions: VaultVersionsTable;
  rate_limits: RateLimitsTable;
  certificates: CertificatesTable;
  budget_usage: BudgetUsageTable;
  anomaly_baselines: AnomalyBaselinesTable;
  alerts: AlertsTable;
}

export interface RecordsTable {
  id: string;
  owner: string;
  type: string;
  /** Id of the `records` data key that wraps this record's own key (indexed, for re-encryption). */
  kid: string;
  wrapped_key: string;
  data: string;
  metadata: string;
  size: number;
  created_at: number;
  updated_at: number;
}

/** Long-running operator jobs (re-encryption) that must resume where they stopped. */
export interface JobsTable {
  name: string;
  state: string;
  detail: string;
  started_at: number;
  updated_at: number;
}

/** Certificates the agent CA issued (and its own root): public data, so stored in clear. */
export interface CertificatesTable {
  /** Upper-case hex, as `X509Certificate.serialNumber` prints it. */
  serial: string;
  /** `ca` for the root, `agent` for agent certificates. */
  kind: string;
  /** The agent id (the root's is `agentwall-ca`). */
  subject: string;
  /** SPKI DER, base64url. */
  public_key: string;
  certificate: string;
  /** Id of the signing key that signed it (the root names its own key). */
  signing_kid: string;
  not_before: number;
  not_after: number;
  issued_at: number;
  revoked_at: number | null;
  revocation_reason: string | null;
}

/** Token or spend used against one budget, for one scope and period. */
export interface BudgetUsageTable {
  /** `<budget>:<scope>:<period start>`. */
  key: string;
  used: number;
  expires_at: number;
}

/** A subject's persisted baselines (Welford states and known addresses, JSON). */
export interface AnomalyBaselinesTable {
  subject: string;
  state: string;
  updated_at: number;
}

export interface AlertsTable {
  id: string;
  subject: string;
  kind: string;
  severity: string;
  message: string;
  details: string;
  created_at: number;
}
