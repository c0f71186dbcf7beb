// Specialised uops: the instruction forms that dominate compiled integer
// code (register moves, loads and stores, ALU on registers, immediates and
// memory sources, lea, jcc/jmp/call/ret, shifts by a constant, imul, cmov,
// push/pop) run here straight from their block record, with the operand
// size fixed by the kind, instead of reloading the decoder's globals and
// going through the generic handlers. Everything else in a block is
// UOP_GENERIC. The semantics are the generic handlers' (same flag helpers,
// same memory paths, same fault order); the oracle tests run both ways.
import {
  opcode, opsize, addrsize, mod_, reg, rm, rex, imm, rep, set_current, next_ip, ip_start, IC_DISP, IC_BASE, IC_INDEX, IC_SCALE,
  IC_FLAGS, IC_SEG, IC_LEN, IC_OPCODE, IC_OPSIZE, IC_ADDRSIZE, decoded_load,
} from "./decode";
import { dispatch } from "./dispatch";
import { reg64, set_reg64, reg32, set_reg32, seg_base, SEG_FS, VCPU } from "./state";
import { mode64 } from "./mode";
import { alu, ALU_CMP, ALU_SUB, ALU_AND, ALU_OR, ALU_XOR, ALU_ADC, ALU_SBB } from "./alu";
import { flags_logic, flags_inc, flags_dec, cond } from "./flags";
import { shift_arith } from "./shift";
import { imul2, div, idiv } from "./muldiv";
import { read8, read32, read64, write8, write32, write64, tlb_hit, smc_check } from "./mem";
import { tlb_need_r, tlb_need_w } from "../mmu/tlb";
import { push, pop, peek, set_sp } from "./stack";
import { is_canonical } from "./seg";
import { faulted, raise_gp } from "./fault";
import { U_A, U_B, U_VAL } from "./block";

export const UOP_GENERIC: i32 = 0;
export const UOP_NOP: i32 = 1;
export const UOP_MOV_RR64: i32 = 2;
export const UOP_MOV_RR32: i32 = 3;
export const UOP_MOV_RI: i32 = 4; // r = VAL (already sized and extended)
export const UOP_ALU_RR64: i32 = 5; // r[A] op= r[B]; U_C = ALU_* or ALU_TEST
export const UOP_ALU_RR32: i32 = 6;
export const UOP_ALU_RI64: i32 = 7; // r[A] op= VAL
export const UOP_ALU_RI32: i32 = 8;
export const UOP_ALU_RM64: i32 = 9; // r[A] op= [mem]
export const UOP_ALU_RM32: i32 = 10;
export const UOP_CMP_MI64: i32 = 11; // [mem] cmp VAL
export const UOP_CMP_MI32: i32 = 12;
export const UOP_CMP_MI8: i32 = 13;
export const UOP_LOAD64: i32 = 14;
export const UOP_LOAD32: i32 = 15;
export const UOP_LOAD_ZX8: i32 = 16; // movzx r32/r64, byte [mem]
export const UOP_STORE64: i32 = 17;
export const UOP_STORE32: i32 = 18;
export const UOP_STORE8: i32 = 19; // mov byte [mem], r8 (not AH..BH)
export const UOP_MOV_MI64: i32 = 20;
export const UOP_MOV_MI32: i32 = 21;
export const UOP_MOV_MI8: i32 = 22;
export const UOP_LEA64: i32 = 23;
export const UOP_LEA32: i32 = 24;
export const UOP_MOVZX8_RR: i32 = 25;
export const UOP_JCC: i32 = 26; // U_C = condition, VAL = displacement
export const UOP_JMP: i32 = 27;
export const UOP_CALL64: i32 = 28;
export const UOP_RET64: i32 = 29;
export const UOP_SHIFT64: i32 = 30; // U_C = SHL 4 / SHR 5 / SAR 7, VAL = count (1..63)
export const UOP_SHIFT32: i32 = 31;
export const UOP_IMUL_RR64: i32 = 32;
export const UOP_IMUL_RR32: i32 = 33;
export const UOP_IMUL_RRI64: i32 = 34;
export const UOP_IMUL_RRI32: i32 = 35;
export const UOP_CMOV64: i32 = 36;
export const UOP_CMOV32: i32 = 37;
export const UOP_INC64: i32 = 38;
export const UOP_INC32: i32 = 39;
export const UOP_DEC64: i32 = 40;
export const UOP_DEC32: i32 = 41;
export const UOP_PUSH64: i32 = 42;
export const UOP_POP64: i32 = 43;
export const UOP_CQO: i32 = 53; // 0x99: rdx/edx = sign of rax/eax (U_B = size)
export const UOP_CDQE: i32 = 54; // 0x98 at 64 bits: rax = sext(eax)
export const UOP_NOT: i32 = 55; // f7 /2 on a register (U_B = size 4 / 8)
export const UOP_DIV: i32 = 56; // f7 /6 on a register (U_B = size)
export const UOP_IDIV: i32 = 57; // f7 /7 on a register (U_B = size)
export const UOP_MOVSXD: i32 = 58; // 0x63 at 64 bits, register source
export const UOP_ALU_RI8: i32 = 44; // low byte of r[A] (AL..R15B, not AH..BH) op= VAL
// Fused (UOP_FUSED_FIRST..LAST: each retires two instructions): an ALU uop on
// registers, immediates or a compare with memory directly followed by a jcc
// (the end of nearly every loop) runs as one uop that decides the branch
// from the operands instead of the lazy flags.
export const UOP_FUSED_FIRST: i32 = 45;
export const UOP_FUSED_RR64: i32 = 45; // ALU_RR64 + jcc
export const UOP_FUSED_RR32: i32 = 46;
export const UOP_FUSED_RI64: i32 = 47;
export const UOP_FUSED_RI32: i32 = 48;
export const UOP_FUSED_RI8: i32 = 49;
export const UOP_FUSED_MI8: i32 = 50; // CMP_MI8 + jcc
export const UOP_FUSED_MI32: i32 = 51;
export const UOP_FUSED_MI64: i32 = 52;
export const UOP_FUSED_LAST: i32 = 52;
// Instructions a uop of `kind` retires: 2 for a fused one, else 1.
@inline export function uop_insns(kind: i32): i32 {
  return <u32>(kind - UOP_FUSED_FIRST) <= <u32>(UOP_FUSED_LAST - UOP_FUSED_FIRST) ? 2 : 1;
}

