// The MMU's entry points from the CPU (KVM: kvm_mmu_new_pgd, kvm_mmu_reset_context,
// kvm_mmu_invlpg). In tdp mode the software TLB caches guest walks and these
// just flush it; the shadow MMU hooks its root switching in here.
import { tlb_flush, tlb_flush_page } from "./tlb";
import { stat_inc, VCPU_CR4, CR4_PGE, vcpu_load64 } from "../cpu/state";
import { STAT_INVLPG } from "../stats";
import { trace, TRACE_CR3, TRACE_INVLPG } from "../trace";

// MOV CR3: a new address space. Global pages survive when CR4.PGE is set.
export function kvm_mmu_new_pgd(cr3: u64): void {
  trace(TRACE_CR3, 0, cr3, 0);
  tlb_flush((vcpu_load64(VCPU_CR4) & CR4_PGE) != 0);
}

// A paging-mode bit changed (CR0.PG/WP, CR4.PAE/PSE/PGE/SMEP/SMAP, EFER.NXE/LMA):
// every cached translation may now be wrong.
export function kvm_mmu_reset_context(): void {
  tlb_flush(false);
}

export function kvm_mmu_invlpg(lin: u64): void {
  stat_inc(STAT_INVLPG);
  trace(TRACE_INVLPG, 0, lin, 0);
  tlb_flush_page(lin);
}
