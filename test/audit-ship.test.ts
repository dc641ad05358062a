// Audit shipping from a real gateway process to a JSON Lines file, stdout and an HTTP receiver (through
// the egress client, with a vault credential): every event arrives, in order, the HTTP receiver's
// outage loses nothing, and a restart continues from the acknowledged cursor.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCliAsync, startGateway, tempDir } from "./helpers.js";

describe("audit shipping from the gateway", () => {
  it("ships every event to a file, stdout and HTTP, through an HTTP outage and a restart", async () => {
    let down = true;
    const received: string[] = [];
    const auths = new Set<string>();
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        auths.add(String(req.headers.authorization));
        if (down || req.headers["content-type"] !== "application/x-ndjson") {
          res.writeHead(503).end();
          return;
        }
        received.push(body);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => receiver.close(() => r())));
    const port = (receiver.address() as AddressInfo).port;

    const dir = tempDir();
    const file = join(dir, "shipped.jsonl");
    const config = join(dir, "agentwall.json");
    writeFileSync(
      config,
      JSON.stringify({
        audit: {
          ship: [
            { kind: "file", path: file },
            { kind: "stdout" },
            { kind: "http", url: `http://127.0.0.1:${port}/ingest`, credential: "siem" },
          ],
        },
      }),
    );
    const env = {
      AGENTWALL_HOME: join(dir, "home"),
      AGENTWALL_CONFIG: config,
      AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url"),
    };
    const made = await runCliAsync(["keys", "create", "--subject", "ops", "--role", "admin", "--json"], env);
    assert.equal(made.code, 0, made.stderr);
    const key = (JSON.parse(made.stdout) as { key: string }).key;
    const vault = await runCliAsync(["vault", "set", "siem", "--host", "127.0.0.1", "--value-env", "SIEM"], {
      ...env,
      SIEM: "siem-token-0123456789",
    });
    assert.equal(vault.code, 0, vault.stderr);

    const seqs = (text: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith("{") && l.includes('"seq"'))
        .map((l) => (JSON.parse(l) as { seq: number }).seq);
    const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(ok(), what);
    };
    const head = async (url: string) => {
      const res = await fetch(`${url}/v1/admin/audit/events?limit=1`, { headers: { authorization: `Bearer ${key}` } });
      return ((await res.json()) as { events: { seq: number }[] }).events[0]?.seq ?? 0;
    };

    let gw = await startGateway(env);
    for (let i = 0; i < 5; i++) await head(gw.url);
    let size = await head(gw.url);
    await until("the file has every event", () => seqs(readFileSync(file, "utf8")).length >= size);
    await until("stdout has every event", () => seqs(gw.stdout()).length >= size);
    assert.deepEqual(seqs(readFileSync(file, "utf8")).slice(0, size), upTo(size));
    assert.deepEqual(seqs(gw.stdout()).slice(0, size), upTo(size));
    assert.equal(received.length, 0, "the receiver is down");
    const lag = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    assert.match(
      await lag.text(),
      /agentwall_audit_ship_lag_events\{sink="http:http:\/\/127\.0\.0\.1:\d+\/ingest"\} [1-9]/,
    );

    down = false;
    await until("the receiver catches up after its outage", () => seqs(received.join("")).length >= size);
    assert.deepEqual(seqs(received.join("")).slice(0, size), upTo(size));
    assert.deepEqual([...auths], ["Bearer siem-token-0123456789"], "the vault credential, for its host");

    // A restart ships what came after, without starting over.
    assert.equal(await gw.stop(), 0, gw.stderr());
    gw = await startGateway(env);
    await head(gw.url);
    size = await head(gw.url);
    await until("after the restart the file has every event", () => seqs(readFileSync(file, "utf8")).length >= size);
    await until("after the restart the receiver has every event", () => seqs(received.join("")).length >= size);
    assert.equal(await gw.stop(), 0, gw.stderr());
    const fileSeqs = seqs(readFileSync(file, "utf8"));
    const httpSeqs = seqs(received.join(""));
    // At least once: a batch can come twice after a crash, never out of order or with a gap; a clean
    // restart repeats nothing.
    assert.deepEqual(fileSeqs, upTo(fileSeqs.length));
    assert.deepEqual(httpSeqs, upTo(httpSeqs.length));
    assert.ok(fileSeqs.length >= size);
  });
});
