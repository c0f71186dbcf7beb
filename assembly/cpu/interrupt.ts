// Event delivery through the IDT (SDM vol. 3, ch. 6): exceptions, software
// interrupts and external interrupts in real mode, protected mode (16- and
// 32-bit interrupt/trap gates) and IA-32e mode (64-bit gates), with the
// privilege-change stack switch (SS:ESP from the 32/16-bit TSS, RSPn from
// the 64-bit TSS), IST, the 16-byte aligned long-mode frame, error codes
// with the EXT and IDT bits, #DF on a fault during delivery and triple fault
// -> SHUTDOWN. Plus IRET. Task gates and virtual-8086 mode are not modelled
// (INTERNAL_ERROR, "unimplemented").
import { trace, TRACE_EXCEPTION } from "../trace";
import {
  VCPU_IDTR_BASE, VCPU_IDTR_LIMIT, VCPU_CR2, vcpu_load64, vcpu_load32, vcpu_store64,
  SEG_CS, SEG_SS, seg_selector, seg_base, seg_attr, seg_limit, seg_set, reg64, set_reg64, rip, set_rip,
  IF, TF, NT, RF, VM, AC, ID, VIF, VIP, IOPL_MASK, ARITH_FLAGS, DF, stat_inc,
} from "./state";
import { get_eflags, set_eflags } from "./flags";
import { read_sys64, read_sys32 } from "./mem";
import {
  faulted, raise, raise_gp, raise_np, raise_ss, raise_ts, raise_unimplemented, clear_fault,
  exc_vector, exc_code, exc_has_code, exc_cr2, DF_VEC, PF_VEC, GP, TS, DE, DB, BP, OFV, ABORT, UNIMPLEMENTED,
} from "./fault";
import { protected_mode, long_mode, mode64, cpl, stack_size, update_mode } from "./mode";
import {
  read_desc_vec, desc_attr, desc_base, desc_limit, attr_dpl, ATTR_P, ATTR_L, ATTR_DB, ATTR_CODE, ATTR_CONFORMING,
  ATTR_S, check_cs, check_target, commit_cs, load_cs_real, check_new_ss, commit_ss, null_outer_segments,
  desc_is64, is_canonical, stack_mask_of, priv_begin, priv_end, push_at, tss_stack_legacy, tss_ss, tss_sp,
  tss_read64, read_desc,
} from "./seg";
import { next_ip, set_next_ip, opsize, forget_opcode } from "./decode";
import { peek, set_sp } from "./stack";
import { walk_set_ac } from "../mmu/walk";
import { STAT_EXCEPTIONS, STAT_TRIPLE_FAULTS } from "../stats";

// Set when delivery failed twice over: the run loop exits with SHUTDOWN.
export let triple_fault: bool = false;
export let triple_fault_vector: i32 = -1;
export function clear_triple_fault(): void { triple_fault = false; triple_fault_vector = -1; }

// How an event was raised.
const SOFT: i32 = 1; // INT n / INT3 / INTO: the gate's DPL is checked against CPL
const EXT: i32 = 2; // not caused by the program (exception, external interrupt, INT1):
//                     error codes of faults during its delivery carry EXT = 1

// Contributory exceptions (SDM vol. 3, table 6-4): #DE #TS #NP #SS #GP
@inline function is_contributory(v: i32): bool { return v == DE || (v >= TS && v <= GP); }

// CR2 is written only when the #PF is actually delivered.
let pending_cr2: u64 = 0;
export function set_pending_cr2(v: u64): void { pending_cr2 = v; }

