/**
 * smp-dirty under dirty logging: every vCPU writes its own region while the
 * host harvests the log every 20k instructions (of vCPU 0; deterministic
 * mode pauses at round boundaries) and checks that every page whose content
 * changed has its bit set (src/dirty/harvest.ts: the oracle is the page
 * contents). Zero missed pages with 2 and 4 vCPUs, for both write-protect
 * strategies under shadow paging and under tdp: the re-protection of a
 * harvest must reach every vCPU's TLB (remote TLB flush requests), not only
 * the vCPU the host happens to be bound to.
 */
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { imagePath } from "../support/guest.js";
import { runWithDirtyLog } from "../../src/dirty/harvest.js";
import type { MmuKnobs, MmuMode } from "../../src/mmu/knobs.js";

function smpDirty(cpus: number, mmu: MmuMode, knobs: Partial<MmuKnobs>) {
  const bytes: number[] = [];
  const machine = new Machine({
    module: loadCoreModule(), ramSize: 64 << 20, kernel: new Uint8Array(readFileSync(imagePath("smp-dirty"))),
    kernelPath: "guest-images/smp-dirty.elf", append: "rounds=6 pages=256", onSerial: (b) => bytes.push(b),
    maxInstructions: 500_000_000n, mmu, knobs, smp: cpus, smpMode: "deterministic",
  });
  return { machine, serial: () => Buffer.from(bytes).toString("latin1") };
}

const CASES = [2, 4].flatMap((cpus) => [
  { cpus, mmu: "shadow" as const, wp: "rmap" as const },
  { cpus, mmu: "shadow" as const, wp: "generation" as const },
  { cpus, mmu: "tdp" as const, wp: "rmap" as const },
]);

describe("smp-dirty with dirty logging (deterministic mode)", () => {
  it.each(CASES)("-smp $cpus --mmu $mmu wp_all=$wp: zero missed pages", ({ cpus, mmu, wp }) => {
    const { machine, serial } = smpDirty(cpus, mmu, { wp_all: wp });
    const rep = runWithDirtyLog(machine, { everyInstructions: 20_000n, check: true });
    expect(serial()).toContain("ALL PASSED");
    expect(rep.result.reason).toBe("debug-exit");
    expect(rep.harvests).toBeGreaterThan(5);
    expect(rep.missed, JSON.stringify(rep.firstMissed)).toBe(0);
    // every vCPU's region (cpus x 256 pages) was written in several harvest intervals
    expect(rep.dirtyPages).toBeGreaterThan(cpus * 256);
    for (const v of machine.vm.vcpus) expect(v.instructions).toBeGreaterThan(10_000n);
  }, 60_000);

  it("negative control: broken_dirty_log=no_reprotect misses pages (the oracle sees SMP writes)", () => {
    const { machine, serial } = smpDirty(2, "shadow", { broken_dirty_log: "no_reprotect" });
    const rep = runWithDirtyLog(machine, { everyInstructions: 20_000n, check: true });
    expect(serial()).toContain("ALL PASSED");
    expect(rep.missed).toBeGreaterThan(0);
  }, 60_000);
});
