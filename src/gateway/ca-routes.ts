import { AgentwallError, isAgentwallError } from "../errors.js";
import { CertificateAuthority, crlPem } from "../channel/ca.js";
import type { Instance } from "../instance.js";
import type { GatewayRoute } from "./route.js";

/**
 * The agent CA's public face: its CRL and its certificate, without authentication (remote agents
 * need both to check peers, and neither is secret). Issuing and revoking stay with the CLI.
 */
export function caRoutes(instance: Instance): GatewayRoute[] {
  let opened: Promise<CertificateAuthority> | undefined;
  const ca = (): Promise<CertificateAuthority> => {
    opened ??= CertificateAuthority.open({ store: instance.store, keyring: instance.keyring, audit: instance.audit });
    // A CA created after the server started (`agentwall ca init`) is picked up on the next request.
    return opened.catch((error: unknown) => {
      opened = undefined;
      throw isAgentwallError(error) ? error : new AgentwallError("ERR_INTERNAL", "the CA could not be opened");
    });
  };
  const format = (query: unknown): "der" | "pem" => {
    const value = (query as Record<string, unknown>).format;
    if (value === undefined || value === "der") return "der";
    if (value === "pem") return "pem";
    throw new AgentwallError("ERR_BAD_REQUEST", "format is der or pem");
  };
  return [
    {
      method: "GET",
      url: "/v1/ca/crl",
      access: { public: true },
      handler: async (request, reply) => {
        const as = format(request.query);
        const der = await (await ca()).crl();
        void reply.header("cache-control", "public, max-age=300");
        if (as === "pem") return reply.type("application/x-pem-file").send(crlPem(der));
        return reply.type("application/pkix-crl").send(der);
      },
    },
    {
      method: "GET",
      url: "/v1/ca/certificate",
      access: { public: true },
      handler: async (_request, reply) =>
        reply
          .type("application/x-pem-file")
          .header("cache-control", "public, max-age=300")
          .send((await ca()).caCertificatePem),
    },
  ];
}