// Deliver an event, applying the double-fault rules of SDM vol. 3, 6.15
// (table 6-5) to faults raised while delivering it: contributory then
// contributory, or #PF then contributory/#PF, become #DF (error code 0); any
// other pair is handled serially (the second one is delivered); a fault while
// delivering #DF is a triple fault (shutdown). `ret_ip` is the RIP saved in
// the frame. Host-data aborts and unimplemented features are left raised
// for the run loop.
function deliver_event(vector: i32, has_code: bool, code: u32, flags: i32, ret_ip: u64): void {
  // the frame's pushes are no string instruction's writes (the PT_WRITE log
  // reads the opcode), whatever was decoded last (found by the block-cache
  // differential fuzzer: a fault on fetch left a rep stos's opcode behind)
  forget_opcode();
  let v = vector;
  let hc = has_code;
  let c = code;
  let fl = flags;
  for (let n = 0; n < 8; n++) {
    clear_fault();
    if (v == PF_VEC) vcpu_store64(VCPU_CR2, pending_cr2);
    do_interrupt(v, hc, c, fl, ret_ip);
    if (!faulted()) return;
    const v2 = exc_vector;
    if (v2 == ABORT || v2 == UNIMPLEMENTED) return;
    const c2 = exc_code;
    const hc2 = exc_has_code;
    if (v2 == PF_VEC) pending_cr2 = exc_cr2;
    clear_fault();
    if (v == DF_VEC) break;
    if ((is_contributory(v) && is_contributory(v2)) || (v == PF_VEC && (is_contributory(v2) || v2 == PF_VEC))) {
      v = DF_VEC; hc = true; c = 0;
    } else {
      v = v2; hc = hc2; c = c2;
    }
    fl = EXT; // everything after the first event is delivered by the CPU itself
  }
  triple_fault = true;
  triple_fault_vector = vector;
  stat_inc(STAT_TRIPLE_FAULTS);
}

// A fault or trap raised by an instruction (the run loop has rewound RIP for
// a fault): delivered as a hardware exception (EXT = 1 in nested error codes).
export function deliver_exception(vector: i32, has_code: bool, code: u32, ret_ip: u64): void {
  stat_inc(STAT_EXCEPTIONS);
  trace(TRACE_EXCEPTION, <u32>vector, ret_ip, <u64>code);
  deliver_event(vector, has_code, code, EXT, ret_ip);
}

// INT n / INT3 / INTO (soft: the gate DPL must be >= CPL) and INT1 (not
// soft, EXT = 1), from an instruction handler: delivered at once with the
// next instruction's RIP. A fault during delivery is the instruction's own
// fault (reported at the INT instruction) and goes through the run loop.
export function software_interrupt(vector: i32, soft: bool): void {
  do_interrupt(vector, false, 0, soft ? SOFT : EXT, next_ip);
}

// External interrupt (from the host / APIC), between instructions.
export function external_interrupt(vector: i32): void {
  deliver_event(vector, false, 0, EXT, rip());
}

// The error code naming IDT entry `vector` (IDT bit 1, EXT bit 0).
@inline function idt_error(vector: i32, ext: u32): u32 { return (<u32>vector << 3) | 2 | ext; }

