/**
 * Issue 5: kvm_mmu_pte_write with the seeds' rules as knobs (src/mmu/pte_write.ts).
 * Each rule is measured on and off on the image made for it, asserting the
 * counters the seeds predict. "Exits" is the `exits` counter (every vmexit a
 * shadow-paging hypervisor would take: shadow page faults, guest #PF
 * injections, PT_WRITE, I/O, CR/INVLPG...), or, per guest fault, the trace
 * events that are such exits (see exitsPerDemandFault).
 */
import { describe, it, expect } from "vitest";
import { runImage, type MmuRun } from "./support.js";
import { KNOB_SPECS, DEFAULT_KNOBS, parseKnobs, KnobError, type MmuKnobs } from "../../src/mmu/knobs.js";
import { kvmPolicy, updatesWithoutDesc, detectWriteMisaligned, type PtWriteExit, type PteWritePolicy } from "../../src/mmu/pte_write.js";
import { TraceRecorder } from "../../src/trace/trace.js";
import type { Machine } from "../../src/machine.js";

const T = 180_000;
const RULES = ["update_pte", "pte_write_topup", "unprotect_rep_string", "byte_pte_write", "flood_detect"] as const;

/** Every PT_WRITE exit of a run, as the policy saw it (then handled by KVM's policy). */
function recordExits(into: PtWriteExit[], inner: PteWritePolicy = kvmPolicy): (m: Machine) => void {
  return (m) => { m.vm.mmu.pteWritePolicy = (mmu, vcpu, w) => { into.push(w); inner(mmu, vcpu, w); }; };
}

describe("the knobs", () => {
  it("every rule is a knob, on by default, listed with its seed", () => {
    for (const name of RULES) {
      const spec = KNOB_SPECS.find((s) => s.name === name);
      expect(spec, name).toBeDefined();
      expect(spec!.help).toMatch(/seed 00[23]/);
    }
    expect(DEFAULT_KNOBS).toMatchObject({ update_pte: true, pte_write_topup: true, unprotect_rep_string: true, byte_pte_write: true, flood_detect: "accessed" });
    expect(parseKnobs(["update_pte=0", "flood_detect=legacy", "byte_pte_write=off"])).toMatchObject({ update_pte: false, flood_detect: "legacy", byte_pte_write: false });
    expect(() => parseKnobs(["flood_detect=sometimes"])).toThrow(KnobError);
  });
  it("detect_write_misaligned: crossing a gpte or shorter than 4 bytes, except one byte with byte_pte_write (seed 003)", () => {
    expect(detectWriteMisaligned(8, 8, 8, true)).toBe(false);
    expect(detectWriteMisaligned(12, 4, 8, true)).toBe(false); // upper half of a 64-bit gpte
    expect(detectWriteMisaligned(12, 8, 8, true)).toBe(true); // crosses into the next gpte
    expect(detectWriteMisaligned(15, 1, 8, true)).toBe(false); // lock orb $0x80 on the NX byte
    expect(detectWriteMisaligned(15, 1, 8, false)).toBe(true); // KVM before seed 003
    expect(detectWriteMisaligned(8, 1, 8, false)).toBe(true);
    expect(detectWriteMisaligned(8, 2, 8, true)).toBe(true);
    expect(detectWriteMisaligned(4, 4, 4, true)).toBe(false); // a 32-bit gpte
    expect(detectWriteMisaligned(6, 4, 4, true)).toBe(true);
  });
});

// ---- seed 002: update, don't zap

const REGION = 0x8000000000n;
const NPAGES = 4096n;
const FRAMES_GFN = 0x1000n; // demand-fault*.c: frame(i) = 16 MiB + i * 4 KiB

/**
 * The exits each demand fault of demand-fault(-linux) costs, from the trace:
 * the guest #PF (a pf_guest event: the shadow fault that injected it), the
 * PT_WRITE exit of the handler's PTE store (the logged write whose value maps
 * the faulting page's frame), and shadow page faults (pf_fixed) on the
 * faulting page before the next guest #PF. `trapped`: the PTE store was a
 * PT_WRITE exit (its page table was already shadowed).
 */
