/**
 * Trace export: events the core writes into each vCPU's ring (assembly/trace.ts)
 * plus the exits the host sees, written as Chrome trace-event JSON that
 * Perfetto and chrome://tracing open. One track (tid) per vCPU. Time is the
 * guest's instruction count (1 us on the timeline = 1000 instructions), which
 * keeps traces deterministic.
 */
import type { Vcpu } from "../vcpu.js";

export interface TraceEvent { name: string; ph: "i" | "X" | "C" | "M"; ts: number; pid: number; tid: number; s?: "t"; dur?: number; args?: Record<string, unknown>; }

const KINDS: Record<number, string> = {};

/** Events per vCPU ring (a power of two); must match the ring space the VM reserves. */
export const TRACE_RING_ENTRIES = 16384;

export class TraceRecorder {
  readonly events: TraceEvent[] = [];
  dropped = 0;
  truncated = false;
  private lastHead = new Map<number, number>();

  constructor(private readonly limit = 1_000_000) {}

  /** Turn the core's ring on for this vCPU (ring at `ringBase`, TRACE_RING_ENTRIES entries). */
  attach(cpu: Vcpu, ringBase: number): void {
    const k = cpu.vm.core.k;
    if (Object.keys(KINDS).length === 0) {
      for (const [name, v] of Object.entries(k)) if (name.startsWith("TRACE_") && name !== "TRACE_EVENT_SIZE") KINDS[v] = name.slice(6).toLowerCase();
    }
    cpu.u32(k.VCPU_TRACE_RING, ringBase);
    cpu.u32(k.VCPU_TRACE_MASK, TRACE_RING_ENTRIES - 1);
    cpu.u32(k.VCPU_TRACE_HEAD, 0);
    cpu.u32(k.VCPU_TRACE_ENABLED, 1);
    this.lastHead.set(cpu.id, 0);
  }

  private push(e: TraceEvent): void {
    if (this.events.length >= this.limit) { this.truncated = true; return; }
    this.events.push(e);
  }

  /** Copy the events the core wrote since the last drain. */
  drain(cpu: Vcpu): void {
    const k = cpu.vm.core.k;
    const head = cpu.u32(k.VCPU_TRACE_HEAD);
    let last = this.lastHead.get(cpu.id) ?? 0;
    const pending = (head - last) >>> 0;
    if (pending > TRACE_RING_ENTRIES) { this.dropped += pending - TRACE_RING_ENTRIES; last = (head - TRACE_RING_ENTRIES) >>> 0; }
    const ring = cpu.u32(k.VCPU_TRACE_RING);
    const dv = new DataView(cpu.vm.memory.buffer);
    for (let i = last; i !== head; i = (i + 1) >>> 0) {
      const a = ring + (i & (TRACE_RING_ENTRIES - 1)) * 32;
      const icount = Number(dv.getBigUint64(a, true));
      const kind = dv.getUint32(a + 8, true);
      const x = dv.getUint32(a + 12, true);
      const b = dv.getBigUint64(a + 16, true);
      const c = dv.getBigUint64(a + 24, true);
      this.push({ name: KINDS[kind] ?? `event${kind}`, ph: "i", s: "t", ts: icount / 1000, pid: 1, tid: cpu.id, args: { a: x, b: "0x" + b.toString(16), c: "0x" + c.toString(16) } });
    }
    this.lastHead.set(cpu.id, head);
  }

  /** An exit to the host (seen by TypeScript, not the ring). */
  exit(cpu: Vcpu, reason: string, extra: Record<string, unknown> = {}): void {
    this.push({ name: `exit ${reason}`, ph: "i", s: "t", ts: Number(cpu.instructions) / 1000, pid: 1, tid: cpu.id, args: { rip: "0x" + cpu.rip.toString(16), ...extra } });
  }

  /** A span (migration round and the like) on a vCPU's track. */
  span(tid: number, name: string, startIcount: number, endIcount: number, args?: Record<string, unknown>): void {
    this.push({ name, ph: "X", ts: startIcount / 1000, dur: Math.max((endIcount - startIcount) / 1000, 0.001), pid: 1, tid, args });
  }

  toJSON(): { traceEvents: TraceEvent[]; displayTimeUnit: string; otherData: Record<string, unknown> } {
    const meta: TraceEvent[] = [...new Set(this.events.map((e) => e.tid))].map((tid) => ({ name: "thread_name", ph: "M", ts: 0, pid: 1, tid, args: { name: `vCPU ${tid}` } }));
    return {
      traceEvents: [...meta, ...this.events],
      displayTimeUnit: "ns",
      otherData: { clock: "guest instructions (1 us = 1000 instructions)", dropped: this.dropped, truncated: this.truncated },
    };
  }
}
