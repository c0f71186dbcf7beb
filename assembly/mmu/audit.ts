// kvm_mmu_audit: check every shadow page against the guest's tables and the
// MMU's own bookkeeping. Returns the number of problems; the first one is
// described in the VM struct (VM_AUDIT_*), for the host to print. Not on any
// hot path: tests and debug runs call it between run()s.
//  * each present leaf maps the gfn the guest entry names, at the memslot's
//    host address, with no more rights than the guest walk grants; it is in
//    its gfn's rmap; it is read-only if its gfn is write-tracked;
//  * each link points at an in-use page one level down whose gfn, role and
//    access follow from the guest entry, and is in that page's parent_ptes;
//  * every rmap entry is a present leaf mapping that gfn; every parent_ptes
//    entry links to its page; gfn_track counts the indirect pages per gfn;
//  * the possible_writable_spte bitmap and counter are exact;
//  * n_used_mmu_pages, the pools and the caches add up;
//  * every (non-global) software TLB entry agrees with the current root.
import { VMB, gpa_to_host } from "../vm";
import { VCPU, VCPU_TLB, TLB_ENTRIES } from "../cpu/state";
import {
  VM_N_USED_MMU_PAGES, VM_SP_POOL_NR, VM_SP_FREE_NR, VM_DESC_NR, VM_DESC_FREE_NR, VM_NR_GFNS, VM_RMAP_BASE,
  VM_MMU_MODE, MMU_MODE_TDP, VM_AUDIT_ERRORS, VM_AUDIT_CODE, VM_AUDIT_SP, VM_AUDIT_INDEX, VM_AUDIT_GFN,
  VM_AUDIT_SPTE, VM_AUDIT_DETAIL, VM_AUDIT_CHECKED, VM_SP_HDR_BASE, VM_SP_SPT_BASE,
  SP_FLAGS, SPF_IN_USE, SP_PARENT_PTES, SP_POSSIBLE_WRITABLE_SPTES, SP_POSSIBLE_WRITABLE_SPTE_BITMAP, SP_SIZE,
  SP_HASH_NEXT, SPTE_ENTRIES, DESC_MORE, MMU_CACHE_SP_NR, MMU_CACHE_DESC_NR,
} from "./layout";
import {
  sp_role, sp_gfn, sp_spt, is_obsolete_sp, hash_contains, hash_bucket, kvm_mmu_page_get_gfn, gfn_track_count,
  active_head, active_next, role_level, role_access, role_quadrant, ROLE_INVALID, ROLE_DIRECT, ROLE_HAS_4_BYTE_GPTE,
  ROLE_CR0_WP, ROLE_CR4_PSE, sp_guest_entry,
} from "./mmu_page";
import {
  is_shadow_present_pte, is_last_spte, is_writable_pte, spte_addr, sptep_to_sp, spte_index, PT_USER_MASK,
  PT64_NX_MASK, PT_WRITABLE_MASK, ACC_WRITE_MASK, ACC_USER_MASK, ACC_EXEC_MASK,
} from "./spte";
import { pte_list_count, pte_list_get, pte_list_contains, gfn_to_rmap, gfn_to_rmap_level, nr_regions } from "./rmap";
import { is_possibly_writable } from "./spte";
import { lpage_disallowed, lpage_disallow_addr } from "./mmu_page";
import { is_large_pte } from "./spte";
import { it_level } from "./fault";
import { PT64_ADDR_MASK } from "./walk";
import { spte_walk } from "./shadow";
import { root_level } from "./roots";
import { TLB_R_SUP, TLB_W_SUP, TLB_X_SUP, TLB_R_USR, TLB_W_USR, TLB_X_USR, TLB_GLOBAL, TLB_PERMS } from "./tlb";

export const AUDIT_NOT_IN_USE: u32 = 1;
export const AUDIT_HASH: u32 = 2;
export const AUDIT_OBSOLETE: u32 = 3;
export const AUDIT_NOT_TRACKED: u32 = 4;
export const AUDIT_PARENT: u32 = 5;
export const AUDIT_WRITABLE_BITMAP: u32 = 6;
export const AUDIT_LARGE: u32 = 7;
export const AUDIT_HOST: u32 = 8;
export const AUDIT_RMAP_MISSING: u32 = 9;
export const AUDIT_WRITABLE_TRACKED: u32 = 10;
export const AUDIT_RIGHTS: u32 = 11;
export const AUDIT_GPTE: u32 = 12;
export const AUDIT_CHILD: u32 = 13;
export const AUDIT_COUNT: u32 = 14;
export const AUDIT_TRACK_COUNT: u32 = 15;
export const AUDIT_RMAP_STALE: u32 = 16;
export const AUDIT_POOL: u32 = 17;
export const AUDIT_TLB: u32 = 18;

