// Shadow-mode translation: what the hardware does on a TLB miss when KVM runs
// a guest on shadow page tables. Walk the sptes from the current root; if the
// leaf allows the access, fill the software TLB from it (and set its
// accessed bit, as the hardware would); otherwise take a shadow page fault
// (fault.ts) and look again. Writes to write-tracked page tables come back
// as "emulate": the core performs the write and logs it for the PT_WRITE exit.
import {
  VCPU, VCPU_CR0, VCPU_CR4, CR0_PG, CR4_SMEP, CR4_SMAP, vcpu_load64, icount, stat_inc, reg_read,
  EXIT_PT_WRITE_GPA, EXIT_PT_WRITE_VALUE, EXIT_PT_WRITE_OLD, EXIT_PT_WRITE_SIZE, EXIT_PT_WRITE_FLAGS,
  EXIT_PT_WRITE_REP_COUNT, EXIT_PT_WRITE_RIP, EXIT_PT_WRITE_NR, EXIT_PT_WRITE_LOG, PT_WRITE_LOG_MAX,
  PT_WRITE_F_STRING, PT_WRITE_F_REP, PT_WRITE_F_OVERFLOW, EXIT_PT_WRITE,
} from "../cpu/state";
import { STAT_PT_WRITE_EXITS } from "../stats";
import {
  tlb_fill, PAGE_HI, emul_page, emul_host, emul_gpa, emul_icount, emul_access, emul_set,
  TLB_R_SUP, TLB_W_SUP, TLB_X_SUP, TLB_R_USR, TLB_W_USR, TLB_X_USR, TLB_GLOBAL,
} from "./tlb";
import { ACC_WRITE, ACC_FETCH, ACC_IMPLICIT, smap_ac } from "./walk";
import {
  is_shadow_present_pte, is_last_spte, spte_addr, sptep_to_sp, spte_index, PT_WRITABLE_MASK, PT_USER_MASK,
  PT64_NX_MASK, PT_ACCESSED_MASK, SPTE_GUEST_GLOBAL,
} from "./spte";
import { kvm_mmu_page_get_gfn } from "./mmu_page";
import { MMU_REQUESTS, KVM_REQ_MMU_RELOAD } from "./layout";
import { kvm_mmu_page_fault, shadow_walk_init, it_level, it_sptep, shadow_walk_next, fault_gpa, fault_host,
  RET_PF_INJECTED, RET_PF_MMIO, RET_PF_EMULATE } from "./fault";
import { kvm_mmu_load, root_level, root_is_valid, kvm_mmu_free_roots } from "./roots";
import { kvm_check_tlb_and_reload_requests } from "./tlbflush";
import { exit_pending, set_exit_pending } from "../cpu/mem";
import { opcode, rep, addrsize, ip_start } from "../cpu/decode";
import { trace, TRACE_PT_WRITE } from "../trace";
import { clear_sp_write_flooding_count } from "./pte_write";
import { wp_all_load_roots } from "./wp_all";

// Set by shadow_translate when the access is a write the core must perform
// on a write-tracked page-table gfn and then log (mem.ts write_slow).
export let pt_write_hit: bool = false;
export let shadow_xlat_gpa: u64 = 0;

// The spte walk: the leaf spte for `lin` (0 if a level is missing);
// leaf_sptep is left at its address.
export let leaf_sptep: usize = 0;
// Rights are ANDed down the levels, as the hardware does: an upper spte left
// read-only by write-protect-all (seed 000, wp_all.ts) takes the write
// right away from the leaf's value returned here (the leaf itself keeps it).
export function spte_walk(lin: u64): u64 {
  if (!shadow_walk_init(lin)) return 0;
  let upper_ro = false;
  while (true) {
    const spte = load<u64>(it_sptep);
    if (!is_shadow_present_pte(spte)) return 0;
    clear_sp_write_flooding_count(it_sptep); // seed 003: the page is in use (pte_write.ts)
    if (is_last_spte(spte, it_level)) { leaf_sptep = it_sptep; return upper_ro ? spte & ~PT_WRITABLE_MASK : spte; }
    if ((spte & PT_WRITABLE_MASK) == 0) upper_ro = true;
    shadow_walk_next(lin);
  }
  return 0;
}

