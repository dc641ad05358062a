// SIGHUP reload of a running gateway process: new upstreams, guard policy, token cap and per-IP limit
// take effect without a restart, requests running through the reload all complete (a stream on the
// retired upstream included), an invalid file leaves the running configuration whole, and every reload
// is audited.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runCliAsync, startGateway, tempDir } from "./helpers.js";

/** A fake OpenAI-compatible upstream that counts its calls; a streamed answer takes about 600 ms. */
async function fakeUpstream(name: string): Promise<{ server: Server; url: string; calls: () => number }> {
  let calls = 0;
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d: Buffer) => (raw += d.toString()));
    req.on("end", () => {
      calls += 1;
      const body = JSON.parse(raw) as { stream?: boolean };
      if (body.stream !== true) {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            choices: [{ index: 0, message: { role: "assistant", content: `from ${name}` }, finish_reason: "stop" }],
            usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
          }),
        );
        return;
      }
      res.writeHead(200, { "content-type": "text/event-stream" });
      let i = 0;
      const tick = setInterval(() => {
        if (i < 6) {
          res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: `part${i} ` } }] })}\n\n`);
          i += 1;
          return;
        }
        clearInterval(tick);
        res.write(
          `data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 } })}\n\n`,
        );
        res.end("data: [DONE]\n\n");
      }, 100);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  after(() => new Promise<void>((r) => server.close(() => r())));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, calls: () => calls };
}

const a = await fakeUpstream("a");
const b = await fakeUpstream("b");
const dir = tempDir();
const configFile = join(dir, "agentwall.json");
const generous = { limit: 100_000, periodMs: 60_000, burst: 100_000 };
const writeConfig = (config: unknown) => writeFileSync(configFile, JSON.stringify(config));
const env = {
  AGENTWALL_HOME: join(dir, "home"),
  AGENTWALL_CONFIG: configFile,
  AGENTWALL_MASTER_KEY: randomBytes(32).toString("base64url"),
};

describe("SIGHUP reload", () => {
  it("applies new upstreams, policies and limits without dropping a request, and keeps the old configuration when the new one is invalid", async () => {
    writeConfig({
      rateLimits: { perIp: generous },
      upstreams: [{ name: "a", url: a.url, models: ["m1", "shared"] }],
    });
    const user = await runCliAsync(["keys", "create", "--subject", "app", "--role", "user", "--json"], env);
    assert.equal(user.code, 0, user.stderr);
    const admin = await runCliAsync(["keys", "create", "--subject", "ops", "--role", "admin", "--json"], env);
    assert.equal(admin.code, 0, admin.stderr);
    const userKey = (JSON.parse(user.stdout) as { key: string }).key;
    const adminKey = (JSON.parse(admin.stdout) as { key: string }).key;
    const gw = await startGateway(env);
    const chat = (model: string, content = "Capital of France?", stream = false) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${userKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model, stream, max_tokens: 20, messages: [{ role: "user", content }] }),
      });
    const codeOf = async (res: Response) => ((await res.json()) as { error?: { code: string } }).error?.code;
    try {
      assert.equal((await chat("m1")).status, 200);
      assert.equal(await codeOf(await chat("m2")), "ERR_MODEL_NOT_ALLOWED");
      // Long enough for its verdict to be kept (guard.cache): twice, so the second is the kept verdict,
      // which must not outlive the policy it was made under.
      const mail = "Write to jane.doe@example.com please, and copy the whole project team on the reply.";
      for (let i = 0; i < 2; i++)
        assert.equal((await chat("shared", mail)).status, 200, "PII is flagged, not blocked, by default");

      // Load through the reload: a stream on upstream a, and a steady flow of plain requests.
      const stream = chat("m1", "Count.", true).then(async (res) => ({ status: res.status, text: await res.text() }));
      let running = true;
      const statuses: number[] = [];
      const flow = (async () => {
        while (running) statuses.push((await chat("shared")).status);
      })();
      await new Promise((r) => setTimeout(r, 150));
      writeConfig({
        rateLimits: { perIp: generous },
        upstreams: [{ name: "b", url: b.url, models: ["m2", "shared"] }],
        guard: { input: { pii: "block" } },
        maxTokensCap: 64,
        limits: { bodyBytes: 4096 },
      });
      const reloaded = gw.nextLine(/^agentwall configuration reloaded/);
      gw.child.kill("SIGHUP");
      const line = await reloaded;
      assert.match(line, /reloaded: guard, maxTokensCap, upstreams; needs a restart, not applied: limits$/);
      await new Promise((r) => setTimeout(r, 150));
      running = false;
      await flow;
      const streamed = await stream;
      assert.equal(streamed.status, 200);
      for (let i = 0; i < 6; i++) assert.ok(streamed.text.includes(`part${i}`), streamed.text);
      assert.ok(streamed.text.trimEnd().endsWith("data: [DONE]"), "the stream on the retired upstream completed");
      assert.ok(statuses.length > 5, `${statuses.length} requests ran through the reload`);
      assert.deepEqual(
        statuses.filter((s) => s !== 200),
        [],
        "no request was dropped",
      );

      // The new configuration is in force.
      assert.equal(await codeOf(await chat("m1")), "ERR_MODEL_NOT_ALLOWED");
      const before = b.calls();
      const viaB = await chat("m2");
      assert.equal(viaB.status, 200);
      assert.equal(
        ((await viaB.json()) as { choices: { message: { content: string } }[] }).choices[0]?.message.content,
        "from b",
      );
      assert.equal(b.calls(), before + 1);
      assert.equal(await codeOf(await chat("shared", mail)), "ERR_GUARD_BLOCKED");
      const capped = await fetch(`${gw.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${userKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "m2", max_tokens: 100, messages: [{ role: "user", content: "Hi" }] }),
      });
      assert.equal(await codeOf(capped), "ERR_BAD_REQUEST");
      const big = await chat("m2", "x ".repeat(3000));
      assert.equal(big.status, 200, "the body limit needs a restart and was not changed");

      // An invalid file: refused, the running configuration stays whole.
      writeConfig({
        rateLimits: { perIp: generous },
        upstreams: [{ name: "c", url: a.url }],
        budgets: [{ name: "empty", per: "key", period: "day" }],
      });
      gw.child.kill("SIGHUP");
      await new Promise((r) => setTimeout(r, 300));
      assert.match(gw.stderr(), /configuration reload failed \(ERR_CONFIG_INVALID: .*empty/);
      assert.equal((await chat("m2")).status, 200, "still upstream b");
      assert.equal(await codeOf(await chat("m1")), "ERR_MODEL_NOT_ALLOWED", "upstream c was not taken on");
      writeFileSync(configFile, "{ not json");
      gw.child.kill("SIGHUP");
      await new Promise((r) => setTimeout(r, 300));
      assert.match(gw.stderr(), /configuration reload failed \(ERR_CONFIG_FILE/);
      assert.equal((await chat("m2")).status, 200);

      // A lower per-IP limit applies to the next requests.
      writeConfig({
        rateLimits: { perIp: { limit: 2, periodMs: 60_000, burst: 2 } },
        upstreams: [{ name: "b", url: b.url, models: ["m2", "shared"] }],
        guard: { input: { pii: "block" } },
        maxTokensCap: 64,
        limits: { bodyBytes: 4096 },
      });
      const limited = gw.nextLine(
        /^agentwall configuration reloaded: rateLimits; needs a restart, not applied: limits$/,
      );
      gw.child.kill("SIGHUP");
      await limited;
      const burst = await Promise.all(Array.from({ length: 6 }, async () => (await chat("m2")).status));
      assert.ok(burst.includes(429), burst.join(","));

      // A raised limit applies at once: the limit's parameters are part of the bucket's key, so the
      // burst above leaves no debt behind (it was about 90 s under the old limit).
      writeConfig({ rateLimits: { perIp: generous }, upstreams: [{ name: "b", url: b.url }] });
      const opened = gw.nextLine(/^agentwall configuration reloaded/);
      gw.child.kill("SIGHUP");
      await opened;
      assert.equal((await chat("m2")).status, 200, "the raised per-IP limit applies at once");

      // Every reload, applied or refused, is in the audit trail.
      const events = await fetch(`${gw.url}/v1/admin/audit/events?type=config_change`, {
        headers: { authorization: `Bearer ${adminKey}` },
      });
      assert.equal(events.status, 200);
      const rows = (
        (await events.json()) as { events: { outcome: string; details: { applied: string[] } }[] }
      ).events.reverse();
      assert.deepEqual(
        rows.map((r) => r.outcome),
        ["success", "error", "error", "success", "success"],
      );
      assert.deepEqual(rows[0]?.details.applied, ["guard", "maxTokensCap", "upstreams"]);
    } finally {
      assert.equal(await gw.stop(), 0);
    }
  });
});
