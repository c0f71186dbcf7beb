// Control transfer: jcc, jmp, call, ret, loop/jrcxz, group 5, software
// interrupts (delivery itself is in interrupt.ts).
import { opsize, addrsize, imm, reg, next_ip, opcode, mod_, ea, read_E, set_next_ip, ea_plus } from "./decode";
import { reg64, set_reg64, reg_write, reg_read } from "./state";
import { read_sz } from "./mem";
import { faulted, raise_gp, raise_ud, BP, OFV, DB } from "./fault";
import { cond, get_of } from "./flags";
import { mode64 } from "./mode";
import { push, pop, peek, set_sp, push_Ev } from "./stack";
import { inc_dec_E } from "./alu";
import { far_jump, far_call, is_canonical } from "./seg";
import { software_interrupt } from "./interrupt";

// `target` truncated to the operand size, or -1 after #GP(0) for a
// non-canonical 64-bit target (checked before anything is pushed).
@inline function near_target(target: u64): u64 {
  if (opsize == 4) return target & 0xffffffff;
  if (opsize == 2) return target & 0xffff;
  if (!is_canonical(target)) { raise_gp(0); return 0; }
  return target;
}
// Jump to `target` truncated to the operand size; #GP(0) if non-canonical.
export function branch_to(target: u64): void {
  const t = near_target(target);
  if (!faulted()) set_next_ip(t);
}

export function jcc(cc: i32): void { if (cond(cc)) branch_to(next_ip + imm); }
export function jmp_rel(): void { branch_to(next_ip + imm); }
export function call_rel(): void {
  const target = near_target(next_ip + imm);
  if (faulted()) return;
  push(next_ip, opsize);
  if (!faulted()) set_next_ip(target);
}
export function ret_near(): void {
  const target = peek(0, opsize);
  if (faulted()) return;
  const extra: u64 = opcode == 0xc2 ? (imm & 0xffff) : 0;
  branch_to(target);
  if (faulted()) return;
  set_sp(reg64(4) + <u64>opsize + extra);
}

// loopne(0) loope(1) loop(2): the count register follows the address size;
// it is written only once the branch target passed its check.
export function loop(kind: i32): void {
  const raw = reg_read(1, addrsize, false) - 1;
  const c = addrsize == 8 ? raw : raw & (addrsize == 4 ? 0xffffffff : 0xffff);
  let take = c != 0;
  if (kind == 0) take = take && !cond(4); // ZF = 0
  else if (kind == 1) take = take && cond(4); // ZF = 1
  if (take) { branch_to(next_ip + imm); if (faulted()) return; }
  reg_write(1, addrsize, false, raw);
}
export function jrcxz(): void { if (reg_read(1, addrsize, false) == 0) branch_to(next_ip + imm); }

// group 5: inc dec call callf jmp jmpf push
export function grp5_Ev(): void {
  const sub = reg & 7;
  switch (sub) {
    case 0: inc_dec_E(opsize, false); return;
    case 1: inc_dec_E(opsize, true); return;
    case 2: {
      const t = near_target(read_E(opsize));
      if (faulted()) return;
      push(next_ip, opsize);
      if (!faulted()) set_next_ip(t);
      return;
    }
    case 4: {
      const t = read_E(opsize);
      if (!faulted()) branch_to(t);
      return;
    }
    case 3: case 5: {
      if (mod_ == 3) { raise_ud(); return; }
      const off = read_sz(ea, opsize);
      if (faulted()) return;
      const sel = <u32>read_sz(ea_plus(<u64>opsize), 2);
      if (faulted()) return;
      if (sub == 3) far_call(sel, off); else far_jump(sel, off);
      return;
    }
    case 6: push_Ev(); return;
    default: raise_ud(); return;
  }
}

// INT3, INT n and INTO check the gate's DPL against CPL; INT1 (ICEBP) does
// not and is delivered like a hardware event (SDM vol. 3, 6.12.1.1).
export function int3(): void { software_interrupt(BP, true); }
export function int_Ib(): void { software_interrupt(<i32>(imm & 0xff), true); }
export function into(): void { if (get_of()) software_interrupt(OFV, true); }
export function int1(): void { software_interrupt(DB, false); }
