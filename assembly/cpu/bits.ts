// Bit operations: bt/bts/btr/btc (register and memory bit strings, imm
// group 8), bsf/bsr, tzcnt/lzcnt/popcnt (F3 forms), cmpxchg/xadd/cmpxchg8b/16b.
import { set_arith_flags, get_eflags, szp, size_mask, sign_bit, flags_add, get_zf } from "./flags";
import { CF, ZF, OF, SF, AF, PF, reg_read, reg_write, reg64, set_reg64 } from "./state";
import { opsize, reg, rex, mod_, ea, imm, rep, lock, read_E, write_E, read_G, write_G, ea_plus, addrsize } from "./decode";
import { read_sz, write_sz, probe_write } from "./mem";
import { faulted, raise_ud } from "./fault";
import { alu, ALU_CMP } from "./alu";

// op: 0 bt, 1 bts, 2 btr, 3 btc
function bit_op(op: i32, offset: u64, reg_form: bool): void {
  const size = opsize;
  const bits = <u64>size << 3;
  let lin: u64 = 0;
  let bit: u64;
  let v: u64;
  if (mod_ == 3) {
    bit = offset & (bits - 1);
    v = read_E(size);
  } else {
    if (reg_form) {
      // memory bit string: signed offset selects the operand-sized unit
      const so = <i64>((offset << (64 - bits)) ) >> (64 - <i64>bits);
      const unit = so >> (bits == 64 ? 6 : bits == 32 ? 5 : 4);
      lin = ea_plus(<u64>(unit * <i64>size));
      bit = <u64>so & (bits - 1);
    } else {
      lin = ea;
      bit = offset & (bits - 1);
    }
    if (op != 0) { probe_write(lin, size); if (faulted()) return; }
    v = read_sz(lin, size);
    if (faulted()) return;
  }
  const mask: u64 = <u64>1 << bit;
  const cf = (v & mask) != 0;
  // CF is the bit; OF SF AF PF are undefined (host: unchanged); ZF unchanged
  set_arith_flags((get_eflags() & ~CF) | (cf ? CF : 0));
  if (op == 0) return;
  let r = v;
  if (op == 1) r |= mask; else if (op == 2) r &= ~mask; else r ^= mask;
  if (mod_ == 3) write_E(size, r); else write_sz(lin, size, r);
}
export function bt_EvGv(op: i32): void { bit_op(op, read_G(opsize), true); }
export function grp8(): void {
  const sub = reg & 7;
  if (sub < 4) { raise_ud(); return; }
  bit_op(sub - 4, imm & 0xff, false);
}

// bsf/bsr/tzcnt/lzcnt/popcnt: the flags the SDM leaves undefined follow the
// host CPU ("Host behaviour for undefined results" in test/vectors/README.md).
// bsf/bsr: a zero source leaves the destination alone (all 64 bits, no
// zero-extension) with ZF=PF=1; otherwise ZF=0 and PF = parity of the result;
// CF OF SF AF = 0 in both cases.
function bit_scan_flags(v: u64, r: u64): void {
  if (v == 0) set_arith_flags(ZF | PF);
  else set_arith_flags(szp(r, 1) & PF);
}
// tzcnt/lzcnt: CF = source is zero, ZF = result is zero, PF SF AF OF = 0.
function count_flags(zero_src: bool, r: u64): void {
  set_arith_flags((zero_src ? CF : 0) | (r == 0 ? ZF : 0));
}

