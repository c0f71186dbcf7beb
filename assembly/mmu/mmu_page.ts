// struct kvm_mmu_page: the role word, the hash of shadow pages by gfn, the
// active list (oldest recycled first), allocation from the vCPU's object
// cache, and write tracking of the gfns that indirect pages shadow
// (account_shadowed: gfn_track + rmap_write_protect).
import { VMB } from "../vm";
import { stat_inc } from "../cpu/state";
import { STAT_MMU_CACHE_MISS } from "../stats";
import {
  VM_HASH_BASE, VM_ACTIVE_HEAD, VM_ACTIVE_TAIL, VM_N_USED_MMU_PAGES, VM_MMU_VALID_GEN, VM_GFN_TRACK_BASE,
  VM_NR_GFNS, VM_INDIRECT_SHADOW_PAGES, VM_LPAGE_BASE_2M, VM_LPAGE_BASE_1G, VM_SP_SPT_BASE, VM_SP_GFNS_BASE, VM_SP_HDR_BASE, VM_MMU_WRITE_PROTECT_ALL_INDICATOR,
  SP_SIZE, SP_ROLE, SP_GFN, SP_SPT, SP_GFNS, SP_PARENT_PTES, SP_HASH_NEXT, SP_LINK_PREV, SP_LINK_NEXT,
  SP_MMU_VALID_GEN, SP_ROOT_COUNT, SP_UNSYNC, SP_WRITE_FLOODING_COUNT, SP_POSSIBLE_WRITABLE_SPTES, SP_FLAGS,
  SP_POSSIBLE_WRITABLE_SPTE_BITMAP, SP_MMU_WRITE_PROTECT_ALL_GEN, SP_INDEX, SPF_IN_USE, SPF_ON_ACTIVE,
  SPT_SIZE, SP_GFNS_SIZE, KVM_MMU_HASH_SHIFT,
} from "./layout";
import { mmu_cache_alloc_sp, mmu_free_sp_to_pool } from "./cache";
import { rmap_write_protect } from "./rmap";
import { kvm_flush_remote_tlbs_wrprot } from "./tlbflush";
import { pt_read } from "./walk";

// ---- union kvm_mmu_page_role (KVM's bit layout)
export const ROLE_LEVEL_MASK: u32 = 0xf; // bits 0-3
export const ROLE_HAS_4_BYTE_GPTE: u32 = 1 << 4; // 32-bit non-PAE guest tables (was !cr4_pae)
export const ROLE_QUADRANT_SHIFT: u32 = 5; // bits 5-6
export const ROLE_QUADRANT_MASK: u32 = 3 << 5;
export const ROLE_DIRECT: u32 = 1 << 7;
export const ROLE_ACCESS_SHIFT: u32 = 8; // bits 8-10 (ACC_*)
export const ROLE_ACCESS_MASK: u32 = 7 << 8;
export const ROLE_INVALID: u32 = 1 << 11;
export const ROLE_EFER_NX: u32 = 1 << 12;
export const ROLE_CR0_WP: u32 = 1 << 13;
export const ROLE_SMEP_ANDNOT_WP: u32 = 1 << 14;
export const ROLE_SMAP_ANDNOT_WP: u32 = 1 << 15;
// shadow86: CR4.PSE changes what a 4-byte PDE with PS means, so pages built
// under each setting are kept apart (KVM resets the MMU context instead).
export const ROLE_CR4_PSE: u32 = 1 << 19;

@inline export function role_level(role: u32): i32 { return <i32>(role & ROLE_LEVEL_MASK); }
@inline export function role_access(role: u32): u32 { return (role & ROLE_ACCESS_MASK) >> ROLE_ACCESS_SHIFT; }
@inline export function role_quadrant(role: u32): u32 { return (role & ROLE_QUADRANT_MASK) >> ROLE_QUADRANT_SHIFT; }
@inline export function role_direct(role: u32): bool { return (role & ROLE_DIRECT) != 0; }
@inline export function role_4byte(role: u32): bool { return (role & ROLE_HAS_4_BYTE_GPTE) != 0; }
export function role_with(role: u32, level: i32, direct: bool, access: u32, quadrant: u32): u32 {
  role &= ~(ROLE_LEVEL_MASK | ROLE_DIRECT | ROLE_ACCESS_MASK | ROLE_QUADRANT_MASK | ROLE_INVALID);
  role |= <u32>level | (direct ? ROLE_DIRECT : 0) | (access << ROLE_ACCESS_SHIFT) | (quadrant << ROLE_QUADRANT_SHIFT);
  return role;
}

