// Segment registers (SDM vol. 3, ch. 5): descriptor fetch and checks, MOV
// to/from Sreg, POP Sreg, LDS/LES/LSS/LFS/LGS, far JMP/CALL (code segments
// and call gates, with the stack switch of a call to an inner ring) and far
// RET (same ring or to an outer ring), in real and protected/long mode.
//
// Every transfer validates all it needs (descriptors, stack pushes) before it
// commits a register, so a fault leaves the architectural state untouched.
import {
  seg_set, seg_selector, seg_attr, seg_base, seg_limit, seg_addr, VCPU_GDTR_BASE, VCPU_GDTR_LIMIT, vcpu_load64,
  vcpu_load32, vcpu_store32, SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR, SEG_SELECTOR,
  SEG_BASE, VCPU_INTR_SHADOW, VM, reg64, set_reg64,
} from "./state";
import { read_sys64, read_sys32, read_sys16, write_sys32, write_sz, read_sz, lin_mask, mem_set_mode, set_stack_ref } from "./mem";
import { raise, raise_gp, raise_np, raise_ss, raise_ts, raise_ud, raise_unimplemented, faulted, GP, TS } from "./fault";
import { protected_mode, mode64, cpl, update_mode, long_mode } from "./mode";
import { opsize, reg, mod_, ea, imm, imm2, opcode, read_E, write_E, ea_plus, next_ip, write_G, set_next_ip } from "./decode";
import { fetch_invalidate, tlb_set_cpl } from "../mmu/tlb";
import { peek, set_sp } from "./stack";
import { get_eflags } from "./flags";

export const ATTR_P: u32 = 1 << 7;
export const ATTR_S: u32 = 1 << 4;
export const ATTR_L: u32 = 1 << 13;
export const ATTR_DB: u32 = 1 << 14;
export const ATTR_G: u32 = 1 << 15;
export const ATTR_CODE: u32 = 1 << 3;
export const ATTR_RW: u32 = 1 << 1; // readable code / writable data
export const ATTR_CONFORMING: u32 = 1 << 2;
export const ATTR_ACCESSED: u32 = 1 << 0;
@inline export function attr_dpl(a: u32): i32 { return <i32>((a >> 5) & 3); }

// System descriptor types (S = 0)
export const TYPE_TSS16_AVAIL: u32 = 1;
export const TYPE_LDT: u32 = 2;
export const TYPE_TSS16_BUSY: u32 = 3;
export const TYPE_CALL_GATE16: u32 = 4;
export const TYPE_TASK_GATE: u32 = 5;
export const TYPE_TSS_AVAIL: u32 = 9; // 32-bit, or 64-bit in IA-32e mode
export const TYPE_TSS_BUSY: u32 = 11;
export const TYPE_CALL_GATE: u32 = 12; // 32-bit, or 64-bit in IA-32e mode

@inline export function desc_attr(d: u64): u32 { return <u32>((d >> 40) & 0xf0ff); }
export function desc_base(d: u64): u64 { return ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24); }
export function desc_limit(d: u64): u32 {
  let l = <u32>(d & 0xffff) | (<u32>((d >> 48) & 0xf) << 16);
  if ((d & (<u64>1 << 55)) != 0) l = (l << 12) | 0xfff;
  return l;
}
@inline export function is_canonical(v: u64): bool { return <u64>((<i64>(v << 16) >> 16)) == v; }
@inline function is_data_writable(a: u32): bool { return (a & ATTR_S) != 0 && (a & ATTR_CODE) == 0 && (a & ATTR_RW) != 0; }

