/**
 * The PT_WRITE exit: the guest wrote a page-table page the shadow MMU
 * write-protects. The core has already performed the write and retired the
 * instruction (as KVM's emulator would); what remains is KVM's
 * kvm_mmu_pte_write: bring the shadow pages of that gfn back in line with
 * the guest's tables. The default policy is KVM's (kvmPolicy below) with
 * every rule of the seeds a knob (src/mmu/knobs.ts); with a knob off the
 * policy does what KVM did before that seed:
 *
 *   update_pte (seed 002)           off: the written spte is zapped and the guest re-faults on it
 *   pte_write_topup (seed 003)      off: no cache top-up on this path (what the last fault left)
 *   unprotect_rep_string (seed 003) off: a rep stos/movs is handled write by write, page kept protected
 *   byte_pte_write (seed 003)       off: a write of fewer than 4 bytes is misaligned: the page is zapped
 *   flood_detect (seed 003)         legacy: KVM's last_pt_write_gfn/count + last speculative spte; off: none
 *
 * Seed 004: only indirect shadow pages are looked at (the gfn's pages come
 * from mmu_gfn_next_sp, which skips direct ones), the gpte size is the
 * page's (4 bytes for 32-bit non-PAE guests) and the written spte is found
 * with the quadrant math (mmu_written_spte: page_offset << 1; a 32-bit pde
 * is two shadow pdes).
 */
import type { Vcpu } from "../vcpu.js";
import type { ShadowMmu } from "./shadow_mmu.js";
import type { MmuKnobs } from "./knobs.js";

/** What KVM's policy needs of one instruction's page-table writes. */
export interface PtWriteLog {
  /** A string instruction (movs/stos/ins), with a rep prefix. */
  string: boolean;
  rep: boolean;
  /** Every write of the instruction (the first is the one PtWriteExit describes). */
  writes: { gpa: number; size: number }[];
  /** More writes than the log holds: the policy must assume any page changed. */
  overflow: boolean;
}

/** One instruction's page-table writes, as the core logged them. */
export interface PtWriteExit extends PtWriteLog {
  gpa: bigint;
  size: number;
  value: bigint;
  old: bigint;
  /** How many iterations of a rep string instruction are left. */
  repCount: bigint;
  rip: bigint;
}

/** A u64 of the vCPU struct as a number (guest-physical addresses: below 2^53). */
function u64n(vcpu: Vcpu, off: number): number { return vcpu.u32(off) + vcpu.u32(off + 4) * 0x100000000; }

/** The pending PT_WRITE log of a vCPU without the first write's details, or null if there is none (one per PT_WRITE exit: no BigInts). */
export function readPtWriteLog(vcpu: Vcpu): PtWriteLog | null {
  const k = vcpu.vm.core.k;
  const n = vcpu.u32(k.EXIT_PT_WRITE_NR);
  if (n === 0) return null;
  const flags = vcpu.u32(k.EXIT_PT_WRITE_FLAGS);
  const writes: { gpa: number; size: number }[] = [];
  for (let i = 0; i < Math.min(n, k.PT_WRITE_LOG_MAX); i++) {
    const e = k.EXIT_PT_WRITE_LOG + i * 16;
    writes.push({ gpa: u64n(vcpu, e), size: vcpu.u32(e + 8) });
  }
  return { string: (flags & k.PT_WRITE_F_STRING) !== 0, rep: (flags & k.PT_WRITE_F_REP) !== 0, writes, overflow: (flags & k.PT_WRITE_F_OVERFLOW) !== 0 };
}

/** The pending PT_WRITE log of a vCPU, or null if there is none. */
export function readPtWrite(vcpu: Vcpu): PtWriteExit | null {
  const log = readPtWriteLog(vcpu);
  if (!log) return null;
  const k = vcpu.vm.core.k;
  return {
    ...log,
    gpa: vcpu.get64(k.EXIT_PT_WRITE_GPA),
    size: vcpu.u32(k.EXIT_PT_WRITE_SIZE),
    value: vcpu.get64(k.EXIT_PT_WRITE_VALUE),
    old: vcpu.get64(k.EXIT_PT_WRITE_OLD),
    repCount: vcpu.get64(k.EXIT_PT_WRITE_REP_COUNT),
    rip: vcpu.get64(k.EXIT_PT_WRITE_RIP),
  };
}

/**
 * kvm_mmu_pte_write, default policy: zap each indirect shadow page of the
 * written gfn whose sptes shadow the written bytes. Returns the pages zapped.
 */
export function kvmMmuPteWrite(mmu: ShadowMmu, gpa: number, bytes: number): number {
  const gfn = Math.floor(gpa / 4096);
  const off = gpa % 4096;
  const last = Math.min(off + bytes - 1, 4095);
  let zapped = 0;
  for (const sp of mmu.pagesOfGfn(gfn)) {
    if (mmu.fn.mmu_written_spte(sp, off, bytes) >= 0 || mmu.fn.mmu_written_spte(sp, last, 1) >= 0) {
      mmu.fn.mmu_zap_sp(sp);
      zapped++;
    }
  }
  return zapped;
}

