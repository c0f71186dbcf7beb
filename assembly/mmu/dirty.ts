// Dirty logging (KVM_MEM_LOG_DIRTY_PAGES): one bitmap per logged memslot
// (bit i = page i of the slot, u64 words), at MEMSLOT_DIRTY_BITMAP; the host
// lays them out (src/dirty/). The invariant everything rests on:
//
//   a guest write can bypass the MMU only through a writable leaf spte
//   reachable through writable upper sptes (shadow), or through a software
//   TLB entry with write permission; both exist for a page of a logged slot
//   only while that page's dirty bit is set.
//
// So: a writable leaf in a logged slot is installed only for a write fault,
// which marks the gfn (mark_page_dirty; a read fault installs it read-only
// but mmu-writable, for fast_pf.ts); the TLB caches write permission only
// from such sptes (or, in tdp mode, only after marking); clearing bits
// re-protects those gfns (rmap) or everything (write-protect-all, seed 000)
// and flushes the TLBs. Writes the core performs itself mark too: the
// emulated PT_WRITE (mem.ts pt_write) and the walker's A/D bits (walk.ts).
// No large spte is made in a logged slot (seed 001: existing ones become
// read-only and a write fault maps 4 KiB sptes below them).
import { VMB, VM_NR_SLOTS, VM_SLOTS, MEMSLOT_SIZE, MEMSLOT_BASE_GFN, MEMSLOT_NPAGES, MEMSLOT_FLAGS, MEMSLOT_DIRTY_BITMAP, MEM_LOG_DIRTY_PAGES } from "../vm";
import { VM_MMU_MODE, MMU_MODE_TDP } from "./layout";
import { gfn_to_rmap_level, pte_list_count, pte_list_get, spte_write_protect } from "./rmap";
import { kvm_flush_remote_tlbs } from "./tlbflush";
import { mmu_lock, mmu_unlock } from "./cache";
import { kvm_mmu_write_protect_all_pages } from "./wp_all";

// ---- VM-struct fields of dirty logging (beyond the MMU's, which end below 2304)
export const VM_DIRTY_WP_ALL: i32 = 3840; // u32 WP_ALL_*: how clearing bits re-protects
export const VM_DIRTY_BROKEN: i32 = 3844; // u32 test only: 1 = never re-protect (negative control)
export const VM_DIRTY_LOGGED_SLOTS: i32 = 3848; // u32 slots with a bitmap (0: nothing to mark, fast exit)
export const WP_ALL_RMAP: u32 = 0; // kvm_mmu_slot_remove_write_access: walk every gfn's rmap
export const WP_ALL_GENERATION: u32 = 1; // kvm_mmu_write_protect_all_pages (seed 000)

@inline function slot_addr(i: i32): usize { return VMB + VM_SLOTS + <usize>(i * MEMSLOT_SIZE); }
@inline function shadow_mode(): bool { return load<u32>(VMB + VM_MMU_MODE) != MMU_MODE_TDP; }

// The memslot holding gfn (its struct address), or 0.
let last_dirty_slot: usize = 0;
export function slot_of_gfn(gfn: u64): usize {
  let s = last_dirty_slot;
  if (s != 0 && gfn - load<u64>(s + MEMSLOT_BASE_GFN) < load<u64>(s + MEMSLOT_NPAGES)) return s;
  const n = <i32>load<u32>(VMB + VM_NR_SLOTS);
  for (let i = 0; i < n; i++) {
    s = slot_addr(i);
    if (gfn - load<u64>(s + MEMSLOT_BASE_GFN) < load<u64>(s + MEMSLOT_NPAGES)) { last_dirty_slot = s; return s; }
  }
  return 0;
}
export function dirty_slots_changed(): void { last_dirty_slot = 0; }

// Is gfn in a slot that logs dirty pages?
export function gfn_dirty_logged(gfn: u64): bool {
  if (load<u32>(VMB + VM_DIRTY_LOGGED_SLOTS) == 0) return false;
  const s = slot_of_gfn(gfn);
  return s != 0 && load<u32>(s + MEMSLOT_DIRTY_BITMAP) != 0;
}

