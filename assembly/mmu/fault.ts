// The shadow page fault (kvm_mmu_page_fault): the spte walk missed or lacked
// a right. Walk the guest's tables (FNAME(walk_addr), walk.ts); if the guest
// itself would fault, inject #PF (pf_guest); otherwise build the missing
// shadow pages down the path and install the leaf spte (FNAME(fetch), or
// direct_map with paging off): pf_fixed. A write to a gfn that shadows a guest
// page table keeps the spte read-only and is emulated (pf_emulate).
import { VMB, gpa_to_host, gpa_slot_flags, MEM_READONLY } from "../vm";
import {
  VCPU_CR0, VCPU_CR4, CR0_PG, CR0_WP, CR4_SMEP, vcpu_load64, stat_inc,
} from "../cpu/state";
import { STAT_PF_FIXED, STAT_EXITS, STAT_PF_EMULATE } from "../stats";
import {
  walk_addr, walker_table_gfn, walker_pt_access, walker_pte_access, walker_gfn, walker_level, walk_global,
  ACC_WRITE, ACC_USER, ACC_IMPLICIT, ACC_FETCH,
} from "./walk";
import { trace, TRACE_PF_FIXED, TRACE_PF_GUEST } from "../trace";
import { exc_code } from "../cpu/fault";
import {
  is_shadow_present_pte, is_last_spte, spte_addr, sptep_to_sp, spte_index, spte_to_child_sp, make_spte,
  make_nonleaf_spte, mmu_spte_set, mmu_spte_update, ACC_ALL, ACC_WRITE_MASK, ACC_USER_MASK, ACC_EXEC_MASK,
  PT_ACCESSED_MASK, SPTE_GUEST_GLOBAL, PT64_ROOT_4LEVEL, PT32E_ROOT_LEVEL,
} from "./spte";
import {
  kvm_mmu_get_page, sp_role, sp_gfn, sp_spt, sp_direct, role_with, role_access, role_level, role_4byte,
  kvm_gfn_is_write_tracked, kvm_mmu_page_set_gfn, kvm_mmu_page_get_gfn,
} from "./mmu_page";
import { SP_PARENT_PTES, SP_WRITE_FLOODING_COUNT, VM_KNOB_LARGE_SPTES, VM_KNOB_PTE_PREFETCH } from "./layout";
import { VM_NR_SLOTS, VM_SLOTS, MEMSLOT_SIZE, MEMSLOT_BASE_GFN, MEMSLOT_NPAGES, MEMSLOT_HOST } from "../vm";
import { lpage_disallowed, sp_level } from "./mmu_page";
import { is_large_pte, PT_PAGE_SIZE_MASK } from "./spte";
import { PT64_RSVD_HIGH, PT64_ADDR_MASK } from "./walk";
import { mmu_page_zap_pte } from "./zap";
import { ROLE_DIRECT, ROLE_INVALID, ROLE_EFER_NX, sp_guest_entry } from "./mmu_page";
import { PT_PRESENT_MASK, PT_DIRTY_MASK, PT64_NX_MASK } from "./spte";
import { CR4_PGE } from "../cpu/state";
import { pte_list_add, rmap_add } from "./rmap";
import { drop_spte, drop_parent_pte, make_mmu_pages_available, kvm_mmu_commit_zap_page, kvm_mmu_zap_all_fast, mmu_topup_memory_caches_reclaim } from "./zap";
import { kvm_flush_remote_tlbs } from "./tlbflush";
import { mmu_lock, mmu_unlock, mmu_cache_nr_desc } from "./cache";
import { root_level, root_hpa, pae_root } from "./roots";
// issue 8: dirty logging, write-protect-all (seed 000), the fast path
import { dirty_log_leaf_spte, gfn_dirty_logged } from "./dirty";
import { mmu_load_shadow_page, handle_readonly_upper_spte, wp_all_link_mask } from "./wp_all";
import { fast_page_fault } from "./fast_pf";

