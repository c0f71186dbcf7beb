import type { GuestMemory } from "../../src/boot/guest_memory.js";
import { PC_HOLE_END, PC_HOLE_START } from "../../src/boot/guest_memory.js";

/**
 * Guest RAM over a plain Uint8Array, for tests. Unlike the VM's memory it is strict:
 * a write outside RAM or into the PC hole throws (a loader bug, not a guest error).
 */
export class ArrayMemory implements GuestMemory {
  readonly bytes: Uint8Array;
  readonly writes: { gpa: number; len: number }[] = [];
  constructor(readonly size: number, initial = 0) {
    this.bytes = new Uint8Array(size).fill(initial);
  }
  private check(gpa: number, len: number): void {
    if (!Number.isInteger(gpa) || !Number.isInteger(len) || gpa < 0 || len < 0 || gpa + len > this.size) {
      throw new Error(`ArrayMemory: access ${gpa.toString(16)}+${len.toString(16)} outside RAM`);
    }
    if (len > 0 && gpa < PC_HOLE_END && gpa + len > PC_HOLE_START) {
      throw new Error(`ArrayMemory: access ${gpa.toString(16)}+${len.toString(16)} in the PC hole`);
    }
  }
  write(gpa: number, data: Uint8Array): void {
    this.check(gpa, data.length);
    this.writes.push({ gpa, len: data.length });
    this.bytes.set(data, gpa);
  }
  fill(gpa: number, len: number, value: number): void {
    this.check(gpa, len);
    this.writes.push({ gpa, len });
    this.bytes.fill(value, gpa, gpa + len);
  }
  u32(gpa: number): number {
    return new DataView(this.bytes.buffer).getUint32(gpa, true);
  }
  u64(gpa: number): bigint {
    return new DataView(this.bytes.buffer).getBigUint64(gpa, true);
  }
  cstring(gpa: number): string {
    let end = gpa;
    while (this.bytes[end] !== 0) end++;
    return new TextDecoder().decode(this.bytes.subarray(gpa, end));
  }
  slice(gpa: number, len: number): Uint8Array {
    return this.bytes.slice(gpa, gpa + len);
  }
}
