// The vCPU's shadow roots (struct kvm_mmu: root, pae_root[4], prev_roots[3]).
// A long-mode guest gets a 4-level root page shadowing its CR3; PAE and
// 32-bit guests (and a guest with paging off) get KVM's PAE root: four
// level-2 pages, one per GiB (for 32-bit guests the four quadrants of the
// guest's page directory; for paging off, direct pages). Roots are built
// lazily by kvm_mmu_load on the next shadow translation. MOV CR3 keeps the
// last three 4-level roots (seed 004) so switching back is a lookup.
import { VMB } from "../vm";
import {
  VCPU, VCPU_CR0, VCPU_CR3, VCPU_CR4, VCPU_EFER, VCPU_PDPTR, CR0_PG, CR0_WP, CR4_PAE, CR4_PSE, CR4_SMEP, CR4_SMAP,
  EFER_LMA, EFER_NXE, vcpu_load64, stat_inc,
} from "../cpu/state";
import { STAT_PREV_ROOTS_HIT, STAT_MMU_ROOT_ALLOC } from "../stats";
import {
  VM_KNOB_PREV_ROOTS, SP_ROOT_COUNT, MMU_ROOT_HPA, MMU_ROOT_LEVEL, MMU_ROOT_PGD, MMU_PAE_ROOT, MMU_PREV_ROOTS,
  KVM_MMU_NUM_PREV_ROOTS, PREV_ROOT_SIZE, MMU_ROOT_ROLE, MMU_CPU_ROLE, MMU_REQUESTS, KVM_REQ_MMU_RELOAD,
} from "./layout";
import {
  kvm_mmu_get_page, sp_from_spt, sp_role, sp_spt, role_with, ROLE_HAS_4_BYTE_GPTE, ROLE_CR0_WP, ROLE_EFER_NX,
  ROLE_SMEP_ANDNOT_WP, ROLE_SMAP_ANDNOT_WP, ROLE_CR4_PSE, ROLE_INVALID, is_obsolete_sp,
} from "./mmu_page";
import { ACC_ALL, PT64_ROOT_4LEVEL, PT32E_ROOT_LEVEL, PT32_ROOT_LEVEL } from "./spte";
import { kvm_mmu_prepare_zap_page, kvm_mmu_commit_zap_page, make_mmu_pages_available, kvm_mmu_zap_all_fast, mmu_topup_memory_caches_reclaim } from "./zap";
import { mmu_lock, mmu_unlock, mmu_topup_memory_caches } from "./cache";
import { PT64_ADDR_MASK } from "./walk";

// The base role for the guest's current paging mode (kvm_calc_shadow_mmu_root_page_role).
export function kvm_mmu_calc_role(): u32 {
  const cr0 = vcpu_load64(VCPU_CR0);
  const cr4 = vcpu_load64(VCPU_CR4);
  const efer = vcpu_load64(VCPU_EFER);
  const paging = (cr0 & CR0_PG) != 0;
  let role: u32 = ACC_ALL << 8;
  const wp = (cr0 & CR0_WP) != 0;
  if (wp) role |= ROLE_CR0_WP;
  if (!paging) return role_with(role | ROLE_CR0_WP, PT32_ROOT_LEVEL, true, ACC_ALL, 0);
  if ((efer & EFER_NXE) != 0) role |= ROLE_EFER_NX;
  if (!wp && (cr4 & CR4_SMEP) != 0) role |= ROLE_SMEP_ANDNOT_WP;
  if (!wp && (cr4 & CR4_SMAP) != 0) role |= ROLE_SMAP_ANDNOT_WP;
  if ((efer & EFER_LMA) != 0) return role_with(role, PT64_ROOT_4LEVEL, false, ACC_ALL, 0);
  if ((cr4 & CR4_PAE) != 0) return role_with(role, PT32_ROOT_LEVEL, false, ACC_ALL, 0);
  role |= ROLE_HAS_4_BYTE_GPTE;
  if ((cr4 & CR4_PSE) != 0) role |= ROLE_CR4_PSE;
  return role_with(role, PT32_ROOT_LEVEL, false, ACC_ALL, 0);
}

@inline export function root_level(): i32 { return <i32>load<u32>(VCPU + MMU_ROOT_LEVEL); }
@inline export function root_hpa(): usize { return <usize>load<u32>(VCPU + MMU_ROOT_HPA); }
@inline export function pae_root(i: i32): usize { return <usize>load<u32>(VCPU + MMU_PAE_ROOT + (<usize>i << 2)); }

