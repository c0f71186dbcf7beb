// Lists of spte pointers (KVM's pte_list / kvm_rmap_head): the rmap from a gfn
// to every leaf spte that maps it, and each shadow page's parent_ptes. A head
// is a u32: 0 = empty; an spte address (8-byte aligned, bit 0 clear) = one
// entry; a pte_list_desc address | 1 = a chain of descs of PTE_LIST_EXT (14)
// entries. The head desc is the only one that may be partly filled; the
// ones after it are always full, so `tail_count` is stable.
import { VMB } from "../vm";
import {
  VM_RMAP_BASE, VM_NR_GFNS, VM_RMAP_BASE_2M, VM_RMAP_BASE_1G, PTE_LIST_EXT, DESC_MORE, DESC_SPTE_COUNT, DESC_TAIL_COUNT, DESC_SPTES,
} from "./layout";
import { mmu_cache_alloc_desc, mmu_free_pte_list_desc } from "./cache";
import { is_writable_pte, mmu_spte_update, PT_WRITABLE_MASK, SPTE_MMU_WRITEABLE } from "./spte";

@inline function desc_of(head: u32): usize { return <usize>(head & ~1); }
@inline function desc_spte(d: usize, i: i32): usize { return <usize>load<u32>(d + DESC_SPTES + (<usize>i << 2)); }
@inline function set_desc_spte(d: usize, i: i32, v: usize): void { store<u32>(d + DESC_SPTES + (<usize>i << 2), <u32>v); }

// Add `sptep` to the list at `headp`; returns the entries that were there
// before (pte_list_add). Under mmu_lock, from the topped-up cache.
export function pte_list_add(headp: usize, sptep: usize): i32 {
  const head = load<u32>(headp);
  if (head == 0) { store<u32>(headp, <u32>sptep); return 0; }
  if ((head & 1) == 0) {
    const d = mmu_cache_alloc_desc();
    if (d == 0) unreachable(); // the cache was topped up before mmu_lock
    set_desc_spte(d, 0, <usize>head);
    set_desc_spte(d, 1, sptep);
    store<u32>(d + DESC_SPTE_COUNT, 2);
    store<u32>(d + DESC_TAIL_COUNT, 0);
    store<u32>(headp, <u32>d | 1);
    return 1;
  }
  let d = desc_of(head);
  const count = <i32>(load<u32>(d + DESC_TAIL_COUNT) + load<u32>(d + DESC_SPTE_COUNT));
  if (<i32>load<u32>(d + DESC_SPTE_COUNT) == PTE_LIST_EXT) {
    const nd = mmu_cache_alloc_desc();
    if (nd == 0) unreachable();
    store<u32>(nd + DESC_MORE, <u32>d);
    store<u32>(nd + DESC_SPTE_COUNT, 0);
    store<u32>(nd + DESC_TAIL_COUNT, <u32>count);
    store<u32>(headp, <u32>nd | 1);
    d = nd;
  }
  const n = <i32>load<u32>(d + DESC_SPTE_COUNT);
  set_desc_spte(d, n, sptep);
  store<u32>(d + DESC_SPTE_COUNT, <u32>(n + 1));
  return count;
}

// Fill the hole at desc[i] with the head desc's last entry; free the head
// desc when it empties (pte_list_desc_remove_entry).
function desc_remove_entry(headp: usize, d: usize, i: i32): void {
  const hd = desc_of(load<u32>(headp));
  const j = <i32>load<u32>(hd + DESC_SPTE_COUNT) - 1;
  set_desc_spte(d, i, desc_spte(hd, j));
  set_desc_spte(hd, j, 0);
  store<u32>(hd + DESC_SPTE_COUNT, <u32>j);
  if (j > 0) return;
  const more = load<u32>(hd + DESC_MORE);
  store<u32>(headp, more == 0 ? 0 : more | 1);
  mmu_free_pte_list_desc(hd);
}

// Remove `sptep` from the list; returns false if it was not there (a bug the audit reports).
export function pte_list_remove(headp: usize, sptep: usize): bool {
  const head = load<u32>(headp);
  if (head == 0) return false;
  if ((head & 1) == 0) {
    if (<usize>head != sptep) return false;
    store<u32>(headp, 0);
    return true;
  }
  let d = desc_of(head);
  while (d != 0) {
    const n = <i32>load<u32>(d + DESC_SPTE_COUNT);
    for (let i = 0; i < n; i++) {
      if (desc_spte(d, i) == sptep) { desc_remove_entry(headp, d, i); return true; }
    }
    d = <usize>load<u32>(d + DESC_MORE);
  }
  return false;
}

