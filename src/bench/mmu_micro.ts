/**
 * MMU micro-benchmarks (issue 12): the cost of one MOV CR3 (to a cached root
 * and to one that is not cached), of one shadow page fault (and of a fresh
 * page when a fault prefetches its neighbours), of one TLB miss
 * and of one guest write to a shadowed gpte (the PT_WRITE exit), measured on
 * a bare vCPU in 64-bit mode at CPL 0 whose code loops over the operation.
 *
 * Each figure is a difference of two timed loops that differ only in the
 * operation (e.g. `mov cr3, rax` against `mov rdx, rax`), divided by how often
 * it ran, so the interpreter's own cost cancels out. The counters behind each
 * figure (prev_roots_hit, mmu_root_alloc, pf_fixed, pt_write_exits...) are returned too: the
 * test checks those (test/bench/mmu_micro.test.ts), never the times.
 *
 * Guest-physical layout: four page-table hierarchies (roots) at 0x10000 +
 * 0x10000 * i, each identity-mapping the first MAP_MIB MiB with 4 KiB pages,
 * accessed and dirty preset (no A/D writes while measuring); code at 0x8000.
 */
import { Vm } from "../vm.js";
import type { Vcpu } from "../vcpu.js";
import type { MmuKnobs, MmuMode } from "../mmu/knobs.js";
import { handlePtWrite } from "../mmu/pte_write.js";

const MiB = 1024 * 1024;
const MAP_MIB = 64; // pages the fault loop touches: 16384
const CODE = 0x8000;
const ROOTS = 4;
const rootAddr = (i: number) => 0x10000 + 0x10000 * i; // PML4, PDPT, PD; PTs after them
const PT_BASE = 0x100000; // the PTs (shared by every root): MAP_MIB / 2 pages
const DATA_BASE = 4 * MiB; // the fault loop's pages start here

// Segment attributes (VMX access-rights layout): type[3:0] S[4] DPL[6:5] P[7] L[13] D/B[14] G[15]
const ATTR_CODE64 = 0xb | (1 << 4) | (1 << 7) | (1 << 13) | (1 << 15);
const ATTR_DATA = 0x3 | (1 << 4) | (1 << 7) | (1 << 14) | (1 << 15);
const PRESENT_RW_AD = 0x3n | 0x60n;

export interface MmuMicro {
  mode: MmuMode;
  /** ns per MOV CR3 between two roots that stay cached (prev_roots), TLB flush and refill included. */
  cr3HitNs: number;
  /** ns per MOV CR3 when the new root is not among the cached ones (prev_roots=0). */
  cr3MissNs: number;
  /** ns per shadow page fault (TLB miss -> spte walk misses -> guest walk -> spte installed); undefined in tdp mode. */
  faultNs?: number;
  /** ns per fresh page touched with pte_prefetch on (one shadow fault installs its 7 neighbours); undefined in tdp mode. */
  freshPagePrefetchNs?: number;
  /** ns per software-TLB miss on a load whose translation is cached below the TLB (shadow: the spte walk; tdp: the guest walk). */
  tlbMissNs: number;
  /** ns per guest #PF on a not-present guest entry: the shadow fault that finds it (guest walk, injection), delivery through the IDT, a 3-instruction handler and iretq. */
  guestPfNs: number;
  guestPfs: number;
  /** ns per guest write to a shadowed gpte (PT_WRITE exit, kvm_mmu_pte_write, TLB flush and refill); undefined in tdp mode. */
  gpteWriteNs?: number;
  gpteWrites: number;
  switches: number;
  faults: number;
  counters: {
    hit: Record<string, bigint>; miss: Record<string, bigint>; fault: Record<string, bigint>; tlbMiss: Record<string, bigint>;
    prefetch?: Record<string, bigint>; guestPf: Record<string, bigint>; gpteWrite?: Record<string, bigint>;
  };
}