// The pgd (guest CR3 bits that select the tables) a root shadows.
export function current_pgd(): u64 {
  const cr3 = vcpu_load64(VCPU_CR3);
  if ((vcpu_load64(VCPU_EFER) & EFER_LMA) != 0) return cr3 & PT64_ADDR_MASK;
  return cr3 & 0xffffffe0;
}

// Drop one reference to a root page; the last reference to an invalid root frees it.
function mmu_free_root_page(spt: usize): void {
  if (spt == 0) return;
  const sp = sp_from_spt(spt);
  const rc = load<u32>(sp + SP_ROOT_COUNT) - 1;
  store<u32>(sp + SP_ROOT_COUNT, rc);
  if (rc == 0 && (sp_role(sp) & ROLE_INVALID) != 0) kvm_mmu_prepare_zap_page(sp);
}

function free_current_root_locked(): void {
  const level = root_level();
  if (level == PT64_ROOT_4LEVEL) mmu_free_root_page(root_hpa());
  else if (level == PT32E_ROOT_LEVEL) {
    for (let i = 0; i < 4; i++) {
      mmu_free_root_page(pae_root(i));
      store<u32>(VCPU + MMU_PAE_ROOT + (<usize>i << 2), 0);
    }
  }
  store<u32>(VCPU + MMU_ROOT_HPA, 0);
  store<u32>(VCPU + MMU_ROOT_LEVEL, 0);
  store<u64>(VCPU + MMU_ROOT_PGD, 0);
}

@inline function prev_root(i: i32): usize { return VCPU + MMU_PREV_ROOTS + <usize>(i * PREV_ROOT_SIZE); }

// kvm_mmu_free_roots: the current root and/or the cached ones.
export function kvm_mmu_free_roots(current: bool, prev: bool): void {
  mmu_lock();
  if (current) free_current_root_locked();
  if (prev) {
    for (let i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++) {
      const p = prev_root(i);
      mmu_free_root_page(<usize>load<u32>(p + 8));
      store<u64>(p, 0);
      store<u32>(p + 8, 0);
    }
  }
  kvm_mmu_commit_zap_page();
  mmu_unlock();
}

function mmu_alloc_root(gfn: u64, role: u32): usize {
  const sp = kvm_mmu_get_page(gfn, role);
  if (sp == 0) return 0;
  store<u32>(sp + SP_ROOT_COUNT, load<u32>(sp + SP_ROOT_COUNT) + 1);
  return sp_spt(sp);
}

// Build the roots for the current CR3 and paging mode (kvm_mmu_load:
// mmu_alloc_shadow_roots / mmu_alloc_direct_roots). Returns false if no
// memory could be found even after recycling.
export function kvm_mmu_load(): bool {
  if (!mmu_topup_memory_caches_reclaim()) {
    mmu_lock();
    kvm_mmu_zap_all_fast();
    mmu_unlock();
    if (!mmu_topup_memory_caches()) return false;
  }
  mmu_lock();
  make_mmu_pages_available();
  store<u32>(VCPU + MMU_REQUESTS, load<u32>(VCPU + MMU_REQUESTS) & ~KVM_REQ_MMU_RELOAD);
  if (root_level() != 0) free_current_root_locked();
  const role = kvm_mmu_calc_role();
  store<u32>(VCPU + MMU_CPU_ROLE, role);
  store<u32>(VCPU + MMU_ROOT_ROLE, role);
  const cr0 = vcpu_load64(VCPU_CR0);
  const efer = vcpu_load64(VCPU_EFER);
  let ok = true;
  if ((cr0 & CR0_PG) == 0) {
    // paging off: gpa == linear address below 4 GiB, four direct level-2 pages
    for (let i = 0; i < 4; i++) {
      const spt = mmu_alloc_root(<u64>i << 18, role);
      if (spt == 0) ok = false;
      store<u32>(VCPU + MMU_PAE_ROOT + (<usize>i << 2), <u32>spt);
    }
    store<u32>(VCPU + MMU_ROOT_LEVEL, PT32E_ROOT_LEVEL);
  } else if ((efer & EFER_LMA) != 0) {
    const spt = mmu_alloc_root(current_pgd() >> 12, role);
    if (spt == 0) ok = false;
    store<u32>(VCPU + MMU_ROOT_HPA, <u32>spt);
    store<u32>(VCPU + MMU_ROOT_LEVEL, spt == 0 ? 0 : PT64_ROOT_4LEVEL);
  } else if ((role & ROLE_HAS_4_BYTE_GPTE) == 0) {
    // PAE: one page directory per present PDPTE (loaded at MOV CR3)
    for (let i = 0; i < 4; i++) {
      const pdpte = vcpu_load64(VCPU_PDPTR + i * 8);
      let spt: usize = 0;
      if ((pdpte & 1) != 0) {
        spt = mmu_alloc_root((pdpte & PT64_ADDR_MASK) >> 12, role);
        if (spt == 0) ok = false;
      }
      store<u32>(VCPU + MMU_PAE_ROOT + (<usize>i << 2), <u32>spt);
    }
    store<u32>(VCPU + MMU_ROOT_LEVEL, PT32E_ROOT_LEVEL);
  } else {
    // 32-bit: the four quadrants of the guest's page directory
    const gfn = (vcpu_load64(VCPU_CR3) & 0xfffff000) >> 12;
    for (let i = 0; i < 4; i++) {
      const spt = mmu_alloc_root(gfn, role_with(role, PT32_ROOT_LEVEL, false, ACC_ALL, <u32>i));
      if (spt == 0) ok = false;
      store<u32>(VCPU + MMU_PAE_ROOT + (<usize>i << 2), <u32>spt);
    }
    store<u32>(VCPU + MMU_ROOT_LEVEL, PT32E_ROOT_LEVEL);
  }
  store<u64>(VCPU + MMU_ROOT_PGD, current_pgd());
  stat_inc(STAT_MMU_ROOT_ALLOC);
  kvm_mmu_commit_zap_page();
  mmu_unlock();
  return ok;
}