export const RET_PF_FIXED: i32 = 1;
export const RET_PF_EMULATE: i32 = 2; // write to a write-tracked gfn: emulate it
export const RET_PF_INJECTED: i32 = 3; // the guest's own #PF, raised
export const RET_PF_MMIO: i32 = 4; // no memslot: MMIO (fault_gpa)
export const RET_PF_RETRY: i32 = 5;

// What the last fault found
export let fault_gpa: u64 = 0;
export let fault_host: usize = 0; // host offset of the page

// ---- the shadow walk iterator (for_each_shadow_entry)
export let it_level: i32 = 0;
export let it_sptep: usize = 0;

@inline function spte_idx(lin: u64, level: i32): usize { return <usize>((lin >> (12 + 9 * <u64>(level - 1))) & 511); }

export function shadow_walk_init(lin: u64): bool {
  const rl = root_level();
  let table: usize;
  if (rl == PT64_ROOT_4LEVEL) { table = root_hpa(); it_level = 4; }
  else if (rl == PT32E_ROOT_LEVEL) { table = pae_root(<i32>((lin >> 30) & 3)); it_level = 2; }
  else return false;
  if (table == 0) return false;
  it_sptep = table + (spte_idx(lin, it_level) << 3);
  return true;
}
// Step down through a present non-leaf spte; false at a leaf or a hole.
export function shadow_walk_next(lin: u64): bool {
  const spte = load<u64>(it_sptep);
  if (!is_shadow_present_pte(spte) || is_last_spte(spte, it_level)) return false;
  it_level--;
  it_sptep = spte_addr(spte) + (spte_idx(lin, it_level) << 3);
  return true;
}

// The role of a page linked below `sptep` (kvm_mmu_child_role): a 32-bit
// guest's page table (1024 entries) is shadowed by two pages, quadrant 0/1.
function kvm_mmu_child_role(sptep: usize, direct: bool, access: u32): u32 {
  const prole = sp_role(sptep_to_sp(sptep));
  const quadrant: u32 = role_4byte(prole) ? <u32>(spte_index(sptep) & 1) : 0;
  return role_with(prole, role_level(prole) - 1, direct, access, quadrant);
}

function link_shadow_page(sptep: usize, sp: usize): void {
  // seed 000: an out-of-date page is linked read-only while write-protect-all is on
  mmu_spte_set(sptep, make_nonleaf_spte(sp_spt(sp)) & wp_all_link_mask(sp));
  pte_list_add(sp + SP_PARENT_PTES, sptep);
}

// Install the leaf (mmu_set_spte). A write-tracked gfn is mapped read-only;
// if the fault was that write, the caller emulates it.
function mmu_set_spte(sptep: usize, pte_access: u32, gfn: u64, host: usize, write_fault: bool, map_writable: bool, global: bool): i32 {
  const sp = sptep_to_sp(sptep);
  const idx = spte_index(sptep);
  let access = pte_access;
  if (!map_writable) access &= ~ACC_WRITE_MASK;
  let wrprot = false;
  if ((access & ACC_WRITE_MASK) != 0 && kvm_gfn_is_write_tracked(gfn)) {
    access &= ~ACC_WRITE_MASK;
    wrprot = true;
  }
  let spte = make_spte(access, host, map_writable) | PT_ACCESSED_MASK;
  if (global) spte |= SPTE_GUEST_GLOBAL;
  const level = sp_level(sp);
  if (level > 1) spte |= PT_PAGE_SIZE_MASK;
  // dirty logging (dirty.ts): writable in a logged slot only at 4 KiB for a write, which marks the gfn
  spte = dirty_log_leaf_spte(spte, gfn, level, write_fault);
  const old = load<u64>(sptep);
  let flush = false;
  if (is_shadow_present_pte(old) && level > 1 && !is_large_pte(old)) {
    // a link to a page below becomes a large spte: cut it
    drop_parent_pte(spte_to_child_sp(old), sptep);
    flush = true;
  } else if (is_shadow_present_pte(old) && spte_addr(old) != host) {
    drop_spte(sp, idx);
    flush = true;
  }
  if (is_shadow_present_pte(load<u64>(sptep))) {
    if (mmu_spte_update(sptep, spte)) flush = true;
  } else {
    kvm_mmu_page_set_gfn(sp, idx, gfn);
    mmu_spte_set(sptep, spte);
    rmap_add(sptep, gfn, level);
  }
  if (flush) kvm_flush_remote_tlbs();
  return wrprot && write_fault ? RET_PF_EMULATE : RET_PF_FIXED;
}

