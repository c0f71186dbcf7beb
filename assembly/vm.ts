// VM-wide state shared by every vCPU (the analogue of struct kvm): memslots
// and, later, the MMU's global state. Lives at an address the host chooses;
// vm_bind() points this instance at it.

// ---- memslots (KVM_SET_USER_MEMORY_REGION): up to VM_MAX_SLOTS entries of
// {base_gfn u64, npages u64, host u64 (offset of the slot's RAM in linear
// memory), flags u32, dirty_bitmap u32 (offset, 0 if not logging)}.
export const VM_NR_SLOTS: i32 = 0; // u32
export const VM_SLOTS: i32 = 64;
export const VM_MAX_SLOTS: i32 = 32;
export const MEMSLOT_SIZE: i32 = 32;
export const MEMSLOT_BASE_GFN: i32 = 0;
export const MEMSLOT_NPAGES: i32 = 8;
export const MEMSLOT_HOST: i32 = 16;
export const MEMSLOT_FLAGS: i32 = 24;
export const MEMSLOT_DIRTY_BITMAP: i32 = 28;
export const MEM_LOG_DIRTY_PAGES: u32 = 1 << 0; // KVM_MEM_LOG_DIRTY_PAGES
export const MEM_READONLY: u32 = 1 << 1; // KVM_MEM_READONLY

// SMP: the bus lock LOCK-prefixed instructions (and XCHG with memory) hold
// while they run, so their read-modify-write is atomic across vCPU threads.
export const VM_BUS_LOCK: i32 = 1536; // u32 0 free, 1 held
// SMP: PAUSEs per run() after which a vCPU leaves run() (0: PAUSE-loop exiting off; see cpu/mov.ts)
export const VM_PLE_WINDOW: i32 = 1540;

export const VM_SIZE: i32 = 4096;

let last_slot: usize = 0;
export let VMB: usize = 0;
export function bind_vm_ptr(base: usize): void { VMB = base; last_slot = 0; }

// Guest physical address -> offset in linear memory, or -1 when no memslot
// backs it (MMIO). `gpa_slot_flags` is left with the slot's flags.
export let gpa_slot_flags: u32 = 0;

export function gpa_to_host(gpa: u64): i64 {
  const gfn = gpa >> 12;
  if (last_slot != 0) {
    const base = load<u64>(last_slot + MEMSLOT_BASE_GFN);
    if (gfn - base < load<u64>(last_slot + MEMSLOT_NPAGES)) {
      gpa_slot_flags = load<u32>(last_slot + MEMSLOT_FLAGS);
      return <i64>(load<u64>(last_slot + MEMSLOT_HOST) + (gpa - (base << 12)));
    }
  }
  const n = load<u32>(VMB + VM_NR_SLOTS);
  for (let i: u32 = 0; i < n; i++) {
    const s = VMB + VM_SLOTS + <usize>(i * MEMSLOT_SIZE);
    const base = load<u64>(s + MEMSLOT_BASE_GFN);
    if (gfn - base < load<u64>(s + MEMSLOT_NPAGES)) {
      last_slot = s;
      gpa_slot_flags = load<u32>(s + MEMSLOT_FLAGS);
      return <i64>(load<u64>(s + MEMSLOT_HOST) + (gpa - (base << 12)));
    }
  }
  return -1;
}

// The host changed the memslot table: forget cached lookups.
export function memslots_changed(): void { last_slot = 0; }
