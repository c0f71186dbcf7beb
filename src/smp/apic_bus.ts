/**
 * The APIC bus: routes an IPI (an ICR write on one vCPU) to its destination
 * vCPUs. It only touches shared memory (the target's IRR, its INIT/SIPI
 * event word, its kick word), so any thread can send: the deterministic
 * scheduler and every parallel worker build one over the same memory.
 *
 * Destinations: physical APIC ID (ID = vCPU index; 0xFF = all), the
 * shorthands self / all including self / all excluding self, and flat
 * logical mode when the target APICs are local (deterministic mode).
 * Delivery modes: fixed, INIT (level assert; de-assert is ignored), SIPI.
 */
import { APIC_DM_FIXED, APIC_DM_INIT, APIC_DM_STARTUP, type LocalApic } from "../devices/lapic.js";

export interface IpiRecord { from: number; to: number; mode: number; vector: number; }

export class ApicBus {
  private readonly i32: Int32Array;
  /** Every IPI delivered (kept only when `record` is set: tests). */
  readonly log: IpiRecord[] = [];
  record = false;
  /** Called after a vCPU was kicked (parallel mode: wake detection). */
  onKick?: (to: number) => void;
  /** Local APIC objects by vCPU, when they live on this thread (flat logical destinations). */
  localApics?: (LocalApic | undefined)[];

  constructor(memory: WebAssembly.Memory, private readonly k: Readonly<Record<string, number>>, private readonly bases: readonly number[]) {
    this.i32 = new Int32Array(memory.buffer);
  }

  get count(): number { return this.bases.length; }
  private word(cpu: number, off: number): number { return (this.bases[cpu]! + off) >> 2; }

  /** Make vCPU `cpu` leave run() at its next instruction boundary (and wake it if it sleeps). */
  kick(cpu: number): void {
    const w = this.word(cpu, this.k.VCPU_KICK);
    Atomics.store(this.i32, w, 1);
    Atomics.notify(this.i32, w);
    this.onKick?.(cpu);
  }

  /** The ICR of vCPU `from` was written with `icr` (low word) and destination field `dest`. */
  sendIpi(from: number, icr: number, dest: number): void {
    const mode = (icr >> 8) & 7;
    const vector = icr & 0xff;
    const logical = (icr & (1 << 11)) !== 0;
    const shorthand = (icr >> 18) & 3;
    if (mode === APIC_DM_INIT && (icr & (1 << 14)) === 0) return; // INIT level de-assert: no effect
    const targets: number[] = [];
    for (let cpu = 0; cpu < this.count; cpu++) {
      let hit: boolean;
      if (shorthand === 1) hit = cpu === from;
      else if (shorthand === 2) hit = true;
      else if (shorthand === 3) hit = cpu !== from;
      else if (!logical) hit = dest === 0xff || dest === cpu;
      else hit = this.localApics?.[cpu]?.matches(dest, true) ?? false;
      if (hit) targets.push(cpu);
    }
    for (const to of targets) {
      if (mode === APIC_DM_FIXED) {
        if (vector < 16) continue; // illegal vector: dropped (the ESR is not modelled)
        Atomics.or(this.i32, this.word(to, this.k.VCPU_APIC_IRR) + (vector >> 5), 1 << (vector & 31));
      } else if (mode === APIC_DM_INIT) {
        Atomics.or(this.i32, this.word(to, this.k.VCPU_APIC_EVENTS), this.k.APIC_EV_INIT);
      } else if (mode === APIC_DM_STARTUP) {
        // the first SIPI not yet taken keeps its vector (a second one is ignored, as by a started AP)
        if ((Atomics.load(this.i32, this.word(to, this.k.VCPU_APIC_EVENTS)) & this.k.APIC_EV_SIPI) === 0) {
          Atomics.store(this.i32, this.word(to, this.k.VCPU_SIPI_VECTOR), vector);
        }
        Atomics.or(this.i32, this.word(to, this.k.VCPU_APIC_EVENTS), this.k.APIC_EV_SIPI);
      } else continue; // NMI, SMI, lowest priority: not modelled
      if (this.record) this.log.push({ from, to, mode, vector });
      this.kick(to);
    }
  }
}