// FNAME(update_pte) / FNAME(prefetch_gpte): make the spte at `index` of a
// 4 KiB-level indirect page follow the guest entry `gpte` (just written by
// the guest) without waiting for a fault (seed 002). Under mmu_lock, with the
// desc cache topped up. An entry that is not present, not accessed or has
// reserved bits set is dropped instead. Returns true if an spte was set.
export function kvm_mmu_update_pte(sp: usize, index: i32, gpte: u64): bool {
  const role = sp_role(sp);
  if (role_level(role) != 1 || (role & (ROLE_DIRECT | ROLE_INVALID)) != 0 || index < 0 || index >= 512) return false;
  const is64 = !role_4byte(role);
  let bad = (gpte & PT_PRESENT_MASK) == 0 || (gpte & PT_ACCESSED_MASK) == 0;
  if (is64 && ((gpte & PT64_RSVD_HIGH) != 0 || ((role & ROLE_EFER_NX) == 0 && (gpte & PT64_NX_MASK) != 0))) bad = true;
  const gfn = is64 ? (gpte & PT64_ADDR_MASK) >> 12 : (gpte & 0xfffff000) >> 12;
  const h = bad ? -1 : gpa_to_host(gfn << 12);
  if (h < 0) { mmu_page_zap_pte(sp, index); return false; }
  const map_writable = (gpa_slot_flags & MEM_READONLY) == 0;
  let acc: u32 = ACC_EXEC_MASK | (<u32>gpte & (ACC_WRITE_MASK | ACC_USER_MASK));
  if (is64 && (gpte & PT64_NX_MASK) != 0) acc &= ~ACC_EXEC_MASK;
  let pte_access = role_access(role) & acc;
  if ((gpte & PT_DIRTY_MASK) == 0) pte_access &= ~ACC_WRITE_MASK; // protect_clean_gpte
  const global = (gpte & SPTE_GUEST_GLOBAL) != 0 && (vcpu_load64(VCPU_CR4) & CR4_PGE) != 0;
  mmu_set_spte(sp_spt(sp) + (<usize>index << 3), pte_access, gfn, <usize>h, false, map_writable, global);
  return true;
}

// FNAME(fetch) (indirect: the guest walk is in the walker) and direct_map
// (paging off): make the shadow path for `lin` and set the leaf.
// The largest level (2 = 2 MiB, 3 = 1 GiB) at most `max_level` at which one
// large spte may map gfn's region: the large_sptes knob is on, no gfn in the
// region is write-tracked (disallow_lpage), the region lies in one memslot,
// and its host address is aligned to the page size (host_mapping_level).
function host_mapping_level(gfn: u64, max_level: i32): i32 {
  if (load<u32>(VMB + VM_KNOB_LARGE_SPTES) == 0) return 1;
  if (gfn_dirty_logged(gfn)) return 1; // seed 001: no new large sptes in a logged slot
  for (let level = max_level; level >= 2; level--) {
    const span = <u64>1 << <u64>(9 * (level - 1));
    const base = gfn & ~(span - 1);
    if (lpage_disallowed(base, level)) continue;
    const host = slot_host_for_range(base, span);
    if (host < 0 || (<u64>host & ((span << 12) - 1)) != 0) continue;
    return level;
  }
  return 1;
}
// Host offset of gfns [base, base + n) if one memslot holds them all, else -1.
function slot_host_for_range(base: u64, n: u64): i64 {
  const nr = load<u32>(VMB + VM_NR_SLOTS);
  for (let i: u32 = 0; i < nr; i++) {
    const s = VMB + VM_SLOTS + <usize>(i * MEMSLOT_SIZE);
    const sb = load<u64>(s + MEMSLOT_BASE_GFN);
    if (base >= sb && base + n <= sb + load<u64>(s + MEMSLOT_NPAGES)) return <i64>(load<u64>(s + MEMSLOT_HOST) + ((base - sb) << 12));
  }
  return -1;
}

