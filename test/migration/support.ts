/** Running bundled guest images with and without a live migration, in-process. */
import { readFileSync } from "node:fs";
import { createServer, createConnection, type Server, type Socket } from "node:net";
import { Machine, type RunResult } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { imagePath } from "../support/guest.js";
import { runMigrationSource, receiveMigration, type MigrateOptions, type MigrationSummary, type DestinationSummary } from "../../src/migration/index.js";
import { ramRanges } from "../../src/migration/dirty.js";
import { VCPU_STATE_FIELDS } from "../../src/migration/state.js";
import type { MmuKnobs, MmuMode } from "../../src/mmu/knobs.js";

export const MiB = 1024 * 1024;

export interface GuestSpec { image: string; ramSize: number; append?: string; mmu?: MmuMode; knobs?: Partial<MmuKnobs>; }

export function bootMachine(g: GuestSpec, out: number[]): Machine {
  return new Machine({
    module: loadCoreModule(), ramSize: g.ramSize, kernel: new Uint8Array(readFileSync(imagePath(g.image))),
    kernelPath: `guest-images/${g.image}.elf`, append: g.append, mmu: g.mmu, knobs: g.knobs,
    onSerial: (b) => out.push(b), maxInstructions: 2_000_000_000n,
  });
}

export interface Reference { serial: string; status: number; instructions: bigint; result: RunResult; }
const refs = new Map<string, Reference>();

/** The guest run never migrated (cached per spec). */
export function reference(g: GuestSpec): Reference {
  const key = JSON.stringify(g);
  let r = refs.get(key);
  if (!r) {
    const out: number[] = [];
    const result = bootMachine(g, out).run();
    r = { serial: Buffer.from(out).toString("latin1"), status: result.status, instructions: result.instructions, result };
    refs.set(key, r);
  }
  return r;
}

/** A small seeded PRNG (mulberry32) for the migration points. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface MigratedRun {
  /** Source output then destination output. */
  serial: string;
  sourceSerial: string;
  status: number;
  source: MigrationSummary;
  dest?: DestinationSummary;
  /** Guest RAM (every memslot) and the migrated vCPU fields equal on both sides at the switch-over. */
  ramEqual?: boolean;
  vcpuEqual?: boolean;
  result: RunResult;
}

/** Bytes of every RAM memslot of `m`, concatenated. */
function ramBytes(m: Machine): Uint8Array[] {
  return ramRanges(m.vm).map((r) => new Uint8Array(m.vm.memory.buffer, r.host, r.npages * 4096));
}

function sameRam(a: Machine, b: Machine): boolean {
  const x = ramBytes(a), y = ramBytes(b);
  return x.length === y.length && x.every((v, i) => Buffer.compare(Buffer.from(v.buffer, v.byteOffset, v.length), Buffer.from(y[i]!.buffer, y[i]!.byteOffset, y[i]!.length)) === 0);
}

function sameVcpu(a: Machine, b: Machine): boolean {
  const ca = a.vm.vcpus[0]!, cb = b.vm.vcpus[0]!;
  const k = ca.vm.core.k;
  return VCPU_STATE_FIELDS.every(([name, size]) => {
    const off = k[name]!;
    return Buffer.compare(Buffer.from(ca.vm.memory.buffer, ca.base + off, size), Buffer.from(cb.vm.memory.buffer, cb.base + off, size)) === 0;
  });
}

/**
 * Run `g` migrated over `transport` ("file" or "tcp"): the source runs the guest,
 * migrates after `after` instructions, the destination finishes it.
 * `tamper` sits between source and destination (tcp: a proxy; file: applied to the file).
 */
export async function migratedRun(
  g: GuestSpec, transport: "file" | "tcp", file: string,
  opts: Omit<MigrateOptions, "uri"> & { tamper?: (stream: Uint8Array) => Uint8Array; tcpTamper?: TcpTamper },
): Promise<MigratedRun> {
  const srcOut: number[] = [], dstOut: number[] = [];
  const source = bootMachine(g, srcOut);
  const recv = { module: loadCoreModule(), onSerial: (b: number) => dstOut.push(b), maxInstructions: 2_000_000_000n };
  let uri: string;
  let destP: Promise<Awaited<ReturnType<typeof receiveMigration>>> | undefined;
  let proxy: Server | undefined;
  if (transport === "tcp") {
    let port!: (p: number) => void;
    const listening = new Promise<number>((r) => { port = r; });
    destP = receiveMigration("tcp:127.0.0.1:0", { ...recv, onListening: port });
    destP.catch(() => undefined); // examined below
    let p = await listening;
    if (opts.tcpTamper) { const px = await tamperProxy(p, opts.tcpTamper); proxy = px.server; p = px.port; }
    uri = `tcp:127.0.0.1:${p}`;
  } else uri = `file:${file}`;
  const o = await runMigrationSource(source, { ...opts, uri });
  proxy?.close();
  const sourceSerial = Buffer.from(srcOut).toString("latin1");
  if (o.summary.status !== "completed") {
    if (destP) await destP.catch(() => undefined);
    return { serial: sourceSerial, sourceSerial, status: o.result!.status, source: o.summary, result: o.result! };
  }
  if (transport === "file" && opts.tamper) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(file, opts.tamper(new Uint8Array(readFileSync(file))));
  }
  const d = await (destP ?? receiveMigration(uri, recv));
  const ramEqual = sameRam(source, d.machine);
  const vcpuEqual = sameVcpu(source, d.machine);
  const result = d.machine.run();
  return {
    serial: sourceSerial + Buffer.from(dstOut).toString("latin1"), sourceSerial, status: result.status,
    source: o.summary, dest: d.summary, ramEqual, vcpuEqual, result,
  };
}

/** Rewrites the source-to-destination bytes: gets each chunk and its stream offset; returns what to forward and whether to end the stream after it. */
export type TcpTamper = (chunk: Uint8Array, offset: number) => { data: Uint8Array; end?: boolean };

/** A loopback proxy to `port` that passes the source's stream through `tamper` and the answers back untouched. */
export function tamperProxy(port: number, tamper: TcpTamper): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer((src: Socket) => {
      server.close();
      const dst = createConnection({ host: "127.0.0.1", port });
      let offset = 0;
      let cut = false;
      src.on("data", (c: Buffer) => {
        if (cut) return;
        const out = tamper(new Uint8Array(c), offset);
        offset += c.length;
        dst.write(out.data);
        if (out.end) { cut = true; dst.end(); }
      });
      src.on("end", () => { if (!cut) dst.end(); });
      src.on("error", () => dst.destroy());
      dst.on("data", (c: Buffer) => src.write(c));
      dst.on("end", () => src.end());
      dst.on("error", () => src.destroy());
    });
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve({ server, port: typeof a === "object" && a ? a.port : 0 });
    });
  });
}