export const U_C: usize = 6; // u8 third operand (alu op, condition, shift op)
export const U_CC: usize = 7; // u8 fused: the jcc's condition
export const U_JLEN: usize = 16; // u8 fused: the jcc's length
export const U_JSIZE: usize = 17; // u8 fused: the jcc's operand size (8: canonical check, 4: wraps)
export const U_JREL: usize = 56; // u64 fused: the jcc's displacement (the ALU uop has no imm2)
export const ALU_TEST: i32 = 8;

// ---- choosing a kind (block build time; the decoder's globals hold the instruction)

@inline function kind_sz(k64: i32, k32: i32): i32 { return opsize == 8 ? k64 : opsize == 4 ? k32 : UOP_GENERIC; }
// Memory operands are specialised for 32- and 64-bit addressing.
@inline function mem_ok(): bool { return addrsize != 2; }
// An 8-bit register operand that is not AH..BH (those sit in byte 1).
@inline function low_byte_reg(r: i32): bool { return rex != 0 || r < 4; }

// Pick the uop for the instruction just decoded and fill its operands into
// record `u`; returns the kind.
export function uop_kind(u: usize): i32 {
  const op = opcode;
  const k = uop_pick(u, op);
  if (k != UOP_GENERIC && mod_ != 3 && !mem_ok()) return UOP_GENERIC;
  return k;
}

@inline function set_ops(u: usize, a: i32, b: i32, c: i32, val: u64): void {
  store<u8>(u + U_A, <u8>a); store<u8>(u + U_B, <u8>b); store<u8>(u + U_C, <u8>c); store<u64>(u + U_VAL, val);
}

