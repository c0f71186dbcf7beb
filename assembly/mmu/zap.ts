// Zapping shadow pages: prepare (unlink from children and parents, stop
// write-tracking the gfn, mark invalid) then commit (flush the TLBs, free).
// Zap one page, zap one spte, unprotect a gfn (zap every indirect page that
// shadows it), recycle the oldest pages, and the fast zap of everything by
// bumping mmu_valid_gen. All under mmu_lock.
import { VMB } from "../vm";
import { stat_inc } from "../cpu/state";
import { STAT_MMU_SHADOW_ZAPPED, STAT_MMU_RECYCLED, STAT_MMU_FAST_ZAP } from "../stats";
import {
  VM_MMU_VALID_GEN, VM_N_USED_MMU_PAGES, VM_N_MAX_MMU_PAGES, VM_KNOB_ZAP_ORPHANS,
  SP_ROLE, SP_PARENT_PTES, SP_ROOT_COUNT, SP_LINK_NEXT, SP_SPT, SPTE_ENTRIES, SP_FLAGS, SPF_ON_ACTIVE,
  KVM_MIN_FREE_MMU_PAGES, KVM_REFILL_PAGES,
} from "./layout";
import {
  sp_role, sp_gfn, sp_level, sp_spt, is_obsolete_sp, kvm_mmu_page_get_gfn, unaccount_shadowed, kvm_mmu_free_page,
  hash_del, hash_bucket, active_tail, active_prev, active_del, ROLE_INVALID, ROLE_DIRECT,
} from "./mmu_page";
import { SP_HASH_NEXT } from "./layout";
import { trace, TRACE_ZAP } from "../trace";
import { is_shadow_present_pte, is_last_spte, spte_to_child_sp, mmu_spte_clear } from "./spte";
import { rmap_remove, pte_list_remove, pte_list_count, pte_list_get } from "./rmap";
import { kvm_flush_remote_tlbs, kvm_reload_remote_mmus } from "./tlbflush";
import { mmu_lock, mmu_unlock, mmu_topup_memory_caches } from "./cache";

// The pages prepared for freeing (KVM's invalid_list), linked through SP_LINK_NEXT.
let invalid_list: usize = 0;
// sptes cleared since the last commit: the TLBs must be flushed even if no page is freed
let zap_flush_needed: bool = false;

// Clear a leaf spte and drop it from its gfn's rmap (drop_spte).
export function drop_spte(sp: usize, index: i32): void {
  const sptep = sp_spt(sp) + (<usize>index << 3);
  const old = mmu_spte_clear(sptep);
  if (is_shadow_present_pte(old)) rmap_remove(sptep, kvm_mmu_page_get_gfn(sp, index), sp_level(sp));
}

// Cut the link from an upper spte to `child` (drop_parent_pte).
export function drop_parent_pte(child: usize, sptep: usize): void {
  pte_list_remove(child + SP_PARENT_PTES, sptep);
  mmu_spte_clear(sptep);
}

// Zap one spte of `sp`: a leaf is dropped, a link to a child is cut
// (mmu_page_zap_pte). Returns true if it was present. With the zap_orphans
// knob a child left without parents (and not a root) is zapped too.
export function mmu_page_zap_pte(sp: usize, index: i32): bool {
  const sptep = sp_spt(sp) + (<usize>index << 3);
  const spte = load<u64>(sptep);
  if (!is_shadow_present_pte(spte)) return false;
  if (is_last_spte(spte, sp_level(sp))) {
    drop_spte(sp, index);
  } else {
    const child = spte_to_child_sp(spte);
    drop_parent_pte(child, sptep);
    if (load<u32>(VMB + VM_KNOB_ZAP_ORPHANS) != 0 && load<u32>(child + SP_PARENT_PTES) == 0 &&
        load<u32>(child + SP_ROOT_COUNT) == 0 && (sp_role(child) & ROLE_INVALID) == 0) {
      kvm_mmu_prepare_zap_page(child);
    }
  }
  zap_flush_needed = true;
  return true;
}

function kvm_mmu_page_unlink_children(sp: usize): void {
  for (let i = 0; i < SPTE_ENTRIES; i++) mmu_page_zap_pte(sp, i);
}

function kvm_mmu_unlink_parents(sp: usize): void {
  const head = sp + SP_PARENT_PTES;
  while (pte_list_count(head) > 0) drop_parent_pte(sp, pte_list_get(head, 0));
}

// Take `sp` out of use (kvm_mmu_prepare_zap_page). A page still in use as a
// root stays allocated, marked invalid, until its last user lets go.
export function kvm_mmu_prepare_zap_page(sp: usize): void {
  stat_inc(STAT_MMU_SHADOW_ZAPPED);
  trace(TRACE_ZAP, <u32>sp_level(sp), sp_gfn(sp), 0);
  const role = sp_role(sp);
  kvm_mmu_page_unlink_children(sp);
  kvm_mmu_unlink_parents(sp);
  if ((role & (ROLE_INVALID | ROLE_DIRECT)) == 0) unaccount_shadowed(sp_gfn(sp));
  if (load<u32>(sp + SP_ROOT_COUNT) == 0) {
    // off the active list, but still counted in n_used_mmu_pages until it is freed
    if ((load<u32>(sp + SP_FLAGS) & SPF_ON_ACTIVE) != 0) active_del(sp);
    store<u32>(sp + SP_LINK_NEXT, <u32>invalid_list);
    invalid_list = sp;
  } else if ((role & ROLE_INVALID) == 0 && !is_obsolete_sp(sp)) {
    kvm_reload_remote_mmus();
  }
  store<u32>(sp + SP_ROLE, role | ROLE_INVALID);
  zap_flush_needed = true;
}

