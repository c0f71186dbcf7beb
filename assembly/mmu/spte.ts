// The shadow page table entry (KVM's spte.h): x86 layout, because the
// "hardware" that walks sptes (shadow.ts, spte_walk) is an x86 page walker.
//   bit 0 present, 1 writable, 2 user, 5 accessed (set by the spte walk when it
//   fills the software TLB), 7 large page, 12..51 host-physical address (an
//   offset in linear memory: guest RAM or an spt page), 57 host-writable,
//   58 mmu-writable (KVM's two software bits: "writable if not for dirty
//   logging" and "writable if not for write tracking"), 63 NX.
// Upper-level sptes point at the spt of a child kvm_mmu_page and allow
// everything; the leaf carries the access of the whole guest walk.
import { VMB } from "../vm";
import { VM_SP_SPT_BASE, VM_SP_HDR_BASE, SP_SIZE, SP_POSSIBLE_WRITABLE_SPTES, SP_POSSIBLE_WRITABLE_SPTE_BITMAP } from "./layout";

export const PT_PRESENT_MASK: u64 = 1 << 0;
export const PT_WRITABLE_MASK: u64 = 1 << 1;
export const PT_USER_MASK: u64 = 1 << 2;
export const PT_ACCESSED_MASK: u64 = 1 << 5;
export const PT_DIRTY_MASK: u64 = 1 << 6;
export const PT_PAGE_SIZE_MASK: u64 = 1 << 7;
// The guest's G bit (with CR4.PGE) copied into the leaf, so the software TLB
// keeps the translation across MOV CR3 as the guest's own TLB would.
export const SPTE_GUEST_GLOBAL: u64 = 1 << 8;
export const SPTE_HOST_WRITEABLE: u64 = <u64>1 << 57;
export const SPTE_MMU_WRITEABLE: u64 = <u64>1 << 58;
export const PT64_NX_MASK: u64 = <u64>1 << 63;
export const SPTE_BASE_ADDR_MASK: u64 = 0x000ffffffffff000;

// ACC_* (the access a guest walk grants, KVM's encoding)
export const ACC_EXEC_MASK: u32 = 1;
export const ACC_WRITE_MASK: u32 = 2; // == PT_WRITABLE_MASK
export const ACC_USER_MASK: u32 = 4; // == PT_USER_MASK
export const ACC_ALL: u32 = 7;

export const PT64_ROOT_4LEVEL: i32 = 4;
export const PT32E_ROOT_LEVEL: i32 = 3;
export const PT32_ROOT_LEVEL: i32 = 2;
export const PG_LEVEL_4K: i32 = 1;

@inline export function is_shadow_present_pte(spte: u64): bool { return (spte & PT_PRESENT_MASK) != 0; }
@inline export function is_writable_pte(spte: u64): bool { return (spte & PT_WRITABLE_MASK) != 0; }
@inline export function is_large_pte(spte: u64): bool { return (spte & PT_PAGE_SIZE_MASK) != 0; }
@inline export function is_last_spte(spte: u64, level: i32): bool { return level == PG_LEVEL_4K || is_large_pte(spte); }
@inline export function spte_addr(spte: u64): usize { return <usize>(spte & SPTE_BASE_ADDR_MASK); }

// The kvm_mmu_page whose spt holds `sptep` (page_header / sptep_to_sp).
@inline export function sptep_to_sp(sptep: usize): usize {
  const spt_base = <usize>load<u32>(VMB + VM_SP_SPT_BASE);
  return <usize>load<u32>(VMB + VM_SP_HDR_BASE) + ((sptep - spt_base) >> 12) * <usize>SP_SIZE;
}
@inline export function spte_index(sptep: usize): i32 { return <i32>((sptep & 0xfff) >> 3); }
// The child page an upper-level spte points to (spte_to_child_sp).
@inline export function spte_to_child_sp(spte: u64): usize { return sptep_to_sp(spte_addr(spte)); }

// Leaf spte for host page `host` with guest access `pte_access` (make_spte).
export function make_spte(pte_access: u32, host: usize, host_writable: bool): u64 {
  let spte: u64 = PT_PRESENT_MASK | (<u64>host & SPTE_BASE_ADDR_MASK);
  if ((pte_access & ACC_USER_MASK) != 0) spte |= PT_USER_MASK;
  if ((pte_access & ACC_EXEC_MASK) == 0) spte |= PT64_NX_MASK;
  if (host_writable) spte |= SPTE_HOST_WRITEABLE;
  if ((pte_access & ACC_WRITE_MASK) != 0) spte |= PT_WRITABLE_MASK | SPTE_MMU_WRITEABLE;
  return spte;
}

// Upper-level spte linking a child page (link_shadow_page's make_nonleaf_spte).
@inline export function make_nonleaf_spte(child_spt: usize): u64 {
  return PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_ACCESSED_MASK | (<u64>child_spt & SPTE_BASE_ADDR_MASK);
}

// ---- writing sptes. Every store goes through these so the shadow page's
// possible_writable_spte_bitmap and counter (seed 000) stay exact.
// "Possibly writable" (seed 000): writable, or a leaf the lockless fast path
// may make writable (SPTE_MMU_WRITEABLE), so fast_pf.ts never has to touch
// the bitmap and mmu_load_shadow_page never misses an spte it fixed.
@inline export function is_possibly_writable(spte: u64): bool {
  return is_shadow_present_pte(spte) && (spte & (PT_WRITABLE_MASK | SPTE_MMU_WRITEABLE)) != 0;
}
function track_writable(sptep: usize, old: u64, spte: u64): void {
  const was = is_possibly_writable(old);
  const now = is_possibly_writable(spte);
  if (was == now) return;
  const sp = sptep_to_sp(sptep);
  const idx = spte_index(sptep);
  const word = sp + <usize>SP_POSSIBLE_WRITABLE_SPTE_BITMAP + (<usize>(idx >> 6) << 3);
  const bit = <u64>1 << <u64>(idx & 63);
  if (now) {
    store<u64>(word, load<u64>(word) | bit);
    store<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES, load<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES) + 1);
  } else {
    store<u64>(word, load<u64>(word) & ~bit);
    store<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES, load<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES) - 1);
  }
}

// Set a not-present spte (mmu_spte_set).
export function mmu_spte_set(sptep: usize, spte: u64): void {
  const old = load<u64>(sptep);
  track_writable(sptep, old, spte);
  atomic.store<u64>(sptep, spte);
}

// Update a present spte; returns true when the TLB must be flushed because
// rights were removed or the target changed (mmu_spte_update).
export function mmu_spte_update(sptep: usize, spte: u64): bool {
  const old = load<u64>(sptep);
  track_writable(sptep, old, spte);
  atomic.store<u64>(sptep, spte);
  if (!is_shadow_present_pte(old)) return false;
  if (spte_addr(old) != spte_addr(spte)) return true;
  const rights: u64 = PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK;
  if ((old & rights & ~spte) != 0) return true;
  return (spte & PT64_NX_MASK) != 0 && (old & PT64_NX_MASK) == 0;
}

// Clear an spte (mmu_spte_clear_no_track / the store half of drop_spte).
export function mmu_spte_clear(sptep: usize): u64 {
  const old = load<u64>(sptep);
  track_writable(sptep, old, 0);
  atomic.store<u64>(sptep, 0);
  return old;
}
