/**
 * What the boot loaders need from guest RAM, and the PC's physical memory layout.
 *
 * The VM implements `GuestMemory` over the WASM memory; tests use a plain
 * Uint8Array (test/boot/array_memory.ts).
 */

export interface GuestMemory {
  /** Bytes of RAM from gpa 0 (the PC hole 0xA0000-0xFFFFF is inside this range but is not RAM). */
  readonly size: number;
  /** Copy `data` to guest-physical address `gpa`. The caller guarantees the range is RAM. */
  write(gpa: number, data: Uint8Array): void;
  /** Set `len` bytes from `gpa` to `value`. The caller guarantees the range is RAM. */
  fill(gpa: number, len: number, value: number): void;
}

/** Top of conventional memory as the BIOS reports it (639 KiB); the EBDA follows. */
export const LOW_MEM_END = 0x9fc00;
/** Start of the legacy VGA/option-ROM/BIOS hole: not RAM on QEMU's pc machine. */
export const PC_HOLE_START = 0xa0000;
/** End of the hole: extended memory starts at 1 MiB. */
export const PC_HOLE_END = 0x100000;
/** The BIOS area the e820 map reports as reserved. */
export const BIOS_ROM_START = 0xf0000;

/** A half-open guest-physical range [start, end). */
export interface GpaRange {
  start: number;
  end: number;
}

export function rangesOverlap(a: GpaRange, b: GpaRange): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Why [start, end) is not loadable RAM on a PC with `ramSize` bytes, or null if it is.
 * Empty ranges are always fine.
 */
export function whyNotRam(start: number, end: number, ramSize: number): string | null {
  if (end <= start) return null;
  if (end > ramSize) {
    return `ends at ${hex(end)}, beyond the end of guest RAM (${hex(ramSize)}, ${formatSize(ramSize)})`;
  }
  if (rangesOverlap({ start, end }, { start: PC_HOLE_START, end: PC_HOLE_END })) {
    return `overlaps the PC hole ${hex(PC_HOLE_START)}-${hex(PC_HOLE_END - 1)} (VGA memory and BIOS ROM, not RAM)`;
  }
  return null;
}

export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

export function formatSize(bytes: number): string {
  if (bytes >= 1 << 20 && bytes % (1 << 20) === 0) return `${bytes / (1 << 20)} MiB`;
  if (bytes >= 1 << 10 && bytes % (1 << 10) === 0) return `${bytes / (1 << 10)} KiB`;
  return `${bytes} bytes`;
}