// CR4.SMEP/SMAP as the hardware applies them: only while the guest pages
// (KVM clears them from the hardware CR4 when guest CR0.PG = 0). Without
// this, a guest that set SMEP with paging off trapped the core: the direct
// map's user sptes never permitted a supervisor fetch (guest fuzzer seed 147).
@inline function guest_smep_smap(): u64 {
  return (vcpu_load64(VCPU_CR0) & CR0_PG) != 0 ? vcpu_load64(VCPU_CR4) & (CR4_SMEP | CR4_SMAP) : 0;
}

// Would the hardware allow this access through `spte`? (host CR0.WP = 1;
// SMEP/SMAP as the guest set them, since shadow paging runs with the guest's)
export function spte_permits(spte: u64, access: u32, user: bool): bool {
  if (!is_shadow_present_pte(spte)) return false;
  const u = (spte & PT_USER_MASK) != 0;
  if (user && !u) return false;
  if ((access & ACC_FETCH) != 0) {
    if ((spte & PT64_NX_MASK) != 0) return false;
    if (!user && u && (guest_smep_smap() & CR4_SMEP) != 0) return false;
    return true;
  }
  if ((access & ACC_WRITE) != 0 && (spte & PT_WRITABLE_MASK) == 0) return false;
  if (!user && u && (guest_smep_smap() & CR4_SMAP) != 0 && ((access & ACC_IMPLICIT) != 0 || !smap_ac)) return false;
  return true;
}

// TLB rights from a leaf spte, for both privilege classes.
function spte_tlb_perms(spte: u64): u64 {
  const w = (spte & PT_WRITABLE_MASK) != 0;
  const x = (spte & PT64_NX_MASK) == 0;
  let perms: u64 = TLB_R_SUP | (w ? TLB_W_SUP : 0) | (x ? TLB_X_SUP : 0);
  if ((spte & PT_USER_MASK) != 0) {
    perms |= TLB_R_USR | (w ? TLB_W_USR : 0) | (x ? TLB_X_USR : 0);
    // supervisor access to a user page depends on SMEP/SMAP and EFLAGS.AC: check it every time
    if (guest_smep_smap() != 0) perms &= ~(TLB_R_SUP | TLB_W_SUP | TLB_X_SUP);
  }
  if ((spte & SPTE_GUEST_GLOBAL) != 0) perms |= TLB_GLOBAL;
  return perms;
}

// Requests left by zaps (root invalid) or other vCPUs; (re)build roots.
function mmu_reload_if_needed(): void {
  const reload = kvm_check_tlb_and_reload_requests();
  if (root_level() != 0 && !reload) return;
  if (reload) {
    store<u32>(VCPU + MMU_REQUESTS, load<u32>(VCPU + MMU_REQUESTS) & ~KVM_REQ_MMU_RELOAD);
    if (root_level() != 0 && root_is_valid()) return;
    kvm_mmu_free_roots(true, false);
  }
  if (!kvm_mmu_load()) unreachable(); // no memory even after zapping everything
}

