import { entropy, type Finding } from "./finding.js";
import { LiteralTable } from "./literals.js";
import {
  ASCII_ONLY,
  base64Runs,
  base64Text,
  findHidden,
  hexText,
  normalize,
  originalSpan,
  probedRuns,
  type HiddenPayload,
  type NormalizedText,
} from "./normalize.js";

/**
 * Secret detection: provider key formats recognised by their fixed prefixes and shapes, private keys,
 * JWTs (also base64-wrapped), credentials in URLs and command lines, and `name = value` assignments whose
 * name says secret and whose value looks random. Every pattern has bounded repetition and no nested
 * quantifiers, so matching is linear in the input (a test measures it).
 *
 * Patterns are written for agentwall from the providers' documented formats; the gitleaks rule tests
 * (MIT) are the measuring stick (`bench/guard-quality.ts`), not the source.
 */
interface Rule {
  readonly type: string;
  readonly re: RegExp;
  /** Literal strings one of which every match contains; the regex runs only when one is present. */
  readonly hints: readonly string[];
  /** Index of the capture group holding the secret (0: the whole match). */
  readonly group?: number;
  readonly confidence: number;
  /** Extra check on the secret text; false drops the match. */
  readonly check?: (secret: string) => boolean;
}

const B = "(?<![A-Za-z0-9_])"; // a token boundary before
const E = "(?![A-Za-z0-9_])"; // and after

const notPlaceholder = (s: string) => !PLACEHOLDER.test(s);
const random = (min: number) => (s: string) => notPlaceholder(s) && entropy(s) >= min;

/** A password typed on a command line that is not a variable, a template or a stock word. */
function realPassword(s: string): boolean {
  if (/[$<>{}[\]%]/.test(s) || !notPlaceholder(s)) return false;
  if (/^(?:pass(?:word)?|passwd|pwd|secret|token|test|user(?:name)?|admin|root|guest|demo|changeit|yyy+)$/i.test(s))
    return false;
  return s.length >= 6 && entropy(s) >= 2.3;
}

const PLACEHOLDER =
  /x{5,}|X{5,}|\*{4,}|\.{4,}|0{8,}|(?:example|sample|dummy|placeholder|changeme|change_me|redacted|your[_-]?(?:api|secret|token|key|password)|insert|replace|lorem|fake|foobar|abcdefghij|qwerty)/i;

/**
 * The literal a pattern starts with (after the boundary), or the literals of a leading alternation:
 * `ghp_…` → ["ghp_"], `(?:sk|rk)_(?:live…` → ["sk_", "rk_"]. Empty when the pattern starts otherwise.
 */
function hintsOf(source: string): string[] {
  const body = source.startsWith(B) ? source.slice(B.length) : source;
  const literal = /^[A-Za-z0-9_:=.-]+/;
  const alternation = /^\(\?:([A-Za-z0-9_|-]+)\)((?:[A-Za-z0-9_-]|\\\.)*)/.exec(body);
  if (alternation !== null) {
    const tail = (alternation[2] ?? "").replace(/\\\./g, ".");
    const options = (alternation[1] as string).split("|").map((o) => o + tail);
    return options.every((o) => o.length >= 2) ? options : [];
  }
  const head = (literal.exec(body.replace(/\\\./g, ".")) ?? [""])[0];
  return head.length >= 3 ? [head] : [];
}

/** Literals for the rules whose pattern does not start with one (see {@link hintsOf}). */
const MANUAL_HINTS: Readonly<Record<string, readonly string[]>> = {
  "aws-access-key-id": ["A3T", "AKIA", "ASIA", "ABIA", "ACCA"],
  "slack-webhook": ["hooks.slack.com"],
  "twilio-api-key": ["SK"],
  "mailchimp-api-key": ["-us"],
  "digitalocean-token": ["_v1_"],
  "flyio-token": ["fo1_", "fm1", "fm2"],
  "grafana-token": ["glc_", "glsa_"],
  "newrelic-key": ["NRAK-", "NRJS-", "NRII-"],
  "notion-token": ["ntn_", "secret_"],
  "sentry-token": ["sntrys_", "sntryu_"],
  "telegram-bot-token": [":A"],
  "vault-token": ["hvs.", "hvb.", "s."],
  "terraform-token": [".atlasv1."],
  "azure-ad-client-secret": ["Q~"],
  "easypost-token": ["EZAK", "EZTK"],
  "jfrog-token": ["AKCp", "cmVmd"],
  "sourcegraph-token": ["sgp_"],
  "facebook-app-secret": ["|", "%7C"],
  "twitter-bearer-token": ["AAAAAAAAAAAAAAAAAAAAAA"],
  "yandex-token": ["t1.", "YC", "AQVN"],
  jwt: [".ey"], // the second part of a JWT starts with "ey" after a dot
  "url-credentials": ["://"],
  "kubernetes-secret": ["data:"],
};
function r(type: string, source: string, confidence = 0.95, group = 0, check?: (s: string) => boolean): Rule {
  const derived = hintsOf(source);
  return {
    type,
    re: new RegExp(source, "dg"),
    hints: derived.length > 0 ? derived : (MANUAL_HINTS[type] ?? []),
    confidence,
    group,
    ...(check === undefined ? {} : { check }),
  };
}

