// Pointing this module instance at a vCPU and a VM in linear memory.
import { bind_vcpu_ptr } from "./cpu/state";
import { memslots_changed as slots_changed, bind_vm_ptr } from "./vm";
import { tlb_flush } from "./mmu/tlb";

export function vcpu_bind(base: usize): void { bind_vcpu_ptr(base); }
export function vm_bind(base: usize): void { bind_vm_ptr(base); }
// First byte of linear memory the host may use (after static data).
export function heap_base(): usize { return __heap_base; }
export function memslots_changed(): void { slots_changed(); }
export function tlb_flush_all(): void { tlb_flush(false); }
