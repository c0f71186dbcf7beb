/**
 * The shadow MMU under real guests: prev_roots (seed 004), fast zap in the
 * middle of a run, recycling under a small n_max_mmu_pages, the PT_WRITE
 * exit and its default policy, and the negative controls (a broken TLB flush
 * must make the guest tests fail, or the audit object).
 */
import { describe, it, expect } from "vitest";
import { runImage } from "./support.js";
import { readFileSync } from "node:fs";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { imagePath } from "./support.js";
import { parseKnobs, KnobError } from "../../src/mmu/knobs.js";
import { zapPolicy, type PteWritePolicy } from "../../src/mmu/pte_write.js";

// A test-only policy built on the mmu_update_pte primitive (FNAME(update_pte),
// seed 002): a whole aligned gpte written into a 4 KiB-level page table
// updates its spte; anything else zaps the page as the default does.
const updatePolicy: PteWritePolicy = (mmu, vcpu, w) => {
  for (const x of w.writes) {
    const gfn = Math.floor(x.gpa / 4096), off = x.gpa % 4096;
    for (const sp of mmu.pagesOfGfn(gfn)) {
      const idx = mmu.fn.mmu_written_spte(sp, off, x.size);
      if (idx < 0) continue;
      const role = mmu.fn.mmu_sp_role(sp);
      const size = role & 0x10 ? 4 : 8; // has_4_byte_gpte
      if ((role & 0xf) !== 1 || x.size !== size || off % size !== 0) { mmu.fn.mmu_zap_sp(sp); continue; }
      const b = vcpu.vm.read(x.gpa, size);
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      mmu.fn.mmu_update_pte(sp, idx, dv.getUint32(0, true), size === 8 ? dv.getUint32(4, true) : 0, 1);
    }
  }
};

const T = 120_000;

describe("prev_roots (seed 004)", () => {
  it("cr3-switch reuses cached roots with prev_roots on, and builds one per MOV CR3 with it off", () => {
    const on = runImage("cr3-switch", "shadow", { prev_roots: true });
    const off = runImage("cr3-switch", "shadow", { prev_roots: false });
    for (const r of [on, off]) {
      expect(r.status).toBe(33);
      expect(r.audit.errors).toBe(0);
    }
    expect(on.serial).toBe(off.serial);
    expect(on.stats.prev_roots_hit).toBeGreaterThan(1000n);
    expect(off.stats.prev_roots_hit).toBe(0n);
    // without prev_roots every MOV CR3 loads a root; a hit (or reloading the current CR3) skips that
    expect(off.stats.mmu_root_alloc).toBeGreaterThanOrEqual(off.stats.cr_exits - 10n);
    expect(on.stats.mmu_root_alloc).toBeLessThan(off.stats.mmu_root_alloc);
  }, T);
});

describe("fast zap and recycling", () => {
  it("kvm_mmu_zap_all_fast in the middle of pt-torture: everything is rebuilt and the guest still passes", () => {
    const bytes: number[] = [];
    const m = new Machine({
      module: loadCoreModule(), ramSize: 256 * 1024 * 1024, kernel: new Uint8Array(readFileSync(imagePath("pt-torture"))),
      kernelPath: "guest-images/pt-torture.elf", onSerial: (b) => bytes.push(b), maxInstructions: 1_500_000n, mmu: "shadow",
    });
    const first = m.run();
    expect(first.reason).toBe("instruction-limit");
    const mmu = m.vm.mmu;
    m.vm.core.fn.vcpu_bind(m.vm.vcpus[0].base);
    expect(mmu.pagesInUse).toBeGreaterThan(20);
    expect(mmu.audit().errors).toBe(0);
    mmu.fn.mmu_zap_all_fast();
    // only roots still referenced (current + prev_roots) survive, marked invalid
    expect(mmu.pagesInUse).toBeLessThanOrEqual(4);
    expect(mmu.audit().errors).toBe(0);
    m.opts.maxInstructions = 4_000_000_000n;
    const r = m.run();
    const serial = Buffer.from(bytes).toString("latin1");
    expect(r.status).toBe(33);
    expect(serial).toMatch(/^ALL PASSED/m);
    expect(r.stats.mmu_fast_zap).toBe(1n);
    m.vm.core.fn.vcpu_bind(m.vm.vcpus[0].base);
    expect(mmu.audit()).toMatchObject({ errors: 0, first: "" });
  }, T);

  it("a small n_max_mmu_pages recycles the oldest pages (mmu_recycled) and every torture image still passes", () => {
    for (const image of ["pt-torture", "pt-torture-32", "pt-torture-pae"]) {
      for (const knobs of [{ n_max_mmu_pages: 16 }, { n_max_mmu_pages: 40, large_sptes: false }]) {
        const r = runImage(image, "shadow", knobs);
        expect(r.serial).toMatch(/^ALL PASSED/m);
        expect(r.status).toBe(33);
        expect(r.stats.mmu_recycled).toBeGreaterThan(0n);
        expect(r.pages).toBeLessThanOrEqual(knobs.n_max_mmu_pages);
        expect(r.audit).toMatchObject({ errors: 0, first: "" });
      }
    }
  }, T);

  it("zap_orphans=1 (children left without parents are zapped too) passes with the audit clean", () => {
    const r = runImage("forkwait", "shadow", { zap_orphans: true });
    expect(r.status).toBe(33);
    expect(r.audit).toMatchObject({ errors: 0, first: "" });
  }, T);
});

