/**
 * Issue 5: every guest image passes, prints QEMU's transcript and leaves the
 * audit clean with each pte-write rule (src/mmu/pte_write.ts) switched off
 * in turn, with the legacy flood heuristic, and with all of them off (KVM
 * before seeds 002 and 003). All rules on is the default configuration,
 * covered by images.test.ts (and here for demand-fault-linux).
 */
import { describe, it, expect } from "vitest";
import { runImage, expectedTranscript } from "./support.js";
import type { MmuKnobs } from "../../src/mmu/knobs.js";

interface Case { image: string; append?: string; qemu: boolean; }
const IMAGES: Case[] = [
  { image: "hello", qemu: true },
  { image: "cpu-selftest", qemu: true },
  { image: "cr3-switch", qemu: true },
  { image: "memset", qemu: true },
  { image: "pt-torture", qemu: true },
  { image: "pt-torture-pae", qemu: true },
  { image: "pt-torture-32", qemu: true },
  { image: "pt-rsvd", qemu: false },
  { image: "forkwait", qemu: true },
  { image: "demand-fault", qemu: true },
  { image: "demand-fault-linux", qemu: true },
  { image: "pt-memset", qemu: true },
  { image: "pte-bitops", qemu: true },
  { image: "flood", qemu: true },
  { image: "kernbench", qemu: true },
  { image: "dirty-writer", qemu: true },
];

const CONFIGS: { name: string; knobs: Partial<MmuKnobs> }[] = [
  { name: "update_pte=0", knobs: { update_pte: false } },
  { name: "pte_write_topup=0", knobs: { pte_write_topup: false } },
  { name: "unprotect_rep_string=0", knobs: { unprotect_rep_string: false } },
  { name: "byte_pte_write=0", knobs: { byte_pte_write: false } },
  { name: "flood_detect=legacy", knobs: { flood_detect: "legacy" } },
  { name: "flood_detect=off", knobs: { flood_detect: "off" } },
  { name: "all rules off", knobs: { update_pte: false, pte_write_topup: false, unprotect_rep_string: false, byte_pte_write: false, flood_detect: "off" } },
];

describe.each(CONFIGS)("pte-write rules: $name", ({ knobs }) => {
  it.each(IMAGES)("$image passes with the audit clean", ({ image, append, qemu }) => {
    const r = runImage(image, "shadow", knobs, { append });
    if (qemu) expect(r.serial).toBe(expectedTranscript(image));
    expect(r.serial).toMatch(/^ALL PASSED: \d+ checks, 0 failed$/m);
    expect({ reason: r.reason, status: r.status }).toEqual({ reason: "debug-exit", status: 33 });
    expect(r.audit).toMatchObject({ errors: 0, first: "" });
    expect(r.audit.checked).toBeGreaterThan(0);
  }, 120_000);
});

describe("demand-fault-linux under the defaults and tdp", () => {
  it.each(["shadow", "tdp"] as const)("passes under --mmu %s with QEMU's transcript", (mmu) => {
    const r = runImage("demand-fault-linux", mmu, {});
    expect(r.serial).toBe(expectedTranscript("demand-fault-linux"));
    expect(r.status).toBe(33);
    expect(r.audit).toMatchObject({ errors: 0, first: "" });
  }, 120_000);
});
