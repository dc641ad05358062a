// SIGKILL of a gateway under proxy load loses no audit event of an answered request: the llm_request
// event is durable before the answer leaves.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCli, runCliAsync, startGateway, tempDir } from "./helpers.js";

describe("the proxy under SIGKILL", () => {
  it("every answered request's audit event survives the kill", async () => {
    const upstream = createServer((req, res) => {
      req.resume();
      req.on("end", () =>
        res.writeHead(200, { "content-type": "application/json" }).end(
          JSON.stringify({
            choices: [{ index: 0, message: { role: "assistant", content: "Paris." }, finish_reason: "stop" }],
            usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
          }),
        ),
      );
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    after(() => new Promise<void>((r) => upstream.close(() => r())));
    const home = tempDir();
    const config = join(home, "agentwall.json");
    writeFileSync(
      config,
      JSON.stringify({ rateLimits: { perIp: { limit: 100_000, periodMs: 60_000, burst: 100_000 } } }),
    );
    const env = {
      AGENTWALL_HOME: home,
      AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url"),
      AGENTWALL_CONFIG: config,
      AGENTWALL_LOG_LEVEL: "warn",
      AGENTWALL_UPSTREAM_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`,
      AGENTWALL_UPSTREAM_KEY: "sk-upstream-kill-00000000000000000",
    };
    // Not runCli: this process hosts the upstream the gateway reaches, so it must not block.
    const created = await runCliAsync(["keys", "create", "--subject", "load", "--role", "user", "--json"], env);
    assert.equal(created.code, 0, created.stderr);
    const key = (JSON.parse(created.stdout) as { key: string }).key;
    const gw = await startGateway(env);
    const url = gw.url;
    const answered: string[] = [];
    let killed = false;
    const worker = async () => {
      while (!killed) {
        try {
          const res = await fetch(`${url}/v1/chat/completions`, {
            method: "POST",
            headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
            body: JSON.stringify({
              model: "m",
              max_tokens: 10,
              messages: [{ role: "user", content: "Capital of France?" }],
            }),
          });
          const body = await res.text();
          if (res.status === 200 && body.includes("Paris")) answered.push(res.headers.get("x-request-id") ?? "");
          if (answered.length >= 150 && !killed) {
            killed = true;
            gw.child.kill("SIGKILL");
          }
        } catch {
          return; // the connection died with the process
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    assert.equal(await gw.exited, "SIGKILL");
    assert.ok(answered.length >= 150);
    const query = runCli(["audit", "query", "--type", "llm_request", "--limit", "1000", "--json"], { env });
    assert.equal(query.code, 0, query.stderr);
    const logged = new Set(
      query.stdout
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { requestId: string }).requestId),
    );
    const lost = answered.filter((id) => !logged.has(id));
    assert.deepEqual(lost, [], `${lost.length} of ${answered.length} answered requests have no audit event`);
  });
});
