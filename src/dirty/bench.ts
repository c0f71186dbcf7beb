/**
 * Dirty-logging benchmarks (like KVM's dirty_log_perf_test), printed as
 * markdown tables:
 *   1. time to enable logging (= write-protect all guest memory) versus RAM
 *      size, wp_all=rmap vs generation, after the guest mapped all its RAM;
 *   2. get / clear log time per GiB (scan only; clear + re-protect of every page);
 *   3. dirty-writer write throughput (wall clock) with logging off and on.
 * Run: npx tsx src/dirty/bench.ts [--sizes 64,256,1024,3072] [--quick]
 * (SHADOW86_BUILD_DIR selects the core build.)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Machine } from "../machine.js";
import { loadCoreModule, packageRoot } from "../platform/node.js";
import { runWithDirtyLog } from "./harvest.js";
import { KVM_MEM_LOG_DIRTY_PAGES } from "./dirty_log.js";

const MiB = 1024 * 1024;
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const sizesArg = args.indexOf("--sizes");
const sizes = sizesArg >= 0 ? args[sizesArg + 1]!.split(",").map(Number) : quick ? [64, 256] : [64, 256, 1024, 3072];
const kernel = new Uint8Array(readFileSync(join(packageRoot(), "guest-images", "dirty-writer.elf")));

function machine(ramMiB: number, append: string, wp: "rmap" | "generation"): Machine {
  return new Machine({ module: loadCoreModule(), ramSize: ramMiB * MiB, kernel, append, onSerial: () => {}, knobs: { wp_all: wp }, maxInstructions: 20_000_000_000n });
}
/** Pages of dirty-writer's region that fill RAM above its 32 MiB base (less some room). */
// (capped at 1 GiB: with ~300k pages or more dirty-writer runs out of page-table pool, on QEMU too)
function regionPages(ramMiB: number): number { return Math.min(262144, Math.floor(((ramMiB - 40) * MiB) / 4096 / 1024) * 1024); }

function enableAll(m: Machine): number {
  const vm = m.vm;
  const t = performance.now();
  for (const s of [...vm.memslots.values()]) vm.setUserMemoryRegion({ slot: s.slot, guestPhysAddr: s.guestPhysAddr, size: s.size, flags: s.flags | KVM_MEM_LOG_DIRTY_PAGES });
  return performance.now() - t;
}

console.log("## Enabling dirty logging (write-protect all guest memory) after dirty-writer touched its region (up to 1 GiB)\n");
console.log("| RAM | region pages touched | rmap: enable ms | generation: enable ms | rmap / generation |");
console.log("|---|---|---|---|---|");
const getRows: string[] = [];
for (const size of sizes) {
  const pages = regionPages(size);
  const res: Record<string, number> = {};
  for (const wp of ["rmap", "generation"] as const) {
    const m = machine(size, `rounds=1 pages=${pages} writes=${pages}`, wp);
    const r = m.run();
    if (r.status !== 33) throw new Error(`dirty-writer failed at ${size} MiB (${r.reason} ${r.status})`);
    const best = [enableAll(m)];
    // again: logging off then on (the rmap walk is repeated, the generation bumped)
    for (let i = 0; i < 2; i++) {
      for (const s of [...m.vm.memslots.values()]) m.vm.setUserMemoryRegion({ slot: s.slot, guestPhysAddr: s.guestPhysAddr, size: s.size, flags: s.flags & ~KVM_MEM_LOG_DIRTY_PAGES });
      m.run(undefined, m.vm.vcpus[0].instructions); // nothing runs; keeps the machine as is
      best.push(enableAll(m));
    }
    res[wp] = Math.min(...best);
    if (wp === "rmap") {
      // get/clear per GiB on the big slot (slot 1): scan only (manual get), then classic get with every bit set
      const vm = m.vm, slot = 1, npages = vm.memslots.get(slot)!.size / 4096;
      const bm = vm.dirtyLog.bitmapOffset(slot);
      const u8 = new Uint8Array(vm.memory.buffer);
      let t = performance.now();
      const reps = 20;
      for (let i = 0; i < reps; i++) vm.getDirtyLog(slot);
      const scanEmpty = (performance.now() - t) / reps;
      let full = Infinity;
      for (let i = 0; i < 5; i++) {
        u8.fill(0xff, bm, bm + Math.floor(npages / 8));
        t = performance.now();
        vm.getDirtyLog(slot); // every page: return, clear and re-protect through its rmap
        full = Math.min(full, performance.now() - t);
      }
      const gib = (npages * 4096) / (1024 * MiB);
      getRows.push(`| ${size} MiB | ${npages} | ${(scanEmpty / gib).toFixed(3)} | ${(full / gib).toFixed(1)} |`);
    }
  }
  console.log(`| ${size} MiB | ${pages} | ${res.rmap!.toFixed(3)} | ${res.generation!.toFixed(3)} | ${(res.rmap! / res.generation!).toFixed(0)}x |`);
}
console.log("\n## getDirtyLog cost per GiB of slot (classic mode, wp_all=rmap)\n");
console.log("| RAM | slot pages | empty log: ms/GiB (scan + copy) | every page dirty: ms/GiB (scan + clear + rmap re-protect) |");
console.log("|---|---|---|---|");
for (const r of getRows) console.log(r);

console.log("\n## dirty-writer write throughput (wall clock), 256 MiB guest, 16 rounds of 32768 writes over 32768 pages\n");
console.log("| configuration | wall s | pages/s | vs logging off | fast_pf_fixed | pf_fixed | harvests |");
console.log("|---|---|---|---|---|---|---|");
const append = "rounds=16 pages=32768 writes=32768";
const writes = 16 * 32768;
let offRate = 0;
for (const cfg of [{ name: "logging off", wp: "rmap" as const, every: 0n }, { name: "logging on, harvest every 1 ms, rmap", wp: "rmap" as const, every: 1_000_000n },
  { name: "logging on, harvest every 1 ms, generation", wp: "generation" as const, every: 1_000_000n }]) {
  const m = machine(256, append, cfg.wp);
  const t = performance.now();
  let r; let harvests = 0;
  if (cfg.every === 0n) r = m.run();
  else { const rep = runWithDirtyLog(m, { everyInstructions: cfg.every }); r = rep.result; harvests = rep.harvests; }
  const s = (performance.now() - t) / 1000;
  const rate = writes / s;
  if (cfg.every === 0n) offRate = rate;
  console.log(`| ${cfg.name} | ${s.toFixed(2)} | ${rate.toFixed(0)} | ${((rate / offRate - 1) * 100).toFixed(1)}% | ${r.stats.fast_pf_fixed} | ${r.stats.pf_fixed} | ${harvests} |`);
}