// The common delivery path. On success CS:RIP (RIP and next_ip) point at
// the handler. On failure a fault is left raised and nothing has changed.
function do_interrupt(vector: i32, has_code: bool, code: u32, flags: i32, ret_ip: u64): void {
  if (!protected_mode) { real_mode_interrupt(vector, ret_ip); return; }
  if ((get_eflags() & VM) != 0) { raise_unimplemented(); return; } // virtual-8086 mode
  const ext: u32 = (flags & EXT) != 0 ? 1 : 0;
  const idt = vcpu_load64(VCPU_IDTR_BASE);
  const limit = <u64>vcpu_load32(VCPU_IDTR_LIMIT);
  const entry_size: u64 = long_mode ? 16 : 8;
  const gerr = idt_error(vector, ext);
  if (<u64>vector * entry_size + entry_size - 1 > limit) { raise_gp(gerr); return; }
  const gate = read_sys64(idt + <u64>vector * entry_size);
  if (faulted()) return;
  const gate_hi: u64 = long_mode ? read_sys64(idt + <u64>vector * 16 + 8) : 0;
  if (faulted()) return;
  const type = <i32>((gate >> 40) & 0x1f); // with the S bit: must be 0 for a gate
  const gate_dpl = <i32>((gate >> 45) & 3);
  const present = ((gate >> 47) & 1) != 0;
  let is32 = true;
  let trap = false;
  if (long_mode) {
    if (type != 0xe && type != 0xf) { raise_gp(gerr); return; }
    trap = type == 0xf;
  } else {
    if (type == 0x5) { raise_unimplemented(); return; } // task gates: task switches are not modelled
    if (type != 0x6 && type != 0x7 && type != 0xe && type != 0xf) { raise_gp(gerr); return; }
    is32 = type >= 0xe;
    trap = (type & 1) != 0;
  }
  if ((flags & SOFT) != 0 && gate_dpl < cpl) { raise_gp(gerr); return; }
  if (!present) { raise_np(gerr); return; }

  // the handler's code segment
  const sel = <u32>((gate >> 16) & 0xffff);
  if ((sel & 0xfffc) == 0) { raise_gp(ext); return; }
  const cd = read_desc_vec(sel, GP, ext);
  if (faulted()) return;
  const ca = desc_attr(cd);
  const cfail = (sel & 0xfffc) | ext;
  if ((ca & ATTR_S) == 0 || (ca & ATTR_CODE) == 0 || attr_dpl(ca) > cpl) { raise_gp(cfail); return; }
  if ((ca & ATTR_P) == 0) { raise_np(cfail); return; }
  if (long_mode && ((ca & ATTR_L) == 0 || (ca & ATTR_DB) != 0)) { raise_gp(cfail); return; }
  // a conforming handler runs at the current CPL, a non-conforming one at its DPL
  const new_cpl = (ca & ATTR_CONFORMING) != 0 ? cpl : attr_dpl(ca);

  let target: u64 = (gate & 0xffff) | ((gate >> 32) & 0xffff0000);
  if (long_mode) {
    target |= gate_hi << 32;
    if (!is_canonical(target)) { raise_gp(ext); return; }
    deliver64(gate, has_code, code, ext, sel, cd, new_cpl, target, trap, ret_ip);
  } else {
    if (!is32) target &= 0xffff;
    if (target > <u64>desc_limit(cd)) { raise_gp(ext); return; }
    deliver_legacy(has_code, code, ext, sel, cd, new_cpl, target, trap, is32, ret_ip);
  }
}

// IA-32e mode: 64-bit frame (SS, RSP, RFLAGS, CS, RIP [, error code]) on a
// 16-byte aligned stack: the IST stack if the gate names one, else TSS.RSPn
// on a privilege change, else the current stack. A privilege change loads
// SS with a null selector whose RPL is the new CPL.
function deliver64(gate: u64, has_code: bool, code: u32, ext: u32, sel: u32, cd: u64, new_cpl: i32, target: u64, trap: bool, ret_ip: u64): void {
  const old_ss = <u64>seg_selector(SEG_SS);
  const old_sp = reg64(4);
  const old_cs = <u64>seg_selector(SEG_CS);
  const old_flags = get_eflags();
  const ist = <i32>((gate >> 32) & 7);
  let sp: u64 = old_sp;
  if (ist != 0) sp = tss_read64(0x24 + <u64>(ist - 1) * 8, ext);
  else if (new_cpl < cpl) sp = tss_read64(4 + <u64>new_cpl * 8, ext);
  if (faulted()) return;
  sp &= ~<u64>15;
  const frame = sp - (has_code ? 48 : 40);
  if (!is_canonical(sp - 1) || !is_canonical(frame)) { raise_ss(ext); return; }
  priv_begin(new_cpl, true);
  let p = push_at(0, <u64>-1, sp, 8, old_ss);
  if (!faulted()) p = push_at(0, <u64>-1, p, 8, old_sp);
  if (!faulted()) p = push_at(0, <u64>-1, p, 8, <u64>old_flags);
  if (!faulted()) p = push_at(0, <u64>-1, p, 8, old_cs);
  if (!faulted()) p = push_at(0, <u64>-1, p, 8, ret_ip);
  if (!faulted() && has_code) p = push_at(0, <u64>-1, p, 8, <u64>code);
  priv_end();
  if (faulted()) return;
  if (new_cpl < cpl) seg_set(SEG_SS, <u32>new_cpl, 0, 0, <u32>new_cpl << 5); // null SS, RPL = new CPL, unusable
  commit_cs(sel, cd, new_cpl);
  set_reg64(4, frame);
  enter_handler(old_flags, trap, target);
}