/**
 * A pte-write policy: what to do with one instruction's page-table writes
 * (already performed in guest memory). It may call any ShadowMmu primitive:
 * mmu_zap_sp, mmu_zap_spte, mmu_update_pte, mmu_unprotect_gfn, mmu_zap_all_fast.
 */
export type PteWritePolicy = (mmu: ShadowMmu, vcpu: Vcpu, w: PtWriteExit) => void;

/** The shadow MMU engineer's first policy: zap the shadow pages holding each written entry (kvmMmuPteWrite). */
export const zapPolicy: PteWritePolicy = (mmu, _vcpu, w) => {
  for (const x of w.writes) kvmMmuPteWrite(mmu, x.gpa, x.size);
};

// ---------------------------------------------------------------------------
// KVM's kvm_mmu_pte_write with the seeds' rules as knobs

/** The primitives of assembly/mmu/pte_write.ts (and the ones of exports.ts this file uses). */
interface PteWriteFunctions {
  mmu_pte_write_new_pte(sp: number, index: number, gpaLo: number, gpaHi: number, topup: number): number;
  mmu_spte_accessed(sp: number, index: number): number;
  mmu_sp_write_flooding_count(sp: number): number;
  mmu_sp_set_write_flooding_count(sp: number, n: number): void;
  mmu_pte_write_nr_no_desc(): number;
  mmu_cache_desc_count(): number;
}
const ROLE_LEVEL_MASK = 0xf;
const ROLE_HAS_4_BYTE_GPTE = 1 << 4;
const ROLE_INVALID = 1 << 11;
/** KVM's threshold: the third write without a use in between floods. */
export const WRITE_FLOODING_THRESHOLD = 3;

/** KVM's per-vCPU state for the legacy flood heuristic (last_pt_write_gfn/count, last_pte_updated). */
interface LegacyFlood { gfn: number; count: number; lastPte: { sp: number; index: number; gfn: number } | null; }
const legacyState = new WeakMap<Vcpu, LegacyFlood>();

// (mmu.fn is the core's exports object, without the instance.exports getter)
function pteFns(mmu: ShadowMmu): PteWriteFunctions { return mmu.fn as unknown as PteWriteFunctions; }

/**
 * detect_write_misaligned: a write that crosses a gpte, or is shorter than 4
 * bytes, "usually indicates a page is not used as a page table" and zaps it.
 * Seed 003 (byte_pte_write) exempts one-byte writes: Linux's clear_bit/set_bit
 * (andb/orb) on a gpte's status bits. KVM's code exempts the byte at the gpte's
 * start only; here any single byte of a gpte is exempt (R/W, A, D in byte 0,
 * NX in byte 7), since a byte can never straddle two gptes.
 */
export function detectWriteMisaligned(offset: number, bytes: number, pteSize: number, byteRule: boolean): boolean {
  if (byteRule && bytes === 1) return false;
  const misaligned = ((offset ^ (offset + bytes - 1)) & ~(pteSize - 1)) !== 0;
  return misaligned || bytes < 4;
}

function lastUpdatedPteAccessed(mmu: ShadowMmu, fns: PteWriteFunctions, st: LegacyFlood): boolean {
  const p = st.lastPte;
  if (!p) return false;
  if (mmu.fn.mmu_sp_gfn(p.sp) !== p.gfn || (mmu.fn.mmu_sp_role(p.sp) & ROLE_INVALID) !== 0) return false;
  return fns.mmu_spte_accessed(p.sp, p.index) !== 0;
}

/** What one kvm_mmu_pte_write call did (for tests and the bench). */
export interface PteWriteResult { zappedPages: number; flooded: number; updated: number; zappedSptes: number; }

/**
 * kvm_mmu_pte_write for one write of `bytes` at `gpa` (already in guest
 * memory), with the knobs' rules.
 */
