/**
 * A bare vCPU for system-level tests (privilege, IDT delivery, segments):
 * the identity-mapped 2 MiB of test/support/longmode.ts plus a GDT, a
 * 64-bit or 32-bit IDT whose every vector points at its own `hlt` stub, and
 * a TSS. A test places code at CODE_ADDR, runs until the vCPU halts and reads
 * which stub it halted in (the vector) and the frame the CPU pushed.
 *
 * Guest-physical layout, besides longmode.ts's page tables at 0x1000-0x4fff:
 *   0x05000 GDT (SEL below)        0x06000 IDT (256 gates, 16 or 8 bytes)
 *   0x09000 stubs: vector v's `hlt` at STUBS + 16 * v (to 0xa000)
 *   0x0b000 ring-0 stack top (where code starts at CPL 0)
 *   0x0c000 TSS.RSP0 / SS0:ESP0 stack top   0x0d000 IST1 stack top
 *   0x0e000 ring-3 stack top               0x0f000 ring-3 / scratch data
 *   0x30000 code (CODE_ADDR)               0x38000 TSS (+ I/O bitmap)
 */
import { TestCpu, CODE_ADDR, PML4_ADDR } from "./longmode.js";
import type { ExitName, SegName } from "../../src/vcpu.js";

export { CODE_ADDR };
export const GDT = 0x5000;
export const IDT = 0x6000;
export const STUBS = 0x9000;
export const KSTACK = 0xb000;
export const RSP0 = 0xc000;
export const IST1 = 0xd000;
export const USTACK = 0xe000;
export const UDATA = 0xf000;
export const TSS = 0x38000;

/** GDT selectors (the same in both modes; unused ones are harmless). */
export const SEL = {
  KCODE64: 0x08, KDATA: 0x10, UCODE32: 0x18, UDATA: 0x20, UCODE64: 0x28,
  TSS: 0x30, // 16 bytes in long mode (0x30, 0x38), 8 in legacy mode
  NPDATA: 0x40, // data, DPL 0, not present
  KCODE32: 0x48, KCODE16: 0x50, GATE: 0x58, // 0x58 (+0x60): a call gate the test fills in
  KDATA16: 0x68, // 16-bit data (B = 0), DPL 0
  R1CODE32: 0x70, R1DATA: 0x78, // ring 1 (32-bit code, data)
} as const;
const GDT_ENTRIES = 16;

// Segment attributes packed like VMX access rights (assembly/cpu/state.ts)
export const A = { S: 1 << 4, P: 1 << 7, L: 1 << 13, DB: 1 << 14, G: 1 << 15, dpl: (n: number) => n << 5 };

/** An 8-byte code/data descriptor: base 0, limit 4 GiB unless given. */
export function desc(type: number, dpl: number, flags: { l?: boolean; db?: boolean; p?: boolean; limit?: number; base?: number } = {}): bigint {
  const limit = flags.limit ?? 0xfffff;
  const base = BigInt(flags.base ?? 0);
  const g = flags.limit === undefined ? 1n : 0n;
  let d = BigInt(limit & 0xffff) | (BigInt((limit >> 16) & 0xf) << 48n);
  d |= (base & 0xffffffn) << 16n | ((base >> 24n) & 0xffn) << 56n;
  d |= BigInt(type | 0x10 | (dpl << 5) | ((flags.p ?? true) ? 0x80 : 0)) << 40n;
  if (flags.l) d |= 1n << 53n;
  if (flags.db) d |= 1n << 54n;
  d |= g << 55n;
  return d;
}

export class SysCpu {
  readonly t = new TestCpu();
  readonly vcpu = this.t.vcpu;
  readonly k = this.t.vm.core.k;
  private readonly dv = new DataView(this.t.vm.memory.buffer, this.t.vm.ramBase);
  long = true;