export function pte_list_count(headp: usize): i32 {
  const head = load<u32>(headp);
  if (head == 0) return 0;
  if ((head & 1) == 0) return 1;
  const d = desc_of(head);
  return <i32>(load<u32>(d + DESC_TAIL_COUNT) + load<u32>(d + DESC_SPTE_COUNT));
}

// Entry i of the list (0 <= i < pte_list_count): the head desc's entries
// first, then the full descs after it.
export function pte_list_get(headp: usize, i: i32): usize {
  const head = load<u32>(headp);
  if ((head & 1) == 0) return <usize>head;
  let d = desc_of(head);
  const n = <i32>load<u32>(d + DESC_SPTE_COUNT);
  if (i < n) return desc_spte(d, i);
  i -= n;
  d = <usize>load<u32>(d + DESC_MORE);
  while (i >= PTE_LIST_EXT) { i -= PTE_LIST_EXT; d = <usize>load<u32>(d + DESC_MORE); }
  return desc_spte(d, i);
}

export function pte_list_contains(headp: usize, sptep: usize): bool {
  const n = pte_list_count(headp);
  for (let i = 0; i < n; i++) if (pte_list_get(headp, i) == sptep) return true;
  return false;
}

// ---- the rmap (gfn -> leaf sptes), 4 KiB level

// Address of gfn's rmap head, 0 if the gfn is outside guest RAM.
export function gfn_to_rmap(gfn: u64): usize {
  if (gfn >= <u64>load<u32>(VMB + VM_NR_GFNS)) return 0;
  return <usize>load<u32>(VMB + VM_RMAP_BASE) + (<usize>gfn << 2);
}

// Regions of 2 MiB (level 2) or 1 GiB (level 3) pages: how many cover guest RAM.
export function nr_regions(level: i32): u64 {
  const shift = <u64>(9 * (level - 1));
  return (<u64>load<u32>(VMB + VM_NR_GFNS) + (<u64>1 << shift) - 1) >> shift;
}
// The rmap head for the large sptes of `level` that map gfn's region
// (gfn_to_rmap(gfn, level)); level 1 is the 4 KiB rmap.
export function gfn_to_rmap_level(gfn: u64, level: i32): usize {
  if (level == 1) return gfn_to_rmap(gfn);
  const idx = gfn >> <u64>(9 * (level - 1));
  if (idx >= nr_regions(level)) return 0;
  const base = <usize>load<u32>(VMB + (level == 2 ? VM_RMAP_BASE_2M : VM_RMAP_BASE_1G));
  return base == 0 ? 0 : base + (<usize>idx << 2);
}

export function rmap_add(sptep: usize, gfn: u64, level: i32): void {
  const h = gfn_to_rmap_level(gfn, level);
  if (h != 0) pte_list_add(h, sptep);
}
export function rmap_remove(sptep: usize, gfn: u64, level: i32): bool {
  const h = gfn_to_rmap_level(gfn, level);
  if (h == 0) return false;
  return pte_list_remove(h, sptep);
}

// Make one spte read-only; `pt_protect` also clears mmu-writable, so only
// unprotecting the gfn can make it writable again (spte_write_protect).
export function spte_write_protect(sptep: usize, pt_protect: bool): bool {
  const spte = load<u64>(sptep);
  if (!is_writable_pte(spte) && !(pt_protect && (spte & SPTE_MMU_WRITEABLE) != 0)) return false;
  let n = spte & ~PT_WRITABLE_MASK;
  if (pt_protect) n &= ~SPTE_MMU_WRITEABLE;
  return mmu_spte_update(sptep, n);
}

// Write-protect every spte that maps `gfn`, the large ones covering it
// included: they stay, read-only (seed 001), until a write fault maps the
// region with 4 KiB sptes (kvm_mmu_slot_gfn_write_protect / rmap_write_protect).
// True if the TLBs must be flushed.
export function rmap_write_protect(gfn: u64): bool {
  let flush = false;
  for (let level = 1; level <= 3; level++) {
    const h = gfn_to_rmap_level(gfn, level);
    if (h == 0) continue;
    const n = pte_list_count(h);
    for (let i = 0; i < n; i++) {
      if (spte_write_protect(pte_list_get(h, i), true)) flush = true;
    }
  }
  return flush;
}
