// What the host (TypeScript) calls in the MMU: VM set-up, the audit, and the
// primitives a pte-write policy is built from (src/mmu/). Each takes
// mmu_lock itself. gfns and indices are i32 at the boundary (no BigInt).
export {
  VM_MMU_MODE, VM_N_MAX_MMU_PAGES, VM_N_USED_MMU_PAGES, VM_SP_POOL_NR, VM_DESC_NR, VM_DESC_FREE_NR, VM_SP_FREE_NR,
  VM_INDIRECT_SHADOW_PAGES, VM_MMU_VALID_GEN, VM_KNOB_PREV_ROOTS, VM_KNOB_BROKEN_FLUSH, VM_KNOB_ZAP_ORPHANS,
  VM_AUDIT_ERRORS, VM_AUDIT_CODE, VM_AUDIT_SP, VM_AUDIT_INDEX, VM_AUDIT_GFN, VM_AUDIT_SPTE, VM_AUDIT_DETAIL,
  VM_AUDIT_CHECKED, VM_KNOB_LARGE_SPTES, VM_KNOB_PTE_PREFETCH, VM_KNOB_BLOCK_CACHE, VM_KNOB_BLOCK_JIT, MMU_MODE_TDP, MMU_MODE_SHADOW, BROKEN_FLUSH_INVLPG, BROKEN_FLUSH_CR3, BROKEN_FLUSH_WRPROT,
  SP_SIZE, SPT_SIZE, SP_GFNS_SIZE, KVM_NUM_MMU_PAGES, PTE_LIST_DESC_SIZE, PTE_LIST_EXT, KVM_PERMILLE_MMU_PAGES,
  KVM_MIN_ALLOC_MMU_PAGES, SP_POOL_SLACK, DESCS_PER_MMU_PAGE, VCPU_MMU_END,
} from "./layout";
import { VMB } from "../vm";
import {
  VM_MMU_MODE, VM_N_MAX_MMU_PAGES, VM_SP_POOL_NR, VM_SP_HDR_BASE, VM_SP_SPT_BASE, VM_SP_GFNS_BASE, VM_SP_FREE,
  VM_SP_FREE_NR, VM_HASH_BASE, VM_DESC_BASE, VM_DESC_NR, VM_DESC_FREE, VM_DESC_FREE_NR, VM_DESC_BUMP, VM_SP_BUMP, VM_RMAP_BASE,
  VM_GFN_TRACK_BASE, VM_NR_GFNS, VM_KNOB_PREV_ROOTS, VM_MMU_VALID_GEN, VM_N_USED_MMU_PAGES, VM_ACTIVE_HEAD,
  VM_ACTIVE_TAIL, VM_INDIRECT_SHADOW_PAGES, VM_MMU_LOCK, VM_POOL_LOCK,
  SP_HASH_NEXT, SP_GFNS_SIZE, SP_ROOT_COUNT,
  SP_PARENT_PTES, VM_RMAP_BASE_2M, VM_RMAP_BASE_1G, VM_LPAGE_BASE_2M, VM_LPAGE_BASE_1G,
} from "./layout";
import { mmu_lock, mmu_unlock, mmu_topup_memory_caches, mmu_free_memory_caches, mmu_cache_nr_desc } from "./cache";
import { kvm_mmu_update_pte } from "./fault";
import {
  kvm_mmu_prepare_zap_page, kvm_mmu_commit_zap_page, kvm_mmu_unprotect_page, kvm_mmu_zap_all_fast, kvm_mmu_zap_spte,
  mmu_page_zap_pte, mmu_topup_memory_caches_reclaim,
} from "./zap";
import {
  kvm_mmu_get_page, sp_role, sp_gfn, hash_bucket, is_obsolete_sp, ROLE_DIRECT, ROLE_INVALID, ROLE_HAS_4_BYTE_GPTE,
  role_level, role_quadrant, kvm_page_table_hashfn, gfn_track_count,
} from "./mmu_page";
import { kvm_mmu_audit } from "./audit";
import { pte_list_add, pte_list_remove, pte_list_count, pte_list_get, nr_regions } from "./rmap";

