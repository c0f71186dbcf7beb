// O(1) write-protect-all (seed 000, Xiao Guangrong 2017, never merged
// upstream): kvm_mmu_write_protect_all_pages bumps a generation in one u64
// (the top bit says whether write protection is on) and asks every vCPU to
// reload its roots. A page whose mmu_write_protect_all_gen is older than the
// indicator's generation is made read-only lazily:
//   * on root load (wp_all_load_roots, before every spte walk of the
//     current roots), mmu_load_shadow_page makes the root's possibly
//     writable entries read-only, using possible_writable_spte_bitmap;
//   * on a write fault, handle_readonly_upper_spte loads the child below a
//     read-only upper spte and only then makes that upper spte writable, so
//     the protection moves one level down per fault, to the leaves;
//   * a page linked below a new upper spte is loaded first on a write fault
//     and linked read-only on a read fault (wp_all_link_mask).
// The spte walk (shadow.ts) honours read-only upper sptes, and the lockless
// fast path (fast_pf.ts) never fixes anything under one.
// Under mmu_lock, except the indicator reads.
import { VMB } from "../vm";
import {
  VM_MMU_WRITE_PROTECT_ALL_INDICATOR, SP_MMU_WRITE_PROTECT_ALL_GEN, SP_POSSIBLE_WRITABLE_SPTES,
  SP_POSSIBLE_WRITABLE_SPTE_BITMAP,
} from "./layout";
import {
  is_shadow_present_pte, is_last_spte, is_writable_pte, mmu_spte_update, spte_to_child_sp, PT_WRITABLE_MASK,
  PT64_ROOT_4LEVEL, PT32E_ROOT_LEVEL,
} from "./spte";
import { sp_spt, sp_level, sp_from_spt } from "./mmu_page";
import { spte_write_protect } from "./rmap";
import { kvm_flush_remote_tlbs, kvm_reload_remote_mmus } from "./tlbflush";
import { mmu_lock, mmu_unlock, mmu_lock_held } from "./cache";
import { root_level, root_hpa, pae_root } from "./roots";

export const WP_ALL_ENABLE_MASK: u64 = <u64>1 << 63;
export const WP_ALL_GEN_MASK: u64 = ~WP_ALL_ENABLE_MASK;

@inline export function get_write_protect_all_indicator(): u64 { return atomic.load<u64>(VMB + VM_MMU_WRITE_PROTECT_ALL_INDICATOR); }
@inline export function is_write_protect_all_enabled(ind: u64): bool { return (ind & WP_ALL_ENABLE_MASK) != 0; }
@inline export function get_write_protect_all_gen(ind: u64): u64 { return ind & WP_ALL_GEN_MASK; }
@inline function sp_wp_gen(sp: usize): u64 { return load<u64>(sp + SP_MMU_WRITE_PROTECT_ALL_GEN); }

// kvm_mmu_write_protect_all_pages. Enabling bumps the generation, so every
// existing page is out of date; all vCPUs reload their roots. The TLBs are
// flushed too: a TLB entry is not a shadow page and has no generation, and
// a vCPU keeps writing through its TLB until its next miss (KVM's reload
// request is served before the next guest entry; here the TLB flush
// generation is what every vCPU checks on entry, run.ts smp_poll).
export function kvm_mmu_write_protect_all_pages(enable: bool): void {
  const ind = get_write_protect_all_indicator();
  let gen = get_write_protect_all_gen(ind);
  if (enable) gen = (gen + 1) & WP_ALL_GEN_MASK;
  atomic.store<u64>(VMB + VM_MMU_WRITE_PROTECT_ALL_INDICATOR, (enable ? WP_ALL_ENABLE_MASK : 0) | gen);
  if (enable) {
    kvm_reload_remote_mmus();
    kvm_flush_remote_tlbs();
  }
}

