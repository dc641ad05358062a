import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { randomUUID } from "node:crypto";
import { isIP, type LookupFunction } from "node:net";
import { Agent, Dispatcher } from "undici";
import { AgentwallError, isAgentwallError } from "../errors.js";
import { hostMatches, hostPattern, urlHost } from "./hosts.js";
import type { AuditSink } from "../audit/event.js";
import { classifyAddress } from "./address.js";

/** A resolver with the shape of `dns.lookup(host, { all: true })` (tests inject their own). */
export type Resolver = (host: string) => Promise<readonly LookupAddress[]>;

const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (e, a) => (e ? reject(e) : resolve(a))),
  );

/** A destination the operator configured (an upstream on localhost, an internal tool host). */
export interface OperatorDestination {
  readonly name: string;
  /** `scheme://host:port` — only this exact origin is exempt. */
  readonly origin: string;
  /** When set, the only address the host may resolve to. */
  readonly pinnedAddress?: string;
}

export interface EgressOptions {
  /** Plain HTTP for request URLs (default false: HTTPS only). */
  readonly allowHttp?: boolean;
  /**
   * Hosts request URLs may reach: `example.com` (that host), `*.example.com` (hosts under it) or an
   * address; empty: any public host. Matched in any case and with or without a trailing dot; a pattern
   * of another form throws `ERR_INVALID_ARGUMENT` when the client is made.
   */
  readonly allowHosts?: readonly string[];
  /** Hosts request URLs may not reach, in the same forms; checked first. */
  readonly denyHosts?: readonly string[];
  /** Ports request URLs may use (default 443, and 80 with allowHttp). */
  readonly ports?: readonly number[];
  readonly maxRedirects?: number;
  readonly connectTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  readonly totalTimeoutMs?: number;
  readonly maxResponseBytes?: number;
  readonly operatorDestinations?: readonly OperatorDestination[];
  readonly resolver?: Resolver;
  /** TLS options for tests (a private CA). */
  readonly tls?: { readonly ca?: string | Buffer };
  /**
   * The provider-secret vault: a request naming a `credential` gets `Authorization: Bearer <value>`
   * only on hops whose host the secret is bound to (`Vault.releaseFor`, which audits each release).
   */
  readonly vault?: {
    releaseFor(
      name: string,
      host: string,
      actor: string,
    ): Promise<
      { readonly allowed: true; readonly value: string } | { readonly allowed: false; readonly reason: string }
    >;
  };
  /** Where every request and refusal is recorded (URL without query values, status, bytes, code). */
  readonly audit?: AuditSink;
  /** Who is audited as making the requests (default `egress`). */
  readonly actor?: string;
  /**
   * Operator calls' audit events are queued (deferred) instead of awaited: for a caller that appends
   * its own durable event about the same call right after (the proxy's `llm_request`), which commits
   * them together — one disk flush per request instead of two. Refusals are always awaited.
   */
  readonly deferOperatorAudit?: boolean;
  /**
   * A successful {@link EgressClient.fetchOperator} call appends no event of its own: the response's
   * `record` describes it, for the caller to put in its own durable event about the same call (the
   * proxy's `llm_request`), or to append with `record.append()` on any path where it does not.
   * Streams and refusals are appended as always.
   */
  readonly callerRecordsOperatorCalls?: boolean;
}

/** A successful operator call the caller records (`callerRecordsOperatorCalls`). */
export interface EgressRecord {
  /** What the call's own event would hold: the URL (query values redacted), status, bytes, hops. */
  readonly summary: { readonly url: string; readonly status: number; readonly bytes: number; readonly hops: number };
  /** Appends the call's own `egress` event instead; resolves once it is durable. */
  append(): Promise<unknown>;
}