  // ---- memory
  q(a: number): bigint { return this.dv.getBigUint64(a, true); }
  setQ(a: number, v: bigint): void { this.dv.setBigUint64(a, BigInt.asUintN(64, v), true); }
  d(a: number): number { return this.dv.getUint32(a, true); }
  setD(a: number, v: number): void { this.dv.setUint32(a, v >>> 0, true); }
  w(a: number): number { return this.dv.getUint16(a, true); }
  setW(a: number, v: number): void { this.dv.setUint16(a, v, true); }
  write(a: number, bytes: number[] | Uint8Array): void { this.t.write(a, bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)); }
  /** Code at CODE_ADDR + off; RIP points at it. */
  code(bytes: number[], off = 0): void { this.write(CODE_ADDR + off, bytes); this.rip = BigInt(CODE_ADDR + off); }

  // ---- registers
  get rip(): bigint { return this.vcpu.rip; }
  set rip(v: bigint) { this.vcpu.rip = v; }
  reg(r: Parameters<SysCpu["vcpu"]["reg"]>[0]): bigint { return this.vcpu.reg(r); }
  setReg(r: Parameters<SysCpu["vcpu"]["reg"]>[0], v: bigint | number): void { this.vcpu.setReg(r, BigInt(v)); }
  get rflags(): bigint { return this.vcpu.rflags; }
  set rflags(v: bigint) { this.vcpu.rflags = v; }
  sel(s: SegName): number { return this.vcpu.seg(s).selector; }
  gdt(sel: number, v: bigint): void { this.setQ(GDT + (sel & ~7), v); }
  run(n = 1000): ExitName { return this.t.run(n); }
  get exitVector(): number { return this.vcpu.shutdownVector; }

  /** After a HLT exit: the vector whose stub halted, or -1 if the CPU halted elsewhere. */
  vector(): number {
    const at = Number(this.rip) - 1 - STUBS;
    if (!this.vcpu.halted || at < 0 || at >= 256 * 16 || at % 16 !== 0) return -1;
    return at / 16;
  }
  /** Clear the halted state so run() continues. */
  unhalt(): void { this.vcpu.u32(this.k.VCPU_HALTED, 0); }

  /** IDT gate `vec`: type 0xe (interrupt) / 0xf (trap) (0x6/0x7: 16-bit gates in legacy mode). */
  gate(vec: number, o: { dpl?: number; ist?: number; p?: boolean; type?: number; sel?: number; target?: number } = {}): void {
    const target = o.target ?? STUBS + 16 * vec;
    const type = o.type ?? 0xe;
    const attr = ((o.p ?? true) ? 0x80 : 0) | ((o.dpl ?? 0) << 5) | type;
    const sel = o.sel ?? (this.long ? SEL.KCODE64 : SEL.KCODE32);
    if (this.long) {
      const a = IDT + vec * 16;
      this.setD(a, (sel << 16) | (target & 0xffff));
      this.setD(a + 4, (target & 0xffff0000) | (attr << 8) | (o.ist ?? 0));
      this.setQ(a + 8, 0n);
    } else {
      const a = IDT + vec * 8;
      this.setD(a, (sel << 16) | (target & 0xffff));
      this.setD(a + 4, (target & 0xffff0000) | (attr << 8));
    }
  }

  private common(): void {
    this.setQ(GDT, 0n);
    this.gdt(SEL.KCODE64, desc(0xb, 0, { l: true }));
    this.gdt(SEL.KDATA, desc(0x3, 0, { db: true }));
    this.gdt(SEL.UCODE32, desc(0xb, 3, { db: true }));
    this.gdt(SEL.UDATA, desc(0x3, 3, { db: true }));
    this.gdt(SEL.UCODE64, desc(0xb, 3, { l: true }));
    this.gdt(SEL.NPDATA, desc(0x3, 0, { db: true, p: false }));
    this.gdt(SEL.KCODE32, desc(0xb, 0, { db: true }));
    this.gdt(SEL.KCODE16, desc(0xb, 0, { limit: 0xffff }));
    this.gdt(SEL.KDATA16, desc(0x3, 0, { limit: 0xffff }));
    this.gdt(SEL.R1CODE32, desc(0xb, 1, { db: true }));
    this.gdt(SEL.R1DATA, desc(0x3, 1, { db: true }));
    this.setQ(GDT + SEL.GATE, 0n);
    this.setQ(GDT + SEL.GATE + 8, 0n);
    for (let v = 0; v < 256; v++) this.write(STUBS + 16 * v, [0xf4]);
    this.t.vm.fill(TSS, 0x68, 0);
    const v = this.vcpu, k = this.k;
    v.set64(k.VCPU_GDTR_BASE, BigInt(GDT));
    v.u32(k.VCPU_GDTR_LIMIT, GDT_ENTRIES * 8 - 1);
    v.set64(k.VCPU_IDTR_BASE, BigInt(IDT));
    v.u32(k.VCPU_HALTED, 0);
    v.i32(k.VCPU_PENDING_IRQ, -1);
    v.setSeg("ldtr", { selector: 0, base: 0n, limit: 0, attr: 0 });
    this.rflags = 2n;
    this.setReg("rsp", KSTACK);
  }

  /** Long mode, CPL 0 in 64-bit code (CS 0x08, SS/DS/ES 0x10), paging on, 64-bit TSS with RSP0 and IST1. */
  setupLong(): this {
    this.long = true;
    this.common();
    for (let vec = 0; vec < 256; vec++) this.gate(vec);
    // TSS descriptor (16 bytes): type 0xb (busy, as after ltr), limit 0x67
    this.setQ(GDT + SEL.TSS, 0x67n | (BigInt(TSS & 0xffffff) << 16n) | (0x8bn << 40n) | (BigInt(TSS >>> 24) << 56n));
    this.setQ(GDT + SEL.TSS + 8, 0n);
    this.setQ(TSS + 4, BigInt(RSP0));
    this.setQ(TSS + 0x24, BigInt(IST1));
    this.setW(TSS + 0x66, 0x68);
    const v = this.vcpu, k = this.k;
    v.u32(k.VCPU_IDTR_LIMIT, 256 * 16 - 1);
    v.set64(k.VCPU_CR0, 0x80010033n); // PG WP NE ET MP PE
    v.set64(k.VCPU_CR4, 0x20n); // PAE
    v.set64(k.VCPU_EFER, 0xd01n); // NXE LMA LME SCE
    v.set64(k.VCPU_CR3, BigInt(PML4_ADDR));
    v.setSeg("cs", { selector: SEL.KCODE64, base: 0n, limit: 0xffffffff, attr: 0xb | A.S | A.P | A.L | A.G });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) v.setSeg(s, { selector: SEL.KDATA, base: 0n, limit: 0xffffffff, attr: 0x3 | A.S | A.P | A.DB | A.G });
    v.setSeg("tr", { selector: SEL.TSS, base: BigInt(TSS), limit: 0x67, attr: 0xb | A.P });
    v.flushTlb();
    return this;
  }

  /** Flat 32-bit protected mode, CPL 0, paging off, 32-bit TSS with SS0:ESP0 = 0x10:RSP0. */
  setupProtected(): this {
    this.long = false;
    this.common();
    for (let vec = 0; vec < 256; vec++) this.gate(vec);
    this.setQ(GDT + SEL.TSS, 0x67n | (BigInt(TSS & 0xffffff) << 16n) | (0x8bn << 40n) | (BigInt(TSS >>> 24) << 56n));
    this.setD(TSS + 4, RSP0);
    this.setD(TSS + 8, SEL.KDATA);
    this.setW(TSS + 0x66, 0x68);
    const v = this.vcpu, k = this.k;
    v.u32(k.VCPU_IDTR_LIMIT, 256 * 8 - 1);
    v.set64(k.VCPU_CR0, 0x33n);
    v.set64(k.VCPU_CR4, 0n);
    v.set64(k.VCPU_EFER, 0n);
    v.set64(k.VCPU_CR3, 0n);
    v.setSeg("cs", { selector: SEL.KCODE32, base: 0n, limit: 0xffffffff, attr: 0xb | A.S | A.P | A.DB | A.G });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) v.setSeg(s, { selector: SEL.KDATA, base: 0n, limit: 0xffffffff, attr: 0x3 | A.S | A.P | A.DB | A.G });
    v.setSeg("tr", { selector: SEL.TSS, base: BigInt(TSS), limit: 0x67, attr: 0xb | A.P });
    v.flushTlb();
    return this;
  }

  /** Clear U/S in the PTE of the 4 KiB page at `va` (identity map of longmode.ts). */
  supervisorOnly(va: number): void {
    const pte = PML4_ADDR + 0x3000 + (va >>> 12) * 8;
    this.setQ(pte, this.q(pte) & ~4n);
    this.vcpu.flushTlb();
  }

  /** Switch the (already set-up) CPU to CPL 3: 64-bit (long) or 32-bit code, user data, RSP = USTACK. */
  toUser(): this {
    const v = this.vcpu;
    if (this.long) v.setSeg("cs", { selector: SEL.UCODE64 | 3, base: 0n, limit: 0xffffffff, attr: 0xb | A.S | A.dpl(3) | A.P | A.L | A.G });
    else v.setSeg("cs", { selector: SEL.UCODE32 | 3, base: 0n, limit: 0xffffffff, attr: 0xb | A.S | A.dpl(3) | A.P | A.DB | A.G });
    for (const s of ["ds", "es", "ss"] as const) v.setSeg(s, { selector: SEL.UDATA | 3, base: 0n, limit: 0xffffffff, attr: 0x3 | A.S | A.dpl(3) | A.P | A.DB | A.G });
    this.setReg("rsp", USTACK);
    return this;
  }

  /** The 64-bit frame at RSP after delivery: [error code,] RIP, CS, RFLAGS, RSP, SS. */
  frame64(hasCode: boolean): { err?: bigint; rip: bigint; cs: bigint; rflags: bigint; rsp: bigint; ss: bigint; at: number } {
    const at = Number(this.reg("rsp"));
    const o = hasCode ? 8 : 0;
    return { err: hasCode ? this.q(at) : undefined, rip: this.q(at + o), cs: this.q(at + o + 8), rflags: this.q(at + o + 16), rsp: this.q(at + o + 24), ss: this.q(at + o + 32), at };
  }
}
