// Lazy arithmetic flags. The ALU records (op, size, dst, src, result) and the
// six status flags are derived only when something reads them (jcc, pushf,
// adc...), which is rare compared with the ALU ops that set them.
//
// `eflags` holds every non-status bit, and the status bits too whenever
// lf_op == LF_NONE. On run() entry and exit the word is synced with
// VCPU_RFLAGS so the host and migration always see a materialised value.
import { CF, PF, AF, ZF, SF, OF, ARITH_FLAGS, VCPU_RFLAGS, vcpu_load64, vcpu_store64 } from "./state";

export const LF_NONE: i32 = 0;
export const LF_ADD: i32 = 1;
export const LF_ADC: i32 = 2;
export const LF_SUB: i32 = 3;
export const LF_SBB: i32 = 4;
export const LF_LOGIC: i32 = 5;
export const LF_INC: i32 = 6; // CF preserved in eflags
export const LF_DEC: i32 = 7; // CF preserved in eflags

export let eflags: u32 = 2;
// exported (as mutable globals): compiled blocks (src/jit/) set them directly
export let lf_op: i32 = LF_NONE;
export let lf_size: i32 = 4;
export let lf_dst: u64 = 0;
export let lf_src: u64 = 0;
export let lf_res: u64 = 0;
let lf_cin: u64 = 0; // carry in for ADC / SBB

@inline export function size_mask(size: i32): u64 {
  return size == 8 ? <u64>-1 : ((<u64>1 << (<u64>size << 3)) - 1);
}
@inline export function sign_bit(size: i32): u64 {
  return <u64>1 << ((<u64>size << 3) - 1);
}

@inline export function flags_add(dst: u64, src: u64, res: u64, size: i32): void {
  lf_op = LF_ADD; lf_size = size; lf_dst = dst; lf_src = src; lf_res = res & size_mask(size);
}
@inline export function flags_adc(dst: u64, src: u64, res: u64, size: i32, cin: u64): void {
  lf_op = LF_ADC; lf_size = size; lf_dst = dst; lf_src = src; lf_res = res & size_mask(size); lf_cin = cin;
}
@inline export function flags_sub(dst: u64, src: u64, res: u64, size: i32): void {
  lf_op = LF_SUB; lf_size = size; lf_dst = dst; lf_src = src; lf_res = res & size_mask(size);
}
@inline export function flags_sbb(dst: u64, src: u64, res: u64, size: i32, cin: u64): void {
  lf_op = LF_SBB; lf_size = size; lf_dst = dst; lf_src = src; lf_res = res & size_mask(size); lf_cin = cin;
}
@inline export function flags_logic(res: u64, size: i32): void {
  lf_op = LF_LOGIC; lf_size = size; lf_res = res & size_mask(size); lf_dst = 0; lf_src = 0;
}
@inline export function flags_inc(dst: u64, res: u64, size: i32): void {
  const cf = get_cf();
  eflags = (eflags & ~CF) | (cf ? CF : 0);
  lf_op = LF_INC; lf_size = size; lf_dst = dst; lf_src = 1; lf_res = res & size_mask(size);
}
@inline export function flags_dec(dst: u64, res: u64, size: i32): void {
  const cf = get_cf();
  eflags = (eflags & ~CF) | (cf ? CF : 0);
  lf_op = LF_DEC; lf_size = size; lf_dst = dst; lf_src = 1; lf_res = res & size_mask(size);
}

@inline export function get_cf(): bool {
  switch (lf_op) {
    case LF_ADD: return lf_res < lf_dst;
    case LF_ADC: return lf_res < lf_dst || (lf_cin != 0 && lf_res == lf_dst);
    case LF_SUB: return lf_dst < lf_src;
    case LF_SBB: return lf_dst < lf_src || (lf_cin != 0 && lf_dst == lf_src);
    case LF_LOGIC: return false;
    default: return (eflags & CF) != 0;
  }
}
@inline export function get_zf(): bool {
  if (lf_op == LF_NONE) return (eflags & ZF) != 0;
  return lf_res == 0;
}
@inline export function get_sf(): bool {
  if (lf_op == LF_NONE) return (eflags & SF) != 0;
  return (lf_res & sign_bit(lf_size)) != 0;
}
export function get_pf(): bool {
  if (lf_op == LF_NONE) return (eflags & PF) != 0;
  return (popcnt<u32>(<u32>lf_res & 0xff) & 1) == 0;
}
export function get_af(): bool {
  if (lf_op == LF_NONE) return (eflags & AF) != 0;
  if (lf_op == LF_LOGIC) return false;
  return ((lf_dst ^ lf_src ^ lf_res) & 0x10) != 0;
}
@inline export function get_of(): bool {
  const sb = sign_bit(lf_size);
  switch (lf_op) {
    case LF_ADD: case LF_ADC: case LF_INC:
      return ((lf_dst ^ lf_res) & (lf_src ^ lf_res) & sb) != 0;
    case LF_SUB: case LF_SBB: case LF_DEC:
      return ((lf_dst ^ lf_src) & (lf_dst ^ lf_res) & sb) != 0;
    case LF_LOGIC: return false;
    default: return (eflags & OF) != 0;
  }
}

// The full EFLAGS value.
export function get_eflags(): u32 {
  if (lf_op == LF_NONE) return eflags;
  let f = eflags & ~ARITH_FLAGS;
  if (get_cf()) f |= CF;
  if (get_pf()) f |= PF;
  if (get_af()) f |= AF;
  if (get_zf()) f |= ZF;
  if (get_sf()) f |= SF;
  if (get_of()) f |= OF;
  return f;
}
// Replace EFLAGS wholesale (popf, iret, eager flag producers). Bit 1 is always set.
@inline export function set_eflags(v: u32): void {
  eflags = v | 2;
  lf_op = LF_NONE;
}
// Set just the status flags eagerly (shifts, mul, bit ops: their undefined
// flags follow the host CPU, which is easier to state eagerly).
// Every status bit is replaced, so the lazy state need not be materialised.
@inline export function set_arith_flags(bits: u32): void {
  eflags = (eflags & ~ARITH_FLAGS) | (bits & ARITH_FLAGS);
  lf_op = LF_NONE;
}
// Flags as a result would set them: ZF SF PF of `res` at `size`.
export function szp(res: u64, size: i32): u32 {
  const r = res & size_mask(size);
  let f: u32 = 0;
  if (r == 0) f |= ZF;
  if ((r & sign_bit(size)) != 0) f |= SF;
  if ((popcnt<u32>(<u32>r & 0xff) & 1) == 0) f |= PF;
  return f;
}

// Condition codes 0..15 as used by jcc / setcc / cmovcc.
@inline export function cond(cc: i32): bool {
  let r: bool;
  switch (cc >> 1) {
    case 0: r = get_of(); break;
    case 1: r = get_cf(); break;
    case 2: r = get_zf(); break;
    case 3: r = get_cf() || get_zf(); break;
    case 4: r = get_sf(); break;
    case 5: r = get_pf(); break;
    case 6: r = get_sf() != get_of(); break;
    default: r = get_zf() || (get_sf() != get_of()); break;
  }
  return (cc & 1) != 0 ? !r : r;
}

export function flags_sync_in(): void { set_eflags(<u32>vcpu_load64(VCPU_RFLAGS)); }
export function flags_sync_out(): void { vcpu_store64(VCPU_RFLAGS, <u64>get_eflags()); }
