// Shifts and rotates (group 2) and shld/shrd. Flags are set eagerly here;
// where the SDM leaves them undefined (OF for counts > 1, AF) we follow the
// host CPU recorded in test/vectors (see README "Undefined flags").
import { set_arith_flags, get_eflags, szp, size_mask, sign_bit } from "./flags";
import { CF, OF, AF, reg_read } from "./state";
import { opsize, reg, rex, mod_, ea, imm, opcode, read_E, write_E, read_G } from "./decode";
import { probe_write } from "./mem";
import { faulted } from "./fault";

const ROL = 0, ROR = 1, RCL = 2, RCR = 3, SHL = 4, SHR = 5, SAL = 6, SAR = 7;

@inline function count_of(kind: i32): u32 {
  if (kind == 0) return <u32>imm & 0xff;
  if (kind == 1) return 1;
  return <u32>reg_read(1, 1, false);
}

// Returns the result and sets flags; `count` already masked to 5/6 bits, non-zero.
export function shift(op: i32, d: u64, count: u32, size: i32): u64 {
  const bits = <u32>size << 3;
  const m = size_mask(size);
  const sb = sign_bit(size);
  const old = get_eflags();
  const cin: u64 = (old & CF) != 0 ? 1 : 0;
  let r: u64 = 0;
  let cf = false, ovf = false;
  let f: u32 = old & ~(CF | OF);
  switch (op) {
    case ROL: {
      const c = count % bits;
      r = c == 0 ? d : ((d << c) | (d >> (bits - c))) & m;
      cf = (r & 1) != 0;
      ovf = ((r & sb) != 0) != cf;
      set_arith_flags((old & ~(CF | OF)) | (cf ? CF : 0) | (ovf ? OF : 0));
      return r;
    }
    case ROR: {
      const c = count % bits;
      r = c == 0 ? d : ((d >> c) | (d << (bits - c))) & m;
      cf = (r & sb) != 0;
      ovf = ((r & sb) != 0) != ((r & (sb >> 1)) != 0);
      set_arith_flags((old & ~(CF | OF)) | (cf ? CF : 0) | (ovf ? OF : 0));
      return r;
    }
    case RCL: {
      const c = count % (bits + 1);
      r = d;
      let carry = cin;
      for (let i: u32 = 0; i < c; i++) {
        const out = (r >> (bits - 1)) & 1;
        r = ((r << 1) | carry) & m;
        carry = out;
      }
      cf = carry != 0;
      ovf = ((r & sb) != 0) != cf;
      set_arith_flags((old & ~(CF | OF)) | (cf ? CF : 0) | (ovf ? OF : 0));
      return r;
    }
    case RCR: {
      const c = count % (bits + 1);
      r = d;
      let carry = cin;
      ovf = ((r & sb) != 0) != (carry != 0); // OF from the operand before rotating (count 1)
      for (let i: u32 = 0; i < c; i++) {
        const out = r & 1;
        r = (r >> 1) | (carry << (bits - 1));
        carry = out;
      }
      cf = carry != 0;
      set_arith_flags((old & ~(CF | OF)) | (cf ? CF : 0) | (ovf ? OF : 0));
      return r;
    }
    case SHL: case SAL: {
      r = count >= 64 ? 0 : (d << count) & m;
      cf = count <= bits ? ((d >> (bits - count)) & 1) != 0 : false;
      ovf = ((r & sb) != 0) != cf;
      break;
    }
    case SHR: {
      r = count >= 64 ? 0 : d >> count;
      cf = ((d >> (count - 1)) & 1) != 0;
      ovf = (d & sb) != 0;
      break;
    }
    default: { // SAR
      const sd = (<i64>(d << (64 - bits))) >> (64 - bits);
      const c = count > 63 ? 63 : count;
      r = <u64>(sd >> c) & m;
      cf = ((<u64>(sd >> (c - 1))) & 1) != 0;
      ovf = false;
      break;
    }
  }
  f = szp(r, size) | (cf ? CF : 0) | (ovf ? OF : 0) | (old & AF);
  set_arith_flags(f);
  return r;
}

function grp2(size: i32, kind: i32): void {
  const op = reg & 7;
  const cmask: u32 = size == 8 ? 0x3f : 0x1f;
  const count = count_of(kind) & cmask;
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  if (count == 0) { if (size == 4 && mod_ == 3) write_E(4, d); return; } // 32-bit dest still zero-extends
  write_E(size, shift(op, d, count, size));
}
export function grp2_Eb(kind: i32): void { grp2(1, kind); }
export function grp2_Ev(kind: i32): void { grp2(opsize, kind); }

// shld / shrd: kind 0 = imm8, 1 = CL
function double_shift(left: bool, kind: i32): void {
  const size = opsize;
  const bits = <u32>size << 3;
  const cmask: u32 = size == 8 ? 0x3f : 0x1f;
  const count = (kind == 0 ? <u32>imm & 0xff : <u32>reg_read(1, 1, false)) & cmask;
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  if (count == 0) { if (size == 4 && mod_ == 3) write_E(4, d); return; }
  const s = read_G(size);
  const m = size_mask(size);
  const sb = sign_bit(size);
  let r: u64, cf: bool;
  if (size == 2 && count > 16) {
    // undefined result for 16-bit counts > 16: shift through the 48-bit d:s:d, as hosts do
    const wide: u64 = left ? (d << 32) | (s << 16) | d : (d << 32) | (s << 16) | d;
    if (left) { r = (wide >> (48 - count)) & m; cf = ((wide >> (48 - count + 16)) & 1) != 0; }
    else { const w2: u64 = (d << 32) | (d << 16) | s; r = ((s << 32 | d << 16 | s) >> (count - 16)) & m; cf = (((s << 32) | (d << 16) | s) >> (count - 17) & 1) != 0; }
  } else if (left) {
    r = ((d << count) | (count == bits ? s : (s >> (bits - count)))) & m;
    if (count == bits) r = s & m;
    cf = ((d >> (bits - count)) & 1) != 0;
  } else {
    r = ((d >> count) | (s << (bits - count))) & m;
    if (count == bits) r = s & m;
    cf = ((d >> (count - 1)) & 1) != 0;
  }
  const ovf = ((r ^ d) & sb) != 0;
  set_arith_flags(szp(r, size) | (cf ? CF : 0) | (ovf ? OF : 0) | (get_eflags() & AF));
  write_E(size, r);
}
export function shld(kind: i32): void { double_shift(true, kind); }
export function shrd(kind: i32): void { double_shift(false, kind); }