// Linear address of the descriptor for `sel` (8 bytes, or `len` bytes for
// a 16-byte system descriptor), or -1 when it lies beyond its table's limit
// (an unusable LDTR has none). Raises nothing.
export function desc_lin(sel: u32, len: u64): i64 {
  const idx = <u64>(sel & 0xfff8);
  let base: u64, limit: u64;
  if ((sel & 4) != 0) {
    if ((seg_attr(SEG_LDTR) & ATTR_P) == 0) return -1;
    base = seg_base(SEG_LDTR); limit = <u64>seg_limit(SEG_LDTR);
  } else {
    base = vcpu_load64(VCPU_GDTR_BASE); limit = <u64>vcpu_load32(VCPU_GDTR_LIMIT);
  }
  if (idx + len - 1 > limit) return -1;
  return <i64>(base + idx);
}
// The same, raising #GP(selector) when out of limits.
export function desc_addr(sel: u32): i64 {
  const a = desc_lin(sel, 8);
  if (a < 0) raise_gp(sel & 0xfffc);
  return a;
}
// Read the descriptor for `sel`; out of limits raises `vec` with the
// selector's error code plus `ext` (the EXT bit during event delivery).
export function read_desc_vec(sel: u32, vec: i32, ext: u32): u64 {
  const a = desc_lin(sel, 8);
  if (a < 0) { raise(vec, (sel & 0xfffc) | ext, true); return 0; }
  return read_sys64(<u64>a);
}
@inline export function read_desc(sel: u32): u64 { return read_desc_vec(sel, GP, 0); }

// Mark a descriptor accessed (bit 40), as the CPU does when it loads one.
function set_accessed(sel: u32, d: u64): void {
  if ((d & (<u64>1 << 40)) != 0) return;
  const a = desc_lin(sel, 8);
  if (a >= 0) write_sys32(<u64>a + 4, <u32>(d >> 32) | (1 << 8));
}

// ---- data segments and SS

@inline function v86(): bool { return (get_eflags() & VM) != 0; }

// Real mode (and virtual-8086 mode): only the selector and the base change;
// the cached limit and attributes stay (which is what makes "unreal mode").
function load_real(s: i32, sel: u32): void {
  const a = seg_addr(s);
  store<u16>(a + SEG_SELECTOR, <u16>sel);
  store<u64>(a + SEG_BASE, <u64>(sel << 4));
}

// Load a data segment register or SS (MOV, POP, LDS...), faulting as the
// SDM's MOV pseudo-code says. Nothing changes when it faults.
export function load_seg(s: i32, sel: u32): void {
  if (!protected_mode || v86()) {
    load_real(s, sel);
    return;
  }
  const rpl = <i32>(sel & 3);
  if ((sel & 0xfffc) == 0) {
    // SS may be null only in 64-bit mode, below ring 3, with RPL = CPL
    if (s == SEG_SS && (!mode64 || cpl == 3 || rpl != cpl)) { raise_gp(0); return; }
    load_null(s, sel);
    return;
  }
  const d = read_desc(sel);
  if (faulted()) return;
  const a = desc_attr(d);
  const dpl = attr_dpl(a);
  if (s == SEG_SS) {
    if (rpl != cpl || dpl != cpl || !is_data_writable(a)) { raise_gp(sel & 0xfffc); return; }
    if ((a & ATTR_P) == 0) { raise_ss(sel & 0xfffc); return; }
  } else {
    if ((a & ATTR_S) == 0 || ((a & ATTR_CODE) != 0 && (a & ATTR_RW) == 0)) { raise_gp(sel & 0xfffc); return; }
    const conforming_code = (a & ATTR_CODE) != 0 && (a & ATTR_CONFORMING) != 0;
    if (!conforming_code && (rpl > dpl || cpl > dpl)) { raise_gp(sel & 0xfffc); return; }
    if ((a & ATTR_P) == 0) { raise_np(sel & 0xfffc); return; }
  }
  set_accessed(sel, d);
  if (faulted()) return;
  seg_set(s, sel, desc_base(d), desc_limit(d), a | ATTR_ACCESSED);
  if (s == SEG_SS) update_mode();
}
// A null selector makes the register unusable (P = 0). In 64-bit mode the
// FS/GS base stays (it is reloaded through the MSRs, not the descriptor).
function load_null(s: i32, sel: u32): void {
  if (mode64 && (s == SEG_FS || s == SEG_GS)) {
    seg_set(s, sel, seg_base(s), 0, 0);
  } else if (s == SEG_SS) {
    seg_set(s, sel, 0, 0, <u32>(sel & 3) << 5); // DPL = RPL = CPL, unusable
    update_mode();
  } else seg_set(s, sel, 0, 0, 0);
}