function uop_pick(u: usize, op: i32): i32 {
  if (op < 0x40 && (op & 7) != 6 && (op & 7) != 7 && op != 0x0f) {
    const aop = op >> 3;
    const form = op & 7;
    if (form == 1) { // Ev, Gv
      if (mod_ != 3) return UOP_GENERIC; // read-modify-write to memory: generic
      set_ops(u, rm, reg, aop, 0); return kind_sz(UOP_ALU_RR64, UOP_ALU_RR32);
    }
    if (form == 3) { // Gv, Ev
      set_ops(u, reg, rm, aop, 0);
      return mod_ == 3 ? kind_sz(UOP_ALU_RR64, UOP_ALU_RR32) : kind_sz(UOP_ALU_RM64, UOP_ALU_RM32);
    }
    if (form == 5) { set_ops(u, 0, 0, aop, imm); return kind_sz(UOP_ALU_RI64, UOP_ALU_RI32); } // rAX, Iz
    if (form == 4) { set_ops(u, 0, 0, aop, imm & 0xff); return UOP_ALU_RI8; } // AL, Ib
    return UOP_GENERIC;
  }
  if (op >= 0x70 && op <= 0x7f || op >= 0x180 && op <= 0x18f) {
    set_ops(u, 0, 0, op & 15, imm);
    return opsize == 2 ? UOP_GENERIC : UOP_JCC;
  }
  if (op >= 0xb8 && op <= 0xbf) {
    const r = (op & 7) | ((rex & 1) << 3);
    set_ops(u, r, 0, 0, opsize == 4 ? imm & 0xffffffff : imm);
    return opsize == 2 ? UOP_GENERIC : UOP_MOV_RI;
  }
  if (op >= 0x140 && op <= 0x14f) {
    if (mod_ != 3) return UOP_GENERIC;
    set_ops(u, reg, rm, op & 15, 0); return kind_sz(UOP_CMOV64, UOP_CMOV32);
  }
  if (mode64 && opsize == 8 && op >= 0x50 && op <= 0x5f) {
    set_ops(u, (op & 7) | ((rex & 1) << 3), 0, 0, 0);
    return op < 0x58 ? UOP_PUSH64 : UOP_POP64;
  }
  switch (op) {
    case 0x89:
      set_ops(u, mod_ == 3 ? rm : reg, reg, 0, 0);
      return mod_ == 3 ? kind_sz(UOP_MOV_RR64, UOP_MOV_RR32) : kind_sz(UOP_STORE64, UOP_STORE32);
    case 0x8b:
      set_ops(u, reg, rm, 0, 0);
      return mod_ == 3 ? kind_sz(UOP_MOV_RR64, UOP_MOV_RR32) : kind_sz(UOP_LOAD64, UOP_LOAD32);
    case 0x88:
      if (mod_ == 3 || !low_byte_reg(reg)) return UOP_GENERIC;
      set_ops(u, reg, 0, 0, 0); return UOP_STORE8;
    case 0xc6:
      if (mod_ == 3 || (reg & 7) != 0) return UOP_GENERIC;
      set_ops(u, 0, 0, 0, imm & 0xff); return UOP_MOV_MI8;
    case 0xc7:
      if ((reg & 7) != 0) return UOP_GENERIC;
      set_ops(u, rm, 0, 0, opsize == 4 ? imm & 0xffffffff : imm);
      if (mod_ == 3) return opsize == 2 ? UOP_GENERIC : UOP_MOV_RI;
      return kind_sz(UOP_MOV_MI64, UOP_MOV_MI32);
    case 0x81: case 0x83: {
      const aop = reg & 7;
      if (mod_ == 3) { set_ops(u, rm, 0, aop, imm); return kind_sz(UOP_ALU_RI64, UOP_ALU_RI32); }
      if (aop != ALU_CMP) return UOP_GENERIC;
      set_ops(u, 0, 0, ALU_CMP, imm); return kind_sz(UOP_CMP_MI64, UOP_CMP_MI32);
    }
    case 0x80:
      if (mod_ == 3) {
        if (!low_byte_reg(rm)) return UOP_GENERIC;
        set_ops(u, rm, 0, reg & 7, imm & 0xff); return UOP_ALU_RI8;
      }
      if ((reg & 7) != ALU_CMP) return UOP_GENERIC;
      set_ops(u, 0, 0, ALU_CMP, imm & 0xff); return UOP_CMP_MI8;
    case 0xa8: set_ops(u, 0, 0, ALU_TEST, imm & 0xff); return UOP_ALU_RI8;
    case 0x99: set_ops(u, 0, opsize, 0, 0); return opsize == 2 ? UOP_GENERIC : UOP_CQO;
    case 0x98: return opsize == 8 ? UOP_CDQE : UOP_GENERIC;
    case 0x63: if (!mode64 || opsize != 8 || mod_ != 3) return UOP_GENERIC; set_ops(u, reg, rm, 0, 0); return UOP_MOVSXD;
    case 0xf7: {
      const sub = reg & 7;
      if (mod_ != 3 || opsize == 2 || (sub != 2 && sub != 6 && sub != 7)) return UOP_GENERIC;
      set_ops(u, rm, opsize, 0, 0);
      return sub == 2 ? UOP_NOT : sub == 6 ? UOP_DIV : UOP_IDIV;
    }
    case 0x85:
      if (mod_ != 3) return UOP_GENERIC;
      set_ops(u, rm, reg, ALU_TEST, 0); return kind_sz(UOP_ALU_RR64, UOP_ALU_RR32);
    case 0xa9: set_ops(u, 0, 0, ALU_TEST, imm); return kind_sz(UOP_ALU_RI64, UOP_ALU_RI32);
    case 0x8d:
      if (mod_ == 3) return UOP_GENERIC; // #UD
      set_ops(u, reg, 0, 0, 0); return kind_sz(UOP_LEA64, UOP_LEA32);
    case 0x1b6:
      if (opsize == 2) return UOP_GENERIC;
      if (mod_ != 3) { set_ops(u, reg, 0, 0, 0); return UOP_LOAD_ZX8; }
      if (!low_byte_reg(rm)) return UOP_GENERIC;
      set_ops(u, reg, rm, 0, 0); return UOP_MOVZX8_RR;
    case 0xe9: case 0xeb:
      set_ops(u, 0, 0, 0, imm); return opsize == 2 ? UOP_GENERIC : UOP_JMP;
    case 0xe8:
      set_ops(u, 0, 0, 0, imm); return mode64 && opsize == 8 ? UOP_CALL64 : UOP_GENERIC;
    case 0xc3: return mode64 && opsize == 8 ? UOP_RET64 : UOP_GENERIC;
    case 0xc1: case 0xd1: {
      const sop = reg & 7;
      if (mod_ != 3 || (sop != 4 && sop != 5 && sop != 7)) return UOP_GENERIC;
      const count = op == 0xd1 ? <u64>1 : imm & (opsize == 8 ? 63 : 31);
      if (count == 0) return UOP_GENERIC; // flags untouched: rare
      set_ops(u, rm, 0, sop, count); return kind_sz(UOP_SHIFT64, UOP_SHIFT32);
    }
    case 0x1af:
      if (mod_ != 3) return UOP_GENERIC;
      set_ops(u, reg, rm, 0, 0); return kind_sz(UOP_IMUL_RR64, UOP_IMUL_RR32);
    case 0x69: case 0x6b:
      if (mod_ != 3) return UOP_GENERIC;
      set_ops(u, reg, rm, 0, imm); return kind_sz(UOP_IMUL_RRI64, UOP_IMUL_RRI32);
    case 0xff: {
      const sub = reg & 7;
      if (mod_ != 3 || sub > 1) return UOP_GENERIC;
      set_ops(u, rm, 0, 0, 0);
      return sub == 0 ? kind_sz(UOP_INC64, UOP_INC32) : kind_sz(UOP_DEC64, UOP_DEC32);
    }
    case 0x90: return rep == 0 && (rex & 1) == 0 ? UOP_NOP : UOP_GENERIC; // 0x90 with REX.B is xchg r8, rax
    case 0x11f: return UOP_NOP;
    default: return UOP_GENERIC;
  }
}

