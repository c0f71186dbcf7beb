// The primitives kvm_mmu_pte_write is built from that are specific to the
// seeds' pte-write rules (issue 5); the policy itself is TypeScript
// (src/mmu/pte_write.ts). Each exported primitive takes mmu_lock itself.
//
//  * mmu_pte_write_new_pte: FNAME(update_pte) from the guest entry as it is in
//    guest memory now (seed 002), as a speculative spte (accessed bit clear,
//    as KVM's prefetched sptes are), with or without topping up the object
//    cache first (seed 003: fill it on the pte-write path, before the lock;
//    with no free pte_list_desc, zap instead of installing).
//  * write_flooding_count of a shadow page and the accessed bit of an spte
//    (seed 003's flood detection), and clear_sp_write_flooding_count for the
//    spte walk: a page the hardware translates through is in use.
import { VCPU } from "../cpu/state";
import { gpa_to_host } from "../vm";
import { SP_WRITE_FLOODING_COUNT, MMU_CPU_ROLE } from "./layout";
import { mmu_lock, mmu_unlock, mmu_cache_nr_desc } from "./cache";
import { kvm_mmu_update_pte } from "./fault";
import { mmu_page_zap_pte, kvm_mmu_commit_zap_page, mmu_topup_memory_caches_reclaim } from "./zap";
import {
  sp_role, sp_spt, role_level, role_4byte, ROLE_DIRECT, ROLE_INVALID, ROLE_CR0_WP, ROLE_EFER_NX,
  ROLE_HAS_4_BYTE_GPTE, ROLE_SMEP_ANDNOT_WP, ROLE_SMAP_ANDNOT_WP,
} from "./mmu_page";
import { is_shadow_present_pte, sptep_to_sp, PT_ACCESSED_MASK } from "./spte";

// The spte walk translated through the page holding `sptep`: it is in use as
// a page table (clear_sp_write_flooding_count). Called for every level the
// "hardware" walks on a TLB fill, as KVM learns it from the accessed bits
// the hardware sets; the fault path (fetch) clears the count too.
@inline export function clear_sp_write_flooding_count(sptep: usize): void {
  store<u32>(sptep_to_sp(sptep) + SP_WRITE_FLOODING_COUNT, 0);
}

// The role bits a page must share with the vCPU's current mode before a
// guest entry is decoded for it (kvm_mmu_pte_write's mask: cr0_wp, cr4_pae
// i.e. has_4_byte_gpte, nxe, and SMEP/SMAP andnot WP).
const ROLE_UPDATE_MASK: u32 = ROLE_CR0_WP | ROLE_EFER_NX | ROLE_HAS_4_BYTE_GPTE | ROLE_SMEP_ANDNOT_WP | ROLE_SMAP_ANDNOT_WP;

// Counts since the VM started, for tests: updates that found the desc cache
// empty and zapped instead (seed 003's "do not prefetch").
let nr_update_no_desc: u32 = 0;
export function mmu_pte_write_nr_no_desc(): u32 { return nr_update_no_desc; }

// mmu_pte_write_new_pte: zap spte `index` of `sp` and, if the page is a
// 4 KiB-level indirect page of the vCPU's current mode, install the spte the
// guest entry at gpa (gpa_hi:gpa_lo) now asks for, unaccessed (speculative).
// With `topup`, the vCPU's object cache is filled before the lock. Returns 1
// if an spte was installed, 0 if it was only zapped, 2 if it was zapped
// because the cache had no free pte_list_desc.
export function mmu_pte_write_new_pte(sp: usize, index: i32, gpa_lo: u32, gpa_hi: u32, topup: i32): i32 {
  if (topup != 0) mmu_topup_memory_caches_reclaim();
  const role = sp_role(sp);
  const gpa = (<u64>gpa_hi << 32) | <u64>gpa_lo;
  const h = gpa_to_host(gpa);
  let r = 0;
  mmu_lock();
  const same_mode = ((role ^ load<u32>(VCPU + MMU_CPU_ROLE)) & ROLE_UPDATE_MASK) == 0;
  if (index < 0 || index >= 512 || (role & (ROLE_DIRECT | ROLE_INVALID)) != 0) {
    r = 0;
  } else if (role_level(role) != 1 || !same_mode || h < 0) {
    mmu_page_zap_pte(sp, index);
  } else if (mmu_cache_nr_desc() == 0) {
    mmu_page_zap_pte(sp, index);
    nr_update_no_desc++;
    r = 2;
  } else {
    const gpte: u64 = role_4byte(role) ? <u64>load<u32>(<usize>h) : load<u64>(<usize>h);
    if (kvm_mmu_update_pte(sp, index, gpte)) {
      const sptep = sp_spt(sp) + (<usize>index << 3);
      // speculative: not accessed until the hardware uses it
      if (is_shadow_present_pte(load<u64>(sptep))) atomic.and<u64>(sptep, ~PT_ACCESSED_MASK);
      r = 1;
    }
  }
  kvm_mmu_commit_zap_page();
  mmu_unlock();
  return r;
}

// The spte is present and the hardware has used it since it was installed.
export function mmu_spte_accessed(sp: usize, index: i32): i32 {
  if (index < 0 || index >= 512) return 0;
  const spte = load<u64>(sp_spt(sp) + (<usize>index << 3));
  return is_shadow_present_pte(spte) && (spte & PT_ACCESSED_MASK) != 0 ? 1 : 0;
}

export function mmu_sp_write_flooding_count(sp: usize): u32 { return load<u32>(sp + SP_WRITE_FLOODING_COUNT); }
export function mmu_sp_set_write_flooding_count(sp: usize, n: u32): void { store<u32>(sp + SP_WRITE_FLOODING_COUNT, n); }
export function mmu_cache_desc_count(): i32 { return mmu_cache_nr_desc(); }
