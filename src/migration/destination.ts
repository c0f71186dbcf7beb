/**
 * The destination side: receive a stream, build a VM of the size it names,
 * write RAM as it arrives, and, only once END has come and everything checks
 * out (section order, every vCPU field, every device, the RAM digest), restore
 * the vCPU and devices and hand back a Machine ready to run() on. Anything
 * wrong is a MigrationError (and, over tcp, an "ERR" answer to the source, which
 * then keeps its guest).
 */
import { Machine, type MachineOptions } from "../machine.js";
import { MigrationError } from "../errors.js";
import { openIncoming } from "./transport.js";
import {
  StreamParser, SectionType, decodeJson, decodeRam, decodeRound, RAM_KIND_PAGES, type Section,
} from "./stream.js";
import { decodeVcpu, restoreVcpu, restoreDevices, type VcpuState } from "./state.js";
import { ramRanges, type RamRange } from "./dirty.js";
import { PageHasher, PAGE_SIZE, PAGE_SHIFT, ramDigest, livePageHashes } from "./pagehash.js";
import { MMU_MODES, parseKnobs, KnobError, type MmuMode, type MmuKnobs } from "../mmu/knobs.js";

export interface ReceiveOptions extends Omit<MachineOptions, "ramSize" | "kernel" | "kernelPath" | "append" | "modules" | "mmu" | "knobs"> {
  /** tcp: called once listening, with the port (port 0 in the address picks a free one). */
  onListening?: (port: number) => void;
  /** Check the RAM digest in END before resuming (default true). */
  verifyRam?: boolean;
}

export interface DestinationSummary {
  role: "destination";
  uri: string;
  status: "completed";
  rounds: number;
  pagesReceived: number;
  zeroPages: number;
  bytesReceived: number;
  /** First byte to END. */
  receiveMs: number;
  /** END to ready: restore and RAM check. */
  restoreMs: number;
  ramDigest?: string;
  ramSize: number;
  mmu: { mode: string; knobs: Record<string, unknown> };
  instructions: number;
}

export interface Received { machine: Machine; summary: DestinationSummary; }

/** Receive a migration on `uri` (tcp:HOST:PORT or file:PATH) and return the restored, not yet running, machine. */
export async function receiveMigration(uri: string, opts: ReceiveOptions): Promise<Received> {
  const inc = await openIncoming(uri, { onListening: opts.onListening });
  const rx = new Receiver(uri, opts);
  let t0 = 0;
  try {
    for await (const chunk of inc.chunks()) {
      if (t0 === 0) t0 = performance.now();
      rx.bytes += chunk.length;
      for (const s of rx.parser.push(chunk)) rx.handle(s);
      if (rx.ended && !inc.readsToEof) break;
    }
    rx.parser.finish();
    const t1 = performance.now();
    const machine = rx.complete();
    const summary = rx.summary(t1 - (t0 || t1), performance.now() - t1);
    await inc.reply(null);
    return { machine, summary };
  } catch (e) {
    const msg = e instanceof MigrationError ? e.what : (e as Error).message;
    await inc.reply(msg).catch(() => undefined);
    inc.close();
    throw e;
  }
}

const PHASE_HEADER = 0, PHASE_MMU = 1, PHASE_RAM = 2, PHASE_STATE = 3, PHASE_DONE = 4;

class Receiver {
  readonly parser: StreamParser;
  bytes = 0;
  ended = false;
  private phase = PHASE_HEADER;
  private header: { ramSize: number; vcpus: number; memslots: { slot: number; guestPhysAddr: number; size: number; flags: number }[] } | undefined;
  private mmu: { mode: MmuMode; knobs: MmuKnobs } | undefined;
  private machine: Machine | undefined;
  private ranges: RamRange[] = [];
  private mem: Uint8Array | undefined;
  /** Pages that have received data (the others are still the fresh VM's zeros). */
  private written = new Uint8Array(0);
  private vcpus = new Map<number, VcpuState>();
  private devices: Record<string, unknown> | undefined;
  private end: Record<string, unknown> | undefined;
  private rounds = 0;
  private pages = 0;
  private zero = 0;
  private digest: string | undefined;

