// System instructions: control/debug registers, MSRs, descriptor tables,
// syscall/sysret, sysenter/sysexit, swapgs, rdtsc(p), invlpg, hlt, clts,
// cache/fence no-ops. Privilege checks per the SDM.
import {
  VCPU, VCPU_CR0, VCPU_CR2, VCPU_CR3, VCPU_CR4, VCPU_CR8, VCPU_EFER, VCPU_DR, VCPU_STAR, VCPU_LSTAR, VCPU_CSTAR,
  VCPU_SFMASK, VCPU_KERNEL_GS_BASE, VCPU_SYSENTER_CS, VCPU_SYSENTER_ESP, VCPU_SYSENTER_EIP, VCPU_PAT,
  VCPU_TSC_OFFSET, VCPU_APIC_BASE, VCPU_MISC_ENABLE, VCPU_PDPTR, VCPU_TSC_AUX, VCPU_INSN_COUNT, VCPU_HALTED,
  VCPU_GDTR_BASE, VCPU_GDTR_LIMIT, VCPU_IDTR_BASE, VCPU_IDTR_LIMIT,
  vcpu_load64, vcpu_store64, vcpu_load32, vcpu_store32, reg64, set_reg64, reg_read, reg_write, set_reg32,
  seg_set, seg_base, seg_selector, seg_attr, seg_limit, SEG_CS, SEG_SS, SEG_FS, SEG_GS, SEG_LDTR, SEG_TR, seg_addr, SEG_BASE,
  CR0_PE, CR0_PG, CR0_WP, CR0_NW, CR0_CD, CR0_TS, CR0_ET, CR4_PAE, CR4_PSE, CR4_PGE, CR4_SMEP, CR4_SMAP, CR4_TSD,
  CR4_DE, CR4_MCE, CR4_PCE, EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE, EXIT_HLT,
  IF, RF, VM, AC, stat_inc, icount, has_feature, FEAT_SMEP, FEAT_SMAP, FEAT_NX,
} from "./state";
import { opsize, reg, rm, mod_, ea, rex_w, rep, next_ip, set_next_ip, read_E, write_E, write_G, ea_plus, addrsize, modrm } from "./decode";
import { read_sz, write_sz, set_exit_pending, read_sys64, write_sys32, probe_write } from "./mem";
import { faulted, raise_gp, raise_ud } from "./fault";
import { get_eflags, set_eflags } from "./flags";
import { cpl, mode64, long_mode, protected_mode, update_mode } from "./mode";
import { read_desc, desc_attr, desc_base, desc_limit, attr_dpl, ATTR_P, ATTR_S, ATTR_CODE, ATTR_RW, ATTR_CONFORMING, desc_addr, desc_lin } from "./seg";
import { kvm_mmu_new_pgd, kvm_mmu_reset_context, kvm_mmu_invlpg } from "../mmu/mmu";
import { PT64_RSVD_HIGH, PT_PRESENT, MAXPHYADDR } from "../mmu/walk";
import { gpa_to_host } from "../vm";
import { STAT_CR_EXITS, STAT_MSR_EXITS, STAT_HALT_EXITS } from "../stats";
import { fetch_invalidate } from "../mmu/tlb";
import { CPUID_7_EBX } from "./cpuid";
import { walk_set_ac } from "../mmu/walk";

@inline function need_cpl0(): bool {
  if (cpl != 0) { raise_gp(0); return false; }
  return true;
}
export function priv_nop(): void { need_cpl0(); } // invd, wbinvd

export function hlt(): void {
  if (!need_cpl0()) return;
  vcpu_store32(VCPU_HALTED, 1);
  stat_inc(STAT_HALT_EXITS);
  set_exit_pending(EXIT_HLT);
}
export function clts(): void {
  if (!need_cpl0()) return;
  vcpu_store64(VCPU_CR0, vcpu_load64(VCPU_CR0) & ~CR0_TS);
}

// ---- control registers

const CR4_VALID: u64 = CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_MCE | CR4_PGE | CR4_PCE | CR4_SMEP | CR4_SMAP;
const CR4_PAGING: u64 = CR4_PAE | CR4_PSE | CR4_PGE | CR4_SMEP | CR4_SMAP;

