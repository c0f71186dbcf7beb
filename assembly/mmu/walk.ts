// The guest page-table walker (KVM's paging_tmpl.h FNAME(walk_addr)): 2-level
// 32-bit paging with 4 MiB PSE pages, PAE with PDPTEs, and 4-level long mode
// with 2 MiB / 1 GiB pages. Sets A/D bits the way the SDM (vol. 3, 4.8) says,
// checks U/S, R/W (with CR0.WP), NX (with EFER.NXE), SMEP/SMAP and reserved
// bits, and raises #PF with the architectural error code.
import { has_feature, FEAT_PDPE1GB } from "../cpu/state";
import {
  VCPU_CR0, VCPU_CR3, VCPU_CR4, VCPU_EFER, VCPU_PDPTR, vcpu_load64,
  CR0_WP, CR4_PSE, CR4_PAE, CR4_PGE, CR4_SMEP, CR4_SMAP, EFER_NXE, EFER_LMA,
} from "../cpu/state";
import { raise_pf, faulted, PFERR_PRESENT, PFERR_WRITE, PFERR_USER, PFERR_RSVD, PFERR_FETCH } from "../cpu/fault";
import { gpa_to_host } from "../vm";
import { mark_page_dirty_gpa } from "./dirty";
import { VCPU, stat_inc } from "../cpu/state";
import { STAT_PF_GUEST } from "../stats";
import { WALK_TABLE_GFN, WALK_PTES, WALK_PTE_GPA, WALK_PT_ACCESS, WALK_PTE_ACCESS, WALK_GFN, WALK_LEVEL, WALK_MAX_LEVEL } from "./layout";

export const MAXPHYADDR: u32 = 40;
export const PT_PRESENT: u64 = 1 << 0;
export const PT_WRITABLE: u64 = 1 << 1;
export const PT_USER: u64 = 1 << 2;
export const PT_ACCESSED: u64 = 1 << 5;
export const PT_DIRTY: u64 = 1 << 6;
export const PT_PAGE_SIZE: u64 = 1 << 7;
export const PT_GLOBAL: u64 = 1 << 8;
export const PT64_NX: u64 = <u64>1 << 63;
// bits 51..MAXPHYADDR of a physical address field are reserved
export const PT64_RSVD_HIGH: u64 = ((<u64>1 << 52) - 1) & ~((<u64>1 << MAXPHYADDR) - 1);
export const PT64_ADDR_MASK: u64 = ((<u64>1 << MAXPHYADDR) - 1) & ~<u64>0xfff;

// Access kinds
export const ACC_WRITE: u32 = 1 << 1; // same bit as PFERR_WRITE
export const ACC_USER: u32 = 1 << 2; // same bit as PFERR_USER
export const ACC_FETCH: u32 = 1 << 4; // same bit as PFERR_FETCH
export const ACC_IMPLICIT: u32 = 1 << 8; // implicit supervisor access (descriptor tables)

// Results of the last successful walk
export let walk_user: bool = false; // U/S allowed at every level
export let walk_writable: bool = false; // R/W at every level
export let walk_nx: bool = false; // NX at some level (and EFER.NXE)
export let walk_dirty: bool = false; // leaf D bit set (after this walk)
export let walk_global: bool = false;
export let walk_level: i32 = 1; // level of the leaf (1 = 4 KiB)

// The guest walker's record (struct guest_walker) for the shadow MMU's fetch:
// per level the gfn of the table, the gpte and the access granted by the
// levels above (ACC_EXEC 1 | ACC_WRITE 2 | ACC_USER 4), then the access of
// the whole walk and the gfn reached.
@inline function walker_set(level: i32, table_gfn: u64, pte: u64, pte_gpa: u64, pt_access: u32): void {
  const i = <usize>(level - 1);
  store<u64>(VCPU + WALK_TABLE_GFN + (i << 3), table_gfn);
  store<u64>(VCPU + WALK_PTES + (i << 3), pte);
  store<u64>(VCPU + WALK_PTE_GPA + (i << 3), pte_gpa);
  store<u32>(VCPU + WALK_PT_ACCESS + (i << 2), pt_access);
}
@inline function acc_of(user: bool, writable: bool, nx: bool): u32 {
  return (nx ? 0 : 1) | (writable ? 2 : 0) | (user ? 4 : 0);
}
export function walker_table_gfn(level: i32): u64 { return load<u64>(VCPU + WALK_TABLE_GFN + (<usize>(level - 1) << 3)); }
export function walker_pte(level: i32): u64 { return load<u64>(VCPU + WALK_PTES + (<usize>(level - 1) << 3)); }
export function walker_pt_access(level: i32): u32 { return load<u32>(VCPU + WALK_PT_ACCESS + (<usize>(level - 1) << 2)); }
export function walker_pte_access(): u32 { return load<u32>(VCPU + WALK_PTE_ACCESS); }
export function walker_gfn(): u64 { return load<u64>(VCPU + WALK_GFN); }
export function walker_level(): i32 { return <i32>load<u32>(VCPU + WALK_LEVEL); }

