import { existsSync, statSync } from "node:fs";
import ipaddr from "ipaddr.js";
import { readWitnessFile } from "../../audit/checkpoint.js";
import type { Command } from "commander";
import type { Instance } from "../../instance.js";
import type { AgentwallSecrets } from "../../config/schema.js";
import { PERMISSION_CATALOG } from "../../access/catalog.js";
import { EgressClient } from "../../egress/client.js";
import { agentRoutes } from "../../gateway/agent-routes.js";
import { ProxyClients, proxyRoutes } from "../../gateway/proxy.js";
import { PUBLIC_ROUTES, type GatewayRoute } from "../../gateway/route.js";
import { coreRoutes } from "../../gateway/routes.js";
import { configFor, withInstance, type GlobalOptions } from "../context.js";
import { EXIT } from "../io.js";

/** An audit event waiting this long for a sink means the sink is stuck (the shipper runs every second). */
const SHIP_STUCK_MS = 10 * 60_000;

/** One line of the deployment checklist. */
export interface CheckItem {
  readonly name: string;
  readonly status: "pass" | "warn" | "fail";
  readonly message: string;
}

const DAY_MS = 86_400_000;
const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

/** proxy-addr's names for address classes (all private to a site). */
const PROXY_NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);
const SITE_RANGES = new Set(["private", "loopback", "linkLocal", "uniqueLocal"]);

/**
 * Why a `trustProxy` entry believes too many addresses, or undefined: a range of 2^24 or more addresses
 * (IPv4 /8 or wider, IPv6 /16 or wider; an IPv4-mapped IPv6 range counts as IPv4) that is not one of the
 * site-private classes (10/8, 127/8, fc00::/7 …) — `0.0.0.0/1` and `128.0.0.0/1` trust everyone as
 * surely as `0.0.0.0/0` — or an entry that is neither an address, a range nor a proxy-addr class name.
 */
export function tooTrusting(entry: string): string | undefined {
  if (entry === "*") return "* trusts every address";
  if (PROXY_NAMES.has(entry)) return undefined;
  let address: ipaddr.IPv4 | ipaddr.IPv6;
  let bits: number;
  try {
    if (entry.includes("/")) [address, bits] = ipaddr.parseCIDR(entry);
    else {
      address = ipaddr.parse(entry);
      bits = address.kind() === "ipv4" ? 32 : 128;
    }
  } catch {
    return `${JSON.stringify(entry.slice(0, 64))} is not an address, a range or loopback/linklocal/uniquelocal`;
  }
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    address = (address as ipaddr.IPv6).toIPv4Address();
    bits = Math.max(bits - 96, 0);
  }
  const v4 = address.kind() === "ipv4";
  if (bits > (v4 ? 8 : 16)) return undefined;
  if (SITE_RANGES.has(address.range()) && bits >= (v4 ? 8 : 7)) return undefined;
  return `${entry} spans 2^${(v4 ? 32 : 128) - bits} addresses, public ones among them`;
}

function modeOf(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return undefined;
  }
}

