// BCD adjustments: daa das aaa aas aam aad. Invalid in 64-bit mode (the
// opcode table marks them inv64), so the host-CPU vectors cannot cover them;
// the flags the SDM leaves undefined follow Bochs' choices (see
// "BCD" under "Host behaviour for undefined results" in test/vectors/README.md).
import { get_eflags, set_arith_flags, szp } from "./flags";
import { CF, AF, SF, reg_read, reg_write } from "./state";
import { imm } from "./decode";
import { raise_de } from "./fault";

@inline function al(): u32 { return <u32>reg_read(0, 1, false); }
@inline function ah(): u32 { return <u32>(reg_read(0, 2, false) >> 8); }
@inline function set_al(v: u32): void { reg_write(0, 1, false, <u64>(v & 0xff)); }
@inline function set_ax(v: u32): void { reg_write(0, 2, false, <u64>(v & 0xffff)); }

// daa / das: SF ZF PF from AL, OF = 0.
export function daa(): void {
  const f = get_eflags();
  const old = al();
  let a = old;
  let cf = false, af = false;
  if ((a & 0xf) > 9 || (f & AF) != 0) {
    a += 6;
    cf = (f & CF) != 0 || a > 0xff;
    af = true;
  }
  if (old > 0x99 || (f & CF) != 0) { a += 0x60; cf = true; }
  set_al(a);
  set_arith_flags(szp(<u64>a, 1) | (cf ? CF : 0) | (af ? AF : 0));
}
export function das(): void {
  const f = get_eflags();
  const old = al();
  let a = old;
  let cf = false, af = false;
  if ((a & 0xf) > 9 || (f & AF) != 0) {
    cf = (f & CF) != 0 || a < 6;
    a -= 6;
    af = true;
  }
  if (old > 0x99 || (f & CF) != 0) { a -= 0x60; cf = true; }
  set_al(a);
  set_arith_flags(szp(<u64>a, 1) | (cf ? CF : 0) | (af ? AF : 0));
}

// aaa / aas: AX +/- 0x106 when adjusting; AL keeps its low nibble. CF = AF =
// adjusted; SF OF = 0, ZF PF from AL.
export function aaa(): void {
  const adjust = (al() & 0xf) > 9 || (get_eflags() & AF) != 0;
  let ax = <u32>reg_read(0, 2, false);
  if (adjust) ax += 0x106;
  ax = (ax & 0xff00) | (ax & 0x0f);
  set_ax(ax);
  set_arith_flags((szp(<u64>ax, 1) & ~SF) | (adjust ? CF | AF : 0));
}
export function aas(): void {
  const adjust = (al() & 0xf) > 9 || (get_eflags() & AF) != 0;
  let ax = <u32>reg_read(0, 2, false);
  if (adjust) { ax -= 6; ax = (ax & 0xff) | ((ax - 0x100) & 0xff00); }
  ax = (ax & 0xff00) | (ax & 0x0f);
  set_ax(ax);
  set_arith_flags((szp(<u64>ax, 1) & ~SF) | (adjust ? CF | AF : 0));
}

// aam imm8: AH = AL / imm8, AL = AL % imm8 (#DE if imm8 = 0).
// aad imm8: AL = AL + AH * imm8, AH = 0. Both: SF ZF PF from AL, OF AF CF = 0.
export function aam(): void {
  const base = <u32>imm & 0xff;
  if (base == 0) { raise_de(); return; }
  const a = al();
  const ax = ((a / base) << 8) | (a % base);
  set_ax(ax);
  set_arith_flags(szp(<u64>ax, 1));
}
export function aad(): void {
  const base = <u32>imm & 0xff;
  const a = (al() + ah() * base) & 0xff;
  set_ax(a);
  set_arith_flags(szp(<u64>a, 1));
}
