// agentwall egress check / fetch as users run them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { runCli } from "./helpers.js";

const cli = (args: string[]) => runCli(args);

describe("agentwall egress check / fetch", () => {
  it("refuses every SSRF payload URL (exit 1, one JSON line each) and allows a public address (exit 0)", () => {
    const urls = readFileSync(new URL("fixtures/ssrf/payloads.tsv", import.meta.url), "utf8")
      .trim()
      .split("\n")
      .slice(1)
      .map((l) => l.split("\t")[0] as string);
    const r = cli(["egress", "check", "--allow-http", "--json", ...urls]);
    assert.equal(r.code, 1, r.stderr);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { allowed: boolean; code: string | null });
    assert.equal(lines.length, urls.length);
    assert.ok(lines.every((l) => !l.allowed && typeof l.code === "string" && l.code.startsWith("ERR_EGRESS_")));
    const ok = cli(["egress", "check", "--json", "https://8.8.8.8/", "https://[2606:4700:4700::1111]/"]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal(cli(["fetch", "https://127.0.0.1/"]).code, 1);
    assert.match(cli(["fetch", "https://127.0.0.1/"]).stderr, /ERR_EGRESS_ADDRESS_BLOCKED/);
  });
});