let errors: u32 = 0;
let checked: u32 = 0;

function report(code: u32, sp: usize, index: i32, gfn: u64, spte: u64, detail: u64): void {
  if (errors == 0) {
    store<u32>(VMB + VM_AUDIT_CODE, code);
    store<u32>(VMB + VM_AUDIT_SP, <u32>sp);
    store<u32>(VMB + VM_AUDIT_INDEX, <u32>index);
    store<u64>(VMB + VM_AUDIT_GFN, gfn);
    store<u64>(VMB + VM_AUDIT_SPTE, spte);
    store<u64>(VMB + VM_AUDIT_DETAIL, detail);
  }
  errors++;
}

// ACC_* of one guest entry (NX counts only when the page's role has efer_nx)
function gpte_acc(gpte: u64, is64: bool): u32 {
  let a: u32 = ACC_EXEC_MASK;
  if ((gpte & 2) != 0) a |= ACC_WRITE_MASK;
  if ((gpte & 4) != 0) a |= ACC_USER_MASK;
  if (is64 && (gpte & (<u64>1 << 63)) != 0) a &= ~ACC_EXEC_MASK;
  return a;
}

function audit_leaf(sp: usize, index: i32, sptep: usize, spte: u64): void {
  const role = sp_role(sp);
  const level = role_level(role);
  const gfn = kvm_mmu_page_get_gfn(sp, index);
  const w = is_writable_pte(spte);
  if (level > 1) {
    // a large spte: its region is one memslot, host-aligned, and write-tracks nothing if writable
    const span = <u64>1 << <u64>(9 * (level - 1));
    const h0 = gpa_to_host(gfn << 12), h1 = gpa_to_host(((gfn + span) << 12) - 1);
    if ((gfn & (span - 1)) != 0 || level > 3 || h0 < 0 || h1 != h0 + <i64>(span << 12) - 1 || (<u64>h0 & ((span << 12) - 1)) != 0) {
      report(AUDIT_LARGE, sp, index, gfn, spte, <u64>h0);
    }
    if (w && lpage_disallowed(gfn, level)) report(AUDIT_WRITABLE_TRACKED, sp, index, gfn, spte, <u64>level);
  }
  const h = gpa_to_host(gfn << 12);
  if (h < 0 || <usize>h != spte_addr(spte)) report(AUDIT_HOST, sp, index, gfn, spte, <u64>h);
  const rm = gfn_to_rmap_level(gfn, level);
  if (rm == 0 || !pte_list_contains(rm, sptep)) report(AUDIT_RMAP_MISSING, sp, index, gfn, spte, 0);
  if (w && gfn_track_count(gfn) != 0) report(AUDIT_WRITABLE_TRACKED, sp, index, gfn, spte, 0);
  // rights within the page's role
  const acc = role_access(role);
  const u = (spte & PT_USER_MASK) != 0;
  const x = (spte & PT64_NX_MASK) == 0;
  const wp = (role & ROLE_CR0_WP) != 0;
  if ((u && (acc & ACC_USER_MASK) == 0) || (x && (acc & ACC_EXEC_MASK) == 0) || (w && wp && (acc & ACC_WRITE_MASK) == 0)) {
    report(AUDIT_RIGHTS, sp, index, gfn, spte, <u64>acc);
  }
  if ((role & ROLE_DIRECT) != 0) return;
  // the guest's own entry
  const is64 = (role & ROLE_HAS_4_BYTE_GPTE) == 0;
  const gpte = sp_guest_entry(sp, index);
  let ggfn = is64 ? (gpte & PT64_ADDR_MASK) >> 12 : (gpte & 0xfffff000) >> 12;
  if (level > 1) {
    // the guest entry is a large page of the same level (a 32-bit 4 MiB page: this half of it)
    const large = (gpte & 0x80) != 0 && (is64 || (role & ROLE_CR4_PSE) != 0);
    if (!large) { report(AUDIT_GPTE, sp, index, gfn, spte, gpte); return; }
    if (is64) ggfn &= ~((<u64>1 << <u64>(9 * (level - 1))) - 1);
    else ggfn = ((gpte & 0xffc00000) >> 12) + (<u64>(index & 1) << 9);
  }
  if ((gpte & 0x21) != 0x21 || ggfn != gfn) { report(AUDIT_GPTE, sp, index, gfn, spte, gpte); return; }
  const gacc = gpte_acc(gpte, is64);
  const dirty = (gpte & 0x40) != 0;
  const wok = ((gacc & ACC_WRITE_MASK) != 0 && dirty) || (!wp && !u);
  if ((u && (gacc & ACC_USER_MASK) == 0) || (x && (gacc & ACC_EXEC_MASK) == 0) || (w && !wok)) {
    report(AUDIT_RIGHTS, sp, index, gfn, spte, gpte);
  }
}