// Protected mode: 16- or 32-bit frame. A privilege change takes SS:ESP for
// the new CPL from the TSS (checked: #TS / #SS with the EXT bit) and pushes
// the old SS:ESP first.
function deliver_legacy(has_code: bool, code: u32, ext: u32, sel: u32, cd: u64, new_cpl: i32, target: u64, trap: bool, is32: bool, ret_ip: u64): void {
  const w: i32 = is32 ? 4 : 2;
  const old_ss = <u64>seg_selector(SEG_SS);
  const old_sp = reg64(4);
  const old_cs = <u64>seg_selector(SEG_CS);
  const old_flags = get_eflags();
  const outer = new_cpl < cpl;
  let sp = old_sp;
  let base = seg_base(SEG_SS);
  let mask = stack_mask_of(seg_attr(SEG_SS));
  let ss_sel: u32 = 0;
  let sd: u64 = 0;
  if (outer) {
    if (!tss_stack_legacy(new_cpl, ext)) return;
    ss_sel = tss_ss;
    if ((ss_sel & 0xfffc) == 0) { raise_ts(ext); return; }
    sd = check_new_ss(ss_sel, new_cpl, true, ext);
    if (faulted()) return;
    sp = tss_sp;
    base = desc_base(sd);
    mask = stack_mask_of(desc_attr(sd));
  }
  priv_begin(new_cpl, false);
  let p = sp & mask;
  if (outer) {
    p = push_at(base, mask, p, w, old_ss);
    if (!faulted()) p = push_at(base, mask, p, w, old_sp);
  }
  if (!faulted()) p = push_at(base, mask, p, w, <u64>old_flags);
  if (!faulted()) p = push_at(base, mask, p, w, old_cs);
  if (!faulted()) p = push_at(base, mask, p, w, ret_ip);
  if (!faulted() && has_code) p = push_at(base, mask, p, w, <u64>code);
  priv_end();
  if (faulted()) return;
  if (outer) commit_ss(ss_sel, sd);
  commit_cs(sel, cd, new_cpl);
  set_reg64(4, (sp & ~mask) | p);
  enter_handler(old_flags, trap, target);
}

// EFLAGS on entry to a protected/long-mode handler: TF, NT, RF and VM
// cleared; IF too through an interrupt gate (not a trap gate).
function enter_handler(old_flags: u32, trap: bool, target: u64): void {
  let nf = old_flags & ~(TF | NT | RF | VM);
  if (!trap) nf &= ~IF;
  set_eflags(nf);
  finish(target);
}

// Real mode: the IVT holds 4-byte far pointers; FLAGS, CS and IP are pushed
// as words; IF, TF and AC are cleared. Error codes are never pushed.
function real_mode_interrupt(vector: i32, ret_ip: u64): void {
  const idt = vcpu_load64(VCPU_IDTR_BASE);
  const limit = <u64>vcpu_load32(VCPU_IDTR_LIMIT);
  if (<u64>vector * 4 + 3 > limit) { raise_gp(0); return; }
  const ent = read_sys32(idt + <u64>vector * 4);
  if (faulted()) return;
  const old_flags = get_eflags();
  const sp = reg64(4);
  const base = seg_base(SEG_SS);
  const mask = stack_mask_of(seg_attr(SEG_SS));
  let p = push_at(base, mask, sp, 2, <u64>(old_flags & 0xffff));
  if (!faulted()) p = push_at(base, mask, p, 2, <u64>seg_selector(SEG_CS));
  if (!faulted()) p = push_at(base, mask, p, 2, ret_ip & 0xffff);
  if (faulted()) return;
  set_reg64(4, (sp & ~mask) | p);
  set_eflags(old_flags & ~(IF | TF | AC | RF));
  walk_set_ac(false);
  load_cs_real(ent >> 16);
  finish(<u64>(ent & 0xffff));
}

function finish(target: u64): void {
  update_mode();
  set_next_ip(target);
  set_rip(target);
}