function exitsPerDemandFault(tr: TraceRecorder): { trapped: Map<number, number>; untrapped: Map<number, number>; faults: number } {
  const trapped = new Map<number, number>(), untrapped = new Map<number, number>();
  let cur: { page: bigint; n: number; trapped: boolean } | null = null;
  let lastWriteMatches = false;
  let faults = 0;
  const done = () => {
    if (!cur) return;
    const m = cur.trapped ? trapped : untrapped;
    m.set(cur.n, (m.get(cur.n) ?? 0) + 1);
  };
  for (const e of tr.events) {
    const b = e.args?.b !== undefined ? BigInt(e.args.b as string) : 0n;
    if (e.name === "pf_guest") {
      done();
      cur = b >= REGION && b < REGION + NPAGES * 4096n ? { page: b >> 12n, n: 1, trapped: false } : null;
      if (cur) faults++;
    } else if (e.name === "pt_write") {
      lastWriteMatches = cur !== null && ((BigInt(e.args!.c as string) & 0xffffffffff000n) >> 12n) === FRAMES_GFN + (cur.page - (REGION >> 12n));
    } else if (cur && e.name === "exit PT_WRITE" && lastWriteMatches) {
      cur.n++;
      cur.trapped = true;
    } else if (cur && e.name === "pf_fixed" && b >> 12n === cur.page) cur.n++;
  }
  done();
  return { trapped, untrapped, faults };
}

function traced(image: string, knobs: Partial<MmuKnobs>): { r: MmuRun; per: ReturnType<typeof exitsPerDemandFault> } {
  const tr = new TraceRecorder(2_000_000);
  const r = runImage(image, "shadow", knobs, { trace: tr });
  expect(tr.dropped).toBe(0);
  expect(tr.truncated).toBe(false);
  return { r, per: exitsPerDemandFault(tr) };
}

describe("update_pte (seed 002): fault -> guest fixes the pte -> write trapped -> no re-fault", () => {
  it("demand-fault-linux (PTEs written with A, and D on write faults, as Linux does): 2 exits per demand fault with update_pte, 3 without", () => {
    const on = traced("demand-fault-linux", {});
    const off = traced("demand-fault-linux", { update_pte: false });
    for (const x of [on, off]) {
      expect(x.r.serial).toMatch(/^ALL PASSED/m);
      expect(x.r.audit).toMatchObject({ errors: 0, first: "" });
      expect(x.per.faults).toBe(4096 * 3 + 512);
    }
    expect(on.r.serial).toBe(off.r.serial);
    // on: every demand fault costs 2 exits: the #PF plus the PT_WRITE of its fix-up (the
    // re-access just works), or, when the table was not shadowed (see below), the #PF plus the
    // shadow fault of the re-access
    expect(on.per.trapped.size).toBe(1);
    expect(on.per.untrapped.size).toBeLessThanOrEqual(1);
    expect((on.per.trapped.get(2) ?? 0) + (on.per.untrapped.get(2) ?? 0)).toBe(12800);
    expect(on.per.trapped.get(2)).toBeGreaterThan(12700);
    // off: #PF + PT_WRITE + a shadow fault re-installing the zapped spte, for every fix-up
    // that was trapped; the first fault under each of the 8 page tables is not trapped (the
    // table is not shadowed yet: #PF + the shadow fault that shadows it), and neither are the
    // first ones after flood detection zapped a table that unmap_all() cleared entry by entry
    expect(off.per.trapped.size).toBe(1);
    const three = off.per.trapped.get(3)!;
    expect(three).toBeGreaterThan(12700);
    expect(off.per.untrapped).toEqual(new Map([[2, 12800 - three]]));
    // and each of those faults is exactly one exit more in the exits counter
    expect(off.r.stats.exits - on.r.stats.exits).toBe(BigInt(three));
    expect(on.r.stats.mmu_pte_updated).toBe(BigInt(on.per.trapped.get(2)!)); // one update per trapped fix-up
    expect(off.r.stats.mmu_pte_updated).toBe(0n);
  }, T);
  it("demand-fault (PTEs written without A): FNAME(update_pte) installs only accessed gptes, so nothing changes", () => {
    const on = runImage("demand-fault", "shadow", {});
    const off = runImage("demand-fault", "shadow", { update_pte: false });
    expect(on.stats.exits).toBe(off.stats.exits);
    expect(on.stats.pf_fixed).toBe(off.stats.pf_fixed);
  }, T);
});