// mmu_load_shadow_page: if `sp` is older than the current generation, make
// its possibly-writable entries read-only (leaves keep SPTE_MMU_WRITEABLE:
// the fast path may fix them later) and bring it up to date. True if the
// TLBs must be flushed.
export function mmu_load_shadow_page(sp: usize): bool {
  const ind = get_write_protect_all_indicator();
  if (!is_write_protect_all_enabled(ind)) return false;
  const gen = get_write_protect_all_gen(ind);
  if (sp_wp_gen(sp) == gen) return false;
  let flush = false;
  if (load<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES) != 0) {
    const spt = sp_spt(sp);
    const level = sp_level(sp);
    for (let w = 0; w < 8; w++) {
      let bits = load<u64>(sp + SP_POSSIBLE_WRITABLE_SPTE_BITMAP + (<usize>w << 3));
      while (bits != 0) {
        const i = (w << 6) + <i32>ctz(bits);
        bits &= bits - 1;
        const sptep = spt + (<usize>i << 3);
        const spte = load<u64>(sptep);
        if (!is_shadow_present_pte(spte) || !is_writable_pte(spte)) continue;
        if (is_last_spte(spte, level)) {
          if (spte_write_protect(sptep, false)) flush = true;
        } else {
          mmu_spte_update(sptep, spte & ~PT_WRITABLE_MASK);
          flush = true;
        }
      }
    }
  }
  store<u64>(sp + SP_MMU_WRITE_PROTECT_ALL_GEN, gen);
  return flush;
}

// handle_readonly_upper_spte: a write fault met the present upper spte at
// `sptep`; if write-protect-all left it read-only, move the protection one
// level down (load the child) and make it writable. Read faults change
// nothing. True if the TLBs must be flushed.
export function handle_readonly_upper_spte(sptep: usize, write_fault: bool): bool {
  if (!write_fault) return false;
  const spte = load<u64>(sptep);
  if (!is_shadow_present_pte(spte) || is_writable_pte(spte)) return false;
  const flush = mmu_load_shadow_page(spte_to_child_sp(spte));
  // RO -> RW needs no flush
  mmu_spte_update(sptep, spte | PT_WRITABLE_MASK);
  return flush;
}

// The rights of a new link to `sp` (link_shadow_page): an out-of-date page
// while write-protect-all is on is linked read-only, so its writable
// entries stay unreachable for writes until a write fault loads it.
export function wp_all_link_mask(sp: usize): u64 {
  const ind = get_write_protect_all_indicator();
  if (!is_write_protect_all_enabled(ind) || sp_wp_gen(sp) == get_write_protect_all_gen(ind)) return <u64>-1;
  return ~PT_WRITABLE_MASK;
}

// Root load: bring the current root(s) up to date before the spte walk uses
// them (mmu_alloc_shadow_roots / mmu_alloc_direct_roots in the seed; here
// also a root reused from prev_roots or kept across a reload request).
// Cheap when nothing is to do: one u64 load, or one compare per root.
function root_out_of_date(spt: usize, gen: u64): bool { return spt != 0 && sp_wp_gen(sp_from_spt(spt)) != gen; }
export function wp_all_load_roots(): void {
  const ind = get_write_protect_all_indicator();
  if (!is_write_protect_all_enabled(ind)) return;
  const gen = get_write_protect_all_gen(ind);
  const rl = root_level();
  let stale = false;
  if (rl == PT64_ROOT_4LEVEL) stale = root_out_of_date(root_hpa(), gen);
  else if (rl == PT32E_ROOT_LEVEL) {
    for (let i = 0; i < 4; i++) if (root_out_of_date(pae_root(i), gen)) stale = true;
  }
  if (!stale) return;
  const locked = mmu_lock_held;
  if (!locked) mmu_lock();
  let flush = false;
  if (rl == PT64_ROOT_4LEVEL) flush = mmu_load_shadow_page(sp_from_spt(root_hpa()));
  else {
    for (let i = 0; i < 4; i++) {
      const r = pae_root(i);
      if (r != 0 && mmu_load_shadow_page(sp_from_spt(r))) flush = true;
    }
  }
  if (flush) kvm_flush_remote_tlbs();
  if (!locked) mmu_unlock();
}
