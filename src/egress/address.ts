import ipaddr from "ipaddr.js";

/**
 * Address classification for outbound requests: every IANA special-purpose IPv4 and IPv6 range is
 * blocked, IPv4 embedded in IPv6 is unwrapped first (mapped and NAT64 are re-checked as IPv4; IPv4-
 * compatible, 6to4 and Teredo are refused outright), and IPv6 outside 2000::/3 is not public. ipaddr.js
 * parses; its own range names are not trusted (it calls `::127.0.0.1` unicast).
 */
export type AddressVerdict =
  | { readonly allowed: true; readonly address: string }
  | {
      readonly allowed: false;
      readonly code: "ERR_EGRESS_ADDRESS_BLOCKED" | "ERR_EGRESS_ADDRESS_INVALID";
      readonly reason: string;
    };

const V4: readonly [string, string][] = [
  ["0.0.0.0/8", "this network"],
  ["10.0.0.0/8", "private"],
  ["100.64.0.0/10", "shared address space (CGNAT)"],
  ["127.0.0.0/8", "loopback"],
  ["169.254.0.0/16", "link-local (cloud metadata)"],
  ["172.16.0.0/12", "private"],
  ["192.0.0.0/24", "IETF protocol assignments"],
  ["192.0.2.0/24", "documentation"],
  ["192.88.99.0/24", "6to4 relay anycast"],
  ["192.168.0.0/16", "private"],
  ["198.18.0.0/15", "benchmarking"],
  ["198.51.100.0/24", "documentation"],
  ["203.0.113.0/24", "documentation"],
  ["224.0.0.0/4", "multicast"],
  ["240.0.0.0/4", "reserved"],
  ["255.255.255.255/32", "broadcast"],
];

const V6: readonly [string, string][] = [
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["::/96", "IPv4-compatible (deprecated)"],
  ["::ffff:0:0:0/96", "IPv4-translated"],
  ["64:ff9b:1::/48", "local-use IPv4/IPv6 translation"],
  ["100::/64", "discard-only"],
  ["100:0:0:1::/64", "dummy prefix"],
  ["2001::/23", "IETF protocol assignments (Teredo, benchmarking, ORCHID…)"],
  ["2001:db8::/32", "documentation"],
  ["2002::/16", "6to4"],
  ["3fff::/20", "documentation"],
  ["5f00::/16", "segment routing"],
  ["fc00::/7", "unique local"],
  ["fe80::/10", "link-local"],
  ["fec0::/10", "site-local (deprecated)"],
  ["ff00::/8", "multicast"],
];

const parsedV4 = V4.map(([cidr, name]) => [ipaddr.parseCIDR(cidr), name] as const);
const parsedV6 = V6.map(([cidr, name]) => [ipaddr.parseCIDR(cidr), name] as const);
const GLOBAL_UNICAST = ipaddr.parseCIDR("2000::/3");
const NAT64 = ipaddr.parseCIDR("64:ff9b::/96");

function classifyV4(a: ipaddr.IPv4): AddressVerdict {
  for (const [range, name] of parsedV4) {
    if (a.match(range))
      return { allowed: false, code: "ERR_EGRESS_ADDRESS_BLOCKED", reason: `${a.toString()} is ${name}` };
  }
  return { allowed: true, address: a.toString() };
}

/** Classifies one IP address (text as DNS or a URL gives it; brackets and zone ids refused). */
export function classifyAddress(text: string): AddressVerdict {
  if (typeof text !== "string" || text.length > 64 || text.includes("%")) {
    return { allowed: false, code: "ERR_EGRESS_ADDRESS_INVALID", reason: "not an IP address" };
  }
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // Strict forms only: four decimal octets or standard IPv6 (no octal, hex or short IPv4 forms).
    if (ipaddr.IPv4.isValidFourPartDecimal(text)) parsed = ipaddr.IPv4.parse(text);
    else if (ipaddr.IPv6.isValid(text) && text.includes(":")) parsed = ipaddr.IPv6.parse(text);
    else return { allowed: false, code: "ERR_EGRESS_ADDRESS_INVALID", reason: "not an IP address" };
  } catch {
    return { allowed: false, code: "ERR_EGRESS_ADDRESS_INVALID", reason: "not an IP address" };
  }
  if (parsed.kind() === "ipv4") return classifyV4(parsed as ipaddr.IPv4);
  const v6 = parsed as ipaddr.IPv6;
  // Embedded IPv4 first: mapped and NAT64 carry a real IPv4 destination, checked as IPv4.
  if (v6.isIPv4MappedAddress()) return classifyV4(v6.toIPv4Address());
  if (v6.match(NAT64)) {
    const b = v6.toByteArray();
    return classifyV4(new ipaddr.IPv4(b.slice(12, 16)));
  }
  for (const [range, name] of parsedV6) {
    if (v6.match(range))
      return { allowed: false, code: "ERR_EGRESS_ADDRESS_BLOCKED", reason: `${v6.toString()} is ${name}` };
  }
  if (!v6.match(GLOBAL_UNICAST)) {
    return {
      allowed: false,
      code: "ERR_EGRESS_ADDRESS_BLOCKED",
      reason: `${v6.toString()} is outside 2000::/3 (not public)`,
    };
  }
  return { allowed: true, address: v6.toNormalizedString() };
}
