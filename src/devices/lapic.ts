/**
 * A local xAPIC at 0xFEE00000 (one per vCPU; the MMIO exit names the vCPU that
 * accessed it): ID, version, TPR (= CR8), EOI, LDR/DFR, spurious vector, ESR,
 * IRR/ISR, ICR (fixed IPIs to an APIC ID, a logical mask, self, all, all but
 * self; INIT and SIPI), the LVT and the timer in one-shot and periodic mode
 * with the divide register. Time is the vCPU's TSC (retired instructions plus
 * the idle time the SMP scheduler credits), so the timer is deterministic.
 * Without an SMP link (a plain single-vCPU machine) the APIC only records
 * IPIs, as before.
 */
import type { MmioDevice, MmioSize } from "./mmio_bus.js";
import { Shadow86Error } from "../errors.js";

/** The register page (0x400 bytes as 256 u32), for migration. */
export interface LocalApicState { version: 1; regs: number[]; }

export const APIC_DEFAULT_BASE = 0xfee00000;
export const APIC_ID = 0x20;
export const APIC_LVR = 0x30;
export const APIC_TPR = 0x80;
export const APIC_PPR = 0xa0;
export const APIC_EOI = 0xb0;
export const APIC_LDR = 0xd0;
export const APIC_DFR = 0xe0;
export const APIC_SPIV = 0xf0;
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_ICR = 0x300;
export const APIC_ICR2 = 0x310;
export const APIC_LVTT = 0x320;
export const APIC_TMICT = 0x380;
export const APIC_TMCCT = 0x390;
export const APIC_TDCR = 0x3e0;
/** Version 0x14 (integrated APIC) with 6 LVT entries, as QEMU reports. */
export const APIC_VERSION = 0x00050014;

export const APIC_DM_FIXED = 0;
export const APIC_DM_NMI = 4;
export const APIC_DM_INIT = 5;
export const APIC_DM_STARTUP = 6;
const LVT_MASKED = 1 << 16;
const LVT_TIMER_PERIODIC = 1 << 17;
const SPIV_ENABLE = 1 << 8;

/** What the APIC needs from its vCPU and the machine when it is part of an SMP VM. */
export interface ApicLink {
  /** The IRR words (8 x 32 bits), in shared memory: other vCPUs set bits with Atomics. */
  irr: Int32Array;
  /** The vCPU's clock (its TSC): the timer counts it. */
  now(): number;
  /** TPR lives in CR8 (the core's MOV CR8 and this register are one). */
  getCr8(): number;
  setCr8(v: number): void;
  /** Send an IPI (the ICR was written): the machine routes it. */
  sendIpi(from: LocalApic, icr: number, dest: number): void;
}

export class LocalApic implements MmioDevice {
  private readonly regs = new Uint32Array(0x400 / 4);
  /** IPIs the guest sent (for tests). */
  readonly ipis: { icr: number; dest: number }[] = [];
  /** Timer: the clock value at which it fires next (-1: not armed) and its period in clock ticks. */
  private timerDeadline = -1;
  private timerPeriod = 0;
  private timerDivisor = 2;

  constructor(readonly apicId: number, readonly link?: ApicLink) {
    this.reset();
  }

  /** Power-on / INIT state (the ID is kept). */
  reset(): void {
    this.regs.fill(0);
    if (this.link) for (let i = 0; i < 8; i++) Atomics.store(this.link.irr, i, 0);
    this.regs[APIC_ID / 4] = this.apicId << 24;
    this.regs[APIC_LVR / 4] = APIC_VERSION;
    this.regs[APIC_DFR / 4] = 0xffffffff;
    this.regs[APIC_SPIV / 4] = 0xff;
    for (const lvt of [0x320, 0x330, 0x340, 0x350, 0x360, 0x370]) this.regs[lvt / 4] = LVT_MASKED;
    this.timerDeadline = -1;
    this.timerPeriod = 0;
    this.timerDivisor = 2;
    this.link?.setCr8(0);
  }