describe("PT_WRITE exits (default policy: zap the shadow pages holding the written entry)", () => {
  it("each write to a shadowed page table is one PT_WRITE exit, handled once (mmu_pte_write) and emulated by the core", () => {
    const r = runImage("demand-fault", "shadow");
    expect(r.status).toBe(33);
    const s = r.stats;
    expect(s.pt_write_exits).toBeGreaterThan(1000n);
    expect(s.mmu_pte_write).toBeGreaterThanOrEqual(s.pt_write_exits);
    expect(s.pf_emulate).toBe(s.pt_write_exits);
    expect(s.mmu_shadow_zapped).toBeGreaterThan(0n);
    expect(r.audit.errors).toBe(0);
    // tdp mode never traps page-table writes
    const t = runImage("demand-fault", "tdp");
    expect(t.stats.pt_write_exits).toBe(0n);
    expect(t.serial).toBe(r.serial);
  }, T);
  it("rep stosb over a page table and byte-wide andb on PTEs (pt-memset, pte-bitops) log the rep-string facts and pass", () => {
    for (const image of ["pt-memset", "pte-bitops"]) {
      const r = runImage(image, "shadow");
      expect(r.status).toBe(33);
      expect(r.stats.pt_write_exits).toBeGreaterThan(0n);
      expect(r.audit).toMatchObject({ errors: 0, first: "" });
    }
  }, T);
});

describe("the update-one-spte primitive (mmu_update_pte)", () => {
  it("a policy that updates sptes instead of zapping passes every page-table torture with the audit clean", () => {
    for (const image of ["pt-torture", "pt-torture-pae", "pt-torture-32", "pte-bitops", "kernbench"]) {
      const r = runImage(image, "shadow", {}, { setup: (m) => { m.vm.mmu.pteWritePolicy = updatePolicy; } });
      expect(r.serial, image).toMatch(/^ALL PASSED/m);
      expect(r.status, image).toBe(33);
      expect(r.audit, image).toMatchObject({ errors: 0, first: "" });
    }
  }, T);
  it("demand faults need no re-fault when the written pte updates the spte (seed 002's pattern)", () => {
    // against the first policy (zap the page), not KVM's default (src/mmu/pte_write.ts, test/mmu/pte_write.test.ts)
    // (pte_prefetch off: its faults saved would blur the policies' difference)
    const zap = runImage("demand-fault", "shadow", { pte_prefetch: false }, { setup: (m) => { m.vm.mmu.pteWritePolicy = zapPolicy; } });
    const upd = runImage("demand-fault", "shadow", { pte_prefetch: false }, { setup: (m) => { m.vm.mmu.pteWritePolicy = updatePolicy; } });
    expect(upd.serial).toBe(zap.serial);
    expect(upd.audit.errors).toBe(0);
    // the fix-up store installs the spte: fewer shadow faults, no page rebuilt...
    expect(upd.stats.pf_fixed).toBeLessThan(zap.stats.pf_fixed - 4000n);
    expect(upd.stats.mmu_shadow_zapped).toBe(0n);
    expect(upd.stats.mmu_cache_miss).toBeLessThan(100n);
    // ...but the page stays protected, so clearing a table entry by entry is one
    // PT_WRITE each (what flood detection and unprotect rules are for)
    expect(upd.stats.pt_write_exits).toBeGreaterThan(zap.stats.pt_write_exits);
  }, T);
});

