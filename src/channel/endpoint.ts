import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import type { AddressInfo } from "node:net";
import tls from "node:tls";
import { AgentwallError, isAgentwallError, type ErrorCode } from "../errors.js";
import type { AuditSink } from "../audit/event.js";
import { agentIdOf, type PeerVerifier } from "./ca.js";
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, encodeFrame } from "./frame.js";
import { ReplayGuard, openEnvelope, signEnvelope, type ChannelMessage, type SignedEnvelope } from "./envelope.js";

/** An agent's certificate and key (PEM), and the CA both sides trust. */
export interface ChannelIdentity {
  readonly certificatePem: string;
  readonly privateKeyPem: string;
}

/** Decides whether `from` may send to `to` (RBAC `channel:message` on `agent:<to>`), per message. */
export type ChannelAuthorizer = (from: string, to: string, type: string) => Promise<boolean>;

export interface ChannelOptions {
  readonly identity: ChannelIdentity;
  /** The CA and the revocation check (the CA itself where the database is, a CRL elsewhere). */
  readonly verifier: PeerVerifier;
  /** Who may message whom, checked on every incoming message. Required: no authorizer, no messages. */
  readonly authorize: ChannelAuthorizer;
  readonly maxFrameBytes?: number;
  /** Accepted clock difference for message timestamps (default 30 s). */
  readonly windowMs?: number;
  /** Seen-nonce capacity (default 100,000); full means refusing, never forgetting. */
  readonly nonceCapacity?: number;
  /** A connection silent for this long is closed (default 60 s): no half-sent frame lingers. */
  readonly idleTimeoutMs?: number;
  readonly audit?: AuditSink;
}

/** A control frame (not a message): the error that refused a message or closes the connection. */
interface ControlFrame {
  readonly control: "error";
  readonly code: ErrorCode;
  readonly message: string;
  /** Nonce of the refused message, when it was readable. */
  readonly re: string;
}

type Handler = (message: ChannelMessage, connection: ChannelConnection) => void | Promise<void>;

function ownIdentity(identity: ChannelIdentity): { id: string; key: KeyObject; cert: X509Certificate } {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(identity.certificatePem);
    key = createPrivateKey(identity.privateKeyPem);
  } catch {
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "the identity is not a PEM certificate and private key");
  }
  if (!cert.checkPrivateKey(key))
    throw new AgentwallError("ERR_INVALID_ARGUMENT", "the key does not match the certificate");
  const match = /^URI:urn:agentwall:agent:([a-z0-9][a-z0-9._-]{0,62})$/.exec(cert.subjectAltName ?? "");
  if (match?.[1] === undefined) throw new AgentwallError("ERR_INVALID_ARGUMENT", "not an agent certificate");
  return { id: match[1], key, cert };
}

/**
 * One authenticated connection between two agents. Messages out are signed with our key; messages in
 * are checked (sender = the peer's certificate, recipient = us, signature, window, nonce, permission)
 * before any handler sees them. A message that fails is refused with an error frame; a framing error
 * closes the connection.
 */
export class ChannelConnection {
  readonly peer: string;
  readonly self: string;
  readonly #socket: tls.TLSSocket;
  readonly #key: KeyObject;
  readonly #peerKey: KeyObject;
  readonly #options: ChannelOptions;
  readonly #replay: ReplayGuard;
  readonly #decoder: FrameDecoder;
  readonly #max: number;
  readonly #pending = new Map<string, { resolve(m: ChannelMessage): void; reject(e: Error): void }>();
  readonly #handlers: Handler[] = [];
  readonly #refusalHandlers: Array<(error: AgentwallError, nonce: string) => void> = [];
  #queue: Promise<void> = Promise.resolve();
  #closed: AgentwallError | undefined;
  readonly closed: Promise<AgentwallError | undefined>;
  #markClosed!: (reason: AgentwallError | undefined) => void;

