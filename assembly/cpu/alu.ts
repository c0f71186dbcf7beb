// Integer ALU: add or adc sbb and sub xor cmp, test, inc/dec, not/neg and the
// group-1/3/4 dispatchers. Flags are recorded lazily (flags.ts).
import { flags_add, flags_adc, flags_sub, flags_sbb, flags_logic, flags_inc, flags_dec, get_cf, size_mask, get_eflags, set_arith_flags } from "./flags";
import { opsize, reg, mod_, ea, imm, rep, pfx_66, rex_w, read_E, write_E, read_G, write_G } from "./decode";
import { reg_read, reg_write, reg32, set_reg32, reg16, set_reg16, CF, OF } from "./state";
import { probe_write } from "./mem";
import { faulted, raise_ud } from "./fault";
import { mul, imul1, div, idiv } from "./muldiv";

export const ALU_ADD = 0;
export const ALU_OR = 1;
export const ALU_ADC = 2;
export const ALU_SBB = 3;
export const ALU_AND = 4;
export const ALU_SUB = 5;
export const ALU_XOR = 6;
export const ALU_CMP = 7;

// dst OP src at `size` bytes; records flags, returns the masked result.
@inline export function alu(op: i32, dst: u64, src: u64, size: i32): u64 {
  const m = size_mask(size);
  src &= m;
  let r: u64;
  switch (op) {
    case ALU_ADD: r = (dst + src) & m; flags_add(dst, src, r, size); break;
    case ALU_OR: r = dst | src; flags_logic(r, size); break;
    case ALU_ADC: { const c: u64 = get_cf() ? 1 : 0; r = (dst + src + c) & m; flags_adc(dst, src, r, size, c); break; }
    case ALU_SBB: { const c: u64 = get_cf() ? 1 : 0; r = (dst - src - c) & m; flags_sbb(dst, src, r, size, c); break; }
    case ALU_AND: r = dst & src; flags_logic(r, size); break;
    case ALU_SUB: case ALU_CMP: r = (dst - src) & m; flags_sub(dst, src, r, size); break;
    default: r = dst ^ src; flags_logic(r, size); break;
  }
  return r;
}

// r/m op= value (with write-back unless cmp). Memory RMW probes writability
// first so a fault leaves nothing half-done.
function alu_E(op: i32, size: i32, src: u64): void {
  if (mod_ != 3 && op != ALU_CMP) { probe_write(ea, size); if (faulted()) return; }
  const dst = read_E(size);
  if (faulted()) return;
  const r = alu(op, dst, src, size);
  if (op != ALU_CMP) write_E(size, r);
}

export function alu_EbGb(op: i32): void { alu_E(op, 1, read_G(1)); }
export function alu_EvGv(op: i32): void { alu_E(op, opsize, read_G(opsize)); }
export function alu_GbEb(op: i32): void {
  const src = read_E(1);
  if (faulted()) return;
  const r = alu(op, read_G(1), src, 1);
  if (op != ALU_CMP) write_G(1, r);
}
export function alu_GvEv(op: i32): void {
  const src = read_E(opsize);
  if (faulted()) return;
  const r = alu(op, read_G(opsize), src, opsize);
  if (op != ALU_CMP) write_G(opsize, r);
}
export function alu_ALIb(op: i32): void {
  const r = alu(op, reg_read(0, 1, false), imm, 1);
  if (op != ALU_CMP) reg_write(0, 1, false, r);
}
export function alu_rAXIz(op: i32): void {
  const r = alu(op, reg_read(0, opsize, false), imm, opsize);
  if (op != ALU_CMP) reg_write(0, opsize, false, r);
}
export function grp1_Eb(): void { alu_E(reg & 7, 1, imm); }
export function grp1_Ev(): void { alu_E(reg & 7, opsize, imm); }

export function test_EbGb(): void {
  const v = read_E(1);
  if (faulted()) return;
  flags_logic(v & read_G(1), 1);
}
export function test_EvGv(): void {
  const v = read_E(opsize);
  if (faulted()) return;
  flags_logic(v & read_G(opsize), opsize);
}
export function test_ALIb(): void { flags_logic(reg_read(0, 1, false) & imm, 1); }
export function test_rAXIz(): void { flags_logic(reg_read(0, opsize, false) & imm, opsize); }

// inc/dec r (0x40-0x4f outside 64-bit mode)
export function inc_r(r: i32): void {
  if (opsize == 4) { const d = <u64>reg32(r); const v = (d + 1) & 0xffffffff; flags_inc(d, v, 4); set_reg32(r, <u32>v); }
  else { const d = <u64>reg16(r); const v = (d + 1) & 0xffff; flags_inc(d, v, 2); set_reg16(r, <u32>v); }
}
export function dec_r(r: i32): void {
  if (opsize == 4) { const d = <u64>reg32(r); const v = (d - 1) & 0xffffffff; flags_dec(d, v, 4); set_reg32(r, <u32>v); }
  else { const d = <u64>reg16(r); const v = (d - 1) & 0xffff; flags_dec(d, v, 2); set_reg16(r, <u32>v); }
}

export function inc_dec_E(size: i32, dec: bool): void {
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  const m = size_mask(size);
  const v = (dec ? d - 1 : d + 1) & m;
  if (dec) flags_dec(d, v, size); else flags_inc(d, v, size);
  write_E(size, v);
}

// group 3: test not neg mul imul div idiv
function grp3(size: i32): void {
  const sub = reg & 7;
  if (sub >= 4) {
    const src = read_E(size);
    if (faulted()) return;
    if (sub == 4) mul(src, size);
    else if (sub == 5) imul1(src, size);
    else if (sub == 6) div(src, size);
    else idiv(src, size);
    return;
  }
  if (sub < 2) { // test E, imm
    const v = read_E(size);
    if (faulted()) return;
    flags_logic(v & imm, size);
    return;
  }
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  const m = size_mask(size);
  if (sub == 2) { write_E(size, ~d & m); return; }
  const r = (0 - d) & m; // neg: flags of 0 - d
  flags_sub(0, d, r, size);
  write_E(size, r);
}
export function grp3_Eb(): void { grp3(1); }
export function grp3_Ev(): void { grp3(opsize); }

// group 4: inc/dec Eb
export function grp4_Eb(): void {
  const sub = reg & 7;
  if (sub > 1) { raise_ud(); return; }
  inc_dec_E(1, sub == 1);
}

// adcx (66 0F 38 F6) / adox (F3 0F 38 F6): G += E + carry, where the carry is
// CF (adcx) or OF (adox) and only that flag changes. The 66 is a mandatory
// prefix, not an operand-size override: the size is 32 or 64 (REX.W).
export function adcx_adox(): void {
  let flag: u32;
  if (rep == 0xf3) flag = OF;
  else if (rep == 0 && pfx_66) flag = CF;
  else { raise_ud(); return; }
  const size = rex_w ? 8 : 4;
  const src = read_E(size);
  if (faulted()) return;
  const f = get_eflags();
  const dst = read_G(size);
  const c: u64 = (f & flag) != 0 ? 1 : 0;
  const m = size_mask(size);
  const r = (dst + src + c) & m;
  const carry = r < dst || (c != 0 && r == dst);
  set_arith_flags((f & ~flag) | (carry ? flag : 0));
  write_G(size, r);
}
