import { AgentwallError } from "../errors.js";
import { permits } from "../access/permission.js";
import type { Instance } from "../instance.js";
import type { Direction, GuardVerdict } from "../guard/pipeline.js";
import type { TextSource } from "../guard/injection.js";
import type { GatewayRoute } from "./route.js";
import { sourceTrust } from "./auth.js";
import { NO_TRUST } from "./proxy-responses.js";

const SOURCES: readonly TextSource[] = ["user", "agent", "tool", "document", "system"];
/**
 * Longest text one request may scan: a bound on what one call costs (a few MB/s, docs/guards.md; a
 * long text is scanned on the guard's threads, so it does not hold other requests meanwhile). Longer
 * texts go in several calls.
 */
export const MAX_GUARD_TEXT_CHARS = 200_000;

/**
 * What a caller sees of a verdict. By default only the verdict, the text to pass on and the finding
 * types — so the service is not an oracle for tuning a bypass; offsets, scores and signals only with
 * `guard:details`.
 */
function view(v: GuardVerdict, details: boolean): Record<string, unknown> {
  if (!details)
    return {
      verdict: v.verdict,
      text: v.text,
      findings: [...new Set(v.findings.map((f) => f.type))].map((type) => ({ type })),
    };
  return {
    verdict: v.verdict,
    text: v.text,
    source: v.source,
    findings: v.findings.map((f) => ({
      type: f.type,
      kind: f.kind,
      start: f.start,
      end: f.end,
      confidence: Number(f.confidence.toFixed(3)),
      action: f.action,
    })),
    injection: {
      score: Number(v.injection.score.toFixed(3)),
      detected: v.injection.detected,
      signals: v.injection.signals,
    },
  };
}

function route(instance: Instance, direction: Direction): GatewayRoute {
  return {
    method: "POST",
    url: `/v1/guard/${direction}`,
    access: { permission: "guard:check" },
    handler: async (request, reply, principal) => {
      const body = request.body as { text?: unknown; source?: unknown; canaries?: unknown } | undefined;
      const canaries = body?.canaries ?? [];
      if (
        typeof body?.text !== "string" ||
        (body.source !== undefined && !SOURCES.includes(body.source as TextSource)) ||
        !Array.isArray(canaries) ||
        canaries.length > 16 ||
        !canaries.every((c): c is string => typeof c === "string" && c.length >= 8 && c.length <= 200)
      ) {
        throw new AgentwallError(
          "ERR_BAD_REQUEST",
          `body must be {text: string, source?: ${SOURCES.join("|")}, canaries?: string[] (8..200 chars)}`,
        );
      }
      if (body.text.length > MAX_GUARD_TEXT_CHARS) {
        throw new AgentwallError("ERR_BODY_TOO_LARGE", `text is longer than ${MAX_GUARD_TEXT_CHARS} characters`);
      }
      // A claimed source only relaxes the checks where the caller's configuration establishes it.
      const source = body.source as TextSource | undefined;
      const trust = principal === undefined ? NO_TRUST : sourceTrust(principal);
      const verdict = await instance.guard.scanAsync(body.text, {
        direction,
        source,
        trustedSource: (source === "system" && trust.system) || (source === "agent" && trust.agent),
        canaries,
        partition: principal?.subject,
      });
      if (verdict.verdict === "block") {
        await instance.audit.append({
          type: "guard_block",
          actor: principal?.subject ?? "unknown",
          action: `guard.${direction}`,
          outcome: "blocked",
          requestId: request.id,
          details: {
            findings: [...new Set(verdict.findings.map((f) => f.type))],
            injectionScore: Number(verdict.injection.score.toFixed(3)),
            signals: verdict.injection.signals,
          },
        });
      }
      return reply.send(view(verdict, permits(principal?.grants ?? [], "guard:details")));
    },
  };
}

/** `POST /v1/guard/input` and `POST /v1/guard/output`. */
export function guardRoutes(instance: Instance): GatewayRoute[] {
  return [route(instance, "input"), route(instance, "output")];
}