const PREFIXED: readonly Rule[] = [
  r("aws-access-key-id", `${B}(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}${E}`, 0.95, 0, random(2.8)),
  r("aws-bedrock-api-key", `${B}ABSK[A-Za-z0-9+/]{109,269}={0,2}`, 0.9),
  r("aws-bedrock-api-key", `${B}bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t`, 0.9),
  r("github-token", `${B}(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}${E}`, 0.98),
  r("github-fine-grained-token", `${B}github_pat_[A-Za-z0-9_]{82}${E}`, 0.98),
  r(
    "gitlab-token",
    `${B}(?:glpat|gldt|glrt|glcbt|glptt|glft|glsoat|glimt|glagent|gloas)-[A-Za-z0-9_=-]{20,64}${E}`,
    0.97,
  ),
  r("gitlab-token", `${B}GR1348941[A-Za-z0-9_=-]{20}${E}`, 0.9, 0, random(3)),
  r("openai-api-key", `${B}sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,80}T3BlbkFJ[A-Za-z0-9_-]{20,80}${E}`, 0.99),
  r("openai-api-key", `${B}sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,200}${E}`, 0.95, 0, random(3.5)),
  r("anthropic-api-key", `${B}sk-ant-(?:api|admin)\\d{2}-[A-Za-z0-9_-]{80,120}AA${E}`, 0.99),
  r("google-api-key", `${B}AIza[A-Za-z0-9_-]{35}${E}`, 0.9, 0, random(4)),
  r("google-oauth-secret", `${B}GOCSPX-[A-Za-z0-9_-]{28}${E}`, 0.95),
  r("stripe-key", `${B}(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}${E}`, 0.95, 0, random(3)),
  r("stripe-webhook-secret", `${B}whsec_[A-Za-z0-9]{32,64}${E}`, 0.9),
  // Slack tokens carry 8-14 digit team/user ids before the secret part: shorter ids are made-up examples.
  r(
    "slack-token",
    `${B}xox[abposr]-(?:\\d-)?\\d{8,14}(?:-\\d{8,14}){0,3}-[A-Za-z0-9]{8,250}(?![A-Za-z0-9_#-])`,
    0.95,
    0,
    // The ids may be anything; the randomness that matters is in the last part, which in legacy
    // tokens is ten hex digits: a random ten-character string rarely reaches 3 bits a character
    // (log2 10 = 3.32 at most), so short tails are held to less.
    (t) => {
      const tail = t.slice(t.lastIndexOf("-") + 1);
      return notPlaceholder(t) && entropy(tail) >= Math.min(3, Math.log2(tail.length) - 0.75);
    },
  ),
  // Legacy workspace and refresh tokens: a short random part, no ids.
  r("slack-token", `${B}xox[ar]-(?:\\d-)?[A-Za-z0-9]{10,48}${E}`, 0.9, 0, random(3)),
  r("slack-token", `${B}xoxe(?:\\.xox[bp])?-\\d-[A-Za-z0-9]{100,300}${E}`, 0.95),
  r("slack-app-token", `${B}xapp-\\d-[A-Z0-9]+-\\d+-[a-z0-9]+${E}`, 0.95),
  r("slack-webhook", `(?:https?://)?hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/]{43,56}`, 0.95),
  r("twilio-api-key", `${B}SK[0-9a-fA-F]{32}${E}`, 0.8, 0, random(3.2)),
  r("sendgrid-api-key", `${B}SG\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}${E}`, 0.98),
  r("sendinblue-api-key", `${B}xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}${E}`, 0.98),
  r("mailgun-key", `${B}(?:key|pubkey)-[a-f0-9]{32}${E}`, 0.85),
  r("mailchimp-api-key", `${B}[a-f0-9]{32}-us\\d{1,2}${E}`, 0.9),
  r("npm-token", `${B}npm_[A-Za-z0-9]{36}${E}`, 0.97),
  r("pypi-token", `${B}pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,1000}`, 0.99),
  r("rubygems-token", `${B}rubygems_[a-f0-9]{48}${E}`, 0.98),
  r("clojars-token", `${B}CLOJARS_[a-z0-9]{60}${E}`, 0.98),
  r("huggingface-token", `${B}(?:hf_|api_org_)[A-Za-z0-9]{30,40}${E}`, 0.95, 0, random(3)),
  r("shopify-token", `${B}shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}${E}`, 0.98),
  r("digitalocean-token", `${B}do[opr]_v1_[a-f0-9]{64}${E}`, 0.98),
  r("doppler-token", `${B}dp\\.(?:pt|st|sa|ct|scim|audit)\\.[A-Za-z0-9]{40,44}${E}`, 0.97),
  r("dynatrace-token", `${B}dt0c01\\.[A-Z0-9]{24}\\.[A-Z0-9]{64}${E}`, 0.98),
  r("flyio-token", `${B}(?:fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/=]{100,})`, 0.95),
  r("grafana-token", `${B}(?:glc_[A-Za-z0-9+/]{32,400}={0,2}|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8})`, 0.97, 0, random(3)),
  r("grafana-api-key", `${B}eyJrIjoi[A-Za-z0-9]{70,400}={0,2}`, 0.95),
  r("linear-api-key", `${B}lin_api_[A-Za-z0-9]{40}${E}`, 0.98),
  r("newrelic-key", `${B}NR(?:AK|JS|II)-[A-Z0-9]{19,32}${E}`, 0.95),
  r("notion-token", `${B}(?:ntn_\\d{11}[A-Za-z0-9]{32}[A-Za-z0-9]{3}|secret_[A-Za-z0-9]{43})${E}`, 0.95),
  r("postman-api-key", `${B}PMAK-[a-f0-9]{24}-[a-f0-9]{34}${E}`, 0.98),
  r("planetscale-token", `${B}pscale_(?:pw|tkn|oauth)_[A-Za-z0-9=._-]{32,64}${E}`, 0.97),
  r("pulumi-token", `${B}pul-[a-f0-9]{40}${E}`, 0.97),
  r("databricks-token", `${B}dapi[a-f0-9]{32}(?:-\\d)?${E}`, 0.95),
  r("atlassian-api-token", `${B}ATATT3[A-Za-z0-9_=-]{186}${E}`, 0.98),
  // Org tokens: base64 JSON claims, "_", a 43-character secret; user tokens: 64 hex digits. Exact lengths:
  // a token one character short or long is a mangled copy, not a key.
  r(
    "sentry-token",
    `${B}(?:sntrys_eyJpYXQiO[A-Za-z0-9+/]{10,400}={0,2}_[A-Za-z0-9+/]{43}|sntryu_[a-f0-9]{64})(?![A-Za-z0-9+/=_-])`,
    0.97,
    0,
    random(3),
  ),
  r("1password-token", `${B}ops_eyJ[A-Za-z0-9+/]{250,}={0,3}`, 0.98),
  r(
    "1password-secret-key",
    `${B}A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}${E}`,
    0.95,
    0,
    random(3),
  ),
  r("age-secret-key", `${B}AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}${E}`, 0.99),
  r("telegram-bot-token", `${B}\\d{5,16}:A[A-Za-z0-9_-]{34}(?![A-Za-z0-9_-])`, 0.85, 0, random(3)),
  r(
    "vault-token",
    `${B}(?:hvs\\.[A-Za-z0-9_-]{90,120}|hvb\\.[A-Za-z0-9_-]{138,300}|s\\.[A-Za-z0-9]{24})${E}`,
    0.9,
    0,
    (v: string) => random(3)(v) && (!v.startsWith("s.") || (/\d/.test(v) && /[a-z]/.test(v) && /[A-Z]/.test(v))),
  ),
  r("terraform-token", `${B}[A-Za-z0-9]{14}\\.atlasv1\\.[A-Za-z0-9_=-]{60,70}${E}`, 0.97, 0, random(3)),
  r("square-token", `${B}(?:sq0atp|sq0csp)-[A-Za-z0-9_^-]{22,60}${E}`, 0.97),
  r("square-token", `${B}EAAA[A-Za-z0-9_+=-]{60}${E}`, 0.85),
  r("shippo-token", `${B}shippo_(?:live|test)_[a-f0-9]{40}${E}`, 0.98),
  r("alibaba-access-key", `${B}LTAI[A-Za-z0-9]{20}${E}`, 0.9),
  r(
    "azure-ad-client-secret",
    `(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])`,
    0.9,
  ),
  r("azure-storage-key", `AccountKey=[A-Za-z0-9+/]{86}==`, 0.97),
  r("cloudflare-origin-ca-key", `${B}v1\\.0-[a-f0-9]{24}-[a-f0-9]{146}${E}`, 0.95, 0, random(3)),
  r("defined-networking-key", `${B}dnkey-[a-z0-9=_-]{26}-[a-z0-9=_-]{52}${E}`, 0.97),
  r("duffel-token", `${B}duffel_(?:test|live)_[A-Za-z0-9_=-]{43}${E}`, 0.97),
  r("easypost-token", `${B}EZ[AT]K[A-Za-z0-9]{54}${E}`, 0.97),
  r("frameio-token", `${B}fio-u-[A-Za-z0-9_=-]{64}${E}`, 0.97),
  r("jfrog-token", `${B}(?:AKCp[A-Za-z0-9]{69}|cmVmd[A-Za-z0-9]{59})${E}`, 0.9, 0, random(3.5)),
  r("openshift-token", `${B}sha256~[A-Za-z0-9_-]{43}${E}`, 0.95),
  r("prefect-token", `${B}pnu_[A-Za-z0-9]{36}${E}`, 0.97),
  r("readme-token", `${B}rdme_[a-z0-9]{70}${E}`, 0.97),
  r("scalingo-token", `${B}tk-us-[A-Za-z0-9_-]{48}${E}`, 0.97),
  r("settlemint-token", `${B}sm_(?:pat|aat|sat)_[A-Za-z0-9]{16}${E}`, 0.95),
  r(
    "sourcegraph-token",
    `${B}(?:sgp_(?:[a-fA-F0-9]{16}|local)_[a-fA-F0-9]{40}|sgp_[a-fA-F0-9]{40})${E}`,
    0.95,
    0,
    random(3),
  ),
  r("sourcegraph-token", `${B}sgp_[A-Za-z0-9]{16}_[A-Za-z0-9]{40}${E}`, 0.9),
  r("typeform-token", `${B}tfp_[A-Za-z0-9_.=-]{59}${E}`, 0.97),
  r("harness-token", `${B}(?:pat|sat)\\.[A-Za-z0-9_-]{22}\\.[A-Za-z0-9]{24}\\.[A-Za-z0-9]{20}${E}`, 0.95),
  r("infracost-token", `(?<![A-Za-z0-9_./-])ico-[A-Za-z0-9]{32}${E}`, 0.95, 0, random(3)),
  r("intra42-secret", `${B}s-s4t2(?:ud|af)-[a-f0-9]{64}${E}`, 0.97),
  r("airtable-token", `${B}pat[A-Za-z0-9]{14}\\.[a-f0-9]{64}${E}`, 0.97),
  r(
    "authress-key",
    `${B}(?:sc|ext|scauth|authress)_[A-Za-z0-9]{5,30}\\.[a-z0-9]{4,6}\\.acc[_-][a-z0-9-]{10,32}\\.[A-Za-z0-9+/_=-]{30,120}`,
    0.95,
  ),
  r("adobe-client-secret", `${B}p8e-[A-Za-z0-9]{32}${E}`, 0.95),
  r("facebook-token", `${B}EAA[A-Za-z0-9]{100,210}${E}`, 0.85),
  r("facebook-app-secret", `${B}\\d{15,16}(?:\\||%7C)[A-Za-z0-9_-]{27}${E}`, 0.85),
  r("twitter-bearer-token", `${B}A{22}[A-Za-z0-9%]{80,100}${E}`, 0.95),
  r(
    "yandex-token",
    `${B}(?:t1\\.[A-Z0-9a-z_-]+={0,2}\\.[A-Z0-9a-z_-]{86}={0,2}|YC[A-Za-z0-9_-]{38}|AQVN[A-Za-z0-9_-]{35,38})${E}`,
    0.9,
  ),
  r("octopus-deploy-key", `${B}API-[A-Z0-9]{26}${E}`, 0.9, 0, random(3)),
  r("heroku-key", `${B}HRKU-AA[A-Za-z0-9_-]{58}${E}`, 0.97),
  r("mapbox-token", `${B}(?:pk|sk)\\.eyJ[A-Za-z0-9_-]{20,200}\\.[A-Za-z0-9_-]{22}${E}`, 0.97),
  r("lob-key", `${B}(?:live|test)_(?:pub_)?[a-f0-9]{31,35}${E}`, 0.85),
  r("contentful-token", `${B}CFPAT-[A-Za-z0-9_-]{43}${E}`, 0.97),
  r(
    "discord-webhook",
    `https://(?:ptb\\.|canary\\.)?discord(?:app)?\\.com/api/webhooks/\\d{17,20}/[A-Za-z0-9_-]{60,68}`,
    0.97,
  ),
  r("agentwall-api-key", `${B}aw_[0-9a-z]{12}_[0-9A-Za-z]{49}${E}`, 0.99),
  r(
    "private-key",
    `-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[\\s\\S]{64,16384}?-----END[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----`,
    0.99,
  ),
  // A key cut short (pasted in part, or an answer stopped by its token limit): the header and 64 or
  // more characters of body, on one line or wrapped (a JSON string's \\n too), are key material. A whole
  // key is the rule above's.
  r(
    "private-key",
    // The body taken whole (a lookahead and its backreference: no backtracking into it), and no END after it.
    `-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----[ \\t]*(?:\\r?\\n|\\\\n)?(?=([A-Za-z0-9+/=]{16,}(?:[ \\t]*(?:\\r?\\n|\\\\n)[A-Za-z0-9+/=]+)*))\\1(?!(?:\\s|\\\\n)*-----END)`,
    0.9,
    0,
    (key) => (key.slice(key.indexOf("-----", 5) + 5).match(/[A-Za-z0-9+/=]/g)?.length ?? 0) >= 64,
  ),
  r("jwt", `${B}eyJ[A-Za-z0-9_-]{10,4000}\\.eyJ[A-Za-z0-9_-]{2,8000}\\.[A-Za-z0-9_-]{0,2000}`, 0.9),
  r("jwt", `${B}ey[A-Za-z0-9_\\\\/+=-]{16,4000}\\.ey[A-Za-z0-9_\\\\/+=-]{8,8000}\\.[A-Za-z0-9_\\\\/+=-]{4,2000}`, 0.7),
  // A JWT wrapped in base64 ("eyJhbGciOi" encodes to "ZXlKaGJHY2lPaU").
  r(
    "jwt-base64",
    `${B}ZXlK(?:aGJHY2lPaU|aGRIQWlPaU|aGRIQWlPaUpLVjFRaUxDSmhiR2NpT2lK|aGRIQWlPaUpLVjFRaUxBMEtJQ0poYkdjaU9pSk|aGJHY2lPaUpJVXpJMU5pSjk|)[A-Za-z0-9+/]{40,8000}={0,2}`,
    0.9,
  ),
  r(
    "url-credentials",
    // The scheme as a lookbehind after the "://": the regex is tried at colons, not at every letter.
    `://(?<=[a-z][a-z0-9+.-]{1,20}://)[^\\s:/@'"]{1,100}:([^\\s:/@'"]{3,200})@[A-Za-z0-9.-]{1,253}`,
    0.85,
    1,
    random(2),
  ),
  r(
    "curl-credentials",
    // A long command goes on over lines ending in a backslash (shell continuation).
    `curl\\b(?:[^\\n]|\\\\\\r?\\n){0,200}?\\s(?:-u|--user)\\s+['"]?[^\\s:'"]{1,100}:([^\\s'"]{3,200})`,
    0.85,
    1,
    realPassword,
  ),
  r(
    "authorization-header",
    `(?:Authorization|X-Api-Key|Api-Key|X-Auth-Token)['"]?\\s*:\\s*['"]?(?:(?:Bearer|Basic|Token)\\s+)?([A-Za-z0-9._~+/=-]{16,500})`,
    0.85,
    1,
    random(3),
  ),
  r(
    "kubernetes-secret",
    `(?:^|\\n)\\s*data:\\s*\\n(?:\\s+[\\w.-]{1,100}:\\s*[A-Za-z0-9+/]{4,}={0,2}\\s*\\n?){1,50}`,
    0.6,
  ),
  r(
    "sidekiq-credentials",
    `(?:BUNDLE_ENTERPRISE__CONTRIBSYS__COM|BUNDLE_GEMS__CONTRIBSYS__COM)['"]?\\s*[:=]?\\s*['"]?([a-f0-9]{8}:[a-f0-9]{8})`,
    0.95,
    1,
  ),
];