function audit_link(sp: usize, index: i32, sptep: usize, spte: u64): void {
  const role = sp_role(sp);
  const level = role_level(role);
  const child = sptep_to_sp(spte_addr(spte));
  const pool_end = <usize>load<u32>(VMB + VM_SP_SPT_BASE) + <usize>load<u32>(VMB + VM_SP_POOL_NR) * 4096;
  if (spte_addr(spte) < <usize>load<u32>(VMB + VM_SP_SPT_BASE) || spte_addr(spte) >= pool_end ||
      (load<u32>(child + SP_FLAGS) & SPF_IN_USE) == 0 || sp_spt(child) != spte_addr(spte)) {
    report(AUDIT_CHILD, sp, index, 0, spte, 1);
    return;
  }
  const crole = sp_role(child);
  if (role_level(crole) != level - 1 || (crole & ROLE_INVALID) != 0) report(AUDIT_CHILD, sp, index, sp_gfn(child), spte, 2);
  if (!pte_list_contains(child + SP_PARENT_PTES, sptep)) report(AUDIT_PARENT, child, index, sp_gfn(child), spte, 3);
  if ((role & ROLE_DIRECT) != 0) {
    // below a direct page: direct, same access, the sub-range of the gfn
    const expect = sp_gfn(sp) + (<u64>index << (<u64>(level - 1) * 9));
    if ((crole & ROLE_DIRECT) == 0 || sp_gfn(child) != expect || role_access(crole) != role_access(role)) {
      report(AUDIT_CHILD, sp, index, sp_gfn(child), spte, expect);
    }
    return;
  }
  const is64 = (role & ROLE_HAS_4_BYTE_GPTE) == 0;
  const gpte = sp_guest_entry(sp, index);
  if ((gpte & 1) == 0) { report(AUDIT_GPTE, sp, index, sp_gfn(child), spte, gpte); return; }
  const expect_acc = role_access(role) & gpte_acc(gpte, is64);
  const large = (gpte & 0x80) != 0 && (is64 || (role & ROLE_CR4_PSE) != 0);
  if (!large) {
    const g = is64 ? (gpte & PT64_ADDR_MASK) >> 12 : (gpte & 0xfffff000) >> 12;
    if ((crole & ROLE_DIRECT) != 0 || sp_gfn(child) != g || role_access(crole) != expect_acc) {
      report(AUDIT_CHILD, sp, index, sp_gfn(child), spte, gpte);
    }
    if (!is64 && role_quadrant(crole) != <u32>(index & 1)) report(AUDIT_CHILD, sp, index, sp_gfn(child), spte, 4);
    return;
  }
  // a large guest page: a direct page for this slice of it, with at most the walk's rights
  let base: u64;
  if (is64) base = (gpte & PT64_ADDR_MASK & ~((<u64>1 << (<u64>(level - 1) * 9 + 12)) - 1)) >> 12;
  else base = ((gpte & 0xffc00000) >> 12) + (<u64>(index & 1) << 9);
  const cacc = role_access(crole);
  const wp = (role & ROLE_CR0_WP) != 0;
  const dirty = (gpte & 0x40) != 0;
  let bad = (crole & ROLE_DIRECT) == 0 || sp_gfn(child) != base;
  if ((cacc & ACC_USER_MASK) != 0 && (expect_acc & ACC_USER_MASK) == 0) bad = true;
  if ((cacc & ACC_EXEC_MASK) != 0 && (expect_acc & ACC_EXEC_MASK) == 0) bad = true;
  if ((cacc & ACC_WRITE_MASK) != 0 && !(((expect_acc & ACC_WRITE_MASK) != 0 && dirty) || !wp)) bad = true;
  if (bad) report(AUDIT_CHILD, sp, index, sp_gfn(child), spte, gpte);
}

