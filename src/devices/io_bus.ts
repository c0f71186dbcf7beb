/**
 * The x86 I/O port space (64 Ki ports): maps port ranges to devices.
 *
 * An access is dispatched whole to the device that owns its first port (a 16-bit
 * access at 0x3f8 goes to the UART as one call with size 2; the device decides
 * how to split it). Ports nobody owns behave like QEMU's unassigned I/O: reads
 * return all ones for the access size, writes are dropped; both are counted per
 * port in `unknownPortAccesses`.
 */

import { BootError } from "../errors.js";

export type IoSize = 1 | 2 | 4;

export interface IoDevice {
  ioRead(port: number, size: IoSize): number;
  ioWrite(port: number, size: IoSize, value: number): void;
}

export interface UnknownPortAccess {
  port: number;
  size: IoSize;
  kind: "read" | "write";
  /** The value written (writes only). */
  value?: number;
}

interface Mapping {
  base: number;
  length: number;
  name: string;
  device: IoDevice;
}

export const IO_PORT_COUNT = 0x10000;

export function sizeMask(size: IoSize): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}

export class IoBus {
  /** Accesses to unowned ports, by port. */
  readonly unknownPortAccesses = new Map<number, number>();
  /** Called the first time each unowned port is accessed (for a --verbose log). */
  onFirstUnknown: ((access: UnknownPortAccess) => void) | null = null;

  private readonly owner = new Int16Array(IO_PORT_COUNT).fill(-1);
  private readonly mappings: Mapping[] = [];

  /** Give ports [base, base+length) to `device`. Overlapping an existing mapping is a BootError. */
  register(base: number, length: number, device: IoDevice, name = "device"): void {
    if (!Number.isInteger(base) || !Number.isInteger(length) || base < 0 || length <= 0 || base + length > IO_PORT_COUNT) {
      throw new BootError(null, `${name}: I/O range base ${base} length ${length} is not inside the port space 0x0-0xffff`);
    }
    for (let p = base; p < base + length; p++) {
      const o = this.owner[p]!;
      if (o >= 0) {
        const m = this.mappings[o]!;
        throw new BootError(
          null,
          `${name}: I/O ports 0x${base.toString(16)}-0x${(base + length - 1).toString(16)} overlap ${m.name} at 0x${m.base.toString(16)}-0x${(m.base + m.length - 1).toString(16)}`,
        );
      }
    }
    const idx = this.mappings.length;
    this.mappings.push({ base, length, name, device });
    this.owner.fill(idx, base, base + length);
  }

  /** The device owning `port`, or null. */
  deviceAt(port: number): IoDevice | null {
    const o = this.owner[port & 0xffff]!;
    return o >= 0 ? this.mappings[o]!.device : null;
  }

  read(port: number, size: IoSize): number {
    port &= 0xffff;
    const o = this.owner[port]!;
    if (o < 0) {
      this.unknown({ port, size, kind: "read" });
      return sizeMask(size);
    }
    return (this.mappings[o]!.device.ioRead(port, size) & sizeMask(size)) >>> 0;
  }

  write(port: number, size: IoSize, value: number): void {
    port &= 0xffff;
    value = (value & sizeMask(size)) >>> 0;
    const o = this.owner[port]!;
    if (o < 0) {
      this.unknown({ port, size, kind: "write", value });
      return;
    }
    this.mappings[o]!.device.ioWrite(port, size, value);
  }

  /** Total accesses to unowned ports. */
  get unknownAccessCount(): number {
    let n = 0;
    for (const c of this.unknownPortAccesses.values()) n += c;
    return n;
  }

  private unknown(access: UnknownPortAccess): void {
    const n = this.unknownPortAccesses.get(access.port) ?? 0;
    this.unknownPortAccesses.set(access.port, n + 1);
    if (n === 0 && this.onFirstUnknown) this.onFirstUnknown(access);
  }
}
