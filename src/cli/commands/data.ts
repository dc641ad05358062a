import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import { reencryptStoredData } from "../../store/reencrypt.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT, progressBar, readStdin } from "../io.js";

export function registerData(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const kek = program.command("kek").description("master key (key-encryption key) rotation");
  kek
    .command("rotate")
    .description(
      "re-wrap every data and signing key under the current master key, then retire the previous one " +
        "(start every instance with AGENTWALL_MASTER_KEY=new and AGENTWALL_MASTER_KEY_PREVIOUS=old first)",
    )
    .option("--keep-old", "re-wrap only; do not retire the previous key yet")
    .action((opts: GlobalOptions & { keepOld?: boolean }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const bar = progressBar("re-wrapping keys");
          const done = await instance.keyring.rewrapAll((n, total) => bar.update(n, total));
          bar.end();
          process.stdout.write(`re-wrapped ${done.dataKeys} data key(s) and ${done.signingKeys} signing key(s)\n`);
          if (opts.keepOld !== true) {
            const retired = await instance.keyring.retireOtherMasterKeys();
            process.stdout.write(
              retired.length === 0 ? "no other master key to retire\n" : `retired ${retired.join(", ")}\n`,
            );
          }
          await instance.audit.append({
            type: "key_rotated",
            actor: "cli",
            action: "kek.rotate",
            resource: `master_key:${instance.keyring.masterKeyId}`,
            outcome: "success",
            details: { ...done, retired: opts.keepOld !== true },
          });
          return EXIT.OK;
        }),
      ),
    );
  kek
    .command("status")
    .description("registered master keys and how many keys each wraps")
    .action((opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          for (const m of await instance.keyring.masterKeyStatus()) {
            process.stdout.write(
              `${m.id}\t${m.current ? "current" : m.retiredAt === null ? "active" : "retired"}\twraps ${m.wraps}\n`,
            );
          }
          return EXIT.OK;
        }),
      ),
    );

  const data = program.command("data").description("stored data");
  data
    .command("reencrypt")
    .description("rotate the records and vault data keys and re-encrypt everything under them (resumable)")
    .action((opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const bar = progressBar("re-encrypting");
          const result = await reencryptStoredData({
            store: instance.store,
            keyring: instance.keyring,
            records: instance.records,
            vault: instance.vault,
            audit: instance.audit,
            actor: "cli",
            onProgress: (p) => bar.update(p.done, p.total),
          });
          bar.end();
          process.stdout.write(
            `${result.resumed ? "resumed; " : ""}re-encrypted ${result.records} record(s) and ${result.vault} vault version(s)\n`,
          );
          return EXIT.OK;
        }),
      ),
    );

  const records = program.command("records").description("the encrypted per-owner record store");
  records
    .command("put")
    .description("store a record (data from standard input); prints its id")
    .requiredOption("--owner <owner>", "owner subject")
    .requiredOption("--type <type>", "record type")
    .option(
      "--meta <json>",
      "metadata (a JSON object; not secret-bearing: it is encrypted, but visible in shell history)",
    )
    .action((opts: GlobalOptions & { owner: string; type: string; meta?: string }) =>
      run(async () => {
        let meta: Record<string, unknown> = {};
        if (opts.meta !== undefined) {
          try {
            meta = JSON.parse(opts.meta) as Record<string, unknown>;
          } catch {
            throw new AgentwallError("ERR_USAGE", "--meta must be a JSON object");
          }
        }
        const body = await readStdin(16 * 1024 * 1024);
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const { id } = await instance.records.store(opts.owner, opts.type, body, meta, "cli");
          process.stdout.write(`${id}\n`);
          return EXIT.OK;
        });
      }),
    );
  records
    .command("get")
    .description("print a record's data")
    .argument("<id>", "record id")
    .requiredOption("--owner <owner>", "owner subject")
    .action((id: string, opts: GlobalOptions & { owner: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          process.stdout.write((await instance.records.retrieve(id, opts.owner, "cli")).data);
          return EXIT.OK;
        }),
      ),
    );
  records
    .command("list")
    .description("a subject's records (without data)")
    .requiredOption("--owner <owner>", "owner subject")
    .option("--json", "JSON lines")
    .action((opts: GlobalOptions & { owner: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const listed = await instance.records.list(opts.owner, {}, "cli");
          for (const r of listed) {
            process.stdout.write(
              opts.json === true
                ? JSON.stringify(r) + "\n"
                : `${r.id}\t${r.type}\t${r.size}\t${new Date(r.createdAt).toISOString()}` +
                    (r.damaged === undefined ? "\n" : `\tDAMAGED ${r.damaged}\n`),
            );
          }
          // A damaged record (altered or moved in the database) fails the command, as a check would.
          return listed.some((r) => r.damaged !== undefined) ? EXIT.DENIED : EXIT.OK;
        }),
      ),
    );
  records
    .command("delete")
    .description("delete a record")
    .argument("<id>", "record id")
    .requiredOption("--owner <owner>", "owner subject")
    .action((id: string, opts: GlobalOptions & { owner: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const ok = await instance.records.delete(id, opts.owner, "cli");
          process.stdout.write(ok ? `deleted ${id}\n` : `no record ${id} of ${opts.owner}\n`);
          return ok ? EXIT.OK : EXIT.DENIED;
        }),
      ),
    );
}
