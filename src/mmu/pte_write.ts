/**
 * The PT_WRITE exit: the guest wrote a page-table page the shadow MMU
 * write-protects. The core has already performed the write and retired the
 * instruction (as KVM's emulator would); what remains is KVM's
 * kvm_mmu_pte_write: bring the shadow pages of that gfn back in line with
 * the guest's tables. The default policy zaps every shadow page that holds
 * the written entry (quadrant-aware for 32-bit guests); the seeds' smarter
 * rules (update the spte, byte writes, rep-string unprotect, flooding) plug
 * in here as knobs later, on the same WASM primitives.
 */
import type { Vcpu } from "../vcpu.js";
import type { ShadowMmu } from "./shadow_mmu.js";

/** One instruction's page-table writes, as the core logged them. */
export interface PtWriteExit {
  gpa: bigint;
  size: number;
  value: bigint;
  old: bigint;
  /** A string instruction (movs/stos/ins), with a rep prefix, and how many iterations are left. */
  string: boolean;
  rep: boolean;
  repCount: bigint;
  rip: bigint;
  /** Every write of the instruction (the first is the one above). */
  writes: { gpa: number; size: number }[];
  /** More writes than the log holds: the policy must assume any page changed. */
  overflow: boolean;
}

/** The pending PT_WRITE log of a vCPU, or null if there is none. */
export function readPtWrite(vcpu: Vcpu): PtWriteExit | null {
  const k = vcpu.vm.core.k;
  const n = vcpu.u32(k.EXIT_PT_WRITE_NR);
  if (n === 0) return null;
  const flags = vcpu.u32(k.EXIT_PT_WRITE_FLAGS);
  const writes: { gpa: number; size: number }[] = [];
  for (let i = 0; i < Math.min(n, k.PT_WRITE_LOG_MAX); i++) {
    const e = k.EXIT_PT_WRITE_LOG + i * 16;
    writes.push({ gpa: Number(vcpu.get64(e)), size: vcpu.u32(e + 8) });
  }
  return {
    gpa: vcpu.get64(k.EXIT_PT_WRITE_GPA),
    size: vcpu.u32(k.EXIT_PT_WRITE_SIZE),
    value: vcpu.get64(k.EXIT_PT_WRITE_VALUE),
    old: vcpu.get64(k.EXIT_PT_WRITE_OLD),
    string: (flags & k.PT_WRITE_F_STRING) !== 0,
    rep: (flags & k.PT_WRITE_F_REP) !== 0,
    repCount: vcpu.get64(k.EXIT_PT_WRITE_REP_COUNT),
    rip: vcpu.get64(k.EXIT_PT_WRITE_RIP),
    writes,
    overflow: (flags & k.PT_WRITE_F_OVERFLOW) !== 0,
  };
}

function statAdd(vcpu: Vcpu, id: number, n: bigint): void {
  const off = vcpu.vm.core.k.VCPU_STATS + id * 8;
  vcpu.set64(off, vcpu.get64(off) + n);
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

/** The default: zap the shadow pages holding each written entry (kvmMmuPteWrite). */
export const zapPolicy: PteWritePolicy = (mmu, _vcpu, w) => {
  for (const x of w.writes) kvmMmuPteWrite(mmu, x.gpa, x.size);
};

/** Handle a vCPU's pending PT_WRITE log (after any exit); returns the writes handled. */
export function handlePtWrite(vcpu: Vcpu, mmu: ShadowMmu): number {
  const w = readPtWrite(vcpu);
  if (!w) return 0;
  const k = vcpu.vm.core.k;
  vcpu.vm.core.fn.vcpu_bind(vcpu.base);
  if (w.overflow) mmu.fn.mmu_zap_all_fast();
  else (mmu.pteWritePolicy ?? zapPolicy)(mmu, vcpu, w);
  statAdd(vcpu, k.STAT_MMU_PTE_WRITE, BigInt(w.writes.length));
  vcpu.u32(k.EXIT_PT_WRITE_NR, 0);
  return w.writes.length;
}
