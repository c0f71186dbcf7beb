/**
 * A strict little ELF reader for kernel images: the file header and the program
 * headers, nothing else (no sections, no symbols, no relocations).
 *
 * ELF32 and ELF64, little-endian, EM_386 or EM_X86_64, ET_EXEC. Every offset and
 * size is checked against the file before it is used, so a malformed file gives
 * an `ElfError` that names the field, never a RangeError from a typed array.
 */

import { ElfError } from "../errors.js";
import { hex } from "./guest_memory.js";

export const ELF_MAGIC = 0x464c457f; // "\x7fELF" read little-endian
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_REL = 1;
export const ET_EXEC = 2;
export const ET_DYN = 3;
export const ET_CORE = 4;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PF_X = 1;
export const PF_W = 2;
export const PF_R = 4;
/** e_phnum value meaning "the real count is in section header 0" (not supported). */
export const PN_XNUM = 0xffff;

const EHDR_SIZE = { 32: 52, 64: 64 } as const;
const PHDR_SIZE = { 32: 32, 64: 56 } as const;

export interface ElfSegment {
  /** Index in the program header table. */
  index: number;
  type: number;
  flags: number;
  /** File offset of the segment's bytes (checked against the file for PT_LOAD). */
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: number;
  align: bigint;
}

export interface ElfImage {
  elfClass: 32 | 64;
  type: number;
  machine: number;
  entry: bigint;
  phoff: number;
  phentsize: number;
  phnum: number;
  /** Every program header, in table order. */
  segments: ElfSegment[];
  /** The PT_LOAD headers with p_memsz > 0, validated: file range inside the file, filesz <= memsz. */
  loadSegments: ElfSegment[];
}

export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46;
}

export function machineName(machine: number): string {
  switch (machine) {
    case EM_386:
      return "EM_386";
    case EM_X86_64:
      return "EM_X86_64";
    case 0x28:
      return "EM_ARM";
    case 0xb7:
      return "EM_AARCH64";
    case 0xf3:
      return "EM_RISCV";
    case 0x08:
      return "EM_MIPS";
    case 0x14:
      return "EM_PPC";
    case 0x15:
      return "EM_PPC64";
    default:
      return `machine ${machine}`;
  }
}

function typeName(type: number): string {
  switch (type) {
    case ET_REL:
      return "ET_REL (a relocatable object)";
    case ET_EXEC:
      return "ET_EXEC";
    case ET_DYN:
      return "ET_DYN (a shared object or PIE)";
    case ET_CORE:
      return "ET_CORE (a core dump)";
    default:
      return `e_type ${type}`;
  }
}

/** Bounds-checked little-endian reads; a read past the end is an ElfError naming the field. */
class Reader {
  private readonly view: DataView;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly path: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(off: number, len: number, what: string): void {
    if (off < 0 || off + len > this.bytes.length) {
      throw new ElfError(this.path, `truncated file: ${what} at offset ${hex(off)} needs ${len} bytes, the file has ${this.bytes.length}`);
    }
  }
  u8(off: number, what: string): number {
    this.need(off, 1, what);
    return this.view.getUint8(off);
  }
  u16(off: number, what: string): number {
    this.need(off, 2, what);
    return this.view.getUint16(off, true);
  }
  u32(off: number, what: string): number {
    this.need(off, 4, what);
    return this.view.getUint32(off, true);
  }
  u64(off: number, what: string): bigint {
    this.need(off, 8, what);
    return this.view.getBigUint64(off, true);
  }
  /** A 32-bit field for ELF32, a 64-bit field for ELF64, as a bigint. */
  addr(cls: 32 | 64, off: number, what: string): bigint {
    return cls === 32 ? BigInt(this.u32(off, what)) : this.u64(off, what);
  }
}

/** A bigint that must fit a JS number (file offsets and sizes); absurd values are an ElfError. */
function toSafeNumber(v: bigint, path: string, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError(path, `${what} ${hex(v)} is absurdly large`);
  return Number(v);
}