  get enabled(): boolean { return (this.regs[APIC_SPIV / 4]! & SPIV_ENABLE) !== 0; }
  private get tpr(): number { return this.link ? (this.link.getCr8() & 0xf) << 4 : this.regs[APIC_TPR / 4]!; }

  // ---- IRR / ISR (256-bit vectors)
  private irrWord(i: number): number { return this.link ? Atomics.load(this.link.irr, i) >>> 0 : this.regs[(APIC_IRR >> 2) + 4 * i]!; }
  private static highest(word: (i: number) => number): number {
    for (let i = 7; i >= 0; i--) { const w = word(i); if (w !== 0) return i * 32 + 31 - Math.clz32(w); }
    return -1;
  }
  private isrHighest(): number { return LocalApic.highest((i) => this.regs[(APIC_ISR >> 2) + 4 * i]!); }
  /** Post a fixed interrupt to this APIC (from its own timer or another vCPU). */
  setIrr(vector: number): void {
    if (vector < 16) return;
    if (this.link) Atomics.or(this.link.irr, vector >> 5, 1 << (vector & 31));
    else this.regs[(APIC_IRR >> 2) + 4 * (vector >> 5)]! |= 1 << (vector & 31);
  }
  private ppr(): number {
    const isr = this.isrHighest();
    const isrClass = isr < 0 ? 0 : isr & 0xf0;
    return Math.max(this.tpr & 0xf0, isrClass);
  }
  /** The vector the APIC would present to the CPU now, or -1 (IRR's highest above the processor priority). */
  pendingVector(): number {
    if (!this.enabled) return -1;
    const v = LocalApic.highest((i) => this.irrWord(i));
    if (v < 0 || (v & 0xf0) <= this.ppr()) return -1;
    return v;
  }
  /** The CPU took `vector` (interrupt acknowledge): IRR -> ISR. */
  accept(vector: number): void {
    const bit = 1 << (vector & 31);
    if (this.link) Atomics.and(this.link.irr, vector >> 5, ~bit);
    else this.regs[(APIC_IRR >> 2) + 4 * (vector >> 5)]! &= ~bit;
    this.regs[(APIC_ISR >> 2) + 4 * (vector >> 5)]! |= bit;
  }
  private eoi(): void {
    const v = this.isrHighest();
    if (v >= 0) this.regs[(APIC_ISR >> 2) + 4 * (v >> 5)]! &= ~(1 << (v & 31));
  }

  // ---- the timer (counts the vCPU's clock divided by TDCR)
  private static divisor(tdcr: number): number {
    const code = ((tdcr >> 1) & 4) | (tdcr & 3); // bits 3, 1, 0
    return code === 7 ? 1 : 2 << code;
  }
  private now(): number { return this.link ? this.link.now() : 0; }
  /** The clock value at which the timer fires next, or -1. */
  get timerDeadlineAt(): number { return this.timerDeadline; }
  /** Called by the vCPU loop: fire the timer if its deadline passed (one interrupt per call). */
  pollTimer(now: number): void {
    if (this.timerDeadline < 0 || now < this.timerDeadline) return;
    const lvt = this.regs[APIC_LVTT / 4]!;
    if ((lvt & LVT_MASKED) === 0 && this.enabled) this.setIrr(lvt & 0xff);
    if ((lvt & LVT_TIMER_PERIODIC) !== 0 && this.timerPeriod > 0) {
      this.timerDeadline += this.timerPeriod;
      if (this.timerDeadline <= now) this.timerDeadline = now + this.timerPeriod; // missed ticks coalesce
    } else this.timerDeadline = -1;
  }
  private currentCount(): number {
    if (this.timerDeadline < 0) return 0;
    const left = this.timerDeadline - this.now();
    return left <= 0 ? 0 : Math.ceil(left / this.timerDivisor);
  }