describe("large sptes (seed 001)", () => {
  it("2 MiB guest pages get 2 MiB sptes (far fewer shadow faults); page tables inside them keep the audit clean (such a large spte turns read-only, then 4 KiB on a write)", () => {
    // (pte_prefetch off: it maps the 4 KiB pages under a large guest page 8 at a time)
    const on = runImage("pt-torture", "shadow", { pte_prefetch: false });
    const off = runImage("pt-torture", "shadow", { large_sptes: false, pte_prefetch: false });
    expect(on.serial).toBe(off.serial);
    for (const r of [on, off]) expect(r.audit).toMatchObject({ errors: 0, first: "" });
    // the boot stub's identity map and pt-torture's 2 MiB slots: far fewer shadow faults and pages
    expect(on.stats.pf_fixed * 2n).toBeLessThan(off.stats.pf_fixed);
    expect(on.stats.mmu_cache_miss).toBeLessThan(off.stats.mmu_cache_miss);
    // hello's whole run touches a handful of 2 MiB regions: one spte each
    const hello = runImage("hello", "shadow");
    expect(hello.stats.pf_fixed).toBeLessThan(100n);
    expect(hello.audit.errors).toBe(0);
  }, T);
  it("every image passes with large sptes off too (direct 4 KiB shadow pages under large guest pages)", () => {
    for (const image of ["pt-torture-32", "pt-torture-pae", "kernbench", "pte-bitops"]) {
      const r = runImage(image, "shadow", { large_sptes: false });
      expect(r.serial, image).toMatch(/^ALL PASSED/m);
      expect(r.audit, image).toMatchObject({ errors: 0, first: "" });
    }
  }, T);
});

describe("negative controls: a broken flush is caught", () => {
  it.each(["tdp", "shadow"] as const)("pt-torture reports FAIL when MOV CR3 does not flush the TLB (--mmu %s)", (mmu) => {
    const good = runImage("pt-torture", mmu);
    expect(good.status).toBe(33);
    const r = runImage("pt-torture", mmu, { broken_flush: "cr3" });
    expect(r.serial).toMatch(/^FAIL/m);
    expect(r.status).toBe(35);
  }, T);
  it("pte-bitops reports FAIL when INVLPG does not flush (tdp)", () => {
    const r = runImage("pte-bitops", "tdp", { broken_flush: "invlpg" });
    expect(r.serial).toMatch(/^FAIL/m);
    expect(r.status).toBe(35);
  }, T);
  it("pte-bitops reports FAIL and the audit finds stale sptes when write-protecting a new page table does not flush (shadow)", () => {
    // under the zap policy the stale sptes are still there at the end for the audit to find;
    // KVM's policy (the default) updates them on later trapped writes, so only the guest sees it
    const r = runImage("pte-bitops", "shadow", { broken_flush: "wrprot" }, { setup: (m) => { m.vm.mmu.pteWritePolicy = zapPolicy; } });
    const d = runImage("pte-bitops", "shadow", { broken_flush: "wrprot" });
    expect(d.serial).toMatch(/^FAIL/m);
    expect(d.status).toBe(35);
    expect(r.serial).toMatch(/^FAIL/m);
    expect(r.status).toBe(35);
    expect(r.audit.errors).toBeGreaterThan(0);
  }, T);
});

describe("knobs", () => {
  it("parse name=value and reject what they do not know", () => {
    expect(parseKnobs(["prev_roots=0", "n_max_mmu_pages=100", "broken_flush=cr3"])).toMatchObject({ prev_roots: false, n_max_mmu_pages: 100, broken_flush: "cr3" });
    expect(() => parseKnobs(["prev_roots=maybe"])).toThrow(KnobError);
    expect(() => parseKnobs(["nope=1"])).toThrow(/unknown knob "nope"/);
    expect(() => parseKnobs(["broken_flush=all"])).toThrow(KnobError);
  });
});