// ---- field access
@inline export function sp_role(sp: usize): u32 { return load<u32>(sp + SP_ROLE); }
@inline export function sp_gfn(sp: usize): u64 { return load<u64>(sp + SP_GFN); }
@inline export function sp_spt(sp: usize): usize { return <usize>load<u32>(sp + SP_SPT); }
@inline export function sp_level(sp: usize): i32 { return <i32>(load<u32>(sp + SP_ROLE) & ROLE_LEVEL_MASK); }
@inline export function sp_direct(sp: usize): bool { return (load<u32>(sp + SP_ROLE) & ROLE_DIRECT) != 0; }
@inline export function sp_root_count(sp: usize): u32 { return load<u32>(sp + SP_ROOT_COUNT); }
@inline export function sp_from_spt(spt: usize): usize {
  return <usize>load<u32>(VMB + VM_SP_HDR_BASE) + ((spt - <usize>load<u32>(VMB + VM_SP_SPT_BASE)) >> 12) * <usize>SP_SIZE;
}

// The guest entry spte `index` of an indirect page shadows (a 32-bit guest's
// 1024-entry table is two pages, by quadrant; its 4 MiB PDE is two sptes).
export function sp_guest_entry(sp: usize, index: i32): u64 {
  const role = sp_role(sp);
  const base = sp_gfn(sp) << 12;
  if ((role & ROLE_HAS_4_BYTE_GPTE) == 0) return pt_read(base + (<u64>index << 3), true);
  const q = <u64>role_quadrant(role);
  if (role_level(role) == 1) return pt_read(base + ((q * 512 + <u64>index) << 2), false);
  return pt_read(base + (((q << 8) | (<u64>index >> 1)) << 2), false);
}

// The gfn an spte of `sp` maps (kvm_mmu_page_get_gfn): indirect pages remember
// it per entry; direct pages map a contiguous range.
export function kvm_mmu_page_get_gfn(sp: usize, index: i32): u64 {
  const role = sp_role(sp);
  if ((role & ROLE_DIRECT) != 0) return sp_gfn(sp) + (<u64>index << (<u64>(role_level(role) - 1) * 9));
  return <u64>load<u32>(<usize>load<u32>(sp + SP_GFNS) + (<usize>index << 2));
}
export function kvm_mmu_page_set_gfn(sp: usize, index: i32, gfn: u64): void {
  const g = <usize>load<u32>(sp + SP_GFNS);
  if (g != 0) store<u32>(g + (<usize>index << 2), <u32>gfn);
}

// obsolete: zapped while still a root, or from before the last fast zap
@inline export function is_obsolete_sp(sp: usize): bool {
  return (sp_role(sp) & ROLE_INVALID) != 0 || load<u32>(sp + SP_MMU_VALID_GEN) != load<u32>(VMB + VM_MMU_VALID_GEN);
}

// ---- hash (kvm_page_table_hashfn: hash_64(gfn, KVM_MMU_HASH_SHIFT))
@inline export function kvm_page_table_hashfn(gfn: u64): u32 {
  return <u32>((gfn * 0x61C8864680B583EB) >> (64 - <u64>KVM_MMU_HASH_SHIFT));
}
@inline export function hash_bucket(gfn: u64): usize {
  return <usize>load<u32>(VMB + VM_HASH_BASE) + (<usize>kvm_page_table_hashfn(gfn) << 2);
}
function hash_add(sp: usize): void {
  const b = hash_bucket(sp_gfn(sp));
  store<u32>(sp + SP_HASH_NEXT, load<u32>(b));
  store<u32>(b, <u32>sp);
}
export function hash_del(sp: usize): bool {
  let p = hash_bucket(sp_gfn(sp));
  while (true) {
    const cur = <usize>load<u32>(p);
    if (cur == 0) return false;
    if (cur == sp) { store<u32>(p, load<u32>(sp + SP_HASH_NEXT)); store<u32>(sp + SP_HASH_NEXT, 0); return true; }
    p = cur + SP_HASH_NEXT;
  }
}
export function hash_contains(sp: usize): bool {
  let cur = <usize>load<u32>(hash_bucket(sp_gfn(sp)));
  while (cur != 0) { if (cur == sp) return true; cur = <usize>load<u32>(cur + SP_HASH_NEXT); }
  return false;
}