// Translate `lin` in shadow mode. Returns the host offset, -1 after a fault
// was raised, -2 for MMIO (shadow_xlat_gpa holds the gpa).
export function shadow_translate(lin: u64, access: u32, cpl3: bool): i64 {
  pt_write_hit = false;
  const off = lin & 0xfff;
  const key = access | (cpl3 ? 0x80000000 : 0);
  if ((access & ACC_WRITE) != 0 && (lin & PAGE_HI) == emul_page && icount == emul_icount && key == emul_access) {
    pt_write_hit = true;
    shadow_xlat_gpa = emul_gpa | off;
    return <i64>(emul_host + <usize>off);
  }
  const user = cpl3 && (access & ACC_IMPLICIT) == 0;
  let spte: u64 = 0;
  let tries = 0;
  while (true) {
    mmu_reload_if_needed();
    wp_all_load_roots(); // seed 000: bring the root(s) up to the write-protect-all generation
    spte = spte_walk(lin);
    if (spte_permits(spte, access, user)) break;
    const r = kvm_mmu_page_fault(lin, access, cpl3);
    if (r == RET_PF_INJECTED) return -1;
    if (r == RET_PF_MMIO) { shadow_xlat_gpa = fault_gpa; return -2; }
    if (r == RET_PF_EMULATE) {
      // the leaf is installed read-only: cache it for reads, perform the write once
      spte = load<u64>(it_sptep); // fetch left the iterator at the leaf
      if (is_shadow_present_pte(spte)) tlb_fill(lin, spte_tlb_perms(spte), fault_host, fault_gpa >> 12);
      emul_set(lin & PAGE_HI, fault_host, fault_gpa & PAGE_HI, icount, key);
      pt_write_hit = true;
      shadow_xlat_gpa = fault_gpa;
      return <i64>(fault_host + <usize>off);
    }
    if (++tries > 8) unreachable(); // the fault did not fix the spte: an MMU bug
  }
  // atomic: the lockless fast path (fast_pf.ts) may be setting W; `spte` may lack W (upper_ro)
  if ((spte & PT_ACCESSED_MASK) == 0) atomic.or<u64>(leaf_sptep, PT_ACCESSED_MASK);
  let host = spte_addr(spte);
  let gfn = kvm_mmu_page_get_gfn(sptep_to_sp(leaf_sptep), spte_index(leaf_sptep));
  if (it_level > 1) {
    // a large spte: the 4 KiB page within it
    const sub = (lin >> 12) & ((<u64>1 << <u64>(9 * (it_level - 1))) - 1);
    host += <usize>(sub << 12);
    gfn += sub;
  }
  tlb_fill(lin, spte_tlb_perms(spte), host, gfn);
  shadow_xlat_gpa = (gfn << 12) | off;
  return <i64>(host + <usize>off);
}

// ---- the PT_WRITE exit: the write was performed; log it for the host policy
function is_string_write(): bool {
  const op = opcode;
  return op == 0xa4 || op == 0xa5 || op == 0xaa || op == 0xab || op == 0x6c || op == 0x6d;
}

export function kvm_pt_write_log(gpa: u64, size: i32, value: u64, old: u64): void {
  const n = load<u32>(VCPU + EXIT_PT_WRITE_NR);
  if (n == 0) {
    stat_inc(STAT_PT_WRITE_EXITS);
    store<u64>(VCPU + EXIT_PT_WRITE_GPA, gpa);
    store<u64>(VCPU + EXIT_PT_WRITE_VALUE, value);
    store<u64>(VCPU + EXIT_PT_WRITE_OLD, old);
    store<u32>(VCPU + EXIT_PT_WRITE_SIZE, <u32>size);
    store<u64>(VCPU + EXIT_PT_WRITE_RIP, ip_start);
    let flags: u32 = 0;
    let left: u64 = 0;
    if (is_string_write()) {
      flags |= PT_WRITE_F_STRING;
      if (rep != 0) {
        flags |= PT_WRITE_F_REP;
        const mask: u64 = addrsize == 8 ? <u64>-1 : addrsize == 4 ? 0xffffffff : 0xffff;
        left = (reg_read(1, addrsize, false) - 1) & mask; // this iteration has not counted itself yet
      }
    }
    store<u32>(VCPU + EXIT_PT_WRITE_FLAGS, flags);
    store<u64>(VCPU + EXIT_PT_WRITE_REP_COUNT, left);
  }
  if (<i32>n < PT_WRITE_LOG_MAX) {
    const e = VCPU + EXIT_PT_WRITE_LOG + (<usize>n << 4);
    store<u64>(e, gpa);
    store<u32>(e + 8, <u32>size);
  } else {
    store<u32>(VCPU + EXIT_PT_WRITE_FLAGS, load<u32>(VCPU + EXIT_PT_WRITE_FLAGS) | PT_WRITE_F_OVERFLOW);
  }
  store<u32>(VCPU + EXIT_PT_WRITE_NR, n + 1);
  trace(TRACE_PT_WRITE, <u32>size, gpa, value);
  if (exit_pending == 0) set_exit_pending(EXIT_PT_WRITE);
}
