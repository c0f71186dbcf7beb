// Guest linear-memory access: software TLB hit inline, everything else in
// the slow path (walk, page-crossing accesses, MMIO). Values are returned
// zero-extended; after a fault the return value is 0 and faulted() is true.
import {
  tlb_entry, tlb_fill, tlb_need_r, tlb_need_w, PAGE_HI,
  TLB_R_SUP, TLB_W_SUP, TLB_X_SUP, TLB_R_USR, TLB_W_USR, TLB_X_USR, TLB_GLOBAL,
} from "../mmu/tlb";
import { walk_addr, walk_user, walk_writable, walk_nx, walk_dirty, walk_global, ACC_WRITE, ACC_USER, ACC_FETCH, ACC_IMPLICIT } from "../mmu/walk";
import { gpa_to_host, gpa_slot_flags, MEM_READONLY, VMB } from "../vm";
import { VM_MMU_MODE, MMU_MODE_TDP } from "../mmu/layout";
import { shadow_translate, shadow_xlat_gpa, pt_write_hit, kvm_pt_write_log } from "../mmu/shadow";
import { VCPU_CODE_MAP } from "./state";
import { VCPU, VCPU_CR0, VCPU_PENDING_IO, EXIT_MMIO_GPA, EXIT_MMIO_DATA, EXIT_MMIO_LEN, EXIT_MMIO_IS_WRITE, EXIT_MMIO, CR0_PG, CR0_WP, stat_inc, vcpu_load64 } from "./state";
import { raise_abort, raise_gp, raise_ss, faulted } from "./fault";
import { STAT_TLB_MISS, STAT_MMIO_EXITS } from "../stats";
import { mark_page_dirty_gpa, dirty_log_tdp_perms } from "../mmu/dirty";
import { MEM_LOG_DIRTY_PAGES } from "../vm";

// CPL == 3 (kept by mode.ts); selects user-mode permission checks.
export let cpl_user: bool = false;
// Linear addresses wrap at 4 GiB outside 64-bit mode.
export let lin_mask: u64 = 0xffffffff;
export function mem_set_mode(user: bool, mask: u64): void { cpl_user = user; lin_mask = mask; }
// Set around implicit stack accesses (push/pop/...): selects #SS over #GP
// for a non-canonical address.
export let stack_ref: bool = false;
export function set_stack_ref(v: bool): void { stack_ref = v; }

// An exit the instruction raised that run() must return after it retires
// (OUT, MMIO write). 0 = none.
export let exit_pending: i32 = 0;
export function set_exit_pending(reason: i32): void { exit_pending = reason; }

// ---- translation

// Translate `lin` for `access`; returns the host offset, -1 after a fault
// was raised, or -2 for MMIO (xlat_gpa holds the gpa). Fills the TLB.
export let xlat_gpa: u64 = 0;
export function translate(lin: u64, access: u32): i64 {
  // 64-bit mode: a non-canonical address faults before paging (SDM vol. 1,
  // 3.3.7.1): #SS(0) for a stack reference, #GP(0) otherwise. The TLB only
  // holds canonical pages, so the inline fast paths never see one.
  if (lin_mask == <u64>-1 && <u64>(<i64>(lin << 16) >> 16) != lin) {
    if (stack_ref) raise_ss(0); else raise_gp(0);
    return -1;
  }
  stat_inc(STAT_TLB_MISS);
  if (load<u32>(VMB + VM_MMU_MODE) != MMU_MODE_TDP) {
    const sh = shadow_translate(lin, access, cpl_user);
    xlat_gpa = shadow_xlat_gpa;
    return sh;
  }
  const cr0 = vcpu_load64(VCPU_CR0);
  let gpa: u64;
  let perms: u64;
  const is_write = (access & ACC_WRITE) != 0;
  if ((cr0 & CR0_PG) == 0) {
    gpa = lin & 0xffffffff;
    perms = TLB_R_SUP | TLB_W_SUP | TLB_X_SUP | TLB_R_USR | TLB_W_USR | TLB_X_USR;
  } else {
    const g = walk_addr(lin, access | (cpl_user ? ACC_USER : 0));
    if (g < 0) return -1;
    gpa = <u64>g;
    perms = TLB_R_SUP | (walk_nx ? 0 : TLB_X_SUP);
    // Writes are cached only once D is set, so the first write re-walks and sets it.
    if (walk_dirty && (walk_writable || (cr0 & CR0_WP) == 0)) perms |= TLB_W_SUP;
    if (walk_user) {
      perms |= TLB_R_USR | (walk_nx ? 0 : TLB_X_USR);
      if (walk_dirty && walk_writable) perms |= TLB_W_USR;
      // SMEP/SMAP make supervisor access to user pages depend on more than the
      // entry; keep such pages out of the supervisor side of the TLB.
      perms &= ~(TLB_R_SUP | TLB_W_SUP | TLB_X_SUP);
      perms |= supervisor_user_perms();
    }
    if (walk_global) perms |= TLB_GLOBAL;
  }
  xlat_gpa = gpa;
  const h = gpa_to_host(gpa);
  if (h < 0) return -2;
  if ((gpa_slot_flags & MEM_READONLY) != 0) {
    perms &= ~(TLB_W_SUP | TLB_W_USR);
    if (is_write) return -2;
  }
  // dirty logging: write permission is cached for a logged page only by a write, which marks it
  if ((gpa_slot_flags & MEM_LOG_DIRTY_PAGES) != 0) perms = dirty_log_tdp_perms(gpa >> 12, perms, TLB_W_SUP | TLB_W_USR, is_write);
  const page_host = <usize>(h & ~0xfff);
  tlb_fill(lin, perms, page_host, gpa >> 12);
  return h;
}

