// Segment registers: descriptor fetch and checks (SDM vol. 3, 5.x), mov
// to/from Sreg, lds/les/lss/lfs/lgs, far jmp/call/ret (same privilege; far
// returns to an outer ring), all in real and protected/long mode.
import {
  seg_set, seg_selector, seg_attr, seg_base, VCPU_GDTR_BASE, VCPU_GDTR_LIMIT, vcpu_load64, vcpu_load32,
  SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_LDTR, set_rip, reg_read, reg_write,
} from "./state";
import { read_sys64, write_sys32, read_sz } from "./mem";
import { raise_gp, raise_np, raise_ss, raise_ud, faulted } from "./fault";
import { protected_mode, mode64, cpl, update_mode, long_mode } from "./mode";
import { opsize, reg, mod_, ea, imm, imm2, opcode, read_E, write_E, ea_plus, next_ip, write_G, set_next_ip } from "./decode";
import { fetch_invalidate } from "../mmu/tlb";
import { push, pop, peek, set_sp } from "./stack";
import { reg64 } from "./state";

export const ATTR_P: u32 = 1 << 7;
export const ATTR_S: u32 = 1 << 4;
export const ATTR_L: u32 = 1 << 13;
export const ATTR_DB: u32 = 1 << 14;
export const ATTR_G: u32 = 1 << 15;
export const ATTR_CODE: u32 = 1 << 3;
export const ATTR_RW: u32 = 1 << 1; // readable code / writable data
export const ATTR_CONFORMING: u32 = 1 << 2;
@inline export function attr_dpl(a: u32): i32 { return <i32>((a >> 5) & 3); }

@inline export function desc_attr(d: u64): u32 { return <u32>((d >> 40) & 0xf0ff); }
export function desc_base(d: u64): u64 { return ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24); }
export function desc_limit(d: u64): u32 {
  let l = <u32>(d & 0xffff) | (<u32>((d >> 48) & 0xf) << 16);
  if ((d & (<u64>1 << 55)) != 0) l = (l << 12) | 0xfff;
  return l;
}

// Linear address of the descriptor for `sel`, or -1 after #GP(sel).
export function desc_addr(sel: u32): i64 {
  const idx = <u64>(sel & 0xfff8);
  let base: u64, limit: u64;
  if ((sel & 4) != 0) { base = seg_base(SEG_LDTR); limit = <u64>seg_limit_ldtr(); }
  else { base = vcpu_load64(VCPU_GDTR_BASE); limit = <u64>vcpu_load32(VCPU_GDTR_LIMIT); }
  if (idx + 7 > limit) { raise_gp(sel & 0xfffc); return -1; }
  return <i64>(base + idx);
}
import { seg_limit } from "./state";
function seg_limit_ldtr(): u32 { return (seg_attr(SEG_LDTR) & ATTR_P) != 0 ? seg_limit(SEG_LDTR) : 0; }

export function read_desc(sel: u32): u64 {
  const a = desc_addr(sel);
  if (a < 0) return 0;
  return read_sys64(<u64>a);
}
// Mark a descriptor accessed (bit 40), as the CPU does on a load.
function set_accessed(sel: u32, d: u64): void {
  if ((d & (<u64>1 << 40)) != 0) return;
  const a = desc_addr(sel);
  if (a >= 0) write_sys32(<u64>a + 4, <u32>(d >> 32) | (1 << 8));
}

// Load a data segment register or SS (mov/pop/lds...). Faults as the SDM says.
export function load_seg(s: i32, sel: u32): void {
  if (!protected_mode || (vcpu_load64(VCPU_RFLAGS_OFF) & VM_FLAG) != 0) {
    seg_set(s, sel, <u64>(sel << 4), 0xffff, s == SEG_CS ? 0x9b : 0x93);
    if (s == SEG_SS || s == SEG_CS) update_mode();
    return;
  }
  const rpl = <i32>(sel & 3);
  if ((sel & 0xfffc) == 0) {
    if (s == SEG_SS && (!mode64 || cpl == 3 || rpl != cpl)) { raise_gp(0); return; }
    seg_set(s, sel, 0, 0, 0); // null: unusable (attr P = 0)
    if (s == SEG_SS) update_mode();
    return;
  }
  const d = read_desc(sel);
  if (faulted()) return;
  const a = desc_attr(d);
  const dpl = attr_dpl(a);
  if (s == SEG_SS) {
    if (rpl != cpl || dpl != cpl || (a & ATTR_S) == 0 || (a & ATTR_CODE) != 0 || (a & ATTR_RW) == 0) { raise_gp(sel & 0xfffc); return; }
    if ((a & ATTR_P) == 0) { raise_ss(sel & 0xfffc); return; }
  } else {
    if ((a & ATTR_S) == 0 || ((a & ATTR_CODE) != 0 && (a & ATTR_RW) == 0)) { raise_gp(sel & 0xfffc); return; }
    const conforming_code = (a & ATTR_CODE) != 0 && (a & ATTR_CONFORMING) != 0;
    if (!conforming_code && (rpl > dpl || cpl > dpl)) { raise_gp(sel & 0xfffc); return; }
    if ((a & ATTR_P) == 0) { raise_np(sel & 0xfffc); return; }
  }
  set_accessed(sel, d);
  if (faulted()) return;
  seg_set(s, sel, desc_base(d), desc_limit(d), a | 1);
  if (s == SEG_SS) update_mode();
}
import { VCPU_RFLAGS, VM } from "./state";
const VCPU_RFLAGS_OFF = VCPU_RFLAGS;
const VM_FLAG: u64 = <u64>VM;

