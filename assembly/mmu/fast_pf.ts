// fast_page_fault (KVM's lockless path): a write fault on a last-level spte
// that is read-only only because of dirty logging / write-protect-all (it
// still has SPTE_HOST_WRITEABLE and SPTE_MMU_WRITEABLE) is fixed without
// mmu_lock, by a compare-and-exchange of the spte, then the gfn is marked
// dirty. Never:
//   * a large spte (seed 001: only its first 4 KiB page would be marked; the
//     slow path maps 4 KiB sptes below it instead);
//   * anything under a read-only upper spte (seed 000: write-protect-all's
//     protection must move down level by level, in the slow path);
//   * an spte the guest itself does not allow to write (no MMU_WRITEABLE:
//     the guest pte is read-only or clean, or the gfn is a shadowed page
//     table), nor one another right is missing from.
// possible_writable_spte_bitmap needs no update: it tracks writable or
// mmu-writable sptes (spte.ts), and this changes neither.
import { VMB } from "../vm";
import { stat_inc } from "../cpu/state";
import { STAT_FAST_PF_FIXED } from "../stats";
import { VM_MMU_MODE, MMU_MODE_TDP } from "./layout";
import {
  is_shadow_present_pte, is_last_spte, is_writable_pte, sptep_to_sp, spte_index, PT_WRITABLE_MASK,
  SPTE_HOST_WRITEABLE, SPTE_MMU_WRITEABLE,
} from "./spte";
import { shadow_walk_init, it_level, it_sptep, shadow_walk_next } from "./fault";
import { kvm_mmu_page_get_gfn } from "./mmu_page";
import { spte_permits } from "./shadow";
import { mark_page_dirty } from "./dirty";
import { ACC_WRITE } from "./walk";

const FAST_PF_BITS: u64 = SPTE_HOST_WRITEABLE | SPTE_MMU_WRITEABLE;

// Returns true if the fault was fixed (or already was: a spurious fault).
export function fast_page_fault(lin: u64, access: u32, user: bool): bool {
  if ((access & ACC_WRITE) == 0 || load<u32>(VMB + VM_MMU_MODE) == MMU_MODE_TDP) return false;
  if (!shadow_walk_init(lin)) return false;
  let spte: u64 = 0;
  while (true) {
    spte = atomic.load<u64>(it_sptep);
    if (!is_shadow_present_pte(spte)) return false;
    if (is_last_spte(spte, it_level)) break;
    if (!is_writable_pte(spte)) return false; // seed 000: a read-only upper spte
    shadow_walk_next(lin);
  }
  if (it_level > 1) return false; // seed 001: never a large spte
  if (!spte_permits(spte | PT_WRITABLE_MASK, access, user)) return false;
  if (is_writable_pte(spte)) return true;
  if ((spte & FAST_PF_BITS) != FAST_PF_BITS) return false;
  const sptep = it_sptep;
  const gfn = kvm_mmu_page_get_gfn(sptep_to_sp(sptep), spte_index(sptep));
  if (atomic.cmpxchg<u64>(sptep, spte, spte | PT_WRITABLE_MASK) != spte) return false; // changed under us: slow path
  mark_page_dirty(gfn);
  stat_inc(STAT_FAST_PF_FIXED);
  return true;
}
