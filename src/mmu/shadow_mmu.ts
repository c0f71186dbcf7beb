/**
 * The shadow MMU as the VM sees it: where its pools go in linear memory, the
 * core functions that set it up and operate on it (zap, unprotect, audit),
 * and the knobs. The MMU itself runs in WASM (assembly/mmu/); this is the
 * host's handle on it.
 */
import type { Core } from "../core/core.js";
import { type MmuKnobs, type MmuMode, DEFAULT_KNOBS } from "./knobs.js";
import type { PteWritePolicy } from "./pte_write.js";

/** The MMU's exports (assembly/mmu/exports.ts). */
export interface MmuCoreFunctions {
  kvm_mmu_vm_init(mode: number, nMax: number, poolNr: number, hdrBase: number, sptBase: number, gfnsBase: number,
    hashBase: number, descBase: number, descNr: number, rmapBase: number, trackBase: number, nrGfns: number): void;
  kvm_mmu_vm_init_lpage(rmap2m: number, rmap1g: number, lpage2m: number, lpage1g: number): void;
  kvm_mmu_audit(): number;
  mmu_zap_all_fast(): void;
  mmu_unprotect_gfn(gfn: number): number;
  mmu_zap_sp(sp: number): void;
  mmu_zap_spte(sp: number, index: number): number;
  mmu_update_pte(sp: number, index: number, gpteLo: number, gpteHi: number, topup: number): number;
  mmu_gfn_next_sp(gfn: number, prev: number): number;
  mmu_sp_role(sp: number): number;
  mmu_sp_gfn(sp: number): number;
  mmu_sp_root_count(sp: number): number;
  mmu_sp_parent_count(sp: number): number;
  mmu_written_spte(sp: number, offset: number, bytes: number): number;
  mmu_get_written_nspte(): number;
  mmu_gfn_track_count(gfn: number): number;
  mmu_test_topup(): number;
  mmu_test_free_caches(): void;
  mmu_test_pte_list_add(headp: number, sptep: number): number;
  mmu_test_pte_list_remove(headp: number, sptep: number): number;
  mmu_test_pte_list_count(headp: number): number;
  mmu_test_pte_list_get(headp: number, i: number): number;
  mmu_test_hashfn(gfn: number): number;
  mmu_test_get_page(gfn: number, role: number): number;
}

export function mmuFunctions(core: Core): MmuCoreFunctions {
  return core.instance.exports as unknown as MmuCoreFunctions;
}

/** Where the MMU's structures live (all 0 / empty in tdp mode). */
export interface MmuLayout {
  start: number;
  end: number;
  nMax: number;
  poolNr: number;
  hdrBase: number;
  sptBase: number;
  gfnsBase: number;
  hashBase: number;
  descBase: number;
  descNr: number;
  rmapBase: number;
  trackBase: number;
  nrGfns: number;
  /** Large sptes: rmap heads and disallow_lpage counts per 2 MiB / 1 GiB region. */
  rmap2mBase: number;
  rmap1gBase: number;
  lpage2mBase: number;
  lpage1gBase: number;
}

const PAGE = 4096;
function align(v: number, a: number): number { return Math.ceil(v / a) * a; }

/** KVM's default cap: 2% of guest pages, at least 64 (kvm_mmu_calculate_default_mmu_pages). */
export function defaultMaxMmuPages(k: Readonly<Record<string, number>>, ramSize: number): number {
  return Math.max(Math.floor((ramSize / PAGE) * k.KVM_PERMILLE_MMU_PAGES / 1000), k.KVM_MIN_ALLOC_MMU_PAGES);
}