function setup(module: WebAssembly.Module, mode: MmuMode, knobs: Partial<MmuKnobs>): { vm: Vm; cpu: Vcpu } {
  const vm = new Vm({ module, ramSize: 128 * MiB, mmu: mode, knobs });
  const dv = new DataView(vm.memory.buffer, vm.ramBase);
  const ptPages = MAP_MIB / 2;
  for (let i = 0; i < MAP_MIB * 256; i++) dv.setBigUint64(PT_BASE + i * 8, BigInt(i * 4096) | PRESENT_RW_AD, true);
  for (let r = 0; r < ROOTS; r++) {
    const pml4 = rootAddr(r), pdpt = pml4 + 0x1000, pd = pml4 + 0x2000;
    vm.fill(pml4, 0x3000, 0);
    dv.setBigUint64(pml4, BigInt(pdpt) | PRESENT_RW_AD, true);
    dv.setBigUint64(pdpt, BigInt(pd) | PRESENT_RW_AD, true);
    for (let j = 0; j < ptPages; j++) dv.setBigUint64(pd + j * 8, BigInt(PT_BASE + j * 4096) | PRESENT_RW_AD, true);
  }
  const cpu = vm.vcpus[0]!;
  const k = vm.core.k;
  cpu.set64(k.VCPU_CR0, 0x80010033n); // PG WP NE ET MP PE
  cpu.set64(k.VCPU_CR4, 0x20n); // PAE
  cpu.set64(k.VCPU_EFER, 0x500n); // LMA LME
  cpu.set64(k.VCPU_CR3, BigInt(rootAddr(0)));
  cpu.setSeg("cs", { selector: 0x08, base: 0n, limit: 0xffffffff, attr: ATTR_CODE64 });
  for (const s of ["ds", "es", "ss", "fs", "gs"] as const) cpu.setSeg(s, { selector: 0x10, base: 0n, limit: 0xffffffff, attr: ATTR_DATA });
  cpu.set64(k.VCPU_IDTR_BASE, 0n);
  cpu.u32(k.VCPU_IDTR_LIMIT, 0);
  cpu.i32(k.VCPU_PENDING_IRQ, -1);
  cpu.pagingStateChanged();
  return { vm, cpu };
}

/** Run `code` (ending in hlt) from CODE with `regs`; returns the wall time in ns. */
function timed(vm: Vm, cpu: Vcpu, code: number[], regs: Record<string, bigint>): number {
  vm.write(CODE, Uint8Array.from(code));
  for (const [r, v] of Object.entries(regs)) cpu.setReg(r as "rax", v);
  cpu.rip = BigInt(CODE);
  cpu.u32(vm.core.k.VCPU_HALTED, 0);
  const t = process.hrtime.bigint();
  let keepLinks = false;
  for (;;) {
    const exit = cpu.enter(10_000_000, keepLinks);
    if (vm.mmu.shadow) handlePtWrite(cpu, vm.mmu); // as the machine's loop (src/machine.ts)
    keepLinks = exit === "PT_WRITE";
    if (exit === "HLT") break;
    if (exit !== "BUDGET" && exit !== "PT_WRITE") throw new Error(`mmuMicro: unexpected exit ${exit} at ${cpu.rip.toString(16)}`);
  }
  return Number(process.hrtime.bigint() - t);
}

/** The best of `first` (a run already made, its counters taken) and two more runs of `run`, or of three runs. */
function best(run: () => number, first = run()): number { return Math.min(first, run(), run()); }

function diff(a: Record<string, bigint>, b: Record<string, bigint>): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const [n, v] of Object.entries(a)) if (v !== (b[n] ?? 0n)) out[n] = v - (b[n] ?? 0n);
  return out;
}

/**
 * ns per iteration of `code` with the registers of the operation measured
 * (`regs(true, n)`) minus the same loop with the baseline's (`regs(false, n)`),
 * both warmed up first (tables shadowed, the core's code tiered up), and the
 * counters of one measured run.
 */
function loopCost(vm: Vm, cpu: Vcpu, code: number[], regs: (op: boolean, count: number) => Record<string, bigint>, n: number): { ns: number; counters: Record<string, bigint> } {
  timed(vm, cpu, code, regs(true, 200));
  timed(vm, cpu, code, regs(false, 200));
  const base = best(() => timed(vm, cpu, code, regs(false, n)));
  const before = cpu.stats();
  const t = timed(vm, cpu, code, regs(true, n));
  const counters = diff(cpu.stats(), before);
  return { ns: (best(() => timed(vm, cpu, code, regs(true, n)), t) - base) / n, counters };
}

// loop: <op rax>; <op rbx>; dec ecx; jnz loop; hlt
const cr3Loop = (op: number[][]) => [...op[0]!, ...op[1]!, 0xff, 0xc9, 0x75, -(op[0]!.length + op[1]!.length + 4) & 0xff, 0xf4];
const MOV_CR3 = [[0x0f, 0x22, 0xd8], [0x0f, 0x22, 0xdb]]; // mov cr3, rax / rbx
const MOV_RDX = [[0x48, 0x89, 0xc2], [0x48, 0x89, 0xda]]; // mov rdx, rax / rbx (same length)
// loop: mov al, [rsi]; add rsi, 4096; dec ecx; jnz loop; hlt
const TOUCH_LOOP = [0x8a, 0x06, 0x48, 0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, 0xff, 0xc9, 0x75, 0xf3, 0xf4];
// the same loop with `add rsi, 0`: every load hits the TLB
const SAME_PAGE_LOOP = TOUCH_LOOP.map((b, i) => (i === 6 ? 0x00 : b));