// PAE (not long mode): MOV CR3 loads the four PDPTEs; reserved bits -> #GP.
function load_pdptrs(cr3: u64): bool {
  const base = cr3 & 0xffffffe0;
  for (let i = 0; i < 4; i++) {
    const h = gpa_to_host(base + <u64>(i * 8));
    const e: u64 = h < 0 ? <u64>-1 : load<u64>(<usize>h);
    if ((e & PT_PRESENT) != 0 && (e & (PT64_RSVD_HIGH | 0x1e6 | (<u64>1 << 63))) != 0) { raise_gp(0); return false; }
  }
  for (let i = 0; i < 4; i++) {
    const h = gpa_to_host(base + <u64>(i * 8));
    vcpu_store64(VCPU_PDPTR + i * 8, h < 0 ? 0 : load<u64>(<usize>h));
  }
  return true;
}

export function set_cr0(v: u64): void {
  const old = vcpu_load64(VCPU_CR0);
  v |= CR0_ET;
  if ((v >> 32) != 0 || ((v & CR0_PG) != 0 && (v & CR0_PE) == 0) || ((v & CR0_NW) != 0 && (v & CR0_CD) == 0)) { raise_gp(0); return; }
  let efer = vcpu_load64(VCPU_EFER);
  const cr4 = vcpu_load64(VCPU_CR4);
  if ((v & CR0_PG) != 0 && (old & CR0_PG) == 0) {
    if ((efer & EFER_LME) != 0) {
      // activating IA-32e mode needs PAE, and a CS that is not already L = 1
      if ((cr4 & CR4_PAE) == 0 || (seg_attr(SEG_CS) & (1 << 13)) != 0) { raise_gp(0); return; }
      efer |= EFER_LMA;
    } else if ((cr4 & CR4_PAE) != 0) {
      if (!load_pdptrs(vcpu_load64(VCPU_CR3))) return;
    }
  } else if ((v & CR0_PG) == 0 && (old & CR0_PG) != 0) {
    if (mode64) { raise_gp(0); return; }
    efer &= ~EFER_LMA;
  }
  vcpu_store64(VCPU_EFER, efer);
  vcpu_store64(VCPU_CR0, v);
  if (((old ^ v) & (CR0_PG | CR0_WP | CR0_PE)) != 0) kvm_mmu_reset_context();
  update_mode();
}
export function set_cr3(v: u64): void {
  if (long_mode) {
    // no PCIDs: bits 63:MAXPHYADDR are reserved
    if ((v >> MAXPHYADDR) != 0) { raise_gp(0); return; }
  } else if ((vcpu_load64(VCPU_CR4) & CR4_PAE) != 0 && (vcpu_load64(VCPU_CR0) & CR0_PG) != 0) {
    if (!load_pdptrs(v)) return;
  }
  vcpu_store64(VCPU_CR3, v);
  kvm_mmu_new_pgd(v);
}
export function set_cr4(v: u64): void {
  const old = vcpu_load64(VCPU_CR4);
  if ((v & ~CR4_VALID) != 0) { raise_gp(0); return; }
  // a CR4 bit of a feature this CPU model does not advertise is reserved
  if ((v & CR4_SMEP) != 0 && !has_feature(FEAT_SMEP)) { raise_gp(0); return; }
  if ((v & CR4_SMAP) != 0 && !has_feature(FEAT_SMAP)) { raise_gp(0); return; }
  if (long_mode && (v & CR4_PAE) == 0) { raise_gp(0); return; }
  if ((v & CR4_PAE) != 0 && (old & CR4_PAE) == 0 && !long_mode && (vcpu_load64(VCPU_CR0) & CR0_PG) != 0) {
    if (!load_pdptrs(vcpu_load64(VCPU_CR3))) return;
  }
  vcpu_store64(VCPU_CR4, v);
  if (((old ^ v) & CR4_PAGING) != 0) kvm_mmu_reset_context();
}

