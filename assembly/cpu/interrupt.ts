// Event delivery through the IDT (SDM vol. 3, ch. 6): exceptions, software
// interrupts and external interrupts in real mode, protected mode and long
// mode, with privilege-change stack switches (TSS RSP0 / SS0:ESP0), IST,
// #DF on a fault during delivery and triple fault -> SHUTDOWN. Plus IRET.
import {
  VCPU_IDTR_BASE, VCPU_IDTR_LIMIT, VCPU_CR2, vcpu_load64, vcpu_load32, vcpu_store64,
  SEG_CS, SEG_SS, SEG_TR, SEG_DS, SEG_ES, SEG_FS, SEG_GS,
  seg_selector, seg_base, seg_attr, seg_set, reg64, set_reg64, rip, set_rip,
  IF, TF, NT, RF, VM, AC, IOPL_MASK, ARITH_FLAGS, DF, ID, stat_inc,
} from "./state";
import { get_eflags, set_eflags } from "./flags";
import { read_sys64, read_sys32, write_sz, read_sz } from "./mem";
import { faulted, raise, raise_gp, raise_np, raise_ss, raise_ts, clear_fault, exc_vector, exc_code, exc_has_code, exc_cr2, DF_VEC, PF_VEC, GP, NP, TS, SS_VEC, DE, raise_unimplemented } from "./fault";
import { protected_mode, long_mode, mode64, cpl, stack_size, update_mode } from "./mode";
import { read_desc, desc_attr, desc_base, desc_limit, attr_dpl, ATTR_P, ATTR_L, ATTR_CODE, ATTR_CONFORMING, ATTR_S, load_seg, load_cs } from "./seg";
import { next_ip, set_next_ip, opsize } from "./decode";
import { fetch_invalidate, tlb_set_cpl } from "../mmu/tlb";
import { mem_set_mode, lin_mask } from "./mem";
import { STAT_EXCEPTIONS, STAT_TRIPLE_FAULTS } from "../stats";

// Set when delivery failed twice over: the run loop exits with SHUTDOWN.
export let triple_fault: bool = false;
export let triple_fault_vector: i32 = -1;
export function clear_triple_fault(): void { triple_fault = false; triple_fault_vector = -1; }

const SOFT: i32 = 1; // INT n / INT3 / INTO: gate DPL is checked
const EXT: i32 = 2; // external interrupt: EXT bit in error codes

@inline function is_contributory(v: i32): bool { return v == DE || (v >= TS && v <= GP); }

// Deliver a fault/trap raised by an instruction, applying the double-fault
// rules. `ret_ip` is the RIP pushed (the faulting instruction for faults).
export function deliver_exception(vector: i32, has_code: bool, code: u32, ret_ip: u64): void {
  stat_inc(STAT_EXCEPTIONS);
  let v = vector;
  let hc = has_code;
  let c = code;
  for (let attempt = 0; attempt < 3; attempt++) {
    clear_fault();
    if (v == PF_VEC) vcpu_store64(VCPU_CR2, exc_cr2_saved);
    do_interrupt(v, hc, c, 0, ret_ip);
    if (!faulted()) return;
    const v2 = exc_vector;
    const c2 = exc_code;
    const hc2 = exc_has_code;
    if (v2 == PF_VEC) exc_cr2_saved = exc_cr2;
    clear_fault();
    if (v == DF_VEC) break; // fault while delivering #DF: triple fault
    if ((is_contributory(v) && is_contributory(v2)) || (v == PF_VEC && (is_contributory(v2) || v2 == PF_VEC))) {
      v = DF_VEC; hc = true; c = 0;
    } else {
      v = v2; hc = hc2; c = c2;
    }
  }
  triple_fault = true;
  triple_fault_vector = vector;
  stat_inc(STAT_TRIPLE_FAULTS);
}
// CR2 is written only when the #PF is actually delivered.
let exc_cr2_saved: u64 = 0;
export function set_pending_cr2(v: u64): void { exc_cr2_saved = v; }

// INT n / INT3 / INTO / INT1 from an instruction handler: delivered at once
// with the next instruction's RIP; a fault during delivery is the handler's.
export function software_interrupt(vector: i32, trap_like: bool): void {
  do_interrupt(vector, false, 0, trap_like ? 0 : SOFT, next_ip);
}

// External interrupt (from the host / APIC), between instructions.
export function external_interrupt(vector: i32): void {
  do_interrupt(vector, false, 0, EXT, rip());
  if (faulted()) {
    const v = exc_vector, hc = exc_has_code, c = exc_code;
    deliver_exception(v, hc, c, rip());
  }
}