// Can the jcc just decoded (condition `cc`) fuse with uop `prev` (kind
// `pk`) before it? Fills `prev` in place and returns the fused kind, or 0.
export function uop_fuse(prev: usize, pk: i32): i32 {
  const op = opcode;
  if (!(op >= 0x70 && op <= 0x7f || op >= 0x180 && op <= 0x18f) || opsize == 2) return 0;
  let fk = 0;
  if (pk == UOP_ALU_RR64) fk = UOP_FUSED_RR64;
  else if (pk == UOP_ALU_RR32) fk = UOP_FUSED_RR32;
  else if (pk == UOP_ALU_RI64) fk = UOP_FUSED_RI64;
  else if (pk == UOP_ALU_RI32) fk = UOP_FUSED_RI32;
  else if (pk == UOP_ALU_RI8) fk = UOP_FUSED_RI8;
  else if (pk == UOP_CMP_MI8) fk = UOP_FUSED_MI8;
  else if (pk == UOP_CMP_MI32) fk = UOP_FUSED_MI32;
  else if (pk == UOP_CMP_MI64) fk = UOP_FUSED_MI64;
  else return 0;
  const aop = <i32>load<u8>(prev + U_C);
  if (aop == ALU_ADC || aop == ALU_SBB) return 0; // their flags need the carry in: not worth it
  store<u8>(prev + U_CC, <u8>(op & 15));
  store<u8>(prev + U_JLEN, <u8>(next_ip - ip_start));
  store<u8>(prev + U_JSIZE, <u8>opsize);
  store<u64>(prev + U_JREL, imm);
  return fk;
}

