/**
 * One vCPU of an SMP VM as its thread drives it (the deterministic scheduler
 * on the main thread, or a worker in parallel mode): the WASM instance that
 * runs it, its local APIC, INIT/SIPI handling, the APIC timer, interrupt
 * injection through VCPU_PENDING_IRQ, and the vCPU's clock. The same code
 * runs on both sides; everything another thread may touch (IRR, INIT/SIPI
 * events, the kick word) is in the shared vCPU struct and accessed with
 * Atomics.
 *
 * The clock is the vCPU's TSC: retired instructions + VCPU_TSC_OFFSET. A
 * halted vCPU retires nothing, so the scheduler credits it idle time by
 * raising the offset (the guest's RDTSC and its APIC timer agree).
 */
import type { Core } from "../core/core.js";
import type { Vcpu, ExitName } from "../vcpu.js";
import { LocalApic, APIC_DEFAULT_BASE, type ApicLink } from "../devices/lapic.js";
import type { ApicBus } from "./apic_bus.js";

export type RunState = "run" | "halted" | "wait-sipi";

export class VcpuRunner {
  readonly apic: LocalApic;
  private readonly i32: Int32Array;
  private readonly k: Readonly<Record<string, number>>;
  /** The vector written to VCPU_PENDING_IRQ and not yet taken by the CPU (-1: none). */
  private injected = -1;
  /** INITs and SIPIs this vCPU took (for tests and the summary). */
  inits = 0;
  sipis = 0;

  constructor(readonly core: Core, readonly vcpu: Vcpu, memory: WebAssembly.Memory, bus: ApicBus) {
    this.k = core.k;
    this.i32 = new Int32Array(memory.buffer);
    const link: ApicLink = {
      irr: new Int32Array(memory.buffer, vcpu.base + this.k.VCPU_APIC_IRR, 8),
      now: () => this.clock(),
      getCr8: () => Number(vcpu.get64(this.k.VCPU_CR8) & 0xfn),
      setCr8: (v) => vcpu.set64(this.k.VCPU_CR8, BigInt(v & 0xf)),
      sendIpi: (from, icr, dest) => bus.sendIpi(vcpu.id, icr, dest),
    };
    this.apic = new LocalApic(vcpu.id, link);
  }

  get id(): number { return this.vcpu.id; }
  private word(off: number): number { return (this.vcpu.base + off) >> 2; }
  get mpState(): number { return Atomics.load(this.i32, this.word(this.k.VCPU_MP_STATE)); }
  set mpState(v: number) { Atomics.store(this.i32, this.word(this.k.VCPU_MP_STATE), v); }

  /** The vCPU's clock (its TSC). */
  clock(): number { return Number(BigInt.asIntN(64, this.vcpu.get64(this.k.VCPU_INSN_COUNT) + this.vcpu.get64(this.k.VCPU_TSC_OFFSET))); }
  /** Credit `ticks` of idle time (HLT, wait-for-SIPI). */
  addIdle(ticks: number): void {
    if (ticks > 0) this.vcpu.set64(this.k.VCPU_TSC_OFFSET, this.vcpu.get64(this.k.VCPU_TSC_OFFSET) + BigInt(Math.floor(ticks)));
  }

  /** INIT / SIPI posted by other vCPUs (KVM_APIC_INIT / KVM_APIC_SIPI in kvm_apic_accept_events). */
  private acceptEvents(): void {
    const ev = Atomics.exchange(this.i32, this.word(this.k.VCPU_APIC_EVENTS), 0);
    if (ev === 0) return;
    if (ev & this.k.APIC_EV_INIT) {
      this.inits++;
      this.apic.reset();
      this.injected = -1;
      this.vcpu.i32(this.k.VCPU_PENDING_IRQ, -1);
      this.mpState = this.k.MP_STATE_INIT_RECEIVED;
    }
    if (ev & this.k.APIC_EV_SIPI) {
      const st = this.mpState;
      // a SIPI only starts a vCPU that waits for one (the second SIPI of INIT-SIPI-SIPI is ignored)
      if (st === this.k.MP_STATE_INIT_RECEIVED || st === this.k.MP_STATE_UNINITIALIZED) {
        this.sipis++;
        this.startAt(Atomics.load(this.i32, this.word(this.k.VCPU_SIPI_VECTOR)) & 0xff);
      }
    }
  }