export function mov_R_CR(): void {
  if (!need_cpl0()) return;
  const n = reg; // mod is ignored: always a register operand
  let v: u64;
  switch (n) {
    case 0: v = vcpu_load64(VCPU_CR0); break;
    case 2: v = vcpu_load64(VCPU_CR2); break;
    case 3: v = vcpu_load64(VCPU_CR3); break;
    case 4: v = vcpu_load64(VCPU_CR4); break;
    case 8: v = vcpu_load64(VCPU_CR8); break;
    default: raise_ud(); return;
  }
  reg_write(rm_any(), mode64 ? 8 : 4, false, v);
}
export function mov_CR_R(): void {
  if (!need_cpl0()) return;
  stat_inc(STAT_CR_EXITS);
  const v = reg_read(rm_any(), mode64 ? 8 : 4, false);
  switch (reg) {
    case 0: set_cr0(v); break;
    case 2: vcpu_store64(VCPU_CR2, v); break;
    case 3: set_cr3(v); break;
    case 4: set_cr4(v); break;
    case 8: if ((v & ~<u64>15) != 0) raise_gp(0); else vcpu_store64(VCPU_CR8, v); break;
    default: raise_ud(); break;
  }
}
// MOV CR/DR encode the register in ModRM.rm whatever mod says.
@inline function rm_any(): i32 { return mod_ == 3 ? rm : (modrm & 7); }

export function mov_R_DR(): void {
  if (!need_cpl0()) return;
  let n = reg;
  if (n > 7) { raise_ud(); return; }
  if (n == 4 || n == 5) { if ((vcpu_load64(VCPU_CR4) & CR4_DE) != 0) { raise_ud(); return; } n += 2; }
  reg_write(rm_any(), mode64 ? 8 : 4, false, vcpu_load64(VCPU_DR + n * 8));
}
export function mov_DR_R(): void {
  if (!need_cpl0()) return;
  let n = reg;
  if (n > 7) { raise_ud(); return; }
  if (n == 4 || n == 5) { if ((vcpu_load64(VCPU_CR4) & CR4_DE) != 0) { raise_ud(); return; } n += 2; }
  const v = reg_read(rm_any(), mode64 ? 8 : 4, false);
  if ((n == 6 || n == 7) && (v >> 32) != 0) { raise_gp(0); return; }
  vcpu_store64(VCPU_DR + n * 8, v);
}

// ---- MSRs

export const MSR_IA32_TSC: u32 = 0x10;
export const MSR_IA32_APICBASE: u32 = 0x1b;
export const MSR_IA32_SYSENTER_CS: u32 = 0x174;
export const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
export const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
export const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
export const MSR_IA32_CR_PAT: u32 = 0x277;
export const MSR_EFER: u32 = 0xc0000080;
export const MSR_STAR: u32 = 0xc0000081;
export const MSR_LSTAR: u32 = 0xc0000082;
export const MSR_CSTAR: u32 = 0xc0000083;
export const MSR_SYSCALL_MASK: u32 = 0xc0000084;
export const MSR_FS_BASE: u32 = 0xc0000100;
export const MSR_GS_BASE: u32 = 0xc0000101;
export const MSR_KERNEL_GS_BASE: u32 = 0xc0000102;
export const MSR_TSC_AUX: u32 = 0xc0000103;

export function tsc(): u64 { return icount + vcpu_load64(VCPU_TSC_OFFSET); }

@inline function is_canonical(v: u64): bool { return <u64>((<i64>(v << 16) >> 16)) == v; }