// The condition `cc` after `d OP s = r` at `size`, from the operands: a
// subtraction-like op (sub, cmp) or a logic one (and, or, xor, test: CF = OF
// = 0). add is decided through the lazy flags (cond), as is parity.
@inline function sext(v: u64, size: i32): i64 { return size == 8 ? <i64>v : size == 4 ? <i64><i32>v : <i64><i8>v; }
@inline function fused_cond(cc: i32, aop: i32, d: u64, s: u64, r: u64, size: i32): bool {
  let t: bool;
  const c2 = cc >> 1;
  if (aop == ALU_SUB || aop == ALU_CMP) {
    switch (c2) {
      case 1: t = d < s; break; // B
      case 2: t = d == s; break; // E
      case 3: t = d <= s; break; // BE
      case 4: t = sext(r, size) < 0; break; // S
      case 6: t = sext(d, size) < sext(s, size); break; // L
      case 7: t = sext(d, size) <= sext(s, size); break; // LE
      default: return cond(cc); // O, P
    }
  } else if (aop == ALU_AND || aop == ALU_OR || aop == ALU_XOR || aop == ALU_TEST) {
    switch (c2) {
      case 0: case 1: t = false; break; // O, B
      case 2: case 3: t = r == 0; break; // E, BE
      case 4: case 6: t = sext(r, size) < 0; break; // S, L (SF != OF with OF = 0)
      case 7: t = r == 0 || sext(r, size) < 0; break; // LE
      default: return cond(cc); // P
    }
  } else return cond(cc);
  return (cc & 1) != 0 ? !t : t;
}

// ---- running them

// Loads and stores with the TLB hit inline (mem.ts's paths on a miss).
@inline function ld8(lin: u64): u32 { const h = tlb_hit(lin, tlb_need_r, 1); return h != 0 ? <u32>load<u8>(h) : read8(lin); }
@inline function ld32(lin: u64): u32 { const h = tlb_hit(lin, tlb_need_r, 4); return h != 0 ? load<u32>(h) : read32(lin); }
@inline function ld64(lin: u64): u64 { const h = tlb_hit(lin, tlb_need_r, 8); return h != 0 ? load<u64>(h) : read64(lin); }
@inline function st8(lin: u64, v: u32): void {
  const h = tlb_hit(lin, tlb_need_w, 1);
  if (h != 0) { store<u8>(h, <u8>v); smc_check(h); } else write8(lin, v);
}
@inline function st32(lin: u64, v: u32): void {
  const h = tlb_hit(lin, tlb_need_w, 4);
  if (h != 0) { store<u32>(h, v); smc_check(h); } else write32(lin, v);
}
@inline function st64(lin: u64, v: u64): void {
  const h = tlb_hit(lin, tlb_need_w, 8);
  if (h != 0) { store<u64>(h, v); smc_check(h); } else write64(lin, v);
}

// The memory operand's linear address (the record's base/index/scale/disp,
// RIP-relative from the next instruction, 32-bit addressing wraps).
@inline function uop_off(u: usize, next: u64): u64 {
  let off = load<u64>(u + IC_DISP);
  const base = <i32>load<i8>(u + IC_BASE);
  if (base >= 0) off += reg64(base);
  const index = <i32>load<i8>(u + IC_INDEX);
  if (index >= 0) off += reg64(index) << <u64>load<u8>(u + IC_SCALE);
  if ((load<u8>(u + IC_FLAGS) & 8) != 0) off += next;
  if (load<u8>(u + IC_ADDRSIZE) == 4) off &= 0xffffffff;
  return off;
}
@inline function uop_lin(u: usize, next: u64): u64 {
  const off = uop_off(u, next);
  const seg = <i32>load<u8>(u + IC_SEG);
  if (mode64) return seg >= SEG_FS ? seg_base(seg) + off : off;
  return (seg_base(seg) + off) & 0xffffffff;
}