  /** The SIPI's effect: real mode at CS = vector << 8, IP = 0 (the rest as after INIT). */
  private startAt(vector: number): void {
    const v = this.vcpu, k = this.k;
    for (let r = 0; r < 16; r++) v.set64(k.VCPU_REGS + r * 8, 0n);
    v.rip = 0n;
    v.rflags = 2n;
    v.setSeg("cs", { selector: vector << 8, base: BigInt(vector << 12), limit: 0xffff, attr: 0x9b });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) v.setSeg(s, { selector: 0, base: 0n, limit: 0xffff, attr: 0x93 });
    v.setSeg("ldtr", { selector: 0, base: 0n, limit: 0xffff, attr: 0x82 });
    v.setSeg("tr", { selector: 0, base: 0n, limit: 0xffff, attr: 0x8b });
    v.set64(k.VCPU_GDTR_BASE, 0n); v.u32(k.VCPU_GDTR_LIMIT, 0xffff);
    v.set64(k.VCPU_IDTR_BASE, 0n); v.u32(k.VCPU_IDTR_LIMIT, 0xffff);
    v.set64(k.VCPU_CR0, 0x60000010n);
    v.set64(k.VCPU_CR2, 0n); v.set64(k.VCPU_CR3, 0n); v.set64(k.VCPU_CR4, 0n); v.set64(k.VCPU_EFER, 0n);
    v.u32(k.VCPU_HALTED, 0);
    v.u32(k.VCPU_INTR_SHADOW, 0);
    v.u32(k.VCPU_PENDING_IO, 0);
    this.core.fn.vcpu_bind(v.base);
    // the paging state changed behind the core's back (kvm_mmu_reset_context)
    const reset = (this.core.fn as { mmu_reset_context?: () => void }).mmu_reset_context;
    if (reset) reset(); else this.core.fn.tlb_flush_all();
    this.mpState = this.k.MP_STATE_RUNNABLE;
  }

  /** The CPU took the injected vector (the core cleared VCPU_PENDING_IRQ): IRR -> ISR. */
  syncInjection(): void {
    if (this.injected >= 0 && this.vcpu.u32(this.k.VCPU_PENDING_IRQ) === 0xffffffff) {
      this.apic.accept(this.injected);
      this.injected = -1;
    }
  }

  /**
   * Before entering the guest: accept INIT/SIPI, fire the timer, offer the
   * APIC's highest pending vector to the CPU. Returns whether the vCPU can run.
   */
  prepare(): RunState {
    Atomics.store(this.i32, this.word(this.k.VCPU_KICK), 0);
    this.acceptEvents();
    const st = this.mpState;
    if (st === this.k.MP_STATE_UNINITIALIZED || st === this.k.MP_STATE_INIT_RECEIVED) return "wait-sipi";
    this.apic.pollTimer(this.clock());
    this.syncInjection();
    if (this.injected < 0) {
      const v = this.apic.pendingVector();
      if (v >= 0) { this.vcpu.i32(this.k.VCPU_PENDING_IRQ, v); this.injected = v; }
    }
    if (this.vcpu.halted) {
      // HLT wakes on an interrupt the CPU will take (IF=1); otherwise it sleeps on
      return this.injected >= 0 && this.vcpu.interruptsEnabled ? "run" : "halted";
    }
    return "run";
  }

  /** Can this halted vCPU ever wake by itself (its timer, with IF=1)? Other vCPUs' IPIs aside. */
  get timerCanWake(): boolean { return this.apic.timerDeadlineAt >= 0 && this.vcpu.interruptsEnabled; }

  /** Instructions until the timer is due (Infinity if not armed). */
  ticksToTimer(): number {
    const d = this.apic.timerDeadlineAt;
    return d < 0 ? Infinity : Math.max(d - this.clock(), 1);
  }

  /** True after enter() when the vCPU left run() because it spun on PAUSE (PAUSE-loop exiting). */
  spun = false;

  /** Enter the guest for at most `budget` instructions (capped at the timer's deadline). */
  enter(budget: number): ExitName {
    const b = Math.max(1, Math.min(budget, this.ticksToTimer()));
    this.core.fn.vcpu_bind(this.vcpu.base);
    const pauses = this.vcpu.stat(this.k.STAT_PAUSE_EXITS);
    const r = this.core.fn.run(b);
    this.spun = this.vcpu.stat(this.k.STAT_PAUSE_EXITS) !== pauses;
    this.syncInjection();
    const name = this.vcpu.exitNames.get(r);
    if (!name) throw new Error(`the core returned an unknown exit reason ${r}`);
    return name;
  }

  /** An MMIO exit to the local APIC page is this vCPU's own; returns false for other addresses. */
  handleApicMmio(): boolean {
    const m = this.vcpu.mmioExit();
    if (m.gpa < APIC_DEFAULT_BASE || m.gpa >= APIC_DEFAULT_BASE + 0x1000) return false;
    if (m.isWrite) this.apic.mmioWrite(m.gpa - APIC_DEFAULT_BASE, m.len, m.data);
    else this.vcpu.completeMmioRead(this.apic.mmioRead(m.gpa - APIC_DEFAULT_BASE, m.len));
    return true;
  }
}
