/**
 * A vCPU as the hypervisor sees it: its struct in linear memory (registers,
 * the kvm_run-like exit struct, counters) and the run loop that enters the
 * core and handles exits (KVM_RUN + userspace exit handling).
 */
import type { Vm } from "./vm.js";
import { MULTIBOOT_CPU_STATE } from "./boot/multiboot.js";
import type { IoSize } from "./devices/io_bus.js";

export const GPR_NAMES = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const;
export type Gpr = (typeof GPR_NAMES)[number];
export const SEG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs", "ldtr", "tr"] as const;
export type SegName = (typeof SEG_NAMES)[number];

/** Segment attributes packed like VMX access rights (see assembly/cpu/state.ts). */
export interface Segment { selector: number; base: bigint; limit: number; attr: number; }

export type ExitName = "IO" | "HLT" | "MMIO" | "SHUTDOWN" | "INTERNAL_ERROR" | "BUDGET" | "PT_WRITE";

export class Vcpu {
  private dv: DataView;
  private readonly k: Readonly<Record<string, number>>;
  readonly exitNames = new Map<number, ExitName>();

  constructor(readonly vm: Vm, readonly id: number, readonly base: number) {
    this.k = vm.core.k;
    this.dv = new DataView(vm.memory.buffer);
    for (const n of ["IO", "HLT", "MMIO", "SHUTDOWN", "INTERNAL_ERROR", "BUDGET", "PT_WRITE"] as const) this.exitNames.set(this.k[`EXIT_${n}`], n);
    // The struct (2.6 MB with the TLB, block cache and code map) is in the
    // Vm's new memory, still zero: clearing it would only fault its pages in.
    this.u32(this.k.VCPU_ID, id);
    this.i32(this.k.VCPU_PENDING_IRQ, -1);
    this.set64(this.k.VCPU_RFLAGS, 2n);
    this.set64(this.k.VCPU_PAT, 0x0007040600070406n);
    this.u32(this.k.VCPU_FEATURES, this.k.FEAT_ALL);
    this.set64(this.k.VCPU_APIC_BASE, 0xfee00000n | (id === 0 ? 0x100n : 0n) | 0x800n);
    this.set64(this.k.VCPU_CR0, 0x60000010n);
    // real-mode reset state (the loader replaces it for multiboot)
    this.setSeg("cs", { selector: 0xf000, base: 0xffff0000n, limit: 0xffff, attr: 0x9b });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) this.setSeg(s, { selector: 0, base: 0n, limit: 0xffff, attr: 0x93 });
    this.setSeg("ldtr", { selector: 0, base: 0n, limit: 0xffff, attr: 0x82 });
    this.setSeg("tr", { selector: 0, base: 0n, limit: 0xffff, attr: 0x8b });
    this.u32(this.k.VCPU_IDTR_LIMIT, 0xffff);
    this.u32(this.k.VCPU_GDTR_LIMIT, 0xffff);
  }

  // ---- raw struct access (not on any hot path)
  get64(off: number): bigint { return this.dv.getBigUint64(this.base + off, true); }
  set64(off: number, v: bigint): void { this.dv.setBigUint64(this.base + off, BigInt.asUintN(64, v), true); }
  u32(off: number, v?: number): number {
    if (v !== undefined) this.dv.setUint32(this.base + off, v >>> 0, true);
    return this.dv.getUint32(this.base + off, true);
  }
  i32(off: number, v: number): void { this.dv.setInt32(this.base + off, v, true); }

  reg(r: Gpr): bigint { return this.get64(this.k.VCPU_REGS + GPR_NAMES.indexOf(r) * 8); }
  setReg(r: Gpr, v: bigint): void { this.set64(this.k.VCPU_REGS + GPR_NAMES.indexOf(r) * 8, v); }
  get rip(): bigint { return this.get64(this.k.VCPU_RIP); }
  set rip(v: bigint) { this.set64(this.k.VCPU_RIP, v); }
  get rflags(): bigint { return this.get64(this.k.VCPU_RFLAGS); }
  set rflags(v: bigint) { this.set64(this.k.VCPU_RFLAGS, v); }

  seg(s: SegName): Segment {
    const a = this.base + this.k.VCPU_SEGS + SEG_NAMES.indexOf(s) * this.k.SEG_SIZE;
    return {
      selector: this.dv.getUint16(a + this.k.SEG_SELECTOR, true),
      attr: this.dv.getUint16(a + this.k.SEG_ATTR, true),
      limit: this.dv.getUint32(a + this.k.SEG_LIMIT, true),
      base: this.dv.getBigUint64(a + this.k.SEG_BASE, true),
    };
  }
  setSeg(s: SegName, v: Segment): void {
    const a = this.base + this.k.VCPU_SEGS + SEG_NAMES.indexOf(s) * this.k.SEG_SIZE;
    this.dv.setUint16(a + this.k.SEG_SELECTOR, v.selector, true);
    this.dv.setUint16(a + this.k.SEG_ATTR, v.attr, true);
    this.dv.setUint32(a + this.k.SEG_LIMIT, v.limit >>> 0, true);
    this.dv.setBigUint64(a + this.k.SEG_BASE, v.base, true);
  }

  /** The flat 32-bit protected-mode state the multiboot spec requires at the kernel entry. */
  setMultibootState(entry: number, mbiAddr: number): void {
    const st = MULTIBOOT_CPU_STATE;
    const attr = (d: { type: number; s: number; dpl: number; present: number; db: number; g: number; l: number }) =>
      d.type | (d.s << 4) | (d.dpl << 5) | (d.present << 7) | (d.l << 13) | (d.db << 14) | (d.g << 15);
    this.setSeg("cs", { selector: 0x08, base: 0n, limit: st.cs.limit, attr: attr(st.cs) });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) this.setSeg(s, { selector: 0x10, base: 0n, limit: st.data.limit, attr: attr(st.data) });
    this.set64(this.k.VCPU_CR0, BigInt(st.cr0));
    this.rflags = BigInt(st.eflags);
    this.setReg("rax", BigInt(st.eax));
    this.setReg("rbx", BigInt(mbiAddr));
    this.rip = BigInt(entry);
  }

  stat(id: number): bigint { return this.get64(this.k.VCPU_STATS + id * 8); }
  /** Add `n` (a small non-negative number) to counter `id`: in u32 halves, no BigInt (the PT_WRITE exit path counts with it). */
  statAdd(id: number, n: number): void {
    const off = this.k.VCPU_STATS + id * 8;
    const lo = this.u32(off) + n;
    this.u32(off, lo >>> 0);
    if (lo > 0xffffffff) this.u32(off + 4, this.u32(off + 4) + Math.floor(lo / 0x100000000));
  }
  /** All counters by KVM name. */
  stats(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    this.vm.core.statNames.forEach((name, id) => { if (name) out[name] = this.stat(id); });
    return out;
  }
  get instructions(): bigint { return this.get64(this.k.VCPU_INSN_COUNT); }

  flushTlb(): void {
    this.vm.core.fn.vcpu_bind(this.base);
    this.vm.core.fn.tlb_flush_all();
  }

  /**
   * Call after loading CR0/CR3/CR4/EFER or the PDPTRs into a vCPU that has
   * run (KVM_SET_SREGS): drops the TLB and, in shadow mode, the shadow roots
   * built for the old paging state (kvm_mmu_reset_context).
   */
  pagingStateChanged(): void {
    this.vm.core.fn.vcpu_bind(this.base);
    this.vm.core.fn.mmu_reset_context();
  }

  /**
   * KVM_RUN: run the vCPU for at most `budget` instructions. `keepLinks`: nothing but
   * the core has written guest memory since the last exit (true only after a
   * PT_WRITE exit the pte-write policy handled), so cached blocks' links stay
   * valid; otherwise run() makes them compare their bytes again.
   */
  enter(budget: number, keepLinks = false): ExitName {
    this.vm.core.fn.vcpu_bind(this.base);
    if (keepLinks) this.u32(this.k.VCPU_KEEP_LINKS, 1);
    const r = this.vm.core.fn.run(budget);
    const name = this.exitNames.get(r);
    if (!name) throw new Error(`the core returned an unknown exit reason ${r}`);
    return name;
  }

  /** Handle a port I/O exit against the VM's I/O bus (KVM_EXIT_IO in userspace). */
  completeIo(): void {
    const k = this.k;
    const size = this.u32(k.EXIT_IO_SIZE) as IoSize;
    const port = this.u32(k.EXIT_IO_PORT);
    if (this.u32(k.EXIT_IO_DIRECTION) === 1) this.vm.io.write(port, size, this.u32(k.EXIT_IO_DATA));
    else {
      this.u32(k.EXIT_IO_DATA, this.vm.io.read(port, size));
      this.u32(k.VCPU_PENDING_IO, 1);
    }
  }

  /** The pending MMIO access (KVM_EXIT_MMIO). */
  mmioExit(): { gpa: number; len: 1 | 2 | 4 | 8; isWrite: boolean; data: bigint } {
    const k = this.k;
    return {
      gpa: Number(this.get64(k.EXIT_MMIO_GPA)),
      len: this.u32(k.EXIT_MMIO_LEN) as 1 | 2 | 4 | 8,
      isWrite: this.u32(k.EXIT_MMIO_IS_WRITE) === 1,
      data: this.get64(k.EXIT_MMIO_DATA),
    };
  }
  /** Supply the data of an MMIO read; the core restarts the instruction with it. */
  completeMmioRead(value: bigint): void {
    this.set64(this.k.EXIT_MMIO_DATA, value);
    this.u32(this.k.VCPU_PENDING_IO, 2);
  }

  /** What INTERNAL_ERROR captured: the failing RIP (linear) and its bytes. */
  internalError(): { rip: bigint; bytes: Uint8Array } {
    const k = this.k;
    const len = this.u32(k.EXIT_INTERNAL_LEN);
    const bytes = new Uint8Array(this.vm.memory.buffer.slice(this.base + k.EXIT_INTERNAL_BYTES, this.base + k.EXIT_INTERNAL_BYTES + len));
    return { rip: this.get64(k.EXIT_INTERNAL_RIP), bytes };
  }
  get shutdownVector(): number { return this.u32(this.k.EXIT_SHUTDOWN_VECTOR); }
  get halted(): boolean { return this.u32(this.k.VCPU_HALTED) !== 0; }
  get interruptsEnabled(): boolean { return (this.rflags & 0x200n) !== 0n; }
}
