import type { Command } from "commander";
import { createFirstAdminKey } from "../../identity/bootstrap.js";
import { configFor } from "../context.js";
import { AgentwallError } from "../../errors.js";

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535)
    throw new AgentwallError("ERR_USAGE", "--port must be 0..65535");
  return Number(value);
}

export function registerServe(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  program
    .command("serve")
    .description("run the gateway (127.0.0.1:8787 by default)")
    .option("--host <host>", "address to listen on")
    .option("--port <port>", "port to listen on", parsePort)
    .action((opts: { host?: string; port?: number }) =>
      run(async () => {
        // Loaded here so other commands do not pay for the HTTP stack at startup.
        const [{ pino }, { buildServer }, { openInstance }, { shipErrorCode }] = await Promise.all([
          import("pino"),
          import("../../gateway/server.js"),
          import("../../instance.js"),
          import("../../audit/ship.js"),
        ]);
        const { config, secrets, source } = await configFor({ ...program.opts(), ...opts });
        const logger = pino({ level: config.logLevel, base: { service: "agentwall" } });
        const instance = await openInstance(config, secrets);
        // The first admin key is only made where a person sees it once: a terminal. Without one (a service
        // manager capturing output into logs) the operator runs `agentwall init` instead.
        if (process.stderr.isTTY === true) {
          const first = await createFirstAdminKey(instance.store, instance.apiKeys).catch(async (error: unknown) => {
            await instance.close();
            throw error;
          });
          if (first !== undefined)
            process.stderr.write(`\nfirst admin key (shown once, store it now):\n${first.key}\n\n`);
        } else if ((await instance.apiKeys.list()).length === 0) {
          logger.warn("no API key exists yet: run `agentwall init` on a terminal to create the first admin key");
        }
        const app = await buildServer(instance, { logger });
        instance.audit.startCheckpointing(config.audit.checkpointIntervalMs, (error) =>
          logger.error({ code: error instanceof AgentwallError ? error.code : "unknown" }, "audit checkpoint failed"),
        );
        instance.shipper?.start((sink, error) =>
          logger.error({ sink, code: shipErrorCode(error) }, "audit shipping failed (will retry)"),
        );
        const retentionDays = config.audit.retentionDays;
        let retention: NodeJS.Timeout | undefined;
        if (retentionDays !== undefined) {
          const prune = () => {
            instance.audit.prune(Date.now() - retentionDays * 86_400_000).then(
              (r) => r.pruned > 0 && logger.info({ pruned: r.pruned, through: r.through }, "audit retention"),
              (error: unknown) => {
                // Another instance holding the lease does the pruning; anything else is reported.
                if (!(error instanceof AgentwallError && error.code === "ERR_LOCK_BUSY")) {
                  logger.error(
                    { code: error instanceof AgentwallError ? error.code : "unknown" },
                    "audit retention failed",
                  );
                }
              },
            );
          };
          retention = setInterval(prune, 3_600_000);
          retention.unref();
          prune();
        }
        // Budget counters of periods that are over are dropped hourly (any instance may; it is idempotent).
        const budgetPrune = setInterval(() => {
          instance.budgets
            .prune()
            .catch((error: unknown) =>
              logger.error({ code: error instanceof AgentwallError ? error.code : "unknown" }, "budget prune failed"),
            );
        }, 3_600_000);
        budgetPrune.unref();
        const address = await app.listen({ host: config.host, port: config.port }).catch((error: unknown) => {
          throw listenFailed(error, config.host, config.port);
        });
        // The separate metrics listener: metrics only, no credentials, loopback unless configured.
        let metricsServer: import("node:http").Server | undefined;
        if (config.metricsListen !== undefined) {
          const { createServer } = await import("node:http");
          const server = createServer((req, res) => {
            if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
              res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
              return;
            }
            instance.metrics.registry.metrics().then(
              (text) => res.writeHead(200, { "content-type": instance.metrics.registry.contentType }).end(text),
              () => res.writeHead(500).end(),
            );
          });
          metricsServer = server;
          const host = config.metricsListen.host ?? "127.0.0.1";
          await new Promise<void>((resolve, reject) => {
            server.once("error", (error) => reject(listenFailed(error, host, config.metricsListen?.port ?? 0)));
            server.listen(config.metricsListen?.port, host, () => resolve());
          });
          const port = (server.address() as import("node:net").AddressInfo).port;
          process.stdout.write(
            `agentwall metrics on http://${host.includes(":") ? `[${host}]` : host}:${port}/metrics\n`,
          );
        }
        process.stdout.write(
          `agentwall listening on ${address}\ndata directory: ${config.home}\n${source !== undefined ? `config: ${source}\n` : ""}`,
        );
        logger.info(
          { address, database: instance.store.description, masterKey: instance.masterKeyOrigin },
          "gateway started",
        );
        return new Promise<number>((resolve) => {
          let stopping = false;
          const stop = (signal: string) => {
            if (stopping) return;
            stopping = true;
            logger.info({ signal }, "shutting down");
            if (retention !== undefined) clearInterval(retention);
            clearInterval(budgetPrune);
            void (async () => {
              try {
                await app.close();
                await new Promise((r) => (metricsServer === undefined ? r(null) : metricsServer.close(r)));
                await instance.close({ checkpoint: true });
                resolve(0);
              } catch (error) {
                logger.error({ code: error instanceof AgentwallError ? error.code : "unknown" }, "shutdown failed");
                resolve(3);
              }
            })();
          };
          process.once("SIGTERM", () => stop("SIGTERM"));
          process.once("SIGINT", () => stop("SIGINT"));
          // SIGHUP: the configuration is read again and its reloadable parts applied (one reload at a
          // time); an invalid file leaves the running configuration as it was.
          let reloading = Promise.resolve();
          process.on("SIGHUP", () => {
            if (stopping) return;
            reloading = reloading.then(async () => {
              try {
                const next = await configFor({ ...program.opts(), ...opts }).catch(async (error: unknown) => {
                  // Reload failures past this point are audited by the instance; this one is not its own.
                  await instance.audit
                    .append({
                      type: "config_change",
                      actor: "system",
                      action: "config.reload",
                      outcome: "error",
                      details: { reason: error instanceof AgentwallError ? error.code : "ERR_CONFIG_FILE" },
                    })
                    .catch(() => undefined);
                  throw error;
                });
                const report = await instance.reload(next.config);
                logger.level = instance.config.logLevel;
                logger.info(report, "configuration reloaded");
                const restart =
                  report.restartRequired.length === 0
                    ? ""
                    : `; needs a restart, not applied: ${report.restartRequired.join(", ")}`;
                process.stdout.write(
                  `agentwall configuration reloaded: ${report.applied.length === 0 ? "nothing changed" : report.applied.join(", ")}${restart}\n`,
                );
              } catch (error) {
                const code = error instanceof AgentwallError ? error.code : "ERR_CONFIG_INVALID";
                const message = error instanceof AgentwallError ? error.message : "the configuration could not be read";
                logger.error({ code }, "configuration reload failed");
                process.stderr.write(
                  `agentwall configuration reload failed (${code}: ${message}); the running configuration is kept\n`,
                );
              }
            });
          });
        });
      }),
    );
}

/** A listen that failed (address in use, not on this machine, not permitted), named for the operator. */
function listenFailed(error: unknown, host: string, port: number): AgentwallError {
  const code = (error as NodeJS.ErrnoException).code;
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return new AgentwallError(
    "ERR_LISTEN_FAILED",
    `cannot listen on ${where}${typeof code === "string" ? ` (${code})` : ""}`,
  );
}
