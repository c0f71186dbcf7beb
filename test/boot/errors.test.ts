import { describe, expect, it } from "vitest";
import { BootError, ElfError, GuestError, Shadow86Error, formatError } from "../../src/errors.js";

describe("errors", () => {
  it("name the class and prefix the subject", () => {
    const e = new ElfError("guest-images/foo.elf", "not a multiboot image (no header in the first 8 KiB)");
    expect(e).toBeInstanceOf(Shadow86Error);
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("ElfError");
    expect(e.message).toBe("guest-images/foo.elf: not a multiboot image (no header in the first 8 KiB)");
    expect(e.subject).toBe("guest-images/foo.elf");
    expect(e.what).toBe("not a multiboot image (no header in the first 8 KiB)");
    expect(formatError(e)).toBe("ElfError: guest-images/foo.elf: not a multiboot image (no header in the first 8 KiB)");
  });

  it("work without a subject", () => {
    const e = new BootError(null, "guest RAM is too small");
    expect(e.name).toBe("BootError");
    expect(e.message).toBe("guest RAM is too small");
    expect(formatError(new GuestError("", "triple fault"))).toBe("GuestError: triple fault");
  });

  it("keep the cause and leave other errors' stacks alone", () => {
    const cause = new RangeError("x");
    expect(new GuestError("vcpu0", "y", { cause }).cause).toBe(cause);
    expect(formatError(cause)).toContain("RangeError: x\n");
    expect(formatError("plain")).toBe("plain");
  });
});
