import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from "jose";
import { OidcVerifier, type OidcIssuerConfig } from "./oidc.js";

async function jwksServer(body: () => string): Promise<{ url: string; server: Server }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`, server };
}

const ISSUER = "https://idp.example";

async function setup(extra: Partial<OidcIssuerConfig> = {}) {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
  const { url } = await jwksServer(() => JSON.stringify({ keys: [jwk] }));
  const verifier = new OidcVerifier([
    {
      issuer: ISSUER,
      jwksUrl: url,
      audience: "agentwall",
      roleMap: { "idp-ops": "admin", "idp-dev": "developer" },
      ...extra,
    },
  ]);
  const sign = (claims: Record<string, unknown>, key: CryptoKey = privateKey, header: Record<string, unknown> = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "k1", ...header })
      .setIssuer(ISSUER)
      .setAudience("agentwall")
      .setSubject("u-123")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);
  return { verifier, sign, privateKey };
}

describe("OIDC bearer tokens", () => {
  it("verifies against the configured JWKS and maps roles", async () => {
    const { verifier, sign } = await setup();
    const r = await verifier.verify(await sign({ roles: ["idp-ops", "idp-unknown"] }));
    assert.deepEqual(r, { valid: true, subject: "idp.example:u-123", roles: ["admin"], issuer: ISSUER });
    const none = await verifier.verify(await sign({ groups: ["idp-ops"] }));
    assert.deepEqual(none.valid && none.roles, []);
    assert.ok(verifier.knows(ISSUER));
    assert.ok(!verifier.knows("https://other.example"));
  });

  it("refuses other keys, a jku pointing elsewhere, wrong audience, wrong tenant and unknown issuers", async () => {
    const { verifier, sign, privateKey } = await setup({ tenantClaim: "tid", tenants: ["t1"] });
    const attacker = await generateKeyPair("ES256");
    const attackerJwks = await jwksServer(() => "");
    const ok = await verifier.verify(await sign({ tid: "t1" }));
    assert.equal(ok.valid, true);
    const cases: Array<[string, Promise<string>, string]> = [
      ["other key", sign({ tid: "t1" }, attacker.privateKey), "SIGNATURE"],
      ["jku elsewhere", sign({ tid: "t1" }, attacker.privateKey, { jku: attackerJwks.url }), "SIGNATURE"],
      ["wrong tenant", sign({ tid: "t2" }), "TENANT"],
      ["no tenant", sign({}), "TENANT"],
      [
        "wrong audience",
        new SignJWT({ tid: "t1" })
          .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "k1" })
          .setIssuer(ISSUER)
          .setAudience("else")
          .setSubject("u")
          .setIssuedAt()
          .setExpirationTime("5m")
          .sign(privateKey),
        "CLAIM",
      ],
      [
        "unknown issuer",
        new SignJWT({})
          .setProtectedHeader({ alg: "ES256", typ: "JWT" })
          .setIssuer("https://evil.example")
          .setAudience("agentwall")
          .setSubject("u")
          .setIssuedAt()
          .setExpirationTime("5m")
          .sign(attacker.privateKey),
        "UNKNOWN_ISSUER",
      ],
    ];
    for (const [name, token, failure] of cases) {
      const r = await verifier.verify(await token);
      assert.equal(r.valid, false, name);
      if (!r.valid) assert.equal(r.failure, failure, name);
    }
  });

  it("a JWKS endpoint that is down or answers too much means deny", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const big = await jwksServer(() => JSON.stringify({ keys: [], pad: "x".repeat(100_000) }));
    const down = await jwksServer(() => "{}");
    await new Promise<void>((resolve) => down.server.close(() => resolve()));
    for (const url of [big.url, down.url]) {
      const verifier = new OidcVerifier([{ issuer: ISSUER, jwksUrl: url, audience: "agentwall", roleMap: {} }]);
      const token = await new SignJWT({})
        .setProtectedHeader({ alg: "ES256", typ: "JWT", kid: "k1" })
        .setIssuer(ISSUER)
        .setAudience("agentwall")
        .setSubject("u")
        .setIssuedAt()
        .setExpirationTime("5m")
        .sign(privateKey);
      const r = await verifier.verify(token);
      assert.deepEqual(r, { valid: false, failure: "KEYS_UNAVAILABLE" }, url);
    }
  });

  it("refuses configurations that would fetch keys over plain HTTP from elsewhere, or are ambiguous", () => {
    const base = { issuer: ISSUER, audience: "a", roleMap: {} };
    assert.throws(() => new OidcVerifier([{ ...base, jwksUrl: "http://idp.example/jwks" }]), {
      code: "ERR_CONFIG_INVALID",
    });
    assert.throws(() => new OidcVerifier([{ ...base, jwksUrl: "not a url" }]), { code: "ERR_CONFIG_INVALID" });
    assert.throws(() => new OidcVerifier([{ ...base, jwksUrl: "https://idp.example/jwks", tenants: ["t"] }]), {
      code: "ERR_CONFIG_INVALID",
    });
    assert.throws(
      () =>
        new OidcVerifier([
          { ...base, jwksUrl: "https://idp.example/jwks" },
          { ...base, jwksUrl: "https://idp.example/jwks" },
        ]),
      { code: "ERR_CONFIG_INVALID" },
    );
  });
});