export function kvmMmuPteWriteRules(mmu: ShadowMmu, vcpu: Vcpu, gpa: number, bytes: number, knobs: MmuKnobs): PteWriteResult {
  const res: PteWriteResult = { zappedPages: 0, flooded: 0, updated: 0, zappedSptes: 0 };
  // no indirect shadow pages: nothing is write-protected
  if (mmu.indirectShadowPages === 0) return res;
  const fns = pteFns(mmu);
  const gfn = Math.floor(gpa / 4096);
  const offset = gpa % 4096;
  // the legacy flood heuristic (KVM before seed 003): per vCPU, the last
  // written gfn; flooded after 3 writes to it unless the last speculative spte
  // was accessed in between
  let flooded = false;
  if (knobs.flood_detect === "legacy") {
    let st = legacyState.get(vcpu);
    if (!st) { st = { gfn: -1, count: 0, lastPte: null }; legacyState.set(vcpu, st); }
    if (gfn === st.gfn && !lastUpdatedPteAccessed(mmu, fns, st)) {
      if (++st.count >= WRITE_FLOODING_THRESHOLD) flooded = true;
    } else {
      st.gfn = gfn;
      st.count = 1;
      st.lastPte = null;
    }
  }
  const topup = knobs.pte_write_topup ? 1 : 0;
  for (let sp = mmu.fn.mmu_gfn_next_sp(gfn, 0); sp !== 0;) {
    const next = mmu.fn.mmu_gfn_next_sp(gfn, sp); // before sp can be zapped
    const role = mmu.fn.mmu_sp_role(sp);
    const pteSize = role & ROLE_HAS_4_BYTE_GPTE ? 4 : 8;
    let zap = detectWriteMisaligned(offset, bytes, pteSize, knobs.byte_pte_write);
    if (!zap && knobs.flood_detect === "accessed") {
      // detect_write_flooding: the count is cleared whenever the page is used
      // for translation (the spte walk, or a shadow fault through it)
      const n = fns.mmu_sp_write_flooding_count(sp) + 1;
      fns.mmu_sp_set_write_flooding_count(sp, n);
      zap = n >= WRITE_FLOODING_THRESHOLD;
    }
    if (zap || flooded) {
      mmu.fn.mmu_zap_sp(sp);
      res.zappedPages++;
      res.flooded++; // KVM counts misaligned and flooded zaps alike in mmu_flooded
      sp = next;
      continue;
    }
    // get_written_sptes (quadrant-aware; 2 sptes for a 32-bit pde)
    const first = mmu.fn.mmu_written_spte(sp, offset, bytes);
    const npte = mmu.fn.mmu_get_written_nspte();
    if (first >= 0) {
      const gpteGpa = gpa - (gpa % pteSize);
      for (let i = 0; i < npte; i++) {
        if (knobs.update_pte && (role & ROLE_LEVEL_MASK) === 1) {
          const r = fns.mmu_pte_write_new_pte(sp, first + i, gpteGpa % 0x100000000, Math.floor(gpteGpa / 0x100000000), topup);
          if (r === 1) {
            res.updated++;
            const st = legacyState.get(vcpu);
            if (st) st.lastPte = { sp, index: first + i, gfn };
          } else res.zappedSptes++;
        } else {
          mmu.fn.mmu_zap_spte(sp, first + i);
          res.zappedSptes++;
        }
      }
    }
    sp = next;
  }
  return res;
}

/**
 * KVM's policy: the seeds' rules as the VM's knobs set them. A rep movs/stos
 * (the instruction left as a string with a rep prefix) that wrote a page
 * table unprotects each written gfn (seed 003): its shadow pages are zapped,
 * the gfn is no longer write-tracked and the rest of the string goes straight
 * to memory. Everything else is kvm_mmu_pte_write, write by write.
 */
export const kvmPolicy = (mmu: ShadowMmu, vcpu: Vcpu, w: PtWriteLog): void => {
  const knobs = mmu.knobs;
  const k = vcpu.vm.core.k;
  if (knobs.unprotect_rep_string && w.string && w.rep) {
    const done = new Set<number>();
    for (const x of w.writes) {
      const gfn = Math.floor(x.gpa / 4096);
      if (done.has(gfn)) continue;
      done.add(gfn);
      mmu.fn.mmu_unprotect_gfn(gfn);
    }
    return;
  }
  let flooded = 0, updated = 0;
  for (const x of w.writes) {
    const r = kvmMmuPteWriteRules(mmu, vcpu, x.gpa, x.size, knobs);
    flooded += r.flooded;
    updated += r.updated;
  }
  if (flooded) vcpu.statAdd(k.STAT_MMU_FLOODED, flooded);
  if (updated) vcpu.statAdd(k.STAT_MMU_PTE_UPDATED, updated);
};

/** Updates that found no free pte_list_desc in the vCPU's cache and zapped instead (seed 003), since the VM started. */
export function updatesWithoutDesc(mmu: ShadowMmu): number { return pteFns(mmu).mmu_pte_write_nr_no_desc(); }
/** Free pte_list_descs in the bound vCPU's object cache. */
export function cacheDescCount(mmu: ShadowMmu): number { return pteFns(mmu).mmu_cache_desc_count(); }

/** Handle a vCPU's pending PT_WRITE log (after any exit); returns the writes handled. */
export function handlePtWrite(vcpu: Vcpu, mmu: ShadowMmu): number {
  const policy = mmu.pteWritePolicy;
  const w = policy ? readPtWrite(vcpu) : readPtWriteLog(vcpu); // KVM's policy needs only the log
  if (!w) return 0;
  const k = vcpu.vm.core.k;
  vcpu.vm.core.fn.vcpu_bind(vcpu.base);
  if (w.overflow) mmu.fn.mmu_zap_all_fast();
  else if (policy) policy(mmu, vcpu, w as PtWriteExit);
  else kvmPolicy(mmu, vcpu, w);
  vcpu.statAdd(k.STAT_MMU_PTE_WRITE, w.writes.length);
  vcpu.u32(k.EXIT_PT_WRITE_NR, 0);
  return w.writes.length;
}