// Lay the MMU's pools out at the addresses the host chose (kvm_mmu_init_vm).
export function kvm_mmu_vm_init(mode: u32, n_max: u32, pool_nr: u32, hdr_base: usize, spt_base: usize, gfns_base: usize,
                                hash_base: usize, desc_base: usize, desc_nr: u32, rmap_base: usize, track_base: usize,
                                nr_gfns: u32): void {
  const v = VMB;
  store<u32>(v + VM_MMU_MODE, mode);
  store<u32>(v + VM_MMU_LOCK, 0);
  store<u32>(v + VM_POOL_LOCK, 0);
  store<u32>(v + VM_N_MAX_MMU_PAGES, n_max);
  store<u32>(v + VM_N_USED_MMU_PAGES, 0);
  store<u32>(v + VM_SP_POOL_NR, pool_nr);
  store<u32>(v + VM_SP_HDR_BASE, <u32>hdr_base);
  store<u32>(v + VM_SP_SPT_BASE, <u32>spt_base);
  store<u32>(v + VM_SP_GFNS_BASE, <u32>gfns_base);
  store<u32>(v + VM_HASH_BASE, <u32>hash_base);
  store<u32>(v + VM_DESC_BASE, <u32>desc_base);
  store<u32>(v + VM_DESC_NR, desc_nr);
  store<u32>(v + VM_RMAP_BASE, <u32>rmap_base);
  store<u32>(v + VM_GFN_TRACK_BASE, <u32>track_base);
  store<u32>(v + VM_NR_GFNS, nr_gfns);
  store<u32>(v + VM_KNOB_PREV_ROOTS, 1);
  store<u32>(v + VM_MMU_VALID_GEN, 0);
  store<u32>(v + VM_ACTIVE_HEAD, 0);
  store<u32>(v + VM_ACTIVE_TAIL, 0);
  store<u32>(v + VM_INDIRECT_SHADOW_PAGES, 0);
  if (mode == 0) return;
  // The Vm that created this memory calls this once, before anything else
  // ran: WebAssembly memory starts zeroed, so the hash, the rmap and
  // write-track arrays and the pools are already empty. Nothing is cleared or
  // threaded here: touching them would fault in ~600 KiB of host pages (256
  // MiB of RAM) before the first instruction. Shadow page headers and
  // pte_list_descs come from their free lists when those hold any, else the
  // next never-used one (VM_SP_BUMP / VM_DESC_BUMP, cache.ts).
  store<u32>(v + VM_SP_FREE, 0);
  store<u32>(v + VM_SP_BUMP, 0);
  store<u32>(v + VM_SP_FREE_NR, pool_nr);
  store<u32>(v + VM_DESC_FREE, 0);
  store<u32>(v + VM_DESC_BUMP, 0);
  store<u32>(v + VM_DESC_FREE_NR, desc_nr);
}

export { kvm_mmu_audit };

// The large-spte structures (rmaps and disallow_lpage counts per 2 MiB and
// 1 GiB region), zeroed here; 0 bases disable large sptes.
export function kvm_mmu_vm_init_lpage(rmap_2m: usize, rmap_1g: usize, lpage_2m: usize, lpage_1g: usize): void {
  store<u32>(VMB + VM_RMAP_BASE_2M, <u32>rmap_2m);
  store<u32>(VMB + VM_RMAP_BASE_1G, <u32>rmap_1g);
  store<u32>(VMB + VM_LPAGE_BASE_2M, <u32>lpage_2m);
  store<u32>(VMB + VM_LPAGE_BASE_1G, <u32>lpage_1g);
  if (rmap_2m != 0) memory.fill(rmap_2m, 0, <usize>nr_regions(2) << 2);
  if (rmap_1g != 0) memory.fill(rmap_1g, 0, <usize>nr_regions(3) << 2);
  if (lpage_2m != 0) memory.fill(lpage_2m, 0, <usize>nr_regions(2) << 2);
  if (lpage_1g != 0) memory.fill(lpage_1g, 0, <usize>nr_regions(3) << 2);
}

// Zap everything (kvm_mmu_zap_all_fast); the vCPUs reload their roots.
export function mmu_zap_all_fast(): void {
  mmu_lock();
  kvm_mmu_zap_all_fast();
  mmu_unlock();
}

// Zap every indirect page shadowing gfn: it becomes writable again (kvm_mmu_unprotect_page).
export function mmu_unprotect_gfn(gfn: u32): i32 {
  mmu_lock();
  const n = kvm_mmu_unprotect_page(<u64>gfn);
  mmu_unlock();
  return n;
}

// Zap one shadow page (prepare + commit).
export function mmu_zap_sp(sp: usize): void {
  mmu_lock();
  if ((sp_role(sp) & ROLE_INVALID) == 0) kvm_mmu_prepare_zap_page(sp);
  kvm_mmu_commit_zap_page();
  mmu_unlock();
}

// Zap one spte of a page (the written gpte's shadow), flushing the TLBs.
export function mmu_zap_spte(sp: usize, index: i32): i32 {
  mmu_lock();
  const r = kvm_mmu_zap_spte(sp, index);
  mmu_unlock();
  return r ? 1 : 0;
}