/** Runs the security checklist of a deployment. */
export async function runChecks(
  instance: Instance,
  options: { verifyAudit: boolean; secrets?: AgentwallSecrets },
): Promise<CheckItem[]> {
  const { config } = instance;
  const items: CheckItem[] = [];
  const add = (name: string, status: CheckItem["status"], message: string) => items.push({ name, status, message });

  if (instance.masterKeyOrigin === "home-file" || instance.masterKeyOrigin === "generated") {
    add(
      "master-key-location",
      "warn",
      `the master key sits beside the data (${instance.masterKeyPath ?? ""}); keep it outside AGENTWALL_HOME (AGENTWALL_MASTER_KEY_FILE)`,
    );
  } else {
    add(
      "master-key-location",
      "pass",
      `master key from ${instance.masterKeyOrigin === "env" ? "AGENTWALL_MASTER_KEY" : "a key file"}`,
    );
  }
  if (instance.masterKeyPath !== undefined) {
    const mode = modeOf(instance.masterKeyPath);
    if (mode !== undefined && (mode & 0o077) !== 0)
      add(
        "master-key-permissions",
        "fail",
        `${instance.masterKeyPath} is readable by others (mode ${mode.toString(8)}); chmod 600`,
      );
    else add("master-key-permissions", "pass", "master key file is private (0600)");
  }
  const homeMode = modeOf(config.home);
  if (homeMode !== undefined && (homeMode & 0o077) !== 0)
    add(
      "data-directory-permissions",
      "fail",
      `${config.home} is accessible by others (mode ${homeMode.toString(8)}); chmod 700`,
    );
  else add("data-directory-permissions", "pass", "data directory is private (0700)");

  if (config.tls === undefined && !LOOPBACK.has(config.host)) {
    add(
      "tls",
      "fail",
      `the gateway listens on ${config.host} without TLS; configure tls.certFile/keyFile or bind to 127.0.0.1 behind a TLS proxy`,
    );
  } else
    add("tls", "pass", config.tls === undefined ? "plain HTTP on loopback only" : "TLS configured (TLS 1.2 minimum)");

  // The proxy's upstreams: prompts and the provider key must not cross a network in clear text.
  const plainUpstreams = instance.upstreams.filter((u) => {
    const url = new URL(u.origin);
    return url.protocol === "http:" && !LOOPBACK.has(url.hostname.replace(/^\[|\]$/g, ""));
  });
  if (plainUpstreams.length > 0)
    add(
      "upstream-tls",
      "fail",
      `upstream ${plainUpstreams.map((u) => u.name).join(", ")} uses plain HTTP off this machine; prompts and the provider key travel in clear`,
    );
  else add("upstream-tls", "pass", `${instance.upstreams.length} upstream(s), HTTPS or loopback`);

  const metricsHost = config.metricsListen?.host ?? "127.0.0.1";
  if (config.metricsListen !== undefined && !LOOPBACK.has(metricsHost))
    add(
      "metrics-listener",
      "warn",
      `metrics are served without a credential on ${metricsHost}; keep that network private`,
    );
  else
    add(
      "metrics-listener",
      "pass",
      config.metricsListen === undefined ? "metrics need metrics:read" : "metrics listener on loopback",
    );

  if (config.guard?.onScannerError === "flag")
    add("guard-fail-open", "warn", "guard.onScannerError is flag: a scanner that fails lets the text through");
  else add("guard-fail-open", "pass", "a failing scanner blocks the text");

  const overTrusting = config.trustProxy.map(tooTrusting).find((why) => why !== undefined);
  if (overTrusting !== undefined) {
    add("trust-proxy", "fail", `trustProxy ${overTrusting}: it believes X-Forwarded-For from them; list your proxies`);
  } else
    add(
      "trust-proxy",
      "pass",
      config.trustProxy.length === 0
        ? "client addresses come from the socket"
        : `${config.trustProxy.length} trusted proxies`,
    );

  const now = Date.now();
  const keys = (await instance.apiKeys.list()).filter(
    (k) => k.revokedAt === null && (k.expiresAt === null || k.expiresAt > now),
  );
  const keyDays = config.rotation.apiKeyDays;
  const old = keys.filter((k) => now - k.createdAt > keyDays * DAY_MS);
  if (old.length > 0)
    add(
      "key-age",
      "warn",
      `${old.length} active API keys are older than the ${keyDays}-day rotation period (${old
        .slice(0, 5)
        .map((k) => k.id)
        .join(", ")}); rotate them`,
    );
  else add("key-age", "pass", `no active API key is older than the ${keyDays}-day rotation period`);
  const eternal = keys.filter((k) => k.expiresAt === null);
  const eternalAdmins = eternal.filter((k) => k.roles.includes("admin"));
  if (eternalAdmins.length > 0) add("admin-key-expiry", "warn", `${eternalAdmins.length} admin keys never expire`);
  else add("admin-key-expiry", "pass", "every admin key expires");
  if (eternal.length > 0)
    add("key-expiry", "warn", `${eternal.length} of ${keys.length} active API keys never expire; give them --expires`);
  else add("key-expiry", "pass", "every active API key expires");

  const master = await instance.store.db
    .selectFrom("master_keys")
    .select(["id", "created_at"])
    .where("retired_at", "is", null)
    .orderBy("ordinal", "desc")
    .executeTakeFirst();
  const masterDays = config.rotation.masterKeyDays;
  if (master !== undefined && now - Number(master.created_at) > masterDays * DAY_MS)
    add(
      "master-key-age",
      "warn",
      `master key ${master.id} is ${Math.floor((now - Number(master.created_at)) / DAY_MS)} days old (rotation period ${masterDays} days); run agentwall kek rotate`,
    );
  else add("master-key-age", "pass", `the master key is within its ${masterDays}-day rotation period`);

  const sessionSecret = options.secrets?.sessionSecret;
  if (sessionSecret === undefined) add("session-secret", "pass", "sessions are signed with Ed25519 only");
  // Shorter than 32 bytes is refused when the configuration loads; here, a long one made of few symbols.
  else if (new Set(sessionSecret).size < 12)
    add(
      "session-secret",
      "fail",
      `AGENTWALL_SESSION_SECRET uses only ${new Set(sessionSecret).size} distinct characters: HS256 sessions signed with it can be guessed; use 32 random bytes`,
    );
  else add("session-secret", "pass", "AGENTWALL_SESSION_SECRET is long and varied");

  // The routes the gateway serves, as it builds them: each must declare a known permission or be one
  // of the few public ones (the gateway refuses to start otherwise; this says so before a start).
  const proxy = new ProxyClients(instance);
  const agentEgress = new EgressClient({});
  try {
    const routes: GatewayRoute[] = [
      ...coreRoutes(instance),
      ...proxyRoutes(instance, proxy),
      ...agentRoutes(instance, agentEgress),
    ];
    const bad = routes.filter((r) =>
      "permission" in r.access ? PERMISSION_CATALOG[r.access.permission] === undefined : !PUBLIC_ROUTES.has(r.url),
    );
    const open = routes.filter((r) => !("permission" in r.access));
    if (bad.length > 0)
      add(
        "route-permissions",
        "fail",
        `routes without a known permission: ${bad.map((r) => `${r.method} ${r.url}`).join(", ")}`,
      );
    else
      add(
        "route-permissions",
        "pass",
        `${routes.length - open.length} routes require a permission; ${open.length} public: ${open.map((r) => r.url).join(", ")}`,
      );
  } finally {
    await proxy.close();
    await agentEgress.close();
  }

  if (config.audit.witnessFile === undefined && !config.audit.witnessStdout) {
    add(
      "audit-witness",
      "warn",
      "audit checkpoints are kept only in the database; configure audit.witnessFile to detect a rewritten tail",
    );
  } else add("audit-witness", "pass", "audit checkpoints go to a witness");
  if (instance.shipper !== undefined) {
    const now = Date.now();
    const stuck = (await instance.shipper.status()).filter(
      (x) => x.oldestWaiting !== undefined && now - x.oldestWaiting > SHIP_STUCK_MS,
    );
    if (stuck.length > 0)
      add(
        "audit-shipping",
        "warn",
        stuck
          .map(
            (x) =>
              `${x.sink} has not taken ${x.lag} events, the oldest from ${new Date(x.oldestWaiting ?? 0).toISOString()}`,
          )
          .join("; ") + " — retention keeps them, so the log grows until the sink catches up",
      );
    else add("audit-shipping", "pass", "every audit sink is within ten minutes of the log");
  }
  if (options.verifyAudit) {
    // Against the witness file too, when there is one: a tail deleted with its checkpoints shows there.
    const witnessFile = config.audit.witnessFile;
    const witness = witnessFile !== undefined && existsSync(witnessFile) ? readWitnessFile(witnessFile) : undefined;
    const result = await instance.audit.verify({ witness });
    if (result.ok)
      add(
        "audit-integrity",
        "pass",
        `audit log intact (${result.size} entries${witness === undefined ? "" : `, ${witness.length} witnessed checkpoints`})`,
      );
    else add("audit-integrity", "fail", `audit log altered at sequence ${result.firstBadSeq} (${result.problem})`);
  }
  return items;
}

export function registerCheck(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  program
    .command("check")
    .description("security checklist of this deployment; exit 1 when a check fails")
    .option("--no-verify-audit", "skip verifying the audit log")
    .option("--json", "print the result as one JSON object")
    .action((opts: GlobalOptions & { verifyAudit: boolean }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const { secrets } = await configFor(program.opts());
          const items = await runChecks(instance, { verifyAudit: opts.verifyAudit, secrets });
          const ok = items.every((i) => i.status !== "fail");
          if (opts.json === true) process.stdout.write(JSON.stringify({ ok, checks: items }) + "\n");
          else
            for (const i of items)
              process.stdout.write(`${i.status.toUpperCase().padEnd(4)} ${i.name}: ${i.message}\n`);
          return ok ? EXIT.OK : EXIT.DENIED;
        }),
      ),
    );
}
