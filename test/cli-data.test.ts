// Data-protection commands as users run them: encrypt/decrypt in every format, keygen, records, and a
// master-key rotation followed by re-encryption.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import Database from "better-sqlite3";
import { tempDir } from "./helpers.js";

const MAIN = join(import.meta.dirname, "../dist/cli/main.js");

function cli(args: string[], env: Record<string, string>, input: string | Buffer = "") {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    env: { PATH: process.env.PATH ?? "", ...env },
    input,
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

describe("agentwall encrypt / decrypt / keygen", () => {
  const dir = tempDir();
  const env = { PW: "correct horse battery", AGENTWALL_HOME: join(dir, "home") };

  it("round-trips json, binary, compat and stream formats; a wrong password is exit 3 with ERR_DECRYPT", () => {
    const data = randomBytes(5000);
    for (const format of ["json", "binary", "compat", "stream"]) {
      const enc = cli(["encrypt", "--password-env", "PW", "--format", format, "--kdf", "pbkdf2"], env, data);
      assert.equal(enc.code, 0, `${format}: ${enc.stderr}`);
      assert.ok(!enc.stdout.includes(data.subarray(0, 64)));
      const dec = cli(["decrypt", "--password-env", "PW"], env, enc.stdout);
      assert.equal(dec.code, 0, `${format}: ${dec.stderr}`);
      assert.deepEqual(dec.stdout, data, format);
      const wrong = cli(["decrypt", "--password-env", "PW"], { ...env, PW: "wrong" }, enc.stdout);
      assert.equal(wrong.code, 3, format);
      assert.match(wrong.stderr, /ERR_DECRYPT: decryption failed/);
    }
    assert.equal(cli(["encrypt"], env, "x").code, 2, "no password source and no terminal");
    assert.equal(cli(["encrypt", "--password-env", "NOPE"], env, "x").code, 2);
    assert.equal(cli(["encrypt", "--password-env", "PW", "--format", "zip"], env, "x").code, 2);
  });

  it("files: --in/--out with a key file, output 0600, nothing written on failure", () => {
    const key = join(dir, "k");
    writeFileSync(key, randomBytes(32).toString("hex"));
    const plain = join(dir, "plain");
    writeFileSync(plain, randomBytes(200_000));
    for (const format of ["binary", "stream"]) {
      const out = join(dir, `enc-${format}`);
      assert.equal(cli(["encrypt", "--key-file", key, "--format", format, "--in", plain, "--out", out], env).code, 0);
      assert.equal(statSync(out).mode & 0o777, 0o600);
      const back = join(dir, `dec-${format}`);
      assert.equal(cli(["decrypt", "--key-file", key, "--in", out, "--out", back], env).code, 0);
      assert.deepEqual(readFileSync(back), readFileSync(plain));
      const other = join(dir, "k2");
      writeFileSync(other, randomBytes(32));
      const failed = join(dir, `failed-${format}`);
      assert.equal(cli(["decrypt", "--key-file", other, "--in", out, "--out", failed], env).code, 3);
      assert.throws(() => statSync(failed), "no output file after a failed decryption");
    }
  });

  it("keygen writes PEM pairs with a 0600 private key, encrypted when a password is given", () => {
    const out = join(dir, "rsa");
    assert.equal(cli(["keygen", "rsa", "--bits", "2048", "--password-env", "PW", "--out", out], env).code, 0);
    assert.match(readFileSync(join(out, "private.pem"), "utf8"), /BEGIN ENCRYPTED PRIVATE KEY/);
    assert.equal(statSync(join(out, "private.pem")).mode & 0o777, 0o600);
    assert.equal(cli(["keygen", "rsa", "--bits", "2048", "--out", out], env).code, 2, "never overwrites a pair");
    assert.match(cli(["keygen", "ed25519"], env).stdout.toString(), /BEGIN PUBLIC KEY[\s\S]*BEGIN PRIVATE KEY/);
    assert.equal(cli(["keygen", "rsa", "--bits", "1024"], env).code, 2);
  });
});

describe("agentwall records, kek rotate and data reencrypt", () => {
  it("lists a record altered in the database as DAMAGED, beside the good one, and exits 1", () => {
    const home = tempDir();
    const env = { AGENTWALL_HOME: home, AGENTWALL_MASTER_KEY: randomBytes(32).toString("hex") };
    const put = (text: string) => cli(["records", "put", "--owner", "alice", "--type", "note"], env, text);
    const [good, bad] = [put("one").stdout.toString().trim(), put("two").stdout.toString().trim()];
    const db = new Database(join(home, "agentwall.db"));
    try {
      const row = db.prepare("SELECT metadata FROM records WHERE id = ?").get(good) as { metadata: string };
      db.prepare("UPDATE records SET metadata = ? WHERE id = ?").run(row.metadata, bad);
    } finally {
      db.close();
    }
    const listed = cli(["records", "list", "--owner", "alice"], env);
    assert.equal(listed.code, 1, listed.stderr);
    const lines = listed.stdout.toString().trim().split("\n").sort();
    assert.equal(lines.length, 2);
    assert.match(lines.find((l) => l.startsWith(bad)) ?? "", /\tDAMAGED ERR_DECRYPT$/);
    assert.doesNotMatch(lines.find((l) => l.startsWith(good)) ?? "", /DAMAGED/);
  });

  it("stores per owner, rotates the master key, re-encrypts, and still reads everything", () => {
    const home = tempDir();
    const oldKey = randomBytes(32).toString("hex");
    const newKey = randomBytes(32).toString("hex");
    const env = { AGENTWALL_HOME: home, AGENTWALL_MASTER_KEY: oldKey };
    const put = cli(["records", "put", "--owner", "alice", "--type", "note", "--meta", '{"t":1}'], env, "alice data");
    assert.equal(put.code, 0, put.stderr);
    const id = put.stdout.toString().trim();
    assert.match(id, /^rec_[0-9a-f]{32}$/);
    assert.equal(cli(["records", "get", id, "--owner", "alice"], env).stdout.toString(), "alice data");
    assert.equal(cli(["records", "get", id, "--owner", "bob"], env).code, 1, "another owner: not found");
    assert.match(cli(["records", "list", "--owner", "alice", "--json"], env).stdout.toString(), /"metadata":\{"t":1\}/);
    // Rotation: the new key as current, the old as previous; then the old one alone is refused.
    const during = { ...env, AGENTWALL_MASTER_KEY: newKey, AGENTWALL_MASTER_KEY_PREVIOUS: oldKey };
    const rotate = cli(["kek", "rotate"], during);
    assert.equal(rotate.code, 0, rotate.stderr);
    assert.match(rotate.stdout.toString(), /re-wrapped \d+ data key\(s\)[\s\S]*retired mk_/);
    const after = { AGENTWALL_HOME: home, AGENTWALL_MASTER_KEY: newKey };
    const status = cli(["kek", "status"], after).stdout.toString();
    assert.match(status, /\tretired\twraps 0\n/);
    assert.match(status, /\tcurrent\twraps [1-9]/);
    assert.equal(cli(["records", "get", id, "--owner", "alice"], env).code, 3, "the retired key is refused");
    const re = cli(["data", "reencrypt"], after);
    assert.equal(re.code, 0, re.stderr);
    assert.match(re.stdout.toString(), /re-encrypted 1 record\(s\)/);
    assert.equal(cli(["records", "get", id, "--owner", "alice"], after).stdout.toString(), "alice data");
    assert.equal(cli(["records", "delete", id, "--owner", "bob"], after).code, 1);
    assert.equal(cli(["records", "delete", id, "--owner", "alice"], after).code, 0);
  });
});
