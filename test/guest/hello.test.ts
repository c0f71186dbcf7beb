import { describe, it, expect } from "vitest";
import { bootImage } from "../support/guest.js";

describe("guest image hello", () => {
  const r = bootImage("hello");
  it("reports its own verdict: every check PASS, exit status 33 via isa-debug-exit", () => {
    expect(r.reason).toBe("debug-exit");
    expect(r.status).toBe(33);
    expect(r.serial).toMatch(/^ALL PASSED: \d+ checks, 0 failed$/m);
    expect(r.serial).not.toMatch(/^FAIL/m);
  });
  it("sees the multiboot info QEMU gives it (639 KiB low, 128 KiB firmware reserve)", () => {
    expect(r.serial).toContain("mem_lower = 639 KiB, mem_upper = 260992 KiB");
  });
  it("counts every port write as an IO exit", () => {
    expect(r.stats.io_exits).toBeGreaterThan(BigInt(r.serial.length));
    expect(r.instructions).toBeGreaterThan(1_000_000n);
  });
});
