// Shifts and rotates (group 2) and shld/shrd. Flags are set eagerly here.
// Where the SDM leaves flags or results undefined (OF for counts > 1, AF,
// 8/16-bit counts >= the operand size, 16-bit shld/shrd counts > 16) we
// follow the host CPU the vectors were recorded on: see "Host behaviour for
// undefined results" in test/vectors/README.md, the one place that states it.
import { set_arith_flags, get_eflags, szp, size_mask, sign_bit } from "./flags";
import { CF, OF, PF, AF, ZF, SF, reg_read } from "./state";
import { opsize, reg, mod_, ea, imm, read_E, write_E, read_G } from "./decode";
import { probe_write } from "./mem";
import { faulted } from "./fault";

const ROL = 0, ROR = 1, RCL = 2, RCR = 3, SHL = 4, SHR = 5, SAR = 7; // 6 = SAL (= SHL)
const SZAP: u32 = SF | ZF | AF | PF;

@inline function count_of(kind: i32): u32 {
  if (kind == 0) return <u32>imm & 0xff;
  if (kind == 1) return 1;
  return <u32>reg_read(1, 1, false);
}

// d OP count at `size` bytes (rotates here, shifts in shift_arith); sets the
// flags and returns the result. `count` is already masked to 5/6 bits and
// non-zero. `keep_of`: leave OF alone for a count > 1 (what the host does for
// rol/ror r, imm8).
export function shift(op: i32, d: u64, count: u32, size: i32, keep_of: bool): u64 {
  if (op > RCR) return shift_arith(op, d, count, size);
  const bits = <u32>size << 3;
  const m = size_mask(size);
  const sb = sign_bit(size);
  const msb = (d & sb) != 0;
  const msb1 = (d & (sb >> 1)) != 0;
  let r: u64;
  let cf: bool;
  let ovf: bool; // OF as a 1-bit shift of the original operand gives it
  const old = get_eflags(); // rotates keep SF ZF AF PF (and RCL/RCR read CF)
  if (op == ROL) {
    const c = count % bits;
    r = c == 0 ? d : ((d << c) | (d >> (bits - c))) & m;
    cf = (r & 1) != 0;
    ovf = msb != msb1;
  } else if (op == ROR) {
    const c = count % bits;
    r = c == 0 ? d : ((d >> c) | (d << (bits - c))) & m;
    cf = (r & sb) != 0;
    ovf = msb != ((d & 1) != 0);
  } else {
    const c = count % (bits + 1);
    if (c == 0) return d; // rcl/rcr 8/16 by a multiple of 9/17: nothing changes
    const cin: u64 = (old & CF) != 0 ? 1 : 0;
    // rotate the (bits+1)-bit value CF:d; c <= 32 when bits < 64
    if (op == RCL) {
      if (bits == 64) {
        r = c == 1 ? (d << 1) | cin : (d << c) | (cin << (c - 1)) | (d >> (65 - c));
        cf = ((d >> (64 - c)) & 1) != 0;
      } else {
        const w = (cin << bits) | d; // bits+1 wide
        const rot = ((w << c) | (w >> (bits + 1 - c))) & ((m << 1) | 1);
        r = rot & m;
        cf = ((rot >> bits) & 1) != 0;
      }
      ovf = msb != msb1;
    } else {
      if (bits == 64) {
        r = c == 1 ? (d >> 1) | (cin << 63) : (d >> c) | (cin << (64 - c)) | (d << (65 - c));
        cf = ((d >> (c - 1)) & 1) != 0;
      } else {
        const w = (cin << bits) | d;
        const rot = ((w >> c) | (w << (bits + 1 - c))) & ((m << 1) | 1);
        r = rot & m;
        cf = ((rot >> bits) & 1) != 0;
      }
      ovf = msb != (cin != 0);
    }
  }
  if (keep_of && count > 1) ovf = (old & OF) != 0;
  // rotates leave SF ZF AF PF alone
  set_arith_flags((old & SZAP) | (cf ? CF : 0) | (ovf ? OF : 0));
  return r;
}

