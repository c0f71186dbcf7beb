/**
 * The MMU's mode and knobs. Every knob has a KVM-like name, a default that is
 * what modern KVM does, and a one-line description (shown by --help). They
 * are set per VM (`--knob name=value` on the command line, `knobs` in
 * VmOptions) and written into the VM struct, where the WASM core reads them.
 */
export type MmuMode = "shadow" | "tdp";
export const MMU_MODES: readonly MmuMode[] = ["shadow", "tdp"];

/** Test-only: which TLB flush to skip (the negative control for the guest tests). */
export type BrokenFlush = "none" | "invlpg" | "cr3" | "wrprot";

/** Write-flooding detection (seed 003): see MmuKnobs.flood_detect. */
export type FloodDetect = "accessed" | "legacy" | "off";

export interface MmuKnobs {
  /** Keep the last 3 roots on MOV CR3 (KVM's prev_roots, seed 004). */
  prev_roots: boolean;
  /** Shadow pages the MMU may use before it recycles the oldest (KVM's n_max_mmu_pages); 0 = KVM's default, 2% of guest RAM pages, at least 64. */
  n_max_mmu_pages: number;
  /** Zapping a shadow page also zaps its children that are left without a parent (KVM keeps them until recycled). */
  zap_orphans: boolean;
  /** Map large guest pages (and paging-off RAM) with 2 MiB sptes where no write-tracked gfn and no memslot edge is in the way (KVM's huge pages); 0 maps them with direct 4 KiB shadow pages. */
  large_sptes: boolean;
  /** A shadow page fault also installs the not-present sptes of its aligned group of 8 whose guest entries allow it, speculative (KVM's FNAME(pte_prefetch) / direct_pte_prefetch). */
  pte_prefetch: boolean;
  /** Test only: skip one kind of TLB flush, so a guest test can prove it notices stale translations. */
  broken_flush: BrokenFlush;
  // ---- the pte-write rules (issue 5, src/mmu/pte_write.ts): off = what KVM did before the seed
  /** A whole-gpte write installs the spte the new gpte asks for instead of leaving it zapped (seed 002: FNAME(update_pte)). */
  update_pte: boolean;
  /** Fill the vCPU's object cache on the pte-write path before mmu_lock; with no free pte_list_desc the spte is zapped, never installed (seed 003). Off: the cache is whatever the last fault left. */
  pte_write_topup: boolean;
  /** A rep movs/stos that writes a page table zaps every shadow page of that gfn and unprotects it, so the rest of the string goes straight to memory (seed 003). */
  unprotect_rep_string: boolean;
  /** A one-byte write to a gpte (andb/orb/lock btr on its status bits) updates the spte instead of counting as misaligned and zapping the page (seed 003). */
  byte_pte_write: boolean;
  /** Write-flooding: a page written 3 times without being used for translation in between is zapped (seed 003). accessed: the page's use as seen by the spte walk and faults; legacy: the per-vCPU last-written gfn and the accessed bit of the last speculative spte (KVM before seed 003); off: never. */
  flood_detect: FloodDetect;
  /** How dirty logging write-protects (issue 8): "rmap" walks every page's rmap (KVM's kvm_mmu_slot_remove_write_access); "generation" is seed 000's O(1) write-protect-all. */
  wp_all: "rmap" | "generation";
  /** Test only: "no_reprotect" never write-protects for dirty logging (the dirty-log torture test's negative control). */
  broken_dirty_log: "none" | "no_reprotect";
  /** Not an MMU rule but set with the knobs: the interpreter runs straight-line blocks from the block cache (assembly/cpu/block.ts, issue 12); off = one decoded instruction per run-loop turn. */
  block_cache: boolean;
  /** Hot blocks are compiled to WebAssembly functions (src/jit/, issue 12) after this many runs; 0 = never (they keep running as uops). */
  block_jit: number;
}

export const DEFAULT_KNOBS: Readonly<MmuKnobs> = { prev_roots: true, n_max_mmu_pages: 0, zap_orphans: false, large_sptes: true, pte_prefetch: true, broken_flush: "none",
  update_pte: true, pte_write_topup: true, unprotect_rep_string: true, byte_pte_write: true, flood_detect: "accessed", wp_all: "rmap", broken_dirty_log: "none",
  block_cache: true, block_jit: 32768 };