// FNAME(fetch) (indirect: the guest walk is in the walker) and direct_map
// (paging off): make the shadow path for `lin` and set the leaf, a large
// spte where host_mapping_level allows one below a large guest page.
function fetch(lin: u64, gfn: u64, pte_access: u32, gw_level: i32, indirect: bool,
               write_fault: bool, map_writable: bool, host: usize, global: bool): i32 {
  if (!shadow_walk_init(lin)) return RET_PF_RETRY;
  let flush = false;
  const top = it_level;
  // levels the guest has tables for: indirect pages shadowing them. A page
  // used for a translation is not being flooded (clear_sp_write_flooding_count).
  while (indirect && it_level >= gw_level) {
    store<u32>(sptep_to_sp(it_sptep) + SP_WRITE_FLOODING_COUNT, 0);
    if (it_level == gw_level) break;
    let spte = load<u64>(it_sptep);
    if (is_shadow_present_pte(spte) && is_large_pte(spte)) {
      mmu_page_zap_pte(sptep_to_sp(it_sptep), spte_index(it_sptep));
      spte = 0;
    } else if (is_shadow_present_pte(spte)) {
      // A link to a page that no longer shadows the table this guest entry
      // points at, or with other rights: the guest rewrote the entry earlier
      // in the instruction (or event delivery) being executed, and the
      // pte-write policy only runs at the PT_WRITE exit after it. KVM handles
      // the write synchronously; here the stale link is cut before anything
      // is installed below it (fuzz finding 8).
      const child = spte_to_child_sp(spte);
      if (sp_gfn(child) != walker_table_gfn(it_level - 1) || role_access(sp_role(child)) != walker_pt_access(it_level - 1)) {
        mmu_page_zap_pte(sptep_to_sp(it_sptep), spte_index(it_sptep));
        flush = true;
        spte = 0;
      }
    }
    if (!is_shadow_present_pte(spte)) {
      const sp = kvm_mmu_get_page(walker_table_gfn(it_level - 1),
                                  kvm_mmu_child_role(it_sptep, false, walker_pt_access(it_level - 1)));
      if (sp == 0) return RET_PF_RETRY;
      if (write_fault && mmu_load_shadow_page(sp)) flush = true; // seed 000
      link_shadow_page(it_sptep, sp);
    } else if (handle_readonly_upper_spte(it_sptep, write_fault)) flush = true; // seed 000
    if (!shadow_walk_next(lin)) return RET_PF_RETRY;
  }
  // The large-page level is decided only now: shadowing the guest's tables
  // above may just have write-tracked a gfn in this very region
  // (kvm_mmu_hugepage_adjust after the indirect levels).
  let goal = 1;
  if (!indirect) goal = host_mapping_level(gfn, top);
  else if (gw_level > 1) goal = host_mapping_level(gfn, gw_level < top ? gw_level : top);
  // below a large guest page (or everything when paging is off): direct pages
  while (it_level > goal) {
    let spte = load<u64>(it_sptep);
    if (is_shadow_present_pte(spte)) {
      if (is_large_pte(spte)) {
        // drop_large_spte: now mapped below (e.g. its region became write-tracked, seed 001)
        mmu_page_zap_pte(sptep_to_sp(it_sptep), spte_index(it_sptep));
        spte = 0;
      } else {
        // validate_direct_spte: a direct page made for other rights (e.g. before D was set)
        const child = spte_to_child_sp(spte);
        if (sp_direct(child) && role_access(sp_role(child)) != pte_access) {
          drop_parent_pte(child, it_sptep);
          flush = true;
          spte = 0;
        }
      }
    }
    if (!is_shadow_present_pte(spte)) {
      const span: u64 = (<u64>1 << (9 * <u64>(it_level - 1))) - 1;
      const sp = kvm_mmu_get_page(gfn & ~span, kvm_mmu_child_role(it_sptep, true, pte_access));
      if (sp == 0) return RET_PF_RETRY;
      if (write_fault && mmu_load_shadow_page(sp)) flush = true; // seed 000
      link_shadow_page(it_sptep, sp);
    } else if (handle_readonly_upper_spte(it_sptep, write_fault)) flush = true; // seed 000
    if (!shadow_walk_next(lin)) return RET_PF_RETRY;
  }
  if (flush) kvm_flush_remote_tlbs();
  if (it_level > 1) {
    // a large spte maps the whole region from its first page
    const span: u64 = (<u64>1 << (9 * <u64>(it_level - 1))) - 1;
    const base = gfn & ~span;
    return mmu_set_spte(it_sptep, pte_access, base, host - <usize>((gfn - base) << 12), write_fault, map_writable, global);
  }
  const r = mmu_set_spte(it_sptep, pte_access, gfn, host, write_fault, map_writable, global);
  pte_prefetch(it_sptep);
  return r;
}