// Supervisor rights on a user page, without SMEP/SMAP these are the entry's.
import { VCPU_CR4, CR4_SMEP, CR4_SMAP } from "./state";
function supervisor_user_perms(): u64 {
  const cr4 = vcpu_load64(VCPU_CR4);
  if ((cr4 & (CR4_SMEP | CR4_SMAP)) != 0) return 0; // always walk: rare in practice
  const cr0 = vcpu_load64(VCPU_CR0);
  let p: u64 = TLB_R_SUP | (walk_nx ? 0 : TLB_X_SUP);
  if (walk_dirty && (walk_writable || (cr0 & CR0_WP) == 0)) p |= TLB_W_SUP;
  return p;
}

// ---- MMIO

function mmio_read(gpa: u64, size: i32): u64 {
  // The host answers an MMIO read by restarting the instruction with the
  // data latched (VCPU_PENDING_IO == 2 for this gpa).
  if (load<u32>(VCPU + VCPU_PENDING_IO) == 2 && load<u64>(VCPU + EXIT_MMIO_GPA) == gpa) {
    store<u32>(VCPU + VCPU_PENDING_IO, 0);
    return load<u64>(VCPU + EXIT_MMIO_DATA);
  }
  store<u64>(VCPU + EXIT_MMIO_GPA, gpa);
  store<u32>(VCPU + EXIT_MMIO_LEN, size);
  store<u32>(VCPU + EXIT_MMIO_IS_WRITE, 0);
  store<u64>(VCPU + EXIT_MMIO_DATA, 0);
  exit_pending = EXIT_MMIO;
  stat_inc(STAT_MMIO_EXITS);
  raise_abort();
  return 0;
}

function mmio_write(gpa: u64, size: i32, v: u64): void {
  store<u64>(VCPU + EXIT_MMIO_GPA, gpa);
  store<u32>(VCPU + EXIT_MMIO_LEN, size);
  store<u32>(VCPU + EXIT_MMIO_IS_WRITE, 1);
  store<u64>(VCPU + EXIT_MMIO_DATA, v);
  exit_pending = EXIT_MMIO;
  stat_inc(STAT_MMIO_EXITS);
}

// ---- slow paths

function read_slow(lin: u64, size: i32, access: u32): u64 {
  lin &= lin_mask;
  const off = <i32>(lin & 0xfff);
  if (off + size > 4096) {
    // page-crossing: translate both pages before touching either
    const lin2 = (lin + <u64>size - 1) & lin_mask;
    const h1 = translate(lin, access);
    if (h1 == -1) return 0;
    const h2 = translate(lin2 & PAGE_HI, access);
    if (h2 == -1) return 0;
    let v: u64 = 0;
    for (let i = 0; i < size; i++) {
      v |= read_slow((lin + <u64>i) & lin_mask, 1, access) << (<u64>i << 3);
      if (faulted()) return 0;
    }
    return v;
  }
  const h = translate(lin, access);
  if (h == -1) return 0;
  if (h == -2) return mmio_read(xlat_gpa, size);
  const a = <usize>h;
  if (size == 1) return <u64>load<u8>(a);
  if (size == 2) return <u64>load<u16>(a);
  if (size == 4) return <u64>load<u32>(a);
  return load<u64>(a);
}

