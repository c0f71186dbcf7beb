// What the host calls for memslots and dirty logging (src/dirty/), and the
// dirty-log audit the tests run.
import { VMB, MEMSLOT_BASE_GFN, MEMSLOT_DIRTY_BITMAP } from "../vm";
import { VCPU, VCPU_TLB, TLB_ENTRIES } from "../cpu/state";
import {
  SP_MMU_WRITE_PROTECT_ALL_GEN, VM_MMU_WRITE_PROTECT_ALL_INDICATOR,
} from "./layout";
import {
  is_shadow_present_pte, is_last_spte, is_writable_pte, spte_to_child_sp, PT64_ROOT_4LEVEL, PT32E_ROOT_LEVEL,
} from "./spte";
import { sp_spt, sp_level, sp_from_spt, kvm_mmu_page_get_gfn } from "./mmu_page";
import { root_level, root_hpa, pae_root } from "./roots";
import { TLB_W_SUP, TLB_W_USR } from "./tlb";
import { kvm_mmu_write_protect_all_pages, mmu_load_shadow_page, handle_readonly_upper_spte } from "./wp_all";
import { mmu_lock, mmu_unlock } from "./cache";
import { slot_of_gfn, dirty_slots_changed } from "./dirty";
export {
  VM_DIRTY_WP_ALL, VM_DIRTY_BROKEN, VM_DIRTY_LOGGED_SLOTS, WP_ALL_RMAP, WP_ALL_GENERATION,
  kvm_dirty_log_enable, kvm_get_dirty_log, kvm_clear_dirty_log,
} from "./dirty";
export { VM_MMU_WRITE_PROTECT_ALL_INDICATOR, SP_MMU_WRITE_PROTECT_ALL_GEN } from "./layout";

export function dirty_memslots_changed(): void { dirty_slots_changed(); }

// kvm_mmu_write_protect_all_pages for the host and the unit tests.
export function mmu_write_protect_all(enable: i32): void { kvm_mmu_write_protect_all_pages(enable != 0); }

// Unit-test hooks of the generation logic, under mmu_lock.
export function mmu_test_load_shadow_page(sp: usize): i32 {
  mmu_lock();
  const r = mmu_load_shadow_page(sp);
  mmu_unlock();
  return r ? 1 : 0;
}
export function mmu_test_handle_readonly_upper(sptep: usize, write: i32): i32 {
  mmu_lock();
  const r = handle_readonly_upper_spte(sptep, write != 0);
  mmu_unlock();
  return r ? 1 : 0;
}
export function mmu_sp_wp_gen(sp: usize): u32 { return <u32>load<u64>(sp + SP_MMU_WRITE_PROTECT_ALL_GEN); }
export function mmu_root_sp(i: i32): usize {
  const rl = root_level();
  if (rl == PT64_ROOT_4LEVEL) return i == 0 ? sp_from_spt(root_hpa()) : 0;
  if (rl == PT32E_ROOT_LEVEL && i < 4 && pae_root(i) != 0) return sp_from_spt(pae_root(i));
  return 0;
}
export function mmu_sp_spt(sp: usize): usize { return sp_spt(sp); }

// ---- the audit: is every way the guest could write a logged page without
// the MMU covered by a set dirty bit? Walks the sptes reachable from the
// current root(s) with write rights accumulated down the levels (what the
// spte walk grants), and the software TLB. Returns the problems found;
// dirty_audit_gfn is left with the first one's gfn, dirty_audit_what with
// 1 (effectively writable 4 KiB spte), 2 (writable large spte), 3 (TLB).
export let dirty_audit_gfn: u64 = 0;
export let dirty_audit_what: i32 = 0;
let audit_errors: i32 = 0;
function bit_set(gfn: u64): bool {
  const s = slot_of_gfn(gfn);
  if (s == 0) return true; // not RAM: nothing to log
  const bm = <usize>load<u32>(s + MEMSLOT_DIRTY_BITMAP);
  if (bm == 0) return true;
  const rel = gfn - load<u64>(s + MEMSLOT_BASE_GFN);
  return ((load<u64>(bm + (<usize>(rel >> 6) << 3)) >> (rel & 63)) & 1) != 0;
}
function fail(gfn: u64, what: i32): void {
  if (audit_errors++ == 0) { dirty_audit_gfn = gfn; dirty_audit_what = what; }
}
function audit_page(sp: usize, depth: i32): void {
  if (depth > 5) return;
  // an out-of-date page (write-protect-all on) is loaded before any use: nothing below it is writable yet
  const ind = load<u64>(VMB + VM_MMU_WRITE_PROTECT_ALL_INDICATOR);
  if ((ind >> 63) != 0 && load<u64>(sp + SP_MMU_WRITE_PROTECT_ALL_GEN) != (ind & ~(<u64>1 << 63))) return;
  const spt = sp_spt(sp);
  const level = sp_level(sp);
  for (let i = 0; i < 512; i++) {
    const spte = load<u64>(spt + (<usize>i << 3));
    if (!is_shadow_present_pte(spte) || !is_writable_pte(spte)) continue;
    if (is_last_spte(spte, level)) {
      const gfn = kvm_mmu_page_get_gfn(sp, i);
      const n: u64 = level == 1 ? 1 : <u64>1 << <u64>(9 * (level - 1));
      for (let g = gfn; g < gfn + n; g++) if (!bit_set(g)) { fail(g, level == 1 ? 1 : 2); break; }
    } else audit_page(spte_to_child_sp(spte), depth + 1);
  }
}
export function kvm_dirty_log_audit(): i32 {
  audit_errors = 0;
  dirty_audit_gfn = 0;
  dirty_audit_what = 0;
  const rl = root_level();
  if (rl == PT64_ROOT_4LEVEL && root_hpa() != 0) audit_page(sp_from_spt(root_hpa()), 0);
  else if (rl == PT32E_ROOT_LEVEL) for (let i = 0; i < 4; i++) if (pae_root(i) != 0) audit_page(sp_from_spt(pae_root(i)), 0);
  const base = VCPU + VCPU_TLB;
  for (let i = 0; i < TLB_ENTRIES; i++) {
    const e = base + (<usize>i << 4);
    const tag = load<u64>(e);
    if ((tag & (TLB_W_SUP | TLB_W_USR)) == 0) continue;
    if (!bit_set(<u64>load<u32>(e + 12))) fail(<u64>load<u32>(e + 12), 3);
  }
  return audit_errors;
}
export function dirty_audit_first_gfn(): u32 { return <u32>dirty_audit_gfn; }
export function dirty_audit_first_what(): i32 { return dirty_audit_what; }

// Large leaf sptes in use (tests of seed 001): total, or only writable ones.
import { active_head, active_next, sp_role, ROLE_INVALID } from "./mmu_page";
export function mmu_count_large_sptes(writable_only: i32): i32 {
  let n = 0;
  for (let sp = active_head(); sp != 0; sp = active_next(sp)) {
    const level = sp_level(sp);
    if (level < 2 || (sp_role(sp) & ROLE_INVALID) != 0) continue;
    const spt = sp_spt(sp);
    for (let i = 0; i < 512; i++) {
      const spte = load<u64>(spt + (<usize>i << 3));
      if (is_shadow_present_pte(spte) && is_last_spte(spte, level) && (writable_only == 0 || is_writable_pte(spte))) n++;
    }
  }
  return n;
}
