/**
 * Seed 000's claim with SMP: write-protect-all should not cost more with more
 * vCPUs. smp-dirty with -smp N (deterministic mode), the same 32 MiB written
 * in total (8192 / N pages per vCPU), both wp_all strategies: the time to
 * enable dirty logging on every slot (= write-protect all guest memory) once
 * every vCPU has touched its region, and the mean time of a classic
 * get-dirty-log (scan + clear + re-protect what was written) over 8 harvests
 * 200k instructions apart. The guest keeps running between harvests, so the
 * vCPUs pay their own share afterwards (rmap: nothing; generation: each
 * vCPU's roots are reloaded and protection moves down on write faults).
 * Each configuration is run once untimed first (JIT warm-up).
 * Run: npx tsx src/smp/bench_wp.ts [--cpus 1,2,4,8]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Machine } from "../machine.js";
import { loadCoreModule, packageRoot } from "../platform/node.js";
import { KVM_MEM_LOG_DIRTY_PAGES } from "../dirty/dirty_log.js";

const args = process.argv.slice(2);
const cpusArg = args.indexOf("--cpus");
const cpuCounts = cpusArg >= 0 ? args[cpusArg + 1]!.split(",").map(Number) : [1, 2, 4, 8];
const kernel = new Uint8Array(readFileSync(join(packageRoot(), "guest-images", "smp-dirty.elf")));
const TOTAL_PAGES = 8192;

function measure(cpus: number, wp: "rmap" | "generation"): { enableMs: number; harvestMs: number; fastPf: bigint; faults: bigint } {
  const m = new Machine({
    module: loadCoreModule(), ramSize: 256 << 20, kernel, append: `rounds=100000 pages=${TOTAL_PAGES / cpus}`, onSerial: () => {},
    knobs: { wp_all: wp }, smp: cpus, smpMode: "deterministic", maxInstructions: 20_000_000_000n,
  });
  // every vCPU writes its whole region at least once (~8 instructions a page, two passes a round)
  let until = BigInt(TOTAL_PAGES / cpus) * 40n + 2_000_000n;
  if (m.run(undefined, until).reason !== "paused") throw new Error("guest stopped early");
  const vm = m.vm;
  const slots = [...vm.memslots.values()].filter((s) => (s.flags & vm.core.k.MEM_READONLY) === 0);
  const t0 = performance.now();
  for (const s of slots) vm.setUserMemoryRegion({ slot: s.slot, guestPhysAddr: s.guestPhysAddr, size: s.size, flags: s.flags | KVM_MEM_LOG_DIRTY_PAGES });
  const enableMs = performance.now() - t0;
  const before = m.smp!.stats();
  let harvestMs = 0;
  const rounds = 8;
  for (let i = 0; i < rounds; i++) {
    until += 200_000n;
    if (m.run(undefined, until).reason !== "paused") throw new Error("guest stopped early");
    const t = performance.now();
    for (const s of slots) vm.getDirtyLog(s.slot);
    harvestMs += performance.now() - t;
  }
  const after = m.smp!.stats();
  return { enableMs, harvestMs: harvestMs / rounds, fastPf: (after.fast_pf_fixed ?? 0n) - (before.fast_pf_fixed ?? 0n), faults: (after.pf_fixed ?? 0n) - (before.pf_fixed ?? 0n) };
}

// one untimed pass first: the JIT warms up on the same code paths
for (const cpus of cpuCounts) for (const wp of ["rmap", "generation"] as const) measure(cpus, wp);
console.log("| vCPUs | wp_all | enable logging ms | get-dirty-log ms (mean of 8) | pf_fixed after | fast_pf_fixed after |");
console.log("|---:|---|---:|---:|---:|---:|");
for (const cpus of cpuCounts) {
  for (const wp of ["rmap", "generation"] as const) {
    const r = measure(cpus, wp);
    console.log(`| ${cpus} | ${wp} | ${r.enableMs.toFixed(3)} | ${r.harvestMs.toFixed(3)} | ${r.faults} | ${r.fastPf} |`);
  }
}