/**
 * A Kubernetes `data:` block counts only inside a YAML document of `kind: Secret` (any case, as
 * kubectl's own tests write it), and only when one of its values is at least 12 base64 characters (9
 * bytes): a ConfigMap, a SopsSecret template or `extra: YmFyCg==` ("bar") is not a leaked secret.
 */
function kubernetesSecret(text: string, start: number, end: number): boolean {
  const from = text.lastIndexOf("\n---", start);
  const to = text.indexOf("\n---", end);
  const document = text.slice(from < 0 ? 0 : from, to < 0 ? text.length : to);
  return (
    /^\s*kind:\s*["']?secret["']?\s*$/im.test(document) && /:\s*["']?[A-Za-z0-9+/]{12,}/.test(text.slice(start, end))
  );
}
/** Checks on where a rule's match stands in the whole text, by rule type; false drops the match. */
const CONTEXT: Readonly<Record<string, (text: string, start: number, end: number) => boolean>> = {
  "kubernetes-secret": kubernetesSecret,
};

/** The rules' literals: a rule runs only when one of its literals occurs. */
const HINTS = new LiteralTable(PREFIXED.map((r) => r.hints));

/** Words that make an assignment's name secret-bearing when they end it. */
const SECRET_WORDS =
  "(?:api[_.-]?key|apikey|access[_.-]?key|secret[_.-]?key|private[_.-]?key|client[_.-]?secret|secret|token|password|passwd|pwd|pass|passphrase|credentials?|auth[_.-]?key|auth|key|pat|sid|salt|cookie|session|bearer|dsn)";

