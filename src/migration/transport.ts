/**
 * Migration transports, as QEMU spells them: `tcp:HOST:PORT` and `file:PATH`.
 *
 * tcp: the destination listens (`--incoming tcp:127.0.0.1:4444`, port 0 picks a
 * free one) and accepts one connection; the source connects and streams. The
 * destination answers on the same connection with one line, after the END
 * section is validated and the state restored ("OK"), or as soon as it refuses
 * ("ERR <why>"); the source resumes its guest unless it reads OK.
 * file: the source writes PATH (through PATH.part, renamed when complete); the
 * destination reads it. No answer travels back: the source stops once the file is
 * complete, as QEMU's source stays paused after a migration to a file.
 */
import { createConnection, createServer, type Socket, type Server } from "node:net";
import { openSync, writeSync, closeSync, renameSync, createReadStream, existsSync, unlinkSync, fsyncSync } from "node:fs";
import { MigrationError } from "../errors.js";

export type MigrationUri = { kind: "tcp"; host: string; port: number; text: string } | { kind: "file"; path: string; text: string };

export function parseMigrationUri(text: string): MigrationUri {
  const tcp = /^tcp:(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d+)$/.exec(text);
  if (tcp) {
    const port = Number(tcp[2]);
    if (port > 65535) throw new MigrationError(text, `port ${port} is out of range`);
    return { kind: "tcp", host: tcp[1]!.replace(/^\[|\]$/g, ""), port, text };
  }
  const file = /^file:(.+)$/.exec(text);
  if (file) return { kind: "file", path: file[1]!, text };
  throw new MigrationError(text, "not a migration address: use tcp:HOST:PORT or file:PATH");
}

const ACK_OK = "OK";

/** The source's end. */
export interface Outgoing {
  readonly uri: string;
  /** Resolves once the chunk is handed to the OS (backpressure); rejects with a MigrationError if the link broke. */
  write(chunk: Uint8Array): Promise<void>;
  /** After END: the destination's verdict (tcp) or a complete file. Rejects with a MigrationError on refusal or loss. */
  finish(timeoutMs: number): Promise<void>;
  /** Give up (no verdict awaited); a file is removed. */
  abort(): void;
}

export async function openOutgoing(text: string): Promise<Outgoing> {
  const uri = parseMigrationUri(text);
  return uri.kind === "tcp" ? connectTcp(uri.text, uri.host, uri.port) : openFileOut(uri.text, uri.path);
}

function connectTcp(subject: string, host: string, port: number): Promise<Outgoing> {
  return new Promise((resolve, reject) => {
    const sock: Socket = createConnection({ host, port });
    let connected = false;
    let reply = "";
    let closed = false;
    let failure: string | undefined;
    const waiters: (() => void)[] = [];
    const wake = () => { for (const w of waiters.splice(0)) w(); };
    sock.on("data", (d: Buffer) => { reply += d.toString("utf8"); wake(); });
    sock.on("close", () => { closed = true; wake(); });
    sock.on("error", (e) => { failure ??= e.message; closed = true; wake(); });
    sock.once("connect", () => {
      connected = true;
      sock.setNoDelay(true);
      const refusal = (): MigrationError | undefined => {
        const line = reply.split("\n")[0]!;
        if (reply.includes("\n") && line !== ACK_OK) return new MigrationError(subject, `the destination refused the migration: ${line.replace(/^ERR /, "")}`);
        return undefined;
      };
      const lost = (): MigrationError => refusal() ?? new MigrationError(subject, `the connection to the destination was lost${failure ? ` (${failure})` : ""}`);
      resolve({
        uri: subject,
        write(chunk) {
          if (closed || refusal()) return Promise.reject(lost());
          return new Promise((res, rej) => { sock.write(chunk, (err) => (err ? rej(lost()) : res())); });
        },
        async finish(timeoutMs) {
          const deadline = Date.now() + timeoutMs;
          while (!reply.includes("\n") && !closed) {
            const left = deadline - Date.now();
            if (left <= 0) { sock.destroy(); throw new MigrationError(subject, `no answer from the destination within ${timeoutMs} ms`); }
            await new Promise<void>((r) => { const t = setTimeout(r, left); waiters.push(() => { clearTimeout(t); r(); }); });
          }
          const r = refusal();
          if (r) { sock.destroy(); throw r; }
          if (!reply.startsWith(ACK_OK + "\n")) { sock.destroy(); throw lost(); }
          sock.end();
        },
        abort() { sock.destroy(); },
      });
    });
    sock.once("error", (e) => { if (!connected) reject(new MigrationError(subject, `cannot connect: ${e.message}`)); });
  });
}