// Returns false (after #GP) for an unknown MSR.
function msr_read(idx: u32): u64 {
  switch (idx) {
    case MSR_IA32_TSC: return tsc();
    case MSR_IA32_APICBASE: return vcpu_load64(VCPU_APIC_BASE);
    case MSR_IA32_SYSENTER_CS: return vcpu_load64(VCPU_SYSENTER_CS);
    case MSR_IA32_SYSENTER_ESP: return vcpu_load64(VCPU_SYSENTER_ESP);
    case MSR_IA32_SYSENTER_EIP: return vcpu_load64(VCPU_SYSENTER_EIP);
    case MSR_IA32_MISC_ENABLE: return vcpu_load64(VCPU_MISC_ENABLE);
    case MSR_IA32_CR_PAT: return vcpu_load64(VCPU_PAT);
    case MSR_EFER: return vcpu_load64(VCPU_EFER);
    case MSR_STAR: return vcpu_load64(VCPU_STAR);
    case MSR_LSTAR: return vcpu_load64(VCPU_LSTAR);
    case MSR_CSTAR: return vcpu_load64(VCPU_CSTAR);
    case MSR_SYSCALL_MASK: return vcpu_load64(VCPU_SFMASK);
    case MSR_FS_BASE: return seg_base(SEG_FS);
    case MSR_GS_BASE: return seg_base(SEG_GS);
    case MSR_KERNEL_GS_BASE: return vcpu_load64(VCPU_KERNEL_GS_BASE);
    case MSR_TSC_AUX: return vcpu_load64(VCPU_TSC_AUX);
    default: raise_gp(0); return 0;
  }
}

function msr_write(idx: u32, v: u64): void {
  switch (idx) {
    case MSR_IA32_TSC: vcpu_store64(VCPU_TSC_OFFSET, v - icount); return;
    case MSR_IA32_APICBASE: vcpu_store64(VCPU_APIC_BASE, v); return;
    case MSR_IA32_SYSENTER_CS: vcpu_store64(VCPU_SYSENTER_CS, v & 0xffff); return;
    case MSR_IA32_SYSENTER_ESP: if (!is_canonical(v)) { raise_gp(0); return; } vcpu_store64(VCPU_SYSENTER_ESP, v); return;
    case MSR_IA32_SYSENTER_EIP: if (!is_canonical(v)) { raise_gp(0); return; } vcpu_store64(VCPU_SYSENTER_EIP, v); return;
    case MSR_IA32_MISC_ENABLE: vcpu_store64(VCPU_MISC_ENABLE, v); return;
    case MSR_IA32_CR_PAT: {
      // each of the 8 entries must be a valid memory type: 0 1 4 5 6 7
      for (let i: u64 = 0; i < 64; i += 8) {
        const t = (v >> i) & 0xff;
        if (t == 2 || t == 3 || t > 7) { raise_gp(0); return; }
      }
      vcpu_store64(VCPU_PAT, v);
      return;
    }
    case MSR_EFER: {
      const old = vcpu_load64(VCPU_EFER);
      if ((v & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)) != 0) { raise_gp(0); return; }
      if ((v & EFER_NXE) != 0 && !has_feature(FEAT_NX)) { raise_gp(0); return; }
      // LME cannot change while paging is on; LMA is read-only
      if ((vcpu_load64(VCPU_CR0) & CR0_PG) != 0 && ((v ^ old) & EFER_LME) != 0) { raise_gp(0); return; }
      const nv = (v & ~EFER_LMA) | (old & EFER_LMA);
      vcpu_store64(VCPU_EFER, nv);
      if (((old ^ nv) & EFER_NXE) != 0) kvm_mmu_reset_context();
      return;
    }
    case MSR_STAR: vcpu_store64(VCPU_STAR, v); return;
    case MSR_LSTAR: if (!is_canonical(v)) { raise_gp(0); return; } vcpu_store64(VCPU_LSTAR, v); return;
    case MSR_CSTAR: if (!is_canonical(v)) { raise_gp(0); return; } vcpu_store64(VCPU_CSTAR, v); return;
    case MSR_SYSCALL_MASK: vcpu_store64(VCPU_SFMASK, v & 0xffffffff); return;
    case MSR_FS_BASE: if (!is_canonical(v)) { raise_gp(0); return; } store<u64>(seg_addr(SEG_FS) + SEG_BASE, v); return;
    case MSR_GS_BASE: if (!is_canonical(v)) { raise_gp(0); return; } store<u64>(seg_addr(SEG_GS) + SEG_BASE, v); return;
    case MSR_KERNEL_GS_BASE: if (!is_canonical(v)) { raise_gp(0); return; } vcpu_store64(VCPU_KERNEL_GS_BASE, v); return;
    case MSR_TSC_AUX: if ((v >> 32) != 0) { raise_gp(0); return; } vcpu_store64(VCPU_TSC_AUX, v); return;
    default: raise_gp(0); return;
  }
}

