/**
 * A bare vCPU for instruction-level tests: a small VM whose vCPU 0 sits in
 * 64-bit long mode at CPL 3 (or in flat 32-bit protected mode, for decoder
 * tests), with identity-mapped guest memory, so a test can place bytes at
 * some RIP, set registers, run exactly one instruction and look at the result.
 *
 * Guest-physical layout (all below the 640 KiB PC hole, identity-mapped with
 * user-accessible writable 4 KiB pages over the first 2 MiB):
 *   0x01000  PML4   0x02000  PDPT   0x03000  PD   0x04000  PT
 *   0x05000  GDT, 0x05800 IDT, 0x06000 exception stubs (32-bit mode only)
 *   0x10000  scratch (the vectors' src buffer)
 *   0x20000  scratch (the vectors' dst buffer)
 *   0x30000  code (CODE_ADDR)
 * In 64-bit mode there is no IDT (limit 0): any exception escalates to a
 * triple fault, i.e. a SHUTDOWN exit, which the tests report as a failure.
 * In 32-bit mode each of the 32 exception vectors points at a `hlt` stub,
 * so an exception shows up as a HLT exit and exceptionVector() names it.
 */
import { Vm } from "../../src/vm.js";
import { Vcpu, type ExitName } from "../../src/vcpu.js";
import { loadCoreModule } from "../../src/platform/node.js";
import type { MmuKnobs, MmuMode } from "../../src/mmu/knobs.js";

export const PML4_ADDR = 0x1000;
export const GDT_ADDR = 0x5000;
export const IDT_ADDR = 0x5800;
export const EXC_STUBS = 0x6000; // vector v's handler: a hlt at EXC_STUBS + 16 * v
export const STACK_TOP = 0x8000;
export const CODE_ADDR = 0x30000;
const MiB = 1024 * 1024;

// Segment attributes packed like VMX access rights: type[3:0] S[4] DPL[6:5] P[7] L[13] D/B[14] G[15]
const S = 1 << 4, P = 1 << 7, L = 1 << 13, DB = 1 << 14, G = 1 << 15;
const dpl = (n: number) => n << 5;
export const ATTR_CODE64_USER = 0xb | S | dpl(3) | P | L | G;
export const ATTR_DATA_USER = 0x3 | S | dpl(3) | P | DB | G;
export const ATTR_CODE32 = 0xb | S | P | DB | G;
export const ATTR_DATA32 = 0x3 | S | P | DB | G;

const CR0_PE = 1n, CR0_ET = 1n << 4n, CR0_NE = 1n << 5n, CR0_WP = 1n << 16n, CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const EFER_LME = 1n << 8n, EFER_LMA = 1n << 10n;

export class TestCpu {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  /** The 16 GPRs (rax rcx rdx rbx rsp rbp rsi rdi r8..r15) as a live view of the vCPU struct. */
  readonly gpr: BigUint64Array;
  private readonly k: Readonly<Record<string, number>>;
  private readonly bytes: Uint8Array;

  constructor(module: WebAssembly.Module = loadCoreModule(), knobs: Partial<MmuKnobs> = {}, mmu: MmuMode = "shadow", vcpus = 1) {
    this.vm = new Vm({ module, ramSize: 2 * MiB, knobs, mmu, vcpus });
    this.vcpu = this.vm.vcpus[0];
    this.k = this.vm.core.k;
    this.gpr = new BigUint64Array(this.vm.memory.buffer, this.vcpu.base + this.k.VCPU_REGS, 16);
    this.bytes = new Uint8Array(this.vm.memory.buffer);
    this.writePageTables();
  }

  private writePageTables(): void {
    const PRESENT_RW_USER = 7n;
    const dv = new DataView(this.vm.memory.buffer);
    const put = (gpa: number, v: bigint) => dv.setBigUint64(this.vm.ramBase + gpa, v, true);
    this.vm.fill(PML4_ADDR, 4 * 4096, 0);
    put(PML4_ADDR, BigInt(PML4_ADDR + 0x1000) | PRESENT_RW_USER);
    put(PML4_ADDR + 0x1000, BigInt(PML4_ADDR + 0x2000) | PRESENT_RW_USER);
    put(PML4_ADDR + 0x2000, BigInt(PML4_ADDR + 0x3000) | PRESENT_RW_USER);
    // accessed + dirty preset so no A/D updates happen during tests
    for (let i = 0; i < 512; i++) put(PML4_ADDR + 0x3000 + i * 8, BigInt(i * 4096) | PRESENT_RW_USER | 0x60n);
  }