function openFileOut(subject: string, path: string): Promise<Outgoing> {
  const part = `${path}.part`;
  let fd: number;
  try { fd = openSync(part, "w"); } catch (e) { return Promise.reject(new MigrationError(subject, `cannot write: ${(e as Error).message}`)); }
  let open = true;
  const close = () => { if (open) { open = false; closeSync(fd); } };
  return Promise.resolve({
    uri: subject,
    write(chunk) {
      try {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        return Promise.resolve();
      } catch (e) { return Promise.reject(new MigrationError(subject, `write failed: ${(e as Error).message}`)); }
    },
    finish() {
      try { fsyncSync(fd); close(); renameSync(part, path); } catch (e) { return Promise.reject(new MigrationError(subject, `cannot complete the file: ${(e as Error).message}`)); }
      return Promise.resolve();
    },
    abort() { close(); if (existsSync(part)) unlinkSync(part); },
  });
}

/** The destination's end. */
export interface Incoming {
  readonly uri: string;
  /** The stream's bytes as they arrive. Leaving the loop early keeps the connection (for reply()). */
  chunks(): AsyncIterable<Uint8Array>;
  /** file: read on after END (trailing bytes are refused); tcp: the source waits for the answer after END. */
  readonly readsToEof: boolean;
  /** Tell the source (tcp only): null = accepted, else why not. */
  reply(error: string | null): Promise<void>;
  close(): void;
}

export interface IncomingOptions {
  /** tcp: called once listening, with the actual port (useful with port 0). */
  onListening?: (port: number) => void;
}

export async function openIncoming(text: string, opts: IncomingOptions = {}): Promise<Incoming> {
  const uri = parseMigrationUri(text);
  if (uri.kind === "file") {
    if (!existsSync(uri.path)) throw new MigrationError(text, "no such file");
    const stream = createReadStream(uri.path, { highWaterMark: 1 << 20 });
    return {
      uri: text,
      readsToEof: true,
      async *chunks() {
        try { for await (const c of stream) yield c as Buffer; } catch (e) { throw new MigrationError(text, `read failed: ${(e as Error).message}`); }
      },
      reply: () => Promise.resolve(),
      close: () => stream.destroy(),
    };
  }
  const sock = await acceptOne(text, uri.host, uri.port, opts.onListening);
  let refused = false;
  return {
    uri: text,
    readsToEof: false,
    chunks: () => socketChunks(text, sock),
    reply(error) {
      if (sock.destroyed || !sock.writable) return Promise.resolve();
      const line = (error === null ? ACK_OK : `ERR ${error.replace(/\n/g, " ")}`) + "\n";
      if (error !== null) {
        // the source may still be sending: read and drop the rest, so that closing does not
        // reset the connection before it has read why (it stops and hangs up when it does)
        refused = true;
        sock.on("data", () => undefined);
        sock.resume();
        setTimeout(() => sock.destroy(), 10_000).unref();
      }
      return new Promise((res) => sock.end(line, () => res()));
    },
    close: () => { if (!refused) sock.destroy(); },
  };
}

/** A socket's data as an async iterable that, unlike the stream's own, does not destroy the socket when the loop stops early. */
async function* socketChunks(subject: string, sock: Socket): AsyncGenerator<Uint8Array> {
  const queue: Buffer[] = [];
  let done = false;
  let error: Error | undefined;
  let wake: (() => void) | undefined;
  const poke = () => { const w = wake; wake = undefined; w?.(); };
  sock.on("data", (d: Buffer) => { queue.push(d); if (queue.length > 16) sock.pause(); poke(); });
  sock.on("end", () => { done = true; poke(); });
  sock.on("close", () => { done = true; poke(); });
  sock.on("error", (e) => { error = e; done = true; poke(); });
  for (;;) {
    if (queue.length > 0) {
      const c = queue.shift()!;
      if (queue.length <= 4 && sock.isPaused()) sock.resume();
      yield c;
      continue;
    }
    if (error) throw new MigrationError(subject, `the connection from the source failed: ${error.message}`);
    if (done) return;
    await new Promise<void>((r) => { wake = r; });
  }
}

function acceptOne(subject: string, host: string, port: number, onListening?: (port: number) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // half-open: a source that ends its stream early still gets to read why it was refused
    const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
      server.close(); // one migration per destination
      sock.on("error", () => { /* reported through the chunk iterator */ });
      resolve(sock);
    });
    server.once("error", (e) => reject(new MigrationError(subject, `cannot listen: ${e.message}`)));
    server.listen(port, host, () => {
      const addr = server.address();
      onListening?.(typeof addr === "object" && addr ? addr.port : port);
    });
  });
}