interface KnobSpec { name: keyof MmuKnobs; help: string; values: string; }
export const KNOB_SPECS: readonly KnobSpec[] = [
  { name: "prev_roots", help: "keep the last 3 shadow roots on MOV CR3 (seed 004)", values: "1|0 (default 1)" },
  { name: "n_max_mmu_pages", help: "cap on shadow pages before the oldest are recycled", values: "N (default 2% of RAM pages, min 64)" },
  { name: "large_sptes", help: "map large guest pages with large sptes (read-only, not zapped, when a page table appears in them: seed 001)", values: "1|0 (default 1)" },
  { name: "pte_prefetch", help: "a shadow page fault also installs the not-present neighbours (its aligned group of 8 sptes) the guest entries allow, speculative, as KVM's FNAME(pte_prefetch)", values: "1|0 (default 1, as KVM)" },
  { name: "zap_orphans", help: "zapping a shadow page also zaps children left without parents", values: "1|0 (default 0, as KVM)" },
  { name: "broken_flush", help: "TEST ONLY: skip a TLB flush (negative control)", values: "none|invlpg|cr3|wrprot (default none)" },
  { name: "update_pte", help: "a guest write of a whole gpte installs the new spte instead of leaving it zapped: a demand fault costs 2 exits, not 3 (seed 002, Avi Kivity 2007: ~10% faster kbuild)", values: "1|0 (default 1)" },
  { name: "pte_write_topup", help: "fill the object cache on the pte-write path before mmu_lock; no free pte_list_desc = zap, never install or fail (seed 003)", values: "1|0 (default 1)" },
  { name: "unprotect_rep_string", help: "a rep stos/movs over a page table zaps its shadow pages and unprotects it: a 4 KiB memset costs 1 exit (seed 003)", values: "1|0 (default 1)" },
  { name: "byte_pte_write", help: "a 1-byte write to a gpte (andb/orb/lock btr) updates the spte instead of zapping the page as misaligned (seed 003)", values: "1|0 (default 1)" },
  { name: "flood_detect", help: "zap a page written 3 times without being used for translation in between (seed 003: by the page's accessed state; legacy: KVM's last-speculative-spte heuristic)", values: "accessed|legacy|off (default accessed)" },
  { name: "wp_all", help: "how dirty logging write-protects: rmap (walk every page's rmap, as KVM) or generation (O(1) write-protect-all, seed 000)", values: "rmap|generation (default rmap)" },
  { name: "broken_dirty_log", help: "TEST ONLY: never re-protect pages for dirty logging (negative control)", values: "none|no_reprotect (default none)" },
  { name: "block_cache", help: "interpreter: run cached straight-line blocks with specialised uops (not an MMU rule; issue 12)", values: "1|0 (default 1)" },
  { name: "block_jit", help: "interpreter: compile a block to WebAssembly once it has run N times, with warm blocks in the same module (with block_cache; issue 12). A compile costs ~0.5 ms, repaid after some 10^4 runs of a block", values: "N|0 (default 32768; 0 = never)" },
];

export class KnobError extends Error {}

function parseBool(name: string, v: string): boolean {
  if (v === "1" || v === "true" || v === "on") return true;
  if (v === "0" || v === "false" || v === "off") return false;
  throw new KnobError(`knob ${name} wants 1 or 0, got "${v}"`);
}

/** Parse "name=value" settings (from --knob) over the defaults. */
export function parseKnobs(settings: readonly string[], base: Readonly<MmuKnobs> = DEFAULT_KNOBS): MmuKnobs {
  const k: MmuKnobs = { ...base };
  for (const s of settings) {
    const m = /^([a-z_0-9]+)=(.*)$/.exec(s.trim());
    if (!m) throw new KnobError(`--knob wants name=value, got "${s}" (knobs: ${KNOB_SPECS.map((x) => x.name).join(", ")})`);
    const [, name, v] = m;
    switch (name) {
      case "prev_roots": k.prev_roots = parseBool(name, v); break;
      case "zap_orphans": k.zap_orphans = parseBool(name, v); break;
      case "large_sptes": k.large_sptes = parseBool(name, v); break;
      case "pte_prefetch": k.pte_prefetch = parseBool(name, v); break;
      case "update_pte": k.update_pte = parseBool(name, v); break;
      case "pte_write_topup": k.pte_write_topup = parseBool(name, v); break;
      case "unprotect_rep_string": k.unprotect_rep_string = parseBool(name, v); break;
      case "byte_pte_write": k.byte_pte_write = parseBool(name, v); break;
      case "block_cache": k.block_cache = parseBool(name, v); break;
      case "block_jit":
        if (!/^\d+$/.test(v) || Number(v) > 1_000_000) throw new KnobError(`knob block_jit wants a run count (0 = never), got "${v}"`);
        k.block_jit = Number(v);
        break;
      case "flood_detect":
        if (v !== "accessed" && v !== "legacy" && v !== "off") throw new KnobError(`knob flood_detect wants accessed, legacy or off, got "${v}"`);
        k.flood_detect = v;
        break;
      case "n_max_mmu_pages":
        if (!/^\d+$/.test(v) || Number(v) < 0 || Number(v) > 1 << 20) throw new KnobError(`knob n_max_mmu_pages wants a whole number (0 = default), got "${v}"`);
        k.n_max_mmu_pages = Number(v);
        break;
      case "broken_flush":
        if (!["none", "invlpg", "cr3", "wrprot"].includes(v)) throw new KnobError(`knob broken_flush wants none, invlpg, cr3 or wrprot, got "${v}"`);
        k.broken_flush = v as BrokenFlush;
        break;
      case "wp_all":
        if (v !== "rmap" && v !== "generation") throw new KnobError(`knob wp_all wants rmap or generation, got "${v}"`);
        k.wp_all = v;
        break;
      case "broken_dirty_log":
        if (v !== "none" && v !== "no_reprotect") throw new KnobError(`knob broken_dirty_log wants none or no_reprotect, got "${v}"`);
        k.broken_dirty_log = v;
        break;
      default:
        throw new KnobError(`unknown knob "${name}" (knobs: ${KNOB_SPECS.map((x) => x.name).join(", ")})`);
    }
  }
  return k;
}

export function knobsHelp(): string {
  return KNOB_SPECS.map((s) => `  ${s.name}=${s.values}\n      ${s.help}`).join("\n");
}