  /** 64-bit mode, CPL 3: CS.L=1 DPL 3, RPL 3 selectors, flat data segments, 4-level paging (vCPU 0, or `v`). */
  enterLongModeUser(v: Vcpu = this.vcpu): void {
    const k = this.k;
    v.set64(k.VCPU_CR0, CR0_PE | CR0_ET | CR0_NE | CR0_WP | CR0_PG);
    v.set64(k.VCPU_CR4, CR4_PAE);
    v.set64(k.VCPU_EFER, EFER_LME | EFER_LMA);
    v.set64(k.VCPU_CR3, BigInt(PML4_ADDR));
    v.setSeg("cs", { selector: 0x33, base: 0n, limit: 0xffffffff, attr: ATTR_CODE64_USER });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) v.setSeg(s, { selector: 0x2b, base: 0n, limit: 0xffffffff, attr: ATTR_DATA_USER });
    this.noIdt(v);
    v.flushTlb();
  }

  /**
   * Flat 32-bit protected mode, CPL 0, paging off, ESP = STACK_TOP, with a GDT
   * (0x08 code, 0x10 data) and an IDT sending every exception to a hlt stub.
   */
  enterProtectedMode32(): void {
    const v = this.vcpu, k = this.k;
    const dv = new DataView(this.vm.memory.buffer, this.vm.ramBase);
    dv.setBigUint64(GDT_ADDR, 0n, true);
    dv.setBigUint64(GDT_ADDR + 8, 0x00cf9b000000ffffn, true);
    dv.setBigUint64(GDT_ADDR + 16, 0x00cf93000000ffffn, true);
    for (let vec = 0; vec < 32; vec++) {
      const handler = EXC_STUBS + 16 * vec;
      dv.setUint32(IDT_ADDR + vec * 8, (0x08 << 16) | (handler & 0xffff), true);
      dv.setUint32(IDT_ADDR + vec * 8 + 4, (handler & 0xffff0000) | 0x8e00, true); // P, DPL 0, 32-bit interrupt gate
      this.write(handler, new Uint8Array([0xf4])); // hlt
    }
    v.set64(k.VCPU_GDTR_BASE, BigInt(GDT_ADDR));
    v.u32(k.VCPU_GDTR_LIMIT, 3 * 8 - 1);
    v.set64(k.VCPU_IDTR_BASE, BigInt(IDT_ADDR));
    v.u32(k.VCPU_IDTR_LIMIT, 32 * 8 - 1);
    v.setReg("rsp", BigInt(STACK_TOP));
    v.set64(k.VCPU_CR0, CR0_PE | CR0_ET | CR0_NE);
    v.set64(k.VCPU_CR4, 0n);
    v.set64(k.VCPU_EFER, 0n);
    v.set64(k.VCPU_CR3, 0n);
    v.setSeg("cs", { selector: 0x08, base: 0n, limit: 0xffffffff, attr: ATTR_CODE32 });
    for (const s of ["ds", "es", "ss", "fs", "gs"] as const) v.setSeg(s, { selector: 0x10, base: 0n, limit: 0xffffffff, attr: ATTR_DATA32 });
    v.u32(k.VCPU_HALTED, 0);
    v.i32(k.VCPU_PENDING_IRQ, -1);
    v.flushTlb();
  }

  /** After a HLT exit in 32-bit mode: the exception vector whose stub halted, or -1. */
  exceptionVector(): number {
    const at = Number(this.rip) - 1 - EXC_STUBS;
    if (!this.vcpu.halted || at < 0 || at >= 32 * 16 || at % 16 !== 0) return -1;
    return at / 16;
  }

  private noIdt(v: Vcpu = this.vcpu): void {
    v.set64(this.k.VCPU_IDTR_BASE, 0n);
    v.u32(this.k.VCPU_IDTR_LIMIT, 0);
    v.u32(this.k.VCPU_HALTED, 0);
    v.i32(this.k.VCPU_PENDING_IRQ, -1);
  }

  /** Copy bytes to guest-physical (= linear) address `gpa`. */
  write(gpa: number, data: Uint8Array): void { this.bytes.set(data, this.vm.ramBase + gpa); }
  /** A live view of guest memory (no copy). */
  view(gpa: number, len: number): Uint8Array { return this.bytes.subarray(this.vm.ramBase + gpa, this.vm.ramBase + gpa + len); }

  get rip(): bigint { return this.vcpu.rip; }
  set rip(v: bigint) { this.vcpu.rip = v; }
  get rflags(): bigint { return this.vcpu.rflags; }
  set rflags(v: bigint) { this.vcpu.rflags = v; }
  get instructions(): bigint { return this.vcpu.instructions; }

  /** Run at most `n` instructions (KVM_RUN with a budget). */
  run(n = 1): ExitName { return this.vcpu.enter(n); }

  /** The decoder probe: length of the instruction at `rip` in the current mode, -1 if it faults. */
  decodeLength(rip: bigint): number {
    this.vm.core.fn.vcpu_bind(this.vcpu.base);
    return this.vm.core.fn.decode_length(rip);
  }
  /** A field of the last decodeLength() (see assembly/debug.ts). */
  decodedField(i: number): number { return this.vm.core.fn.decoded_field(i); }
}