// FNAME(pte_prefetch) and direct_pte_prefetch (knob pte_prefetch): once a
// fault has installed the 4 KiB spte at `sptep`, install the not-present
// sptes of its aligned group of PTE_PREFETCH_NUM too, from their guest
// entries (indirect page) or frames (direct page), speculative (accessed bit
// clear, as FNAME(prefetch_gpte) leaves them): a guest touching neighbouring
// pages takes one shadow fault, not eight. Like KVM, it stops at the first
// entry that cannot be installed (not present, not accessed, reserved bits,
// MMIO). A writable entry in a dirty-logged slot, which KVM does not
// prefetch, is mapped read-only here (dirty_log_leaf_spte): its first write
// still faults and marks the page.
const PTE_PREFETCH_NUM = 8;
function pte_prefetch(sptep: usize): void {
  if (load<u32>(VMB + VM_KNOB_PTE_PREFETCH) == 0) return;
  const sp = sptep_to_sp(sptep);
  const role = sp_role(sp);
  if (role_level(role) != 1) return;
  const at = spte_index(sptep);
  const first = at & ~(PTE_PREFETCH_NUM - 1);
  const global = (load<u64>(sptep) & SPTE_GUEST_GLOBAL) != 0;
  for (let i = first; i < first + PTE_PREFETCH_NUM; i++) {
    const p = sp_spt(sp) + (<usize>i << 3);
    if (i == at || is_shadow_present_pte(load<u64>(p))) continue;
    if (mmu_cache_nr_desc() == 0) return; // (the top-up covers PTE_PREFETCH_NUM: never, in practice)
    if ((role & ROLE_DIRECT) == 0) {
      if (!kvm_mmu_update_pte(sp, i, sp_guest_entry(sp, i))) return;
    } else {
      const gfn = kvm_mmu_page_get_gfn(sp, i);
      const h = gpa_to_host(gfn << 12);
      if (h < 0) return;
      mmu_set_spte(p, role_access(role), gfn, <usize>h, false, (gpa_slot_flags & MEM_READONLY) == 0, global);
    }
    if (is_shadow_present_pte(load<u64>(p))) atomic.and<u64>(p, ~PT_ACCESSED_MASK); // (another vCPU's spte walk may set it)
  }
}

