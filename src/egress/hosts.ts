import { isIP } from "node:net";
import { AgentwallError } from "../errors.js";

/**
 * A host name as host lists compare it: lower case, without the trailing dot of a fully qualified
 * name. `bad.example.` is the same name as `bad.example` to DNS (and to the socket that connects to
 * it), so comparing the two as text let a URL past a deny list by adding a dot.
 */
export function canonicalHost(host: string): string {
  let end = host.length;
  while (end > 0 && host.charCodeAt(end - 1) === 46) end--;
  return host.slice(0, end).toLowerCase();
}

/** A URL's host as host lists compare it ({@link canonicalHost}): an IPv6 address without its brackets. */
export function urlHost(url: URL): string {
  return canonicalHost(url.hostname.replace(/^\[|\]$/g, ""));
}

const NAME = /^(?:\*\.)?(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * A host pattern of a host list — `example.com` (that host only), `*.example.com` (every host under it,
 * not the name itself) or an address — in canonical form. Anything else throws `ERR_INVALID_ARGUMENT`:
 * a pattern that silently matched nothing would turn a deny list off.
 */
export function hostPattern(pattern: string): string {
  const p = canonicalHost(String(pattern).replace(/^\[(.*)\]$/, "$1"));
  if (p.length > 253 || (!NAME.test(p) && isIP(p) === 0))
    throw new AgentwallError(
      "ERR_INVALID_ARGUMENT",
      `invalid host pattern ${JSON.stringify(String(pattern).slice(0, 80))}: a host name, *.name or an address`,
    );
  return p;
}

/** Whether `host` matches one of `patterns` (both canonical: {@link canonicalHost}, {@link hostPattern}). */
export function hostMatches(host: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    p.startsWith("*.") ? host.length > p.length - 1 && host.endsWith(p.slice(1)) : host === p,
  );
}
