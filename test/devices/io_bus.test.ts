import { describe, expect, it } from "vitest";
import { IoBus, type IoDevice, type IoSize, type UnknownPortAccess } from "../../src/devices/io_bus.js";
import { BootError } from "../../src/errors.js";

class Recorder implements IoDevice {
  readonly log: string[] = [];
  constructor(private readonly readValue = 0x12345678) {}
  ioRead(port: number, size: IoSize): number {
    this.log.push(`r ${port.toString(16)} ${size}`);
    return this.readValue;
  }
  ioWrite(port: number, size: IoSize, value: number): void {
    this.log.push(`w ${port.toString(16)} ${size} ${value.toString(16)}`);
  }
}

describe("IoBus", () => {
  it("dispatches accesses with the absolute port and size", () => {
    const bus = new IoBus();
    const dev = new Recorder();
    bus.register(0x3f8, 8, dev, "uart");
    bus.write(0x3f8, 1, 0x41);
    bus.write(0x3fa, 2, 0xbeef);
    expect(bus.read(0x3fd, 4)).toBe(0x12345678);
    expect(dev.log).toEqual(["w 3f8 1 41", "w 3fa 2 beef", "r 3fd 4"]);
    expect(bus.deviceAt(0x3ff)).toBe(dev);
    expect(bus.deviceAt(0x400)).toBeNull();
  });

  it("masks values to the access size", () => {
    const bus = new IoBus();
    const dev = new Recorder(0xffffffff);
    bus.register(0x80, 1, dev);
    expect(bus.read(0x80, 1)).toBe(0xff);
    expect(bus.read(0x80, 2)).toBe(0xffff);
    expect(bus.read(0x80, 4)).toBe(0xffffffff);
    bus.write(0x80, 1, 0x1234);
    bus.write(0x80, 4, -1);
    expect(dev.log.slice(-2)).toEqual(["w 80 1 34", "w 80 4 ffffffff"]);
  });

  it("reads unknown ports as all ones, drops writes and counts them per port", () => {
    const bus = new IoBus();
    const first: UnknownPortAccess[] = [];
    bus.onFirstUnknown = (a) => first.push(a);
    expect(bus.read(0x60, 1)).toBe(0xff);
    expect(bus.read(0x60, 2)).toBe(0xffff);
    expect(bus.read(0xcfc, 4)).toBe(0xffffffff);
    bus.write(0x70, 1, 0x8f);
    bus.write(0x70, 1, 0x0f);
    expect([...bus.unknownPortAccesses.entries()].sort((a, b) => a[0] - b[0])).toEqual([
      [0x60, 2],
      [0x70, 2],
      [0xcfc, 1],
    ]);
    expect(bus.unknownAccessCount).toBe(5);
    expect(first).toEqual([
      { port: 0x60, size: 1, kind: "read" },
      { port: 0xcfc, size: 4, kind: "read" },
      { port: 0x70, size: 1, kind: "write", value: 0x8f },
    ]);
  });

  it("wraps ports to 16 bits", () => {
    const bus = new IoBus();
    const dev = new Recorder();
    bus.register(0, 1, dev);
    bus.read(0x10000, 1);
    expect(dev.log).toEqual(["r 0 1"]);
  });

  it("refuses overlapping and out-of-range registrations", () => {
    const bus = new IoBus();
    bus.register(0x3f8, 8, new Recorder(), "uart");
    expect(() => bus.register(0x3ff, 2, new Recorder(), "other")).toThrow(BootError);
    expect(() => bus.register(0x3ff, 2, new Recorder(), "other")).toThrow(/other: I\/O ports 0x3ff-0x400 overlap uart at 0x3f8-0x3ff/);
    expect(() => bus.register(0xffff, 2, new Recorder())).toThrow(BootError);
    expect(() => bus.register(0x10, 0, new Recorder())).toThrow(BootError);
    bus.register(0x400, 1, new Recorder(), "adjacent");
  });
});