export type EgressCode =
  | "ERR_EGRESS_URL_INVALID"
  | "ERR_EGRESS_SCHEME"
  | "ERR_EGRESS_CREDENTIALS_IN_URL"
  | "ERR_EGRESS_PORT"
  | "ERR_EGRESS_HOST_DENIED"
  | "ERR_EGRESS_DNS"
  | "ERR_EGRESS_ADDRESS_BLOCKED"
  | "ERR_EGRESS_ADDRESS_INVALID"
  | "ERR_EGRESS_TOO_MANY_REDIRECTS"
  | "ERR_EGRESS_RESPONSE_TOO_LARGE"
  | "ERR_EGRESS_FAILED";

export type EgressDecision =
  | { readonly allowed: true; readonly url: string; readonly addresses: readonly string[] }
  | {
      readonly allowed: false;
      readonly url: string;
      readonly code: EgressCode;
      readonly reason: string;
      readonly addresses: readonly string[];
    };

const deny = (url: string, code: EgressCode, reason: string, addresses: readonly string[] = []): EgressDecision => ({
  allowed: false,
  url,
  code,
  reason,
  addresses,
});

/** What a guarded request sends. */
export interface EgressRequestInit {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** Name of a vault secret to send as a bearer token, only to the hosts it is bound to. */
  readonly credential?: string;
  /** Sent as `x-request-id` (default: a random UUID). */
  readonly requestId?: string;
}

/** A response whose body is read as it arrives. */
export interface EgressStream {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: AsyncIterable<Buffer>;
  readonly chain: readonly string[];
}

export interface EgressResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  /** Every URL requested, the last one answered. */
  readonly chain: readonly string[];
  /** Set when the caller records this call itself (`callerRecordsOperatorCalls`). */
  readonly record?: EgressRecord;
}

/**
 * The SSRF-proof outbound client. Request URLs (from a prompt, a tool call, an agent message) reach only
 * public addresses: every address DNS returns is classified, at connect time, by the lookup the socket
 * itself uses — so DNS rebinding cannot switch the address after the check. Operator destinations are
 * exempt only through {@link fetchOperator}, for their exact origin; there is no switch that lets a
 * request URL reach a private address.
 */
export class EgressClient {
  readonly #options: EgressOptions;
  readonly #resolver: Resolver;
  readonly #requestAgent: Agent;
  readonly #operators = new Map<string, { destination: OperatorDestination; origin: URL; agent: Agent }>();
  readonly #operatorByOrigin = new Map<string, { destination: OperatorDestination; origin: URL; agent: Agent }>();
  readonly #allowHosts: readonly string[];
  readonly #denyHosts: readonly string[];

