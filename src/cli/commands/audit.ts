import { createWriteStream } from "node:fs";
import { once } from "node:events";
import type { Command } from "commander";
import { readWitnessFile } from "../../audit/checkpoint.js";
import { parseTime } from "../../audit/time.js";
import { AgentwallError } from "../../errors.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT, progressBar } from "../io.js";

function parseLimit(value: string): number {
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 1000)
    throw new AgentwallError("ERR_USAGE", "--limit must be 1..1000");
  return Number(value);
}

export function registerAudit(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const audit = program.command("audit").description("query, export and verify the tamper-evident audit log");

  audit
    .command("query")
    .description("list events, newest first")
    .option("--type <type>", "event type (login, auth_failed, …)")
    .option("--actor <actor>", "actor")
    .option("--outcome <outcome>", "outcome (success, denied, …)")
    .option("--since <when>", "start: a duration back (1h, 7d) or an ISO date")
    .option("--until <when>", "end: a duration back or an ISO date")
    .option("--limit <n>", "page size 1..1000", parseLimit, 100)
    .option("--cursor <seq>", "continue after this sequence number")
    .option("--json", "JSON Lines output")
    .action(
      (
        opts: GlobalOptions & {
          type?: string;
          actor?: string;
          outcome?: string;
          since?: string;
          until?: string;
          limit: number;
          cursor?: string;
        },
      ) =>
        run(() =>
          withInstance({ ...program.opts(), ...opts }, async (instance) => {
            const now = Date.now();
            if (opts.cursor !== undefined && !/^\d{1,15}$/.test(opts.cursor))
              throw new AgentwallError("ERR_USAGE", "--cursor must be a sequence number");
            const page = await instance.audit.query({
              type: opts.type,
              actor: opts.actor,
              outcome: opts.outcome,
              since: opts.since === undefined ? undefined : parseTime(opts.since, now, "--since"),
              until: opts.until === undefined ? undefined : parseTime(opts.until, now, "--until"),
              limit: opts.limit,
              cursor: opts.cursor === undefined ? undefined : Number(opts.cursor),
            });
            for (const e of page.events) {
              if (opts.json === true) process.stdout.write(JSON.stringify(e) + "\n");
              else {
                process.stdout.write(
                  [e.seq, new Date(e.ts).toISOString(), e.type, e.actor, e.action, e.outcome, e.resource].join("\t") +
                    "\n",
                );
              }
            }
            if (page.next !== undefined && opts.json !== true) process.stderr.write(`more: --cursor ${page.next}\n`);
            return EXIT.OK;
          }),
        ),
    );

  audit
    .command("export")
    .description("write every event, oldest first, as JSON Lines")
    .option("--out <file>", "output file (default: stdout)")
    .action((opts: GlobalOptions & { out?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const file = opts.out;
          const out = file === undefined ? process.stdout : createWriteStream(file, { flags: "wx", mode: 0o600 });
          const failed = (error: unknown) =>
            new AgentwallError(
              "ERR_IO",
              (error as NodeJS.ErrnoException).code === "EEXIST"
                ? `${file} exists (an export never overwrites)`
                : `cannot write ${file ?? "standard output"}`,
            );
          try {
            if (out !== process.stdout) await once(out, "open");
            const bar = progressBar("export");
            for await (const e of instance.audit.export({ onProgress: (d, t) => bar.update(d, t) })) {
              if (!out.write(JSON.stringify(e) + "\n")) await once(out, "drain");
            }
            bar.end();
            if (out !== process.stdout) {
              out.end();
              await once(out, "finish");
            }
          } catch (error) {
            // A system error of the file (ENOENT, EACCES, EEXIST, ENOSPC) is the caller's to fix.
            if (!(error instanceof AgentwallError) && typeof (error as NodeJS.ErrnoException).syscall === "string")
              throw failed(error);
            throw error;
          }
          return EXIT.OK;
        }),
      ),
    );

  audit
    .command("verify")
    .description("recompute the Merkle tree and check every checkpoint; exit 1 when anything was altered")
    .option("--witness <file>", "checkpoints kept outside the database (JSON Lines)")
    .option("--json", "print the result as JSON")
    .action((opts: GlobalOptions & { witness?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const witness = opts.witness === undefined ? undefined : readWitnessFile(opts.witness);
          const bar = progressBar("verify");
          const result = await instance.audit.verify({ witness, onProgress: (d, t) => bar.update(d, t) });
          bar.end();
          if (opts.json === true) process.stdout.write(JSON.stringify(result) + "\n");
          else if (result.ok) {
            process.stdout.write(
              `intact: ${result.size} entries, ${result.checkpoints} checkpoints, root ${result.root}\n`,
            );
          } else {
            process.stdout.write(
              `ALTERED: first bad sequence number ${result.firstBadSeq} (${result.problem}): ${result.reason}\n`,
            );
          }
          return result.ok ? EXIT.OK : EXIT.DENIED;
        }),
      ),
    );

  audit
    .command("checkpoint")
    .description("sign the current head now and send it to the witnesses")
    .option("--json", "print the checkpoint as JSON")
    .action((opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const c = await instance.audit.checkpoint();
          if (opts.json === true) process.stdout.write(JSON.stringify(c ?? null) + "\n");
          else
            process.stdout.write(
              c === undefined ? "nothing new to checkpoint\n" : `checkpoint at size ${c.size}, root ${c.root}\n`,
            );
          return EXIT.OK;
        }),
      ),
    );

  audit
    .command("prune")
    .description("delete entries older than the retention age, keeping the remainder verifiable")
    .requiredOption("--older-than <age>", "age such as 90d")
    .option("--json", "print the result as JSON")
    .action((opts: GlobalOptions & { olderThan: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const result = await instance.audit.prune(parseTime(opts.olderThan, Date.now(), "--older-than"));
          if (opts.json === true) process.stdout.write(JSON.stringify(result) + "\n");
          else process.stdout.write(`pruned ${result.pruned} entries (through ${result.through})\n`);
          return EXIT.OK;
        }),
      ),
    );
}