// mark_page_dirty: set gfn's bit if its slot logs.
export function mark_page_dirty(gfn: u64): void {
  if (load<u32>(VMB + VM_DIRTY_LOGGED_SLOTS) == 0) return;
  const s = slot_of_gfn(gfn);
  if (s == 0) return;
  const bm = <usize>load<u32>(s + MEMSLOT_DIRTY_BITMAP);
  if (bm == 0) return;
  const rel = gfn - load<u64>(s + MEMSLOT_BASE_GFN);
  atomic.or<u64>(bm + (<usize>(rel >> 6) << 3), <u64>1 << (rel & 63));
}
export function mark_page_dirty_gpa(gpa: u64): void { mark_page_dirty(gpa >> 12); }

// ---- the MMU's side (hooks in fault.ts and mem.ts)

// A leaf spte about to be installed for gfn (mmu_set_spte): in a logged slot
// it is writable only at 4 KiB and only for a write fault, which marks the
// gfn dirty; otherwise it keeps SPTE_MMU_WRITEABLE so the first write takes
// the fast path.
export function dirty_log_leaf_spte(spte: u64, gfn: u64, level: i32, write_fault: bool): u64 {
  if ((spte & 2) == 0 || !gfn_dirty_logged(gfn)) return spte;
  if (level == 1 && write_fault) { mark_page_dirty(gfn); return spte; }
  return spte & ~<u64>2;
}

// TLB write permission in tdp mode (the TLB is the only cache of rights):
// granted for a logged page only by a write, which marks it.
export function dirty_log_tdp_perms(gfn: u64, perms: u64, wmask: u64, is_write: bool): u64 {
  if ((perms & wmask) == 0 || !gfn_dirty_logged(gfn)) return perms;
  if (is_write) { mark_page_dirty(gfn); return perms; }
  return perms & ~wmask;
}

// ---- write protection for dirty logging (under mmu_lock)

// Every spte mapping gfn, the large ones covering it included, loses its
// write permission but keeps SPTE_MMU_WRITEABLE (kvm_mmu_slot_gfn_write_protect).
function gfn_write_protect(gfn: u64, levels: i32): bool {
  let flush = false;
  for (let level = 1; level <= levels; level++) {
    const h = gfn_to_rmap_level(gfn, level);
    if (h == 0) continue;
    const n = pte_list_count(h);
    for (let i = 0; i < n; i++) if (spte_write_protect(pte_list_get(h, i), false)) flush = true;
  }
  return flush;
}

@inline function wp_all_strategy(): u32 { return load<u32>(VMB + VM_DIRTY_WP_ALL); }
@inline function broken(): bool { return load<u32>(VMB + VM_DIRTY_BROKEN) != 0; }

// kvm_mmu_slot_remove_write_access: every gfn of the slot, 4 KiB rmaps per
// gfn, large rmaps per region. O(pages of the slot).
function slot_remove_write_access(s: usize): bool {
  const base = load<u64>(s + MEMSLOT_BASE_GFN);
  const n = load<u64>(s + MEMSLOT_NPAGES);
  let flush = false;
  for (let g = base; g < base + n; g++) if (gfn_write_protect(g, 1)) flush = true;
  for (let level = 2; level <= 3; level++) {
    const span = <u64>1 << <u64>(9 * (level - 1));
    for (let g = base & ~(span - 1); g < base + n; g += span) {
      const h = gfn_to_rmap_level(g, level);
      if (h == 0) continue;
      const c = pte_list_count(h);
      for (let i = 0; i < c; i++) if (spte_write_protect(pte_list_get(h, i), false)) flush = true;
    }
  }
  return flush;
}

// Write-protect the whole slot the way the wp_all knob says (enabling
// logging): rmap walks it; generation is O(1) (and protects all memory).
function write_protect_slot(s: usize): void {
  if (broken()) return;
  if (!shadow_mode()) { kvm_flush_remote_tlbs(); return; }
  if (wp_all_strategy() == WP_ALL_GENERATION) { kvm_mmu_write_protect_all_pages(true); return; }
  mmu_lock();
  const flush = slot_remove_write_access(s);
  mmu_unlock();
  if (flush) kvm_flush_remote_tlbs();
}