// Free what prepare left on invalid_list, after flushing the TLBs (kvm_mmu_commit_zap_page).
export function kvm_mmu_commit_zap_page(): void {
  if (invalid_list == 0 && !zap_flush_needed) return;
  kvm_flush_remote_tlbs();
  zap_flush_needed = false;
  let sp = invalid_list;
  invalid_list = 0;
  while (sp != 0) {
    const next = <usize>load<u32>(sp + SP_LINK_NEXT);
    hash_del(sp);
    kvm_mmu_free_page(sp);
    sp = next;
  }
}

// Zap one page and commit (kvm_mmu_zap_page).
export function kvm_mmu_zap_page(sp: usize): void {
  if ((sp_role(sp) & ROLE_INVALID) != 0) return;
  kvm_mmu_prepare_zap_page(sp);
  kvm_mmu_commit_zap_page();
}

// Zap every valid indirect page that shadows `gfn`, so the guest may write
// it freely again (kvm_mmu_unprotect_page). Returns the pages zapped.
export function kvm_mmu_unprotect_page(gfn: u64): i32 {
  let n = 0;
  let sp = <usize>load<u32>(hash_bucket(gfn));
  while (sp != 0) {
    const next = <usize>load<u32>(sp + SP_HASH_NEXT);
    if (sp_gfn(sp) == gfn && (sp_role(sp) & ROLE_DIRECT) == 0 && !is_obsolete_sp(sp)) {
      kvm_mmu_prepare_zap_page(sp);
      n++;
    }
    sp = next;
  }
  kvm_mmu_commit_zap_page();
  return n;
}

// Recycle the oldest pages that are not roots (kvm_mmu_zap_oldest_mmu_pages).
export function kvm_mmu_zap_oldest_mmu_pages(nr: i32): i32 {
  let zapped = 0;
  while (zapped < nr) {
    let sp = active_tail();
    while (sp != 0 && (load<u32>(sp + SP_ROOT_COUNT) != 0 || (sp_role(sp) & ROLE_INVALID) != 0)) sp = active_prev(sp);
    if (sp == 0) break;
    kvm_mmu_prepare_zap_page(sp);
    stat_inc(STAT_MMU_RECYCLED);
    zapped++;
  }
  kvm_mmu_commit_zap_page();
  return zapped;
}

// Keep KVM_MIN_FREE_MMU_PAGES below the cap free before a fault allocates
// (make_mmu_pages_available).
export function make_mmu_pages_available(): void {
  const used = <i32>load<u32>(VMB + VM_N_USED_MMU_PAGES);
  const max = <i32>load<u32>(VMB + VM_N_MAX_MMU_PAGES);
  const avail = max - used;
  if (avail >= KVM_MIN_FREE_MMU_PAGES) return;
  kvm_mmu_zap_oldest_mmu_pages(KVM_REFILL_PAGES - avail);
}

// Zap everything in O(pages) without walking the rmaps: every page made
// before the bump is obsolete; roots in use are marked invalid and every
// vCPU reloads (kvm_mmu_zap_all_fast).
export function kvm_mmu_zap_all_fast(): void {
  stat_inc(STAT_MMU_FAST_ZAP);
  store<u32>(VMB + VM_MMU_VALID_GEN, load<u32>(VMB + VM_MMU_VALID_GEN) + 1);
  kvm_reload_remote_mmus();
  // kvm_zap_obsolete_pages: oldest first; roots in use stay (invalid) until released
  let sp = active_tail();
  while (sp != 0) {
    const prev = active_prev(sp);
    if ((sp_role(sp) & ROLE_INVALID) == 0) kvm_mmu_prepare_zap_page(sp);
    sp = prev;
    // zapping may have unlinked `prev` (zap_orphans): restart from the tail then
    if (sp != 0 && (load<u32>(sp + SP_FLAGS) & SPF_ON_ACTIVE) == 0) sp = active_tail();
  }
  kvm_mmu_commit_zap_page();
}

// Zap the one spte (sp, index) and flush: the primitive for a pte-write
// policy that zaps only the written entry (mmu_pte_write_zap_pte).
export function kvm_mmu_zap_spte(sp: usize, index: i32): bool {
  const r = mmu_page_zap_pte(sp, index);
  kvm_mmu_commit_zap_page();
  return r;
}

// Top up the vCPU's object caches before mmu_lock; if a pool ran dry,
// recycle the oldest shadow pages (which frees their sptes' rmap descs) and
// try again, as the shrinker would. Returns false only if nothing more can
// be recycled (the caller then zaps everything).
export function mmu_topup_memory_caches_reclaim(): bool {
  if (mmu_topup_memory_caches()) return true;
  for (let i = 0; i < 1024; i++) {
    mmu_lock();
    const z = kvm_mmu_zap_oldest_mmu_pages(KVM_REFILL_PAGES);
    mmu_unlock();
    if (mmu_topup_memory_caches()) return true;
    if (z == 0) break;
  }
  return false;
}
