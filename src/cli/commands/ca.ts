import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import type { Instance } from "../../instance.js";
import { withInstance, type GlobalOptions } from "../context.js";
import { EXIT, writeOutput } from "../io.js";

type Run = (fn: () => Promise<number>) => Promise<void>;

function hoursOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,4}(\.\d{1,3})?$/.test(text)) throw new AgentwallError("ERR_USAGE", "--hours must be a number");
  return Number(text);
}

async function openCa(instance: Instance) {
  const { CertificateAuthority } = await import("../../channel/ca.js");
  return CertificateAuthority.open({ store: instance.store, keyring: instance.keyring, audit: instance.audit });
}

/** Writes the current CRL (PEM) to `<home>/ca/crl.pem`, the file remote agents are pointed at. */
async function publishCrl(instance: Instance, der: Buffer): Promise<string> {
  const { crlPem } = await import("../../channel/ca.js");
  const dir = join(instance.config.home, "ca");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "crl.pem");
  await writeOutput(path, crlPem(der));
  return path;
}

export function registerCa(program: Command, run: Run): void {
  const ca = program.command("ca").description("the agents' certificate authority (mutual-TLS channels)");
  const inInstance = (opts: GlobalOptions, fn: (instance: Instance) => Promise<number>) =>
    run(() => withInstance({ ...program.opts(), ...opts }, fn));

  ca.command("init")
    .description("create the CA (its key is the key hierarchy's ca signing key); prints its certificate")
    .option("--out <file>", "write the certificate here instead of standard output")
    .action((opts: GlobalOptions & { out?: string }) =>
      inInstance(opts, async (instance) => {
        const { CertificateAuthority } = await import("../../channel/ca.js");
        const authority = await CertificateAuthority.init({
          store: instance.store,
          keyring: instance.keyring,
          audit: instance.audit,
          actor: "cli",
        });
        await writeOutput(opts.out, authority.caCertificatePem);
        await publishCrl(instance, await authority.crl());
        return EXIT.OK;
      }),
    );

  ca.command("issue")
    .description("issue an agent certificate (Ed25519; a key pair is generated unless --public-key is given)")
    .argument("<agent>", "the agent id (a-z, 0-9, '.', '_', '-')")
    .option("--public-key <file>", "the agent's own Ed25519 public key (PEM); no private key is then printed")
    .option("--hours <n>", "validity in hours (default 24, at most 2160)")
    .option("--out <dir>", "write <agent>.crt, <agent>.key (0600) and ca.crt here instead of standard output")
    .option("--json", 'print {"serial","agent","notAfter","certificate","privateKey"}')
    .action(
      (agent: string, opts: GlobalOptions & { publicKey?: string; hours?: string; out?: string; json?: boolean }) =>
        inInstance(opts, async (instance) => {
          const authority = await openCa(instance);
          let publicKeyPem: string | undefined;
          if (opts.publicKey !== undefined) {
            try {
              publicKeyPem = readFileSync(opts.publicKey, "utf8");
            } catch {
              throw new AgentwallError("ERR_IO", `cannot read ${opts.publicKey}`);
            }
          }
          const hours = hoursOf(opts.hours);
          const issued = await authority.issue(agent, {
            actor: "cli",
            ...(publicKeyPem === undefined ? {} : { publicKeyPem }),
            ...(hours === undefined ? {} : { validityHours: hours }),
          });
          if (opts.out !== undefined) {
            mkdirSync(opts.out, { recursive: true, mode: 0o700 });
            await writeOutput(join(opts.out, `${agent}.crt`), issued.certificatePem);
            if (issued.privateKeyPem !== undefined)
              await writeOutput(join(opts.out, `${agent}.key`), issued.privateKeyPem);
            await writeOutput(join(opts.out, "ca.crt"), authority.caCertificatePem);
          }
          if (opts.json === true) {
            process.stdout.write(
              JSON.stringify({
                serial: issued.serial,
                agent: issued.agentId,
                notAfter: new Date(issued.notAfter).toISOString(),
                certificate: opts.out === undefined ? issued.certificatePem : null,
                privateKey: opts.out === undefined ? (issued.privateKeyPem ?? null) : null,
              }) + "\n",
            );
          } else if (opts.out === undefined) {
            process.stdout.write(issued.certificatePem + (issued.privateKeyPem ?? ""));
          }
          process.stderr.write(
            `issued ${issued.serial} for ${issued.agentId}, valid until ${new Date(issued.notAfter).toISOString()}\n`,
          );
          return EXIT.OK;
        }),
    );

  ca.command("renew")
    .description("a fresh certificate for the same agent and key (a revoked certificate is not renewed)")
    .argument("<serial>", "serial of the certificate to renew")
    .option("--hours <n>", "validity in hours (default 24)")
    .option("--out <file>", "write the certificate here instead of standard output")
    .action((serial: string, opts: GlobalOptions & { hours?: string; out?: string }) =>
      inInstance(opts, async (instance) => {
        const hours = hoursOf(opts.hours);
        const renewed = await (
          await openCa(instance)
        ).renew(serial, { actor: "cli", ...(hours === undefined ? {} : { validityHours: hours }) });
        await writeOutput(opts.out, renewed.certificatePem);
        process.stderr.write(`issued ${renewed.serial} for ${renewed.agentId}\n`);
        return EXIT.OK;
      }),
    );

  ca.command("revoke")
    .description("revoke a certificate: refused at every instance's next handshake; <home>/ca/crl.pem is rewritten")
    .argument("<serial>", "serial of the certificate")
    .option("--reason <reason>", "unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation")
    .action((serial: string, opts: GlobalOptions & { reason?: string }) =>
      inInstance(opts, async (instance) => {
        const { REVOCATION_REASONS } = await import("../../channel/ca.js");
        const reason = REVOCATION_REASONS.find((r) => r === (opts.reason ?? "unspecified"));
        if (reason === undefined)
          throw new AgentwallError("ERR_USAGE", `--reason is one of ${REVOCATION_REASONS.join(", ")}`);
        const authority = await openCa(instance);
        const result = await authority.revoke(serial, { reason, actor: "cli" });
        const path = await publishCrl(instance, await authority.crl());
        process.stdout.write(
          result.revoked
            ? `revoked ${result.certificate.serial} (${result.certificate.agentId}); CRL written to ${path}\n`
            : `${result.certificate.serial} was already revoked\n`,
        );
        return result.revoked ? EXIT.OK : EXIT.DENIED;
      }),
    );

  ca.command("list")
    .description("certificates issued, newest first")
    .option("--agent <id>", "only this agent's")
    .option("--json", "one JSON line per certificate")
    .action((opts: GlobalOptions & { agent?: string; json?: boolean }) =>
      inInstance(opts, async (instance) => {
        const now = Date.now();
        const list = await (await openCa(instance)).list(opts.agent === undefined ? {} : { agentId: opts.agent });
        for (const c of list) {
          const status = c.revokedAt !== null ? "revoked" : c.notAfter < now ? "expired" : "valid";
          if (opts.json === true) {
            process.stdout.write(
              JSON.stringify({
                serial: c.serial,
                kind: c.kind,
                agent: c.agentId,
                status,
                notAfter: new Date(c.notAfter).toISOString(),
                revokedAt: c.revokedAt === null ? null : new Date(c.revokedAt).toISOString(),
                reason: c.revocationReason,
              }) + "\n",
            );
          } else {
            process.stdout.write(
              `${c.serial}\t${c.kind}\t${c.agentId}\t${status}\t${new Date(c.notAfter).toISOString()}\n`,
            );
          }
        }
        return EXIT.OK;
      }),
    );

  ca.command("crl")
    .description("the signed certificate revocation list (PEM; DER with --der)")
    .option("--der", "DER instead of PEM")
    .option("--out <file>", "write it here instead of standard output")
    .action((opts: GlobalOptions & { der?: boolean; out?: string }) =>
      inInstance(opts, async (instance) => {
        const { crlPem } = await import("../../channel/ca.js");
        const der = await (await openCa(instance)).crl();
        await writeOutput(opts.out, opts.der === true ? der : crlPem(der));
        return EXIT.OK;
      }),
    );
}