// ---- IRET / IRETD / IRETQ (SDM IRET): real mode; protected mode to the same
// or an outer ring; IA-32e mode, where 64-bit mode always pops SS:RSP (which
// may be null when returning to a 64-bit ring below 3). Everything is
// validated before anything changes. Not modelled: task return (NT = 1
// outside IA-32e mode) and return to virtual-8086 mode.
export function iret(): void {
  const size = opsize;
  const w = <u64>size;
  const old_fl = get_eflags();
  const ip = peek(0, size);
  if (faulted()) return;
  const cs = <u32>peek(w, size) & 0xffff;
  if (faulted()) return;
  const tfl = <u32>peek(2 * w, size);
  if (faulted()) return;

  if (!protected_mode) {
    if (ip > <u64>seg_limit(SEG_CS)) { raise_gp(0); return; }
    let nf: u32;
    if (size == 2) nf = (old_fl & 0xffff0000) | (tfl & 0xffff);
    else nf = (tfl & 0x257fd5) | (old_fl & 0x1a0000);
    load_cs_real(cs);
    set_sp(reg64(4) + 3 * w);
    set_flags_sys(nf);
    finish(ip);
    return;
  }
  if ((old_fl & VM) != 0) { raise_unimplemented(); return; } // virtual-8086 mode
  if ((old_fl & NT) != 0) {
    if (long_mode) raise_gp(0); else raise_unimplemented(); // task return: not modelled
    return;
  }
  if (!long_mode && (tfl & VM) != 0 && cpl == 0 && size == 4) { raise_unimplemented(); return; } // to virtual-8086 mode

  // the return code segment
  if ((cs & 0xfffc) == 0) { raise_gp(0); return; }
  const d = read_desc(cs);
  if (faulted()) return;
  if (!check_cs(cs, d, true)) return;
  const rpl = <i32>(cs & 3);
  const outer = rpl > cpl || mode64;
  let new_sp: u64 = 0;
  let new_ss: u32 = 0;
  let sd: u64 = 0;
  if (outer) {
    new_sp = peek(3 * w, size);
    if (faulted()) return;
    new_ss = <u32>peek(4 * w, size) & 0xffff;
    if (faulted()) return;
    if ((new_ss & 0xfffc) == 0) {
      if (!desc_is64(d) || rpl == 3) { raise_gp(0); return; }
    } else {
      sd = check_new_ss(new_ss, rpl, false, 0);
      if (faulted()) return;
    }
  }
  const new_ip = size == 8 ? ip : ip & (size == 4 ? 0xffffffff : 0xffff);
  if (!check_target(d, new_ip)) return;

  // commit: EFLAGS under the old CPL's rules, then CS, SS:RSP
  const old_cpl = cpl;
  let writable: u32 = ARITH_FLAGS | TF | DF | NT;
  if (size != 2) writable |= RF | AC | ID;
  if (old_cpl <= <i32>((old_fl & IOPL_MASK) >> 12)) writable |= IF;
  if (old_cpl == 0) { writable |= IOPL_MASK; if (size != 2) writable |= VIF | VIP; }
  const sp = reg64(4);
  const old_stack = stack_size;
  commit_cs(cs, d, rpl);
  if (outer) {
    if ((new_ss & 0xfffc) == 0) { seg_set(SEG_SS, new_ss, 0, 0, <u32>rpl << 5); update_mode(); }
    else commit_ss(new_ss, sd);
    if (size == 2) set_reg64(4, (reg64(4) & ~<u64>0xffff) | (new_sp & 0xffff));
    else set_reg64(4, new_sp);
    if (rpl > old_cpl) null_outer_segments(rpl);
  } else {
    const nsp = sp + 3 * w;
    if (old_stack == 4) set_reg64(4, nsp & 0xffffffff);
    else if (old_stack == 2) set_reg64(4, (sp & ~<u64>0xffff) | (nsp & 0xffff));
    else set_reg64(4, nsp);
  }
  set_flags_sys((old_fl & ~writable) | (tfl & writable));
  finish(new_ip);
}

function set_flags_sys(v: u32): void {
  set_eflags(v);
  walk_set_ac((v & AC) != 0);
}