export function rdmsr(): void {
  if (!need_cpl0()) return;
  stat_inc(STAT_MSR_EXITS);
  const v = msr_read(<u32>reg64(1));
  if (faulted()) return;
  set_reg32(0, <u32>v); set_reg32(2, <u32>(v >> 32));
}
export function wrmsr(): void {
  if (!need_cpl0()) return;
  stat_inc(STAT_MSR_EXITS);
  msr_write(<u32>reg64(1), (reg64(0) & 0xffffffff) | (reg64(2) << 32));
}

export function rdtsc(): void {
  if ((vcpu_load64(VCPU_CR4) & CR4_TSD) != 0 && cpl != 0) { raise_gp(0); return; }
  const t = tsc();
  set_reg32(0, <u32>t); set_reg32(2, <u32>(t >> 32));
}

// ---- descriptor tables (0F 00 group 6, 0F 01 group 7)

function dt_store(base_off: i32, limit_off: i32): void {
  if (mod_ == 3) { raise_ud(); return; }
  // a 16-bit operand size stores a 24-bit base (the top byte 0), as QEMU does
  let base = vcpu_load64(base_off);
  if (!mode64 && opsize == 2) base &= 0xffffff;
  probe_write(ea, mode64 ? 10 : 6);
  if (faulted()) return;
  write_sz(ea, 2, <u64>vcpu_load32(limit_off));
  if (faulted()) return;
  write_sz(ea_plus(2), mode64 ? 8 : 4, base);
}
function dt_load(base_off: i32, limit_off: i32): void {
  if (mod_ == 3) { raise_ud(); return; }
  if (!need_cpl0()) return;
  const limit = <u32>read_sz(ea, 2);
  if (faulted()) return;
  let base = read_sz(ea_plus(2), mode64 ? 8 : 4);
  if (faulted()) return;
  if (mode64 && !is_canonical(base)) { raise_gp(0); return; }
  if (!mode64 && opsize == 2) base &= 0xffffff;
  vcpu_store64(base_off, base);
  vcpu_store32(limit_off, limit);
}

export function grp7(): void {
  const sub = reg & 7;
  if (mod_ == 3) {
    const op = modrm & 0xff;
    if (op == 0xf8) { // swapgs
      if (!mode64) { raise_ud(); return; }
      if (!need_cpl0()) return;
      const gs = seg_base(SEG_GS);
      store<u64>(seg_addr(SEG_GS) + SEG_BASE, vcpu_load64(VCPU_KERNEL_GS_BASE));
      vcpu_store64(VCPU_KERNEL_GS_BASE, gs);
      return;
    }
    if (op == 0xf9) { // rdtscp (CR4.TSD restricts it to CPL 0 like rdtsc)
      if ((vcpu_load64(VCPU_CR4) & CR4_TSD) != 0 && cpl != 0) { raise_gp(0); return; }
      const t = tsc();
      set_reg32(0, <u32>t); set_reg32(2, <u32>(t >> 32)); set_reg32(1, <u32>vcpu_load64(VCPU_TSC_AUX));
      return;
    }
    if (op == 0xca || op == 0xcb) { // clac / stac (SMAP): #UD, not #GP, outside ring 0
      if (cpl != 0) { raise_ud(); return; }
      const f = get_eflags();
      set_eflags(op == 0xca ? f & ~AC : f | AC);
      walk_set_ac(op == 0xcb);
      return;
    }
    if (sub == 4) { write_E(opsize, vcpu_load64(VCPU_CR0)); return; } // smsw r: the whole CR0 (as QEMU; SDM: upper bits undefined before P4)
    if (sub == 6) { lmsw(<u64>read_E(2)); return; }
    raise_ud(); // monitor/mwait/xgetbv/xsetbv/vm* are not advertised
    return;
  }
  switch (sub) {
    case 0: dt_store(VCPU_GDTR_BASE, VCPU_GDTR_LIMIT); return;
    case 1: dt_store(VCPU_IDTR_BASE, VCPU_IDTR_LIMIT); return;
    case 2: dt_load(VCPU_GDTR_BASE, VCPU_GDTR_LIMIT); return;
    case 3: dt_load(VCPU_IDTR_BASE, VCPU_IDTR_LIMIT); return;
    case 4: write_sz(ea, 2, vcpu_load64(VCPU_CR0) & 0xffff); return;
    case 6: { const v = read_sz(ea, 2); if (!faulted()) lmsw(v); return; }
    case 7: if (need_cpl0()) kvm_mmu_invlpg(ea); return;
    default: raise_ud(); return;
  }
}
// LMSW: sets PE/MP/EM/TS; cannot clear PE
function lmsw(v: u64): void {
  if (!need_cpl0()) return;
  const cr0 = vcpu_load64(VCPU_CR0);
  set_cr0((cr0 & ~<u64>0xe) | (v & 0xf) | (cr0 & CR0_PE));
}