// ---- seed 003: no allocation under the lock

describe("pte_write_topup (seed 003): the object cache on the pte-write path", () => {
  // empty the vCPU's object cache before every pte write: the state KVM's
  // pte-write path could be in (an INS emulation, many prefetches) before seed 003
  const emptyCache: PteWritePolicy = (mmu, vcpu, w) => { mmu.fn.mmu_test_free_caches(); kvmPolicy(mmu, vcpu, w); };
  it("with the cache forced empty and no top-up, every update falls back to a zap and the guest still passes; with the top-up they all install", () => {
    const off = runImage("demand-fault-linux", "shadow", { pte_write_topup: false }, { setup: (m) => { m.vm.mmu.pteWritePolicy = emptyCache; } });
    const on = runImage("demand-fault-linux", "shadow", { pte_write_topup: true }, { setup: (m) => { m.vm.mmu.pteWritePolicy = emptyCache; } });
    const ref = runImage("demand-fault-linux", "shadow", {});
    for (const r of [off, on]) {
      expect(r.serial).toBe(ref.serial);
      expect(r.status).toBe(33);
      expect(r.audit).toMatchObject({ errors: 0, first: "" });
    }
    expect(off.stats.mmu_pte_updated).toBe(0n);
    expect(updatesWithoutDesc(off.machine.vm.mmu)).toBeGreaterThan(12000);
    // ...so each demand fault pays the re-fault again (the seed 002 saving is lost, nothing breaks)
    expect(off.stats.pf_fixed).toBeGreaterThan(ref.stats.pf_fixed + 12000n);
    expect(updatesWithoutDesc(on.machine.vm.mmu)).toBe(0);
    expect(on.stats.mmu_pte_updated).toBe(ref.stats.mmu_pte_updated);
    expect(on.stats.exits).toBe(ref.stats.exits);
  }, T);
});

// ---- seed 003: rep string writes unprotect

/** Runs of PT_WRITE exits made by one rep stosb of 4 KiB (first exit with 4095 iterations left). */
function memsetRuns(exits: PtWriteExit[]): number[] {
  const runs: number[] = [];
  for (let i = 0; i < exits.length; i++) {
    const w = exits[i];
    if (!(w.string && w.rep && w.size === 1 && w.repCount === 4095n)) continue;
    let n = 1;
    while (i + n < exits.length && exits[i + n].rip === w.rip && exits[i + n].rep && exits[i + n].repCount === w.repCount - BigInt(n)) n++;
    runs.push(n);
  }
  return runs;
}

describe("unprotect_rep_string (seed 003): a memset of a page table costs one exit", () => {
  it("pt-memset: each 4 KiB rep stosb over a page table is 1 PT_WRITE exit with the rule, 4096 without it (and without flood detection)", () => {
    const on: PtWriteExit[] = [], off: PtWriteExit[] = [], offFlood: PtWriteExit[] = [];
    const a = runImage("pt-memset", "shadow", {}, { setup: recordExits(on) });
    const b = runImage("pt-memset", "shadow", { unprotect_rep_string: false, flood_detect: "off" }, { setup: recordExits(off) });
    const c = runImage("pt-memset", "shadow", { unprotect_rep_string: false }, { setup: recordExits(offFlood) });
    for (const r of [a, b, c]) {
      expect(r.serial).toMatch(/^ALL PASSED/m);
      expect(r.audit).toMatchObject({ errors: 0, first: "" });
    }
    // 3a (freed T) and 6a (live T): rep stosb of 4096 bytes over a shadowed page table
    // (with the rule on, only those two find T shadowed; with it off, T is still shadowed
    // for later memsets of the image too)
    expect(memsetRuns(on)).toEqual([1, 1]);
    const runsOff = memsetRuns(off);
    expect(runsOff.length).toBeGreaterThanOrEqual(2);
    expect(runsOff.every((n) => n === 4096)).toBe(true);
    // flood detection alone also stops it, after KVM's threshold of 3 writes
    const runsFlood = memsetRuns(offFlood);
    expect(runsFlood.length).toBeGreaterThanOrEqual(2);
    expect(runsFlood.every((n) => n === 3)).toBe(true);
    expect(b.stats.pt_write_exits).toBeGreaterThan(a.stats.pt_write_exits + 8000n);
    expect(b.stats.exits - a.stats.exits).toBeGreaterThan(8000n);
  }, T);
});