@inline function alu64(a: i32, c: i32, src: u64): void {
  if (c == ALU_TEST) { flags_logic(reg64(a) & src, 8); return; }
  const r = alu(c, reg64(a), src, 8);
  if (c != ALU_CMP) set_reg64(a, r);
}
@inline function alu32(a: i32, c: i32, src: u64): void {
  if (c == ALU_TEST) { flags_logic(<u64>reg32(a) & src, 4); return; }
  const r = alu(c, <u64>reg32(a), src, 4);
  if (c != ALU_CMP) set_reg32(a, <u32>r);
}
// The fused forms: the ALU op (flags recorded lazily as usual), then the
// branch. `d` is the destination's value (register or memory), `a` the
// register to write back (not for compares). Not inlined into its eight
// cases: that made uop_exec 40 KB, and a short run spends its first tens of
// ms in V8's baseline code for it while the optimizing tier compiles it
// (out of line: 15 KB; pt-memset whole run 0.142 -> 0.130 s, kernbench
// 0.259 -> 0.232, the uops alone no slower).
function fused(u: usize, next: u64, a: i32, d: u64, s: u64, size: i32): u64 {
  const c = <i32>load<u8>(u + U_C);
  let r: u64;
  if (c == ALU_TEST) { r = d & s; flags_logic(r, size); }
  else {
    r = alu(c, d, s, size);
    if (c != ALU_CMP) {
      if (size == 8) set_reg64(a, r);
      else if (size == 4) set_reg32(a, <u32>r);
      else store<u8>(VCPU + (<usize>a << 3), <u8>r);
    }
  }
  const jnext = next + <u64>load<u8>(u + U_JLEN);
  if (!fused_cond(<i32>load<u8>(u + U_CC), c, d, s, r, size)) return jnext;
  const target = jnext + load<u64>(u + U_JREL);
  if (load<u8>(u + U_JSIZE) != 8) return target & 0xffffffff;
  if (is_canonical(target)) return target;
  // #GP on the jcc: the ALU instruction retired, the jcc faults
  fused_fault_ip = next;
  raise_gp(0);
  return 0;
}
// Set when a fused uop's second instruction faulted (its RIP); else 0.
export let fused_fault_ip: u64 = 0;
export function fused_fault_clear(): void { fused_fault_ip = 0; }

// A near branch to `target` at operand size 8 or 4 (see control.ts: branch_to).
@inline function branch(u: usize, target: u64): u64 {
  if (load<u8>(u + IC_OPSIZE) != 8) return target & 0xffffffff;
  if (!is_canonical(target)) raise_gp(0);
  return target;
}

// ret in 64-bit mode: the popped target, or after #GP(0) (not canonical,
// RSP unchanged) or a stack fault 0. Shared with compiled blocks (jit.ts).
export function ret64(): u64 {
  const t = peek(0, 8);
  if (faulted()) return 0;
  if (!is_canonical(t)) { raise_gp(0); return 0; }
  set_sp(reg64(4) + 8);
  return t;
}

// Run the uop of record `u` for the instruction at `ip`, a generic one
// through its handler: block_run, and compiled blocks through jit_uop. One
// function for both, not inlined. Inlined, each caller held a 40 KB copy of
// the switch, and V8 runs such a function in its baseline tier until its
// optimizing tier has spent 30-70 ms on it: jit_uop's copy was first called
// when the first block compiled, and the process exit waited for that
// compile. Best of 5 whole runs, out of line vs inlined in block_run too:
// cr3-switch 0.167/0.182 s, pt-memset 0.148/0.177, kernbench 0.283/0.320,
// steady state equal; the uops alone (block_jit=0) run ~12% slower.
export function uop_exec(kind: i32, u: usize, ip: u64): u64 {
  if (kind == UOP_GENERIC) {
    decoded_load(u, ip);
    dispatch(<i32>load<u16>(u + IC_OPCODE));
    return next_ip;
  }
  return uop_run(kind, u, ip);
}

