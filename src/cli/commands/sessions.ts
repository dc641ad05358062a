import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT } from "../io.js";

export function registerSessions(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const sessions = program.command("sessions").description("list and revoke session tokens");

  sessions
    .command("list")
    .description("active sessions (never their tokens)")
    .option("--subject <subject>", "only this subject's sessions")
    .option("--json", "JSON Lines output")
    .action((opts: GlobalOptions & { subject?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          for (const s of await instance.sessions.listActive(opts.subject)) {
            if (opts.json === true) process.stdout.write(JSON.stringify(s) + "\n");
            else {
              const line = [s.jti, s.subject, s.roles.join(","), s.creator, new Date(s.expiresAt).toISOString()];
              process.stdout.write(line.join("\t") + "\n");
            }
          }
          return EXIT.OK;
        }),
      ),
    );

  sessions
    .command("revoke")
    .description("end one session by id, or every session of a subject")
    .argument("[jti]", "session id")
    .option("--subject <subject>", "end every session of this subject")
    .action((jti: string | undefined, opts: GlobalOptions & { subject?: string }) =>
      run(async () => {
        if ((jti === undefined) === (opts.subject === undefined)) {
          throw new AgentwallError("ERR_USAGE", "give a session id or --subject, not both");
        }
        return withInstance({ ...program.opts(), ...opts }, async (instance) => {
          if (opts.subject !== undefined) {
            const count = await instance.sessions.revokeSubject(opts.subject, "cli");
            process.stdout.write(`revoked ${count} sessions of ${opts.subject}\n`);
            return EXIT.OK;
          }
          const ok = await instance.sessions.revoke(jti as string, "cli");
          process.stdout.write(ok ? `revoked ${jti}\n` : `no active session ${jti}\n`);
          return ok ? EXIT.OK : EXIT.DENIED;
        });
      }),
    );
}