/** Carve the MMU's pools out of linear memory from `start` (page aligned). */
export function planMmuLayout(k: Readonly<Record<string, number>>, start: number, ramSize: number, mode: MmuMode, knobs: MmuKnobs): MmuLayout {
  const nrGfns = Math.ceil(ramSize / PAGE);
  if (mode === "tdp") {
    return { start, end: start, nMax: 0, poolNr: 0, hdrBase: 0, sptBase: 0, gfnsBase: 0, hashBase: 0, descBase: 0, descNr: 0, rmapBase: 0, trackBase: 0, nrGfns,
      rmap2mBase: 0, rmap1gBase: 0, lpage2mBase: 0, lpage1gBase: 0 };
  }
  const nMax = knobs.n_max_mmu_pages > 0 ? Math.max(knobs.n_max_mmu_pages, 8) : defaultMaxMmuPages(k, ramSize);
  const poolNr = nMax + k.SP_POOL_SLACK;
  // pte_list_descs: KVM allocates them freely; here a pool big enough for
  // every gfn mapped twice or more, plus room for parent_ptes chains
  const descNr = nrGfns + nMax * k.DESCS_PER_MMU_PAGE;
  let a = align(start, PAGE);
  const sptBase = a; a += poolNr * k.SPT_SIZE;
  const gfnsBase = a; a += poolNr * k.SP_GFNS_SIZE;
  const hdrBase = a; a = align(a + poolNr * k.SP_SIZE, 64);
  const hashBase = a; a = align(a + k.KVM_NUM_MMU_PAGES * 4, 64);
  const descBase = a; a = align(a + descNr * k.PTE_LIST_DESC_SIZE, 64);
  const rmapBase = a; a = align(a + nrGfns * 4, 64);
  const trackBase = a; a = align(a + nrGfns * 2, 64);
  const n2m = Math.ceil(nrGfns / 512), n1g = Math.ceil(nrGfns / (512 * 512));
  const rmap2mBase = a; a = align(a + n2m * 4, 64);
  const rmap1gBase = a; a = align(a + n1g * 4, 64);
  const lpage2mBase = a; a = align(a + n2m * 4, 64);
  const lpage1gBase = a; a = align(a + n1g * 4, PAGE);
  return { start, end: a, nMax, poolNr, hdrBase, sptBase, gfnsBase, hashBase, descBase, descNr, rmapBase, trackBase, nrGfns,
    rmap2mBase, rmap1gBase, lpage2mBase, lpage1gBase };
}

/** What kvm_mmu_audit found. */
export interface AuditReport {
  errors: number;
  checked: number;
  /** The first problem, in words (empty if none). */
  first: string;
}

const AUDIT_NAMES = [
  "", "page on the active list not in use", "page missing from the hash", "obsolete page still active",
  "indirect page's gfn not write-tracked", "parent_ptes entry does not link to the page", "possible_writable bitmap/counter wrong",
  "large leaf spte (not made by this MMU)", "leaf maps the wrong host page", "leaf missing from its gfn's rmap",
  "writable spte on a write-tracked gfn", "spte grants more than the guest walk", "guest entry does not match the spte",
  "link to a wrong or free child page", "n_used_mmu_pages does not match the active list", "gfn_track count wrong",
  "rmap entry is not a present leaf of that gfn", "pool accounting does not add up", "software TLB entry disagrees with the sptes",
];

export class ShadowMmu {
  readonly fn: MmuCoreFunctions;
  /** What a PT_WRITE exit does (src/mmu/pte_write.ts); undefined = KVM's policy with the knobs' rules (kvmPolicy). */
  pteWritePolicy?: PteWritePolicy;
  constructor(readonly core: Core, readonly mode: MmuMode, readonly layout: MmuLayout, readonly knobs: MmuKnobs,
              private readonly dv: () => DataView, private readonly vmBase: number) {
    this.fn = mmuFunctions(core);
  }

  get shadow(): boolean { return this.mode === "shadow"; }

