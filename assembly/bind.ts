// Pointing this module instance at a vCPU and a VM in linear memory.
import { bind_vcpu_ptr } from "./cpu/state";
import { memslots_changed as slots_changed, bind_vm_ptr } from "./vm";
import { tlb_flush } from "./mmu/tlb";
import { shadow_reset_context } from "./mmu/roots";
import { VM_MMU_MODE, MMU_MODE_TDP } from "./mmu/layout";
import { VMB } from "./vm";

export function vcpu_bind(base: usize): void { bind_vcpu_ptr(base); }
export function vm_bind(base: usize): void { bind_vm_ptr(base); }
// First byte of linear memory the host may use (after static data).
export function heap_base(): usize { return __heap_base; }
export function memslots_changed(): void { slots_changed(); }
export function tlb_flush_all(): void { tlb_flush(false); }
// The host loaded paging state (CR0/CR3/CR4/EFER, PDPTRs) into the bound vCPU
// behind the CPU's back (KVM_SET_SREGS): like kvm_mmu_reset_context, drop
// the software TLB and, in shadow mode, every root built for the old state.
// Without it a root of the old mode stayed in use and the MMU trapped.
export function mmu_reset_context(): void {
  if (load<u32>(VMB + VM_MMU_MODE) != MMU_MODE_TDP) shadow_reset_context();
  tlb_flush(false);
}