export function grp6(): void {
  const sub = reg & 7;
  if (!protected_mode) { raise_ud(); return; }
  switch (sub) {
    case 0: write_E(mod_ == 3 ? opsize : 2, <u64>seg_selector(SEG_LDTR)); return; // sldt
    case 1: write_E(mod_ == 3 ? opsize : 2, <u64>seg_selector(SEG_TR)); return; // str
    case 2: case 3: {
      if (!need_cpl0()) return;
      const sel = <u32>read_E(2) & 0xffff;
      if (faulted()) return;
      load_system_seg(sub == 2 ? SEG_LDTR : SEG_TR, sel);
      return;
    }
    case 4: case 5: { // verr / verw
      const sel = <u32>read_E(2) & 0xffff;
      if (faulted()) return;
      // a selector beyond the table just clears ZF; a #PF reading it is real
      let ok = false;
      const a = (sel & 0xfffc) != 0 ? desc_lin(sel, 8) : -1;
      if (a >= 0) {
        const d = read_sys64(<u64>a);
        if (faulted()) return;
        const at = desc_attr(d);
        if ((at & ATTR_S) != 0 && desc_visible(at, sel)) {
          ok = sub == 4 ? ((at & ATTR_CODE) == 0 || (at & ATTR_RW) != 0) : ((at & ATTR_CODE) == 0 && (at & ATTR_RW) != 0);
        }
      }
      set_eflags(ok ? get_eflags() | (1 << 6) : get_eflags() & ~(1 << 6));
      return;
    }
    default: raise_ud(); return;
  }
}

// LLDT / LTR: system descriptors (16 bytes in long mode); LTR marks the TSS busy.
function load_system_seg(s: i32, sel: u32): void {
  if ((sel & 0xfffc) == 0) {
    if (s == SEG_TR) { raise_gp(0); return; }
    seg_set(s, sel, 0, 0, 0);
    return;
  }
  if ((sel & 4) != 0) { raise_gp(sel & 0xfffc); return; }
  const d = read_desc(sel);
  if (faulted()) return;
  const a = desc_attr(d);
  const type = a & 0xf;
  if ((a & ATTR_S) != 0) { raise_gp(sel & 0xfffc); return; }
  if (s == SEG_LDTR ? type != 2 : (type != 9 && !(type == 1 && !long_mode))) { raise_gp(sel & 0xfffc); return; }
  if ((a & ATTR_P) == 0) { raise_gp_np(sel); return; }
  let base = desc_base(d);
  if (long_mode) {
    // 16-byte descriptor: the upper half must be in the GDT, have type 0
    // and give a canonical base
    const a16 = desc_lin(sel, 16);
    if (a16 < 0) { raise_gp(sel & 0xfffc); return; }
    const hi = read_sys64(<u64>a16 + 8);
    if (faulted()) return;
    base |= (hi & 0xffffffff) << 32;
    if (((hi >> 8) & 0x1f) != 0 || !is_canonical(base)) { raise_gp(sel & 0xfffc); return; }
  }
  if (s == SEG_TR) {
    // set the busy bit (type 9 -> 11) in the GDT
    const addr = <u64>desc_addr(sel) + 4;
    write_sys32(addr, <u32>(d >> 32) | (1 << 9));
    if (faulted()) return;
    seg_set(s, sel, base, desc_limit(d), a | 2);
  } else seg_set(s, sel, base, desc_limit(d), a);
}
import { raise_np } from "./fault";
function raise_gp_np(sel: u32): void { raise_np(sel & 0xfffc); }