  constructor(readonly uri: string, readonly opts: ReceiveOptions) {
    this.parser = new StreamParser(uri);
  }

  private fail(what: string): never { throw new MigrationError(this.uri, what); }

  handle(s: Section): void {
    if (s.type === SectionType.ABORT) {
      const reason = decodeJson(this.uri, s).reason;
      this.fail(`the source cancelled the migration: ${typeof reason === "string" ? reason : "no reason given"}`);
    }
    const expect = (ok: boolean, what: string) => { if (!ok) this.fail(`${s.name} section at offset ${s.offset}: ${what}`); };
    switch (s.type) {
      case SectionType.HEADER: {
        expect(this.phase === PHASE_HEADER, "the header must come first, once");
        const h = decodeJson(this.uri, s);
        const int = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
        expect(int(h.ramSize) && (h.ramSize as number) % PAGE_SIZE === 0 && (h.ramSize as number) >= 2 << 20, `bad ramSize ${JSON.stringify(h.ramSize)}`);
        expect(h.pageSize === PAGE_SIZE, `page size ${JSON.stringify(h.pageSize)}, this shadow86 migrates ${PAGE_SIZE}-byte pages`);
        expect(h.vcpus === 1, `${JSON.stringify(h.vcpus)} vCPUs: this shadow86 restores exactly one`);
        expect(Array.isArray(h.memslots) && (h.memslots as unknown[]).every((m) => {
          const x = m as Record<string, unknown>;
          return typeof m === "object" && m !== null && int(x.slot) && int(x.guestPhysAddr) && int(x.size) && int(x.flags);
        }), "malformed memslot list");
        this.header = h as unknown as Receiver["header"];
        this.phase = PHASE_MMU;
        return;
      }
      case SectionType.MMU: {
        expect(this.phase === PHASE_MMU, "the MMU section must follow the header");
        const m = decodeJson(this.uri, s);
        expect(typeof m.mode === "string" && (MMU_MODES as readonly string[]).includes(m.mode), `unknown MMU mode ${JSON.stringify(m.mode)}`);
        expect(typeof m.knobs === "object" && m.knobs !== null && !Array.isArray(m.knobs), "no knobs");
        let knobs: MmuKnobs;
        try {
          knobs = parseKnobs(Object.entries(m.knobs as Record<string, unknown>).map(([k, v]) => `${k}=${typeof v === "boolean" ? (v ? 1 : 0) : String(v)}`));
        } catch (e) {
          if (e instanceof KnobError) this.fail(`MMU section: ${e.message}`);
          throw e;
        }
        this.mmu = { mode: m.mode as MmuMode, knobs };
        this.build();
        this.phase = PHASE_RAM;
        return;
      }
      case SectionType.RAM: {
        expect(this.phase === PHASE_RAM, "RAM after the vCPU state, or before the header");
        const mem = this.mem!;
        for (const r of decodeRam(this.uri, s)) {
          const range = this.ranges.find((x) => r.gfn >= x.baseGfn && r.gfn + r.count <= x.baseGfn + x.npages);
          if (!range) this.fail(`RAM section at offset ${s.offset}: gfns 0x${r.gfn.toString(16)}+${r.count} are not guest RAM`);
          const at = range.host + (r.gfn - range.baseGfn) * PAGE_SIZE;
          const len = r.count * PAGE_SIZE;
          if (r.kind === RAM_KIND_PAGES) {
            mem.set(s.payload.subarray(r.data, r.data + len), at);
            this.written.fill(1, r.gfn, r.gfn + r.count);
            this.pages += r.count;
          } else {
            // a fresh VM's RAM is zero: only pages that got data earlier in the stream need clearing
            for (let i = 0; i < r.count; i++) {
              if (this.written[r.gfn + i]) { mem.fill(0, at + i * PAGE_SIZE, at + (i + 1) * PAGE_SIZE); this.written[r.gfn + i] = 0; }
            }
            this.zero += r.count;
          }
        }
        return;
      }
      case SectionType.ROUND: {
        expect(this.phase === PHASE_RAM, "a round marker outside pre-copy");
        const n = decodeRound(this.uri, s);
        expect(n === this.rounds, `round ${n} after ${this.rounds} rounds`);
        this.rounds = n + 1;
        return;
      }
      case SectionType.VCPU: {
        expect(this.phase === PHASE_RAM || this.phase === PHASE_STATE, "vCPU state before the header");
        this.phase = PHASE_STATE;
        const st = decodeVcpu(this.uri, s, this.machine!.vm.core.k);
        expect(st.id < this.machine!.vm.vcpus.length && !this.vcpus.has(st.id), `vCPU ${st.id} is not expected here`);
        this.vcpus.set(st.id, st);
        return;
      }
      case SectionType.DEVICES:
        expect(this.phase === PHASE_STATE && this.devices === undefined, "device state before the vCPU state, or twice");
        this.devices = decodeJson(this.uri, s);
        return;
      case SectionType.END: {
        expect(this.phase === PHASE_STATE, "the stream ends before the vCPU state");
        expect(this.vcpus.size === this.machine!.vm.vcpus.length, `${this.vcpus.size} of ${this.machine!.vm.vcpus.length} vCPUs sent`);
        expect(this.devices !== undefined, "no device state");
        this.end = decodeJson(this.uri, s);
        // a dropped round marker leaves the others consecutive: END's count catches it
        expect(this.end.rounds === this.rounds, `END says ${JSON.stringify(this.end.rounds)} rounds, the stream carried ${this.rounds}`);
        const d = this.end.ramDigest;
        expect(d === undefined || (typeof d === "string" && /^[0-9a-f]{16}$/.test(d)), `bad ramDigest ${JSON.stringify(d)}`);
        this.phase = PHASE_DONE;
        this.ended = true;
        return;
      }
    }
  }

