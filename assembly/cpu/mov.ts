// Data movement: mov forms, lea, movzx/movsx/movsxd, xchg, cbw/cwd, cmov,
// setcc, bswap, xlat, nops.
import {
  opsize, addrsize, reg, rm, mod_, ea, ea_off, imm, rex, rex_w, rep, seg_ovr, opcode,
  read_E, write_E, read_G, write_G, linear,
} from "./decode";
import { reg_read, reg_write, reg64, set_reg64, SEG_DS, stat_inc, EXIT_BUDGET } from "./state";
import { read_sz, write_sz, probe_write, read8, set_exit_pending } from "./mem";
import { VMB, VM_PLE_WINDOW } from "../vm";
import { STAT_PAUSE_EXITS } from "../stats";
import { faulted, raise_ud } from "./fault";
import { cond, size_mask } from "./flags";
import { mode64 } from "./mode";

export function mov_EbGb(): void { write_E(1, read_G(1)); }
export function mov_EvGv(): void { write_E(opsize, read_G(opsize)); }
export function mov_GbEb(): void { const v = read_E(1); if (!faulted()) write_G(1, v); }
export function mov_GvEv(): void { const v = read_E(opsize); if (!faulted()) write_G(opsize, v); }
export function mov_EbIb(): void { if ((reg & 7) != 0) { raise_ud(); return; } write_E(1, imm); }
export function mov_EvIz(): void { if ((reg & 7) != 0) { raise_ud(); return; } write_E(opsize, imm); }
export function mov_rIb(r: i32): void { reg_write(r | ((rex & 1) << 3), 1, rex != 0, imm); }
export function mov_rIv(r: i32): void { reg_write(r | ((rex & 1) << 3), opsize, false, imm); }

@inline function moffs_lin(): u64 { return linear(seg_ovr >= 0 ? seg_ovr : SEG_DS, imm); }
export function mov_AL_moffs(): void { const v = read_sz(moffs_lin(), 1); if (!faulted()) reg_write(0, 1, false, v); }
export function mov_rAX_moffs(): void { const v = read_sz(moffs_lin(), opsize); if (!faulted()) reg_write(0, opsize, false, v); }
export function mov_moffs_AL(): void { write_sz(moffs_lin(), 1, reg_read(0, 1, false)); }
export function mov_moffs_rAX(): void { write_sz(moffs_lin(), opsize, reg_read(0, opsize, false)); }

export function lea(): void {
  if (mod_ == 3) { raise_ud(); return; }
  write_G(opsize, ea_off);
}

export function movzx_GvEb(): void { const v = read_E(1); if (!faulted()) write_G(opsize, v); }
export function movzx_GvEw(): void { const v = read_E(2); if (!faulted()) write_G(opsize, v); }
export function movsx_GvEb(): void { const v = read_E(1); if (!faulted()) write_G(opsize, <u64><i64><i8>v); }
export function movsx_GvEw(): void { const v = read_E(2); if (!faulted()) write_G(opsize, <u64><i64><i16>v); }
// 0x63: movsxd in 64-bit mode, arpl outside it
export function op_63(): void {
  if (!mode64) { raise_ud(); return; } // arpl: not provided
  const v = read_E(4);
  if (faulted()) return;
  write_G(opsize, rex_w ? <u64><i64><i32>v : v);
}

export function xchg_EbGb(): void {
  if (mod_ != 3) { probe_write(ea, 1); if (faulted()) return; }
  const a = read_E(1);
  if (faulted()) return;
  write_E(1, read_G(1));
  write_G(1, a);
}
export function xchg_EvGv(): void {
  if (mod_ != 3) { probe_write(ea, opsize); if (faulted()) return; }
  const a = read_E(opsize);
  if (faulted()) return;
  write_E(opsize, read_G(opsize));
  write_G(opsize, a);
}
export function xchg_rAX(r: i32): void {
  const rr = r | ((rex & 1) << 3);
  const a = reg_read(0, opsize, false);
  reg_write(0, opsize, false, reg_read(rr, opsize, false));
  reg_write(rr, opsize, false, a);
}
// 0x90: nop, pause (F3 90), or xchg r8, rax with REX.B
export function nop_90(): void {
  if ((rex & 1) != 0) { xchg_rAX(0); return; }
  if (rep == 0xf3) pause();
}

// PAUSE-loop exiting (VMX's PLE, KVM's kvm_vcpu_on_spin): with SMP the host
// sets VM_PLE_WINDOW; a vCPU that executes that many PAUSEs in one run()
// leaves it (EXIT_BUDGET) so a spinning vCPU yields to the one it waits for.
let pause_count: u32 = 0;
export function pause_count_reset(): void { pause_count = 0; }
function pause(): void {
  const window = load<u32>(VMB + VM_PLE_WINDOW);
  if (window == 0 || ++pause_count < window) return;
  pause_count = 0;
  stat_inc(STAT_PAUSE_EXITS);
  set_exit_pending(EXIT_BUDGET);
}
export function nop(): void {}

export function cbw(): void {
  if (opsize == 8) set_reg64(0, <u64><i64><i32>reg_read(0, 4, false));
  else if (opsize == 4) reg_write(0, 4, false, <u64><i64><i16>reg_read(0, 2, false));
  else reg_write(0, 2, false, <u64><i64><i8>reg_read(0, 1, false));
}
export function cwd(): void {
  const sign = (reg_read(0, opsize, false) >> ((<u64>opsize << 3) - 1)) & 1;
  reg_write(2, opsize, false, sign != 0 ? size_mask(opsize) : 0);
}

export function cmovcc(cc: i32): void {
  const v = read_E(opsize);
  if (faulted()) return;
  if (cond(cc)) write_G(opsize, v);
  else if (opsize == 4) write_G(4, read_G(4)); // 32-bit cmov zero-extends even when false
}
export function setcc(cc: i32): void { write_E(1, cond(cc) ? 1 : 0); }

export function bswap_r(r: i32): void {
  const rr = r | ((rex & 1) << 3);
  if (opsize == 8) set_reg64(rr, bswap<u64>(reg64(rr)));
  else if (opsize == 4) reg_write(rr, 4, false, <u64>bswap<u32>(<u32>reg64(rr)));
  else reg_write(rr, 2, false, 0); // bswap r16 is undefined; hosts clear it
}

export function xlat(): void {
  let off = reg64(3) + <u64>reg_read(0, 1, false);
  if (addrsize == 4) off &= 0xffffffff; else if (addrsize == 2) off &= 0xffff;
  const v = read8(linear(seg_ovr >= 0 ? seg_ovr : SEG_DS, off));
  if (!faulted()) reg_write(0, 1, false, <u64>v);
}