// ---- active_mmu_pages (newest at the head)
function active_add(sp: usize): void {
  const head = load<u32>(VMB + VM_ACTIVE_HEAD);
  store<u32>(sp + SP_LINK_PREV, 0);
  store<u32>(sp + SP_LINK_NEXT, head);
  if (head != 0) store<u32>(<usize>head + SP_LINK_PREV, <u32>sp);
  else store<u32>(VMB + VM_ACTIVE_TAIL, <u32>sp);
  store<u32>(VMB + VM_ACTIVE_HEAD, <u32>sp);
  store<u32>(sp + SP_FLAGS, load<u32>(sp + SP_FLAGS) | SPF_ON_ACTIVE);
}
// Unlink from the active list (no accounting: callers keep or drop the page's count).
export function active_del(sp: usize): void {
  const prev = load<u32>(sp + SP_LINK_PREV), next = load<u32>(sp + SP_LINK_NEXT);
  if (prev != 0) store<u32>(<usize>prev + SP_LINK_NEXT, next); else store<u32>(VMB + VM_ACTIVE_HEAD, next);
  if (next != 0) store<u32>(<usize>next + SP_LINK_PREV, prev); else store<u32>(VMB + VM_ACTIVE_TAIL, prev);
  store<u32>(sp + SP_LINK_PREV, 0);
  store<u32>(sp + SP_LINK_NEXT, 0);
  store<u32>(sp + SP_FLAGS, load<u32>(sp + SP_FLAGS) & ~SPF_ON_ACTIVE);
}
export function active_head(): usize { return <usize>load<u32>(VMB + VM_ACTIVE_HEAD); }
export function active_tail(): usize { return <usize>load<u32>(VMB + VM_ACTIVE_TAIL); }
export function active_next(sp: usize): usize { return <usize>load<u32>(sp + SP_LINK_NEXT); }
export function active_prev(sp: usize): usize { return <usize>load<u32>(sp + SP_LINK_PREV); }

// ---- write tracking of shadowed gfns (kvm_page_track, KVM_PAGE_TRACK_WRITE)
export function gfn_track_addr(gfn: u64): usize {
  if (gfn >= <u64>load<u32>(VMB + VM_NR_GFNS)) return 0;
  return <usize>load<u32>(VMB + VM_GFN_TRACK_BASE) + (<usize>gfn << 1);
}
// Is `gfn` write-tracked, i.e. does an indirect shadow page shadow it?
export function kvm_gfn_is_write_tracked(gfn: u64): bool {
  const a = gfn_track_addr(gfn);
  return a != 0 && load<u16>(a) != 0;
}
export function gfn_track_count(gfn: u64): u32 {
  const a = gfn_track_addr(gfn);
  return a == 0 ? 0 : <u32>load<u16>(a);
}

// How many write-tracked gfns lie in gfn's 2 MiB (level 2) or 1 GiB (level 3)
// region: a large spte may map the region only while this is 0
// (lpage_info.disallow_lpage; kvm_mmu_gfn_disallow_lpage / allow_lpage).
export function lpage_disallow_addr(gfn: u64, level: i32): usize {
  const idx = gfn >> <u64>(9 * (level - 1));
  const shift = <u64>(9 * (level - 1));
  const n = (<u64>load<u32>(VMB + VM_NR_GFNS) + (<u64>1 << shift) - 1) >> shift;
  const base = <usize>load<u32>(VMB + (level == 2 ? VM_LPAGE_BASE_2M : VM_LPAGE_BASE_1G));
  if (idx >= n || base == 0) return 0;
  return base + (<usize>idx << 2);
}
export function lpage_disallowed(gfn: u64, level: i32): bool {
  const a = lpage_disallow_addr(gfn, level);
  return a != 0 && load<u32>(a) != 0;
}
function lpage_account(gfn: u64, delta: i32): void {
  for (let level = 2; level <= 3; level++) {
    const a = lpage_disallow_addr(gfn, level);
    if (a != 0) store<u32>(a, <u32>(<i32>load<u32>(a) + delta));
  }
}

function account_shadowed(gfn: u64): void {
  store<u32>(VMB + VM_INDIRECT_SHADOW_PAGES, load<u32>(VMB + VM_INDIRECT_SHADOW_PAGES) + 1);
  const a = gfn_track_addr(gfn);
  if (a == 0) return;
  store<u16>(a, load<u16>(a) + 1);
  lpage_account(gfn, 1);
  if (rmap_write_protect(gfn)) kvm_flush_remote_tlbs_wrprot();
}
export function unaccount_shadowed(gfn: u64): void {
  store<u32>(VMB + VM_INDIRECT_SHADOW_PAGES, load<u32>(VMB + VM_INDIRECT_SHADOW_PAGES) - 1);
  const a = gfn_track_addr(gfn);
  if (a == 0) return;
  store<u16>(a, load<u16>(a) - 1);
  lpage_account(gfn, -1);
}

