// String instructions: movs cmps stos lods scas ins outs, with rep / repe /
// repne, DF, and the address size selecting SI/ESI/RSI, DI, CX. Each
// iteration commits its register updates, so a fault mid-way leaves the
// architectural state the SDM describes and the instruction restarts.
// rep stos / rep movs with DF=0 copy whole runs inside a page at once.
import { opsize, addrsize, rep, seg_ovr, ip_start, set_next_ip, linear } from "./decode";
import { reg_read, reg_write, reg16, SEG_DS, SEG_ES, DF } from "./state";
import { read_sz, write_sz, host_ptr, exit_pending, smc_check_range } from "./mem";
import { faulted } from "./fault";
import { get_eflags } from "./flags";
import { alu, ALU_CMP } from "./alu";
import { io_allowed, port_in, port_out } from "./io";

// Iterations one execution may run before it yields (it then restarts with
// RCX updated), so a huge rep cannot stall exits and budgets.
const REP_CHUNK: u64 = 1 << 16;

@inline function amask(): u64 { return addrsize == 8 ? <u64>-1 : addrsize == 4 ? 0xffffffff : 0xffff; }
@inline function src_lin(): u64 { return linear(seg_ovr >= 0 ? seg_ovr : SEG_DS, reg_read(6, addrsize, false)); }
@inline function dst_lin(): u64 { return linear(SEG_ES, reg_read(7, addrsize, false)); }
@inline function step(size: i32): u64 { return (get_eflags() & DF) != 0 ? <u64>(-size) : <u64>size; }
@inline function adv(r: i32, d: u64): void { reg_write(r, addrsize, false, (reg_read(r, addrsize, false) + d) & amask()); }
@inline function count(): u64 { return reg_read(1, addrsize, false); }
@inline function set_count(v: u64): void { reg_write(1, addrsize, false, v & amask()); }
@inline function esize(byte: i32): i32 { return byte != 0 ? 1 : opsize; }

// The run loop's budget covers rep loop steps (one element, or one bulk run
// inside a page), not just instructions: otherwise a guest looping over
// `repne scasb` with a huge RCX made run(budget) take 65536 x budget steps
// (tens of seconds for a budget of 20 000; found by the guest fuzzer). run()
// calls rep_begin() with the budget left before each instruction and charges
// rep_extra_steps afterwards. One execution may always take REP_MIN_STEPS
// steps, so a short rep still completes as one instruction in run(1).
const REP_MIN_STEPS: i32 = 1024;
export let rep_extra_steps: i32 = 0;
// A rep instruction that yields (chunk, budget, or an exit such as a write to
// a shadowed page table) has not retired: run() counts it once, when it
// completes. Otherwise the retired count (and the TSC) would depend on where
// budgets fell and on which pages the MMU happened to write-protect: a
// migrated guest, whose destination rebuilds its shadow pages, counted fewer.
export let rep_yielded = false;
let rep_budget: i32 = REP_MIN_STEPS;
@inline export function rep_begin(budget_left: i32): void {
  rep_budget = budget_left > REP_MIN_STEPS ? budget_left : REP_MIN_STEPS;
  rep_extra_steps = 0;
  rep_yielded = false;
}

// Run `one` under the rep prefix. `cmp_kind`: 0 none, else repe/repne test ZF.
// Returns after finishing, faulting, or yielding (then RIP stays on the insn).
function rep_loop(kind: i32, size: i32, cond_zf: bool): void {
  if (rep == 0) { one(kind, size); return; }
  let n = count();
  let done: u64 = 0;
  let steps: i32 = 0;
  while (n != 0) {
    if (done >= REP_CHUNK || steps >= rep_budget || exit_pending != 0) { set_next_ip(ip_start); rep_yielded = true; return; }
    if (steps++ != 0) rep_extra_steps++;
    const k = bulk(kind, size, n);
    if (k != 0) { n -= k; done += k; set_count(n); continue; }
    one(kind, size);
    if (faulted()) return;
    n = (n - 1) & amask();
    set_count(n);
    done++;
    if (cond_zf) {
      const zf = (get_eflags() & (1 << 6)) != 0;
      if ((rep == 0xf3 && !zf) || (rep == 0xf2 && zf)) return;
    }
  }
}