// MOV SS and POP SS block interrupts until the next instruction completes.
function ss_shadow(): void { vcpu_store32(VCPU_INTR_SHADOW, 1); }

export function mov_SwEw(): void {
  const s = reg & 7;
  if (s == SEG_CS || s > SEG_GS) { raise_ud(); return; }
  const v = read_E(2);
  if (faulted()) return;
  load_seg(s, <u32>v & 0xffff);
  if (!faulted() && s == SEG_SS) ss_shadow();
}
export function mov_EwSw(): void {
  const s = reg & 7;
  if (s > SEG_GS) { raise_ud(); return; }
  const v = <u64>seg_selector(s);
  if (mod_ == 3) write_E(opsize, v); else write_E(2, v);
}
// POP Sreg (the stack pointer moves only once the load succeeded)
export function pop_seg(s: i32): void {
  const v = peek(0, opsize);
  if (faulted()) return;
  load_seg(s, <u32>v & 0xffff);
  if (faulted()) return;
  set_sp(reg64(4) + <u64>opsize);
  if (s == SEG_SS) ss_shadow();
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

// ---- code segments

// Checks on the code segment `d` of a far JMP/CALL (is_ret false: the
// target runs at the current CPL) or a far RET/IRET (is_ret true: it runs at
// the selector's RPL). Raises #GP(sel) / #NP(sel); changes nothing.
export function check_cs(sel: u32, d: u64, is_ret: bool): bool {
  const a = desc_attr(d);
  const fail = sel & 0xfffc;
  if ((a & ATTR_S) == 0 || (a & ATTR_CODE) == 0) { raise_gp(fail); return false; }
  const dpl = attr_dpl(a);
  const rpl = <i32>(sel & 3);
  if (is_ret) {
    if (rpl < cpl) { raise_gp(fail); return false; }
    if ((a & ATTR_CONFORMING) != 0 ? dpl > rpl : dpl != rpl) { raise_gp(fail); return false; }
  } else {
    if ((a & ATTR_CONFORMING) != 0 ? dpl > cpl : (rpl > cpl || dpl != cpl)) { raise_gp(fail); return false; }
  }
  if ((a & ATTR_P) == 0) { raise_np(fail); return false; }
  if (long_mode && (a & ATTR_L) != 0 && (a & ATTR_DB) != 0) { raise_gp(fail); return false; }
  set_accessed(sel, d);
  return !faulted();
}
// Does `d` describe a 64-bit code segment (IA-32e mode, L = 1)?
@inline export function desc_is64(d: u64): bool { return long_mode && (desc_attr(d) & ATTR_L) != 0; }

// The new RIP of a far transfer into code segment `d`: canonical for a
// 64-bit segment, else within the segment limit; #GP(0) otherwise.
export function check_target(d: u64, ip: u64): bool {
  if (desc_is64(d)) { if (!is_canonical(ip)) { raise_gp(0); return false; } }
  else if (ip > <u64>desc_limit(d)) { raise_gp(0); return false; }
  return true;
}

// Load CS from a validated descriptor at privilege `new_cpl` (the selector's
// RPL becomes new_cpl) and recompute the mode. Cannot fault.
export function commit_cs(sel: u32, d: u64, new_cpl: i32): void {
  seg_set(SEG_CS, (sel & 0xfffc) | <u32>new_cpl, desc_base(d), desc_limit(d), desc_attr(d) | ATTR_ACCESSED);
  update_mode();
  fetch_invalidate();
}
// Real mode / virtual-8086 mode CS load (far transfers, interrupts).
export function load_cs_real(sel: u32): void {
  load_real(SEG_CS, sel);
  update_mode();
  fetch_invalidate();
}

// Checks on a new SS for a ring change to `new_cpl` (RET/IRET to an outer
// ring: #GP(sel) and #SS(sel); from the TSS on a call or interrupt to an
// inner ring: #TS(sel) and #SS(sel), plus `ext`). Returns the descriptor.
export function check_new_ss(sel: u32, new_cpl: i32, from_tss: bool, ext: u32): u64 {
  const vec = from_tss ? TS : GP;
  const d = read_desc_vec(sel, vec, ext);
  if (faulted()) return 0;
  const a = desc_attr(d);
  const err = (sel & 0xfffc) | ext;
  if (<i32>(sel & 3) != new_cpl || attr_dpl(a) != new_cpl || !is_data_writable(a)) { raise(vec, err, true); return 0; }
  if ((a & ATTR_P) == 0) { raise_ss(err); return 0; }
  set_accessed(sel, d);
  return d;
}
export function commit_ss(sel: u32, d: u64): void {
  seg_set(SEG_SS, sel, desc_base(d), desc_limit(d), desc_attr(d) | ATTR_ACCESSED);
  update_mode();
}

// On a return to an outer ring, ES/DS/FS/GS holding a data or non-conforming
// code segment more privileged than the new CPL become null (SDM RET, IRET);
// like QEMU, the hidden base is kept and the register becomes unusable.
export function null_outer_segments(new_cpl: i32): void {
  for (let s = SEG_ES; s <= SEG_GS; s++) {
    if (s == SEG_CS || s == SEG_SS) continue;
    const a = seg_attr(s);
    if ((seg_selector(s) & 0xfffc) == 0 || (a & ATTR_P) == 0) continue;
    const conforming_code = (a & ATTR_CODE) != 0 && (a & ATTR_CONFORMING) != 0;
    if (!conforming_code && attr_dpl(a) < new_cpl) seg_set(s, 0, seg_base(s), seg_limit(s), a & ~ATTR_P);
  }
}

// ---- stacks of another ring

// Width mask of a stack whose SS has attributes `ss_attr`.
@inline export function stack_mask_of(ss_attr: u32): u64 { return (ss_attr & ATTR_DB) != 0 ? 0xffffffff : 0xffff; }

// Accesses to the new stack of an inner ring are made with that ring's
// privilege (so a #PF there has U/S = 0). priv_begin/priv_end bracket them.
// `wide` selects 64-bit linear addresses (the new stack of a 64-bit handler
// may lie above 4 GiB even when the old code ran in compatibility mode).
export function priv_begin(new_cpl: i32, wide: bool): void {
  tlb_set_cpl(new_cpl == 3);
  mem_set_mode(new_cpl == 3, wide ? <u64>-1 : lin_mask);
}
export function priv_end(): void { update_mode(); }

// The inner-ring stack pointer from the 32-bit or 16-bit TSS (SS:ESP for
// `dpl`). #TS(TSS selector + ext) when TR is unusable or too short.
export let tss_ss: u32 = 0;
export let tss_sp: u64 = 0;
export function tss_stack_legacy(dpl: i32, ext: u32): bool {
  const ta = seg_attr(SEG_TR);
  const tss = seg_base(SEG_TR);
  const limit = <u64>seg_limit(SEG_TR);
  const fail = (seg_selector(SEG_TR) & 0xfffc) | ext;
  const type = ta & 0xf;
  if ((ta & ATTR_P) == 0 || (ta & ATTR_S) != 0) { raise_ts(fail); return false; }
  if (type == TYPE_TSS_AVAIL || type == TYPE_TSS_BUSY) {
    const off = <u64>(dpl << 3) + 4;
    if (off + 5 > limit) { raise_ts(fail); return false; }
    tss_sp = <u64>read_sys32(tss + off);
    if (faulted()) return false;
    tss_ss = read_sys16(tss + off + 4);
  } else if (type == TYPE_TSS16_AVAIL || type == TYPE_TSS16_BUSY) {
    const off = <u64>(dpl << 2) + 2;
    if (off + 3 > limit) { raise_ts(fail); return false; }
    tss_sp = <u64>read_sys16(tss + off);
    if (faulted()) return false;
    tss_ss = read_sys16(tss + off + 2);
  } else { raise_ts(fail); return false; }
  return !faulted();
}
// A 64-bit field of the 64-bit TSS (RSPn at 4 + 8n, ISTn at 0x24 + 8(n-1)).
export function tss_read64(off: u64, ext: u32): u64 {
  const ta = seg_attr(SEG_TR);
  if ((ta & ATTR_P) == 0 || off + 7 > <u64>seg_limit(SEG_TR)) { raise_ts((seg_selector(SEG_TR) & 0xfffc) | ext); return 0; }
  return read_sys64(seg_base(SEG_TR) + off);
}

// ---- far JMP / CALL

// far jmp / call with an immediate pointer (not in 64-bit mode)
export function jmp_far_ptr(): void { far_jump(<u32>imm2, imm); }
export function call_far_ptr(): void { far_call(<u32>imm2, imm); }

@inline function ip_mask(size: i32): u64 { return size == 8 ? <u64>-1 : size == 4 ? 0xffffffff : 0xffff; }

export function far_jump(sel: u32, off: u64): void { far_transfer(sel, off & ip_mask(opsize), false); }
export function far_call(sel: u32, off: u64): void { far_transfer(sel, off & ip_mask(opsize), true); }

// Push `v` (`size` bytes) below `sp` on the stack described by base/mask
// (mask all ones: a 64-bit stack, no base); returns the new stack pointer.
// Nothing but memory is written.
export function push_at(base: u64, mask: u64, sp: u64, size: i32, v: u64): u64 {
  const nsp = (sp - <u64>size) & mask;
  set_stack_ref(true); // a non-canonical stack address is #SS(0)
  write_sz(mask == <u64>-1 ? nsp : (base + nsp) & 0xffffffff, size, v);
  set_stack_ref(false);
  return nsp;
}

function far_transfer(sel: u32, off: u64, is_call: bool): void {
  const size = opsize;
  if (!protected_mode || v86()) {
    if (is_call) {
      const sp = reg64(4);
      const mask: u64 = stack_mask_of(seg_attr(SEG_SS));
      let nsp = push_at(seg_base(SEG_SS), mask, sp, size, <u64>seg_selector(SEG_CS));
      if (faulted()) return;
      nsp = push_at(seg_base(SEG_SS), mask, nsp, size, next_ip);
      if (faulted()) return;
      set_reg64(4, (sp & ~mask) | nsp);
    }
    load_cs_real(sel);
    set_next_ip(off);
    return;
  }
  if ((sel & 0xfffc) == 0) { raise_gp(0); return; }
  const d = read_desc(sel);
  if (faulted()) return;
  const a = desc_attr(d);
  if ((a & ATTR_S) == 0) {
    const type = a & 0xf;
    if (type == TYPE_CALL_GATE || (type == TYPE_CALL_GATE16 && !long_mode)) { call_gate(sel, d, is_call); return; }
    if (!long_mode && (type == TYPE_TASK_GATE || type == TYPE_TSS_AVAIL || type == TYPE_TSS16_AVAIL)) {
      raise_unimplemented(); // task switches are not modelled
      return;
    }
    raise_gp(sel & 0xfffc);
    return;
  }
  if (!check_cs(sel, d, false)) return;
  if (!check_target(d, off)) return;
  if (is_call) {
    const sp = reg64(4);
    const mask: u64 = mode64 ? <u64>-1 : stack_mask_of(seg_attr(SEG_SS));
    let nsp = push_at(seg_base(SEG_SS), mask, sp, size, <u64>seg_selector(SEG_CS));
    if (faulted()) return;
    nsp = push_at(seg_base(SEG_SS), mask, nsp, size, next_ip);
    if (faulted()) return;
    set_reg64(4, (sp & ~mask) | nsp);
  }
  commit_cs(sel, d, cpl);
  set_next_ip(off);
}

// Far JMP/CALL through a call gate (SDM CALL, JMP): a 16- or 32-bit gate in
// protected mode (a call to an inner ring switches to the TSS stack and
// copies the gate's parameter count of words/dwords), a 16-byte 64-bit gate
// in IA-32e mode (no parameters; the new SS is null with RPL = new CPL).
function call_gate(gsel: u32, g: u64, is_call: bool): void {
  const ga = desc_attr(g);
  const gfail = gsel & 0xfffc;
  if (attr_dpl(ga) < cpl || attr_dpl(ga) < <i32>(gsel & 3)) { raise_gp(gfail); return; }
  if ((ga & ATTR_P) == 0) { raise_np(gfail); return; }
  let target: u64 = (g & 0xffff) | ((g >> 32) & 0xffff0000);
  const gate16 = (ga & 0xf) == TYPE_CALL_GATE16;
  if (gate16) target &= 0xffff;
  if (long_mode) {
    const ga16 = desc_lin(gsel, 16);
    if (ga16 < 0) { raise_gp(gfail); return; }
    const hi = read_sys64(<u64>ga16 + 8);
    if (faulted()) return;
    if (((hi >> 8) & 0x1f) != 0) { raise_gp(gfail); return; } // the upper half's type must be 0
    target |= (hi & 0xffffffff) << 32;
  }
  const sel = <u32>(g >> 16) & 0xffff;
  if ((sel & 0xfffc) == 0) { raise_gp(0); return; }
  const d = read_desc(sel);
  if (faulted()) return;
  const a = desc_attr(d);
  const fail = sel & 0xfffc;
  const dpl = attr_dpl(a);
  if ((a & ATTR_S) == 0 || (a & ATTR_CODE) == 0 || dpl > cpl) { raise_gp(fail); return; }
  const conforming = (a & ATTR_CONFORMING) != 0;
  if (!is_call && !conforming && dpl != cpl) { raise_gp(fail); return; }
  if (long_mode && ((a & ATTR_L) == 0 || (a & ATTR_DB) != 0)) { raise_gp(fail); return; }
  if ((a & ATTR_P) == 0) { raise_np(fail); return; }
  if (!check_target(d, target)) return;
  if (!is_call) {
    commit_cs(sel, d, cpl);
    set_next_ip(target);
    return;
  }
  const old_cs = <u64>seg_selector(SEG_CS);
  const old_ss = <u64>seg_selector(SEG_SS);
  const old_sp = reg64(4);
  const ret_ip = next_ip;
  const w: i32 = long_mode ? 8 : gate16 ? 2 : 4;
  if (!conforming && dpl < cpl) {
    // MORE-PRIVILEGE: switch to the inner stack from the TSS
    const new_cpl = dpl;
    if (long_mode) {
      const sp = tss_read64(4 + <u64>(new_cpl << 3), 0);
      if (faulted()) return;
      if (!is_canonical(sp)) { raise_ss(0); return; }
      priv_begin(new_cpl, true);
      let nsp = push_at(0, <u64>-1, sp, 8, old_ss);
      if (!faulted()) nsp = push_at(0, <u64>-1, nsp, 8, old_sp);
      if (!faulted()) nsp = push_at(0, <u64>-1, nsp, 8, old_cs);
      if (!faulted()) nsp = push_at(0, <u64>-1, nsp, 8, ret_ip);
      priv_end();
      if (faulted()) return;
      seg_set(SEG_SS, <u32>new_cpl, 0, 0, <u32>new_cpl << 5); // null SS, RPL = new CPL
      set_reg64(4, nsp);
    } else {
      if (!tss_stack_legacy(new_cpl, 0)) return;
      const ss_sel = tss_ss;
      if ((ss_sel & 0xfffc) == 0) { raise_ts(0); return; }
      const sd = check_new_ss(ss_sel, new_cpl, true, 0);
      if (faulted()) return;
      const nbase = desc_base(sd);
      const nmask = stack_mask_of(desc_attr(sd));
      const count = <i32>((g >> 32) & 0x1f);
      const omask: u64 = stack_mask_of(seg_attr(SEG_SS));
      const obase = seg_base(SEG_SS);
      priv_begin(new_cpl, false);
      let nsp = push_at(nbase, nmask, tss_sp, w, old_ss);
      if (!faulted()) nsp = push_at(nbase, nmask, nsp, w, old_sp);
      // parameters: copied from the caller's stack, the last one first
      for (let i = count - 1; i >= 0 && !faulted(); i--) {
        const v = read_sz((obase + ((old_sp + <u64>(i * w)) & omask)) & 0xffffffff, w);
        if (!faulted()) nsp = push_at(nbase, nmask, nsp, w, v);
      }
      if (!faulted()) nsp = push_at(nbase, nmask, nsp, w, old_cs);
      if (!faulted()) nsp = push_at(nbase, nmask, nsp, w, ret_ip);
      priv_end();
      if (faulted()) return;
      commit_ss(ss_sel, sd);
      set_reg64(4, nmask == 0xffff ? (tss_sp & ~<u64>0xffff) | nsp : nsp);
    }
    commit_cs(sel, d, new_cpl);
  } else {
    // SAME-PRIVILEGE (a 64-bit gate leads to 64-bit code: a 64-bit stack)
    const mask: u64 = long_mode ? <u64>-1 : stack_mask_of(seg_attr(SEG_SS));
    priv_begin(cpl, long_mode);
    let nsp = push_at(seg_base(SEG_SS), mask, old_sp, w, old_cs);
    if (!faulted()) nsp = push_at(seg_base(SEG_SS), mask, nsp, w, ret_ip);
    priv_end();
    if (faulted()) return;
    set_reg64(4, (old_sp & ~mask) | nsp);
    commit_cs(sel, d, cpl);
  }
  set_next_ip(target);
}

// ---- far RET

// retf [imm16]: to the same ring, or to an outer ring (pops SS:RSP too).
export function ret_far(): void {
  const size = opsize;
  const extra: u64 = opcode == 0xca ? imm & 0xffff : 0;
  const off = peek(0, size);
  if (faulted()) return;
  const sel = <u32>peek(<u64>size, size) & 0xffff;
  if (faulted()) return;
  if (!protected_mode || v86()) {
    if (off > <u64>seg_limit(SEG_CS)) { raise_gp(0); return; }
    load_cs_real(sel);
    set_sp(reg64(4) + <u64>(2 * size) + extra);
    set_next_ip(off);
    return;
  }
  if ((sel & 0xfffc) == 0) { raise_gp(0); return; }
  const d = read_desc(sel);
  if (faulted()) return;
  if (!check_cs(sel, d, true)) return;
  const rpl = <i32>(sel & 3);
  if (rpl > cpl) {
    const new_sp = peek(<u64>(2 * size) + extra, size);
    if (faulted()) return;
    const new_ss = <u32>peek(<u64>(3 * size) + extra, size) & 0xffff;
    if (faulted()) return;
    let sd: u64 = 0;
    const to64 = desc_is64(d);
    if ((new_ss & 0xfffc) == 0) {
      if (!to64 || rpl == 3) { raise_gp(0); return; }
    } else {
      sd = check_new_ss(new_ss, rpl, false, 0);
      if (faulted()) return;
    }
    if (!check_target(d, off)) return;
    commit_cs(sel, d, rpl);
    if ((new_ss & 0xfffc) == 0) { seg_set(SEG_SS, new_ss, 0, 0, <u32>rpl << 5); update_mode(); }
    else commit_ss(new_ss, sd);
    set_sp(new_sp + extra);
    null_outer_segments(rpl);
  } else {
    if (!check_target(d, off)) return;
    const sp = reg64(4);
    commit_cs(sel, d, cpl);
    set_sp(sp + <u64>(2 * size) + extra);
  }
  set_next_ip(off);
}
