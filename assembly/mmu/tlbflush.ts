// TLB flushes the MMU asks for when it takes rights away from sptes
// (kvm_flush_remote_tlbs) and root reloads after a root was zapped
// (kvm_reload_remote_mmus). Each bumps a VM-wide generation; the current
// vCPU acts at once, others compare the generation with the one they saw
// when they next enter (kvm_mmu_check_requests).
import { VMB } from "../vm";
import { VCPU, stat_inc } from "../cpu/state";
import { STAT_REMOTE_TLB_FLUSH } from "../stats";
import { tlb_flush } from "./tlb";
import {
  VM_TLB_FLUSH_GEN, VM_MMU_RELOAD_GEN, VM_KNOB_BROKEN_FLUSH, BROKEN_FLUSH_WRPROT,
  MMU_TLB_FLUSH_GEN, MMU_RELOAD_GEN, MMU_REQUESTS, KVM_REQ_MMU_RELOAD,
} from "./layout";

export function kvm_flush_remote_tlbs(): void {
  stat_inc(STAT_REMOTE_TLB_FLUSH);
  const g = atomic.add<u32>(VMB + VM_TLB_FLUSH_GEN, 1) + 1;
  store<u32>(VCPU + MMU_TLB_FLUSH_GEN, g);
  tlb_flush(false);
}

// The flush after write-protecting a newly shadowed gfn; the test-only knob
// BROKEN_FLUSH_WRPROT skips it (the negative control: stale writable TLB
// entries then let guest page-table writes bypass write tracking).
export function kvm_flush_remote_tlbs_wrprot(): void {
  if ((load<u32>(VMB + VM_KNOB_BROKEN_FLUSH) & BROKEN_FLUSH_WRPROT) != 0) return;
  kvm_flush_remote_tlbs();
}

export function kvm_reload_remote_mmus(): void {
  atomic.add<u32>(VMB + VM_MMU_RELOAD_GEN, 1);
  store<u32>(VCPU + MMU_REQUESTS, load<u32>(VCPU + MMU_REQUESTS) | KVM_REQ_MMU_RELOAD);
}

// Requests another vCPU (or an earlier mmu operation) left for this one:
// returns true if the roots must be reloaded.
export function kvm_check_tlb_and_reload_requests(): bool {
  const g = load<u32>(VMB + VM_TLB_FLUSH_GEN);
  if (load<u32>(VCPU + MMU_TLB_FLUSH_GEN) != g) {
    store<u32>(VCPU + MMU_TLB_FLUSH_GEN, g);
    tlb_flush(false);
  }
  const r = load<u32>(VMB + VM_MMU_RELOAD_GEN);
  if (load<u32>(VCPU + MMU_RELOAD_GEN) != r) {
    store<u32>(VCPU + MMU_RELOAD_GEN, r);
    store<u32>(VCPU + MMU_REQUESTS, load<u32>(VCPU + MMU_REQUESTS) | KVM_REQ_MMU_RELOAD);
  }
  return (load<u32>(VCPU + MMU_REQUESTS) & KVM_REQ_MMU_RELOAD) != 0;
}