// Bulk fast path for rep stos / rep movs going up through RAM: returns the
// number of elements done (0 = take the one-at-a-time path).
function bulk(kind: i32, size: i32, n: u64): u64 {
  if (kind > 1 || (get_eflags() & DF) != 0) return 0;
  const di = dst_lin();
  const room = (4096 - <u64>(di & 0xfff)) / <u64>size;
  let k = n < room ? n : room;
  if (kind == 1) {
    const si = src_lin();
    const sroom = (4096 - <u64>(si & 0xfff)) / <u64>size;
    if (sroom < k) k = sroom;
  }
  if (k < 2) return 0;
  const d = host_ptr(di, true);
  if (d == 0) return 0;
  const bytes = <usize>(k * <u64>size);
  smc_check_range(d, bytes);
  if (kind == 0) {
    const v = reg_read(0, size, false);
    if (size == 1) memory.fill(d, <u8>v, bytes);
    else for (let i: usize = 0; i < bytes; i += <usize>size) {
      if (size == 2) store<u16>(d + i, <u16>v); else if (size == 4) store<u32>(d + i, <u32>v); else store<u64>(d + i, v);
    }
  } else {
    const s = host_ptr(src_lin(), false);
    if (s == 0) return 0;
    // memory.copy is memmove; a forward movs over an overlap that starts
    // below the destination replicates bytes instead, so take the slow path
    if (d > s && d < s + bytes) return 0;
    memory.copy(d, s, bytes);
  }
  if (kind == 1) adv(6, <u64>bytes);
  adv(7, <u64>bytes);
  return k;
}

const K_STOS = 0, K_MOVS = 1, K_LODS = 2, K_CMPS = 3, K_SCAS = 4, K_INS = 5, K_OUTS = 6;

function one(kind: i32, size: i32): void {
  const d = step(size);
  switch (kind) {
    case K_STOS: write_sz(dst_lin(), size, reg_read(0, size, false)); if (faulted()) return; adv(7, d); return;
    case K_MOVS: {
      const v = read_sz(src_lin(), size); if (faulted()) return;
      write_sz(dst_lin(), size, v); if (faulted()) return;
      adv(6, d); adv(7, d); return;
    }
    case K_LODS: { const v = read_sz(src_lin(), size); if (faulted()) return; reg_write(0, size, false, v); adv(6, d); return; }
    case K_CMPS: {
      const a = read_sz(src_lin(), size); if (faulted()) return;
      const b = read_sz(dst_lin(), size); if (faulted()) return;
      alu(ALU_CMP, a, b, size); adv(6, d); adv(7, d); return;
    }
    case K_SCAS: {
      const b = read_sz(dst_lin(), size); if (faulted()) return;
      alu(ALU_CMP, reg_read(0, size, false), b, size); adv(7, d); return;
    }
    case K_INS: {
      const port = reg16(2);
      if (!io_allowed(port, size)) return;
      const v = port_in(port, size); if (faulted()) return;
      write_sz(dst_lin(), size, v); if (faulted()) return;
      adv(7, d); return;
    }
    default: {
      const port = reg16(2);
      if (!io_allowed(port, size)) return;
      const v = read_sz(src_lin(), size); if (faulted()) return;
      port_out(port, size, v); adv(6, d); return;
    }
  }
}

export function stos(byte: i32): void { rep_loop(K_STOS, esize(byte), false); }
export function movs(byte: i32): void { rep_loop(K_MOVS, esize(byte), false); }
export function lods(byte: i32): void { rep_loop(K_LODS, esize(byte), false); }
export function cmps(byte: i32): void { rep_loop(K_CMPS, esize(byte), true); }
export function scas(byte: i32): void { rep_loop(K_SCAS, esize(byte), true); }
export function ins(byte: i32): void { rep_loop(K_INS, byte != 0 ? 1 : (opsize == 2 ? 2 : 4), false); }
export function outs(byte: i32): void { rep_loop(K_OUTS, byte != 0 ? 1 : (opsize == 2 ? 2 : 4), false); }
