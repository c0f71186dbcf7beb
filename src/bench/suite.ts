/**
 * The rows of `shadow86 bench`. Each compares two configurations of the same
 * guest; knob rows name the seed whose claim they check.
 */
import type { BenchRow } from "./bench.js";

export function suite(features: { mmu: boolean }): BenchRow[] {
  const rows: BenchRow[] = [
    { workload: "bench-cpu rounds=2", image: "guest-images/bench-cpu.elf", append: "rounds=2", metric: "mips",
      off: { label: "default", args: [] }, on: { label: "default", args: [] }, claim: "issue 3: >= 150 MIPS; issue 12: >= 300" },
  ];
  // SMP (issue 10): every vCPU writes its own region; aggregate guest MIPS (all vCPUs' instructions / wall time)
  const smpDirty = { workload: "smp-dirty rounds=4000 pages=1024", image: "guest-images/smp-dirty.elf", append: "rounds=4000 pages=1024", metric: "mips" };
  rows.push({ ...smpDirty, off: { label: "-smp 1", args: ["-smp", "1"] }, on: { label: "-smp 2", args: ["-smp", "2"] },
    claim: "issue 10: aggregate MIPS with a worker thread per vCPU (2 host cores)" });
  rows.push({ ...smpDirty, off: { label: "-smp 2 deterministic", args: ["-smp", "2", "--smp-mode", "deterministic"] }, on: { label: "-smp 2 parallel", args: ["-smp", "2"] },
    claim: "issue 10: one thread interleaving vs one thread per vCPU" });
  if (features.mmu) {
    for (const img of ["hello", "cr3-switch", "memset", "pt-torture", "pt-torture-32", "forkwait", "kernbench", "demand-fault"]) {
      rows.push({ workload: img, image: `guest-images/${img}.elf`, metric: "wall_s",
        off: { label: "tdp", args: ["--mmu", "tdp"] }, on: { label: "shadow", args: ["--mmu", "shadow"] },
        claim: "shadow vs the tdp baseline (walk on every TLB miss)" });
    }
    rows.push({ workload: "cr3-switch", image: "guest-images/cr3-switch.elf", metric: "wall_s",
      off: { label: "prev_roots=0", args: ["--mmu", "shadow", "--knob", "prev_roots=0"] },
      on: { label: "prev_roots=1", args: ["--mmu", "shadow", "--knob", "prev_roots=1"] },
      claim: "seed 004: cached roots make switching back cheap" });
    rows.push({ workload: "cr3-switch", image: "guest-images/cr3-switch.elf", metric: "mmu_root_alloc",
      off: { label: "prev_roots=0", args: ["--mmu", "shadow", "--knob", "prev_roots=0"] },
      on: { label: "prev_roots=1", args: ["--mmu", "shadow", "--knob", "prev_roots=1"] },
      claim: "seed 004: a switch back to a cached root builds nothing" });
  }
  return rows;
}