/** Parse and validate the ELF file header and program headers of a kernel image. */
export function parseElf(image: Uint8Array, path: string): ElfImage {
  if (image.length === 0) throw new ElfError(path, "empty file");
  if (!isElf(image)) throw new ElfError(path, "not an ELF file (no \\x7fELF magic)");
  const r = new Reader(image, path);

  const cls = r.u8(4, "EI_CLASS");
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) {
    throw new ElfError(path, `unsupported ELF class ${cls} (EI_CLASS must be 1 for ELF32 or 2 for ELF64)`);
  }
  const elfClass: 32 | 64 = cls === ELFCLASS32 ? 32 : 64;
  const data = r.u8(5, "EI_DATA");
  if (data !== ELFDATA2LSB) {
    throw new ElfError(path, `not a little-endian ELF file (EI_DATA ${data}); x86 kernels are little-endian`);
  }
  const identVersion = r.u8(6, "EI_VERSION");
  if (identVersion !== EV_CURRENT) throw new ElfError(path, `unsupported ELF version ${identVersion} in e_ident (must be 1)`);

  const ehsize = EHDR_SIZE[elfClass];
  if (image.length < ehsize) {
    throw new ElfError(path, `truncated ELF${elfClass} header: the file has ${image.length} bytes, the header needs ${ehsize}`);
  }

  const type = r.u16(16, "e_type");
  const machine = r.u16(18, "e_machine");
  if (type !== ET_EXEC) {
    throw new ElfError(path, `${typeName(type)} is not an executable; link the kernel as a static ET_EXEC (-static -no-pie)`);
  }
  if (machine !== EM_386 && machine !== EM_X86_64) {
    throw new ElfError(path, `${machineName(machine)} is not an x86 kernel (e_machine must be EM_386 or EM_X86_64)`);
  }

  let entry: bigint, phoffBig: bigint, phentsize: number, phnum: number;
  if (elfClass === 32) {
    entry = BigInt(r.u32(24, "e_entry"));
    phoffBig = BigInt(r.u32(28, "e_phoff"));
    phentsize = r.u16(42, "e_phentsize");
    phnum = r.u16(44, "e_phnum");
  } else {
    entry = r.u64(24, "e_entry");
    phoffBig = r.u64(32, "e_phoff");
    phentsize = r.u16(54, "e_phentsize");
    phnum = r.u16(56, "e_phnum");
  }

  if (phnum === 0) throw new ElfError(path, "no program headers (e_phnum is 0); nothing to load");
  if (phnum === PN_XNUM) throw new ElfError(path, "more than 65534 program headers (PN_XNUM) is not supported");
  const minPhent = PHDR_SIZE[elfClass];
  if (phentsize < minPhent) {
    throw new ElfError(path, `e_phentsize is ${phentsize}, an ELF${elfClass} program header is ${minPhent} bytes`);
  }
  const tableSize = BigInt(phentsize) * BigInt(phnum);
  if (phoffBig + tableSize > BigInt(image.length)) {
    throw new ElfError(
      path,
      `program header table (offset ${hex(phoffBig)}, ${phnum} entries of ${phentsize} bytes) extends past the end of the file (${image.length} bytes)`,
    );
  }
  const phoff = Number(phoffBig);

  const segments: ElfSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const what = (f: string) => `program header ${i} ${f}`;
    let seg: ElfSegment;
    if (elfClass === 32) {
      seg = {
        index: i,
        type: r.u32(p + 0, what("p_type")),
        offset: r.u32(p + 4, what("p_offset")),
        vaddr: BigInt(r.u32(p + 8, what("p_vaddr"))),
        paddr: BigInt(r.u32(p + 12, what("p_paddr"))),
        filesz: r.u32(p + 16, what("p_filesz")),
        memsz: r.u32(p + 20, what("p_memsz")),
        flags: r.u32(p + 24, what("p_flags")),
        align: BigInt(r.u32(p + 28, what("p_align"))),
      };
    } else {
      const type = r.u32(p + 0, what("p_type"));
      const flags = r.u32(p + 4, what("p_flags"));
      const offset = r.u64(p + 8, what("p_offset"));
      const vaddr = r.u64(p + 16, what("p_vaddr"));
      const paddr = r.u64(p + 24, what("p_paddr"));
      const filesz = r.u64(p + 32, what("p_filesz"));
      const memsz = r.u64(p + 40, what("p_memsz"));
      const align = r.u64(p + 48, what("p_align"));
      const isLoad = type === PT_LOAD;
      // Only PT_LOAD sizes matter; other headers keep a clamped value for display.
      const num = (v: bigint, f: string) =>
        isLoad ? toSafeNumber(v, path, what(f)) : Number(v > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : v);
      seg = { index: i, type, flags, offset: num(offset, "p_offset"), vaddr, paddr, filesz: num(filesz, "p_filesz"), memsz: num(memsz, "p_memsz"), align };
    }
    segments.push(seg);
  }

  const loadSegments: ElfSegment[] = [];
  for (const s of segments) {
    if (s.type !== PT_LOAD) continue;
    if (s.filesz > s.memsz) {
      throw new ElfError(path, `program header ${s.index}: p_filesz (${hex(s.filesz)}) is larger than p_memsz (${hex(s.memsz)})`);
    }
    if (s.memsz === 0) continue; // zero-sized segments exist in real files; there is nothing to load
    if (s.offset + s.filesz > image.length) {
      throw new ElfError(
        path,
        `program header ${s.index}: file range ${hex(s.offset)}-${hex(s.offset + s.filesz)} extends past the end of the file (${image.length} bytes); the file is truncated`,
      );
    }
    loadSegments.push(s);
  }
  if (loadSegments.length === 0) throw new ElfError(path, "no PT_LOAD segments with a non-zero size; nothing to load");

  return { elfClass, type, machine, entry, phoff, phentsize, phnum, segments, loadSegments };
}

/**
 * QEMU's rule (load_elf): e_entry is a virtual address; if it lies in the file part
 * of an executable PT_LOAD segment whose p_vaddr differs from p_paddr, the entry is
 * moved by the same offset, so higher-half kernels start at their physical entry.
 */
export function physicalEntry(elf: ElfImage): bigint {
  let entry = elf.entry;
  for (const s of elf.loadSegments) {
    if (s.vaddr !== s.paddr && elf.entry >= s.vaddr && elf.entry < s.vaddr + BigInt(s.filesz) && (s.flags & PF_X) !== 0) {
      entry = elf.entry - s.vaddr + s.paddr;
    }
  }
  return entry;
}

export function segmentFlagsString(flags: number): string {
  return `${flags & PF_R ? "r" : "-"}${flags & PF_W ? "w" : "-"}${flags & PF_X ? "x" : "-"}`;
}