// Can the cached root (pgd, hpa) serve `pgd` with `role`? (is_root_usable)
function is_root_usable(pgd: u64, hpa: usize, new_pgd: u64, role: u32): bool {
  if (hpa == 0 || pgd != new_pgd) return false;
  const sp = sp_from_spt(hpa);
  return sp_role(sp) == role && !is_obsolete_sp(sp);
}

// MOV CR3 with a 4-level root: rotate the current root through prev_roots
// looking for one that shadows `new_pgd` (cached_root_find_and_keep_current).
// On a miss the oldest root is released and kvm_mmu_load builds a new one.
function fast_pgd_switch(new_pgd: u64): bool {
  if (root_level() != PT64_ROOT_4LEVEL) return false;
  const role = load<u32>(VCPU + MMU_ROOT_ROLE);
  if (is_root_usable(load<u64>(VCPU + MMU_ROOT_PGD), root_hpa(), new_pgd, role)) return true;
  for (let i = 0; i < KVM_MMU_NUM_PREV_ROOTS; i++) {
    const p = prev_root(i);
    const pgd = load<u64>(p), hpa = <usize>load<u32>(p + 8);
    store<u64>(p, load<u64>(VCPU + MMU_ROOT_PGD));
    store<u32>(p + 8, <u32>root_hpa());
    store<u64>(VCPU + MMU_ROOT_PGD, pgd);
    store<u32>(VCPU + MMU_ROOT_HPA, <u32>hpa);
    if (is_root_usable(pgd, hpa, new_pgd, role)) {
      stat_inc(STAT_PREV_ROOTS_HIT);
      prev_root_hit = true;
      return true;
    }
  }
  // the current slot now holds the oldest root: release it
  mmu_lock();
  free_current_root_locked();
  kvm_mmu_commit_zap_page();
  mmu_unlock();
  return false;
}

// The guest loaded CR3 (kvm_mmu_new_pgd, shadow mode). Returns true if a
// cached root was reused (prev_roots hit).
export let prev_root_hit: bool = false;
export function shadow_new_pgd(): bool {
  const new_pgd = current_pgd();
  prev_root_hit = false;
  if (load<u32>(VMB + VM_KNOB_PREV_ROOTS) != 0 && fast_pgd_switch(new_pgd)) return prev_root_hit;
  kvm_mmu_free_roots(true, false);
  return false;
}

// A paging-mode bit changed: drop every root, cached ones included (kvm_mmu_unload).
export function shadow_reset_context(): void {
  kvm_mmu_free_roots(true, true);
}

// Is the current root still good? (invalid after a zap or a fast zap)
export function root_is_valid(): bool {
  const level = root_level();
  if (level == PT64_ROOT_4LEVEL) return !is_obsolete_sp(sp_from_spt(root_hpa()));
  if (level == PT32E_ROOT_LEVEL) {
    for (let i = 0; i < 4; i++) {
      const r = pae_root(i);
      if (r != 0 && is_obsolete_sp(sp_from_spt(r))) return false;
    }
    return true;
  }
  return false;
}
