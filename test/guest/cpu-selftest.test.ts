/**
 * cpu-selftest (guest-images/src/cpu-selftest/): exceptions and their error
 * codes, #DF on IST1, the TSS, ring 3 entered with iretq, syscall/sysretq,
 * int $0x80 through a DPL-3 gate, privileged instructions and I/O in ring 3,
 * #PF error codes. The guest judges itself; on top of that its whole serial
 * transcript must equal QEMU's: expected/cpu-selftest.txt was captured from
 * QEMU TCG with `../shared/qemu-oracle guest-images/cpu-selftest.elf` (exit
 * status 33, every check PASS).
 */
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bootImage } from "../support/guest.js";
import { packageRoot } from "../../src/platform/node.js";

describe("guest image cpu-selftest", () => {
  const r = bootImage("cpu-selftest");
  const expected = readFileSync(join(packageRoot(), "test/guest/expected/cpu-selftest.txt"), "latin1");

  it("exits through isa-debug-exit with status 33 (QEMU's (0x10 << 1) | 1)", () => {
    expect({ reason: r.reason, status: r.status, message: r.message }).toEqual({ reason: "debug-exit", status: 33, message: undefined });
  });
  it("reports no FAIL line and every check passed", () => {
    expect(r.serial).not.toMatch(/^FAIL/m);
    expect(r.serial).toMatch(/^ALL PASSED: \d+ checks, 0 failed$/m);
  });
  it("prints exactly what QEMU TCG prints", () => {
    expect(expected).toMatch(/^ALL PASSED: 68 checks, 0 failed$/m); // the transcript itself is a passing run
    expect(r.serial).toBe(expected);
  });
  it("took the paths it claims: exceptions delivered, no triple fault", () => {
    expect(r.stats.exceptions).toBeGreaterThanOrEqual(30n);
    expect(r.stats.triple_faults ?? 0n).toBe(0n);
  });
});
