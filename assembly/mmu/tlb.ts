// The per-vCPU software TLB: linear page -> host offset, direct mapped.
// Every guest load/store/fetch goes through it; a hit is a compare and a
// load, no call. An entry (16 bytes) is
//   u64 tag  = linear page address | permission bits (low 12 bits)
//   u32 host = offset of the page in linear memory
//   u32 gfn  = guest frame number (for dirty logging / write tracking)
// Permissions are stored per privilege class so CPL changes need no flush:
// the access checks `tag & tlb_need_*` against the bits for the current CPL.
// A flush clears only the entries filled since the last one (a log of up to
// TLB_LOG_MAX, else all of them): with 1024 entries a guest sweeping 512
// pages (pt-memset's checks) keeps its translations, while a CR3 switch
// after touching a few pages (cr3-switch, forkwait) still clears a few.
import { VCPU, VCPU_TLB, TLB_ENTRIES, VCPU_TLB_LOG_N, VCPU_TLB_LOG, TLB_LOG_MAX, stat_inc } from "../cpu/state";
import { STAT_TLB_FLUSH } from "../stats";
import { trace, TRACE_TLB_FLUSH } from "../trace";

export const TLB_R_SUP: u64 = 1 << 0;
export const TLB_W_SUP: u64 = 1 << 1;
export const TLB_X_SUP: u64 = 1 << 2;
export const TLB_R_USR: u64 = 1 << 3;
export const TLB_W_USR: u64 = 1 << 4;
export const TLB_X_USR: u64 = 1 << 5;
export const TLB_GLOBAL: u64 = 1 << 6; // CR4.PGE global page: survives CR3 writes
export const TLB_PERMS: u64 = 0x3f;
export const PAGE_HI: u64 = ~<u64>0xfff;

// What the current CPL needs (set by mode.ts on every CPL change).
export let tlb_need_r: u64 = TLB_R_SUP;
export let tlb_need_w: u64 = TLB_W_SUP;
export let tlb_need_x: u64 = TLB_X_SUP;
export function tlb_set_cpl(user: bool): void {
  tlb_need_r = user ? TLB_R_USR : TLB_R_SUP;
  tlb_need_w = user ? TLB_W_USR : TLB_W_SUP;
  tlb_need_x = user ? TLB_X_USR : TLB_X_SUP;
  fetch_invalidate(); // re-check execute permission on the next fetch
}

// The page the decoder is fetching from (1 = none: never page aligned).
export let fetch_page: u64 = 1;
export let fetch_host: usize = 0;
// The block cache's links between blocks (cpu/block.ts) are taken at full
// speed within one fetch generation, which a new run() (the host, another
// vCPU or a migration may have written memory behind the code map's back), a
// change of code size or mode, and a store to a page holding cached code end;
// an older link is taken once its block's bytes compare equal again. TLB
// flushes and CPL changes need not end it: they drop fetch_page, and a link
// is taken only to a block whose bytes the current fetch translation maps.
export let fetch_gen: u32 = 1;
@inline export function fetch_invalidate(): void { fetch_page = 1; }
@inline export function links_invalidate(): void { fetch_gen++; }
@inline export function fetch_set(page: u64, host: usize): void { fetch_page = page; fetch_host = host; }

@inline export function tlb_entry(lin: u64): usize {
  return VCPU + VCPU_TLB + ((<usize>(lin >> 12) & <usize>(TLB_ENTRIES - 1)) << 4);
}

export function tlb_fill(lin: u64, perms: u64, host: usize, gfn: u64): void {
  const e = tlb_entry(lin);
  store<u64>(e, (lin & PAGE_HI) | perms);
  store<u32>(e + 8, <u32>host);
  store<u32>(e + 12, <u32>gfn);
  tlb_log(<u32>(lin >> 12) & <u32>(TLB_ENTRIES - 1));
}
// Note entry `i` as filled; past TLB_LOG_MAX the count alone grows (flush all).
@inline function tlb_log(i: u32): void {
  const n = load<u32>(VCPU + VCPU_TLB_LOG_N);
  if (n < <u32>TLB_LOG_MAX) store<u16>(VCPU + VCPU_TLB_LOG + (<usize>n << 1), <u16>i);
  if (n <= <u32>TLB_LOG_MAX) store<u32>(VCPU + VCPU_TLB_LOG_N, n + 1);
}

// Shadow MMU: the last write that had to be emulated because its page is a
// write-tracked page table (one entry, valid for the instruction that made
// it, icount == emul_icount): a rep-string bulk probe followed by the write
// itself then costs one shadow fault, not two. Every flush forgets it.
export let emul_page: u64 = 1; // linear page (1 = none)
export let emul_host: usize = 0; // host offset of the page
export let emul_gpa: u64 = 0; // guest-physical page
export let emul_icount: u64 = 0;
export let emul_access: u32 = 0; // the access kind (and CPL 3 bit) the guest walk allowed
export function emul_set(page: u64, host: usize, gpa: u64, ic: u64, access: u32): void {
  emul_page = page; emul_host = host; emul_gpa = gpa; emul_icount = ic; emul_access = access;
}
@inline export function emul_forget(): void { emul_page = 1; }

// Clear entry `i`, unless it is global and global pages stay (then it is
// logged again, for a later full flush).
@inline function tlb_drop(base: usize, i: u32, keep_global: bool): void {
  const e = base + (<usize>i << 4);
  if (!keep_global || (load<u64>(e) & TLB_GLOBAL) == 0) store<u64>(e, 0);
  else tlb_log(i);
}

// Flush everything (CR4 paging bit changes, mode switches) or everything but
// global pages (MOV CR3 with CR4.PGE).
export function tlb_flush(keep_global: bool): void {
  stat_inc(STAT_TLB_FLUSH);
  emul_page = 1;
  trace(TRACE_TLB_FLUSH, keep_global ? 1 : 0, 0, 0);
  const base = VCPU + VCPU_TLB;
  const n = load<u32>(VCPU + VCPU_TLB_LOG_N);
  store<u32>(VCPU + VCPU_TLB_LOG_N, 0);
  if (n > <u32>TLB_LOG_MAX) for (let i: u32 = 0; i < <u32>TLB_ENTRIES; i++) tlb_drop(base, i, keep_global);
  else for (let k: u32 = 0; k < n; k++) tlb_drop(base, <u32>load<u16>(VCPU + VCPU_TLB_LOG + (<usize>k << 1)), keep_global);
  fetch_invalidate();
}

// INVLPG: drop the entry for one linear page (global or not).
export function tlb_flush_page(lin: u64): void {
  emul_page = 1;
  const e = tlb_entry(lin);
  if (((load<u64>(e) ^ lin) & PAGE_HI) == 0) store<u64>(e, 0);
  fetch_invalidate();
}
