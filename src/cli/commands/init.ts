import type { Command } from "commander";
import { createFirstAdminKey } from "../../identity/bootstrap.js";
import { withInstance, type GlobalOptions } from "../context.js";

export function registerInit(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  program
    .command("init")
    .description("create the data directory, the master key (unless given) and the first admin key (shown once)")
    .option("--json", "print {id, key, expiresAt} as JSON")
    .action((opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const created = await createFirstAdminKey(instance.store, instance.apiKeys);
          if (opts.json === true) {
            process.stdout.write(JSON.stringify(created ?? { initialized: true, adminKeyCreated: false }) + "\n");
            return 0;
          }
          process.stdout.write(`data directory: ${instance.config.home}\n`);
          if (instance.masterKeyOrigin === "generated") {
            process.stdout.write(
              `master key generated: ${instance.masterKeyPath ?? ""} (move it outside the data directory for production)\n`,
            );
          }
          if (created === undefined) {
            process.stdout.write("already initialised: API keys exist, no new admin key was created\n");
          } else {
            process.stdout.write(`first admin key (shown once, store it now):\n${created.key}\n`);
          }
          return 0;
        }),
      ),
    );
}
