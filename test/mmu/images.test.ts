/**
 * Every guest image in each MMU configuration: tdp (TLB misses walk the
 * guest's tables), shadow (all optimisations on) and shadow with them off.
 * Each must PASS, print exactly what QEMU TCG printed (test/guest/expected/),
 * and leave the shadow MMU in a state kvm_mmu_audit finds clean. pt-rsvd is
 * judged by the SDM (QEMU 7.2 drops the P bit of reserved-bit #PF codes).
 */
import { describe, it, expect } from "vitest";
import { runImage, expectedTranscript } from "./support.js";
import type { MmuKnobs, MmuMode } from "../../src/mmu/knobs.js";

interface Case { image: string; append?: string; initrd?: string; expected?: string; qemu: boolean; }
const IMAGES: Case[] = [
  { image: "hello", qemu: true },
  { image: "bench-cpu", append: "rounds=1", qemu: true },
  { image: "cpu-selftest", qemu: true },
  { image: "cr3-switch", qemu: true },
  { image: "memset", qemu: true },
  { image: "pt-torture", qemu: true },
  { image: "pt-torture-pae", qemu: true },
  { image: "pt-torture-32", qemu: true },
  { image: "pt-rsvd", qemu: false },
  { image: "forkwait", qemu: true },
  { image: "demand-fault", qemu: true },
  { image: "pt-memset", qemu: true },
  { image: "pte-bitops", qemu: true },
  { image: "flood", qemu: true },
  { image: "kernbench", qemu: true },
  { image: "dirty-writer", qemu: true },
];

interface Config { name: string; mmu: MmuMode; knobs: Partial<MmuKnobs>; }
const CONFIGS: Config[] = [
  { name: "tdp", mmu: "tdp", knobs: {} },
  { name: "shadow", mmu: "shadow", knobs: {} },
  { name: "shadow, optimisations off", mmu: "shadow", knobs: { prev_roots: false, large_sptes: false } },
];

describe.each(IMAGES)("guest image $image", ({ image, append, initrd, expected, qemu }) => {
  it.each(CONFIGS)("passes under --mmu $name with the audit clean", ({ mmu, knobs }) => {
    const r = runImage(image, mmu, knobs, { append, initrd });
    if (qemu) expect(r.serial).toBe(expectedTranscript(expected ?? image));
    expect(r.serial).not.toMatch(/^FAIL/m);
    expect(r.serial).toMatch(/^ALL PASSED: \d+ checks, 0 failed$/m);
    expect({ reason: r.reason, status: r.status, message: r.message }).toEqual({ reason: "debug-exit", status: 33, message: undefined });
    expect(r.audit.first).toBe("");
    expect(r.audit.errors).toBe(0);
    if (mmu === "tdp") {
      // no shadow paging at all: no shadow faults, no shadow pages
      expect(r.stats.pf_fixed).toBe(0n);
      expect(r.stats.mmu_cache_miss).toBe(0n);
      expect(r.pages).toBe(0);
    } else {
      expect(r.stats.pf_fixed).toBeGreaterThan(0n);
      expect(r.audit.checked).toBeGreaterThan(0);
      if (!knobs.prev_roots && knobs.prev_roots !== undefined) expect(r.stats.prev_roots_hit).toBe(0n);
    }
  }, 120_000);
});