// ---- seed 003: one-byte writes are not misaligned

describe("byte_pte_write (seed 003): andb/orb/lock btr on a gpte byte update the spte", () => {
  it("pte-bitops: no shadow page zapped with the rule (flood detection off to isolate it); thousands without", () => {
    const on = runImage("pte-bitops", "shadow", { flood_detect: "off" });
    const off = runImage("pte-bitops", "shadow", { flood_detect: "off", byte_pte_write: false });
    for (const r of [on, off]) {
      expect(r.serial).toMatch(/^ALL PASSED/m);
      expect(r.audit).toMatchObject({ errors: 0, first: "" });
    }
    expect(on.stats.mmu_shadow_zapped).toBe(0n);
    expect(on.stats.mmu_flooded).toBe(0n);
    expect(off.stats.mmu_shadow_zapped).toBeGreaterThan(3000n);
    expect(off.stats.mmu_flooded).toBe(off.stats.mmu_shadow_zapped); // KVM counts misaligned zaps in mmu_flooded
    expect(on.stats.exits).toBeLessThan(off.stats.exits);
    expect(on.stats.mmu_pte_updated).toBeGreaterThan(off.stats.mmu_pte_updated);
  }, T);
  it("with the default knobs every zap in pte-bitops is a flood zap, never a misaligned byte", () => {
    const d = runImage("pte-bitops", "shadow", {});
    expect(d.stats.mmu_shadow_zapped).toBe(d.stats.mmu_flooded);
    const off = runImage("pte-bitops", "shadow", { byte_pte_write: false });
    expect(d.stats.mmu_shadow_zapped).toBeLessThan(off.stats.mmu_shadow_zapped / 4n);
  }, T);
});

// ---- seed 003: write flooding

interface GfnWrite { gfn: number; pagesAfter: number; flooded: boolean; }
/** Every PT_WRITE exit of flood.elf by gfn: did it leave the gfn shadowed, did it count in mmu_flooded. */
function floodRun(knobs: Partial<MmuKnobs>): { r: MmuRun; byGfn: Map<number, GfnWrite[]> } {
  const byGfn = new Map<number, GfnWrite[]>();
  const r = runImage("flood", "shadow", knobs, { setup: (m) => { m.vm.mmu.pteWritePolicy = (mmu, vcpu, w) => {
    const gfn = Math.floor(Number(w.gpa) / 4096);
    const f0 = vcpu.stats().mmu_flooded;
    kvmPolicy(mmu, vcpu, w);
    if (!byGfn.has(gfn)) byGfn.set(gfn, []);
    byGfn.get(gfn)!.push({ gfn, pagesAfter: mmu.pagesOfGfn(gfn).length, flooded: vcpu.stats().mmu_flooded > f0 });
  }; } });
  expect(r.serial).toMatch(/^ALL PASSED/m);
  expect(r.audit).toMatchObject({ errors: 0, first: "" });
  return { r, byGfn };
}