function cr3Cost(module: WebAssembly.Module, mode: MmuMode, knobs: Partial<MmuKnobs>, switches: number): { ns: number; counters: Record<string, bigint> } {
  const { vm, cpu } = setup(module, mode, knobs);
  const regs = { rax: BigInt(rootAddr(1)), rbx: BigInt(rootAddr(2)), rcx: BigInt(switches / 2) };
  // warm up (both roots built and cached, the core's code tiered up), then the best of three
  timed(vm, cpu, cr3Loop(MOV_CR3), regs);
  timed(vm, cpu, cr3Loop(MOV_RDX), regs);
  const base = best(() => timed(vm, cpu, cr3Loop(MOV_RDX), regs));
  const before = cpu.stats();
  const t = timed(vm, cpu, cr3Loop(MOV_CR3), regs);
  const counters = diff(cpu.stats(), before);
  return { ns: (best(() => timed(vm, cpu, cr3Loop(MOV_CR3), regs), t) - base) / switches, counters };
}

// Shadow mode: the first pass faults on every page (pte_prefetch off; on,
// on one page in 8), the second finds the sptes (both miss the 1024-entry
// TLB: more pages than entries), so the difference is the fault. The second
// against a pass that stays on one page is the TLB miss (the spte walk, or in
// tdp mode the guest walk).
function faultCost(module: WebAssembly.Module, mode: MmuMode, pages: number, prefetch: boolean): { ns?: number; missNs: number; counters: Record<string, bigint>; missCounters: Record<string, bigint> } {
  const { vm, cpu } = setup(module, mode, { pte_prefetch: prefetch });
  const regs = { rsi: BigInt(DATA_BASE), rcx: BigInt(pages) };
  // warm up on other pages (the code page mapped, the core's code tiered up)
  timed(vm, cpu, TOUCH_LOOP, { rsi: BigInt(MAP_MIB * MiB - pages * 4096), rcx: BigInt(pages) });
  timed(vm, cpu, TOUCH_LOOP, { rsi: BigInt(MAP_MIB * MiB - pages * 4096), rcx: BigInt(pages) });
  const before = cpu.stats();
  const first = timed(vm, cpu, TOUCH_LOOP, regs); // every page faults (shadow) / walks (tdp)
  const counters = diff(cpu.stats(), before);
  const beforeMiss = cpu.stats();
  timed(vm, cpu, TOUCH_LOOP, regs);
  const missCounters = diff(cpu.stats(), beforeMiss);
  const second = best(() => timed(vm, cpu, TOUCH_LOOP, regs)); // sptes present: only TLB misses
  const hits = best(() => timed(vm, cpu, SAME_PAGE_LOOP, regs));
  return { ns: mode === "shadow" ? (first - second) / pages : undefined, missNs: (second - hits) / pages, counters, missCounters };
}

// A guest #PF and back: a load from a page whose PDE is not present (above
// the MAP_MIB mapped), delivered through a 64-bit IDT gate to a handler that
// drops the error code, steps RIP over the 2-byte load and returns with
// iretq. Against the same loop loading from a mapped page. Shadow mode: the
// TLB miss, the spte walk and the shadow fault whose guest walk finds the
// entry not present and injects the #PF (pf_guest), as KVM with EPT off;
// tdp: the guest walk on the TLB miss raises it.
const GDT = 0x7000, IDT = 0x7800, HANDLER = 0x9000, STACK = 0x7000;
// handler: add rsp, 8; add qword [rsp], 2; iretq
const PF_HANDLER = [0x48, 0x83, 0xc4, 0x08, 0x48, 0x83, 0x04, 0x24, 0x02, 0x48, 0xcf];
// loop: mov al, [rsi]; dec ecx; jnz loop; hlt
const LOAD_LOOP = [0x8a, 0x06, 0xff, 0xc9, 0x75, 0xfa, 0xf4];
function guestPfCost(module: WebAssembly.Module, mode: MmuMode, n: number): { ns: number; counters: Record<string, bigint> } {
  const { vm, cpu } = setup(module, mode, {});
  const dv = new DataView(vm.memory.buffer, vm.ramBase);
  dv.setBigUint64(GDT + 8, 0x00af9a000000ffffn, true); // 0x08: 64-bit ring-0 code
  dv.setBigUint64(GDT + 16, 0x00cf92000000ffffn, true); // 0x10: ring-0 data
  const k = vm.core.k;
  cpu.set64(k.VCPU_GDTR_BASE, BigInt(GDT));
  cpu.u32(k.VCPU_GDTR_LIMIT, 3 * 8 - 1);
  // vector 14: a 64-bit interrupt gate to HANDLER
  dv.setUint32(IDT + 14 * 16, (0x08 << 16) | (HANDLER & 0xffff), true);
  dv.setUint32(IDT + 14 * 16 + 4, (HANDLER & 0xffff0000) | 0x8e00, true);
  cpu.set64(k.VCPU_IDTR_BASE, BigInt(IDT));
  cpu.u32(k.VCPU_IDTR_LIMIT, 32 * 16 - 1);
  vm.write(HANDLER, Uint8Array.from(PF_HANDLER));
  const unmapped = MAP_MIB * MiB, mapped = DATA_BASE;
  return loopCost(vm, cpu, LOAD_LOOP, (op, count) => ({ rsi: BigInt(op ? unmapped : mapped), rcx: BigInt(count), rsp: BigInt(STACK) }), n);
}

