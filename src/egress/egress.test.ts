import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import ipaddr from "ipaddr.js";
import { auditedStore } from "../../test/helpers.js";
import { classifyAddress } from "./address.js";
import { EgressClient, type Resolver } from "./client.js";

const fixture = (name: string) => readFileSync(new URL(`../../test/fixtures/ssrf/${name}`, import.meta.url), "utf8");
const tsv = (name: string) =>
  fixture(name)
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split("\t"));

/** A resolver for tests: the names real attacks use, mapped as a hostile DNS would map them. */
const hostile: Resolver = async (host) => {
  const map: Record<string, string[]> = {
    localhost: ["127.0.0.1", "::1"],
    "localhost.": ["127.0.0.1"],
    "ip6-localhost": ["::1"],
    "ip6-loopback": ["::1"],
    "public.example": ["127.0.0.1"], // rebinding: a public-looking name answered with loopback
    "mixed.example": ["93.184.216.34", "10.0.0.5"],
    "ok.example": ["93.184.216.34"],
  };
  const hit = map[host.toLowerCase()];
  if (hit === undefined) throw Object.assign(new Error("ENOTFOUND"), { code: "ENOTFOUND" });
  return hit.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
};

const ANY_PORT = Array.from({ length: 65535 }, (_, i) => i + 1);

describe("address classification", () => {
  it("blocks every IANA special-purpose range of the table and unwraps embedded IPv4", () => {
    for (const [family, cidr, , , , recommendation] of tsv("blocked_ranges.tsv")) {
      if (!/^BLOCK|^UNWRAP|^block/.test(recommendation ?? "") || cidr === undefined || cidr.startsWith("!")) continue;
      const [base] = ipaddr.parseCIDR(cidr);
      const text = base.toString();
      const verdict = classifyAddress(family === "ipv6" && text === "::ffff:0:0" ? "::ffff:127.0.0.1" : text);
      assert.equal(verdict.allowed, false, `${cidr} (${text})`);
    }
    for (const a of [
      "::127.0.0.1",
      "::ffff:169.254.169.254",
      "64:ff9b::a00:1",
      "2002:7f00:1::1",
      "2001::1",
      "fd12::1",
      "3fff::1",
      "100::1",
    ]) {
      assert.equal(classifyAddress(a).allowed, false, a);
    }
  });

  it("does not over-block public addresses", () => {
    for (const a of [
      "8.8.8.8",
      "1.1.1.1",
      "93.184.216.34",
      "192.31.196.1",
      "2606:4700:4700::1111",
      "2620:4f:8000::1",
      "::ffff:8.8.8.8",
      "64:ff9b::808:808",
    ]) {
      assert.equal(classifyAddress(a).allowed, true, a);
    }
  });

  it("never allows an address in a blocked range, for any input (property)", () => {
    const blocked = tsv("blocked_ranges.tsv")
      .filter(([, cidr, , , , rec]) => /^BLOCK/.test(rec ?? "") && cidr !== undefined && !cidr.startsWith("!"))
      .map(([, cidr]) => ipaddr.parseCIDR(cidr as string));
    const inside = (text: string) => {
      try {
        const a = ipaddr.parse(text);
        return blocked.some(([base, bits]) => a.kind() === base.kind() && a.match([base, bits] as never));
      } catch {
        return false;
      }
    };
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.ipV4Extended(), fc.string({ maxLength: 50 })), (text) => {
        const verdict = classifyAddress(text);
        if (verdict.allowed) assert.ok(!inside(text), `${text} allowed but in a blocked range`);
      }),
      { numRuns: 5000 },
    );
  });
});

