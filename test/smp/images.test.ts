/**
 * The SMP guest images with -smp 1, 2, 4, 8 in deterministic mode under both
 * MMU modes (identical serial output to QEMU TCG's, test/guest/expected/*-smpN.txt;
 * the shadow MMU's audit clean from every vCPU), with -smp 2 in parallel mode
 * (worker threads), and the negative control: without the shootdown handler's
 * invlpg, tdp mode (no write-protected page tables) must see stale mappings.
 */
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Machine, type RunResult } from "../../src/machine.js";
import { loadCoreModule, packageRoot } from "../../src/platform/node.js";
import type { MmuMode } from "../../src/mmu/knobs.js";
import type { SmpMode } from "../../src/smp/smp.js";

interface SmpRun extends RunResult { serial: string; machine: Machine; }

function boot(image: string, cpus: number, mmu: MmuMode, mode: SmpMode, append?: string): { machine: Machine; serial: () => string } {
  const bytes: number[] = [];
  const machine = new Machine({
    module: loadCoreModule(), ramSize: 256 << 20, kernel: new Uint8Array(readFileSync(join(packageRoot(), "guest-images", `${image}.elf`))),
    kernelPath: `guest-images/${image}.elf`, append, onSerial: (b) => bytes.push(b), maxInstructions: 2_000_000_000n,
    mmu, smp: cpus, smpMode: mode,
  });
  return { machine, serial: () => Buffer.from(bytes).toString("latin1") };
}
function runDeterministic(image: string, cpus: number, mmu: MmuMode, append?: string): SmpRun {
  const b = boot(image, cpus, mmu, "deterministic", append);
  return { ...b.machine.run(), serial: b.serial(), machine: b.machine };
}
async function runParallel(image: string, cpus: number, mmu: MmuMode): Promise<SmpRun> {
  const b = boot(image, cpus, mmu, "parallel");
  const r = await b.machine.runParallel();
  return { ...r, serial: b.serial(), machine: b.machine };
}
const expected = (image: string, cpus: number) => readFileSync(join(packageRoot(), "test", "guest", "expected", `${image}-smp${cpus}.txt`), "latin1");

function expectPass(r: SmpRun): void {
  expect(r.serial).not.toMatch(/^FAIL/m);
  expect(r.serial).toMatch(/^ALL PASSED: \d+ checks, 0 failed$/m);
  expect({ reason: r.reason, status: r.status, message: r.message }).toEqual({ reason: "debug-exit", status: 33, message: undefined });
}

const CASES = [1, 2, 4, 8].flatMap((cpus) => (["shadow", "tdp"] as const).flatMap((mmu) => ["smp-torture", "smp-dirty"].map((image) => ({ image, cpus, mmu }))));

describe("SMP images, deterministic mode", () => {
  it.each(CASES)("$image -smp $cpus --mmu $mmu: PASS, QEMU's transcript, audit clean on every vCPU", ({ image, cpus, mmu }) => {
    const r = runDeterministic(image, cpus, mmu);
    expectPass(r);
    expect(r.serial).toBe(expected(image, cpus));
    const { vm } = r.machine;
    if (mmu === "shadow") {
      // the audit's pool accounting counts the bound vCPU's object caches only:
      // empty every vCPU's caches first (kvm_mmu_free_memory_caches)
      for (const v of vm.vcpus) { vm.core.fn.vcpu_bind(v.base); vm.mmu.fn.mmu_test_free_caches(); }
      for (const v of vm.vcpus) {
        vm.core.fn.vcpu_bind(v.base);
        const a = vm.mmu.audit();
        expect(a.first, `vCPU ${v.id}`).toBe("");
      }
    }
    // every AP was started by INIT-SIPI-SIPI exactly once (the second SIPI is ignored)
    for (const run of r.machine.smp!.runners.slice(1)) expect([run.inits, run.sipis]).toEqual([1, 1]);
    if (image === "smp-torture" || cpus > 1) expect(r.stats.interrupts).toBeGreaterThan(0n); // the timer, wake-up and shootdown IPIs
  }, 60_000);

  it("is reproducible: the same run twice gives the same instruction counts and counters", () => {
    const a = runDeterministic("smp-torture", 4, "shadow");
    const b = runDeterministic("smp-torture", 4, "shadow");
    expect(b.instructions).toBe(a.instructions);
    expect(b.stats).toEqual(a.stats);
    expect(b.machine.vm.vcpus.map((v) => v.instructions)).toEqual(a.machine.vm.vcpus.map((v) => v.instructions));
  }, 60_000);

  it("negative control: without invlpg in the shootdown handler, tdp mode sees stale mappings and the image FAILs", () => {
    const r = runDeterministic("smp-torture", 2, "tdp", "noinvlpg");
    expect(r.serial).toMatch(/^FAIL: TLB shootdown: no CPU read a stale mapping/m);
    expect(r.status).toBe(35);
  }, 60_000);

  it("shadow mode hides the missing invlpg: the MMU's remote TLB flush (write-protected page table -> kvm_flush_remote_tlbs) reaches the other vCPU", () => {
    const r = runDeterministic("smp-torture", 2, "shadow", "noinvlpg");
    expectPass(r);
    expect(r.stats.remote_tlb_flush).toBeGreaterThan(0n);
  }, 60_000);
});

describe("SMP images, parallel mode (one worker thread per vCPU)", () => {
  it.each([
    { image: "smp-torture", mmu: "shadow" as const },
    { image: "smp-torture", mmu: "tdp" as const },
    { image: "smp-dirty", mmu: "shadow" as const },
  ])("$image -smp 2 --mmu $mmu: PASS with QEMU's transcript", async ({ image, mmu }) => {
    const r = await runParallel(image, 2, mmu);
    if (/^FAIL/m.test(r.serial)) console.log(r.serial, r.message);
    expectPass(r);
    expect(r.serial).toBe(expected(image, 2));
    expect(r.machine.vm.vcpus[1]!.instructions).toBeGreaterThan(0n);
  }, 60_000);
});
