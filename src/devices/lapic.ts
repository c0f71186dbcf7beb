/**
 * A local xAPIC at 0xFEE00000 with the registers a test kernel probes: ID,
 * version, TPR, EOI, LDR/DFR, spurious vector, ESR, ICR (delivery status always
 * idle; INIT and SIPI are accepted and have no effect with one CPU), the LVT
 * entries and the timer registers (stored; the timer itself is the SMP issue's).
 */
import type { MmioDevice, MmioSize } from "./mmio_bus.js";
import { Shadow86Error } from "../errors.js";

/** The register page (0x400 bytes as 256 u32), for migration. */
export interface LocalApicState { version: 1; regs: number[]; }

export const APIC_DEFAULT_BASE = 0xfee00000;
export const APIC_ID = 0x20;
export const APIC_LVR = 0x30;
export const APIC_TPR = 0x80;
export const APIC_EOI = 0xb0;
export const APIC_LDR = 0xd0;
export const APIC_DFR = 0xe0;
export const APIC_SPIV = 0xf0;
export const APIC_ESR = 0x280;
export const APIC_ICR = 0x300;
export const APIC_ICR2 = 0x310;
export const APIC_LVTT = 0x320;
export const APIC_TMICT = 0x380;
export const APIC_TMCCT = 0x390;
export const APIC_TDCR = 0x3e0;
/** Version 0x14 (integrated APIC) with 6 LVT entries, as QEMU reports. */
export const APIC_VERSION = 0x00050014;

export class LocalApic implements MmioDevice {
  private readonly regs = new Uint32Array(0x400 / 4);
  /** IPIs the guest sent (for tests and, later, SMP). */
  readonly ipis: { icr: number; dest: number }[] = [];

  constructor(readonly apicId: number) {
    this.regs[APIC_ID / 4] = apicId << 24;
    this.regs[APIC_LVR / 4] = APIC_VERSION;
    this.regs[APIC_DFR / 4] = 0xffffffff;
    this.regs[APIC_SPIV / 4] = 0xff;
    for (const lvt of [0x320, 0x330, 0x340, 0x350, 0x360, 0x370]) this.regs[lvt / 4] = 0x10000; // masked
  }

  mmioRead(offset: number, size: MmioSize): bigint {
    const reg = offset & 0xff0;
    if (reg >= 0x400) return 0n;
    let v = this.regs[reg / 4]!;
    if (reg === APIC_ICR) v &= ~(1 << 12); // delivery status: idle
    const shift = (offset & 3) * 8;
    return BigInt((v >>> shift) >>> 0) & ((1n << BigInt(Math.min(size, 4) * 8)) - 1n);
  }

  mmioWrite(offset: number, _size: MmioSize, value: bigint): void {
    const reg = offset & 0xff0;
    const v = Number(value & 0xffffffffn) >>> 0;
    switch (reg) {
      case APIC_ID: this.regs[reg / 4] = v & 0xff000000; return;
      case APIC_LVR: case APIC_TMCCT: return; // read-only
      case APIC_EOI: return;
      case APIC_ESR: this.regs[reg / 4] = 0; return;
      case APIC_ICR:
        this.regs[reg / 4] = v & ~(1 << 12);
        this.ipis.push({ icr: v, dest: this.regs[APIC_ICR2 / 4]! >>> 24 });
        return;
      default:
        if (reg < 0x400) this.regs[reg / 4] = v;
    }
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
