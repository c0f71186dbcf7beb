/**
 * Tiny multiboot images made of raw 32-bit code, for testing how the host
 * reports guest behaviour (triple faults, unsupported instructions).
 */
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildElf } from "../boot/elf_builder.js";

const LOAD = 0x100000;

/** An ELF32 multiboot kernel at 1 MiB whose entry runs `code` (32-bit protected mode, flat). */
export function rawImage(code: number[]): Uint8Array {
  return buildElf({ cls: 32, entry: LOAD, segments: [{ paddr: LOAD, data: new Uint8Array(code), flags: 7 }] }).bytes;
}

export function writeTemp(name: string, bytes: Uint8Array): string {
  const dir = mkdtempSync(join(tmpdir(), "shadow86-"));
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

/** lidt with a zero limit, then ud2: #UD cannot be delivered, nor #DF -> triple fault. */
export const TRIPLE_FAULT_CODE = [
  0x0f, 0x01, 0x1d, ...le32(LOAD + 16), // lidt [LOAD+16]
  0x0f, 0x0b, // ud2
  0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, // hlt padding up to LOAD+16
  0, 0, 0, 0, 0, 0, // the IDTR image: limit 0, base 0
];
/** fld1: an x87 instruction the interpreter does not implement (no FPU is advertised). */
export const UNSUPPORTED_CODE = [0x90, 0xd9, 0xe8, 0xf4];

function le32(v: number): number[] { return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]; }