// SHL/SAL, SHR, SAR (op 4, 6, 5, 7) of `d` by `count` (masked, non-zero):
// flags set eagerly. Inlined into the block cache's shift uops.
@inline export function shift_arith(op: i32, d: u64, count: u32, size: i32): u64 {
  const bits = <u32>size << 3;
  const m = size_mask(size);
  const msb = (d & sign_bit(size)) != 0;
  let r: u64, cf: bool, ovf: bool; // OF as a 1-bit shift of the original operand gives it
  switch (op) {
    case SHR: {
      r = d >> count;
      cf = ((d >> (count - 1)) & 1) != 0; // 0 once count - 1 >= bits (d is masked)
      ovf = msb;
      break;
    }
    case SAR: {
      const sd = (<i64>(d << (64 - bits))) >> (64 - bits);
      const c = count > 63 ? 63 : count;
      r = <u64>(sd >> c) & m;
      cf = ((<u64>(sd >> (c - 1))) & 1) != 0;
      ovf = false;
      break;
    }
    default: { // SHL, SAL
      r = (d << count) & m;
      cf = count <= bits ? ((d >> (bits - count)) & 1) != 0 : false;
      ovf = msb != ((d & (sign_bit(size) >> 1)) != 0);
      break;
    }
  }
  // shifts: AF = 0
  set_arith_flags(szp(r, size) | (cf ? CF : 0) | (ovf ? OF : 0));
  return r;
}

// kind: 0 = imm8 (C0/C1), 1 = by one (D0/D1), 2 = by CL (D2/D3)
function grp2(size: i32, kind: i32): void {
  const op = reg & 7;
  const cmask: u32 = size == 8 ? 0x3f : 0x1f;
  const count = count_of(kind) & cmask;
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  if (count == 0) { if (size == 4 && mod_ == 3) write_E(4, d); return; } // 32-bit dest still zero-extends
  // the host keeps OF on rol/ror of a register by an immediate > 1 (but not by CL, nor in memory)
  const keep_of = kind == 0 && mod_ == 3 && op <= ROR;
  write_E(size, shift(op, d, count, size, keep_of));
}
export function grp2_Eb(kind: i32): void { grp2(1, kind); }
export function grp2_Ev(kind: i32): void { grp2(opsize, kind); }

// shld / shrd: kind 0 = imm8, 1 = CL
function double_shift(left: bool, kind: i32): void {
  const size = opsize;
  const cmask: u32 = size == 8 ? 0x3f : 0x1f;
  const c = (kind == 0 ? <u32>imm & 0xff : <u32>reg_read(1, 1, false)) & cmask;
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  if (c == 0) { if (size == 4 && mod_ == 3) write_E(4, d); return; }
  const s = read_G(size);
  const m = size_mask(size);
  let r: u64, cf: bool;
  if (size == 2) {
    // 48-bit model X = d:s:d (exact for c <= 16, the host's result for 17..31)
    const x = (d << 32) | (s << 16) | d;
    if (left) { r = (x >> (32 - c)) & m; cf = ((x >> (48 - c)) & 1) != 0; }
    else { r = (x >> c) & m; cf = ((x >> (c - 1)) & 1) != 0; }
  } else if (size == 4) {
    if (left) { const x = (d << 32) | s; r = (x >> (32 - c)) & m; cf = ((x >> (64 - c)) & 1) != 0; }
    else { const x = (s << 32) | d; r = (x >> c) & m; cf = ((x >> (c - 1)) & 1) != 0; }
  } else {
    if (left) { r = (d << c) | (s >> (64 - c)); cf = ((d >> (64 - c)) & 1) != 0; }
    else { r = (d >> c) | (s << (64 - c)); cf = ((d >> (c - 1)) & 1) != 0; }
  }
  // OF as for a 1-bit shift of the original operands, AF = 0
  const sb = sign_bit(size);
  const msb = (d & sb) != 0;
  const ovf = left ? msb != ((d & (sb >> 1)) != 0) : msb != ((s & 1) != 0);
  set_arith_flags(szp(r, size) | (cf ? CF : 0) | (ovf ? OF : 0));
  write_E(size, r);
}
export function shld(kind: i32): void { double_shift(true, kind); }
export function shrd(kind: i32): void { double_shift(false, kind); }