// A #PF found by the guest walk: delivered to the guest (pf_guest).
function walk_fault(lin: u64, code: u32): void {
  if (!faulted()) stat_inc(STAT_PF_GUEST); // once per instruction (a bulk probe may walk twice)
  raise_pf(lin, code);
}

// Read a guest-physical u64/u32 for the walker; open bus reads all ones.
export function pt_read(gpa: u64, is64: bool): u64 {
  const h = gpa_to_host(gpa);
  if (h < 0) return is64 ? <u64>-1 : 0xffffffff;
  return is64 ? load<u64>(<usize>h) : <u64>load<u32>(<usize>h);
}
// Set A (and D) bits in a guest entry atomically, like the hardware does.
// A bit that changes dirties the table's page for dirty logging, as KVM's
// update_accessed_dirty_bits marks the table gfn.
function pt_set_bits(gpa: u64, bits: u64, is64: bool): void {
  const h = gpa_to_host(gpa);
  if (h < 0) return;
  let old: u64;
  if (is64) old = atomic.or<u64>(<usize>h, bits);
  else old = <u64>atomic.or<u32>(<usize>h, <u32>bits);
  if ((old & bits) != bits) mark_page_dirty_gpa(gpa);
}

// Walk the guest tables for `lin`; returns the gpa, or -1 after raising #PF.
export function walk_addr(lin: u64, access: u32): i64 {
  const cr0 = vcpu_load64(VCPU_CR0);
  const cr4 = vcpu_load64(VCPU_CR4);
  const efer = vcpu_load64(VCPU_EFER);
  const nxe = (efer & EFER_NXE) != 0;
  const is_write = (access & ACC_WRITE) != 0;
  const is_user = (access & ACC_USER) != 0 && (access & ACC_IMPLICIT) == 0;
  const is_fetch = (access & ACC_FETCH) != 0;
  let errcode: u32 = (is_write ? PFERR_WRITE : 0) | ((access & ACC_USER) != 0 ? PFERR_USER : 0);
  if (is_fetch && (nxe || (cr4 & CR4_SMEP) != 0)) errcode |= PFERR_FETCH;

  let is64 = true;
  let level: i32;
  let table: u64;
  const nx_rsvd: u64 = nxe ? 0 : PT64_NX;
  if ((efer & EFER_LMA) != 0) {
    level = 4;
    table = vcpu_load64(VCPU_CR3) & PT64_ADDR_MASK;
  } else if ((cr4 & CR4_PAE) != 0) {
    // PAE: the PDPTE was loaded at MOV CR3; its reserved bits were checked then.
    const pdpte = vcpu_load64(VCPU_PDPTR + <i32>((lin >> 30) & 3) * 8);
    if ((pdpte & PT_PRESENT) == 0) { walk_fault(lin, errcode); return -1; }
    level = 2;
    table = pdpte & PT64_ADDR_MASK;
  } else {
    is64 = false;
    level = 2;
    table = vcpu_load64(VCPU_CR3) & 0xfffff000;
  }

  store<u32>(VCPU + WALK_MAX_LEVEL, <u32>level);
  let user = true, writable = true, nx = false;
  let pte: u64 = 0;
  let pte_gpa: u64 = 0;
  // gpas of the entries used, to set their A bits after the checks pass
  let gpa4: u64 = 0, gpa3: u64 = 0, gpa2: u64 = 0;
  let gpa4_used = false, gpa3_used = false, gpa2_used = false;
  let leaf_gpa: u64 = 0;
  let page_mask: u64 = 0xfff;
  while (true) {
    let idx: u64;
    if (is64) idx = (lin >> (12 + 9 * <u64>(level - 1))) & 511;
    else idx = (lin >> (12 + 10 * <u64>(level - 1))) & 1023;
    pte_gpa = table + (idx << (is64 ? 3 : 2));
    pte = pt_read(pte_gpa, is64);
    if ((pte & PT_PRESENT) == 0) { walk_fault(lin, errcode); return -1; }
    // reserved bits
    let rsvd = false;
    if (is64) {
      if ((pte & (PT64_RSVD_HIGH | nx_rsvd)) != 0) rsvd = true;
      if (level == 4 && (pte & PT_PAGE_SIZE) != 0) rsvd = true;
      // PS in a PDPTE is reserved unless the CPU model has 1 GiB pages
      if (level == 3 && (pte & PT_PAGE_SIZE) != 0 && !has_feature(FEAT_PDPE1GB)) rsvd = true;
      if ((pte & PT_PAGE_SIZE) != 0 && (level == 2 || level == 3)) {
        // large page: address bits below the page size (except PAT bit 12) must be 0
        const low: u64 = level == 2 ? 0x1fe000 : 0x3fffe000;
        if ((pte & low) != 0) rsvd = true;
      }
    } else if (level == 2 && (pte & PT_PAGE_SIZE) != 0 && (cr4 & CR4_PSE) != 0) {
      if ((pte & (1 << 21)) != 0) rsvd = true; // PSE-36: bit 21 reserved
    }
    if (rsvd) { walk_fault(lin, errcode | PFERR_PRESENT | PFERR_RSVD); return -1; }
    walker_set(level, table >> 12, pte, pte_gpa, acc_of(user, writable, nx));
    user = user && (pte & PT_USER) != 0;
    writable = writable && (pte & PT_WRITABLE) != 0;
    if (is64 && (pte & PT64_NX) != 0) nx = true;
    if (level == 4) { gpa4 = pte_gpa; gpa4_used = true; }
    else if (level == 3) { gpa3 = pte_gpa; gpa3_used = true; }
    else if (level == 2) { gpa2 = pte_gpa; gpa2_used = true; }
    const large = (pte & PT_PAGE_SIZE) != 0 && level > 1 && (is64 || (cr4 & CR4_PSE) != 0);
    if (level == 1 || large) {
      leaf_gpa = pte_gpa;
      if (large) page_mask = is64 ? (level == 3 ? 0x3fffffff : 0x1fffff) : 0x3fffff;
      break;
    }
    table = is64 ? (pte & PT64_ADDR_MASK) : (pte & 0xfffff000);
    level--;
  }

  // permission checks (SDM 4.6)
  const smap = (cr4 & CR4_SMAP) != 0;
  let ok = true;
  if (is_user) {
    if (!user) ok = false;
    else if (is_write && !writable) ok = false;
  } else {
    if (is_write && !writable && (cr0 & CR0_WP) != 0) ok = false;
    if (user && is_fetch && (cr4 & CR4_SMEP) != 0) ok = false;
    // SMAP: supervisor data access to a user page (implicit accesses always, explicit unless EFLAGS.AC)
    if (user && !is_fetch && smap && ((access & ACC_IMPLICIT) != 0 || !smap_ac)) ok = false;
  }
  if (is_fetch && nx) ok = false;
  if (!ok) { walk_fault(lin, errcode | PFERR_PRESENT); return -1; }

  // accessed bits on every entry used, dirty on the leaf for a write
  if (level < 4 && gpa4_used) pt_set_bits(gpa4, PT_ACCESSED, is64);
  if (level < 3 && gpa3_used) pt_set_bits(gpa3, PT_ACCESSED, is64);
  if (level < 2 && gpa2_used) pt_set_bits(gpa2, PT_ACCESSED, is64);
  let dirty = (pte & PT_DIRTY) != 0;
  let leaf_bits: u64 = PT_ACCESSED;
  if (is_write) { leaf_bits |= PT_DIRTY; dirty = true; }
  if ((pte & leaf_bits) != leaf_bits) pt_set_bits(leaf_gpa, leaf_bits, is64);

  walk_user = user;
  walk_nx = nx;
  walk_dirty = dirty;
  walk_global = (pte & PT_GLOBAL) != 0 && (cr4 & CR4_PGE) != 0;
  walk_level = level;
  walk_writable = writable;
  let pa: u64;
  if (is64) pa = pte & PT64_ADDR_MASK;
  else {
    pa = pte & 0xfffff000;
    if (page_mask == 0x3fffff) pa = (pte & 0xffc00000) | (((pte >> 13) & 0xff) << 32); // PSE-36
  }
  const gpa = (pa & ~page_mask) | (lin & page_mask);
  // the walk's access for the shadow MMU: a clean leaf is mapped read-only
  // unless this is a write, so the first write comes back to set D
  let pte_access = acc_of(user, writable, nx);
  if (!dirty) pte_access &= ~2;
  store<u32>(VCPU + WALK_PTE_ACCESS, pte_access);
  store<u64>(VCPU + WALK_GFN, gpa >> 12);
  store<u32>(VCPU + WALK_LEVEL, <u32>level);
  return <i64>gpa;
}

// EFLAGS.AC for SMAP, kept current by the CPU (mode.ts).
export let smap_ac: bool = false;
export function walk_set_ac(ac: bool): void { smap_ac = ac; }