function write_slow(lin: u64, size: i32, v: u64, access: u32): void {
  lin &= lin_mask;
  const off = <i32>(lin & 0xfff);
  if (off + size > 4096) {
    const lin2 = (lin + <u64>size - 1) & lin_mask;
    const h1 = translate(lin, access);
    if (h1 == -1) return;
    const h2 = translate(lin2 & PAGE_HI, access);
    if (h2 == -1) return;
    for (let i = 0; i < size; i++) write_slow((lin + <u64>i) & lin_mask, 1, v >> (<u64>i << 3), access);
    return;
  }
  const h = translate(lin, access | ACC_WRITE);
  if (h == -1) return;
  if (h == -2) { mmio_write(xlat_gpa, size, v); return; }
  const a = <usize>h;
  smc_check(a);
  if (pt_write_hit) { pt_write(a, size, v); return; }
  if (size == 1) store<u8>(a, <u8>v);
  else if (size == 2) store<u16>(a, <u16>v);
  else if (size == 4) store<u32>(a, <u32>v);
  else store<u64>(a, v);
}

// Shadow MMU: a write to a write-tracked guest page table. The core performs
// it (the instruction completes here, as KVM's emulator would) and logs it
// for the PT_WRITE exit, where the host's pte-write policy runs.
function pt_write(a: usize, size: i32, v: u64): void {
  const gpa = xlat_gpa;
  let old: u64;
  if (size == 1) { old = <u64>load<u8>(a); store<u8>(a, <u8>v); }
  else if (size == 2) { old = <u64>load<u16>(a); store<u16>(a, <u16>v); }
  else if (size == 4) { old = <u64>load<u32>(a); store<u32>(a, <u32>v); }
  else { old = load<u64>(a); store<u64>(a, v); }
  mark_page_dirty_gpa(gpa); // dirty logging: the host-emulated write dirties the page too
  kvm_pt_write_log(gpa, size, v, old);
}

// ---- writes to code (block.ts)
//
// Every page that holds a cached block has its bit in the vCPU's code map;
// a write to such a page (whoever's code it is) sets code_written: a running
// block ends after the instruction, links between blocks are dropped, and
// the next lookup compares the bytes again. A load, a shift and a test on
// every store.
export let code_written: bool = false;
export function code_written_clear(): void { code_written = false; }
@inline export function code_map_byte(a: usize): usize { return VCPU + VCPU_CODE_MAP + (a >> 15); }
@inline export function smc_check(a: usize): void {
  if ((<u32>load<u8>(code_map_byte(a)) & (1 << (<u32>(a >> 12) & 7))) != 0) code_written = true;
}
// The same for `n` bytes at `a` (n <= 4096: bulk string stores within a page).
export function smc_check_range(a: usize, n: usize): void { smc_check(a); smc_check(a + n - 1); }

// ---- the fast paths (inlined into every handler)

@inline export function tlb_hit(lin: u64, need: u64, size: i32): usize {
  const e = tlb_entry(lin);
  const tag = load<u64>(e);
  if (((tag ^ lin) & PAGE_HI) == 0 && (tag & need) != 0 && <i32>(lin & 0xfff) <= 4096 - size) {
    return <usize>load<u32>(e + 8) + <usize>(lin & 0xfff);
  }
  return 0;
}

export function read8(lin: u64): u32 {
  const a = tlb_hit(lin, tlb_need_r, 1);
  if (a != 0) return <u32>load<u8>(a);
  return <u32>read_slow(lin, 1, 0);
}
export function read16(lin: u64): u32 {
  const a = tlb_hit(lin, tlb_need_r, 2);
  if (a != 0) return <u32>load<u16>(a);
  return <u32>read_slow(lin, 2, 0);
}
export function read32(lin: u64): u32 {
  const a = tlb_hit(lin, tlb_need_r, 4);
  if (a != 0) return load<u32>(a);
  return <u32>read_slow(lin, 4, 0);
}
export function read64(lin: u64): u64 {
  const a = tlb_hit(lin, tlb_need_r, 8);
  if (a != 0) return load<u64>(a);
  return read_slow(lin, 8, 0);
}
export function write8(lin: u64, v: u32): void {
  const a = tlb_hit(lin, tlb_need_w, 1);
  if (a != 0) { store<u8>(a, <u8>v); smc_check(a); return; }
  write_slow(lin, 1, <u64>v, ACC_WRITE);
}
export function write16(lin: u64, v: u32): void {
  const a = tlb_hit(lin, tlb_need_w, 2);
  if (a != 0) { store<u16>(a, <u16>v); smc_check(a); return; }
  write_slow(lin, 2, <u64>v, ACC_WRITE);
}
export function write32(lin: u64, v: u32): void {
  const a = tlb_hit(lin, tlb_need_w, 4);
  if (a != 0) { store<u32>(a, v); smc_check(a); return; }
  write_slow(lin, 4, <u64>v, ACC_WRITE);
}
export function write64(lin: u64, v: u64): void {
  const a = tlb_hit(lin, tlb_need_w, 8);
  if (a != 0) { store<u64>(a, v); smc_check(a); return; }
  write_slow(lin, 8, v, ACC_WRITE);
}

