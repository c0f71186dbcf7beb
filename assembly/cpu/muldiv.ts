// mul / imul / div / idiv in all sizes. 64-bit forms need the 128-bit
// product / dividend, built from 32-bit halves.
import { set_arith_flags, szp, size_mask, sign_bit } from "./flags";
import { CF, OF, ZF, reg64, set_reg64, reg_read, reg_write } from "./state";
import { opsize, imm, read_E, write_G } from "./decode";
import { raise_de, faulted } from "./fault";

// High 64 bits of the unsigned 128-bit product a * b.
export function mulhi_u64(a: u64, b: u64): u64 {
  const a0 = a & 0xffffffff, a1 = a >> 32, b0 = b & 0xffffffff, b1 = b >> 32;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const mid = (p00 >> 32) + (p01 & 0xffffffff) + (p10 & 0xffffffff);
  return p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
export function mulhi_s64(a: u64, b: u64): u64 {
  let h = mulhi_u64(a, b);
  if (<i64>a < 0) h -= b;
  if (<i64>b < 0) h -= a;
  return h;
}

// Undefined flags of mul/imul (SF ZF AF PF) follow the host CPU (see "Host
// behaviour for undefined results" in test/vectors/README.md): SF and PF
// from the low half of the result, ZF and AF clear.
function mul_flags(lo: u64, size: i32, overflow: bool): void {
  set_arith_flags((szp(lo, size) & ~ZF) | (overflow ? CF | OF : 0));
}

export function mul(src: u64, size: i32): void {
  const a = reg_read(0, size, false);
  if (size == 1) {
    const r = a * src;
    reg_write(0, 2, false, r);
    mul_flags(r, 1, (r >> 8) != 0);
  } else if (size == 8) {
    const lo = a * src, hi = mulhi_u64(a, src);
    set_reg64(0, lo); set_reg64(2, hi);
    mul_flags(lo, 8, hi != 0);
  } else {
    const r = a * src;
    const bits = <u64>size << 3;
    const lo = r & size_mask(size), hi = r >> bits;
    reg_write(0, size, false, lo); reg_write(2, size, false, hi);
    mul_flags(lo, size, hi != 0);
  }
}

@inline function sext(v: u64, size: i32): i64 {
  const sh = 64 - (<u64>size << 3);
  return (<i64>(v << sh)) >> sh;
}

export function imul1(src: u64, size: i32): void {
  const a = sext(reg_read(0, size, false), size);
  const b = sext(src, size);
  if (size == 8) {
    const lo = <u64>a * <u64>b, hi = mulhi_s64(<u64>a, <u64>b);
    set_reg64(0, lo); set_reg64(2, hi);
    mul_flags(lo, 8, hi != <u64>(<i64>lo >> 63));
    return;
  }
  const r = a * b;
  const m = size_mask(size);
  const overflow = sext(<u64>r & m, size) != r;
  if (size == 1) reg_write(0, 2, false, <u64>r);
  else { reg_write(0, size, false, <u64>r & m); reg_write(2, size, false, (<u64>r >> (<u64>size << 3)) & m); }
  mul_flags(<u64>r, size, overflow);
}

// imul r, r/m (, imm): truncated product, CF=OF when it does not fit.
@inline export function imul2(a: u64, b: u64, size: i32): u64 {
  const x = sext(a, size), y = sext(b, size);
  const lo = <u64>x * <u64>y;
  let overflow: bool;
  if (size == 8) overflow = mulhi_s64(<u64>x, <u64>y) != <u64>(<i64>lo >> 63);
  else overflow = sext(lo & size_mask(size), size) != <i64>lo;
  mul_flags(lo, size, overflow);
  return lo & size_mask(size);
}
export function imul_GvEv(): void {
  const b = read_E(opsize);
  if (faulted()) return;
  write_G(opsize, imul2(reg_read_G(), b, opsize));
}
export function imul_GvEvI(): void {
  const a = read_E(opsize);
  if (faulted()) return;
  write_G(opsize, imul2(a, imm, opsize));
}
import { reg, rex } from "./decode";
@inline function reg_read_G(): u64 { return reg_read(reg, opsize, rex != 0); }

// div / idiv leave all six status flags unchanged (host behaviour, see above).
export function div(src: u64, size: i32): void {
  if (src == 0) { raise_de(); return; }
  if (size == 8) {
    const hi = reg64(2), lo = reg64(0);
    if (hi >= src) { raise_de(); return; }
    if (hi == 0) { set_reg64(0, lo / src); set_reg64(2, lo % src); return; } // a 64-bit dividend: native
    // 128 / 64 restoring division; hi < src guarantees a 64-bit quotient
    let r = hi, q = lo;
    for (let i = 0; i < 64; i++) {
      const top = r >> 63;
      r = (r << 1) | (q >> 63);
      q <<= 1;
      if (top != 0 || r >= src) { r -= src; q |= 1; }
    }
    set_reg64(0, q); set_reg64(2, r);
    return;
  }
  let n: u64;
  if (size == 1) n = reg_read(0, 2, false);
  else n = (reg_read(2, size, false) << (<u64>size << 3)) | reg_read(0, size, false);
  const q = n / src, r = n % src;
  if (q > size_mask(size)) { raise_de(); return; }
  if (size == 1) reg_write(0, 2, false, (r << 8) | q);
  else { reg_write(0, size, false, q); reg_write(2, size, false, r); }
}

export function idiv(src: u64, size: i32): void {
  if ((src & size_mask(size)) == 0) { raise_de(); return; }
  const d = sext(src, size);
  if (size == 8) {
    const hi = reg64(2), lo = reg64(0);
    if (hi == <u64>(<i64>lo >> 63) && !(lo == <u64>i64.MIN_VALUE && d == -1)) {
      // a sign-extended 64-bit dividend (cqo): native, the quotient fits
      set_reg64(0, <u64>(<i64>lo / d)); set_reg64(2, <u64>(<i64>lo % d));
      return;
    }
    const neg_n = <i64>hi < 0;
    // |dividend| as 128-bit (hi:lo)
    let ah = hi, al = lo;
    if (neg_n) { al = ~lo + 1; ah = ~hi + (al == 0 ? 1 : 0); }
    const ad: u64 = d < 0 ? <u64>(-d) : <u64>d;
    if (ah >= ad) { raise_de(); return; }
    let r = ah, q = al;
    for (let i = 0; i < 64; i++) {
      const top = r >> 63;
      r = (r << 1) | (q >> 63);
      q <<= 1;
      if (top != 0 || r >= ad) { r -= ad; q |= 1; }
    }
    const neg_q = neg_n != (d < 0);
    if (neg_q) { if (q > (<u64>1 << 63)) { raise_de(); return; } q = 0 - q; }
    else if (q >= (<u64>1 << 63)) { raise_de(); return; }
    if (neg_n) r = 0 - r;
    set_reg64(0, q); set_reg64(2, r);
    return;
  }
  let n: i64;
  if (size == 1) n = sext(reg_read(0, 2, false), 2);
  else n = sext((reg_read(2, size, false) << (<u64>size << 3)) | reg_read(0, size, false), size * 2);
  if (n == i64.MIN_VALUE && d == -1) { raise_de(); return; } // would trap in WASM
  const q = n / d, r = n % d;
  const lim = <i64>sign_bit(size);
  if (q >= lim || q < -lim) { raise_de(); return; }
  const m = size_mask(size);
  if (size == 1) reg_write(0, 2, false, ((<u64>r & 0xff) << 8) | (<u64>q & 0xff));
  else { reg_write(0, size, false, <u64>q & m); reg_write(2, size, false, <u64>r & m); }
}
