// mmu_lock and the memory the MMU allocates from: the VM-wide pools of shadow
// pages and pte_list_descs (the kmem_caches), and each vCPU's object caches
// (kvm_mmu_memory_cache), which are topped up *before* mmu_lock is taken so
// that nothing under the lock ever allocates or fails (seed 003).
import { VMB } from "../vm";
import { VCPU } from "../cpu/state";
import {
  VM_MMU_LOCK, VM_POOL_LOCK, VM_SP_FREE, VM_SP_FREE_NR, VM_SP_BUMP, VM_SP_POOL_NR, VM_SP_HDR_BASE, SP_INDEX, SP_SIZE, VM_DESC_FREE, VM_DESC_FREE_NR, VM_DESC_BUMP, VM_DESC_NR, VM_DESC_BASE,
  SP_HASH_NEXT, DESC_MORE, PTE_LIST_DESC_SIZE,
  MMU_CACHE_SP_NR, MMU_CACHE_SP, MMU_CACHE_SP_CAP, MMU_CACHE_SP_MIN,
  MMU_CACHE_DESC_NR, MMU_CACHE_DESC, MMU_CACHE_DESC_CAP, MMU_CACHE_DESC_MIN,
} from "./layout";

// ---- locks (spinlocks on words in VM memory; with one vCPU never contended)
export let mmu_lock_held: bool = false;
export function mmu_lock(): void {
  const a = VMB + VM_MMU_LOCK;
  while (atomic.cmpxchg<u32>(a, 0, 1) != 0) { /* spin: another vCPU holds it */ }
  mmu_lock_held = true;
}
export function mmu_unlock(): void {
  mmu_lock_held = false;
  atomic.store<u32>(VMB + VM_MMU_LOCK, 0);
}
function pool_lock(): void {
  const a = VMB + VM_POOL_LOCK;
  while (atomic.cmpxchg<u32>(a, 0, 1) != 0) { /* spin */ }
}
function pool_unlock(): void { atomic.store<u32>(VMB + VM_POOL_LOCK, 0); }

// ---- the VM-wide pools (free lists)
function pool_get_sp(): usize {
  let sp = <usize>load<u32>(VMB + VM_SP_FREE);
  if (sp != 0) {
    store<u32>(VMB + VM_SP_FREE, load<u32>(sp + SP_HASH_NEXT));
    store<u32>(sp + SP_HASH_NEXT, 0);
  } else { // one never handed out (kvm_mmu_vm_init): its header is still zero
    const i = load<u32>(VMB + VM_SP_BUMP);
    if (i >= load<u32>(VMB + VM_SP_POOL_NR)) return 0;
    store<u32>(VMB + VM_SP_BUMP, i + 1);
    sp = <usize>load<u32>(VMB + VM_SP_HDR_BASE) + <usize>i * <usize>SP_SIZE;
    store<u32>(sp + SP_INDEX, i);
  }
  store<u32>(VMB + VM_SP_FREE_NR, load<u32>(VMB + VM_SP_FREE_NR) - 1);
  return sp;
}
function pool_put_sp(sp: usize): void {
  store<u32>(sp + SP_HASH_NEXT, load<u32>(VMB + VM_SP_FREE));
  store<u32>(VMB + VM_SP_FREE, <u32>sp);
  store<u32>(VMB + VM_SP_FREE_NR, load<u32>(VMB + VM_SP_FREE_NR) + 1);
}
function pool_get_desc(): usize {
  let d = <usize>load<u32>(VMB + VM_DESC_FREE);
  if (d != 0) store<u32>(VMB + VM_DESC_FREE, load<u32>(d + DESC_MORE));
  else { // one never handed out (kvm_mmu_vm_init)
    const i = load<u32>(VMB + VM_DESC_BUMP);
    if (i >= load<u32>(VMB + VM_DESC_NR)) return 0;
    store<u32>(VMB + VM_DESC_BUMP, i + 1);
    d = <usize>load<u32>(VMB + VM_DESC_BASE) + <usize>i * <usize>PTE_LIST_DESC_SIZE;
  }
  store<u32>(VMB + VM_DESC_FREE_NR, load<u32>(VMB + VM_DESC_FREE_NR) - 1);
  return d;
}
function pool_put_desc(d: usize): void {
  store<u32>(d + DESC_MORE, load<u32>(VMB + VM_DESC_FREE));
  store<u32>(VMB + VM_DESC_FREE, <u32>d);
  store<u32>(VMB + VM_DESC_FREE_NR, load<u32>(VMB + VM_DESC_FREE_NR) + 1);
}

