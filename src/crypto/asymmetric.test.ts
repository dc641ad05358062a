import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import {
  generateEd25519KeyPair,
  generateRsaKeyPair,
  hybridDecrypt,
  hybridEncrypt,
  oaepCapacity,
  privateKeyFrom,
  publicKeyFrom,
  rsaOaepDecrypt,
  rsaOaepEncrypt,
  signEd25519,
  verifyEd25519,
} from "./asymmetric.js";

describe("RSA and Ed25519", () => {
  it("RSA 2048: PEM forms, a password-protected private key, OAEP up to one block, hybrid beyond", async () => {
    const pair = await generateRsaKeyPair(2048, { password: "s3cret" });
    assert.match(pair.publicKeyPem, /^-----BEGIN PUBLIC KEY-----/);
    assert.match(pair.privateKeyPem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.throws(() => privateKeyFrom(pair.privateKeyPem, "wrong"), { code: "ERR_DECRYPT" });
    assert.throws(() => privateKeyFrom(pair.privateKeyPem), { code: "ERR_DECRYPT" });
    const priv = privateKeyFrom(pair.privateKeyPem, "s3cret");
    const pub = publicKeyFrom(pair.publicKeyPem);
    assert.equal(oaepCapacity(pub), 256 - 66);
    const block = randomBytes(190);
    assert.deepEqual(rsaOaepDecrypt(priv, rsaOaepEncrypt(pub, block)), block);
    assert.throws(() => rsaOaepEncrypt(pub, randomBytes(191)), { code: "ERR_INVALID_ARGUMENT" });
    const big = randomBytes(100_000);
    const sealed = hybridEncrypt(pub, big);
    assert.deepEqual(hybridDecrypt(priv, sealed), big);
    for (const at of [2, 5, 10, sealed.length - 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[at]! ^= 0x40;
      assert.throws(() => hybridDecrypt(priv, bad), { code: "ERR_DECRYPT" }, `byte ${at}`);
    }
    const other = privateKeyFrom((await generateRsaKeyPair(2048)).privateKeyPem);
    assert.throws(() => hybridDecrypt(other, sealed), { code: "ERR_DECRYPT" });
    await assert.rejects(generateRsaKeyPair(1024 as 2048), { code: "ERR_INVALID_ARGUMENT" });
  });

  it("RSA 3072 and 4096 key pairs work the same way", async () => {
    for (const bits of [3072, 4096] as const) {
      const pair = await generateRsaKeyPair(bits);
      const priv = privateKeyFrom(pair.privateKeyPem);
      assert.equal(priv.asymmetricKeyDetails?.modulusLength, bits);
      const msg = Buffer.from(`hello ${bits}`);
      assert.deepEqual(hybridDecrypt(priv, hybridEncrypt(publicKeyFrom(pair.publicKeyPem), msg)), msg);
    }
  });

  it("Ed25519: sign, verify, a changed message or signature fails, keys of other types are refused", async () => {
    const pair = await generateEd25519KeyPair({ password: "pw" });
    const priv = privateKeyFrom(pair.privateKeyPem, "pw");
    const pub = publicKeyFrom(pair.publicKeyPem);
    const sig = signEd25519(priv, Buffer.from("message"));
    assert.equal(sig.length, 64);
    assert.equal(verifyEd25519(pub, Buffer.from("message"), sig), true);
    assert.equal(verifyEd25519(pub, Buffer.from("messagE"), sig), false);
    assert.equal(verifyEd25519(pub, Buffer.from("message"), sig.subarray(1)), false);
    const rsa = privateKeyFrom((await generateRsaKeyPair(2048)).privateKeyPem);
    assert.throws(() => signEd25519(rsa, Buffer.from("m")), { code: "ERR_INVALID_ARGUMENT" });
  });
});