function audit_page(sp: usize): void {
  const role = sp_role(sp);
  const spt = sp_spt(sp);
  if ((load<u32>(sp + SP_FLAGS) & SPF_IN_USE) == 0) report(AUDIT_NOT_IN_USE, sp, -1, sp_gfn(sp), 0, 0);
  if ((role & ROLE_INVALID) == 0) {
    if (!hash_contains(sp)) report(AUDIT_HASH, sp, -1, sp_gfn(sp), 0, 0);
    if (is_obsolete_sp(sp)) report(AUDIT_OBSOLETE, sp, -1, sp_gfn(sp), 0, 0);
    if ((role & ROLE_DIRECT) == 0 && sp_gfn(sp) < <u64>load<u32>(VMB + VM_NR_GFNS) && gfn_track_count(sp_gfn(sp)) == 0) {
      report(AUDIT_NOT_TRACKED, sp, -1, sp_gfn(sp), 0, 0);
    }
  }
  const ph = sp + SP_PARENT_PTES;
  const np = pte_list_count(ph);
  for (let i = 0; i < np; i++) {
    const p = pte_list_get(ph, i);
    const s = load<u64>(p);
    if (!is_shadow_present_pte(s) || spte_addr(s) != spt) report(AUDIT_PARENT, sp, i, sp_gfn(sp), s, <u64>p);
  }
  let writable: u32 = 0;
  for (let i = 0; i < SPTE_ENTRIES; i++) {
    const sptep = spt + (<usize>i << 3);
    const spte = load<u64>(sptep);
    const bit = (load<u64>(sp + SP_POSSIBLE_WRITABLE_SPTE_BITMAP + (<usize>(i >> 6) << 3)) >> <u64>(i & 63)) & 1;
    const w = is_possibly_writable(spte); // writable or mmu-writable (spte.ts, seed 000)
    if (w) writable++;
    if ((bit != 0) != w) report(AUDIT_WRITABLE_BITMAP, sp, i, sp_gfn(sp), spte, bit);
    if (!is_shadow_present_pte(spte)) continue;
    checked++;
    if (is_last_spte(spte, role_level(role))) audit_leaf(sp, i, sptep, spte);
    else audit_link(sp, i, sptep, spte);
  }
  if (writable != load<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES)) report(AUDIT_WRITABLE_BITMAP, sp, -1, sp_gfn(sp), <u64>writable, <u64>load<u32>(sp + SP_POSSIBLE_WRITABLE_SPTES));
}

// descs reachable from a list head
function list_descs(headp: usize): u32 {
  const head = load<u32>(headp);
  if ((head & 1) == 0) return 0;
  let n: u32 = 0;
  let d = <usize>(head & ~1);
  while (d != 0) { n++; d = <usize>load<u32>(d + DESC_MORE); }
  return n;
}

