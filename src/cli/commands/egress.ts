import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import { EXIT } from "../io.js";

export function registerEgress(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const egress = program.command("egress").description("the outbound (SSRF) policy");
  egress
    .command("check")
    .description(
      "resolve each URL and apply the policy, sending nothing; exit 0 when every URL is allowed, 1 otherwise",
    )
    .argument("<urls...>", "URLs to check")
    .option("--allow-http", "allow plain HTTP (default: HTTPS only)")
    .option("--json", 'one JSON line per URL: {"url","allowed","code","addresses"}')
    .action((urls: string[], opts: { allowHttp?: boolean; json?: boolean }) =>
      run(async () => {
        const { EgressClient } = await import("../../egress/client.js");
        const client = new EgressClient({ allowHttp: opts.allowHttp === true });
        let all = true;
        try {
          for (const url of urls) {
            const d = await client.check(url);
            all &&= d.allowed;
            if (opts.json === true) {
              process.stdout.write(
                JSON.stringify({
                  url: d.url,
                  allowed: d.allowed,
                  code: d.allowed ? null : d.code,
                  addresses: d.addresses,
                }) + "\n",
              );
            } else {
              process.stdout.write(
                d.allowed
                  ? `allowed\t${d.url}\t${d.addresses.join(",")}\n`
                  : `refused\t${d.url}\t${d.code}: ${d.reason}\n`,
              );
            }
          }
        } finally {
          await client.close();
        }
        return all ? EXIT.OK : EXIT.DENIED;
      }),
    );

  program
    .command("fetch")
    .description("a guarded GET of a URL (the egress policy applies to every hop); the body goes to standard output")
    .argument("<url>", "the URL")
    .option("--allow-http", "allow plain HTTP (default: HTTPS only)")
    .option("--max-bytes <n>", "largest response body", "10485760")
    .action((url: string, opts: { allowHttp?: boolean; maxBytes: string }) =>
      run(async () => {
        if (!/^\d{1,10}$/.test(opts.maxBytes))
          throw new AgentwallError("ERR_USAGE", "--max-bytes must be a whole number");
        const { EgressClient } = await import("../../egress/client.js");
        const client = new EgressClient({
          allowHttp: opts.allowHttp === true,
          maxResponseBytes: Number(opts.maxBytes),
        });
        try {
          const res = await client.fetch(url);
          process.stdout.write(res.body);
          process.stderr.write(`${res.status} ${res.chain.join(" -> ")}\n`);
          return res.status < 400 ? EXIT.OK : EXIT.DENIED;
        } finally {
          await client.close();
        }
      }),
    );
}
