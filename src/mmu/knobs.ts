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

export interface MmuKnobs {
  /** Keep the last 3 roots on MOV CR3 (KVM's prev_roots, seed 004). */
  prev_roots: boolean;
  /** Shadow pages the MMU may use before it recycles the oldest (KVM's n_max_mmu_pages); 0 = KVM's default, 2% of guest RAM pages, at least 64. */
  n_max_mmu_pages: number;
  /** Zapping a shadow page also zaps its children that are left without a parent (KVM keeps them until recycled). */
  zap_orphans: boolean;
  /** Map large guest pages (and paging-off RAM) with 2 MiB sptes where no write-tracked gfn and no memslot edge is in the way (KVM's huge pages); 0 maps them with direct 4 KiB shadow pages. */
  large_sptes: boolean;
  /** Test only: skip one kind of TLB flush, so a guest test can prove it notices stale translations. */
  broken_flush: BrokenFlush;
  /** How dirty logging write-protects (issue 8): "rmap" walks every page's rmap (KVM's kvm_mmu_slot_remove_write_access); "generation" is seed 000's O(1) write-protect-all. */
  wp_all: "rmap" | "generation";
  /** Test only: "no_reprotect" never write-protects for dirty logging (the dirty-log torture test's negative control). */
  broken_dirty_log: "none" | "no_reprotect";
}

export const DEFAULT_KNOBS: Readonly<MmuKnobs> = { prev_roots: true, n_max_mmu_pages: 0, zap_orphans: false, large_sptes: true, broken_flush: "none", wp_all: "rmap", broken_dirty_log: "none" };

interface KnobSpec { name: keyof MmuKnobs; help: string; values: string; }
export const KNOB_SPECS: readonly KnobSpec[] = [
  { name: "prev_roots", help: "keep the last 3 shadow roots on MOV CR3 (seed 004)", values: "1|0 (default 1)" },
  { name: "n_max_mmu_pages", help: "cap on shadow pages before the oldest are recycled", values: "N (default 2% of RAM pages, min 64)" },
  { name: "large_sptes", help: "map large guest pages with large sptes (read-only, not zapped, when a page table appears in them: seed 001)", values: "1|0 (default 1)" },
  { name: "zap_orphans", help: "zapping a shadow page also zaps children left without parents", values: "1|0 (default 0, as KVM)" },
  { name: "broken_flush", help: "TEST ONLY: skip a TLB flush (negative control)", values: "none|invlpg|cr3|wrprot (default none)" },
  { name: "wp_all", help: "how dirty logging write-protects: rmap (walk every page's rmap, as KVM) or generation (O(1) write-protect-all, seed 000)", values: "rmap|generation (default rmap)" },
  { name: "broken_dirty_log", help: "TEST ONLY: never re-protect pages for dirty logging (negative control)", values: "none|no_reprotect (default none)" },
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