// Sized access (size 1, 2, 4, 8).
export function read_sz(lin: u64, size: i32): u64 {
  if (size == 4) return <u64>read32(lin);
  if (size == 8) return read64(lin);
  if (size == 1) return <u64>read8(lin);
  return <u64>read16(lin);
}
export function write_sz(lin: u64, size: i32, v: u64): void {
  if (size == 4) write32(lin, <u32>v);
  else if (size == 8) write64(lin, v);
  else if (size == 1) write8(lin, <u32>v);
  else write16(lin, <u32>v);
}

// Check that `size` bytes at `lin` are writable (faulting if not) without
// writing: lets read-modify-write instructions fault before they commit.
export function probe_write(lin: u64, size: i32): void {
  if (tlb_hit(lin, tlb_need_w, size) != 0) return;
  lin &= lin_mask;
  const h = translate(lin, ACC_WRITE);
  if (h == -1) return;
  const off = <i32>(lin & 0xfff);
  if (off + size > 4096) translate(((lin + <u64>size - 1) & lin_mask) & PAGE_HI, ACC_WRITE);
}

// Implicit supervisor accesses (GDT/IDT/TSS reads during a CPL 3 event).
// They use 64-bit linear addresses whenever long mode is active, also from
// compatibility mode (GDTR/IDTR/TR bases are 64-bit there): sys_mask.
let sys_mask: u64 = 0xffffffff;
export function mem_set_sys_mask(m: u64): void { sys_mask = m; }
let sys_saved_user: bool = false;
let sys_saved_mask: u64 = 0;
@inline function sys_begin(): void { sys_saved_user = cpl_user; sys_saved_mask = lin_mask; cpl_user = false; lin_mask = sys_mask; }
@inline function sys_end(): void { cpl_user = sys_saved_user; lin_mask = sys_saved_mask; }
// A TLB hit with the supervisor right is enough for them: the TLB keeps the
// supervisor side of a user page empty while SMEP/SMAP are on (tlb.ts), so a
// hit is never an access SMAP forbids. Every exception delivery and iret
// reads the IDT and the GDT: they no longer take a TLB miss each time.
function read_sys(lin: u64, size: i32): u64 {
  const a = tlb_hit(lin & sys_mask, TLB_R_SUP, size);
  if (a != 0) return size == 8 ? load<u64>(a) : size == 4 ? <u64>load<u32>(a) : <u64>load<u16>(a);
  sys_begin();
  const v = read_slow(lin, size, ACC_IMPLICIT);
  sys_end();
  return v;
}
export function read_sys64(lin: u64): u64 { return read_sys(lin, 8); }
export function read_sys32(lin: u64): u32 { return <u32>read_sys(lin, 4); }
export function read_sys16(lin: u64): u32 { return <u32>read_sys(lin, 2); }
export function write_sys32(lin: u64, v: u32): void {
  const a = tlb_hit(lin & sys_mask, TLB_W_SUP, 4);
  if (a != 0) { store<u32>(a, v); smc_check(a); return; }
  sys_begin();
  write_slow(lin, 4, <u64>v, ACC_WRITE | ACC_IMPLICIT);
  sys_end();
}

// Instruction fetch: translate for execute.
export function fetch_translate(lin: u64): i64 {
  const h = fetch_tlb_hit(lin);
  if (h != 0) return <i64>h;
  return translate(lin & lin_mask, ACC_FETCH);
}
// The host address of `lin` for an instruction fetch when the TLB holds it, else 0.
@inline export function fetch_tlb_hit(lin: u64): usize { return tlb_hit(lin, fetch_need(), 1); }
@inline function fetch_need(): u64 { return cpl_user ? TLB_X_USR : TLB_X_SUP; }

// Host address of guest RAM at `lin` for a bulk access (rep string fast
// paths), or 0 when the page is not plain RAM (MMIO) or a fault was raised.
export function host_ptr(lin: u64, write: bool): usize {
  lin &= lin_mask;
  const a = tlb_hit(lin, write ? tlb_need_w : tlb_need_r, 1);
  if (a != 0) return a;
  const h = translate(lin, write ? ACC_WRITE : 0);
  if (h < 0) return 0;
  if (write && pt_write_hit) return 0; // a page table: each write is logged (write_slow)
  return <usize>h;
}
