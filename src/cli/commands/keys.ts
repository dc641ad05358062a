import type { Command } from "commander";
import { parseDurationMs, parseTime } from "../../audit/time.js";
import { AgentwallError } from "../../errors.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT, readStdin } from "../io.js";

function parseUses(value: string): number {
  if (!/^\d{1,12}$/.test(value) || Number(value) < 1)
    throw new AgentwallError("ERR_USAGE", "--uses must be a positive whole number");
  return Number(value);
}

function futureTime(text: string): number {
  // `--expires 30d` means 30 days from now; an ISO date is taken as is.
  const now = Date.now();
  const duration = parseDurationMs(text);
  return duration !== undefined ? now + duration : parseTime(text, now, "--expires");
}

export function registerKeys(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const keys = program.command("keys").description("create, verify, list, rotate, suspend, resume and revoke API keys");

  keys
    .command("create")
    .description("create an API key; the key is printed once")
    .requiredOption("--subject <subject>", "the subject the key acts for")
    .option("--name <name>", "a label", "api key")
    .option("--role <role...>", "roles (viewer, user, developer, admin)")
    .option("--expires <when>", "lifetime such as 30d, or an ISO date")
    .option("--uses <n>", "number of uses before the key stops working", parseUses)
    .option("--json", 'print {"id","key","expiresAt"}')
    .action(
      (opts: GlobalOptions & { subject: string; name: string; role?: string[]; expires?: string; uses?: number }) =>
        run(() =>
          withInstance({ ...program.opts(), ...opts }, async (instance) => {
            // A key with a role nobody defined would hold no permission at all: refuse it at once.
            const policy = await instance.rbac.policy();
            const unknown = (opts.role ?? []).find((role) => !policy.has(role));
            if (unknown !== undefined) throw new AgentwallError("ERR_ROLE_UNKNOWN", `role ${unknown} is not defined`);
            const created = await instance.apiKeys.create({
              owner: opts.subject,
              name: opts.name,
              roles: opts.role ?? [],
              creator: "cli",
              expiresAt: opts.expires === undefined ? null : futureTime(opts.expires),
              remainingUses: opts.uses ?? null,
            });
            if (opts.json === true) process.stdout.write(JSON.stringify(created) + "\n");
            else process.stdout.write(`${created.key}\n(id ${created.id}; shown once)\n`);
            return EXIT.OK;
          }),
        ),
    );

  keys
    .command("verify")
    .description("verify a key read from standard input (pass - as the argument)")
    .argument("<source>", "- to read the key from standard input")
    .option("--json", "print the result as JSON")
    .action((source: string, opts: GlobalOptions) =>
      run(async () => {
        if (source !== "-") throw new AgentwallError("ERR_USAGE", "keys are read from standard input: pass -");
        const key = (await readStdin(4096)).trim();
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const verdict = await instance.apiKeys.verify(key);
          const out =
            verdict.result === "VALID"
              ? {
                  result: verdict.result,
                  id: verdict.key.id,
                  owner: verdict.key.owner,
                  roles: verdict.key.roles,
                  expiresAt: verdict.key.expiresAt,
                }
              : { result: verdict.result, ...(verdict.keyId !== undefined ? { id: verdict.keyId } : {}) };
          process.stdout.write(opts.json === true ? JSON.stringify(out) + "\n" : `${out.result}\n`);
          return verdict.result === "VALID" ? EXIT.OK : EXIT.DENIED;
        });
      }),
    );

  keys
    .command("list")
    .description("list keys (never their secrets)")
    .option("--subject <subject>", "only this subject's keys")
    .option("--json", "JSON Lines output")
    .action((opts: GlobalOptions & { subject?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          for (const k of await instance.apiKeys.list(opts.subject)) {
            if (opts.json === true) process.stdout.write(JSON.stringify(k) + "\n");
            else
              process.stdout.write(
                [
                  k.id,
                  k.prefix + "…",
                  k.owner,
                  k.name,
                  k.roles.join(","),
                  k.revokedAt !== null
                    ? "revoked"
                    : k.suspendedAt !== null
                      ? `suspended (${k.suspendedBy ?? "?"})`
                      : "active",
                ].join("\t") + "\n",
              );
          }
          return EXIT.OK;
        }),
      ),
    );

  keys
    .command("rotate")
    .description("replace a key; the old one keeps working for the grace period")
    .argument("<id>", "key id")
    .option("--grace <duration>", "how long the old key keeps working (e.g. 1h, 7d)", "0s")
    .option("--json", 'print {"id","key","expiresAt"} of the new key')
    .action((id: string, opts: GlobalOptions & { grace: string }) =>
      run(async () => {
        const graceMs = parseDurationMs(opts.grace);
        if (graceMs === undefined) throw new AgentwallError("ERR_USAGE", "--grace must be a duration such as 1h or 7d");
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const created = await instance.apiKeys.rotate(id, { graceMs, actor: "cli" });
          if (opts.json === true) process.stdout.write(JSON.stringify(created) + "\n");
          else
            process.stdout.write(`${created.key}\n(id ${created.id}; shown once; ${id} stops after ${opts.grace})\n`);
          return EXIT.OK;
        });
      }),
    );

  for (const action of ["suspend", "resume"] as const)
    keys
      .command(action)
      .description(
        action === "suspend"
          ? "suspend a key: it and what it made are refused until resumed (revocation is final, this is not)"
          : "lift a key's suspension (a revoked key stays revoked)",
      )
      .argument("<id>", "key id")
      .action((id: string, opts: GlobalOptions) =>
        run(() =>
          withInstance({ ...program.opts(), ...opts }, async (instance) => {
            const ok =
              action === "suspend"
                ? await instance.apiKeys.suspend(id, "cli")
                : await instance.apiKeys.resume(id, "cli");
            process.stdout.write(
              ok
                ? `${action === "suspend" ? "suspended" : "resumed"} ${id}\n`
                : `no ${action === "suspend" ? "live, unsuspended" : "suspended, unrevoked"} key ${id}\n`,
            );
            return ok ? EXIT.OK : EXIT.DENIED;
          }),
        ),
      );

  keys
    .command("revoke")
    .description("revoke a key by id, or every key of a subject (--subject)")
    .argument("[id]", "key id")
    .option("--subject <subject>", "revoke every key of this subject (and the keys they made)")
    .action((id: string | undefined, opts: GlobalOptions & { subject?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          if ((id === undefined) === (opts.subject === undefined)) {
            throw new AgentwallError("ERR_USAGE", "give a key id or --subject, not both");
          }
          if (opts.subject !== undefined) {
            const count = await instance.apiKeys.revokeOwner(opts.subject, "cli");
            process.stdout.write(`revoked ${count} key(s) of ${opts.subject}\n`);
            return EXIT.OK;
          }
          const ok = await instance.apiKeys.revoke(id as string, "cli");
          process.stdout.write(ok ? `revoked ${id}\n` : `no active key ${id}\n`);
          return ok ? EXIT.OK : EXIT.DENIED;
        }),
      ),
    );
}