// kvm_mmu_page_fault: `access` is mem.ts's (ACC_WRITE / ACC_FETCH /
// ACC_IMPLICIT), `cpl3` the CPL the access is made at (implicit supervisor
// accesses come with cpl3 false). Every call is a vmexit of a shadow-paging
// hypervisor (exits), except those that continue as the PT_WRITE or MMIO
// exit run() returns with (counted there).
export function kvm_mmu_page_fault(lin: u64, access: u32, cpl3: bool): i32 {
  // the lockless fast path first (fast_pf.ts; counted in fast_pf_fixed, not pf_fixed)
  if ((access & ACC_WRITE) != 0 && fast_page_fault(lin, access, cpl3 && (access & ACC_IMPLICIT) == 0)) {
    stat_inc(STAT_EXITS);
    return RET_PF_FIXED;
  }
  const r = page_fault(lin, access, cpl3);
  const code = (access & (ACC_WRITE | ACC_FETCH)) | (cpl3 ? ACC_USER : 0);
  if (r == RET_PF_FIXED) trace(TRACE_PF_FIXED, code, lin, fault_gpa);
  else if (r == RET_PF_INJECTED) trace(TRACE_PF_GUEST, exc_code, lin, 0);
  if (r == RET_PF_FIXED) stat_inc(STAT_PF_FIXED);
  else if (r == RET_PF_EMULATE) stat_inc(STAT_PF_EMULATE);
  if (r != RET_PF_EMULATE && r != RET_PF_MMIO) stat_inc(STAT_EXITS);
  return r;
}

function page_fault(lin: u64, access: u32, cpl3: bool): i32 {
  const write_fault = (access & ACC_WRITE) != 0;
  const user = cpl3 && (access & ACC_IMPLICIT) == 0;
  const paging = (vcpu_load64(VCPU_CR0) & CR0_PG) != 0;
  let gfn: u64;
  let pte_access: u32 = ACC_ALL;
  let gw_level = 0;
  let global = false;
  if (paging) {
    const g = walk_addr(lin, access | (cpl3 ? ACC_USER : 0));
    if (g < 0) return RET_PF_INJECTED;
    gfn = walker_gfn();
    pte_access = walker_pte_access();
    gw_level = walker_level();
    global = walk_global;
    // CR0.WP=0: a supervisor write to a read-only page is allowed; map it
    // writable for the supervisor only (and not executable under SMEP)
    if (write_fault && (pte_access & ACC_WRITE_MASK) == 0 && !user && (vcpu_load64(VCPU_CR0) & CR0_WP) == 0) {
      pte_access = (pte_access | ACC_WRITE_MASK) & ~ACC_USER_MASK;
      if ((vcpu_load64(VCPU_CR4) & CR4_SMEP) != 0) pte_access &= ~ACC_EXEC_MASK;
    }
  } else {
    gfn = (lin & 0xffffffff) >> 12;
  }
  fault_gpa = (gfn << 12) | (lin & 0xfff);
  const h = gpa_to_host(gfn << 12);
  if (h < 0) return RET_PF_MMIO;
  const map_writable = (gpa_slot_flags & MEM_READONLY) == 0;
  if (write_fault && !map_writable) return RET_PF_MMIO;
  fault_host = <usize>h;

  if (!mmu_topup_memory_caches_reclaim()) {
    mmu_lock();
    kvm_mmu_zap_all_fast();
    mmu_unlock();
    return RET_PF_RETRY; // the roots are reloaded first
  }
  mmu_lock();
  make_mmu_pages_available();
  let r: i32;
  if (root_level() == 0) r = RET_PF_RETRY;
  else r = fetch(lin, gfn, pte_access, paging ? gw_level : 5, paging, write_fault, map_writable, fault_host, global);
  kvm_mmu_commit_zap_page();
  mmu_unlock();
  return r;
}
