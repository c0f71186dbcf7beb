/**
 * The rows of `shadow86 bench`. Each compares two configurations of the same
 * guest; knob rows name the seed whose claim they check.
 */
import type { BenchRow } from "./bench.js";
import { pteWriteRows } from "./pte_write_rows.js";

export function suite(): BenchRow[] {
  const rows: BenchRow[] = [
    { workload: "bench-cpu rounds=2", image: "guest-images/bench-cpu.elf", append: "rounds=2", metric: "mips",
      off: { label: "block_cache=0", args: ["--knob", "block_cache=0"] }, on: { label: "block_cache=1 block_jit=0", args: ["--knob", "block_jit=0"] },
      claim: "issue 3: >= 150 MIPS (the block cache and its uops: cpu/block.ts, uops.ts)" },
    { workload: "bench-cpu rounds=2", image: "guest-images/bench-cpu.elf", append: "rounds=2", metric: "mips",
      off: { label: "block_jit=0", args: ["--knob", "block_jit=0"] }, on: { label: "block_jit=32768 (default)", args: [] },
      claim: "issue 12: >= 300 MIPS (hot blocks compiled to WebAssembly: src/jit/)" },
  ];
  // SMP (issue 10): every vCPU writes its own region; aggregate guest MIPS (all vCPUs' instructions / wall time)
  const smpDirty = { workload: "smp-dirty rounds=4000 pages=1024", image: "guest-images/smp-dirty.elf", append: "rounds=4000 pages=1024", metric: "mips" };
  rows.push({ ...smpDirty, off: { label: "-smp 1", args: ["-smp", "1"] }, on: { label: "-smp 2", args: ["-smp", "2"] },
    claim: "issue 10: aggregate MIPS with a worker thread per vCPU (2 host cores)" });
  rows.push({ ...smpDirty, off: { label: "-smp 2 deterministic", args: ["-smp", "2", "--smp-mode", "deterministic"] }, on: { label: "-smp 2 parallel", args: ["-smp", "2"] },
    claim: "issue 10: one thread interleaving vs one thread per vCPU" });
  for (const img of ["hello", "cr3-switch", "memset", "pt-memset", "pt-torture", "pt-torture-32", "forkwait", "kernbench", "demand-fault"]) {
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
  // KVM's FNAME(pte_prefetch): the fault maps the neighbours whose gptes are present and accessed
  for (const img of ["pt-torture", "kernbench"]) {
    rows.push({ workload: img, image: `guest-images/${img}.elf`, metric: "pf_fixed",
      off: { label: "pte_prefetch=0", args: ["--mmu", "shadow", "--knob", "pte_prefetch=0"] },
      on: { label: "pte_prefetch=1", args: ["--mmu", "shadow", "--knob", "pte_prefetch=1"] },
      claim: "KVM: a shadow fault also maps up to 7 neighbouring sptes (only gptes with A set)" });
  }
  rows.push(...pteWriteRows()); // issue 5: the pte-write rules, each off vs on (src/bench/pte_write_rows.ts)
  // issue 8: dirty logging (more in src/dirty/bench.ts: enable time vs RAM size, get/clear per GiB)
  const dw = { workload: "dirty-writer rounds=16 pages=32768", image: "guest-images/dirty-writer.elf", append: "rounds=16 pages=32768 writes=32768" };
  rows.push({ ...dw, metric: "wall_s",
    off: { label: "no logging", args: ["--mmu", "shadow"] },
    on: { label: "--dirty-log 1 (rmap)", args: ["--mmu", "shadow", "--dirty-log", "1"] },
    claim: "seed 000: guest writes ~3% slower with logging on (wp_all=generation)" });
  rows.push({ ...dw, metric: "wall_s",
    off: { label: "wp_all=rmap", args: ["--mmu", "shadow", "--dirty-log", "1", "--knob", "wp_all=rmap"] },
    on: { label: "wp_all=generation", args: ["--mmu", "shadow", "--dirty-log", "1", "--knob", "wp_all=generation"] },
    claim: "seed 000: O(1) write-protect-all; protection moves down on write faults" });
  rows.push({ ...dw, metric: "fast_pf_fixed",
    off: { label: "no logging", args: ["--mmu", "shadow"] },
    on: { label: "--dirty-log 1", args: ["--mmu", "shadow", "--dirty-log", "1"] },
    claim: "write faults on dirty-logged 4 KiB sptes fixed without mmu_lock" });
  return rows;
}