  constructor(options: EgressOptions = {}) {
    this.#options = options;
    this.#allowHosts = (options.allowHosts ?? []).map(hostPattern);
    this.#denyHosts = (options.denyHosts ?? []).map(hostPattern);
    this.#resolver = options.resolver ?? systemResolver;
    this.#requestAgent = this.#agent((host, all) => this.#checkedAddresses(host, all));
    for (const d of options.operatorDestinations ?? []) {
      const origin = new URL(d.origin);
      if (origin.origin === "null" || origin.pathname !== "/" || origin.search !== "" || origin.username !== "")
        throw new AgentwallError(
          "ERR_INVALID_ARGUMENT",
          `operator destination ${d.name}: origin is scheme://host:port`,
        );
      const entry = {
        destination: d,
        origin,
        agent: this.#agent(async (host, all) => {
          const addresses = isIP(host) !== 0 ? [{ address: host, family: isIP(host) }] : await this.#resolve(host);
          const usable =
            d.pinnedAddress === undefined ? addresses : addresses.filter((a) => a.address === d.pinnedAddress);
          if (usable.length === 0)
            throw new AgentwallError("ERR_EGRESS_ADDRESS_BLOCKED", `${host} did not resolve to the pinned address`);
          return all ? usable : [usable[0] as LookupAddress];
        }),
      };
      this.#operators.set(d.name, entry);
      this.#operatorByOrigin.set(origin.origin, entry);
    }
  }

  #agent(resolve: (host: string, all: boolean) => Promise<readonly LookupAddress[]>): Agent {
    // The socket's own lookup (net.connect/tls.connect): the addresses it connects to are the checked ones.
    const lookup: LookupFunction = (host, opts, callback) => {
      resolve(host, opts.all === true).then(
        (addresses) => {
          const first = addresses[0];
          if (first === undefined) callback(new AgentwallError("ERR_EGRESS_DNS", `${host} has no address`), "");
          else if (opts.all === true) callback(null, [...addresses]);
          else callback(null, first.address, first.family);
        },
        (error: unknown) => callback(error instanceof Error ? error : new Error("lookup failed"), ""),
      );
    };
    return new Agent({
      connect: {
        lookup,
        timeout: this.#options.connectTimeoutMs ?? 5_000,
        minVersion: "TLSv1.2",
        rejectUnauthorized: true,
        ...(this.#options.tls?.ca === undefined ? {} : { ca: this.#options.tls.ca }),
      },
      headersTimeout: this.#options.headersTimeoutMs ?? 30_000,
      bodyTimeout: this.#options.headersTimeoutMs ?? 30_000,
    });
  }

  /** Every address of `host` if all are public; throws with the first blocked one otherwise. */
  async #checkedAddresses(host: string, all: boolean): Promise<readonly LookupAddress[]> {
    const addresses = isIP(host) !== 0 ? [{ address: host, family: isIP(host) }] : await this.#resolve(host);
    if (addresses.length === 0) throw new AgentwallError("ERR_EGRESS_DNS", `${host} has no address`);
    for (const a of addresses) {
      const verdict = classifyAddress(a.address);
      if (!verdict.allowed) throw new AgentwallError(verdict.code, verdict.reason);
    }
    return all ? addresses : [addresses[0] as LookupAddress];
  }

  async #resolve(host: string): Promise<readonly LookupAddress[]> {
    try {
      return await this.#resolver(host);
    } catch {
      throw new AgentwallError("ERR_EGRESS_DNS", `${host} does not resolve`);
    }
  }

  /** The URL rules (scheme, credentials, port, host lists) without resolving. */
  checkUrlSyntax(input: string): EgressDecision {
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      return deny(String(input).slice(0, 200), "ERR_EGRESS_URL_INVALID", "not a URL");
    }
    return this.#checkParsed(url);
  }

  #checkParsed(url: URL): EgressDecision {
    const text = url.href;
    const httpAllowed = this.#options.allowHttp === true;
    if (url.protocol !== "https:" && !(httpAllowed && url.protocol === "http:")) {
      return deny(text, "ERR_EGRESS_SCHEME", `${url.protocol} is not allowed`);
    }
    if (url.username !== "" || url.password !== "")
      return deny(redactUrl(url), "ERR_EGRESS_CREDENTIALS_IN_URL", "credentials in the URL");
    const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
    const ports = this.#options.ports ?? (httpAllowed ? [443, 80] : [443]);
    if (!ports.includes(port)) return deny(text, "ERR_EGRESS_PORT", `port ${port} is not allowed`);
    const host = urlHost(url);
    if (host === "") return deny(text, "ERR_EGRESS_URL_INVALID", "no host");
    if (hostMatches(host, this.#denyHosts)) return deny(text, "ERR_EGRESS_HOST_DENIED", `${host} is denied`);
    if (this.#allowHosts.length > 0 && !hostMatches(host, this.#allowHosts))
      return deny(text, "ERR_EGRESS_HOST_DENIED", `${host} is not allowed`);
    if (isIP(host) !== 0) {
      const verdict = classifyAddress(host);
      if (!verdict.allowed) return deny(text, verdict.code, verdict.reason, [host]);
    }
    return { allowed: true, url: text, addresses: isIP(host) !== 0 ? [host] : [] };
  }

  /** Decides a request URL as a request would (resolving its host), sending nothing. */
  async check(input: string): Promise<EgressDecision> {
    const syntax = this.checkUrlSyntax(input);
    if (!syntax.allowed || syntax.addresses.length > 0) return syntax;
    const host = new URL(syntax.url).hostname.toLowerCase();
    let addresses: readonly LookupAddress[];
    try {
      addresses = await this.#resolver(host);
    } catch {
      return deny(syntax.url, "ERR_EGRESS_DNS", `${host} does not resolve`);
    }
    const list = addresses.map((a) => a.address);
    for (const a of list) {
      const verdict = classifyAddress(a);
      if (!verdict.allowed) return deny(syntax.url, verdict.code, verdict.reason, list);
    }
    return list.length === 0
      ? deny(syntax.url, "ERR_EGRESS_DNS", `${host} has no address`)
      : { allowed: true, url: syntax.url, addresses: list };
  }

  /**
   * A guarded request to a URL that came from outside (a request, a prompt, a tool call, an agent
   * message). Redirects are followed by hand, each hop checked again; credentials and cookies are
   * dropped when a hop changes origin. Throws `AgentwallError` with an `ERR_EGRESS_*` code when refused.
   */
  async fetch(input: string, init: EgressRequestInit = {}): Promise<EgressResponse> {
    return this.#audited("request", input, () => {
      let url: URL;
      try {
        url = new URL(input);
      } catch {
        throw new AgentwallError("ERR_EGRESS_URL_INVALID", "not a URL");
      }
      return this.#follow(url, init, (u) => {
        const decision = this.#checkParsed(u);
        return decision.allowed ? this.#requestAgent : decision;
      });
    });
  }

  async #audited<T extends { status: number; body: { length: number }; chain: readonly string[] }>(
    origin: "request" | "operator",
    input: string,
    run: () => Promise<T>,
    callerRecords = false,
  ): Promise<T & { record?: EgressRecord }> {
    const audit = this.#options.audit;
    if (audit === undefined) return run();
    let shown: string;
    try {
      shown = redactUrl(new URL(input));
    } catch {
      shown = "(invalid URL)";
    }
    const actor = this.#options.actor ?? "egress";
    try {
      const response = await run();
      const details = {
        status: response.status,
        ...(response.body.length >= 0 ? { bytes: response.body.length } : { streamed: true }),
        hops: response.chain.length,
      };
      const egressEvent = {
        type: "egress",
        actor,
        action: `egress.${origin}`,
        resource: shown.slice(0, 500),
        outcome: "allowed",
        details,
      } as const;
      if (callerRecords) {
        const summary = {
          url: egressEvent.resource,
          status: response.status,
          bytes: response.body.length,
          hops: details.hops,
        };
        return { ...response, record: { summary, append: () => audit.append(egressEvent) } };
      }
      const event = audit.append(egressEvent, {
        defer: origin === "operator" && this.#options.deferOperatorAudit === true,
      });
      if (origin === "operator" && this.#options.deferOperatorAudit === true) event.catch(() => undefined);
      else await event;
      return response;
    } catch (error) {
      await audit.append({
        type: "egress",
        actor,
        action: `egress.${origin}`,
        resource: shown.slice(0, 500),
        outcome: "denied",
        details: {
          code: isAgentwallError(error) ? error.code : "ERR_EGRESS_FAILED",
          reason: isAgentwallError(error) ? error.message.slice(0, 300) : "failed",
        },
      });
      throw error;
    }
  }

  /** A request to an operator destination by name; the path is joined to its exact origin. */
  async fetchOperator(name: string, path: string, init: EgressRequestInit = {}): Promise<EgressResponse> {
    const { url, route } = this.#operatorRoute(name, path);
    return this.#audited(
      "operator",
      url.href,
      () => this.#follow(url, init, route),
      this.#options.callerRecordsOperatorCalls === true,
    );
  }

  /**
   * Like {@link fetchOperator}, but the body is handed over as it arrives (an LLM's SSE stream): same
   * checks, size limit and total deadline, enforced while the caller iterates. Audited when the
   * headers arrive (or when refused).
   */
  async streamOperator(name: string, path: string, init: EgressRequestInit = {}): Promise<EgressStream> {
    const { url, route } = this.#operatorRoute(name, path);
    const exchange = await this.#audited("operator", url.href, async () => {
      const x = await this.#exchange(url, init, route);
      return { x, status: x.res.statusCode, body: { length: -1 }, chain: x.chain };
    });
    const { res, chain, deadline, total } = exchange.x;
    return { status: res.statusCode, headers: res.headers, chain, body: this.#chunks(res, deadline, total) };
  }

  /**
   * The URL of `path` at an operator destination, and how each hop is routed: a hop on a configured
   * destination's exact origin (this one, or another the operator named) stays exempt; a redirect
   * anywhere else is treated as a request URL.
   */
  #operatorRoute(
    name: string,
    path: string,
  ): { url: URL; route: (u: URL) => Dispatcher | Extract<EgressDecision, { allowed: false }> } {
    const op = this.#operators.get(name);
    if (op === undefined) throw new AgentwallError("ERR_EGRESS_HOST_DENIED", `no operator destination ${name}`);
    const url = new URL(path, op.origin);
    if (url.origin !== op.origin.origin)
      throw new AgentwallError("ERR_EGRESS_HOST_DENIED", "the path leaves the destination's origin");
    const route = (u: URL) => {
      const target = u.origin === op.origin.origin ? op : this.#operatorByOrigin.get(u.origin);
      if (target !== undefined) return target.agent;
      const decision = this.#checkParsed(u);
      return decision.allowed ? this.#requestAgent : decision;
    };
    return { url, route };
  }

  /**
   * The request loop. `route` decides each hop: the dispatcher to use, or the refusal. One deadline
   * covers the whole exchange: every hop's wait for headers is capped at the time left, and one timer
   * cuts the body off when it runs out (cheaper than an AbortSignal per request, which was measured).
   */
  async #follow(
    input: URL,
    init: EgressRequestInit,
    route: (url: URL) => Dispatcher | Extract<EgressDecision, { allowed: false }>,
  ): Promise<EgressResponse> {
    const { res, chain, deadline, total } = await this.#exchange(input, init, route);
    return { status: res.statusCode, headers: res.headers, body: await this.#read(res, deadline, total), chain };
  }

  /** Follows redirects up to the final answer's headers; the caller reads (or streams) its body. */
  async #exchange(
    input: URL,
    init: EgressRequestInit,
    route: (url: URL) => Dispatcher | Extract<EgressDecision, { allowed: false }>,
  ): Promise<{ res: Dispatcher.ResponseData; chain: string[]; deadline: number; total: number }> {
    const chain: string[] = [];
    let url = input;
    let headers: Record<string, string> = { ...init.headers };
    let method = init.method ?? "GET";
    let body = init.body;
    const requestId = init.requestId ?? randomUUID();
    const maxRedirects = this.#options.maxRedirects ?? 5;
    const total = this.#options.totalTimeoutMs ?? 60_000;
    const deadline = Date.now() + total;
    const headersTimeout = this.#options.headersTimeoutMs ?? 30_000;
    for (let hop = 0; ; hop++) {
      const dispatcher = route(url);
      if (!(dispatcher instanceof Dispatcher)) throw new AgentwallError(dispatcher.code, dispatcher.reason);
      chain.push(redactUrl(url));
      const hopHeaders: Record<string, string> = {
        ...headers,
        "x-request-id": requestId,
        "x-agentwall-timestamp": new Date().toISOString(),
      };
      if (init.credential !== undefined) {
        const vault = this.#options.vault;
        if (vault === undefined)
          throw new AgentwallError("ERR_EGRESS_HOST_DENIED", "no vault to take the credential from");
        const release = await vault.releaseFor(init.credential, url.host, this.#options.actor ?? "egress");
        if (release.allowed) hopHeaders.authorization = `Bearer ${release.value}`;
        else if (hop === 0) throw new AgentwallError("ERR_EGRESS_HOST_DENIED", release.reason);
        else delete hopHeaders.authorization;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new AgentwallError("ERR_EGRESS_FAILED", `no answer within ${total} ms`);
      let res: Dispatcher.ResponseData;
      try {
        res = await dispatcher.request({
          origin: url.origin,
          path: url.pathname + url.search,
          method,
          headers: hopHeaders,
          body: body ?? null,
          headersTimeout: Math.min(headersTimeout, left),
          bodyTimeout: Math.min(headersTimeout, left),
        });
      } catch (error) {
        throw asEgressError(error);
      }
      const location = res.headers.location;
      if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === "string") {
        await res.body.dump();
        if (hop >= maxRedirects)
          throw new AgentwallError("ERR_EGRESS_TOO_MANY_REDIRECTS", `more than ${maxRedirects} redirects`);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new AgentwallError("ERR_EGRESS_URL_INVALID", "the redirect location is not a URL");
        }
        if (next.origin !== url.origin) {
          headers = Object.fromEntries(
            Object.entries(headers).filter(
              ([k]) => !["authorization", "cookie", "proxy-authorization"].includes(k.toLowerCase()),
            ),
          );
        }
        if (res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        url = next;
        continue;
      }
      return { res, chain, deadline, total };
    }
  }

  /** The whole body, within the size limit and the deadline. */
  async #read(res: Dispatcher.ResponseData, deadline: number, total: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.#chunks(res, deadline, total)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** The body as it arrives, within the size limit and the deadline (errors carry egress codes). */
  async *#chunks(res: Dispatcher.ResponseData, deadline: number, total: number): AsyncGenerator<Buffer> {
    const limit = this.#options.maxResponseBytes ?? 10 * 1024 * 1024;
    let size = 0;
    let late = false;
    const timer = setTimeout(
      () => {
        late = true;
        res.body.destroy();
      },
      Math.max(deadline - Date.now(), 1),
    );
    try {
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > limit)
          throw new AgentwallError("ERR_EGRESS_RESPONSE_TOO_LARGE", `response larger than ${limit} bytes`);
        yield chunk as Buffer;
      }
    } catch (error) {
      if (late) throw new AgentwallError("ERR_EGRESS_FAILED", `no complete answer within ${total} ms`);
      throw isAgentwallError(error) ? error : asEgressError(error);
    } finally {
      clearTimeout(timer);
      // Stopping early (the consumer broke off) must not leave the connection half-read.
      if (!res.body.destroyed && !res.body.readableEnded) res.body.destroy();
    }
    if (late) throw new AgentwallError("ERR_EGRESS_FAILED", `no complete answer within ${total} ms`);
  }

  async close(): Promise<void> {
    await this.#requestAgent.close();
    for (const op of this.#operators.values()) await op.agent.close();
  }
}

/** A URL without its password and query values (for logs and the audit trail). */
export function redactUrl(url: URL): string {
  if (url.password === "" && url.search === "") return url.href;
  const copy = new URL(url.href);
  if (copy.password !== "") copy.password = "***";
  for (const key of [...copy.searchParams.keys()]) copy.searchParams.set(key, "…");
  return copy.toString();
}

function asEgressError(error: unknown): AgentwallError {
  let e: unknown = error;
  for (let i = 0; i < 5 && e !== undefined && e !== null; i++) {
    if (e instanceof AgentwallError) return e;
    e = (e as { cause?: unknown }).cause;
  }
  const code = (error as { code?: string }).code;
  return new AgentwallError("ERR_EGRESS_FAILED", `request failed${typeof code === "string" ? ` (${code})` : ""}`);
}