export function bsf_GvEv(): void {
  const size = opsize;
  const v = read_E(size);
  if (faulted()) return;
  if (rep == 0xf3) { // tzcnt
    const r: u64 = v == 0 ? <u64>(size << 3) : ctz<u64>(v);
    count_flags(v == 0, r);
    write_G(size, r);
    return;
  }
  const r = ctz<u64>(v);
  bit_scan_flags(v, r);
  if (v != 0) write_G(size, r);
}
export function bsr_GvEv(): void {
  const size = opsize;
  const v = read_E(size);
  if (faulted()) return;
  const bits = <u64>(size << 3);
  if (rep == 0xf3) { // lzcnt
    const r: u64 = v == 0 ? bits : clz<u64>(v) - (64 - bits);
    count_flags(v == 0, r);
    write_G(size, r);
    return;
  }
  const r = 63 - clz<u64>(v);
  bit_scan_flags(v, r);
  if (v != 0) write_G(size, r);
}
// popcnt: ZF = source is zero, the other five status flags 0.
export function popcnt_GvEv(): void {
  if (rep != 0xf3) { raise_ud(); return; }
  const v = read_E(opsize);
  if (faulted()) return;
  set_arith_flags(v == 0 ? ZF : 0);
  write_G(opsize, popcnt<u64>(v));
}

// cmpxchg: compare rAX with r/m; equal -> r/m = reg, else rAX = r/m.
// A memory destination is always written (the SDM: "the processor never
// produces a locked read without also producing a locked write"); a
// register destination is left alone on failure, so a 32-bit one is not
// zero-extended then (host behaviour, test/vectors/README.md).
function cmpxchg(size: i32): void {
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  const a = reg_read(0, size, false);
  alu(ALU_CMP, a, d, size);
  if (a == d) write_E(size, read_G(size));
  else {
    // (with LOCK the write-back of the unchanged value is skipped: under SMP
    // it could undo another vCPU's plain store, e.g. a spin_unlock, made
    // between the read and the write; probe_write above did the write's checks)
    if (mod_ != 3 && !lock) write_E(size, d);
    reg_write(0, size, false, d);
  }
}
export function cmpxchg_EbGb(): void { cmpxchg(1); }
export function cmpxchg_EvGv(): void { cmpxchg(opsize); }

function xadd(size: i32): void {
  if (mod_ != 3) { probe_write(ea, size); if (faulted()) return; }
  const d = read_E(size);
  if (faulted()) return;
  const s = read_G(size);
  const r = (d + s) & size_mask(size);
  flags_add(d, s, r, size);
  write_G(size, d);
  write_E(size, r);
}
export function xadd_EbGb(): void { xadd(1); }
export function xadd_EvGv(): void { xadd(opsize); }

// group 9: /1 cmpxchg8b / cmpxchg16b (rdrand/rdseed are not advertised)
export function grp9(): void {
  if ((reg & 7) != 1 || mod_ == 3) { raise_ud(); return; }
  const wide = opsize == 8;
  const n = wide ? 16 : 8;
  probe_write(ea, n);
  if (faulted()) return;
  if (wide) {
    if ((ea & 15) != 0) { raise_gp16(); return; }
    const lo = read_sz(ea, 8); if (faulted()) return;
    const hi = read_sz(ea + 8, 8); if (faulted()) return;
    if (lo == reg64(0) && hi == reg64(2)) {
      write_sz(ea, 8, reg64(3)); write_sz(ea + 8, 8, reg64(1));
      set_arith_flags(get_eflags() | ZF);
    } else {
      write_sz(ea, 8, lo); write_sz(ea + 8, 8, hi);
      set_reg64(0, lo); set_reg64(2, hi);
      set_arith_flags(get_eflags() & ~ZF);
    }
  } else {
    const v = read_sz(ea, 8); if (faulted()) return;
    const cmp = (reg64(0) & 0xffffffff) | ((reg64(2) & 0xffffffff) << 32);
    if (v == cmp) {
      write_sz(ea, 8, (reg64(3) & 0xffffffff) | ((reg64(1) & 0xffffffff) << 32));
      set_arith_flags(get_eflags() | ZF);
    } else {
      write_sz(ea, 8, v);
      reg_write(0, 4, false, v & 0xffffffff); reg_write(2, 4, false, v >> 32);
      set_arith_flags(get_eflags() & ~ZF);
    }
  }
}
import { raise_gp } from "./fault";
function raise_gp16(): void { raise_gp(0); }
