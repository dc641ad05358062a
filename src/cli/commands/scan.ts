import { once } from "node:events";
import { createReadStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import type { TextSource } from "../../guard/injection.js";
import type { GuardVerdict } from "../../guard/pipeline.js";
import { EXIT, readStdin } from "../io.js";

const SOURCES = ["user", "agent", "tool", "document", "system"];

function line(id: unknown, v: GuardVerdict): string {
  return JSON.stringify({
    ...(id === undefined ? {} : { id }),
    verdict: v.verdict,
    injection: {
      score: Number(v.injection.score.toFixed(4)),
      detected: v.injection.detected,
      signals: v.injection.signals,
    },
    sensitive: v.findings
      .filter((f) => f.kind === "secret" || f.kind === "pii" || f.kind === "marked_secret")
      .map((f) => ({ type: f.type, start: f.start, end: f.end })),
  });
}

export function registerScan(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  program
    .command("scan")
    .description("scan text with the content guards; exit 0 when nothing was flagged, 1 when something was")
    .argument("[text]", "the text (or use --file, --jsonl, or standard input)")
    .option("--file <file>", "scan this file as one text")
    .option("--jsonl <file>", 'scan each line {"id","text"} of this file; one JSON line out per line in')
    .option("--source <source>", `where the text comes from: ${SOURCES.join(", ")} (claimed; can only tighten)`, "user")
    .option(
      "--trusted-source",
      "the operator vouches for --source: system or agent then relax the checks (a trusted system prompt, an agent briefing another)",
    )
    .option("--output", "check as model output (unsafe HTML, exfiltrating links) instead of input")
    .option("--json", "print the verdict as JSON")
    .action(
      (
        text: string | undefined,
        opts: {
          file?: string;
          jsonl?: string;
          source: string;
          trustedSource?: boolean;
          output?: boolean;
          json?: boolean;
        },
      ) =>
        run(async () => {
          if (!SOURCES.includes(opts.source))
            throw new AgentwallError("ERR_USAGE", `--source is one of ${SOURCES.join(", ")}`);
          if ([text, opts.file, opts.jsonl].filter((x) => x !== undefined).length > 1) {
            throw new AgentwallError("ERR_USAGE", "give one of TEXT, --file or --jsonl");
          }
          const { Guard } = await import("../../guard/pipeline.js");
          const guard = new Guard();
          const scan = (t: string) =>
            guard.scan(t, {
              source: opts.source as TextSource,
              trustedSource: opts.trustedSource === true,
              direction: opts.output === true ? "output" : "input",
            });
          if (opts.jsonl !== undefined) {
            let flagged = false;
            let bad = 0;
            let n = 0;
            const input = createReadStream(opts.jsonl);
            await once(input, "open").catch(() => {
              throw new AgentwallError("ERR_IO", `cannot read ${opts.jsonl}`);
            });
            const lines = createInterface({ input, crlfDelay: Infinity });
            // A bad line gets an error line of its own and the batch goes on: one typo must not lose the
            // verdicts of the lines after it. Any bad line makes the exit code 2.
            const refuse = (id: unknown, message: string) => {
              bad++;
              process.stdout.write(
                JSON.stringify({
                  ...(id === undefined ? {} : { id }),
                  line: n,
                  error: { code: "ERR_USAGE", message },
                }) + "\n",
              );
            };
            for await (const raw of lines) {
              n++;
              if (raw.trim() === "") continue;
              let parsed: unknown;
              try {
                parsed = JSON.parse(raw);
              } catch {
                refuse(undefined, "not JSON");
                continue;
              }
              const row = (typeof parsed === "object" && parsed !== null ? parsed : {}) as {
                id?: unknown;
                text?: unknown;
              };
              if (typeof row.text !== "string") {
                refuse(row.id, 'no "text" string');
                continue;
              }
              const v = scan(row.text);
              flagged ||= v.verdict !== "allow";
              process.stdout.write(line(row.id, v) + "\n");
            }
            if (bad > 0) {
              process.stderr.write(`agentwall: ERR_USAGE: ${bad} line(s) of ${opts.jsonl} could not be scanned\n`);
              return EXIT.USAGE;
            }
            return flagged ? EXIT.DENIED : EXIT.OK;
          }
          let input: string;
          try {
            input =
              text ?? (opts.file !== undefined ? readFileSync(opts.file, "utf8") : await readStdin(16 * 1024 * 1024));
          } catch (error) {
            if (error instanceof AgentwallError) throw error;
            throw new AgentwallError("ERR_IO", `cannot read ${opts.file ?? "standard input"}`);
          }
          const v = scan(input);
          if (opts.json === true) process.stdout.write(line(undefined, v) + "\n");
          else {
            process.stdout.write(`${v.verdict}\n`);
            for (const f of v.findings) process.stdout.write(`  ${f.type}\t${f.start}-${f.end}\t${f.action}\n`);
            if (v.injection.signals.length > 0) process.stdout.write(`  signals: ${v.injection.signals.join(", ")}\n`);
          }
          return v.verdict === "allow" ? EXIT.OK : EXIT.DENIED;
        }),
    );

  program
    .command("redact")
    .description("copy standard input to standard output with secrets and personal data replaced")
    .option("--style <style>", "placeholder | mask", "placeholder")
    .action((opts: { style: string }) =>
      run(async () => {
        if (opts.style !== "placeholder" && opts.style !== "mask")
          throw new AgentwallError("ERR_USAGE", "--style is placeholder or mask");
        const [{ findSecrets }, { findPii }, { redact }, { dedupe }] = await Promise.all([
          import("../../guard/secrets.js"),
          import("../../guard/pii.js"),
          import("../../guard/redact.js"),
          import("../../guard/finding.js"),
        ]);
        const input = await readStdin(16 * 1024 * 1024);
        const findings = dedupe(
          [...findSecrets(input), ...findPii(input)].map((f) => ({ ...f, kind: "secret" as const })),
        );
        process.stdout.write(redact(input, findings, { style: opts.style }));
        return EXIT.OK;
      }),
    );
}