export function kvm_mmu_audit(): i32 {
  errors = 0;
  checked = 0;
  if (load<u32>(VMB + VM_MMU_MODE) == MMU_MODE_TDP) { store<u32>(VMB + VM_AUDIT_ERRORS, 0); return 0; }
  let pages: u32 = 0;
  let descs: u32 = 0;
  let sp = active_head();
  while (sp != 0) {
    pages++;
    audit_page(sp);
    descs += list_descs(sp + SP_PARENT_PTES);
    sp = active_next(sp);
  }
  if (pages != load<u32>(VMB + VM_N_USED_MMU_PAGES)) report(AUDIT_COUNT, 0, -1, 0, <u64>pages, <u64>load<u32>(VMB + VM_N_USED_MMU_PAGES));
  const pool = load<u32>(VMB + VM_SP_POOL_NR);
  const cached_sp = load<u32>(VCPU + MMU_CACHE_SP_NR);
  if (pages + load<u32>(VMB + VM_SP_FREE_NR) + cached_sp != pool) report(AUDIT_POOL, 0, -1, 0, <u64>pages, <u64>load<u32>(VMB + VM_SP_FREE_NR));
  // rmaps and write tracking, gfn by gfn
  const nr = load<u32>(VMB + VM_NR_GFNS);
  const rbase = <usize>load<u32>(VMB + VM_RMAP_BASE);
  const hdr_base = <usize>load<u32>(VMB + VM_SP_HDR_BASE);
  const spt_base = <usize>load<u32>(VMB + VM_SP_SPT_BASE);
  for (let g: u32 = 0; g < nr; g++) {
    const gfn = <u64>g;
    const rh = rbase + (<usize>g << 2);
    if (load<u32>(rh) != 0) {
      descs += list_descs(rh);
      const n = pte_list_count(rh);
      const host = gpa_to_host(gfn << 12);
      for (let i = 0; i < n; i++) {
        const p = pte_list_get(rh, i);
        const s = load<u64>(p);
        let ok = p >= spt_base && p < spt_base + <usize>pool * 4096 && is_shadow_present_pte(s) && <i64>spte_addr(s) == host;
        if (ok) {
          const owner = hdr_base + ((p - spt_base) >> 12) * <usize>SP_SIZE;
          ok = (load<u32>(owner + SP_FLAGS) & SPF_IN_USE) != 0 && role_level(sp_role(owner)) == 1 &&
               kvm_mmu_page_get_gfn(owner, spte_index(p)) == gfn;
        }
        if (!ok) report(AUDIT_RMAP_STALE, 0, i, gfn, s, <u64>p);
      }
    }
    const t = gfn_track_count(gfn);
    let c: u32 = 0;
    let q = <usize>load<u32>(hash_bucket(gfn));
    while (q != 0) {
      const r = sp_role(q);
      if (sp_gfn(q) == gfn && (r & (ROLE_DIRECT | ROLE_INVALID)) == 0) c++;
      q = <usize>load<u32>(q + SP_HASH_NEXT);
    }
    if (c != t) report(AUDIT_TRACK_COUNT, 0, -1, gfn, <u64>t, <u64>c);
  }
  // large-spte rmaps and disallow_lpage counts, region by region
  for (let level = 2; level <= 3; level++) {
    const nreg = <u32>nr_regions(level);
    const shift = <u64>(9 * (level - 1));
    for (let r: u32 = 0; r < nreg; r++) {
      const base = <u64>r << shift;
      const rh = gfn_to_rmap_level(base, level);
      if (rh != 0 && load<u32>(rh) != 0) {
        descs += list_descs(rh);
        const n = pte_list_count(rh);
        const host = gpa_to_host(base << 12);
        for (let i = 0; i < n; i++) {
          const p = pte_list_get(rh, i);
          const s = load<u64>(p);
          let ok = p >= spt_base && p < spt_base + <usize>pool * 4096 && is_shadow_present_pte(s) && is_large_pte(s) && <i64>spte_addr(s) == host;
          if (ok) {
            const owner = hdr_base + ((p - spt_base) >> 12) * <usize>SP_SIZE;
            ok = (load<u32>(owner + SP_FLAGS) & SPF_IN_USE) != 0 && role_level(sp_role(owner)) == level &&
                 kvm_mmu_page_get_gfn(owner, spte_index(p)) == base;
          }
          if (!ok) report(AUDIT_RMAP_STALE, 0, i, base, s, <u64>p);
        }
      }
      const la = lpage_disallow_addr(base, level);
      if (la != 0) {
        let tracked: u32 = 0;
        const end = base + (<u64>1 << shift) < <u64>nr ? base + (<u64>1 << shift) : <u64>nr;
        for (let g = base; g < end; g++) tracked += gfn_track_count(g);
        if (tracked != load<u32>(la)) report(AUDIT_TRACK_COUNT, 0, -3, base, <u64>tracked, <u64>load<u32>(la));
      }
    }
  }
  const cached_desc = load<u32>(VCPU + MMU_CACHE_DESC_NR);
  if (descs + load<u32>(VMB + VM_DESC_FREE_NR) + cached_desc != load<u32>(VMB + VM_DESC_NR)) {
    report(AUDIT_POOL, 0, -2, 0, <u64>descs, <u64>load<u32>(VMB + VM_DESC_FREE_NR));
  }
  // the software TLB against the current root
  if (root_level() != 0) {
    const base = VCPU + VCPU_TLB;
    for (let i = 0; i < TLB_ENTRIES; i++) {
      const e = base + (<usize>i << 4);
      const tag = load<u64>(e);
      if ((tag & TLB_PERMS) == 0 || (tag & TLB_GLOBAL) != 0) continue;
      const lin = tag & ~<u64>0xfff;
      const spte = spte_walk(lin);
      const host = <usize>load<u32>(e + 8);
      let shost = spte_addr(spte);
      if (it_level > 1) shost += <usize>(((lin >> 12) & ((<u64>1 << <u64>(9 * (it_level - 1))) - 1)) << 12);
      if (!is_shadow_present_pte(spte) || shost != host) { report(AUDIT_TLB, 0, i, lin >> 12, spte, tag); continue; }
      const w = (spte & PT_WRITABLE_MASK) != 0, u = (spte & PT_USER_MASK) != 0, x = (spte & PT64_NX_MASK) == 0;
      let allowed: u64 = TLB_R_SUP | (w ? TLB_W_SUP : 0) | (x ? TLB_X_SUP : 0);
      if (u) allowed |= TLB_R_USR | (w ? TLB_W_USR : 0) | (x ? TLB_X_USR : 0);
      if ((tag & TLB_PERMS & ~allowed) != 0) report(AUDIT_TLB, 0, i, lin >> 12, spte, tag);
    }
  }
  store<u32>(VMB + VM_AUDIT_ERRORS, errors);
  store<u32>(VMB + VM_AUDIT_CHECKED, checked);
  return <i32>errors;
}
