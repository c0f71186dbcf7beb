/**
 * The MMU micro-benchmarks (src/bench/mmu_micro.ts) measure what they claim:
 * the timed loops do the operation the figure is named for, as many times as
 * the figure divides by. Times are reported by `shadow86 bench`, not tested.
 */
import { describe, it, expect } from "vitest";
import { mmuMicro, mmuMicroTable, type MmuMicro } from "../../src/bench/mmu_micro.js";
import { loadCoreModule } from "../../src/platform/node.js";

// The TLB-miss pass misses once per data page (more pages than TLB entries),
// and at most once more for the code page the data pages evicted.
function tlbMissEveryPage(r: MmuMicro): void {
  expect(r.counters.tlbMiss.tlb_miss! >= BigInt(r.faults) && r.counters.tlbMiss.tlb_miss! <= BigInt(r.faults + 1)).toBe(true);
}

// Every load of the #PF loop is one guest #PF, delivered and returned from;
// its only TLB miss is the faulting load (the IDT, GDT and stack hit).
function guestPfEveryLoad(r: MmuMicro): void {
  expect(r.counters.guestPf.pf_guest).toBe(BigInt(r.guestPfs));
  expect(r.counters.guestPf.exceptions).toBe(BigInt(r.guestPfs));
  expect(r.counters.guestPf.tlb_miss).toBe(BigInt(r.guestPfs));
}

describe("MMU micro-benchmarks", () => {
  const module = loadCoreModule();
  it("shadow: CR3 switches hit prev_roots (or rebuild with it off), every touched page is one shadow fault (one in 8 with pte_prefetch)", () => {
    const r = mmuMicro(module, "shadow", 0.01);
    expect(r.counters.hit.cr_exits).toBe(BigInt(r.switches));
    expect(r.counters.hit.prev_roots_hit).toBe(BigInt(r.switches));
    expect(r.counters.hit.mmu_root_alloc ?? 0n).toBe(0n);
    expect(r.counters.miss.prev_roots_hit ?? 0n).toBe(0n);
    expect(r.counters.miss.mmu_root_alloc).toBe(BigInt(r.switches));
    expect(r.counters.fault.pf_fixed).toBe(BigInt(r.faults));
    // with pte_prefetch a fault installs the 7 other sptes of its aligned group of 8 (the gptes have A set)
    expect(r.faults % 8).toBe(0);
    expect(r.counters.prefetch!.pf_fixed).toBe(BigInt(r.faults / 8));
    expect(r.counters.fault.pf_guest ?? 0n).toBe(0n);
    tlbMissEveryPage(r);
    expect(r.counters.tlbMiss.pf_fixed ?? 0n).toBe(0n);
    guestPfEveryLoad(r);
    // every gpte write one PT_WRITE exit whose new spte kvm_mmu_pte_write installs (seed 002), none flooded
    expect(r.counters.gpteWrite!.pt_write_exits).toBe(BigInt(r.gpteWrites));
    expect(r.counters.gpteWrite!.mmu_pte_updated).toBe(BigInt(r.gpteWrites));
    expect(r.counters.gpteWrite!.mmu_flooded ?? 0n).toBe(0n);
    expect(r.counters.gpteWrite!.pf_fixed ?? 0n).toBe(0n);
    expect(Number.isFinite(r.cr3HitNs) && Number.isFinite(r.faultNs!) && Number.isFinite(r.gpteWriteNs!)).toBe(true);
  });
  it("tdp: a CR3 switch is a TLB flush, no roots", () => {
    const r = mmuMicro(module, "tdp", 0.01);
    expect(r.counters.hit.tlb_flush).toBe(BigInt(r.switches));
    expect(r.counters.hit.prev_roots_hit ?? 0n).toBe(0n);
    expect(r.faultNs).toBeUndefined();
    tlbMissEveryPage(r);
    guestPfEveryLoad(r);
    expect(r.gpteWriteNs).toBeUndefined();
    expect(mmuMicroTable([r])).toMatch(/^\| tdp \| -?\d+ \| -?\d+ \| - \| - \| -?\d+ \| -?\d+ \| - \|$/m);
  });
});
