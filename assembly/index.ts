// The module's exports, nothing else: the layout constants (one source of
// truth, read by src/core/layout.ts), binding to a vCPU / VM, and run().
export * from "./cpu/state";
export * from "./stats";
export * from "./trace";
export {
  VM_NR_SLOTS, VM_SLOTS, VM_MAX_SLOTS, MEMSLOT_SIZE, MEMSLOT_BASE_GFN, MEMSLOT_NPAGES, MEMSLOT_HOST,
  MEMSLOT_FLAGS, MEMSLOT_DIRTY_BITMAP, MEM_LOG_DIRTY_PAGES, MEM_READONLY, VM_SIZE,
} from "./vm";
export { run } from "./cpu/run";
export * from "./mmu/exports";
export * from "./mmu/pte_write"; // the pte-write rules' primitives (issue 5)
// SMP: the remote requests (KVM's kvm_flush_remote_tlbs / kvm_reload_remote_mmus) and their generations
export { VM_TLB_FLUSH_GEN, VM_MMU_RELOAD_GEN, MMU_TLB_FLUSH_GEN, MMU_RELOAD_GEN } from "./mmu/layout";
export { kvm_flush_remote_tlbs, kvm_reload_remote_mmus } from "./mmu/tlbflush";
export { VM_BUS_LOCK, VM_PLE_WINDOW } from "./vm";
export * from "./mmu/dirty_exports"; // memslots, dirty logging, write-protect-all (issue 8)
export { decode_length, decoded_field } from "./debug";
export { vcpu_bind, vm_bind, heap_base, memslots_changed, tlb_flush_all, mmu_reset_context } from "./bind";