/**
 * `name = value` with a secret-bearing name (the name ends in token, key, secret, password, …), in the
 * assignment forms of common languages and config formats, and a value that looks random.
 */
const SECRET_WORD = new RegExp(`${SECRET_WORDS}s?(?![A-Za-z0-9])`, "gi");
/** What follows a secret word in an assignment: optional quote and type, the operator, the value. */
const ASSIGNMENT_TAIL = new RegExp(
  `["'\`]?(?:[ \\t]{0,4}(?:string|str|String|const|final|:[ \\t]?[A-Za-z]{1,10}))?[ \\t]{0,8}(?:=|:=|::=|:::=|\\?=|\\.=|\\+=|=>|->|:|,|\\|\\|=|value[ \\t]{0,4}=)[ \\t]{0,8}(?:[rRbBuU]?["'\`]|\\(\\s?["'\`]?)?([^\\s"'\`<>,;)(\\\\]{8,300})`,
  "dy",
);
const NAME_CHAR = /[A-Za-z0-9_.$@-]/;
/** The XML form: `<apiToken>` value `</apiToken>`. */
const XML_TAIL = /s?>[ \t\r\n]{0,20}([^\s<>"'`]{8,300})[ \t\r\n]{0,20}<\//dy;

/** Cheap pre-check for {@link ASSIGNMENT}: a secret word followed (soon) by an assignment sign. */
const ASSIGNMENT_HINT =
  /(?:key|token|secret|pass|pwd|auth|credential|pat|sid|salt|cookie|session|bearer|dsn)[^\n]{0,80}?[=:,>]/i;

function assignmentValueOk(name: string, value: string): boolean {
  const v = value.replace(/["'`]+$/, "");
  if (v.length < 8 || !notPlaceholder(v)) return false;
  if (/(?:\.\.\.|\u2026)$/.test(v)) return false; // elided in documentation: `ops_eyJzaWdu...`
  if (/^(?:true|false|null|none|nil|undefined|yes|no)$/i.test(v)) return false;
  if (/^[$%{]|^\$\{|\{\{|process\.env|os\.environ|getenv|ENV\[|^\w+\(/.test(v)) return false; // references
  if (/^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(v) && v.length < 60) return false; // a.dotted.path
  if (/^[A-Za-z]+(?:_[A-Za-z0-9]+)+$/.test(v) && /[a-z]/.test(v) && v.length < 40) return false; // snake_case_name_2
  if (/^[a-z]+(?:[._-][a-z]+)*$/i.test(v) && !/\d/.test(v)) {
    // Letters only: an identifier unless long and random (camelCase and PascalCase names are identifiers).
    if (v.length < 14 || entropy(v) < 3.5 || /^[a-z]*(?:[A-Z][a-z]+)+$|[._-]/.test(v)) return false;
  }
  if (/^(?:https?|file|s3):\/\//i.test(v) && !/:[^/]+@/.test(v)) return false; // a plain URL
  if (/^ENC\[/.test(v)) return false; // already encrypted (SOPS)
  if (/(?:[A-Z][a-z]{3,}){3}/.test(v)) return false; // three capitalised words: an identifier (`AgencyCodeContentType`)
  if (/^[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z][A-Za-z0-9]*)*[-_.:]v?\d+(?:\.\d+){1,3}$/.test(v)) return false; // name-1.2.3
  if (/^[A-Za-z_-]+(?:\/[A-Za-z_-]+)+$/.test(v)) return false; // letters/and/slashes: a path or a name
  if (/^[a-z_]+=[a-z_]+$/i.test(v)) return false; // key=value of words
  if (/^\.{0,2}\/|\.(?:json|ya?ml|pem|txt|key|crt|env|ts|js|py)$/i.test(v)) return false; // a path
  if (
    /(?:^|[_.-])(?:id|ids|name|type|path|file|url|uri|length|size|count|event|events|field|header|prefix|format)$|[a-z0-9](?:Id|Ids|Name|Type|Path|File|Url|Event)$/.test(
      name,
    )
  )
    return false;
  if (
    /^(?:public|publishable)|(?:csrf|xsrf|authenticity)[_.-]?token$|(?:public|primary|foreign|partition|sort|cache|map|index|idx|row|hash|lookup|shortcut|hot|unique|composite|surrogate|natural|ssh)[_.-]?key$/i.test(
      name,
    )
  )
    return false;
  const e = entropy(v);
  if (/^\d+$/.test(v)) return v.length >= 12 && e >= 2.5;
  return v.length >= 32 ? e >= 3.0 : v.length >= 16 ? e >= 2.9 : e >= 2.6;
}

/** Finds secrets in `text`. Offsets are UTF-16 indices into `text`. */
export function findSecrets(text: string): Finding[] {
  const out = findPlainSecrets(text);
  // A secret written in base64 or hex ("echo QUtJQV… | base64 -d" — a model told to slip a key past
  // the filter): the whole run is the finding, of the type found inside. A run holds no whitespace, so a
  // streaming scan, which holds back the last whitespace-free run, never releases part of one.
  for (const m of base64Runs(text)) {
    const inner = encodedSecret(m[0], 2);
    if (inner !== undefined)
      out.push({
        type: inner.type,
        start: m.index,
        end: m.index + m[0].length,
        confidence: inner.confidence * 0.9,
        kind: "secret",
      });
  }
  return out;
}

/**
 * Letters and digits NFKC reads as ASCII: fullwidth forms, enclosed (circled, parenthesized) ones,
 * superscripts and subscripts, mathematical alphanumerics (high surrogate U+D835).
 */
const COMPATIBILITY_FORMS = /[\uff01-\uff5e\u2460-\u24ff\u2070-\u209f\u00b2\u00b3\u00b9\ud835]/;
/** What {@link findSecrets} does not decode itself (it reads base64 and hex runs). */
const READ_ENCODINGS: ReadonlySet<HiddenPayload["encoding"]> = new Set([
  "url",
  "html",
  "spaced",
  "escape",
  "base32",
  "binary",
  "decimal",
]);

/**
 * Secrets written so that a reader still sees them but a pattern over the raw text does not — what a
 * model told to slip a key past the filter writes: zero-width characters or soft hyphens between its
 * characters, fullwidth or other compatibility forms, look-alike letters from another script, letters in
 * another style such as small capitals (found in the normalized text, see {@link normalize}); HTML
 * character references (which a renderer shows as the key), percent-encoding, string escapes, bytes in
 * binary or decimal, base32, and the key spelled out with spaces or separators (found in the decoded
 * payloads); and the key written backwards ({@link reversedSecrets}). Each finding covers the disguised
 * span of the original. `normalized`: the text's normalization when the caller already has it (its
 * hidden payloads of any depth are used).
 */
export function findDisguisedSecrets(text: string, normalized?: NormalizedText): Finding[] {
  const out: Finding[] = [];
  if (!ASCII_ONLY.test(text)) {
    const n = normalized ?? normalize(text, 0);
    // A second pass only where normalization undid a disguise (most non-English text has none).
    if (n.invisible.length > 0 || n.confusables > 0 || n.styled > 0 || COMPATIBILITY_FORMS.test(text))
      for (const f of findPlainSecrets(n.text))
        out.push({ ...f, ...originalSpan(n, f.start, f.end), confidence: f.confidence * 0.9 });
  }
  const hidden =
    normalized === undefined
      ? findHidden(text, 2, READ_ENCODINGS)
      : normalized.hidden.filter((h) => READ_ENCODINGS.has(h.encoding));
  for (const h of hidden) {
    const found = findPlainSecrets(h.decoded).sort((a, b) => b.confidence - a.confidence)[0];
    if (found !== undefined)
      out.push({ type: found.type, start: h.start, end: h.end, confidence: found.confidence * 0.9, kind: "secret" });
  }
  const runs = probedRuns(text, PRINTABLE);
  out.push(...reversedSecrets(text, runs), ...regroupedSecrets(text, runs));
  return out;
}

/**
 * Keys cut into groups by a separator ("ghp_aB3dE-5fG7h-I9jK1-…", "AKIA.Z7QW.3EXA.…" — what a model told
 * to slip a key past a filter may write): every run of printable characters (`runs`, from
 * {@link probedRuns}) cut by one separator (`-`, `.`, `:`) into four or more groups of a fixed width
 * ({@link evenGroups}) is read without it, all such runs in one text, and a key of a known shape found
 * there is reported over the whole run. A key that holds the separator itself (`sk-proj-…`) is found in
 * the run as written.
 */
function regroupedSecrets(text: string, runs: readonly number[]): Finding[] {
  const joined: { start: number; end: number; at: number; length: number }[] = [];
  let variant = "";
  for (let i = 0; i < runs.length; i += 2) {
    const [start, end] = [runs[i] as number, runs[i + 1] as number];
    if (end - start < 20) continue;
    const run = text.slice(start, end);
    for (const separator of GROUP_SEPARATORS) {
      if ((run.match(GROUPED[separator] as RegExp)?.length ?? 0) < 3 || !evenGroups(run.split(separator))) continue;
      const read = run.replaceAll(separator, "");
      joined.push({ start, end, at: variant.length, length: read.length });
      variant += `${read}\n`;
    }
  }
  if (joined.length === 0) return [];
  const out: Finding[] = [];
  for (const f of findPlainSecrets(variant)) {
    if (f.type === "secret-assignment") continue; // words run together read as nonsense names
    const run = joined[lastAtOrBefore(joined, f.start)] as (typeof joined)[number];
    if (f.end <= run.at + run.length)
      out.push({ ...f, start: run.start, end: run.end, confidence: f.confidence * 0.9 });
  }
  return out;
}

/**
 * Whether the parts of a run are groups cut at a fixed width (the last may be shorter), as a key written
 * in groups is: a URL's or a host name's parts are not ("github.com/xoxa-nyc/xoxa-nyc.github.io" read
 * without its dots looked like a Slack token).
 */
function evenGroups(parts: readonly string[]): boolean {
  const width = (parts[0] as string).length;
  if (parts.length < 4 || width < 2 || width > 12) return false;
  for (let i = 1; i < parts.length; i++) {
    const n = (parts[i] as string).length;
    if (i < parts.length - 1 ? n !== width : n === 0 || n > width) return false;
  }
  return true;
}

/** The index of the last of `items` (sorted by `at`, not empty) whose `at` is at or before `position`. */
function lastAtOrBefore(items: readonly { at: number }[], position: number): number {
  let lo = 0;
  let hi = items.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((items[mid] as { at: number }).at <= position) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const GROUP_SEPARATORS = ["-", ".", ":"] as const;
/** The separator between a letter or digit and another (each match one such place). */
const GROUPED: Readonly<Record<string, RegExp>> = Object.fromEntries(
  GROUP_SEPARATORS.map((c) => [c, new RegExp(`[A-Za-z0-9]\\${c}(?=[A-Za-z0-9])`, "g")]),
);

/** Printable ASCII but the space, by code unit below 128. */
const PRINTABLE = new Uint8Array(128).fill(1, 0x21, 0x7f);

/**
 * Keys written backwards ("5Ay3zX1wV…_phg" — a model told to slip a key past a filter is told to reverse
 * it, and a reader reverses it back): every run of 16+ printable ASCII characters without a space is
 * read reversed, all of them in one text, and a key of a known shape found there is reported over the
 * run it came from. Prose holds few such runs; a key's context words, reversed too, are not there, so
 * only rules that need none fire.
 */
function reversedSecrets(text: string, found: readonly number[]): Finding[] {
  const runs: { start: number; at: number; length: number }[] = [];
  let reversed = "";
  // Runs of printable characters (`found`, from probedRuns), not only base64's: keys hold dots, colons and
  // equals signs too (the base64 runs found 2,191 of 3,079 gitleaks keys written backwards, these 3,001).
  // Found by probing: a regular expression tried at every position cost 40 µs per 2 KB prompt, this 5.
  for (let i = 0; i < found.length; i += 2) {
    const [start, end] = [found[i] as number, found[i + 1] as number];
    runs.push({ start, at: reversed.length, length: end - start });
    reversed += `${[...text.slice(start, end)].reverse().join("")}\n`;
  }
  if (runs.length === 0) return [];
  const out: Finding[] = [];
  for (const f of findPlainSecrets(reversed)) {
    // A key of a known shape only: the name = value detector reads words, and reversed runs make
    // nonsense words (a badge URL's query read backwards looked like an assignment).
    if (f.type === "secret-assignment") continue;
    // The run the finding lies in (the last that starts at or before it); a finding spans one run.
    const run = runs[lastAtOrBefore(runs, f.start)] as { start: number; at: number; length: number };
    if (f.end > run.at + run.length) continue;
    const end = run.start + run.length - (f.start - run.at);
    out.push({ ...f, start: end - (f.end - f.start), end, confidence: f.confidence * 0.9 });
  }
  return out;
}

/**
 * The likeliest secret in what a base64 or hex run encodes, looking `depth` encodings deep (base64 of
 * base64, hex of base64: a second wrapping is one more command for the model told to hide a key).
 */
function encodedSecret(run: string, depth: number): Finding | undefined {
  if (run.length < 20 || run.length > MAX_ENCODED) return undefined;
  const decoded = hexText(run) ?? base64Text(run);
  if (decoded === undefined) return undefined;
  const found = findPlainSecrets(decoded).sort((a, b) => b.confidence - a.confidence)[0];
  if (found !== undefined || depth <= 1) return found;
  for (const m of base64Runs(decoded)) {
    const inner = encodedSecret(m[0], depth - 1);
    if (inner !== undefined) return inner;
  }
  return undefined;
}

/** Longest base64 run decoded to look for a secret inside (a config file of a few kilobytes). */
const MAX_ENCODED = 16_384;

function findPlainSecrets(text: string): Finding[] {
  const out: Finding[] = [];
  // One pass finds which rules' literals occur; only those rules (and the few without a literal) run.
  HINTS.mark(text);
  for (let k = 0; k < PREFIXED.length; k++) {
    const rule = PREFIXED[k] as Rule;
    if (!HINTS.allows(k)) continue;
    rule.re.lastIndex = 0;
    for (const m of text.matchAll(rule.re)) {
      const g = rule.group ?? 0;
      const span = m.indices?.[g];
      const secret = m[g];
      if (span === undefined || secret === undefined) continue;
      if (!notPlaceholder(secret) || (rule.check !== undefined && !rule.check(secret))) continue;
      const context = CONTEXT[rule.type];
      if (context !== undefined && !context(text, span[0], span[1])) continue;
      out.push({ type: rule.type, start: span[0], end: span[1], confidence: rule.confidence, kind: "secret" });
    }
  }
  if (!ASSIGNMENT_HINT.test(text)) return out;
  // Secret words first (one fast pass), then the assignment after each: scanning every position for a
  // name of up to 60 characters cost ten times more.
  SECRET_WORD.lastIndex = 0;
  for (const w of text.matchAll(SECRET_WORD)) {
    let start = w.index;
    while (start > 0 && w.index - start < 60 && NAME_CHAR.test(text[start - 1] as string)) start--;
    if (start > 0 && /[A-Za-z0-9]/.test(text[start - 1] as string)) continue;
    if (start > 0 && text[start - 1] === "/" && text[start - 2] === "<") continue; // a closing tag
    ASSIGNMENT_TAIL.lastIndex = w.index + w[0].length;
    XML_TAIL.lastIndex = w.index + w[0].length;
    const m = ASSIGNMENT_TAIL.exec(text) ?? (text[start - 1] === "<" ? XML_TAIL.exec(text) : null);
    const span = m?.indices?.[1];
    if (m === null || span === undefined) continue;
    const name = text.slice(start, w.index + w[0].length);
    const value = (m[1] ?? "").replace(/["'`]+$/, "");
    if (!assignmentValueOk(name, value)) continue;
    out.push({
      type: "secret-assignment",
      start: span[0],
      end: span[0] + value.length,
      confidence: 0.75,
      kind: "secret",
    });
  }
  return out;
}

/** The longest pattern a streaming scan must hold back to see a secret whole (a PEM private key). */
export const SECRET_LOOKBEHIND = 16_500;
