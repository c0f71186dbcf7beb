/**
 * Every bundled guest image boots and reports PASS, and prints exactly what
 * QEMU TCG printed for it (the transcripts in expected/ were captured with
 * ../shared/qemu-oracle; regenerate them with the command in expected/README).
 * pt-rsvd is judged by the SDM instead (QEMU 7.2 drops the P bit of
 * reserved-bit #PF error codes), so only its verdict is checked.
 */
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bootImage } from "../support/guest.js";
import { packageRoot } from "../../src/platform/node.js";

interface Case { image: string; append?: string; initrd?: string; expected?: string; qemu: boolean; }
export const IMAGES: Case[] = [
  { image: "hello", qemu: true },
  { image: "bench-cpu", append: "rounds=1", qemu: true },
  { image: "cr3-switch", qemu: true },
  { image: "memset", qemu: true },
  { image: "pt-torture", qemu: true },
  { image: "cpu-selftest", qemu: true },
  { image: "pt-rsvd", qemu: false },
  { image: "pt-torture-32", qemu: true },
  { image: "pt-torture-pae", qemu: true },
  { image: "forkwait", qemu: true },
  { image: "demand-fault", qemu: true },
  { image: "pt-memset", qemu: true },
  { image: "pte-bitops", qemu: true },
  { image: "flood", qemu: true },
  { image: "kernbench", qemu: true },
  { image: "dirty-writer", qemu: true },
  { image: "pc-contract", qemu: true },
  // QEMU: -append "alpha beta" -initrd "guest-images/pc-contract-mod.bin modarg"
  { image: "pc-contract", append: "alpha beta", initrd: "guest-images/pc-contract-mod.bin modarg", expected: "pc-contract-modules", qemu: true },
];

describe.each(IMAGES)("guest image $image $append", ({ image, append, initrd, expected, qemu }) => {
  it(qemu ? "passes and prints exactly what QEMU TCG prints" : "passes (judged by the SDM)", () => {
    const r = bootImage(image, { append, initrd });
    if (qemu) expect(r.serial).toBe(readFileSync(join(packageRoot(), "test/guest/expected", `${expected ?? image}.txt`), "latin1"));
    expect(r.serial).not.toMatch(/^FAIL/m);
    expect(r.serial).toMatch(/^ALL PASSED: \d+ checks, 0 failed$/m);
    expect({ reason: r.reason, status: r.status, message: r.message }).toEqual({ reason: "debug-exit", status: 33, message: undefined });
  });
});
