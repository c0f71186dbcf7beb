// Stack: push/pop in every form, pushf/popf, pusha/popa, enter/leave.
// SS:RSP with the stack width from SS.B (or 64 in 64-bit mode).
import { opsize, reg, mod_, imm, imm2, rex, ea, read_E, write_E } from "./decode";
import { reg64, set_reg64, set_reg32, set_reg16, reg_read, reg_write, SEG_SS, seg_selector, IF, IOPL_MASK, VM, RF, AC, ID, NT, TF, DF, ARITH_FLAGS } from "./state";
import { read_sz, write_sz, probe_write, set_stack_ref } from "./mem";
import { linear } from "./decode";
import { faulted, raise_gp, raise_ud } from "./fault";
import { stack_size, cpl, mode64, protected_mode } from "./mode";
import { get_eflags, set_eflags } from "./flags";
import { walk_set_ac } from "../mmu/walk";

@inline function sp_mask(): u64 { return stack_size == 8 ? <u64>-1 : stack_size == 4 ? 0xffffffff : 0xffff; }
export function set_sp(v: u64): void {
  if (stack_size == 8) set_reg64(4, v);
  else if (stack_size == 4) set_reg32(4, <u32>v);
  else set_reg16(4, <u32>v);
}
@inline export function stack_lin(sp: u64): u64 { return linear(SEG_SS, sp & sp_mask()); }

// Stack accesses mark themselves as such (set_stack_ref) so that a
// non-canonical stack address raises #SS(0), not #GP(0).
export function push(v: u64, size: i32): void {
  const sp = (reg64(4) - <u64>size) & sp_mask();
  set_stack_ref(true);
  write_sz(stack_lin(sp), size, v);
  set_stack_ref(false);
  if (faulted()) return;
  set_sp(sp);
}
// Write `v` at `off` bytes below the top of stack (no pointer change).
export function poke_below(off: u64, size: i32, v: u64): void {
  set_stack_ref(true);
  write_sz(stack_lin(reg64(4) - off), size, v);
  set_stack_ref(false);
}
// Read the value `off` bytes above the top of stack without popping.
export function peek(off: u64, size: i32): u64 {
  set_stack_ref(true);
  const v = read_sz(stack_lin(reg64(4) + off), size);
  set_stack_ref(false);
  return v;
}
export function pop(size: i32): u64 {
  const v = peek(0, size);
  if (faulted()) return 0;
  set_sp(reg64(4) + <u64>size);
  return v;
}

export function push_r(r: i32): void { push(reg_read(r | ((rex & 1) << 3), opsize, false), opsize); }
export function pop_r(r: i32): void {
  const v = pop(opsize);
  if (!faulted()) reg_write(r | ((rex & 1) << 3), opsize, false, v);
}
export function push_imm(): void { push(imm, opsize); }
export function pop_Ev(): void {
  if ((reg & 7) != 0) { raise_ud(); return; }
  const v = peek(0, opsize);
  if (faulted()) return;
  if (mod_ != 3) { probe_write(ea, opsize); if (faulted()) return; }
  set_sp(reg64(4) + <u64>opsize);
  write_E(opsize, v);
}
export function push_Ev(): void {
  const v = read_E(opsize);
  if (!faulted()) push(v, opsize);
}

// PUSH Sreg (POP Sreg is in seg.ts). A 32/64-bit push writes the selector
// zero-extended, as QEMU does (some CPUs write only the low 16 bits).
export function push_seg(s: i32): void { push(<u64>seg_selector(s), opsize); }

// pushf/popf: VM and RF are never pushed as set; popf changes IF only when
// CPL <= IOPL and IOPL only at CPL 0, never VM/VIF/VIP, and clears RF (SDM POPF).
export function pushf(): void {
  let f = <u64>(get_eflags() & ~(VM | RF));
  push(f, opsize);
}
export function popf(): void {
  const v = <u32>peek(0, opsize);
  if (faulted()) return;
  const old = get_eflags();
  let writable: u32 = ARITH_FLAGS | TF | DF | NT | AC | ID | 0x0800;
  const iopl = (old & IOPL_MASK) >> 12;
  if (cpl == 0) writable |= IOPL_MASK | IF;
  else if (<u32>cpl <= iopl) writable |= IF;
  if (opsize == 2) writable &= 0xffff;
  const nf = ((old & ~writable) | (v & writable)) & ~RF;
  set_eflags(nf);
  walk_set_ac((nf & AC) != 0);
  set_sp(reg64(4) + <u64>opsize);
}

export function pusha(): void { set_stack_ref(true); pusha_(); set_stack_ref(false); }
function pusha_(): void {
  const sp = reg64(4);
  const size = opsize;
  for (let r = 0; r < 8; r++) {
    const v = r == 4 ? sp : reg_read(r, size, false);
    write_sz(stack_lin(sp - <u64>(size * (r + 1))), size, v);
    if (faulted()) return;
  }
  set_sp(sp - <u64>(size * 8));
}
export function popa(): void { set_stack_ref(true); popa_(); set_stack_ref(false); }
// All eight slots are read before any register changes (a fault on the
// last one leaves the registers intact); the ESP slot is skipped.
function popa_(): void {
  const sp = reg64(4);
  const size = opsize;
  const w = <u64>size;
  const di = read_sz(stack_lin(sp), size); if (faulted()) return;
  const si = read_sz(stack_lin(sp + w), size); if (faulted()) return;
  const bp = read_sz(stack_lin(sp + 2 * w), size); if (faulted()) return;
  const bx = read_sz(stack_lin(sp + 4 * w), size); if (faulted()) return;
  const dx = read_sz(stack_lin(sp + 5 * w), size); if (faulted()) return;
  const cx = read_sz(stack_lin(sp + 6 * w), size); if (faulted()) return;
  const ax = read_sz(stack_lin(sp + 7 * w), size); if (faulted()) return;
  reg_write(7, size, false, di); reg_write(6, size, false, si); reg_write(5, size, false, bp);
  reg_write(3, size, false, bx); reg_write(2, size, false, dx); reg_write(1, size, false, cx);
  reg_write(0, size, false, ax);
  set_sp(sp + w * 8);
}

export function enter(): void { set_stack_ref(true); enter_(); set_stack_ref(false); }
function enter_(): void {
  const size = opsize;
  const alloc = imm & 0xffff;
  const level = imm2 & 31;
  let sp = reg64(4);
  const bp = reg64(5);
  sp -= <u64>size;
  write_sz(stack_lin(sp), size, bp);
  if (faulted()) return;
  const frame = sp;
  if (level > 0) {
    let tbp = bp;
    for (let i: u64 = 1; i < level; i++) {
      tbp -= <u64>size;
      const v = read_sz(stack_lin(tbp), size);
      if (faulted()) return;
      sp -= <u64>size;
      write_sz(stack_lin(sp), size, v);
      if (faulted()) return;
    }
    sp -= <u64>size;
    write_sz(stack_lin(sp), size, frame);
    if (faulted()) return;
  }
  reg_write(5, size == 8 ? 8 : stack_size, false, frame);
  set_sp(sp - alloc);
}
export function leave(): void { set_stack_ref(true); leave_(); set_stack_ref(false); }
function leave_(): void {
  const bp = reg64(5);
  const v = read_sz(stack_lin(bp), opsize);
  if (faulted()) return;
  set_sp(bp + <u64>opsize);
  reg_write(5, opsize, false, v);
}