// Run uop `kind` of record `u` for the instruction at `ip`; returns the RIP
// of the next instruction (after a fault: anything, faulted() says so).
@inline export function uop_run(kind: i32, u: usize, ip: u64): u64 {
  const next = ip + <u64>load<u8>(u + IC_LEN);
  const a = <i32>load<u8>(u + U_A);
  switch (kind) {
    case UOP_NOP: break;
    case UOP_MOV_RR64: set_reg64(a, reg64(<i32>load<u8>(u + U_B))); break;
    case UOP_MOV_RR32: set_reg32(a, reg32(<i32>load<u8>(u + U_B))); break;
    case UOP_MOV_RI: set_reg64(a, load<u64>(u + U_VAL)); break;
    case UOP_ALU_RR64: alu64(a, <i32>load<u8>(u + U_C), reg64(<i32>load<u8>(u + U_B))); break;
    case UOP_ALU_RR32: alu32(a, <i32>load<u8>(u + U_C), <u64>reg32(<i32>load<u8>(u + U_B))); break;
    case UOP_ALU_RI64: alu64(a, <i32>load<u8>(u + U_C), load<u64>(u + U_VAL)); break;
    case UOP_ALU_RI32: alu32(a, <i32>load<u8>(u + U_C), load<u64>(u + U_VAL) & 0xffffffff); break;
    case UOP_FUSED_RR64: return fused(u, next, a, reg64(a), reg64(<i32>load<u8>(u + U_B)), 8);
    case UOP_FUSED_RR32: return fused(u, next, a, <u64>reg32(a), <u64>reg32(<i32>load<u8>(u + U_B)), 4);
    case UOP_FUSED_RI64: return fused(u, next, a, reg64(a), load<u64>(u + U_VAL), 8);
    case UOP_FUSED_RI32: return fused(u, next, a, <u64>reg32(a), load<u64>(u + U_VAL) & 0xffffffff, 4);
    case UOP_FUSED_RI8: return fused(u, next, a, <u64>load<u8>(VCPU + (<usize>a << 3)), load<u64>(u + U_VAL), 1);
    case UOP_FUSED_MI8: { const d = <u64>ld8(uop_lin(u, next)); if (faulted()) break; return fused(u, next, 0, d, load<u64>(u + U_VAL), 1); }
    case UOP_FUSED_MI32: { const d = <u64>ld32(uop_lin(u, next)); if (faulted()) break; return fused(u, next, 0, d, load<u64>(u + U_VAL) & 0xffffffff, 4); }
    case UOP_FUSED_MI64: { const d = ld64(uop_lin(u, next)); if (faulted()) break; return fused(u, next, 0, d, load<u64>(u + U_VAL), 8); }
    case UOP_CQO:
      if (load<u8>(u + U_B) == 8) set_reg64(2, <u64>(<i64>reg64(0) >> 63));
      else set_reg32(2, <u32>(<i32>reg32(0) >> 31));
      break;
    case UOP_CDQE: set_reg64(0, <u64><i64><i32>reg32(0)); break;
    case UOP_MOVSXD: set_reg64(a, <u64><i64><i32>reg32(<i32>load<u8>(u + U_B))); break;
    case UOP_NOT:
      if (load<u8>(u + U_B) == 8) set_reg64(a, ~reg64(a)); else set_reg32(a, ~reg32(a));
      break;
    case UOP_DIV:
      if (load<u8>(u + U_B) == 8) div(reg64(a), 8); else div(<u64>reg32(a), 4);
      break;
    case UOP_IDIV:
      if (load<u8>(u + U_B) == 8) idiv(reg64(a), 8); else idiv(<u64>reg32(a), 4);
      break;
    case UOP_ALU_RI8: {
      const c = <i32>load<u8>(u + U_C);
      const ra = VCPU + (<usize>a << 3);
      const d = <u64>load<u8>(ra);
      const v = load<u64>(u + U_VAL);
      if (c == ALU_TEST) flags_logic(d & v, 1);
      else { const r = alu(c, d, v, 1); if (c != ALU_CMP) store<u8>(ra, <u8>r); }
      break;
    }
    case UOP_ALU_RM64: {
      const v = ld64(uop_lin(u, next));
      if (!faulted()) alu64(a, <i32>load<u8>(u + U_C), v);
      break;
    }
    case UOP_ALU_RM32: {
      const v = <u64>ld32(uop_lin(u, next));
      if (!faulted()) alu32(a, <i32>load<u8>(u + U_C), v);
      break;
    }
    case UOP_CMP_MI64: {
      const v = ld64(uop_lin(u, next));
      if (!faulted()) alu(ALU_CMP, v, load<u64>(u + U_VAL), 8);
      break;
    }
    case UOP_CMP_MI32: {
      const v = <u64>ld32(uop_lin(u, next));
      if (!faulted()) alu(ALU_CMP, v, load<u64>(u + U_VAL) & 0xffffffff, 4);
      break;
    }
    case UOP_CMP_MI8: {
      const v = <u64>ld8(uop_lin(u, next));
      if (!faulted()) alu(ALU_CMP, v, load<u64>(u + U_VAL), 1);
      break;
    }
    case UOP_LOAD64: { const v = ld64(uop_lin(u, next)); if (!faulted()) set_reg64(a, v); break; }
    case UOP_LOAD32: { const v = ld32(uop_lin(u, next)); if (!faulted()) set_reg32(a, v); break; }
    case UOP_LOAD_ZX8: { const v = ld8(uop_lin(u, next)); if (!faulted()) set_reg64(a, <u64>v); break; }
    // stores: a write to a tracked page table logs the instruction (shadow.ts)
    case UOP_STORE64: current(u, ip, next); st64(uop_lin(u, next), reg64(a)); break;
    case UOP_STORE32: current(u, ip, next); st32(uop_lin(u, next), reg32(a)); break;
    case UOP_STORE8: current(u, ip, next); st8(uop_lin(u, next), <u32>load<u8>(VCPU + (<usize>a << 3))); break;
    case UOP_MOV_MI64: current(u, ip, next); st64(uop_lin(u, next), load<u64>(u + U_VAL)); break;
    case UOP_MOV_MI32: current(u, ip, next); st32(uop_lin(u, next), <u32>load<u64>(u + U_VAL)); break;
    case UOP_MOV_MI8: current(u, ip, next); st8(uop_lin(u, next), <u32>load<u64>(u + U_VAL)); break;
    case UOP_LEA64: set_reg64(a, uop_off(u, next)); break;
    case UOP_LEA32: set_reg32(a, <u32>uop_off(u, next)); break;
    case UOP_MOVZX8_RR: set_reg64(a, <u64>load<u8>(VCPU + (<usize>load<u8>(u + U_B) << 3))); break;
    case UOP_JCC: if (cond(<i32>load<u8>(u + U_C))) return branch(u, next + load<u64>(u + U_VAL)); break;
    case UOP_JMP: return branch(u, next + load<u64>(u + U_VAL));
    case UOP_CALL64: {
      const target = next + load<u64>(u + U_VAL);
      if (!is_canonical(target)) { raise_gp(0); break; }
      current(u, ip, next);
      push(next, 8);
      return target;
    }
    case UOP_RET64: {
      const target = ret64();
      if (faulted()) break;
      return target;
    }
    case UOP_SHIFT64: set_reg64(a, shift_arith(<i32>load<u8>(u + U_C), reg64(a), <u32>load<u64>(u + U_VAL), 8)); break;
    case UOP_SHIFT32: set_reg32(a, <u32>shift_arith(<i32>load<u8>(u + U_C), <u64>reg32(a), <u32>load<u64>(u + U_VAL), 4)); break;
    case UOP_IMUL_RR64: set_reg64(a, imul2(reg64(a), reg64(<i32>load<u8>(u + U_B)), 8)); break;
    case UOP_IMUL_RR32: set_reg32(a, <u32>imul2(<u64>reg32(a), <u64>reg32(<i32>load<u8>(u + U_B)), 4)); break;
    case UOP_IMUL_RRI64: set_reg64(a, imul2(reg64(<i32>load<u8>(u + U_B)), load<u64>(u + U_VAL), 8)); break;
    case UOP_IMUL_RRI32: set_reg32(a, <u32>imul2(<u64>reg32(<i32>load<u8>(u + U_B)), load<u64>(u + U_VAL), 4)); break;
    case UOP_CMOV64: if (cond(<i32>load<u8>(u + U_C))) set_reg64(a, reg64(<i32>load<u8>(u + U_B))); break;
    case UOP_CMOV32: // a 32-bit cmov zero-extends its destination even when the condition is false
      set_reg32(a, cond(<i32>load<u8>(u + U_C)) ? reg32(<i32>load<u8>(u + U_B)) : reg32(a)); break;
    case UOP_INC64: { const d = reg64(a); const v = d + 1; flags_inc(d, v, 8); set_reg64(a, v); break; }
    case UOP_INC32: { const d = <u64>reg32(a); const v = (d + 1) & 0xffffffff; flags_inc(d, v, 4); set_reg32(a, <u32>v); break; }
    case UOP_DEC64: { const d = reg64(a); const v = d - 1; flags_dec(d, v, 8); set_reg64(a, v); break; }
    case UOP_DEC32: { const d = <u64>reg32(a); const v = (d - 1) & 0xffffffff; flags_dec(d, v, 4); set_reg32(a, <u32>v); break; }
    case UOP_PUSH64: current(u, ip, next); push(reg64(a), 8); break;
    case UOP_POP64: {
      const v = pop(8);
      if (faulted()) break;
      set_reg64(a, v); // pop rsp: the popped value wins
      break;
    }
    default: break;
  }
  return next;
}
@inline function current(u: usize, ip: u64, next: u64): void { set_current(ip, <i32>load<u16>(u + IC_OPCODE), next); }