describe("flood_detect (seed 003): a page written 3 times without being used for translation is zapped", () => {
  it("flood, accessed: each of the 16 former page tables takes exactly 3 PT_WRITE exits as a data buffer, the 3rd zaps it (mmu_flooded); the live table used after each write is never flooded", () => {
    const { r, byGfn } = floodRun({});
    const former = [...byGfn.values()].filter((ws) => ws.length === 3 && ws[2].flooded && ws[2].pagesAfter === 0 && !ws[0].flooded && !ws[1].flooded);
    expect(former.length).toBeGreaterThanOrEqual(16);
    const live = [...byGfn.values()].find((ws) => ws.length >= 4000)!;
    expect(live).toBeDefined();
    expect(live.filter((w) => w.flooded).length).toBe(0);
    expect(r.stats.mmu_flooded).toBeGreaterThanOrEqual(16n);
    expect(r.stats.mmu_flooded).toBeLessThan(20n);
  }, T);
  it("flood, off: the former tables stay write-protected (thousands of PT_WRITE exits each); legacy (KVM before seed 003) floods the live table too", () => {
    const on = floodRun({});
    const off = floodRun({ flood_detect: "off" });
    const legacy = floodRun({ flood_detect: "legacy" });
    expect(off.r.stats.mmu_flooded).toBe(0n);
    expect([...off.byGfn.values()].filter((ws) => ws.length > 4000).length).toBeGreaterThanOrEqual(16);
    expect(off.r.stats.pt_write_exits).toBeGreaterThan(on.r.stats.pt_write_exits * 10n);
    // the last speculative spte is no evidence of use when the guest writes gptes without A
    // (no spte is speculatively installed): legacy zaps the live table again and again
    const live = [...legacy.byGfn.values()].find((ws) => ws.length >= 4000)!;
    expect(live.filter((w) => w.flooded).length).toBeGreaterThan(4000);
    expect(legacy.r.stats.mmu_flooded).toBeGreaterThan(on.r.stats.mmu_flooded * 100n);
  }, T);
});

// ---- seed 004: indirect pages only, 32-bit quadrants

describe("seed 004: written-spte lookup on indirect pages, 4-byte gptes onto 8-byte sptes", () => {
  it("get_written_sptes: page_offset << 1 and the quadrant for a 32-bit page table; a 32-bit pde is two shadow pdes", () => {
    const m = runImage("hello", "shadow", {}, { maxInstructions: 1000n }).machine;
    const fn = m.vm.mmu.fn;
    m.vm.core.fn.vcpu_bind(m.vm.vcpus[0].base);
    const ROLE_4B = 1 << 4, Q = (q: number) => q << 5, ACC = 7 << 8;
    const pt0 = fn.mmu_test_get_page(0x500, 1 | ROLE_4B | Q(0) | ACC);
    const pt1 = fn.mmu_test_get_page(0x500, 1 | ROLE_4B | Q(1) | ACC);
    // gpte 2 (offset 8) lies in quadrant 0 as spte 2; gpte 514 (offset 0x808) in quadrant 1 as spte 2
    expect(fn.mmu_written_spte(pt0, 8, 4)).toBe(2);
    expect(fn.mmu_written_spte(pt1, 8, 4)).toBe(-1);
    expect(fn.mmu_written_spte(pt0, 0x808, 4)).toBe(-1);
    expect(fn.mmu_written_spte(pt1, 0x808, 4)).toBe(2);
    expect(fn.mmu_get_written_nspte()).toBe(1);
    // page directory: pde 1 (offset 4) covers 4 MiB = shadow pdes 2 and 3 of quadrant 0;
    // pde 512 (offset 0x800, 2 GiB) is shadow pde 0 of quadrant 2
    const pd0 = fn.mmu_test_get_page(0x501, 2 | ROLE_4B | Q(0) | ACC);
    const pd2 = fn.mmu_test_get_page(0x501, 2 | ROLE_4B | Q(2) | ACC);
    expect(fn.mmu_written_spte(pd0, 4, 4)).toBe(2);
    expect(fn.mmu_get_written_nspte()).toBe(2);
    expect(fn.mmu_written_spte(pd2, 0x800, 4)).toBe(0);
    expect(fn.mmu_get_written_nspte()).toBe(2);
    expect(fn.mmu_written_spte(pd0, 0x800, 4)).toBe(-1);
    // 8-byte gptes: no quadrants
    const pae = fn.mmu_test_get_page(0x502, 1 | ACC);
    expect(fn.mmu_written_spte(pae, 0x808, 8)).toBe(0x101);
    // direct pages are never returned for a gfn's pte writes (for_each_gfn_indirect_valid_sp)
    const direct = fn.mmu_test_get_page(0x503, 1 | (1 << 7) | ACC);
    expect(direct).not.toBe(0);
    expect(m.vm.mmu.pagesOfGfn(0x503)).toEqual([]);
    expect(m.vm.mmu.pagesOfGfn(0x500).sort()).toEqual([pt0, pt1].sort());
  });
});
