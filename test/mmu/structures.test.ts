/**
 * Unit tests of the shadow MMU's structures, driven through the core's test
 * hooks on a bare VM: pte_list_desc chains (rmap / parent_ptes), the hash of
 * shadow pages by gfn + role, write tracking of shadowed gfns, zapping.
 */
import { describe, it, expect, beforeEach } from "vitest";
import { Vm } from "../../src/vm.js";
import { loadCoreModule } from "../../src/platform/node.js";

const MiB = 1024 * 1024;
let vm: Vm;
let dv: DataView;
const k = () => vm.core.k;
const vm32 = (off: number) => dv.getUint32(vm.vmBase + off, true);
const fn = () => vm.mmu.fn;

beforeEach(() => {
  vm = new Vm({ ramSize: 32 * MiB, module: loadCoreModule(), mmu: "shadow" });
  dv = new DataView(vm.memory.buffer);
  vm.core.fn.vcpu_bind(vm.vcpus[0].base);
});

describe("pte_list_desc (rmap and parent_ptes chains)", () => {
  it("holds one entry inline, then chains descs of 14, and gives every desc back when emptied", () => {
    expect(k().PTE_LIST_EXT).toBe(14);
    const head = vm.ramBase + 0x10000; // a scratch u32 in guest RAM
    dv.setUint32(head, 0, true);
    const sptep = (i: number) => 0x100000 + i * 8;
    expect(fn().mmu_test_topup()).toBe(1);
    const added: number[] = [];
    for (let i = 0; i < 100; i++) {
      expect(fn().mmu_test_pte_list_add(head, sptep(i))).toBe(i); // returns the count before
      added.push(sptep(i));
      if (i === 0) expect(dv.getUint32(head, true)).toBe(sptep(0)); // single entry: the spte itself
      else expect(dv.getUint32(head, true) & 1).toBe(1); // a desc chain
      // the cache never runs dry: top it up as a fault would before mmu_lock
      if (i % 10 === 9) fn().mmu_test_topup();
    }
    expect(fn().mmu_test_pte_list_count(head)).toBe(100);
    const seen = new Set<number>();
    for (let i = 0; i < 100; i++) seen.add(fn().mmu_test_pte_list_get(head, i));
    expect([...seen].sort((a, b) => a - b)).toEqual(added);
    // remove in a scrambled order; the list stays exact after each removal
    const order = added.map((v, i) => ({ v, key: (i * 37) % 101 })).sort((a, b) => a.key - b.key).map((x) => x.v);
    let left = new Set(added);
    for (const v of order) {
      expect(fn().mmu_test_pte_list_remove(head, v)).toBe(1);
      left.delete(v);
      const n = fn().mmu_test_pte_list_count(head);
      expect(n).toBe(left.size);
      const now = new Set<number>();
      for (let i = 0; i < n; i++) now.add(fn().mmu_test_pte_list_get(head, i));
      expect(now).toEqual(left);
    }
    expect(dv.getUint32(head, true)).toBe(0);
    expect(fn().mmu_test_pte_list_remove(head, sptep(1))).toBe(0); // not there
    fn().mmu_test_free_caches();
    expect(vm32(k().VM_DESC_FREE_NR)).toBe(vm32(k().VM_DESC_NR)); // no desc leaked
  });
});