// VERR/VERW/LAR/LSL see a descriptor only if it is a conforming code segment
// or its DPL is at least both the CPL and the selector's RPL.
function desc_visible(at: u32, sel: u32): bool {
  const conforming = (at & ATTR_CODE) != 0 && (at & ATTR_CONFORMING) != 0;
  return conforming || (attr_dpl(at) >= cpl && attr_dpl(at) >= <i32>(sel & 3));
}

export function lar(): void { lar_lsl(true); }
export function lsl(): void { lar_lsl(false); }
function lar_lsl(is_lar: bool): void {
  if (!protected_mode) { raise_ud(); return; }
  const sel = <u32>read_E(2) & 0xffff;
  if (faulted()) return;
  let ok = false;
  let value: u64 = 0;
  const a = (sel & 0xfffc) != 0 ? desc_lin(sel, 8) : -1;
  if (a >= 0) {
    {
      const d = read_sys64(<u64>a);
      if (faulted()) return;
      const at = desc_attr(d);
      const priv_ok = desc_visible(at, sel);
      const type = at & 0xf;
      // system types LAR/LSL accept (SDM LAR, LSL): IA-32e mode has no
      // 16-bit TSS or gates, and LSL no gates at all
      let sys_ok: bool;
      if ((at & ATTR_S) != 0) sys_ok = true;
      else if (long_mode) sys_ok = type == 2 || type == 9 || type == 11 || (is_lar && type == 12);
      else sys_ok = type == 1 || type == 2 || type == 3 || type == 9 || type == 11 || (is_lar && (type == 4 || type == 5 || type == 12));
      ok = priv_ok && sys_ok;
      value = is_lar ? ((d >> 32) & 0x00f0ff00) : <u64>desc_limit(d);
    }
  }
  set_eflags(ok ? get_eflags() | (1 << 6) : get_eflags() & ~(1 << 6));
  if (ok) write_G(opsize == 2 ? 2 : 4, value);
}

// ---- fast system calls

const CODE64_ATTR: u32 = 0xa09b; // P DPL0 S code exec/read accessed, L, G
const DATA_ATTR: u32 = 0xc093; // P DPL0 S data rw accessed, B, G
const CODE32_ATTR: u32 = 0xc09b;