// ---- allocation

// A fresh page from the vCPU's cache, on the active list (kvm_mmu_alloc_page).
function kvm_mmu_alloc_page(gfn: u64, role: u32): usize {
  const sp = mmu_cache_alloc_sp();
  if (sp == 0) return 0;
  const idx = load<u32>(sp + SP_INDEX);
  const spt = <usize>load<u32>(VMB + VM_SP_SPT_BASE) + (<usize>idx << 12);
  memory.fill(spt, 0, <usize>SPT_SIZE);
  memory.fill(sp, 0, <usize>SP_SIZE);
  store<u32>(sp + SP_INDEX, idx);
  store<u32>(sp + SP_SPT, <u32>spt);
  if ((role & ROLE_DIRECT) == 0) {
    const g = <usize>load<u32>(VMB + VM_SP_GFNS_BASE) + <usize>idx * <usize>SP_GFNS_SIZE;
    memory.fill(g, 0, <usize>SP_GFNS_SIZE);
    store<u32>(sp + SP_GFNS, <u32>g);
  }
  store<u32>(sp + SP_ROLE, role);
  store<u64>(sp + SP_GFN, gfn);
  store<u32>(sp + SP_FLAGS, SPF_IN_USE);
  store<u32>(sp + SP_MMU_VALID_GEN, load<u32>(VMB + VM_MMU_VALID_GEN));
  // seed 000: remember the write-protect-all generation the page was made in
  store<u64>(sp + SP_MMU_WRITE_PROTECT_ALL_GEN, load<u64>(VMB + VM_MMU_WRITE_PROTECT_ALL_INDICATOR) & ~(<u64>1 << 63));
  active_add(sp);
  store<u32>(VMB + VM_N_USED_MMU_PAGES, load<u32>(VMB + VM_N_USED_MMU_PAGES) + 1);
  return sp;
}

// Give a zapped page back (kvm_mmu_free_shadow_page): off the active list, to the pool.
export function kvm_mmu_free_page(sp: usize): void {
  if ((load<u32>(sp + SP_FLAGS) & SPF_ON_ACTIVE) != 0) active_del(sp);
  store<u32>(sp + SP_FLAGS, 0);
  store<u32>(VMB + VM_N_USED_MMU_PAGES, load<u32>(VMB + VM_N_USED_MMU_PAGES) - 1);
  mmu_free_sp_to_pool(sp);
}

// Find the shadow page for (gfn, role) in the hash, or make one
// (kvm_mmu_get_page / kvm_mmu_get_shadow_page). A new indirect page
// write-protects its gfn. Returns 0 only if no memory was left (a bug: the
// cache is topped up and pages recycled before mmu_lock).
export let get_page_created: bool = false;
export function kvm_mmu_get_page(gfn: u64, role: u32): usize {
  let sp = <usize>load<u32>(hash_bucket(gfn));
  while (sp != 0) {
    if (sp_gfn(sp) == gfn && sp_role(sp) == role && !is_obsolete_sp(sp)) {
      get_page_created = false;
      return sp;
    }
    sp = <usize>load<u32>(sp + SP_HASH_NEXT);
  }
  stat_inc(STAT_MMU_CACHE_MISS);
  sp = kvm_mmu_alloc_page(gfn, role);
  if (sp == 0) return 0;
  hash_add(sp);
  if ((role & ROLE_DIRECT) == 0) account_shadowed(gfn);
  get_page_created = true;
  return sp;
}

// Unused fields kept for the seeds that use them later.
export function sp_write_flooding_count(sp: usize): u32 { return load<u32>(sp + SP_WRITE_FLOODING_COUNT); }
export function sp_set_write_flooding_count(sp: usize, n: u32): void { store<u32>(sp + SP_WRITE_FLOODING_COUNT, n); }
export function sp_possible_writable_sptes(sp: usize): u32 { return load<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES); }
export function sp_unsync(sp: usize): bool { return load<u32>(sp + SP_UNSYNC) != 0; }
export function sp_parent_ptes_addr(sp: usize): usize { return sp + SP_PARENT_PTES; }
export function sp_bitmap_addr(sp: usize): usize { return sp + SP_POSSIBLE_WRITABLE_SPTE_BITMAP; }
