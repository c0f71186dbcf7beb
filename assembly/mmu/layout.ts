// Where the shadow MMU keeps its state in linear memory. Three places:
//   * the VM struct (struct kvm_arch's MMU half): mode, mmu_lock, mmu_valid_gen,
//     n_max_mmu_pages, the shadow page pool, the hash, the pte_list_desc pool,
//     the rmap and write-track arrays, knobs, the audit report;
//   * the vCPU struct's MMU area (struct kvm_mmu + the per-vCPU object caches):
//     the current root, pae_root[4], prev_roots[3], requests, the guest walker;
//   * pools the host carves out of linear memory (src/vm.ts computes the
//     layout from the sizes below and hands the addresses to kvm_mmu_vm_init).
// TypeScript reads these constants from the module's exports.
import { VCPU_MMU } from "../cpu/state";

// ---- VM struct: MMU globals (VM_* offsets from the VM base)
export const VM_MMU_MODE: i32 = 2048; // u32 MMU_MODE_*
export const VM_MMU_LOCK: i32 = 2052; // u32 mmu_lock (0 free, 1 held), taken with atomics
export const VM_MMU_VALID_GEN: i32 = 2056; // u32 kvm->arch.mmu_valid_gen
export const VM_N_MAX_MMU_PAGES: i32 = 2060; // u32 n_max_mmu_pages
export const VM_N_USED_MMU_PAGES: i32 = 2064; // u32 n_used_mmu_pages
export const VM_SP_POOL_NR: i32 = 2068; // u32 shadow pages in the pool (n_max + slack)
export const VM_SP_HDR_BASE: i32 = 2072; // u32 kvm_mmu_page headers, SP_SIZE each
export const VM_SP_SPT_BASE: i32 = 2076; // u32 spt pages, 4 KiB each (page aligned)
export const VM_SP_GFNS_BASE: i32 = 2080; // u32 gfns arrays (indirect pages), SP_GFNS_SIZE each
export const VM_SP_FREE: i32 = 2084; // u32 free list of headers (linked through SP_HASH_NEXT)
export const VM_SP_FREE_NR: i32 = 2088; // u32
export const VM_ACTIVE_HEAD: i32 = 2092; // u32 active_mmu_pages: newest first
export const VM_ACTIVE_TAIL: i32 = 2096; // u32 ... oldest last (recycled first)
export const VM_HASH_BASE: i32 = 2100; // u32 mmu_page_hash[KVM_NUM_MMU_PAGES] (u32 heads)
export const VM_DESC_BASE: i32 = 2104; // u32 pte_list_desc pool
export const VM_DESC_NR: i32 = 2108; // u32 descs in the pool
export const VM_DESC_FREE: i32 = 2112; // u32 free list (linked through DESC_MORE)
export const VM_DESC_FREE_NR: i32 = 2116; // u32
export const VM_RMAP_BASE: i32 = 2120; // u32 rmap heads, one u32 per gfn (4 KiB level)
export const VM_GFN_TRACK_BASE: i32 = 2124; // u32 write-track counts, one u16 per gfn
export const VM_NR_GFNS: i32 = 2128; // u32 gfns covered by rmap / gfn_track
export const VM_POOL_LOCK: i32 = 2132; // u32 the pools' allocator lock (kmem_cache's)
export const VM_TLB_FLUSH_GEN: i32 = 2136; // u32 bumped by kvm_flush_remote_tlbs
export const VM_MMU_RELOAD_GEN: i32 = 2140; // u32 bumped by kvm_reload_remote_mmus
export const VM_MMU_WRITE_PROTECT_ALL_INDICATOR: i32 = 2144; // u64 (seed 000; not used yet)
export const VM_INDIRECT_SHADOW_PAGES: i32 = 2152; // u32 indirect_shadow_pages
export const VM_DESC_BUMP: i32 = 2156; // u32 descs never handed out start at this index (the free list is empty at first)
// knobs (u32 each; the host sets them, see src/mmu/knobs.ts)
export const VM_KNOB_PREV_ROOTS: i32 = 2160; // 1: keep 3 cached roots (seed 004)
export const VM_KNOB_BROKEN_FLUSH: i32 = 2164; // test only: BROKEN_FLUSH_* bits
export const VM_KNOB_ZAP_ORPHANS: i32 = 2168; // 1: zapping a page also zaps children left without parents
export const VM_SP_BUMP: i32 = 2172; // u32 shadow page headers never handed out start at this index (as VM_DESC_BUMP)
// the audit's report
export const VM_AUDIT_ERRORS: i32 = 2176; // u32 problems found by the last kvm_mmu_audit
export const VM_AUDIT_CODE: i32 = 2180; // u32 AUDIT_* of the first problem
export const VM_AUDIT_SP: i32 = 2184; // u32 shadow page header of the first problem (0 if none)
export const VM_AUDIT_INDEX: i32 = 2188; // u32 spte index of the first problem
export const VM_AUDIT_GFN: i32 = 2192; // u64
export const VM_AUDIT_SPTE: i32 = 2200; // u64
export const VM_AUDIT_DETAIL: i32 = 2208; // u64 (what was expected)
export const VM_AUDIT_CHECKED: i32 = 2216; // u32 sptes checked
// large sptes: rmaps and "disallow large page" counts per 2 MiB / 1 GiB region
// (KVM's slot->arch.rmap[level] and lpage_info.disallow_lpage)
export const VM_RMAP_BASE_2M: i32 = 2224; // u32 rmap heads, one u32 per 2 MiB region
export const VM_RMAP_BASE_1G: i32 = 2228; // u32 ... per 1 GiB region
export const VM_LPAGE_BASE_2M: i32 = 2232; // u32 disallow_lpage, one u32 per 2 MiB region
export const VM_LPAGE_BASE_1G: i32 = 2236; // u32 ... per 1 GiB region
export const VM_KNOB_LARGE_SPTES: i32 = 2240; // 1: map large guest pages with large sptes when nothing forbids it
// not an MMU knob, but set with them: 1 = the interpreter runs cached blocks (cpu/block.ts)
export const VM_KNOB_BLOCK_CACHE: i32 = 2244;
// hot blocks are compiled to WebAssembly after this many runs (cpu/jit.ts, src/jit/); 0 = never
export const VM_KNOB_BLOCK_JIT: i32 = 2248;
// 1: a shadow page fault also installs its not-present neighbours that can be (FNAME(pte_prefetch), fault.ts)
export const VM_KNOB_PTE_PREFETCH: i32 = 2252;

