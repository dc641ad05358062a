import { createReadStream, createWriteStream, readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Command } from "commander";
import { AgentwallError } from "../../errors.js";
import { generateEd25519KeyPair, generateRsaKeyPair, type RsaBits } from "../../crypto/asymmetric.js";
import { fromBase64, fromBase64Url, fromHex } from "../../crypto/encoding.js";
import {
  decryptEnvelope,
  encodeEnvelope,
  encryptCompat,
  encryptWithKey,
  encryptWithPassword,
  type DecryptSecret,
} from "../../crypto/envelope.js";
import { FileDecryptor, FileEncryptor, decryptFile, encryptFile } from "../../crypto/file-stream.js";
import { PBKDF2_DEFAULT, SCRYPT_DEFAULT } from "../../crypto/kdf.js";
import { EXIT, writeOutput } from "../io.js";

interface CryptoOptions {
  in?: string;
  out?: string;
  passwordEnv?: string;
  keyFile?: string;
  format?: string;
  kdf?: string;
}

const FORMATS = ["json", "binary", "compat", "stream"] as const;
type Format = (typeof FORMATS)[number];
/** Envelope formats hold the whole message in memory; larger inputs need `--format stream`. */
const ENVELOPE_LIMIT = 256 * 1024 * 1024;

/** Reads a password without echo from the terminal; refuses when there is no terminal. */
async function promptPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY !== true) {
    throw new AgentwallError("ERR_USAGE", "give the password with --password-env VAR (no terminal to ask on)");
  }
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  let text = "";
  try {
    for await (const chunk of stdin) {
      for (const ch of String(chunk)) {
        if (ch === "\r" || ch === "\n") return text;
        if (ch === "\u0003") throw new AgentwallError("ERR_USAGE", "cancelled");
        if (ch === "\u007f") text = text.slice(0, -1);
        else text += ch;
      }
    }
    return text;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write("\n");
  }
}

/** A secret from an environment variable (never from the command line). */
function fromEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "")
    throw new AgentwallError("ERR_USAGE", `environment variable ${name} is empty`);
  return value;
}

/** A key from a file: 32 raw bytes, or 64 hex / 43 base64url / 44 base64 characters. */
function readKeyFile(path: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    throw new AgentwallError("ERR_IO", `cannot read the key file ${path}`);
  }
  if (bytes.length === 32) return bytes;
  const text = bytes.toString("utf8").trim();
  for (const decode of [fromHex, fromBase64Url, fromBase64]) {
    try {
      const key = decode(text);
      if (key.length === 32) return key;
    } catch {
      // try the next encoding
    }
  }
  throw new AgentwallError("ERR_USAGE", "a key file holds 32 bytes (raw, hex, base64url or base64)");
}

async function secretFrom(opts: CryptoOptions, confirm: boolean): Promise<DecryptSecret> {
  if (opts.keyFile !== undefined && opts.passwordEnv !== undefined) {
    throw new AgentwallError("ERR_USAGE", "give --key-file or --password-env, not both");
  }
  if (opts.keyFile !== undefined) return { key: readKeyFile(opts.keyFile) };
  if (opts.passwordEnv !== undefined) return { password: fromEnv(opts.passwordEnv) };
  if (opts.in === undefined) {
    throw new AgentwallError("ERR_USAGE", "with data on standard input, give --password-env VAR or --key-file F");
  }
  const password = await promptPassword("password: ");
  if (confirm && (await promptPassword("again: ")) !== password)
    throw new AgentwallError("ERR_USAGE", "the passwords differ");
  if (password === "") throw new AgentwallError("ERR_USAGE", "an empty password protects nothing");
  return { password };
}

async function readInput(path: string | undefined, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  const source = path === undefined ? process.stdin : createReadStream(path);
  try {
    for await (const chunk of source) {
      const b = chunk as Buffer;
      size += b.length;
      if (size > limit) throw new AgentwallError("ERR_USAGE", "input too large for an envelope: use --format stream");
      chunks.push(b);
    }
  } catch (error) {
    if (error instanceof AgentwallError) throw error;
    throw new AgentwallError("ERR_IO", `cannot read ${path ?? "standard input"}`);
  }
  return Buffer.concat(chunks);
}

function formatOf(text: string | undefined): Format {
  const f = (text ?? "json") as Format;
  if (!FORMATS.includes(f)) throw new AgentwallError("ERR_USAGE", `--format is one of ${FORMATS.join(", ")}`);
  return f;
}