// SYSCALL (SDM, Intel): #UD unless in 64-bit mode with EFER.SCE (Intel CPUs,
// which we claim to be, do not support it in compatibility mode, so CSTAR is
// never used). CS = STAR[47:32] & ~3, SS = STAR[47:32] + 8, flat, ring 0.
export function syscall(): void {
  const efer = vcpu_load64(VCPU_EFER);
  if ((efer & EFER_SCE) == 0 || !mode64) { raise_ud(); return; }
  const star_cs = <u32>(vcpu_load64(VCPU_STAR) >> 32) & 0xffff;
  set_reg64(1, next_ip);
  const fl = get_eflags();
  set_reg64(11, <u64>(fl & ~RF));
  seg_set(SEG_CS, star_cs & 0xfffc, 0, 0xffffffff, CODE64_ATTR);
  seg_set(SEG_SS, (star_cs + 8) & 0xffff, 0, 0xffffffff, DATA_ATTR);
  const nf = fl & ~(<u32>vcpu_load64(VCPU_SFMASK)) & ~RF;
  set_eflags(nf);
  walk_set_ac((nf & AC) != 0);
  update_mode();
  fetch_invalidate();
  set_next_ip(vcpu_load64(VCPU_LSTAR));
}
// SYSRET: #UD unless in 64-bit mode with EFER.SCE; #GP(0) outside ring 0 or
// (Intel) for a non-canonical RCX with REX.W. CS = STAR[63:48] (+16 for
// 64-bit) | 3, SS = STAR[63:48] + 8 | 3, RFLAGS = (R11 & 3C7FD7H) | 2.
export function sysret(): void {
  const efer = vcpu_load64(VCPU_EFER);
  if ((efer & EFER_SCE) == 0 || !mode64) { raise_ud(); return; }
  if (cpl != 0) { raise_gp(0); return; }
  const star = vcpu_load64(VCPU_STAR);
  const base = <u32>(star >> 48) & 0xffff;
  let target: u64;
  if (rex_w) {
    target = reg64(1);
    if (!is_canonical(target)) { raise_gp(0); return; }
    seg_set(SEG_CS, ((base + 16) & 0xfffc) | 3, 0, 0xffffffff, CODE64_ATTR | (3 << 5));
  } else {
    target = reg64(1) & 0xffffffff;
    seg_set(SEG_CS, (base & 0xfffc) | 3, 0, 0xffffffff, CODE32_ATTR | (3 << 5));
  }
  // SS gets a flat data segment with RPL 3 (its DPL stays as the CPU forces it)
  seg_set(SEG_SS, ((base + 8) & 0xffff) | 3, 0, 0xffffffff, DATA_ATTR | (3 << 5));
  const nf = (<u32>reg64(11) & 0x3c7fd7) | 2;
  set_eflags(nf);
  walk_set_ac((nf & AC) != 0);
  update_mode();
  fetch_invalidate();
  set_next_ip(target);
}

export function sysenter(): void {
  if (!protected_mode) { raise_gp(0); return; }
  const cs = <u32>vcpu_load64(VCPU_SYSENTER_CS) & 0xfffc;
  if (cs == 0) { raise_gp(0); return; }
  set_eflags(get_eflags() & ~(VM | IF | RF));
  if (long_mode) seg_set(SEG_CS, cs, 0, 0xffffffff, CODE64_ATTR);
  else seg_set(SEG_CS, cs, 0, 0xffffffff, CODE32_ATTR);
  seg_set(SEG_SS, cs + 8, 0, 0xffffffff, DATA_ATTR);
  update_mode();
  fetch_invalidate();
  const eip = vcpu_load64(VCPU_SYSENTER_EIP), esp = vcpu_load64(VCPU_SYSENTER_ESP);
  set_reg64(4, long_mode ? esp : esp & 0xffffffff);
  set_next_ip(long_mode ? eip : eip & 0xffffffff);
}
export function sysexit(): void {
  const cs = <u32>vcpu_load64(VCPU_SYSENTER_CS) & 0xfffc;
  if (!protected_mode || cpl != 0 || cs == 0) { raise_gp(0); return; }
  if (rex_w && (!is_canonical(reg64(1)) || !is_canonical(reg64(2)))) { raise_gp(0); return; }
  if (rex_w) {
    seg_set(SEG_CS, (cs + 32) | 3, 0, 0xffffffff, CODE64_ATTR | (3 << 5));
    seg_set(SEG_SS, (cs + 40) | 3, 0, 0xffffffff, DATA_ATTR | (3 << 5));
    set_reg64(4, reg64(1));
    update_mode(); fetch_invalidate();
    set_next_ip(reg64(2));
  } else {
    seg_set(SEG_CS, (cs + 16) | 3, 0, 0xffffffff, CODE32_ATTR | (3 << 5));
    seg_set(SEG_SS, (cs + 24) | 3, 0, 0xffffffff, DATA_ATTR | (3 << 5));
    set_reg64(4, reg64(1) & 0xffffffff);
    update_mode(); fetch_invalidate();
    set_next_ip(reg64(2) & 0xffffffff);
  }
}

// 0F AE group 15: fences (register forms) and clflush; fxsave & co. are not advertised
export function grp15(): void {
  const sub = reg & 7;
  if (mod_ == 3) { if (sub >= 5) return; raise_ud(); return; }
  if (sub == 7) return; // clflush
  raise_ud();
}
