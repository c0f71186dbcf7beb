// Compiling hot blocks to WebAssembly (the host side is src/jit/). A block
// that has run as often as the block_jit knob says (VM_KNOB_BLOCK_JIT,
// default 1024: a compile costs ~0.3-1 ms, so lukewarm blocks are not worth
// it; 0 = never) is handed to the host once (an imported call per compile,
// never per run); if the host knows all its uops it emits a function over
// the block's records and puts it in the shared function table, and
// block.ts calls it through call_indirect from then on.
// The compiled function keeps guest registers in locals and computes flags
// only where they are read; it ends by writing registers and the lazy flags
// back, so everything else sees the state the uops would have left.
//
// The helpers below are what compiled code calls back into: conditions on
// the core's flags, the operations whose flags are set eagerly here, memory
// accesses; the lazy flags themselves are exported globals it sets directly.
import { cond } from "./flags";
import { shift_arith } from "./shift";
import { imul2, div, idiv } from "./muldiv";
import { read_sz, write_sz, exit_pending, code_written } from "./mem";
import { faulted } from "./fault";
import { set_current } from "./decode";
import { uop_exec, ret64 } from "./uops";
import { VCPU, VCPU_JIT_STOP } from "./state";
import { push, pop } from "./stack";
import { raise_gp } from "./fault";
import { is_canonical } from "./seg";

// What a compiled block returns when its final branch raised #GP (a
// non-canonical target): no RIP can be this.
export const JIT_BRANCH_GP: u64 = 0x8000_0000_0000_0001;
// ... and when a memory access stopped it at uop i: JIT_STOP | i.
export const JIT_STOP: u64 = 0x8000_0000_0000_1000;

// host: compile block `b` of the vCPU at `vcpu`; returns a table index, 0 = not compiled
@external("env", "jit_compile") export declare function host_jit_compile(b: usize, vcpu: usize): u32;

export function jit_cond(cc: i32): i32 { return cond(cc) ? 1 : 0; }
export function jit_shift(op: i32, d: u64, count: u32, size: i32): u64 { return shift_arith(op, d, count, size); }
export function jit_imul(a: u64, b: u64, size: i32): u64 { return imul2(a, b, size); }

// A fault, or after a store that happened a pending exit or a write to code,
// sets VCPU_JIT_STOP, and the compiled code leaves at once.
@inline function stop_if(store_done: bool): void {
  if (faulted() || (store_done && (exit_pending != 0 || code_written))) store<u32>(VCPU + VCPU_JIT_STOP, 1);
}

// Memory accesses of compiled blocks, through the core's paths (TLB, walks,
// shadow faults, MMIO, PT_WRITE, dirty logging, the code map).
export function jit_ld(lin: u64, size: i32): u64 {
  const v = read_sz(lin, size);
  stop_if(false);
  return v;
}
export function jit_st(lin: u64, size: i32, v: u64, ip: u64): void {
  set_current(ip, 0, ip); // the PT_WRITE log names the storing instruction
  write_sz(lin, size, v);
  stop_if(true);
}
// div / idiv of rdx:rax by `src` (registers written back by the caller
// first, read back after); #DE stops the block.
export function jit_div(src: u64, size: i32, signed: i32): void {
  if (signed != 0) idiv(src, size); else div(src, size);
  stop_if(false);
}

// Stack uops of compiled blocks (64-bit mode: push, pop, call, ret), through
// the same stack paths as the uops (#SS on a non-canonical stack, PT_WRITE,
// the code map). RSP lives in the vCPU struct across the call: the caller
// writes it back first and reads it back after, so a stop leaves it as the
// uop would have (unchanged after a fault).
export function jit_push(v: u64, ip: u64): void {
  set_current(ip, 0, ip);
  push(v, 8);
  stop_if(true);
}
export function jit_pop(): u64 {
  const v = pop(8); // pop rsp: the caller writes the popped value last
  stop_if(false);
  return v;
}
// call: #GP(0) before anything is pushed when the target is not canonical
export function jit_call(target: u64, ret: u64, ip: u64): void {
  if (!is_canonical(target)) raise_gp(0);
  else { set_current(ip, 0, ip); push(ret, 8); }
  stop_if(true);
}
export function jit_ret(): u64 {
  const t = ret64();
  stop_if(false);
  return t;
}

// Any other uop of a compiled block (a generic instruction, inc/dec, a form
// the compiler does not emit), run as block_run runs it. All registers are in
// the vCPU struct across the call and the lazy flags in the core. Returns the
// next RIP, and keeps it (and which uop it ran) for a stop after it retired.
export let jit_uop_next: u64 = 0;
export let jit_uop_at: usize = 0;
@inline export function jit_uop_clear(): void { jit_uop_at = 0; }
export function jit_uop(kind: i32, u: usize, ip: u64): u64 {
  const nip = uop_exec(kind, u, ip);
  jit_uop_next = nip;
  jit_uop_at = u;
  stop_if(true);
  return nip;
}
