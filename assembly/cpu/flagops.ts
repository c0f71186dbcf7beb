// Instructions that move flags: clc stc cmc cld std cli sti sahf lahf.
import { get_eflags, set_eflags, get_cf } from "./flags";
import { CF, DF, IF, IOPL_MASK, PF, AF, ZF, SF, reg_read, reg_write, VCPU_INTR_SHADOW, vcpu_store32 } from "./state";
import { cpl, protected_mode } from "./mode";
import { raise_gp } from "./fault";

export function clc(): void { set_eflags(get_eflags() & ~CF); }
export function stc(): void { set_eflags(get_eflags() | CF); }
export function cmc(): void { set_eflags(get_eflags() ^ CF); }
export function cld(): void { set_eflags(get_eflags() & ~DF); }
export function std(): void { set_eflags(get_eflags() | DF); }

@inline function iopl(): i32 { return <i32>((get_eflags() & IOPL_MASK) >> 12); }
export function cli(): void {
  if (protected_mode && cpl > iopl()) { raise_gp(0); return; }
  set_eflags(get_eflags() & ~IF);
}
export function sti(): void {
  if (protected_mode && cpl > iopl()) { raise_gp(0); return; }
  const f = get_eflags();
  // STI opens a one-instruction interrupt shadow when it sets IF
  if ((f & IF) == 0) vcpu_store32(VCPU_INTR_SHADOW, 1);
  set_eflags(f | IF);
}

const SAHF_MASK: u32 = SF | ZF | AF | PF | CF;
export function sahf(): void {
  const ah = <u32>(reg_read(0, 2, false) >> 8);
  set_eflags((get_eflags() & ~SAHF_MASK) | (ah & SAHF_MASK));
}
export function lahf(): void {
  const f = (get_eflags() & SAHF_MASK) | 2;
  const ax = <u32>reg_read(0, 2, false);
  reg_write(0, 2, false, <u64>((ax & 0xff) | (f << 8)));
}