// Make spte `index` of a 4 KiB-level indirect page follow the guest entry
// gpte (hi:lo) (FNAME(update_pte), seed 002). With `topup` the vCPU's object
// cache is filled first; without it, and with no free pte_list_desc in the
// cache, the spte is zapped instead (seed 003: never allocate under the lock).
// Returns 1 if an spte was installed, 0 if it was dropped/zapped.
export function mmu_update_pte(sp: usize, index: i32, gpte_lo: u32, gpte_hi: u32, topup: i32): i32 {
  if (topup != 0) mmu_topup_memory_caches_reclaim();
  mmu_lock();
  let r = false;
  if (mmu_cache_nr_desc() == 0) mmu_page_zap_pte(sp, index);
  else r = kvm_mmu_update_pte(sp, index, (<u64>gpte_hi << 32) | <u64>gpte_lo);
  kvm_mmu_commit_zap_page();
  mmu_unlock();
  return r ? 1 : 0;
}

// The next valid indirect page shadowing gfn after `prev` (0: the first);
// 0 at the end (for_each_gfn_indirect_valid_sp).
export function mmu_gfn_next_sp(gfn: u32, prev: usize): usize {
  let sp = prev == 0 ? <usize>load<u32>(hash_bucket(<u64>gfn)) : <usize>load<u32>(prev + SP_HASH_NEXT);
  while (sp != 0) {
    if (sp_gfn(sp) == <u64>gfn && (sp_role(sp) & ROLE_DIRECT) == 0 && !is_obsolete_sp(sp)) return sp;
    sp = <usize>load<u32>(sp + SP_HASH_NEXT);
  }
  return 0;
}

export function mmu_sp_role(sp: usize): u32 { return sp_role(sp); }
export function mmu_sp_gfn(sp: usize): u32 { return <u32>sp_gfn(sp); }
export function mmu_sp_root_count(sp: usize): u32 { return load<u32>(sp + SP_ROOT_COUNT); }
export function mmu_sp_parent_count(sp: usize): i32 { return pte_list_count(sp + SP_PARENT_PTES); }

// The first spte of `sp` that shadows the guest entry written at page
// offset `offset` (`bytes` long), or -1 if the write is outside this page's
// quadrant (get_written_sptes). `mmu_written_nspte` is left with how many
// sptes follow from it: 2 for a 32-bit page-directory entry.
export let mmu_written_nspte: i32 = 1;
export function mmu_written_spte(sp: usize, offset: u32, bytes: u32): i32 {
  const role = sp_role(sp);
  mmu_written_nspte = 1;
  if ((role & ROLE_HAS_4_BYTE_GPTE) == 0) return <i32>(offset >> 3);
  let page_offset = offset << 1; // 4-byte gptes become 8-byte sptes
  let quadrant: u32 = 0;
  if (role_level(role) == 2) {
    page_offset = (page_offset & ~7) << 1; // one 4 MiB pde is two shadow pdes
    mmu_written_nspte = 2;
  }
  quadrant = page_offset >> 12;
  page_offset &= 0xfff;
  if (quadrant != role_quadrant(role)) return -1;
  return <i32>(page_offset >> 3);
}
export function mmu_get_written_nspte(): i32 { return mmu_written_nspte; }

export function mmu_gfn_track_count(gfn: u32): u32 { return gfn_track_count(<u64>gfn); }

// ---- hooks for unit tests
export function mmu_test_topup(): i32 { return mmu_topup_memory_caches() ? 1 : 0; }
export function mmu_test_free_caches(): void { mmu_free_memory_caches(); }
export function mmu_test_pte_list_add(headp: usize, sptep: usize): i32 { return pte_list_add(headp, sptep); }
export function mmu_test_pte_list_remove(headp: usize, sptep: usize): i32 { return pte_list_remove(headp, sptep) ? 1 : 0; }
export function mmu_test_pte_list_count(headp: usize): i32 { return pte_list_count(headp); }
export function mmu_test_pte_list_get(headp: usize, i: i32): usize { return pte_list_get(headp, i); }
export function mmu_test_hashfn(gfn: u32): u32 { return kvm_page_table_hashfn(<u64>gfn); }
// kvm_mmu_get_page as a test sees it: the page for (gfn, role), made if missing
export function mmu_test_get_page(gfn: u32, role: u32): usize {
  mmu_topup_memory_caches();
  mmu_lock();
  const sp = kvm_mmu_get_page(<u64>gfn, role);
  kvm_mmu_commit_zap_page();
  mmu_unlock();
  return sp;
}