// Load CS for a far jmp/call/ret to `sel` at privilege `new_cpl`; returns
// false after a fault. Only code segments (no call gates / task switches).
export function load_cs(sel: u32, new_cpl: i32, is_ret: bool): bool {
  if (!protected_mode) {
    seg_set(SEG_CS, sel, <u64>(sel << 4), 0xffff, 0x9b);
    update_mode();
    fetch_invalidate();
    return true;
  }
  if ((sel & 0xfffc) == 0) { raise_gp(0); return false; }
  const d = read_desc(sel);
  if (faulted()) return false;
  const a = desc_attr(d);
  if ((a & ATTR_S) == 0 || (a & ATTR_CODE) == 0) { raise_gp(sel & 0xfffc); return false; } // gates: not supported
  const dpl = attr_dpl(a);
  const rpl = <i32>(sel & 3);
  if ((a & ATTR_CONFORMING) != 0) { if (dpl > new_cpl) { raise_gp(sel & 0xfffc); return false; } }
  else if (is_ret ? dpl != rpl : (dpl != cpl || rpl > cpl)) { raise_gp(sel & 0xfffc); return false; }
  if ((a & ATTR_P) == 0) { raise_np(sel & 0xfffc); return false; }
  if (long_mode && (a & ATTR_L) != 0 && (a & ATTR_DB) != 0) { raise_gp(sel & 0xfffc); return false; }
  set_accessed(sel, d);
  if (faulted()) return false;
  seg_set(SEG_CS, (sel & 0xfffc) | <u32>new_cpl, desc_base(d), desc_limit(d), a | 1);
  update_mode();
  fetch_invalidate();
  return true;
}

export function mov_SwEw(): void {
  const s = reg & 7;
  if (s == SEG_CS || s > SEG_GS) { raise_ud(); return; }
  const v = read_E(2);
  if (faulted()) return;
  load_seg(s, <u32>v & 0xffff);
}
export function mov_EwSw(): void {
  const s = reg & 7;
  if (s > SEG_GS) { raise_ud(); return; }
  const v = <u64>seg_selector(s);
  if (mod_ == 3) write_E(opsize, v); else write_E(2, v);
}

// lss/lfs/lgs (0F B2/B4/B5) and les/lds (C4/C5): load a far pointer m16:16/32/64
export function lfp(s: i32): void {
  if (mod_ == 3) { raise_ud(); return; }
  const off = read_sz(ea, opsize);
  if (faulted()) return;
  const sel = <u32>read_sz(ea_plus(<u64>opsize), 2);
  if (faulted()) return;
  load_seg(s, sel);
  if (faulted()) return;
  write_G(opsize, off);
}
export function les_lds(s: i32): void { lfp(s); }

// far jmp / call with an immediate pointer (not in 64-bit mode)
export function jmp_far_ptr(): void { far_jump(<u32>imm2, imm); }
export function call_far_ptr(): void { far_call(<u32>imm2, imm); }

export function far_jump(sel: u32, off: u64): void {
  if (!load_cs(sel, cpl, false)) return;
  set_next_ip(off);
}
export function far_call(sel: u32, off: u64): void {
  const old_cs = <u64>seg_selector(SEG_CS);
  const ret = next_ip;
  const sp = reg64(4);
  push(old_cs, opsize);
  if (faulted()) return;
  push(ret, opsize);
  if (faulted()) { set_sp(sp); return; }
  if (!load_cs(sel, cpl, false)) { set_sp(sp); return; }
  set_next_ip(off);
}
// retf [imm16]: same privilege, or to an outer ring (pops SS:RSP too)
export function ret_far(): void {
  const size = opsize;
  const off = peek(0, size);
  if (faulted()) return;
  const sel = <u32>peek(<u64>size, size) & 0xffff;
  if (faulted()) return;
  const rpl = <i32>(sel & 3);
  if (protected_mode && rpl < cpl) { raise_gp(sel & 0xfffc); return; }
  const extra: u64 = opcode == 0xca ? imm & 0xffff : 0;
  if (protected_mode && rpl > cpl) {
    const new_sp = peek(<u64>(2 * size) + extra, size);
    if (faulted()) return;
    const new_ss = <u32>peek(<u64>(3 * size) + extra, size) & 0xffff;
    if (faulted()) return;
    if (!load_cs(sel, rpl, true)) return;
    load_seg(SEG_SS, new_ss);
    if (faulted()) return;
    set_sp(new_sp + extra);
    for (let s = SEG_ES; s <= SEG_GS; s++) {
      if (s == SEG_CS || s == SEG_SS) continue;
      const a = seg_attr(s);
      // data segments the outer ring may not use become null (SDM RET)
      if ((a & ATTR_CODE) == 0 || (a & ATTR_CONFORMING) == 0) { if (attr_dpl(a) < rpl) seg_set(s, 0, 0, 0, 0); }
    }
  } else {
    if (!load_cs(sel, cpl, true)) return;
    set_sp(reg64(4) + <u64>(2 * size) + extra);
  }
  set_next_ip(off);
}