// Re-protect after bits were cleared. `cleared` holds, per word, the bits
// cleared (the same layout as the bitmap), `words` of them.
function reprotect(s: usize, cleared: usize, first_word: i32, words: i32): void {
  if (broken()) return;
  if (!shadow_mode()) { kvm_flush_remote_tlbs(); return; }
  if (wp_all_strategy() == WP_ALL_GENERATION) { kvm_mmu_write_protect_all_pages(true); return; }
  const base = load<u64>(s + MEMSLOT_BASE_GFN);
  let flush = false;
  mmu_lock();
  for (let w = 0; w < words; w++) {
    let bits = load<u64>(cleared + (<usize>w << 3));
    while (bits != 0) {
      const g = base + (<u64>(first_word + w) << 6) + ctz(bits);
      bits &= bits - 1;
      if (gfn_write_protect(g, 3)) flush = true;
    }
  }
  mmu_unlock();
  if (flush) kvm_flush_remote_tlbs();
}

// ---- the host's entry points (dirty_exports.ts)

// Logging was just turned on for slot index `si` (its bitmap is set up):
// fill the bitmap (all ones for KVM_DIRTY_LOG_INITIALLY_SET, which then
// skips the write protection: every page counts as dirty until cleared).
export function kvm_dirty_log_enable(si: i32, initially_set: bool): void {
  dirty_slots_changed();
  const s = slot_addr(si);
  const bm = <usize>load<u32>(s + MEMSLOT_DIRTY_BITMAP);
  const n = load<u64>(s + MEMSLOT_NPAGES);
  const words = <i32>((n + 63) >> 6);
  for (let w = 0; w < words; w++) {
    let v: u64 = 0;
    if (initially_set) {
      const left = n - (<u64>w << 6);
      v = left >= 64 ? <u64>-1 : (<u64>1 << left) - 1;
    }
    atomic.store<u64>(bm + (<usize>w << 3), v);
  }
  if (!initially_set) write_protect_slot(s);
}

// KVM_GET_DIRTY_LOG: copy slot `si`'s bitmap to `out`. With `clear`
// (classic mode) each word is taken atomically and zeroed and the pages it
// held are re-protected before the guest runs again. Returns the number of
// dirty pages. Scans 64 bits at a time, set bits found with ctz.
export function kvm_get_dirty_log(si: i32, out: usize, clear: bool): i32 {
  const s = slot_addr(si);
  const bm = <usize>load<u32>(s + MEMSLOT_DIRTY_BITMAP);
  if (bm == 0) return -1;
  const words = <i32>((load<u64>(s + MEMSLOT_NPAGES) + 63) >> 6);
  let count: i32 = 0;
  for (let w = 0; w < words; w++) {
    const a = bm + (<usize>w << 3);
    let v: u64;
    if (clear) {
      v = atomic.load<u64>(a);
      if (v != 0) v = atomic.xchg<u64>(a, 0);
    } else v = atomic.load<u64>(a);
    store<u64>(out + (<usize>w << 3), v);
    count += <i32>popcnt(v);
  }
  if (clear && count != 0) reprotect(s, out, 0, words);
  return count;
}

// KVM_CLEAR_DIRTY_LOG (manual protect): clear the bits of pages
// [first, first + count) of slot `si` that are also set in `mask` (the
// bitmap the host got, words from page `first`; 0 = all of them), then
// re-protect the pages that were cleared. `first` is a multiple of 64.
// `scratch` receives the cleared bits. Returns the pages cleared, -1 on a
// bad range.
export function kvm_clear_dirty_log(si: i32, first: u32, count: u32, mask: usize, scratch: usize): i32 {
  const s = slot_addr(si);
  const bm = <usize>load<u32>(s + MEMSLOT_DIRTY_BITMAP);
  const n = load<u64>(s + MEMSLOT_NPAGES);
  if (bm == 0 || (first & 63) != 0 || <u64>first + <u64>count > n) return -1;
  const fw = <i32>(first >> 6);
  const words = <i32>((<u64>count + 63) >> 6);
  let cleared: i32 = 0;
  for (let w = 0; w < words; w++) {
    const left = <u64>count - (<u64>w << 6);
    let m: u64 = left >= 64 ? <u64>-1 : (<u64>1 << left) - 1;
    if (mask != 0) m &= load<u64>(mask + (<usize>w << 3));
    let old: u64 = 0;
    if (m != 0) old = atomic.and<u64>(bm + (<usize>(fw + w) << 3), ~m);
    const c = old & m;
    store<u64>(scratch + (<usize>w << 3), c);
    cleared += <i32>popcnt(c);
  }
  if (cleared != 0) reprotect(s, scratch, fw, words);
  return cleared;
}
