// Counters, named after KVM's kvm_stat names where one exists. Each is a u64
// at VCPU_STATS + id*8 in the vCPU struct. The host lists them by walking the
// module's STAT_* exports (lower-cased), so this file is the only list.
export const STAT_EXITS: i32 = 0; // every vmexit a shadow-paging hypervisor would take
export const STAT_IO_EXITS: i32 = 1;
export const STAT_MMIO_EXITS: i32 = 2;
export const STAT_HALT_EXITS: i32 = 3;
export const STAT_IRQ_EXITS: i32 = 4;
export const STAT_BUDGET_EXITS: i32 = 5; // run() returned because the budget ran out
export const STAT_HOST_EXITS: i32 = 6; // any return from run() to TypeScript
export const STAT_INSN_EMULATION: i32 = 7; // instructions the host emulated for the guest
export const STAT_PF_FIXED: i32 = 8;
export const STAT_PF_GUEST: i32 = 9;
export const STAT_TLB_FLUSH: i32 = 10;
export const STAT_INVLPG: i32 = 11;
export const STAT_CR_EXITS: i32 = 12; // mov to CR0/CR3/CR4
export const STAT_CPUID_EXITS: i32 = 13;
export const STAT_MSR_EXITS: i32 = 14;
export const STAT_EXCEPTIONS: i32 = 15; // exceptions delivered to the guest
export const STAT_INTERRUPTS: i32 = 16; // external interrupts injected
export const STAT_TLB_MISS: i32 = 17; // software TLB misses (walks)
export const STAT_MMU_SHADOW_ZAPPED: i32 = 18;
export const STAT_MMU_PTE_WRITE: i32 = 19;
export const STAT_MMU_PTE_UPDATED: i32 = 20;
export const STAT_MMU_FLOODED: i32 = 21;
export const STAT_MMU_CACHE_MISS: i32 = 22;
export const STAT_MMU_RECYCLED: i32 = 23;
export const STAT_MMU_UNSYNC: i32 = 24;
export const STAT_REMOTE_TLB_FLUSH: i32 = 25;
export const STAT_PT_WRITE_EXITS: i32 = 26;
export const STAT_TRIPLE_FAULTS: i32 = 27;
export const STAT_PF_SPURIOUS: i32 = 28; // shadow page faults the spte walk had already fixed
export const STAT_PF_EMULATE: i32 = 29; // shadow page faults that ended in an emulated write (PT_WRITE)
export const STAT_PREV_ROOTS_HIT: i32 = 30; // MOV CR3 found its root in prev_roots (seed 004)
export const STAT_MMU_ROOT_ALLOC: i32 = 31; // roots built by kvm_mmu_load
export const STAT_MMU_FAST_ZAP: i32 = 32; // kvm_mmu_zap_all_fast (mmu_valid_gen bumps)
export const STAT_FAST_PF_FIXED: i32 = 33; // write faults fixed by fast_page_fault without mmu_lock (dirty logging, seeds 000/001)
export const STAT_PAUSE_EXITS: i32 = 40; // PAUSE-loop exits (SMP: a spinning vCPU yields; VM_PLE_WINDOW)