describe("the hash of shadow pages (kvm_mmu_get_page)", () => {
  const ROLE_L1 = 1 | (7 << 8) | (1 << 13); // level 1, ACC_ALL, cr0_wp, indirect
  it("hashes gfns like hash_64(gfn, 12)", () => {
    for (const gfn of [0, 1, 0x1234, 0xfffff, 0x7ffffff]) {
      const want = Number(((BigInt(gfn) * 0x61C8864680B583EBn) & 0xffffffffffffffffn) >> 52n);
      expect(fn().mmu_test_hashfn(gfn)).toBe(want);
    }
  });
  it("finds the same page for the same gfn and role, a new one for another role, and write-tracks indirect pages' gfns", () => {
    const gfn = 0x100;
    const miss = () => vm.vcpus[0].stats().mmu_cache_miss;
    const a = fn().mmu_test_get_page(gfn, ROLE_L1);
    expect(a).not.toBe(0);
    expect(miss()).toBe(1n);
    expect(fn().mmu_test_get_page(gfn, ROLE_L1)).toBe(a);
    expect(miss()).toBe(1n);
    expect(fn().mmu_gfn_track_count(gfn)).toBe(1);
    const b = fn().mmu_test_get_page(gfn, (ROLE_L1 & ~(7 << 8)) | (5 << 8)); // same table reached without write access
    expect(b).not.toBe(a);
    expect(fn().mmu_gfn_track_count(gfn)).toBe(2);
    const d = fn().mmu_test_get_page(gfn, ROLE_L1 | (1 << 7)); // direct: maps gfn.., shadows no guest table
    expect(fn().mmu_gfn_track_count(gfn)).toBe(2);
    expect(vm.mmu.pagesOfGfn(gfn).sort()).toEqual([a, b].sort());
    expect(vm.mmu.pagesInUse).toBe(3);
    expect(vm.mmu.audit()).toMatchObject({ errors: 0 });
    fn().mmu_zap_sp(a);
    expect(fn().mmu_gfn_track_count(gfn)).toBe(1);
    expect(vm.vcpus[0].stats().mmu_shadow_zapped).toBe(1n);
    const a2 = fn().mmu_test_get_page(gfn, ROLE_L1);
    expect(miss()).toBe(4n);
    expect(vm.mmu.pagesOfGfn(gfn)).toContain(a2);
    fn().mmu_zap_sp(d);
    expect(vm.mmu.audit()).toMatchObject({ errors: 0 });
  });
  it("keeps pages whose gfns share a bucket apart", () => {
    const g1 = 0x200;
    let g2 = g1 + 1;
    while (fn().mmu_test_hashfn(g2) !== fn().mmu_test_hashfn(g1)) g2++;
    expect(g2).toBeLessThan(32 * MiB / 4096);
    const p1 = fn().mmu_test_get_page(g1, ROLE_L1), p2 = fn().mmu_test_get_page(g2, ROLE_L1);
    expect(p1).not.toBe(p2);
    expect(fn().mmu_sp_gfn(p1)).toBe(g1);
    expect(fn().mmu_sp_gfn(p2)).toBe(g2);
    expect(fn().mmu_test_get_page(g1, ROLE_L1)).toBe(p1);
    expect(fn().mmu_test_get_page(g2, ROLE_L1)).toBe(p2);
    expect(vm.mmu.pagesOfGfn(g1)).toEqual([p1]);
    expect(fn().mmu_unprotect_gfn(g2)).toBe(1);
    expect(vm.mmu.pagesOfGfn(g2)).toEqual([]);
    expect(vm.mmu.pagesOfGfn(g1)).toEqual([p1]);
    expect(vm.mmu.audit()).toMatchObject({ errors: 0 });
  });
  it("fast zap (mmu_valid_gen) frees every page that is not a root in use", () => {
    for (let g = 0x300; g < 0x340; g++) fn().mmu_test_get_page(g, ROLE_L1);
    expect(vm.mmu.pagesInUse).toBe(64);
    const gen = vm32(k().VM_MMU_VALID_GEN);
    fn().mmu_zap_all_fast();
    expect(vm32(k().VM_MMU_VALID_GEN)).toBe(gen + 1);
    expect(vm.mmu.pagesInUse).toBe(0);
    expect(fn().mmu_gfn_track_count(0x300)).toBe(0);
    expect(vm.vcpus[0].stats().mmu_fast_zap).toBe(1n);
    fn().mmu_test_free_caches();
    expect(vm32(k().VM_SP_FREE_NR)).toBe(vm32(k().VM_SP_POOL_NR));
    expect(vm.mmu.audit()).toMatchObject({ errors: 0 });
  });
});

describe("layout", () => {
  it("sizes the pools like KVM's default (2% of guest pages, at least 64) and leaves them out in tdp mode", () => {
    expect(vm.mmu.maxPages).toBe(Math.max(Math.floor((32 * MiB / 4096) * 20 / 1000), 64));
    const tdp = new Vm({ ramSize: 32 * MiB, module: loadCoreModule(), mmu: "tdp" });
    expect(tdp.mmu.layout.end).toBe(tdp.mmu.layout.start);
    expect(tdp.mmu.maxPages).toBe(0);
    const big = new Vm({ ramSize: 256 * MiB, module: loadCoreModule(), mmu: "shadow", knobs: { n_max_mmu_pages: 100 } });
    expect(big.mmu.maxPages).toBe(100);
    // the pools sit below guest RAM and are listed as a region the core may write
    expect(big.mmu.layout.end).toBeLessThanOrEqual(big.ramBase);
    expect(big.regions().some((r) => r.name === "shadow mmu")).toBe(true);
  });
});