// Shadow mode: a guest write to a gpte the MMU shadows (the page table is
// write-protected): a PT_WRITE exit, kvm_mmu_pte_write with the default
// rules (update_pte installs the new spte, seed 002) and the TLB flush,
// then a read through the rewritten entry (a TLB miss, whose spte walk
// marks the shadow page used, so the writes never count as flooding). Each
// write toggles the gpte's dirty bit, so the spte really changes. Against
// the same loop writing an ordinary page.
// loop: mov [rdi], rax; xor rax, rdx; mov bl, [rsi]; dec ecx; jnz loop; hlt
const GPTE_WRITE_LOOP = [0x48, 0x89, 0x07, 0x48, 0x31, 0xd0, 0x8a, 0x1e, 0xff, 0xc9, 0x75, 0xf4, 0xf4];
export function ptWriteCost(module: WebAssembly.Module, writes: number): { ns: number; counters: Record<string, bigint> } {
  const { vm, cpu } = setup(module, "shadow", {});
  const data = DATA_BASE, gpte = PT_BASE + (data / 4096) * 8, plain = DATA_BASE + 0x10000;
  return loopCost(vm, cpu, GPTE_WRITE_LOOP,
    (op, count) => ({ rax: BigInt(data) | PRESENT_RW_AD, rdx: 0x40n, rdi: BigInt(op ? gpte : plain), rsi: BigInt(data), rcx: BigInt(count) }), writes);
}

/** The MMU micro-benchmarks in one MMU mode. `scale` 1 is the benchmark; tests use less. */
export function mmuMicro(module: WebAssembly.Module, mode: MmuMode, scale = 1): MmuMicro {
  const switches = Math.max(2, Math.round(200_000 * scale) & ~1);
  // more pages than the TLB has entries (1024), so the second pass misses on every one
  const pages = Math.max(2048, Math.min(Math.round(6_000 * scale), (MAP_MIB * MiB - DATA_BASE) / 4096 / 2));
  const hit = cr3Cost(module, mode, { prev_roots: true }, switches);
  const miss = cr3Cost(module, mode, { prev_roots: false }, switches);
  const fault = faultCost(module, mode, pages, false);
  const prefetch = mode === "shadow" ? faultCost(module, mode, pages, true) : undefined;
  // enough writes that the host's exit path (TypeScript) runs warm: at 2,000 the figure was ~4x
  const guestPfs = Math.max(200, Math.round(100_000 * scale));
  const guestPf = guestPfCost(module, mode, guestPfs);
  const gpteWrites = Math.max(200, Math.round(30_000 * scale));
  const gpte = mode === "shadow" ? ptWriteCost(module, gpteWrites) : undefined;
  return { mode, cr3HitNs: hit.ns, cr3MissNs: miss.ns, faultNs: fault.ns, freshPagePrefetchNs: prefetch?.ns, tlbMissNs: fault.missNs, guestPfNs: guestPf.ns, guestPfs,
    gpteWriteNs: gpte?.ns, gpteWrites, switches, faults: pages,
    counters: { hit: hit.counters, miss: miss.counters, fault: fault.counters, tlbMiss: fault.missCounters, prefetch: prefetch?.counters, guestPf: guestPf.counters,
      gpteWrite: gpte?.counters } };
}

/** The markdown table for `shadow86 bench`. */
export function mmuMicroTable(rows: MmuMicro[]): string {
  const out = ["| MMU mode | MOV CR3, cached root (prev_roots=1) ns | MOV CR3, prev_roots=0 ns | shadow page fault ns | fresh page, pte_prefetch=1 ns | TLB miss ns | guest #PF and iretq ns | gpte write (PT_WRITE exit) ns |", "|---|---:|---:|---:|---:|---:|---:|---:|"];
  const ns = (v?: number) => (v === undefined ? "-" : v.toFixed(0));
  for (const r of rows) out.push(`| ${r.mode} | ${ns(r.cr3HitNs)} | ${ns(r.cr3MissNs)} | ${ns(r.faultNs)} | ${ns(r.freshPagePrefetchNs)} | ${ns(r.tlbMissNs)} | ${ns(r.guestPfNs)} | ${ns(r.gpteWriteNs)} |`);
  return out.join("\n");
}