export const MMU_MODE_TDP: u32 = 0;
export const MMU_MODE_SHADOW: u32 = 1;

export const BROKEN_FLUSH_INVLPG: u32 = 1 << 0; // INVLPG does not flush the TLB entry
export const BROKEN_FLUSH_CR3: u32 = 1 << 1; // MOV CR3 does not flush the TLB
export const BROKEN_FLUSH_WRPROT: u32 = 1 << 2; // write-protecting a gfn does not flush the TLB

// ---- kvm_mmu_page (one header per shadow page)
export const SP_SIZE: i32 = 192;
export const SP_ROLE: i32 = 0; // u32 kvm_mmu_page_role (see mmu_page.ts)
export const SP_GFN: i32 = 8; // u64
export const SP_SPT: i32 = 16; // u32 address of the 512 sptes
export const SP_GFNS: i32 = 20; // u32 address of the gfn of each spte (indirect pages; 0 if direct)
export const SP_PARENT_PTES: i32 = 24; // u32 pte_list head of the sptes that point here
export const SP_HASH_NEXT: i32 = 28; // u32 next in the hash bucket (or in the free list)
export const SP_LINK_PREV: i32 = 32; // u32 active_mmu_pages links
export const SP_LINK_NEXT: i32 = 36; // u32
export const SP_MMU_VALID_GEN: i32 = 40; // u32
export const SP_ROOT_COUNT: i32 = 44; // u32
export const SP_UNSYNC: i32 = 48; // u32 (unsync pages are not implemented: always 0)
export const SP_WRITE_FLOODING_COUNT: i32 = 52; // u32
export const SP_POSSIBLE_WRITABLE_SPTES: i32 = 56; // u32 (seed 000)
export const SP_FLAGS: i32 = 60; // u32 SPF_*
export const SP_POSSIBLE_WRITABLE_SPTE_BITMAP: i32 = 64; // 512 bits (seed 000)
export const SP_MMU_WRITE_PROTECT_ALL_GEN: i32 = 128; // u64 (seed 000)
export const SP_INDEX: i32 = 136; // u32 index in the pool
export const SPF_IN_USE: u32 = 1 << 0;
export const SPF_ON_ACTIVE: u32 = 1 << 1;

export const SPT_SIZE: i32 = 4096; // 512 x u64
export const SP_GFNS_SIZE: i32 = 2048; // 512 x u32
export const SPTE_ENTRIES: i32 = 512;

// ---- the hash of shadow pages by gfn (KVM_MMU_HASH_SHIFT 12)
export const KVM_MMU_HASH_SHIFT: i32 = 12;
export const KVM_NUM_MMU_PAGES: i32 = 1 << KVM_MMU_HASH_SHIFT;

// ---- pte_list_desc (rmap and parent_ptes chains): 14 sptes per desc, like KVM
export const PTE_LIST_EXT: i32 = 14;
export const DESC_MORE: i32 = 0; // u32 next desc (full ones)
export const DESC_SPTE_COUNT: i32 = 4; // u32 sptes in this desc
export const DESC_TAIL_COUNT: i32 = 8; // u32 sptes in all the descs after this one
export const DESC_SPTES: i32 = 16; // PTE_LIST_EXT x u32 spte addresses
export const PTE_LIST_DESC_SIZE: i32 = 72;

