#!/usr/bin/env node
import { Command, CommanderError } from "commander";
import { registerAudit } from "./commands/audit.js";
import { registerCa } from "./commands/ca.js";
import { registerCheck } from "./commands/check.js";
import { registerCrypto } from "./commands/crypto.js";
import { registerData } from "./commands/data.js";
import { registerScan } from "./commands/scan.js";
import { registerEgress } from "./commands/egress.js";
import { registerInit } from "./commands/init.js";
import { registerKeys } from "./commands/keys.js";
import { registerServe } from "./commands/serve.js";
import { registerSessions } from "./commands/sessions.js";
import { registerRoles } from "./commands/roles.js";
import { registerVault } from "./commands/vault.js";
import { EXIT, exitCodeFor, printError } from "./io.js";

/** Builds the `agentwall` command line. */
export function buildCli(): Command {
  const program = new Command("agentwall")
    .description("the security layer for multi-agent AI systems")
    .option("--home <dir>", "data directory (AGENTWALL_HOME, default ./.agentwall)")
    .showHelpAfterError()
    .exitOverride();
  const json = () => process.argv.includes("--json");
  const run = async (fn: () => Promise<number>): Promise<void> => {
    try {
      process.exitCode = await fn();
    } catch (error) {
      printError(error, json());
      process.exitCode = exitCodeFor(error);
    }
  };
  registerInit(program, run);
  registerServe(program, run);
  registerAudit(program, run);
  registerKeys(program, run);
  registerSessions(program, run);
  registerRoles(program, run);
  registerVault(program, run);
  registerCrypto(program, run);
  registerData(program, run);
  registerScan(program, run);
  registerEgress(program, run);
  registerCa(program, run);
  registerCheck(program, run);
  for (const command of program.commands) {
    command.exitOverride();
    for (const sub of command.commands) sub.exitOverride();
  }
  return program;
}

async function main(): Promise<void> {
  const program = buildCli();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are successes; every other parse problem is a usage error (exit 2).
      process.exitCode =
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version" ||
        error.code === "commander.help"
          ? EXIT.OK
          : EXIT.USAGE;
      return;
    }
    printError(error, process.argv.includes("--json"));
    process.exitCode = exitCodeFor(error);
  }
}

await main();