export function registerCrypto(program: Command, run: (fn: () => Promise<number>) => Promise<void>): void {
  const io = (c: Command) =>
    c
      .option("--in <file>", "read from this file (default: standard input)")
      .option("--out <file>", "write to this file atomically (default: standard output)")
      .option("--password-env <var>", "take the password from this environment variable")
      .option("--key-file <file>", "use the 32-byte key in this file instead of a password");

  io(program.command("encrypt").description("encrypt data with a password or a key (AES-256-GCM)"))
    .option(
      "--format <format>",
      "json | binary | compat (the source guides' Python format) | stream (files of any size)",
      "json",
    )
    .option("--kdf <kdf>", "scrypt (default) | pbkdf2", "scrypt")
    .action((opts: CryptoOptions) =>
      run(async () => {
        const format = formatOf(opts.format);
        if (opts.kdf !== "scrypt" && opts.kdf !== "pbkdf2")
          throw new AgentwallError("ERR_USAGE", "--kdf is scrypt or pbkdf2");
        const kdf = opts.kdf === "pbkdf2" ? PBKDF2_DEFAULT : SCRYPT_DEFAULT;
        const secret = await secretFrom(opts, true);
        if (format === "stream") {
          if (opts.in !== undefined && opts.out !== undefined) await encryptFile(opts.in, opts.out, secret, { kdf });
          else {
            await pipeline(
              opts.in === undefined ? process.stdin : createReadStream(opts.in),
              new FileEncryptor(secret, { kdf }),
              opts.out === undefined ? process.stdout : createWriteStream(opts.out, { mode: 0o600, flags: "wx" }),
            );
          }
          return EXIT.OK;
        }
        const data = await readInput(opts.in, ENVELOPE_LIMIT);
        let out: string | Buffer;
        if (format === "compat") {
          if (!("password" in secret)) throw new AgentwallError("ERR_USAGE", "the compat format is password-based");
          out = encodeEnvelope(await encryptCompat(secret.password, data), "compat");
        } else {
          const env =
            "key" in secret
              ? encryptWithKey(secret.key, data)
              : await encryptWithPassword(secret.password, data, { kdf });
          out = encodeEnvelope(env, format);
        }
        await writeOutput(opts.out, typeof out === "string" ? out + "\n" : out);
        return EXIT.OK;
      }),
    );

  io(program.command("decrypt").description("decrypt any agentwall format or the compat format (detected)")).action(
    (opts: CryptoOptions) =>
      run(async () => {
        const secret = await secretFrom(opts, false);
        // The stream format is recognised by its magic and decrypted in constant memory.
        if (opts.in !== undefined) {
          const head = Buffer.alloc(4);
          const handle = await open(opts.in, "r").catch(() => {
            throw new AgentwallError("ERR_IO", `cannot read ${opts.in}`);
          });
          await handle.read(head, 0, 4, 0);
          await handle.close();
          if (head.toString("latin1") === "AWF1") {
            if (opts.out !== undefined) await decryptFile(opts.in, opts.out, secret);
            else await pipeline(createReadStream(opts.in), new FileDecryptor(secret), process.stdout);
            return EXIT.OK;
          }
        }
        const data = await readInput(opts.in, ENVELOPE_LIMIT + 1024 * 1024);
        if (data.subarray(0, 4).toString("latin1") === "AWF1") {
          await pipeline(Readable.from([data]), new FileDecryptor(secret), process.stdout);
          return EXIT.OK;
        }
        const text = data.subarray(0, 4).toString("latin1") === "AWE1" ? data : data.toString("utf8").trim();
        await writeOutput(opts.out, await decryptEnvelope(text, secret));
        return EXIT.OK;
      }),
  );

  program
    .command("keygen")
    .description("generate a key pair: rsa (2048/3072/4096) or ed25519, as PEM")
    .argument("<type>", "rsa | ed25519")
    .option("--bits <n>", "RSA modulus size", "3072")
    .option("--password-env <var>", "encrypt the private key with the password in this environment variable")
    .option("--out <dir>", "write public.pem and private.pem (0600) into this directory")
    .action((type: string, opts: { bits: string; passwordEnv?: string; out?: string }) =>
      run(async () => {
        const options = opts.passwordEnv === undefined ? {} : { password: fromEnv(opts.passwordEnv) };
        let pair;
        if (type === "rsa") {
          const bits = Number(opts.bits);
          if (![2048, 3072, 4096].includes(bits)) throw new AgentwallError("ERR_USAGE", "--bits is 2048, 3072 or 4096");
          pair = await generateRsaKeyPair(bits as RsaBits, options);
        } else if (type === "ed25519") pair = await generateEd25519KeyPair(options);
        else throw new AgentwallError("ERR_USAGE", "key type is rsa or ed25519");
        if (opts.out === undefined) {
          process.stdout.write(pair.publicKeyPem + pair.privateKeyPem);
          return EXIT.OK;
        }
        mkdirSync(opts.out, { recursive: true, mode: 0o700 });
        const [pub, priv] = [join(opts.out, "public.pem"), join(opts.out, "private.pem")];
        if (existsSync(pub) || existsSync(priv))
          throw new AgentwallError("ERR_USAGE", `${opts.out} already holds a key pair`);
        writeFileSync(pub, pair.publicKeyPem, { mode: 0o644, flag: "wx" });
        writeFileSync(priv, pair.privateKeyPem, { mode: 0o600, flag: "wx" });
        process.stdout.write(`wrote ${pub} and ${priv}\n`);
        return EXIT.OK;
      }),
    );
}