  private build(): void {
    const h = this.header!;
    this.machine = new Machine({ ...this.opts, ramSize: h.ramSize, mmu: this.mmu!.mode, knobs: this.mmu!.knobs });
    const mine = [...this.machine.vm.memslots.values()].map((s) => `${s.slot}:${s.guestPhysAddr}+${s.size}/${s.flags}`).sort().join(" ");
    const theirs = h.memslots.map((s) => `${s.slot}:${s.guestPhysAddr}+${s.size}/${s.flags}`).sort().join(" ");
    if (mine !== theirs) this.fail(`the source's memslots (${theirs}) differ from this machine's (${mine})`);
    this.ranges = ramRanges(this.machine.vm);
    this.mem = new Uint8Array(this.machine.vm.memory.buffer);
    this.written = new Uint8Array(h.ramSize >>> PAGE_SHIFT);
  }

  /** Everything arrived: check the RAM, restore the vCPU and the devices. */
  complete(): Machine {
    const m = this.machine!;
    const digest = this.end!.ramDigest as string | undefined;
    if (this.opts.verifyRam !== false) {
      if (digest === undefined) this.fail("END carries no RAM digest to check");
      // pages that never got data are the fresh VM's zeros (hash 0:0): hash only the others
      const live = livePageHashes(new PageHasher(m.vm.memory));
      const written = this.written;
      let zero = false;
      this.digest = ramDigest({ hash: (gfn, host) => { zero = !written[gfn]; return zero ? 0 : live.hash(gfn, host); }, get hi() { return zero ? 0 : live.hi; } }, this.ranges);
      if (this.digest !== digest) this.fail(`RAM digest mismatch after the transfer: the source had ${digest}, this side has ${this.digest}`);
    }
    restoreDevices(this.uri, m, this.devices!);
    for (const [id, st] of this.vcpus) restoreVcpu(m.vm.vcpus[id]!, st);
    return m;
  }

  summary(receiveMs: number, restoreMs: number): DestinationSummary {
    const m = this.machine!;
    return {
      role: "destination", uri: this.uri, status: "completed", rounds: this.rounds, pagesReceived: this.pages, zeroPages: this.zero,
      bytesReceived: this.bytes, receiveMs, restoreMs, ramDigest: this.digest, ramSize: m.vm.size,
      mmu: { mode: this.mmu!.mode, knobs: { ...this.mmu!.knobs } }, instructions: Number(m.vm.vcpus[0]!.instructions),
    };
  }
}