  mmioRead(offset: number, size: MmioSize): bigint {
    const reg = offset & 0xff0;
    if (reg >= 0x400) return 0n;
    let v: number;
    if (reg === APIC_TPR) v = this.tpr;
    else if (reg === APIC_PPR) v = this.ppr();
    else if (reg >= APIC_IRR && reg < APIC_IRR + 0x80) v = this.irrWord((reg - APIC_IRR) >> 4);
    else if (reg === APIC_TMCCT) v = this.currentCount();
    else v = this.regs[reg / 4]!;
    if (reg === APIC_ICR) v &= ~(1 << 12); // delivery status: idle
    const shift = (offset & 3) * 8;
    return BigInt((v >>> shift) >>> 0) & ((1n << BigInt(Math.min(size, 4) * 8)) - 1n);
  }

  mmioWrite(offset: number, _size: MmioSize, value: bigint): void {
    const reg = offset & 0xff0;
    const v = Number(value & 0xffffffffn) >>> 0;
    switch (reg) {
      case APIC_ID: this.regs[reg / 4] = v & 0xff000000; return;
      case APIC_LVR: case APIC_TMCCT: case APIC_PPR: return; // read-only
      case APIC_TPR:
        if (this.link) this.link.setCr8((v >> 4) & 0xf); else this.regs[reg / 4] = v & 0xff;
        return;
      case APIC_EOI: this.eoi(); return;
      case APIC_ESR: this.regs[reg / 4] = 0; return;
      case APIC_SPIV:
        this.regs[reg / 4] = v & 0x3ff;
        if ((v & SPIV_ENABLE) === 0) for (const lvt of [0x320, 0x330, 0x340, 0x350, 0x360, 0x370]) this.regs[lvt / 4]! |= LVT_MASKED;
        return;
      case APIC_ICR: {
        this.regs[reg / 4] = v & ~(1 << 12);
        const dest = this.regs[APIC_ICR2 / 4]! >>> 24;
        this.ipis.push({ icr: v, dest });
        this.link?.sendIpi(this, v, dest);
        return;
      }
      case APIC_LVTT:
        this.regs[reg / 4] = this.enabled ? v : v | LVT_MASKED;
        return;
      case APIC_TDCR:
        this.regs[reg / 4] = v & 0xb;
        this.timerDivisor = LocalApic.divisor(v);
        return;
      case APIC_TMICT:
        this.regs[reg / 4] = v;
        // the count is latched with the divisor in force now; writing 0 stops the timer
        this.timerPeriod = v * this.timerDivisor;
        this.timerDeadline = v === 0 ? -1 : this.now() + this.timerPeriod;
        return;
      default:
        if (reg >= APIC_ISR && reg < APIC_IRR + 0x80) return; // ISR, TMR, IRR are read-only
        if (reg < 0x400) this.regs[reg / 4] = v;
    }
  }

  /** Does this APIC accept an IPI for `dest` (ICR destination field) in this destination mode? */
  matches(dest: number, logical: boolean): boolean {
    if (!logical) return dest === 0xff || dest === this.apicId;
    const ldr = this.regs[APIC_LDR / 4]! >>> 24;
    return dest === 0xff || (dest & ldr) !== 0; // flat model
  }

  saveState(): LocalApicState { return { version: 1, regs: [...this.regs] }; }

  /** Restore what `saveState` returned; a malformed state is a Shadow86Error and changes nothing. */
  loadState(state: unknown): void {
    const s = (state ?? {}) as Partial<Record<keyof LocalApicState, unknown>>;
    const regs = s.regs;
    if (s.version !== 1 || !Array.isArray(regs) || regs.length !== this.regs.length ||
        !regs.every((v) => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff)) {
      throw new Shadow86Error("lapic state", "malformed (want version 1 and 256 32-bit registers)");
    }
    this.regs.set(regs as number[]);
  }
}
