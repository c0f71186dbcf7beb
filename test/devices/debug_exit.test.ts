import { describe, expect, it } from "vitest";
import { DEBUG_EXIT_IOBASE, DebugExit, debugExitStatus } from "../../src/devices/debug_exit.js";
import { IoBus } from "../../src/devices/io_bus.js";

describe("isa-debug-exit", () => {
  it("computes QEMU's exit status ((v << 1) | 1) & 0xff", () => {
    expect(debugExitStatus(0)).toBe(1);
    expect(debugExitStatus(0x10)).toBe(33); // the guest images' "pass"
    expect(debugExitStatus(0x11)).toBe(35); // "fail"
    expect(debugExitStatus(0x7f)).toBe(0xff);
    expect(debugExitStatus(0x80)).toBe(1);
    expect(debugExitStatus(0xffff)).toBe(0xff);
    expect(debugExitStatus(0xffffffff)).toBe(0xff);
    expect(debugExitStatus(0x12345610)).toBe(33);
  });

  it("calls onExit for 8, 16 and 32-bit writes anywhere in 0xf4..0xf7", () => {
    const statuses: number[] = [];
    const dev = new DebugExit({ onExit: (s) => statuses.push(s) });
    const bus = new IoBus();
    bus.register(dev.iobase, dev.iosize, dev, "isa-debug-exit");
    expect(dev.iobase).toBe(DEBUG_EXIT_IOBASE);
    expect(dev.exitStatus).toBeNull();
    bus.write(0xf4, 1, 0x10);
    bus.write(0xf4, 2, 0x0101);
    bus.write(0xf6, 4, 0x3);
    expect(statuses).toEqual([33, 3, 7]);
    expect(dev.exitStatus).toBe(33);
    expect(dev.exitValue).toBe(0x10);
    expect(bus.read(0xf4, 1)).toBe(0);
    expect(bus.read(0xf8, 1)).toBe(0xff); // outside iosize 4
  });
});