function idt_error(vector: i32, flags: i32): u32 {
  return (<u32>vector << 3) | 2 | ((flags & EXT) != 0 ? 1 : 0);
}

// The common delivery path. On success, CS:RIP (through set_next_ip and
// RIP) point at the handler. On failure, a fault is left raised.
function do_interrupt(vector: i32, has_code: bool, code: u32, flags: i32, ret_ip: u64): void {
  const idt = vcpu_load64(VCPU_IDTR_BASE);
  const limit = <u64>vcpu_load32(VCPU_IDTR_LIMIT);
  const old_flags = get_eflags();
  if (!protected_mode) {
    // real mode: IVT of far pointers
    if (<u64>vector * 4 + 3 > limit) { raise_gp(0); return; }
    const ent = read_sys32(idt + <u64>vector * 4);
    if (faulted()) return;
    const sp = reg64(4);
    push16(<u64>old_flags); if (faulted()) return;
    push16(<u64>seg_selector(SEG_CS)); if (faulted()) { set_sp16(sp); return; }
    push16(ret_ip); if (faulted()) { set_sp16(sp); return; }
    set_eflags(old_flags & ~(IF | TF | AC | RF));
    const sel = ent >> 16;
    seg_set(SEG_CS, sel, <u64>(sel << 4), 0xffff, 0x9b);
    finish(<u64>(ent & 0xffff));
    return;
  }
  const entry_size: u64 = long_mode ? 16 : 8;
  if (<u64>vector * entry_size + entry_size - 1 > limit) { raise_gp(idt_error(vector, flags)); return; }
  const gate = read_sys64(idt + <u64>vector * entry_size);
  if (faulted()) return;
  const gate_hi: u64 = long_mode ? read_sys64(idt + <u64>vector * 16 + 8) : 0;
  if (faulted()) return;
  const type = <i32>((gate >> 40) & 0xf);
  const gate_dpl = <i32>((gate >> 45) & 3);
  const present = ((gate >> 47) & 1) != 0;
  let is32 = true;
  let trap = false;
  if (long_mode) {
    if (type != 0xe && type != 0xf) { raise_gp(idt_error(vector, flags)); return; }
    trap = type == 0xf;
  } else {
    if (type == 0x5) { raise_unimplemented(); return; } // task gates: not modelled
    if (type != 0x6 && type != 0x7 && type != 0xe && type != 0xf) { raise_gp(idt_error(vector, flags)); return; }
    is32 = type >= 0xe;
    trap = (type & 1) != 0;
  }
  if ((flags & SOFT) != 0 && gate_dpl < cpl) { raise_gp(idt_error(vector, flags)); return; }
  if (!present) { raise_np(idt_error(vector, flags)); return; }
  const sel = <u32>((gate >> 16) & 0xffff);
  let target: u64 = (gate & 0xffff) | ((gate >> 32) & 0xffff0000);
  if (long_mode) target |= gate_hi << 32;
  const ext: u32 = (flags & EXT) != 0 ? 1 : 0;
  if ((sel & 0xfffc) == 0) { raise_gp(ext); return; }
  const cd = read_desc(sel);
  if (faulted()) return;
  const ca = desc_attr(cd);
  if ((ca & ATTR_S) == 0 || (ca & ATTR_CODE) == 0) { raise_gp((sel & 0xfffc) | ext); return; }
  let new_cpl = attr_dpl(ca);
  if ((ca & ATTR_CONFORMING) != 0) new_cpl = cpl;
  if (new_cpl > cpl) { raise_gp((sel & 0xfffc) | ext); return; }
  if ((ca & ATTR_P) == 0) { raise_np((sel & 0xfffc) | ext); return; }
  if (long_mode && (ca & ATTR_L) == 0) { raise_gp((sel & 0xfffc) | ext); return; }

  const old_ss = <u64>seg_selector(SEG_SS);
  const old_sp = reg64(4);
  const old_cs = <u64>seg_selector(SEG_CS);
  const tss = seg_base(SEG_TR);
  if (long_mode) {
    const ist = <i32>((gate >> 32) & 7);
    let sp: u64 = old_sp;
    if (ist != 0) sp = read_sys64(tss + 0x24 + <u64>(ist - 1) * 8);
    else if (new_cpl < cpl) sp = read_sys64(tss + 4 + <u64>new_cpl * 8);
    if (faulted()) return;
    sp &= ~<u64>15;
    const frame = sp - (has_code ? 48 : 40);
    // the frame is written with the handler's privilege (a ring-3 event
    // pushes onto the ring-0 stack as a supervisor access)
    as_cpl(new_cpl);
    // write the frame top-down; any fault aborts before state changes
    write_sz(frame + (has_code ? 40 : 32), 8, old_ss); if (faulted()) { update_mode(); return; }
    write_sz(frame + (has_code ? 32 : 24), 8, old_sp); if (faulted()) { update_mode(); return; }
    write_sz(frame + (has_code ? 24 : 16), 8, <u64>old_flags); if (faulted()) { update_mode(); return; }
    write_sz(frame + (has_code ? 16 : 8), 8, old_cs); if (faulted()) { update_mode(); return; }
    write_sz(frame + (has_code ? 8 : 0), 8, ret_ip); if (faulted()) { update_mode(); return; }
    if (has_code) { write_sz(frame, 8, <u64>code); if (faulted()) { update_mode(); return; } }
    if (new_cpl < cpl) seg_set(SEG_SS, <u32>new_cpl, 0, 0, 0); // null SS with RPL = new CPL
    seg_set(SEG_CS, (sel & 0xfffc) | <u32>new_cpl, desc_base(cd), desc_limit(cd), ca | 1);
    set_reg64(4, frame);
  } else {
    const w: u64 = is32 ? 4 : 2;
    let sp = old_sp;
    let ss_sel = <u32>old_ss;
    let ss_base = seg_base(SEG_SS);
    let ss_attr = seg_attr(SEG_SS);
    let ss_limit: u32 = 0;
    const outer = new_cpl < cpl;
    if (outer) {
      // 32-bit TSS: ESPn at 4 + 8n, SSn at 8 + 8n
      sp = <u64>read_sys32(tss + 4 + <u64>new_cpl * 8);
      if (faulted()) return;
      ss_sel = read_sys32(tss + 8 + <u64>new_cpl * 8) & 0xffff;
      if (faulted()) return;
      const sd = read_desc(ss_sel);
      if (faulted()) return;
      ss_attr = desc_attr(sd);
      if ((ss_attr & ATTR_P) == 0) { raise_ss(ss_sel & 0xfffc); return; }
      ss_base = desc_base(sd);
      ss_limit = desc_limit(sd);
    }
    const sp32 = (ss_attr & (1 << 14)) != 0;
    const n: u64 = (outer ? 2 : 0) + 3 + (has_code ? 1 : 0);
    let p = (sp - n * w) & (sp32 ? 0xffffffff : 0xffff);
    const base = ss_base;
    let at = p;
    as_cpl(new_cpl);
    if (has_code) { write_sz((base + at) & 0xffffffff, <i32>w, <u64>code); if (faulted()) { update_mode(); return; } at += w; }
    write_sz((base + at) & 0xffffffff, <i32>w, ret_ip); if (faulted()) { update_mode(); return; } at += w;
    write_sz((base + at) & 0xffffffff, <i32>w, old_cs); if (faulted()) { update_mode(); return; } at += w;
    write_sz((base + at) & 0xffffffff, <i32>w, <u64>old_flags); if (faulted()) { update_mode(); return; } at += w;
    if (outer) {
      write_sz((base + at) & 0xffffffff, <i32>w, old_sp); if (faulted()) { update_mode(); return; } at += w;
      write_sz((base + at) & 0xffffffff, <i32>w, old_ss); if (faulted()) { update_mode(); return; }
      seg_set(SEG_SS, ss_sel, ss_base, ss_limit, ss_attr | 1);
    }
    seg_set(SEG_CS, (sel & 0xfffc) | <u32>new_cpl, desc_base(cd), desc_limit(cd), ca | 1);
    if (sp32) set_reg64(4, p); else set_reg64(4, (old_sp & ~<u64>0xffff) | p);
    if (!is32) target &= 0xffff;
  }
  let nf = old_flags & ~(TF | NT | RF | VM);
  if (!trap) nf &= ~IF;
  set_eflags(nf);
  finish(target);
}

