// The CPU's operating mode, derived from CR0.PE, EFER.LMA, CS.L/D, SS.B and
// CPL. Recomputed only when one of those changes (CS/SS loads, CR0/EFER
// writes, run() entry), so decoding reads plain globals.
import {
  VCPU_CR0, VCPU_EFER, SEG_CS, SEG_SS, CR0_PE, EFER_LMA, vcpu_load64, seg_attr, seg_selector,
} from "./state";
import { tlb_set_cpl, links_invalidate } from "../mmu/tlb";
import { mem_set_mode, mem_set_sys_mask } from "./mem";

export let mode64: bool = false; // 64-bit mode (long mode with CS.L)
export let long_mode: bool = false; // EFER.LMA (64-bit or compatibility mode)
export let protected_mode: bool = false; // CR0.PE
export let code_size: i32 = 2; // default operand/address size: 2, 4 or 8
export let stack_size: i32 = 2; // stack pointer width: 2, 4 or 8
export let cpl: i32 = 0;

const ATTR_L: u32 = 1 << 13;
const ATTR_DB: u32 = 1 << 14;

export function update_mode(): void {
  const was64 = mode64, was_size = code_size;
  const cr0 = vcpu_load64(VCPU_CR0);
  const efer = vcpu_load64(VCPU_EFER);
  protected_mode = (cr0 & CR0_PE) != 0;
  long_mode = (efer & EFER_LMA) != 0;
  const cs = seg_attr(SEG_CS);
  mode64 = long_mode && (cs & ATTR_L) != 0;
  if (mode64) code_size = 8;
  else code_size = (protected_mode && (cs & ATTR_DB) != 0) ? 4 : 2;
  if (mode64) stack_size = 8;
  else stack_size = (protected_mode && (seg_attr(SEG_SS) & ATTR_DB) != 0) ? 4 : 2;
  cpl = protected_mode ? <i32>(seg_selector(SEG_CS) & 3) : 0;
  if (mode64 != was64 || code_size != was_size) links_invalidate(); // blocks are per mode (cpu/block.ts)
  tlb_set_cpl(cpl == 3);
  mem_set_mode(cpl == 3, mode64 ? <u64>-1 : 0xffffffff);
  mem_set_sys_mask(long_mode ? <u64>-1 : 0xffffffff);
}