// ---- default sizes (KVM: KVM_PERMILLE_MMU_PAGES, KVM_MIN_ALLOC_MMU_PAGES)
export const KVM_PERMILLE_MMU_PAGES: i32 = 20;
export const KVM_MIN_ALLOC_MMU_PAGES: i32 = 64;
export const KVM_MIN_FREE_MMU_PAGES: i32 = 5;
export const KVM_REFILL_PAGES: i32 = 25;
export const SP_POOL_SLACK: i32 = 64; // headroom beyond n_max for the vCPUs' object caches
export const DESCS_PER_MMU_PAGE: i32 = 8; // pte_list_desc pool = guest pages + n_max * this

// ---- the vCPU's MMU area (offsets from the vCPU base; 2 KiB at VCPU_MMU)
export const MMU_ROOT_HPA: i32 = VCPU_MMU + 0; // u32 spt of the root page (4-level), 0 = invalid
export const MMU_ROOT_LEVEL: i32 = VCPU_MMU + 4; // u32 shadow root level: 4, 3 (pae_root) or 0 (none)
export const MMU_ROOT_PGD: i32 = VCPU_MMU + 8; // u64 the guest CR3 the root shadows
export const MMU_PAE_ROOT: i32 = VCPU_MMU + 16; // 4 x u32 spt of the level-2 pages, 0 = not present
export const MMU_PREV_ROOTS: i32 = VCPU_MMU + 32; // 3 x {pgd u64, hpa u32, pad u32}
export const KVM_MMU_NUM_PREV_ROOTS: i32 = 3;
export const PREV_ROOT_SIZE: i32 = 16;
export const MMU_ROOT_ROLE: i32 = VCPU_MMU + 80; // u32 the role of the current context's root
export const MMU_CPU_ROLE: i32 = VCPU_MMU + 84; // u32 base role (cr0_wp, efer_nx, has_4_byte_gpte...)
export const MMU_REQUESTS: i32 = VCPU_MMU + 88; // u32 KVM_REQ_* bits
export const MMU_TLB_FLUSH_GEN: i32 = VCPU_MMU + 92; // u32 VM_TLB_FLUSH_GEN last seen
export const MMU_RELOAD_GEN: i32 = VCPU_MMU + 96; // u32 VM_MMU_RELOAD_GEN last seen
export const MMU_CACHE_SP_NR: i32 = VCPU_MMU + 100; // u32
export const MMU_CACHE_SP: i32 = VCPU_MMU + 104; // MMU_CACHE_SP_CAP x u32 shadow page headers
export const MMU_CACHE_SP_CAP: i32 = 8;
export const MMU_CACHE_SP_MIN: i32 = 5; // PT64_ROOT_MAX_LEVEL + 1: enough for one fault
export const MMU_CACHE_DESC_NR: i32 = VCPU_MMU + 136; // u32
export const MMU_CACHE_DESC: i32 = VCPU_MMU + 140; // MMU_CACHE_DESC_CAP x u32
export const MMU_CACHE_DESC_CAP: i32 = 40; // KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE
export const MMU_CACHE_DESC_MIN: i32 = 14; // 1 + PT64_ROOT_MAX_LEVEL + PTE_PREFETCH_NUM
// the guest walker (struct guest_walker), filled by walk_addr
export const WALK_TABLE_GFN: i32 = VCPU_MMU + 304; // 5 x u64: gfn of the table holding the level-L entry
export const WALK_PTES: i32 = VCPU_MMU + 344; // 5 x u64: the gptes
export const WALK_PTE_GPA: i32 = VCPU_MMU + 384; // 5 x u64
export const WALK_PT_ACCESS: i32 = VCPU_MMU + 424; // 5 x u32: ACC_* from the levels above
export const WALK_PTE_ACCESS: i32 = VCPU_MMU + 444; // u32 ACC_* of the whole walk
export const WALK_GFN: i32 = VCPU_MMU + 448; // u64 the gfn of the 4 KiB page reached
export const WALK_LEVEL: i32 = VCPU_MMU + 456; // u32 level of the leaf
export const WALK_MAX_LEVEL: i32 = VCPU_MMU + 460; // u32 level of the top table (4, 2; 2 for PAE under a PDPTE)
// KVM_REQ_* bits
export const KVM_REQ_TLB_FLUSH: u32 = 1 << 0;
export const KVM_REQ_MMU_RELOAD: u32 = 1 << 1;

// vcpu-relative addresses of the MMU area
export const VCPU_MMU_END: i32 = VCPU_MMU + 2048;
