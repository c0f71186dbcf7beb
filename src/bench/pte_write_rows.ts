/**
 * The seeds' table for the pte-write rules (issue 5, src/mmu/pte_write.ts):
 * each rule off vs on (everything else at its default) on the image made for
 * it and on kernbench, and all rules off vs on. Each row's runs record both
 * the exits counter and the wall time; pteWriteTable prints them side by side
 * with what the seed claimed.
 */
import type { BenchRow, BenchResult } from "./bench.js";

interface Rule { knob: string; off: string; on: string; seed: string; claim: string; images: string[]; }

const RULES: Rule[] = [
  { knob: "update_pte", off: "update_pte=0", on: "update_pte=1", seed: "002",
    claim: "seed 002: 3 exits -> 2 per demand fault; kbuild ~10% faster", images: ["demand-fault-linux", "kernbench"] },
  { knob: "pte_write_topup", off: "pte_write_topup=0", on: "pte_write_topup=1", seed: "003",
    claim: "seed 003: no allocation under mmu_lock, never fail (correctness; no speed claim)", images: ["kernbench"] },
  { knob: "unprotect_rep_string", off: "unprotect_rep_string=0", on: "unprotect_rep_string=1", seed: "003",
    claim: "seed 003: memset of a page table: 1 exit, not one per stosb", images: ["pt-memset", "kernbench"] },
  { knob: "byte_pte_write", off: "byte_pte_write=0", on: "byte_pte_write=1", seed: "003",
    claim: "seed 003: andb on a gpte updates the spte, no zap", images: ["pte-bitops", "kernbench"] },
  { knob: "flood_detect", off: "flood_detect=off", on: "flood_detect=accessed", seed: "003",
    claim: "seed 003: a table turned data is zapped after 3 writes", images: ["flood", "kernbench"] },
  { knob: "flood_detect", off: "flood_detect=legacy", on: "flood_detect=accessed", seed: "003",
    claim: "seed 003: flooding by spte accessed, not the last speculative spte", images: ["flood", "kernbench"] },
];

const ALL_OFF = ["update_pte=0", "pte_write_topup=0", "unprotect_rep_string=0", "byte_pte_write=0", "flood_detect=off"];
const ALL_ON = ["update_pte=1", "pte_write_topup=1", "unprotect_rep_string=1", "byte_pte_write=1", "flood_detect=accessed"];
const knobArgs = (ks: string[]) => ["--mmu", "shadow", ...ks.flatMap((k) => ["--knob", k])];
const PTE_WRITE_CLAIM = /^seed 00[23]:/;

export function pteWriteRows(): BenchRow[] {
  const rows: BenchRow[] = [];
  for (const r of RULES) {
    for (const img of r.images) {
      rows.push({ workload: img, image: `guest-images/${img}.elf`, metric: "exits",
        off: { label: r.off, args: knobArgs([r.off]) }, on: { label: r.on, args: knobArgs([r.on]) }, claim: r.claim });
    }
  }
  for (const img of ["kernbench", "forkwait"]) {
    rows.push({ workload: img, image: `guest-images/${img}.elf`, metric: "exits",
      off: { label: "all pte-write rules off", args: knobArgs(ALL_OFF) }, on: { label: "all on", args: knobArgs(ALL_ON) },
      claim: "seed 002: kbuild ~10% faster; seed 003: kernbench 3m0s -> 2m50s (~5.6% faster)" });
  }
  return rows;
}

/** The seeds' table: rule, workload, exits and wall time off and on, ratios, the claim. */
export function pteWriteTable(results: BenchResult[]): string {
  const rows = results.filter((r) => PTE_WRITE_CLAIM.test(r.row.claim) && r.row.metric === "exits" && r.off !== r.on);
  if (rows.length === 0) return "";
  const out = [
    "| rule (off -> on) | workload | exits off | exits on | exits on/off | PT_WRITE exits off -> on | wall s off | wall s on | wall on/off | seed's claim |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ];
  for (const r of rows) {
    const eo = r.off.counters.exits ?? 0, en = r.on.counters.exits ?? 0;
    const po = r.off.counters.pt_write_exits ?? 0, pn = r.on.counters.pt_write_exits ?? 0;
    out.push(`| ${r.row.off.label} -> ${r.row.on.label} | ${r.row.workload} | ${eo} | ${en} | ${(en / Math.max(eo, 1)).toFixed(2)} | ${po} -> ${pn} | ` +
      `${r.off.wallS.toFixed(2)} | ${r.on.wallS.toFixed(2)} | ${(r.on.wallS / r.off.wallS).toFixed(2)} | ${r.row.claim} |`);
  }
  return out.join("\n");
}