  /** Write the layout and knobs into the VM struct (kvm_mmu_init_vm). */
  init(): void {
    const L = this.layout;
    this.fn.kvm_mmu_vm_init(this.mode === "shadow" ? this.core.k.MMU_MODE_SHADOW : this.core.k.MMU_MODE_TDP, L.nMax, L.poolNr,
      L.hdrBase, L.sptBase, L.gfnsBase, L.hashBase, L.descBase, L.descNr, L.rmapBase, L.trackBase, L.nrGfns);
    if (this.mode === "shadow") this.fn.kvm_mmu_vm_init_lpage(L.rmap2mBase, L.rmap1gBase, L.lpage2mBase, L.lpage1gBase);
    this.applyKnobs(this.knobs);
  }

  applyKnobs(k: MmuKnobs): void {
    Object.assign(this.knobs, k);
    const K = this.core.k;
    const flush = { none: 0, invlpg: K.BROKEN_FLUSH_INVLPG, cr3: K.BROKEN_FLUSH_CR3, wrprot: K.BROKEN_FLUSH_WRPROT }[k.broken_flush];
    this.set32(K.VM_KNOB_PREV_ROOTS, k.prev_roots ? 1 : 0);
    this.set32(K.VM_KNOB_ZAP_ORPHANS, k.zap_orphans ? 1 : 0);
    this.set32(K.VM_KNOB_LARGE_SPTES, k.large_sptes ? 1 : 0);
    this.set32(K.VM_KNOB_PTE_PREFETCH, k.pte_prefetch ? 1 : 0);
    this.set32(K.VM_KNOB_BLOCK_CACHE, k.block_cache ? 1 : 0);
    this.set32(K.VM_KNOB_BLOCK_JIT, k.block_jit);
    this.set32(K.VM_KNOB_BROKEN_FLUSH, flush);
  }

  private get32(off: number): number { return this.dv().getUint32(this.vmBase + off, true); }
  private set32(off: number, v: number): void { this.dv().setUint32(this.vmBase + off, v >>> 0, true); }

  /** Shadow pages in use now (n_used_mmu_pages). */
  get pagesInUse(): number { return this.get32(this.core.k.VM_N_USED_MMU_PAGES); }
  get maxPages(): number { return this.get32(this.core.k.VM_N_MAX_MMU_PAGES); }
  get indirectShadowPages(): number { return this.get32(this.core.k.VM_INDIRECT_SHADOW_PAGES); }

  /** kvm_mmu_audit (the core must be bound to a vCPU: its TLB and caches are checked too). */
  audit(): AuditReport {
    const errors = this.fn.kvm_mmu_audit();
    const K = this.core.k;
    const checked = this.get32(K.VM_AUDIT_CHECKED);
    if (errors === 0) return { errors, checked, first: "" };
    const dv = this.dv();
    const code = this.get32(K.VM_AUDIT_CODE);
    const sp = this.get32(K.VM_AUDIT_SP);
    const index = dv.getInt32(this.vmBase + K.VM_AUDIT_INDEX, true);
    const gfn = dv.getBigUint64(this.vmBase + K.VM_AUDIT_GFN, true);
    const spte = dv.getBigUint64(this.vmBase + K.VM_AUDIT_SPTE, true);
    const detail = dv.getBigUint64(this.vmBase + K.VM_AUDIT_DETAIL, true);
    const where = sp ? ` in shadow page 0x${sp.toString(16)} (role 0x${this.fn.mmu_sp_role(sp).toString(16)}, gfn 0x${this.fn.mmu_sp_gfn(sp).toString(16)})` : "";
    const first = `${AUDIT_NAMES[code] ?? `problem ${code}`}${where}, index ${index}, gfn 0x${gfn.toString(16)}, spte 0x${spte.toString(16)}, detail 0x${detail.toString(16)}`;
    return { errors, checked, first };
  }

  /** The valid indirect shadow pages of a gfn (for_each_gfn_indirect_valid_sp). */
  pagesOfGfn(gfn: number): number[] {
    const out: number[] = [];
    for (let sp = this.fn.mmu_gfn_next_sp(gfn, 0); sp !== 0; sp = this.fn.mmu_gfn_next_sp(gfn, sp)) out.push(sp);
    return out;
  }
}

export { DEFAULT_KNOBS };
