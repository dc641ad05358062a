import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT, readStdin } from "../io.js";

/** A secret value from an environment variable or standard input; never from the command line. */
async function secretValue(opts: { valueEnv?: string }): Promise<string> {
  if (opts.valueEnv !== undefined) {
    const value = process.env[opts.valueEnv];
    if (value === undefined || value === "")
      throw new AgentwallError("ERR_USAGE", `environment variable ${opts.valueEnv} is empty`);
    return value;
  }
  const value = (await readStdin(16 * 1024)).replace(/\r?\n$/, "");
  if (value === "") throw new AgentwallError("ERR_USAGE", "give the value on standard input or with --value-env VAR");
  return value;
}

export function registerVault(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const vault = program.command("vault").description("provider secrets (encrypted, versioned, bound to hosts)");
  const collect = (value: string, previous: string[] = []) => [...previous, value];

  vault
    .command("set")
    .description("store a secret (value from stdin or --value-env), bound to the hosts it may be sent to")
    .argument("<name>", "secret name")
    .requiredOption("--host <host>", "a host the secret may be sent to (repeatable; *.example.com allowed)", collect)
    .option("--value-env <var>", "read the value from this environment variable")
    .action((name: string, opts: GlobalOptions & { host: string[]; valueEnv?: string }) =>
      run(async () => {
        const value = await secretValue(opts);
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const version = await instance.vault.set(name, value, opts.host, "cli");
          process.stdout.write(`stored ${name} version ${version}\n`);
          return EXIT.OK;
        });
      }),
    );

  vault
    .command("rotate")
    .description("store a new version of a secret (value from stdin or --value-env)")
    .argument("<name>", "secret name")
    .option("--value-env <var>", "read the value from this environment variable")
    .action((name: string, opts: GlobalOptions & { valueEnv?: string }) =>
      run(async () => {
        const value = await secretValue(opts);
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          process.stdout.write(`stored ${name} version ${await instance.vault.rotate(name, value, "cli")}\n`);
          return EXIT.OK;
        });
      }),
    );

  vault
    .command("rollback")
    .description("make an earlier version current")
    .argument("<name>", "secret name")
    .requiredOption("--version <n>", "version number", (v: string) => {
      if (!/^\d{1,9}$/.test(v)) throw new AgentwallError("ERR_USAGE", "--version must be a whole number");
      return Number(v);
    })
    .action((name: string, opts: GlobalOptions & { version: number }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          await instance.vault.rollback(name, opts.version, "cli");
          process.stdout.write(`${name} is at version ${opts.version}\n`);
          return EXIT.OK;
        }),
      ),
    );

  vault
    .command("list")
    .description("secrets' metadata (never values)")
    .option("--json", "JSON Lines output")
    .action((opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          for (const s of await instance.vault.list()) {
            if (opts.json === true) process.stdout.write(JSON.stringify(s) + "\n");
            else process.stdout.write(`${s.name}\tv${s.currentVersion}\t${s.hosts.join(",")}\n`);
          }
          return EXIT.OK;
        }),
      ),
    );

  vault
    .command("delete")
    .description("delete a secret and all its versions")
    .argument("<name>", "secret name")
    .action((name: string, opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const ok = await instance.vault.delete(name, "cli");
          process.stdout.write(ok ? `deleted ${name}\n` : `no secret ${name}\n`);
          return ok ? EXIT.OK : EXIT.DENIED;
        }),
      ),
    );

  vault
    .command("get")
    .description("print a secret's current value (requires --reveal; audited)")
    .argument("<name>", "secret name")
    .option("--reveal", "really print the value")
    .action((name: string, opts: GlobalOptions & { reveal?: boolean }) =>
      run(async () => {
        if (opts.reveal !== true) throw new AgentwallError("ERR_USAGE", "printing a secret needs --reveal");
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          process.stdout.write((await instance.vault.reveal(name, "cli")) + "\n");
          return EXIT.OK;
        });
      }),
    );
}
