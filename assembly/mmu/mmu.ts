// The MMU's entry points from the CPU (KVM: kvm_mmu_new_pgd, kvm_mmu_reset_context,
// kvm_mmu_invlpg). In tdp mode the software TLB caches guest walks and these
// only flush it; in shadow mode they also switch, drop or keep shadow roots.
// Under shadow paging each of them is a vmexit (counted in `exits`).
import { tlb_flush, tlb_flush_page } from "./tlb";
import { stat_inc, VCPU_CR4, CR4_PGE, vcpu_load64 } from "../cpu/state";
import { STAT_INVLPG, STAT_EXITS } from "../stats";
import { VMB } from "../vm";
import { VM_MMU_MODE, MMU_MODE_TDP, VM_KNOB_BROKEN_FLUSH, BROKEN_FLUSH_INVLPG, BROKEN_FLUSH_CR3 } from "./layout";
import { shadow_new_pgd, shadow_reset_context } from "./roots";
import { trace, TRACE_CR3, TRACE_INVLPG } from "../trace";


@inline function shadow_mode(): bool { return load<u32>(VMB + VM_MMU_MODE) != MMU_MODE_TDP; }
@inline function broken(bit: u32): bool { return (load<u32>(VMB + VM_KNOB_BROKEN_FLUSH) & bit) != 0; }

// MOV CR3: a new address space. Global pages survive when CR4.PGE is set.
export function kvm_mmu_new_pgd(cr3: u64): void {
  let hit: u32 = 0;
  if (shadow_mode()) {
    stat_inc(STAT_EXITS);
    hit = shadow_new_pgd() ? 1 : 0;
  }
  trace(TRACE_CR3, hit, cr3, 0);
  if (!broken(BROKEN_FLUSH_CR3)) tlb_flush((vcpu_load64(VCPU_CR4) & CR4_PGE) != 0);
}

// A paging-mode bit changed (CR0.PG/WP, CR4.PAE/PSE/PGE/SMEP/SMAP, EFER.NXE/LMA):
// every cached translation may now be wrong, and shadow pages built for the
// old role must not be used (roots are keyed by role).
export function kvm_mmu_reset_context(): void {
  if (shadow_mode()) {
    stat_inc(STAT_EXITS);
    shadow_reset_context();
  }
  tlb_flush(false);
}

// INVLPG. Shadow pages are never out of sync with the guest's tables (every
// shadowed table is write-protected), so only the TLB entry goes.
export function kvm_mmu_invlpg(lin: u64): void {
  stat_inc(STAT_INVLPG);
  if (shadow_mode()) stat_inc(STAT_EXITS);
  trace(TRACE_INVLPG, 0, lin, 0);
  if (!broken(BROKEN_FLUSH_INVLPG)) tlb_flush_page(lin);
}