// A freed shadow page goes back to the pool (kvm_mmu_free_shadow_page).
export function mmu_free_sp_to_pool(sp: usize): void { pool_lock(); pool_put_sp(sp); pool_unlock(); }
// A freed pte_list_desc (mmu_free_pte_list_desc): straight back to the pool.
export function mmu_free_pte_list_desc(d: usize): void { pool_lock(); pool_put_desc(d); pool_unlock(); }

// ---- per-vCPU object caches

// Fill both caches to capacity if they are below what one fault can use
// (mmu_topup_memory_caches). Call without mmu_lock. Returns false if a pool
// ran dry: the caller then recycles shadow pages and tries again.
export function mmu_topup_memory_caches(): bool {
  let ok = true;
  let n = <i32>load<u32>(VCPU + MMU_CACHE_SP_NR);
  let m = <i32>load<u32>(VCPU + MMU_CACHE_DESC_NR);
  if (n >= MMU_CACHE_SP_MIN && m >= MMU_CACHE_DESC_MIN) return true;
  pool_lock();
  while (n < MMU_CACHE_SP_CAP) {
    const sp = pool_get_sp();
    if (sp == 0) break;
    store<u32>(VCPU + MMU_CACHE_SP + (<usize>n << 2), <u32>sp);
    n++;
  }
  while (m < MMU_CACHE_DESC_CAP) {
    const d = pool_get_desc();
    if (d == 0) break;
    store<u32>(VCPU + MMU_CACHE_DESC + (<usize>m << 2), <u32>d);
    m++;
  }
  pool_unlock();
  store<u32>(VCPU + MMU_CACHE_SP_NR, n);
  store<u32>(VCPU + MMU_CACHE_DESC_NR, m);
  if (n < MMU_CACHE_SP_MIN || m < MMU_CACHE_DESC_MIN) ok = false;
  return ok;
}

// Give everything in this vCPU's caches back to the pools (kvm_mmu_free_memory_caches).
export function mmu_free_memory_caches(): void {
  pool_lock();
  let n = <i32>load<u32>(VCPU + MMU_CACHE_SP_NR);
  while (n > 0) { n--; pool_put_sp(<usize>load<u32>(VCPU + MMU_CACHE_SP + (<usize>n << 2))); }
  let m = <i32>load<u32>(VCPU + MMU_CACHE_DESC_NR);
  while (m > 0) { m--; pool_put_desc(<usize>load<u32>(VCPU + MMU_CACHE_DESC + (<usize>m << 2))); }
  pool_unlock();
  store<u32>(VCPU + MMU_CACHE_SP_NR, 0);
  store<u32>(VCPU + MMU_CACHE_DESC_NR, 0);
}

// Take a shadow page header from the cache (under mmu_lock). The cache was
// topped up before the lock; if a caller used more than the minimum the pool
// is the fallback; 0 only if both are empty.
export function mmu_cache_alloc_sp(): usize {
  let n = <i32>load<u32>(VCPU + MMU_CACHE_SP_NR);
  if (n > 0) {
    n--;
    store<u32>(VCPU + MMU_CACHE_SP_NR, n);
    return <usize>load<u32>(VCPU + MMU_CACHE_SP + (<usize>n << 2));
  }
  pool_lock();
  const sp = pool_get_sp();
  pool_unlock();
  return sp;
}

export function mmu_cache_alloc_desc(): usize {
  let n = <i32>load<u32>(VCPU + MMU_CACHE_DESC_NR);
  let d: usize = 0;
  if (n > 0) {
    n--;
    store<u32>(VCPU + MMU_CACHE_DESC_NR, n);
    d = <usize>load<u32>(VCPU + MMU_CACHE_DESC + (<usize>n << 2));
  } else {
    pool_lock();
    d = pool_get_desc();
    pool_unlock();
  }
  if (d != 0) memory.fill(d, 0, <usize>PTE_LIST_DESC_SIZE);
  return d;
}

export function mmu_cache_nr_sp(): i32 { return <i32>load<u32>(VCPU + MMU_CACHE_SP_NR); }
export function mmu_cache_nr_desc(): i32 { return <i32>load<u32>(VCPU + MMU_CACHE_DESC_NR); }
