// Egress client speed: guarded requests per second next to a plain undici request to the same local
// HTTPS server (keep-alive both), measured in one run, and the cost of one policy decision.
//
//   npx tsx bench/egress.ts [--requests 2000] [--concurrency 16]   (requests per round)
//
// The local server is on 127.0.0.1, which a request URL may never reach, so the guarded side goes
// through an operator destination (the same client, lookup and per-hop checks; the exemption is only
// the address class). The certificate is made for the run with openssl.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { classifyAddress } from "../src/egress/address.js";
import { EgressClient } from "../src/egress/client.js";
import { fmt } from "./common.js";

const { values } = parseArgs({
  options: { requests: { type: "string", default: "2000" }, concurrency: { type: "string", default: "16" } },
});
const N = Number(values.requests);
const C = Number(values.concurrency);

const dir = mkdtempSync(join(tmpdir(), "agentwall-bench-egress-"));
try {
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  const cert = readFileSync(join(dir, "cert.pem"));
  const server = createServer({ key: readFileSync(join(dir, "key.pem")), cert }, (_req, res) => res.end("ok"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const origin = `https://127.0.0.1:${port}`;

  const run = async (op: () => Promise<unknown>): Promise<number> => {
    let next = 0;
    const start = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next++ < N) await op();
      }),
    );
    return N / (Number(process.hrtime.bigint() - start) / 1e9);
  };

  const plainAgent = new Agent({ connect: { ca: cert } });
  const client = new EgressClient({ tls: { ca: cert }, operatorDestinations: [{ name: "local", origin }] });
  // Warm both (TLS sessions, JIT).
  for (let i = 0; i < 200; i++) {
    await (await request(`${origin}/`, { dispatcher: plainAgent })).body.text();
    await client.fetchOperator("local", "/");
  }
  // Short alternating rounds, median of each side: this machine's load shifts by tens of percent
  // within seconds, and alternating gives both sides the same conditions.
  const ROUNDS = 9;
  const plains: number[] = [];
  const guardeds: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const p = await run(async () => (await request(`${origin}/`, { dispatcher: plainAgent })).body.text());
    const g = await run(() => client.fetchOperator("local", "/"));
    plains.push(p);
    guardeds.push(g);
    ratios.push(g / p);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const plain = median(plains);
  const guarded = median(guardeds);
  const decisions = 200_000;
  let start = process.hrtime.bigint();
  for (let i = 0; i < decisions; i++) client.checkUrlSyntax(`https://203.0.113.${i % 250}/path?x=${i}`);
  const urlNs = Number(process.hrtime.bigint() - start) / decisions;
  start = process.hrtime.bigint();
  for (let i = 0; i < decisions; i++) classifyAddress(i % 2 === 0 ? `93.184.${i % 250}.34` : "2606:4700:4700::1111");
  const addrNs = Number(process.hrtime.bigint() - start) / decisions;
  console.log(`egress, ${fmt(N)} HTTPS requests at ${C} in flight, node ${process.version}`);
  console.log(`plain undici request         ${fmt(plain).padStart(8)} /s`);
  console.log(
    `agentwall guarded request    ${fmt(guarded).padStart(8)} /s   ratio ${median(ratios).toFixed(2)} ` +
      `(median of ${ROUNDS} alternating rounds; range ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`,
  );
  console.log(
    `policy decision: URL rules ${(urlNs / 1000).toFixed(2)} µs, address classification ${(addrNs / 1000).toFixed(2)} µs`,
  );
  await client.close();
  await plainAgent.close();
  server.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
