/**
 * Guest-physical MMIO space: ranges with no memslot that a device claims.
 * Unclaimed addresses behave like QEMU's unassigned memory: reads return all
 * ones, writes are dropped, and both are counted.
 */
import { BootError } from "../errors.js";

export type MmioSize = 1 | 2 | 4 | 8;

export interface MmioDevice {
  mmioRead(offset: number, size: MmioSize): bigint;
  mmioWrite(offset: number, size: MmioSize, value: bigint): void;
}

interface Range { base: number; length: number; name: string; device: MmioDevice; }

export function mmioMask(size: number): bigint { return size >= 8 ? 0xffff_ffff_ffff_ffffn : (1n << BigInt(size * 8)) - 1n; }

export class MmioBus {
  private readonly ranges: Range[] = [];
  unknownAccesses = 0;
  onFirstUnknown: ((gpa: number, kind: "read" | "write") => void) | null = null;
  private readonly seenUnknown = new Set<number>();

  register(base: number, length: number, device: MmioDevice, name: string): void {
    for (const r of this.ranges) {
      if (base < r.base + r.length && r.base < base + length) throw new BootError(null, `${name}: MMIO range overlaps ${r.name}`);
    }
    this.ranges.push({ base, length, name, device });
  }

  private find(gpa: number): Range | undefined {
    return this.ranges.find((r) => gpa >= r.base && gpa < r.base + r.length);
  }

  read(gpa: number, size: MmioSize): bigint {
    const r = this.find(gpa);
    if (!r) { this.unknown(gpa, "read"); return mmioMask(size); }
    return r.device.mmioRead(gpa - r.base, size) & mmioMask(size);
  }

  write(gpa: number, size: MmioSize, value: bigint): void {
    const r = this.find(gpa);
    if (!r) { this.unknown(gpa, "write"); return; }
    r.device.mmioWrite(gpa - r.base, size, value & mmioMask(size));
  }

  private unknown(gpa: number, kind: "read" | "write"): void {
    this.unknownAccesses++;
    const page = Math.floor(gpa / 4096);
    if (!this.seenUnknown.has(page)) { this.seenUnknown.add(page); this.onFirstUnknown?.(gpa, kind); }
  }
}