// Make memory accesses use `c`'s privilege until update_mode() recomputes
// it from CS (which finish() and the failure paths do).
function as_cpl(c: i32): void { mem_set_mode(c == 3, lin_mask); tlb_set_cpl(c == 3); }

function finish(target: u64): void {
  update_mode();
  fetch_invalidate();
  set_next_ip(target);
  set_rip(target);
}

function push16(v: u64): void {
  const sp = (reg64(4) - 2) & 0xffff;
  write_sz((seg_base(SEG_SS) + sp) & 0xfffff, 2, v);
  if (!faulted()) set_sp16(sp);
}
function set_sp16(sp: u64): void { set_reg64(4, (reg64(4) & ~<u64>0xffff) | (sp & 0xffff)); }

// IRET / IRETD / IRETQ (no task return, no return to virtual-8086 mode).
export function iret(): void {
  const size = opsize;
  const ss_base = seg_base(SEG_SS);
  const sp = reg64(4);
  if (!protected_mode) {
    const ip = read_sz((ss_base + (sp & 0xffff)) & 0xfffff, size);
    if (faulted()) return;
    const cs = <u32>read_sz((ss_base + ((sp + <u64>size) & 0xffff)) & 0xfffff, size) & 0xffff;
    if (faulted()) return;
    const fl = <u32>read_sz((ss_base + ((sp + <u64>(2 * size)) & 0xffff)) & 0xfffff, size);
    if (faulted()) return;
    seg_set(SEG_CS, cs, <u64>(cs << 4), 0xffff, 0x9b);
    const keep = size == 2 ? 0xffff0000 : (VM | 0);
    set_eflags((get_eflags() & keep) | (fl & ~keep));
    set_sp16(sp + <u64>(3 * size));
    finish(ip);
    return;
  }
  if ((get_eflags() & NT) != 0 && !long_mode) { raise_unimplemented(); return; } // task return
  const lin = mode64 ? sp : (ss_base + (sp & (stack_size == 4 ? 0xffffffff : 0xffff))) & 0xffffffff;
  const new_ip = read_sz(lin, size);
  if (faulted()) return;
  const new_cs = <u32>read_sz(lin + <u64>size, size) & 0xffff;
  if (faulted()) return;
  const new_fl = <u32>read_sz(lin + <u64>(2 * size), size);
  if (faulted()) return;
  const rpl = <i32>(new_cs & 3);
  if (rpl < cpl) { raise_gp(new_cs & 0xfffc); return; }
  const outer = rpl > cpl || size == 8;
  let new_sp: u64 = 0;
  let new_ss: u32 = 0;
  if (outer) {
    new_sp = read_sz(lin + <u64>(3 * size), size);
    if (faulted()) return;
    new_ss = <u32>read_sz(lin + <u64>(4 * size), size) & 0xffff;
    if (faulted()) return;
  }
  if ((new_fl & VM) != 0 && !long_mode && cpl == 0) { raise_unimplemented(); return; } // v8086
  const old_cpl = cpl;
  const old_fl = get_eflags();
  if (!load_cs(new_cs, rpl, true)) return;
  // EFLAGS: IOPL only at CPL 0, IF only when CPL <= IOPL
  let writable: u32 = ARITH_FLAGS | TF | DF | NT | AC | ID | RF | 0x0800 | (1 << 19) | (1 << 20);
  if (old_cpl == 0) writable |= IOPL_MASK;
  if (old_cpl <= <i32>((old_fl & IOPL_MASK) >> 12)) writable |= IF;
  if (size == 2) writable &= 0xffff;
  set_eflags((old_fl & ~writable) | (new_fl & writable));
  if (outer) {
    if (long_mode && (new_ss & 0xfffc) == 0 && rpl != 3) seg_set(SEG_SS, new_ss, 0, 0, 0);
    else { load_seg(SEG_SS, new_ss); if (faulted()) return; }
    if (size == 4 && !mode64) set_reg64(4, new_sp & 0xffffffff); else set_reg64(4, new_sp);
    if (rpl > old_cpl) null_outer_segments(rpl);
  } else {
    if (size == 8 || stack_size == 8) set_reg64(4, sp + <u64>(3 * size));
    else if (stack_size == 4) set_reg64(4, (sp + <u64>(3 * size)) & 0xffffffff);
    else set_sp16(sp + <u64>(3 * size));
  }
  finish(size == 8 ? new_ip : new_ip & (size == 4 ? 0xffffffff : 0xffff));
}

// On a return to an outer ring, data segment registers the new CPL may not
// use are nulled (SDM IRET / RET).
export function null_outer_segments(new_cpl: i32): void {
  for (let s = SEG_ES; s <= SEG_GS; s++) {
    if (s == SEG_CS || s == SEG_SS) continue;
    const a = seg_attr(s);
    if ((a & ATTR_P) == 0) continue;
    const conforming_code = (a & ATTR_CODE) != 0 && (a & ATTR_CONFORMING) != 0;
    if (!conforming_code && attr_dpl(a) < new_cpl) seg_set(s, 0, 0, 0, 0);
  }
}