describe("the egress client against real listeners", () => {
  let server: Server;
  let port = 0;
  let hits = 0;
  before(async () => {
    server = createServer((req, res) => {
      hits++;
      if (req.url === "/redirect-away") {
        res.writeHead(302, { location: `http://127.0.0.1:${port + 0}/../x` }).end();
        return;
      }
      if (req.url === "/redirect-elsewhere") {
        res.writeHead(302, { location: "http://public.example/" }).end();
        return;
      }
      if (req.url === "/redirect-same") {
        res.writeHead(302, { location: "/echo" }).end();
        return;
      }
      if (req.url === "/silent") return; // never answers
      if (req.url === "/drip") {
        // Headers at once, then a byte every 50 ms, forever: only a total deadline ends it.
        res.writeHead(200, { "content-type": "text/plain" });
        const timer = setInterval(() => res.write("."), 50);
        res.on("close", () => clearInterval(timer));
        return;
      }
      if (req.url === "/big") {
        res.writeHead(200).end(Buffer.alloc(64 * 1024, 0x61));
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          auth: req.headers.authorization ?? null,
          requestId: req.headers["x-request-id"] ?? null,
          ts: req.headers["x-agentwall-timestamp"] ?? null,
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it("refuses every payload URL by check() and by a real request; nothing reaches the listener", async () => {
    const client = new EgressClient({ allowHttp: true, ports: ANY_PORT, resolver: hostile });
    try {
      const rows = tsv("payloads.tsv");
      assert.ok(rows.length >= 190);
      for (const [url] of rows) {
        const decision = await client.check(url as string);
        assert.equal(decision.allowed, false, `check allowed ${url}`);
        await assert.rejects(client.fetch(url as string), (e: { code?: string }) => {
          assert.ok(e.code?.startsWith("ERR_EGRESS_") && e.code !== "ERR_EGRESS_FAILED", `${url}: ${e.code}`);
          return true;
        });
      }
      // The same listener, named and numbered every way: refused before any byte.
      for (const url of [
        `http://127.0.0.1:${port}/`,
        `http://localhost:${port}/`,
        `http://[::ffff:127.0.0.1]:${port}/`,
        `http://public.example:${port}/`,
        `http://mixed.example:${port}/`,
      ]) {
        await assert.rejects(client.fetch(url), { code: "ERR_EGRESS_ADDRESS_BLOCKED" }, url);
      }
      assert.equal(hits, 0, "no request reached the listener");
      assert.equal((await client.check("https://8.8.8.8/")).allowed, true, "public literals are not over-blocked");
      assert.equal((await client.check("https://ok.example/")).allowed, true);
    } finally {
      await client.close();
    }
  });

  it("an operator destination on 127.0.0.1 works while the same address in a request URL is refused", async () => {
    const client = new EgressClient({
      allowHttp: true,
      ports: ANY_PORT,
      resolver: hostile,
      operatorDestinations: [{ name: "local-model", origin: `http://127.0.0.1:${port}` }],
    });
    try {
      const before = hits;
      const ok = await client.fetchOperator("local-model", "/v1/models", { headers: { authorization: "Bearer op" } });
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body.toString()).auth, "Bearer op");
      const same = await client.fetchOperator("local-model", "/redirect-same");
      assert.equal(same.status, 200, "a redirect on the same origin stays exempt");
      await assert.rejects(client.fetch(`http://127.0.0.1:${port}/v1/models`), { code: "ERR_EGRESS_ADDRESS_BLOCKED" });
      await assert.rejects(
        client.fetchOperator("local-model", "/redirect-elsewhere"),
        { code: "ERR_EGRESS_ADDRESS_BLOCKED" },
        "a redirect off the origin is a request URL",
      );
      await assert.rejects(client.fetchOperator("local-model", "http://10.0.0.1/"), { code: "ERR_EGRESS_HOST_DENIED" });
      await assert.rejects(client.fetchOperator("nope", "/"), { code: "ERR_EGRESS_HOST_DENIED" });
      assert.equal(hits - before, 4, "only the operator's own requests arrived");
    } finally {
      await client.close();
    }
  });

  it("ends a silent or dripping answer at the total deadline, and refuses a body over the size limit", async () => {
    const client = new EgressClient({
      totalTimeoutMs: 400,
      maxResponseBytes: 16 * 1024,
      operatorDestinations: [{ name: "local", origin: `http://127.0.0.1:${port}` }],
    });
    try {
      for (const path of ["/silent", "/drip"]) {
        const started = Date.now();
        await assert.rejects(client.fetchOperator("local", path), { code: "ERR_EGRESS_FAILED" }, path);
        const took = Date.now() - started;
        assert.ok(took >= 350 && took < 2000, `${path} ended after ${took} ms`);
      }
      await assert.rejects(client.fetchOperator("local", "/big"), { code: "ERR_EGRESS_RESPONSE_TOO_LARGE" });
      assert.equal((await client.fetchOperator("local", "/echo")).status, 200, "the client is still usable");
    } finally {
      await client.close();
    }
  });

  it("audits every request and refusal, with query values and passwords kept out", async () => {
    const { audit } = await auditedStore();
    const client = new EgressClient({
      allowHttp: true,
      ports: ANY_PORT,
      resolver: hostile,
      audit,
      actor: "agent:test",
      operatorDestinations: [{ name: "local", origin: `http://127.0.0.1:${port}` }],
    });
    try {
      await client.fetchOperator("local", "/ok?token=s3cr3t-value");
      await assert.rejects(client.fetch(`http://public.example:${port}/x?api_key=s3cr3t-value`));
      const events = [...(await audit.query({ type: "egress" })).events].reverse(); // oldest first
      assert.deepEqual(
        events.map((e) => [e.action, e.outcome]),
        [
          ["egress.operator", "allowed"],
          ["egress.request", "denied"],
        ],
      );
      assert.equal((events[1]?.details as { code?: string }).code, "ERR_EGRESS_ADDRESS_BLOCKED");
      assert.ok(!JSON.stringify(events).includes("s3cr3t-value"), "query values are not recorded");
      assert.equal(events[0]?.actor, "agent:test");
    } finally {
      await client.close();
      await audit.close();
    }
  });

  it("sends a vault credential only to the hosts it is bound to, with request id and timestamp headers", async () => {
    const { Vault } = await import("../identity/vault.js");
    const { store, keyring, audit } = await auditedStore();
    const vault = new Vault({ store, keyring, audit });
    await vault.set("local", "sk-local-secret-value", [`127.0.0.1:${port}`], "test");
    await vault.set("openai", "sk-openai-secret-value", ["api.openai.com"], "test");
    const client = new EgressClient({
      allowHttp: true,
      ports: ANY_PORT,
      resolver: hostile,
      vault,
      operatorDestinations: [{ name: "local", origin: `http://127.0.0.1:${port}` }],
    });
    try {
      const before = hits;
      const ok = JSON.parse(
        (await client.fetchOperator("local", "/echo", { credential: "local", requestId: "req-123" })).body.toString(),
      ) as {
        auth: string;
        requestId: string;
        ts: string;
      };
      assert.equal(ok.auth, "Bearer sk-local-secret-value");
      assert.equal(ok.requestId, "req-123");
      assert.ok(!Number.isNaN(Date.parse(ok.ts)));
      await assert.rejects(
        client.fetchOperator("local", "/echo", { credential: "openai" }),
        { code: "ERR_EGRESS_HOST_DENIED" },
        "not bound to this host",
      );
      assert.equal(hits - before, 1, "the refused request never left");
      const releases = (await audit.query({ type: "data_access" })).events.filter((e) => e.action === "vault.release");
      assert.deepEqual(releases.map((e) => e.outcome).sort(), ["allowed", "denied"]);
    } finally {
      await client.close();
      await audit.close();
    }
  });

  it("refuses credentials in URLs, wrong schemes and ports, and HTTP by default", async () => {
    const client = new EgressClient({ resolver: hostile });
    try {
      assert.equal((await client.check("https://user:pw@ok.example/")).allowed, false);
      assert.equal((await client.check("http://ok.example/")).allowed, false, "HTTPS only by default");
      assert.equal((await client.check("https://ok.example:8443/")).allowed, false);
      assert.equal((await client.check("ftp://ok.example/")).allowed, false);
      assert.equal((await client.check("file:///etc/passwd")).allowed, false);
      const denied = new EgressClient({ resolver: hostile, allowHosts: ["*.example"], denyHosts: ["mixed.example"] });
      assert.equal((await denied.check("https://ok.example/")).allowed, true);
      assert.equal((await denied.check("https://other.test/")).allowed, false);
      await denied.close();
    } finally {
      await client.close();
    }
  });

  it("host lists hold for every spelling of a name: case, the trailing dot, an escaped dot", async () => {
    const client = new EgressClient({
      resolver: hostile,
      denyHosts: ["ok.example", "*.Evil.Example"],
      allowHosts: ["*.example.", "other.test"],
    });
    try {
      for (const url of [
        "https://ok.example./",
        "https://OK.Example/",
        "https://ok.example%2e/",
        "https://ok.example../",
        "https://a.evil.example./",
        "https://A.EVIL.example/",
      ]) {
        const d = client.checkUrlSyntax(url);
        assert.equal(d.allowed ? "allowed" : d.code, "ERR_EGRESS_HOST_DENIED", url);
        await assert.rejects(client.fetch(url), { code: "ERR_EGRESS_HOST_DENIED" }, url);
      }
      // The allow list matches the same way: a trailing dot names the same host.
      for (const url of ["https://a.example./", "https://A.example/", "https://other.test./"])
        assert.equal(client.checkUrlSyntax(url).allowed, true, url);
      assert.equal(client.checkUrlSyntax("https://example/").allowed, false, "*.example is not example itself");
    } finally {
      await client.close();
    }
    // A pattern that could match nothing (and so turn a deny list off) is refused when the client is made.
    for (const pattern of [
      "*",
      "*.",
      "evil.*",
      "https://evil.example",
      "evil.example/path",
      "",
      "a..b",
      "ev il.example",
    ])
      assert.throws(() => new EgressClient({ denyHosts: [pattern] }), { code: "ERR_INVALID_ARGUMENT" }, pattern);
    assert.doesNotThrow(() => new EgressClient({ denyHosts: ["[::1]", "10.0.0.1", "_dmarc.example"] }));
  });
});