  constructor(
    socket: tls.TLSSocket,
    self: { id: string; key: KeyObject },
    peer: { id: string; key: KeyObject },
    options: ChannelOptions,
    replay: ReplayGuard,
  ) {
    this.#socket = socket;
    this.self = self.id;
    this.#key = self.key;
    this.peer = peer.id;
    this.#peerKey = peer.key;
    this.#options = options;
    this.#replay = replay;
    this.#max = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#decoder = new FrameDecoder(this.#max);
    this.closed = new Promise((resolve) => (this.#markClosed = resolve));
    socket.setTimeout(options.idleTimeoutMs ?? 60_000, () =>
      this.#fail(new AgentwallError("ERR_CHANNEL_CLOSED", "idle timeout")),
    );
    socket.on("data", (chunk: Buffer) => this.#onData(chunk));
    // The end and the close wait for the frames before them: an error frame read in the same turn as
    // the end (the peer's refusal, then its close) is the reason, not "closed".
    socket.on("end", () => {
      let reason: AgentwallError | undefined;
      try {
        this.#decoder.end();
      } catch (error) {
        reason = error as AgentwallError;
      }
      this.#afterFrames(() => this.#finish(reason));
      socket.end();
    });
    socket.on("error", (error: Error & { code?: string }) => {
      // In TLS 1.3 the client finishes its handshake before the server judged its certificate: a
      // refusal arrives afterwards as an alert, surfaced here with OpenSSL's reason.
      const code = error.code ?? "";
      this.#finish(
        code.startsWith("ERR_SSL")
          ? new AgentwallError("ERR_CHANNEL_TLS", `the peer refused the handshake (${code.slice(0, 80)})`)
          : new AgentwallError("ERR_CHANNEL_CLOSED", "the connection failed"),
      );
    });
    socket.on("close", () =>
      this.#afterFrames(() => this.#finish(this.#closed ?? new AgentwallError("ERR_CHANNEL_CLOSED", "closed"))),
    );
  }

  /** Called for every message that passed all checks (in arrival order). */
  onMessage(handler: Handler): void {
    this.#handlers.push(handler);
  }

  /** Sends a signed message; resolves once written. Returns its nonce. */
  async send(type: string, payload: unknown, re?: string): Promise<string> {
    if (this.#closed !== undefined || this.#socket.destroyed)
      throw this.#closed ?? new AgentwallError("ERR_CHANNEL_CLOSED", "the channel is closed");
    const envelope = signEnvelope(this.#key, { from: this.self, to: this.peer, type, payload, ...(re ? { re } : {}) });
    await this.#write(Buffer.from(JSON.stringify(envelope), "utf8"));
    return envelope.nonce;
  }

  /** Called when the peer refused a message sent with {@link send} (with the refused nonce). */
  onRefused(handler: (error: AgentwallError, nonce: string) => void): void {
    this.#refusalHandlers.push(handler);
  }

  /** Sends and waits for the peer's answer (a message whose `re` is ours), or its error frame. */
  request(type: string, payload: unknown, timeoutMs = 10_000): Promise<ChannelMessage> {
    return this.requestEnvelope(signEnvelope(this.#key, { from: this.self, to: this.peer, type, payload }), timeoutMs);
  }

  /**
   * Sends an envelope as built (tests send replayed, altered or re-addressed ones) and waits for the
   * answer or the refusal naming its nonce.
   */
  async requestEnvelope(envelope: SignedEnvelope, timeoutMs = 10_000): Promise<ChannelMessage> {
    if (this.#closed !== undefined) throw this.#closed;
    const answer = new Promise<ChannelMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(envelope.nonce);
        reject(new AgentwallError("ERR_CHANNEL_CLOSED", "no answer in time"));
      }, timeoutMs);
      this.#pending.set(envelope.nonce, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
    // The answer may fail before the write below completes (the peer's error frame): handled here, the
    // caller still sees the rejection through the returned promise.
    answer.catch(() => undefined);
    try {
      await this.#write(Buffer.from(JSON.stringify(envelope), "utf8"));
    } catch (error) {
      // The peer may have closed with a reason (an error frame) that is still being read: prefer it.
      await new Promise((resolve) => setImmediate(resolve));
      this.#pending.get(envelope.nonce)?.reject(this.#closed ?? (error as Error));
      throw this.#closed ?? error;
    }
    return answer;
  }

  /** Writes raw bytes (tests use it to send what a broken or hostile peer would). */
  writeRaw(bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.write(bytes, (e) =>
        e ? reject(new AgentwallError("ERR_CHANNEL_CLOSED", "write failed")) : resolve(),
      ),
    );
  }

  /** Writes one frame of raw payload bytes. */
  writeFrame(payload: Buffer): Promise<void> {
    return this.#write(payload);
  }

  #write(payload: Buffer): Promise<void> {
    return this.writeRaw(encodeFrame(payload, this.#max));
  }

  close(): void {
    this.#finish(undefined);
    this.#socket.end();
  }

  #onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (error) {
      this.#fail(error as AgentwallError);
      return;
    }
    for (const frame of frames) {
      // One at a time, in order: a slow handler or authorizer holds the next message back.
      this.#queue = this.#queue.then(() => this.#onFrame(frame));
    }
  }

  async #onFrame(frame: Buffer): Promise<void> {
    if (this.#closed !== undefined) return;
    const text = frame.toString("utf8");
    const control = parseControl(text);
    if (control !== undefined) {
      const error = new AgentwallError(control.code, control.message);
      // An error naming a message refuses that message; one naming none closes the connection.
      const waiting = control.re === "" ? undefined : this.#pending.get(control.re);
      if (waiting !== undefined) {
        this.#pending.delete(control.re);
        waiting.reject(error);
      } else if (control.re === "") this.#finish(error);
      else for (const handler of this.#refusalHandlers) handler(error, control.re);
      return;
    }
    let message: ChannelMessage;
    try {
      message = openEnvelope(text, { from: this.peer, to: this.self, publicKey: this.#peerKey, replay: this.#replay });
      if (!(await this.#options.authorize(message.from, message.to, message.type)))
        throw new AgentwallError("ERR_FORBIDDEN", `${message.from} may not message ${message.to}`);
    } catch (error) {
      const e = isAgentwallError(error) ? error : new AgentwallError("ERR_INTERNAL", "message check failed");
      await this.#refuse(e, nonceOf(text));
      return;
    }
    const waiting = message.re === "" ? undefined : this.#pending.get(message.re);
    if (waiting !== undefined) {
      this.#pending.delete(message.re);
      waiting.resolve(message);
      return;
    }
    for (const handler of this.#handlers) {
      try {
        await handler(message, this);
      } catch {
        await this.#refuse(new AgentwallError("ERR_INTERNAL", "the handler failed"), message.nonce);
      }
    }
  }

  async #refuse(error: AgentwallError, re: string): Promise<void> {
    await this.#options.audit?.append({
      type: "channel",
      actor: `agent:${this.peer}`,
      action: "channel.message",
      resource: `agent:${this.self}`,
      outcome: "denied",
      details: { code: error.code },
    });
    const frame: ControlFrame = { control: "error", code: error.code, message: error.message.slice(0, 300), re };
    await this.#write(Buffer.from(JSON.stringify(frame))).catch(() => undefined);
  }

  /** Tells the peer why, then closes. */
  #fail(error: AgentwallError): void {
    if (this.#closed !== undefined) return;
    const frame: ControlFrame = { control: "error", code: error.code, message: error.message.slice(0, 300), re: "" };
    this.#socket.end(encodeFrame(Buffer.from(JSON.stringify(frame)), Math.max(this.#max, 512)));
    this.#finish(error);
    this.#socket.destroySoon();
  }

  /** Runs `step` once the frames read before now are handled (whether they succeeded or not). */
  #afterFrames(step: () => void): void {
    this.#queue = this.#queue.then(step, step);
  }

  #finish(reason: AgentwallError | undefined): void {
    if (this.#closed !== undefined) return;
    this.#closed = reason ?? new AgentwallError("ERR_CHANNEL_CLOSED", "the channel is closed");
    for (const waiting of this.#pending.values()) waiting.reject(this.#closed);
    this.#pending.clear();
    this.#markClosed(reason);
  }
}

function parseControl(text: string): ControlFrame | undefined {
  if (!text.startsWith('{"control"')) return undefined;
  try {
    const v = JSON.parse(text) as Partial<ControlFrame>;
    if (v.control !== "error" || typeof v.code !== "string" || typeof v.message !== "string") return undefined;
    return { control: "error", code: v.code, message: v.message, re: typeof v.re === "string" ? v.re : "" };
  } catch {
    return undefined;
  }
}

function nonceOf(text: string): string {
  try {
    const v = JSON.parse(text) as { nonce?: unknown };
    return typeof v.nonce === "string" && /^[A-Za-z0-9_-]{16,64}$/.test(v.nonce) ? v.nonce : "";
  } catch {
    return "";
  }
}

/** The replay guard a server (shared by its connections) or a client connection uses. */
function replayGuardFor(options: ChannelOptions): ReplayGuard {
  return new ReplayGuard({
    ...(options.windowMs === undefined ? {} : { windowMs: options.windowMs }),
    ...(options.nonceCapacity === undefined ? {} : { capacity: options.nonceCapacity }),
  });
}

function tlsOptions(identity: ChannelIdentity, verifier: PeerVerifier): tls.SecureContextOptions {
  return {
    key: identity.privateKeyPem,
    cert: identity.certificatePem,
    ca: verifier.caCertificatePem,
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
  };
}

/**
 * A channel server: TLS 1.3 only, a client certificate from the CA required, the peer's agent id read
 * from it and its revocation checked on every handshake before a byte of its data is read.
 */
export class ChannelServer {
  readonly id: string;
  readonly #server: tls.Server;
  readonly #connections = new Set<ChannelConnection>();

  private constructor(id: string, server: tls.Server) {
    this.id = id;
    this.#server = server;
  }

  static async listen(
    options: ChannelOptions & { port?: number; host?: string; onMessage: Handler },
  ): Promise<ChannelServer> {
    const self = ownIdentity(options.identity);
    const ca = new X509Certificate(options.verifier.caCertificatePem);
    agentIdOf(self.cert, ca, Date.now());
    // One replay guard for the whole server: a message replayed on a new connection is still caught.
    const replay = replayGuardFor(options);
    const server = tls.createServer({
      ...tlsOptions(options.identity, options.verifier),
      requestCert: true,
      // Checked first thing in #accept (before a byte is read), so the peer learns why it was refused
      // (Node would drop the socket without a word).
      rejectUnauthorized: false,
      handshakeTimeout: 10_000,
    });
    const channel = new ChannelServer(self.id, server);
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      socket.pause();
      void channel.#accept(socket, self, options, replay);
    });
    server.on("tlsClientError", (error: Error & { code?: string }, socket) => {
      void options.audit
        ?.append({
          type: "channel",
          actor: "anonymous",
          action: "channel.connect",
          resource: `agent:${self.id}`,
          outcome: "denied",
          ip: socket.remoteAddress,
          details: { code: "ERR_CHANNEL_TLS", reason: (error.code ?? "handshake failed").slice(0, 100) },
        })
        .catch(() => undefined);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    return channel;
  }

  async #accept(
    socket: tls.TLSSocket,
    self: { id: string; key: KeyObject },
    options: ChannelOptions & { onMessage: Handler },
    replay: ReplayGuard,
  ): Promise<void> {
    let peer: string;
    const cert = socket.getPeerX509Certificate();
    try {
      if (cert === undefined) throw new AgentwallError("ERR_CHANNEL_TLS", "no client certificate");
      if (!socket.authorized)
        throw new AgentwallError(
          "ERR_CHANNEL_TLS",
          `client certificate refused (${String(socket.authorizationError ?? "unverified").slice(0, 80)})`,
        );
      peer = await options.verifier.verifyPeer(cert);
    } catch (error) {
      const e = isAgentwallError(error) ? error : new AgentwallError("ERR_CHANNEL_TLS", "peer check failed");
      await options.audit
        ?.append({
          type: "channel",
          actor: "anonymous",
          action: "channel.connect",
          resource: `agent:${self.id}`,
          outcome: "denied",
          ip: socket.remoteAddress,
          details: { code: e.code, serial: cert?.serialNumber },
        })
        .catch(() => undefined);
      const frame: ControlFrame = { control: "error", code: e.code, message: e.message.slice(0, 300), re: "" };
      socket.end(encodeFrame(Buffer.from(JSON.stringify(frame))));
      socket.destroySoon();
      return;
    }
    await options.audit?.append({
      type: "channel",
      actor: `agent:${peer}`,
      action: "channel.connect",
      resource: `agent:${self.id}`,
      outcome: "allowed",
      ip: socket.remoteAddress,
      details: { serial: cert.serialNumber },
    });
    const connection = new ChannelConnection(socket, self, { id: peer, key: cert.publicKey }, options, replay);
    connection.onMessage(options.onMessage);
    this.#connections.add(connection);
    void connection.closed.then(async (reason) => {
      this.#connections.delete(connection);
      await options.audit
        ?.append({
          type: "channel",
          actor: `agent:${peer}`,
          action: "channel.close",
          resource: `agent:${self.id}`,
          outcome: reason === undefined ? "success" : "error",
          ip: socket.remoteAddress,
          details: reason === undefined ? {} : { code: reason.code },
        })
        .catch(() => undefined);
    });
    socket.resume();
  }

  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  /** Stops accepting and closes every connection. */
  async close(): Promise<void> {
    for (const c of this.#connections) c.close();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * Connects to an agent's channel server over TLS 1.3 with our certificate; the server must present a
 * live certificate of `expectedPeer` from the same CA.
 */
export async function connectChannel(
  options: ChannelOptions & { host: string; port: number; expectedPeer: string; connectTimeoutMs?: number },
): Promise<ChannelConnection> {
  const self = ownIdentity(options.identity);
  const socket = tls.connect({
    ...tlsOptions(options.identity, options.verifier),
    host: options.host,
    port: options.port,
    rejectUnauthorized: true,
    // The server is named by its agent id in the certificate, not by a DNS name: checked below.
    checkServerIdentity: () => undefined,
  });
  const cert = await new Promise<X509Certificate>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new AgentwallError("ERR_CHANNEL_TLS", "the handshake timed out"));
    }, options.connectTimeoutMs ?? 10_000);
    socket.once("secureConnect", () => {
      clearTimeout(timer);
      const peer = socket.getPeerX509Certificate();
      if (peer === undefined) reject(new AgentwallError("ERR_CHANNEL_TLS", "no server certificate"));
      else resolve(peer);
    });
    socket.once("error", (error: Error & { code?: string }) => {
      clearTimeout(timer);
      reject(new AgentwallError("ERR_CHANNEL_TLS", `handshake failed (${(error.code ?? "error").slice(0, 60)})`));
    });
  });
  socket.pause();
  let peer: string;
  try {
    peer = await options.verifier.verifyPeer(cert);
    if (peer !== options.expectedPeer)
      throw new AgentwallError("ERR_CHANNEL_TLS", `the server is ${peer}, not ${options.expectedPeer}`);
  } catch (error) {
    socket.destroy();
    throw error;
  }
  const replay = replayGuardFor(options);
  const connection = new ChannelConnection(socket, self, { id: peer, key: cert.publicKey }, options, replay);
  socket.resume();
  return connection;
}

/** An authorizer over RBAC: `channel:message` on `agent:<recipient>` for subject `agent:<sender>`. */
export function rbacAuthorizer(rbac: {
  check(subject: string, permission: string, resource?: string): Promise<{ allowed: boolean }>;
}): ChannelAuthorizer {
  return async (from, to) => (await rbac.check(`agent:${from}`, "channel:message", `agent:${to}`)).allowed;
}
