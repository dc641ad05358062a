import type { Command } from "commander";
import type { Actor } from "../../access/rbac.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT } from "../io.js";

// The local operator: whoever holds the database and its master key is trusted with every grant.
const OPERATOR: Actor = { id: "cli", grants: ["*"] };

export function registerRoles(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const roles = program.command("roles").description("roles, assignments and permission checks");
  const collect = (value: string, previous: string[] = []) => [...previous, value];

  roles
    .command("list")
    .description("every role with its effective grants")
    .option("--json", "JSON Lines output")
    .action((opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const policy = await instance.rbac.policy();
          for (const role of policy.roles()) {
            const grants = policy.grantsOf(role.name);
            if (opts.json === true) {
              process.stdout.write(JSON.stringify({ name: role.name, inherits: role.inherits ?? [], grants }) + "\n");
            } else process.stdout.write(`${role.name}\t${grants.join(",")}\n`);
          }
          return EXIT.OK;
        }),
      ),
    );

  roles
    .command("define")
    .description("define or replace a custom role")
    .argument("<name>", "role name")
    .option("--grant <permission>", "a permission (repeatable)", collect)
    .option("--inherits <role>", "a parent role (repeatable)", collect)
    .option("--description <text>", "what the role is for")
    .action((name: string, opts: GlobalOptions & { grant?: string[]; inherits?: string[]; description?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          await instance.rbac.defineRole(
            { name, grants: opts.grant ?? [], inherits: opts.inherits ?? [], description: opts.description ?? "" },
            OPERATOR,
          );
          process.stdout.write(`defined ${name}\n`);
          return EXIT.OK;
        }),
      ),
    );

  roles
    .command("delete")
    .description("delete an unused custom role")
    .argument("<name>", "role name")
    .action((name: string, opts: GlobalOptions) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          await instance.rbac.deleteRole(name, OPERATOR);
          process.stdout.write(`deleted ${name}\n`);
          return EXIT.OK;
        }),
      ),
    );

  for (const verb of ["assign", "remove"] as const) {
    roles
      .command(verb)
      .description(verb === "assign" ? "give a subject a role" : "take a role from a subject")
      .argument("<subject>", "subject")
      .argument("<role>", "role")
      .option("--on <resource>", "only on this resource (agent:billing, workflow:*)")
      .action((subject: string, role: string, opts: GlobalOptions & { on?: string }) =>
        run(() =>
          withInstance({ ...program.opts(), ...opts }, async (instance) => {
            const changed =
              verb === "assign"
                ? await instance.rbac.assign(subject, role, opts.on, OPERATOR)
                : await instance.rbac.remove(subject, role, opts.on, OPERATOR);
            process.stdout.write(`${changed ? (verb === "assign" ? "assigned" : "removed") : "unchanged"}\n`);
            return EXIT.OK;
          }),
        ),
      );
  }

  roles
    .command("check")
    .description("whether a subject holds a permission (exit 0 allowed, 1 denied)")
    .argument("<subject>", "subject")
    .argument("<permission>", "permission, e.g. agents:write or view_logs")
    .option("--on <resource>", "on this resource")
    .option("--json", "print the decision as JSON")
    .action((subject: string, permission: string, opts: GlobalOptions & { on?: string }) =>
      run(() =>
        withInstance({ ...program.opts(), ...opts }, async (instance) => {
          const decision = await instance.rbac.check(subject, permission, opts.on);
          process.stdout.write(
            opts.json === true ? JSON.stringify(decision) + "\n" : decision.allowed ? "ALLOWED\n" : "DENIED\n",
          );
          return decision.allowed ? EXIT.OK : EXIT.DENIED;
        }),
      ),
    );
}
