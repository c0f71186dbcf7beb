/**
 * Multiboot v1 loader, the equivalent of `qemu-system-x86_64 -kernel image.elf`
 * (QEMU's hw/i386/multiboot.c), without the option ROM in between: the kernel and
 * the multiboot information structure are written straight into guest RAM and the
 * VM starts the vCPU in the state the multiboot spec requires (see `MULTIBOOT_CPU_STATE`).
 *
 * Guest-physical layout this loader produces:
 *
 *   0x00009000  multiboot info (struct multiboot_info, 116 bytes, 128 reserved)   <- EBX
 *   0x00009080  memory map (4 entries of 24 bytes, `size` field first)
 *   0x000090e0  module list (16 bytes per module), when there are modules
 *   ...         strings: boot loader name "shadow86", kernel command line, module strings
 *               (everything must end below 0x9fc00; checked)
 *   kernel      where its PT_LOAD p_paddr (or the a.out-kludge load_addr) says
 *   modules     page-aligned, after the kernel's last byte (loadEnd), skipping the PC hole
 *
 * Differences from QEMU, on purpose:
 * - QEMU always sets MODS (count 0) and BOOT_DEVICE (0x8000ffff); we set MODS only
 *   when modules are given and never BOOT_DEVICE (there are no disks).
 * - QEMU ignores header flags bits 3-15; the multiboot spec says a loader that does
 *   not understand a required feature must refuse, and we do.
 * - QEMU refuses EM_X86_64 ELF images; we load ELF64 too (the entry must be below 4 GiB).
 * - QEMU's boot loader name is "qemu"; ours is "shadow86".
 * Same as QEMU: the header search (4-byte aligned, first 8 KiB, first magic with a
 * valid checksum wins), the a.out-kludge rules, the ELF entry translation, and the
 * command line "<kernel path> <append>" (with the space even when append is empty).
 */

import { BootError, ElfError } from "../errors.js";
import { ELFCLASS64, isElf, parseElf, physicalEntry, segmentFlagsString, type ElfImage } from "./elf.js";
import {
  BIOS_ROM_START,
  LOW_MEM_END,
  PC_HOLE_END,
  PC_HOLE_START,
  formatSize,
  hex,
  rangesOverlap,
  whyNotRam,
  type GpaRange,
  type GuestMemory,
} from "./guest_memory.js";

export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** The value a multiboot loader leaves in EAX. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
export const MULTIBOOT2_HEADER_MAGIC = 0xe85250d6;
/** The header must lie in the first 8 KiB of the image. */
export const MULTIBOOT_SEARCH = 8192;

/** Header flags (what the kernel asks of the loader). */
export const MULTIBOOT_PAGE_ALIGN = 1 << 0;
export const MULTIBOOT_MEMORY_INFO = 1 << 1;
export const MULTIBOOT_VIDEO_MODE = 1 << 2;
export const MULTIBOOT_AOUT_KLUDGE = 1 << 16;

/** Info flags (what the loader provides). */
export const MULTIBOOT_INFO_MEMORY = 1 << 0;
export const MULTIBOOT_INFO_BOOTDEV = 1 << 1;
export const MULTIBOOT_INFO_CMDLINE = 1 << 2;
export const MULTIBOOT_INFO_MODS = 1 << 3;
export const MULTIBOOT_INFO_MEM_MAP = 1 << 6;
export const MULTIBOOT_INFO_BOOT_LOADER_NAME = 1 << 9;

export const MULTIBOOT_MEMORY_AVAILABLE = 1;
export const MULTIBOOT_MEMORY_RESERVED = 2;

/** Where the info area starts (the same address QEMU uses for its e820 copy). */
export const MB_INFO_ADDR = 0x9000;
/** The info area must end at or below this address (top of conventional memory). */
export const MB_INFO_LIMIT = LOW_MEM_END;
/** Offsets in struct multiboot_info. */
export const MBI = {
  flags: 0,
  mem_lower: 4,
  mem_upper: 8,
  boot_device: 12,
  cmdline: 16,
  mods_count: 20,
  mods_addr: 24,
  syms: 28,
  mmap_length: 44,
  mmap_addr: 48,
  drives_length: 52,
  drives_addr: 56,
  config_table: 60,
  boot_loader_name: 64,
  apm_table: 68,
  /** Size of the struct with the framebuffer fields. */
  size: 116,
} as const;
const MBI_RESERVED = 128;
const MMAP_ENTRY_SIZE = 24; // u32 size (=20, not counting itself) + u64 base + u64 length + u32 type
const MOD_ENTRY_SIZE = 16; // mod_start, mod_end, string, reserved
export const BOOT_LOADER_NAME = "shadow86";
const PAGE_SIZE = 4096;
const FOUR_GIB = 0x1_0000_0000;

export interface MultibootAddressFields {
  headerAddr: number;
  loadAddr: number;
  loadEndAddr: number;
  bssEndAddr: number;
  entryAddr: number;
}

export interface MultibootHeader {
  /** File offset of the magic. */
  offset: number;
  flags: number;
  checksum: number;
  /** Present when flags bit 16 (the a.out kludge) is set. */
  addr: MultibootAddressFields | null;
}

/** One range the loader copies into guest RAM: filesz bytes from the file, then memsz - filesz zeros. */
export interface LoadSegment {
  /** Program header index, or null for the a.out-kludge range. */
  index: number | null;
  paddr: number;
  /** The ELF p_vaddr (null for the a.out kludge). */
  vaddr: bigint | null;
  fileOffset: number;
  filesz: number;
  memsz: number;
  /** ELF p_flags (null for the a.out kludge). */
  flags: number | null;
}

export type KernelFormat = "elf32" | "elf64" | "aout-kludge";

/** A multiboot kernel, parsed and checked against everything that does not depend on the VM. */
export interface MultibootKernel {
  path: string;
  format: KernelFormat;
  header: MultibootHeader;
  /** The 32-bit physical entry point the vCPU starts at. */
  entry: number;
  /** e_entry as written in the ELF header (before the vaddr->paddr translation), or null. */
  elfEntry: bigint | null;
  segments: LoadSegment[];
  loadStart: number;
  /** One past the last byte the kernel occupies (including bss). */
  loadEnd: number;
  /** Things worth a line in --verbose output that do not stop the boot. */
  warnings: string[];
}

export interface MultibootModule {
  data: Uint8Array;
  /** The module's string (QEMU passes "<file> <args>"). */
  cmdline: string;
}

export interface MultibootOptions {
  /** The -append string; the kernel sees "<path> <cmdline>". */
  cmdline?: string;
  modules?: MultibootModule[];
}

export interface LoadedModule {
  start: number;
  /** One past the last byte (mod_end as QEMU and GRUB write it). */
  end: number;
  cmdline: string;
}

export interface MultibootBoot {
  /** EIP. */
  entry: number;
  /** EBX: the physical address of struct multiboot_info. */
  mbiAddr: number;
  /** EAX. */
  eax: typeof MULTIBOOT_BOOTLOADER_MAGIC;
  loadStart: number;
  loadEnd: number;
  /** One past the last byte of the info area (info struct, mmap, module list, strings). */
  infoEnd: number;
  cmdline: string;
  modules: LoadedModule[];
  format: KernelFormat;
  warnings: string[];
}

/**
 * The vCPU state the multiboot spec (section 3.2) requires at the entry point; the VM
 * sets it. EAX/EBX/EIP come from `MultibootBoot`.
 */
export const MULTIBOOT_CPU_STATE = {
  eax: MULTIBOOT_BOOTLOADER_MAGIC,
  /** CS: 32-bit read/execute code segment, base 0, limit 0xffffffff (G=1, D=1). */
  cs: { base: 0, limit: 0xffffffff, type: 0xb, s: 1, dpl: 0, present: 1, db: 1, g: 1, l: 0 },
  /** DS, ES, FS, GS, SS: read/write data segments, base 0, limit 0xffffffff (G=1, B=1). */
  data: { base: 0, limit: 0xffffffff, type: 0x3, s: 1, dpl: 0, present: 1, db: 1, g: 1, l: 0 },
  /** CR0.PE = 1, CR0.PG = 0 (ET set as on real hardware after reset: 0x11). */
  cr0: 0x11,
  /** EFLAGS: IF = 0, VM = 0, reserved bit 1 set. */
  eflags: 0x2,
  /** The A20 gate is enabled. ESP, GDTR and IDTR are undefined: the kernel sets them up. */
  a20: true,
} as const;

/** The kernel command line QEMU builds: the file name, a space, the -append string. */
export function kernelCommandLine(path: string, append: string | undefined): string {
  return `${path} ${append ?? ""}`;
}

function u32le(b: Uint8Array, off: number): number {
  return (b[off]! | (b[off + 1]! << 8) | (b[off + 2]! << 16) | (b[off + 3]! << 24)) >>> 0;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function rangeStr(start: number, end: number): string {
  return `${hex(start)}-${hex(end)}`;
}

/** Find the multiboot v1 header (the first magic with a valid checksum), or explain why there is none. */
export function findMultibootHeader(image: Uint8Array, path: string): MultibootHeader {
  if (image.length === 0) throw new ElfError(path, "empty file");
  if (image.length < 12) throw new ElfError(path, `file too short (${image.length} bytes) to hold a multiboot header`);
  const limit = Math.min(image.length, MULTIBOOT_SEARCH);
  let badChecksumAt = -1;
  for (let i = 0; i + 12 <= limit; i += 4) {
    if (u32le(image, i) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32le(image, i + 4);
    const checksum = u32le(image, i + 8);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0) !== 0) {
      if (badChecksumAt < 0) badChecksumAt = i;
      continue;
    }
    let addr: MultibootAddressFields | null = null;
    if (flags & MULTIBOOT_AOUT_KLUDGE) {
      if (i + 32 > image.length) {
        throw new ElfError(path, `multiboot header at offset ${hex(i)} is truncated: the address fields (flags bit 16) need 32 bytes, the file ends after ${image.length - i}`);
      }
      addr = {
        headerAddr: u32le(image, i + 12),
        loadAddr: u32le(image, i + 16),
        loadEndAddr: u32le(image, i + 20),
        bssEndAddr: u32le(image, i + 24),
        entryAddr: u32le(image, i + 28),
      };
    }
    return { offset: i, flags, checksum, addr };
  }
  if (badChecksumAt >= 0) {
    const flags = u32le(image, badChecksumAt + 4);
    const checksum = u32le(image, badChecksumAt + 8);
    const sum = (MULTIBOOT_HEADER_MAGIC + flags + checksum) >>> 0;
    throw new ElfError(
      path,
      `multiboot header at offset ${hex(badChecksumAt)} has a bad checksum: magic + flags (${hex(flags)}) + checksum (${hex(checksum)}) = ${hex(sum)}, must be 0 mod 2^32 (checksum should be ${hex((-(MULTIBOOT_HEADER_MAGIC + flags)) >>> 0)})`,
    );
  }
  for (let i = 0; i + 4 <= Math.min(image.length, 32768); i += 8) {
    if (u32le(image, i) === MULTIBOOT2_HEADER_MAGIC) {
      throw new ElfError(path, "not a multiboot image: this is a multiboot2 kernel; shadow86 (like QEMU -kernel) boots multiboot v1 kernels (header magic 0x1badb002)");
    }
  }
  if (image.length >= 0x206 && u32le(image, 0x202) === 0x53726448) {
    throw new ElfError(path, "not a multiboot image: this is a Linux bzImage; shadow86 boots multiboot v1 kernels only");
  }
  throw new ElfError(path, "not a multiboot image (no header in the first 8 KiB)");
}

function checkHeaderFlags(h: MultibootHeader, path: string, warnings: string[]): void {
  const required = h.flags & 0xffff;
  const unsupported = required & ~(MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_VIDEO_MODE);
  if (unsupported) {
    const bits: number[] = [];
    for (let b = 0; b < 16; b++) if (unsupported & (1 << b)) bits.push(b);
    throw new ElfError(
      path,
      `the multiboot header requires features shadow86 does not know (flags ${hex(h.flags)}, unknown required bit${bits.length > 1 ? "s" : ""} ${bits.join(", ")}); the spec says a loader must refuse such a kernel (QEMU ignores them): clear the bits in the header`,
    );
  }
  if (required & MULTIBOOT_VIDEO_MODE) {
    warnings.push("the kernel asks for a video mode (multiboot flags bit 2); shadow86 has no display and ignores it, as QEMU does");
  }
}

function planAout(image: Uint8Array, path: string, h: MultibootHeader): { segments: LoadSegment[]; entry: number } {
  const a = h.addr!;
  const f = (n: number) => hex(n);
  if (a.headerAddr < a.loadAddr) {
    throw new ElfError(path, `invalid multiboot address fields: header_addr ${f(a.headerAddr)} is below load_addr ${f(a.loadAddr)}`);
  }
  if (a.headerAddr - a.loadAddr > h.offset) {
    throw new ElfError(
      path,
      `invalid multiboot address fields: header_addr - load_addr is ${f(a.headerAddr - a.loadAddr)} but the header is at file offset ${f(h.offset)}, so loading would start before the beginning of the file`,
    );
  }
  const textOffset = h.offset - (a.headerAddr - a.loadAddr);
  let loadSize: number;
  if (a.loadEndAddr !== 0) {
    if (a.loadEndAddr < a.loadAddr) {
      throw new ElfError(path, `invalid multiboot address fields: load_end_addr ${f(a.loadEndAddr)} is below load_addr ${f(a.loadAddr)}`);
    }
    loadSize = a.loadEndAddr - a.loadAddr;
    if (textOffset + loadSize > image.length) {
      throw new ElfError(
        path,
        `load_end_addr ${f(a.loadEndAddr)} asks for ${loadSize} bytes from file offset ${f(textOffset)}, past the end of the file (${image.length} bytes); the file is truncated or load_end_addr is wrong`,
      );
    }
  } else {
    loadSize = image.length - textOffset;
  }
  let memSize = loadSize;
  if (a.bssEndAddr !== 0) {
    if (a.bssEndAddr < a.loadAddr + loadSize) {
      throw new ElfError(path, `invalid multiboot address fields: bss_end_addr ${f(a.bssEndAddr)} is below the end of the loaded image ${f(a.loadAddr + loadSize)}`);
    }
    memSize = a.bssEndAddr - a.loadAddr;
  }
  if (a.loadAddr + memSize > FOUR_GIB) {
    throw new ElfError(path, `the image (load_addr ${f(a.loadAddr)}, ${memSize} bytes) does not fit below 4 GiB`);
  }
  return {
    segments: [{ index: null, paddr: a.loadAddr, vaddr: null, fileOffset: textOffset, filesz: loadSize, memsz: memSize, flags: null }],
    entry: a.entryAddr,
  };
}

function planElf(elf: ElfImage, path: string): { segments: LoadSegment[]; entry: number } {
  const segments: LoadSegment[] = [];
  for (const s of elf.loadSegments) {
    const end = s.paddr + BigInt(s.memsz);
    if (end > BigInt(FOUR_GIB)) {
      throw new ElfError(
        path,
        `program header ${s.index}: physical range ${hex(s.paddr)}-${hex(end)} is not below 4 GiB; multiboot loads kernels at 32-bit physical addresses (set p_paddr with AT() in the linker script)`,
      );
    }
    segments.push({ index: s.index, paddr: Number(s.paddr), vaddr: s.vaddr, fileOffset: s.offset, filesz: s.filesz, memsz: s.memsz, flags: s.flags });
  }
  const entry = physicalEntry(elf);
  if (entry >= BigInt(FOUR_GIB)) {
    throw new ElfError(
      path,
      `entry point ${hex(entry)} is above 4 GiB; a multiboot kernel starts in 32-bit protected mode, so e_entry must be a 32-bit physical address (or lie in an executable segment whose p_paddr is below 4 GiB)`,
    );
  }
  return { segments, entry: Number(entry) };
}

/** Parse a multiboot kernel image without loading it: for the loader and for --verbose. */
export function parseMultibootImage(image: Uint8Array, path: string): MultibootKernel {
  const header = findMultibootHeader(image, path);
  const warnings: string[] = [];
  checkHeaderFlags(header, path, warnings);

  let format: KernelFormat;
  let plan: { segments: LoadSegment[]; entry: number };
  let elfEntry: bigint | null = null;
  if (header.addr) {
    format = "aout-kludge";
    plan = planAout(image, path, header);
  } else if (!isElf(image)) {
    throw new ElfError(path, "not an ELF file and the multiboot header has no address fields (flags bit 16 clear), so there is no way to know where to load it");
  } else {
    const elf = parseElf(image, path);
    format = image[4] === ELFCLASS64 ? "elf64" : "elf32";
    elfEntry = elf.entry;
    plan = planElf(elf, path);
  }

  const sorted = [...plan.segments].sort((x, y) => x.paddr - y.paddr);
  for (let i = 1; i < sorted.length; i++) {
    const p = sorted[i - 1]!;
    const q = sorted[i]!;
    if (p.paddr + p.memsz > q.paddr) {
      throw new ElfError(
        path,
        `program headers ${p.index} (${rangeStr(p.paddr, p.paddr + p.memsz)}) and ${q.index} (${rangeStr(q.paddr, q.paddr + q.memsz)}) overlap in physical memory`,
      );
    }
  }
  const loadStart = sorted[0]!.paddr;
  const loadEnd = Math.max(...sorted.map((s) => s.paddr + s.memsz));
  if (!plan.segments.some((s) => plan.entry >= s.paddr && plan.entry < s.paddr + s.memsz)) {
    warnings.push(`entry point ${hex(plan.entry)} is not inside any loaded segment`);
  }
  return { path, format, header, entry: plan.entry, elfEntry, segments: plan.segments, loadStart, loadEnd, warnings };
}

/** A few lines describing a kernel image (format, header, entry, segments) for --verbose. */
export function describeMultibootImage(k: MultibootKernel): string {
  const lines: string[] = [];
  lines.push(`${k.path}: multiboot v1 ${k.format} kernel, header at file offset ${hex(k.header.offset)}, flags ${hex(k.header.flags)}`);
  const translated = k.elfEntry !== null && k.elfEntry !== BigInt(k.entry) ? ` (e_entry ${hex(k.elfEntry)})` : "";
  lines.push(`  entry ${hex(k.entry)}${translated}, loads ${rangeStr(k.loadStart, k.loadEnd)} (${formatSize(k.loadEnd - k.loadStart)})`);
  for (const s of k.segments) {
    const name = s.index === null ? "a.out" : `phdr ${s.index}`;
    const flags = s.flags === null ? "" : ` ${segmentFlagsString(s.flags)}`;
    const vaddr = s.vaddr !== null && s.vaddr !== BigInt(s.paddr) ? ` vaddr ${hex(s.vaddr)}` : "";
    lines.push(`  ${name}: paddr ${rangeStr(s.paddr, s.paddr + s.memsz)}${vaddr} file ${hex(s.fileOffset)}+${hex(s.filesz)} mem ${hex(s.memsz)}${flags}`);
  }
  for (const w of k.warnings) lines.push(`  warning: ${w}`);
  return lines.join("\n");
}

interface InfoLayout {
  mmapAddr: number;
  mmapEntries: { base: number; length: number; type: number }[];
  modsAddr: number;
  loaderNameAddr: number;
  cmdlineAddr: number;
  moduleStringAddrs: number[];
  strings: { addr: number; bytes: Uint8Array }[];
  end: number;
}

/**
 * QEMU's pc firmware (SeaBIOS) keeps the top 128 KiB of low RAM for its own
 * tables and reports it reserved in e820, which is where QEMU's multiboot
 * loader takes mem_upper and the memory map from. We report the same, so a
 * guest prints the same numbers on both.
 */
export const FIRMWARE_RESERVED_TOP = 128 * 1024;
export function usableTop(ramSize: number): number {
  return ramSize - PC_HOLE_END > 2 * FIRMWARE_RESERVED_TOP ? ramSize - FIRMWARE_RESERVED_TOP : ramSize;
}

function layoutInfo(ramSize: number, cmdline: Uint8Array, moduleStrings: Uint8Array[]): InfoLayout {
  const mmapEntries = [
    { base: 0, length: LOW_MEM_END, type: MULTIBOOT_MEMORY_AVAILABLE },
    { base: LOW_MEM_END, length: PC_HOLE_START - LOW_MEM_END, type: MULTIBOOT_MEMORY_RESERVED },
    { base: BIOS_ROM_START, length: PC_HOLE_END - BIOS_ROM_START, type: MULTIBOOT_MEMORY_RESERVED },
  ];
  if (ramSize > PC_HOLE_END) {
    const top = usableTop(ramSize);
    mmapEntries.push({ base: PC_HOLE_END, length: top - PC_HOLE_END, type: MULTIBOOT_MEMORY_AVAILABLE });
    if (top < ramSize) mmapEntries.push({ base: top, length: ramSize - top, type: MULTIBOOT_MEMORY_RESERVED });
  }
  let cur = MB_INFO_ADDR + MBI_RESERVED;
  const mmapAddr = cur;
  cur += mmapEntries.length * MMAP_ENTRY_SIZE;
  const modsAddr = cur;
  cur += moduleStrings.length * MOD_ENTRY_SIZE;
  const strings: { addr: number; bytes: Uint8Array }[] = [];
  const addString = (bytes: Uint8Array): number => {
    const addr = cur;
    strings.push({ addr, bytes });
    cur += bytes.length + 1; // NUL terminator (the area is zeroed first)
    return addr;
  };
  const loaderNameAddr = addString(new TextEncoder().encode(BOOT_LOADER_NAME));
  const cmdlineAddr = addString(cmdline);
  const moduleStringAddrs = moduleStrings.map(addString);
  return { mmapAddr, mmapEntries, modsAddr, loaderNameAddr, cmdlineAddr, moduleStringAddrs, strings, end: cur };
}

function encodeCString(s: string, what: string): Uint8Array {
  if (s.includes("\0")) throw new BootError(null, `${what} contains a NUL character; the guest would see it cut short`);
  return new TextEncoder().encode(s);
}

/**
 * Load a multiboot v1 kernel (and its modules) into guest RAM and build the
 * multiboot information structure. The caller reads the file (a missing file is
 * its error to report) and then starts the vCPU at `entry` in the state
 * `MULTIBOOT_CPU_STATE` describes, with EAX = `eax` and EBX = `mbiAddr`.
 */
export function loadMultiboot(image: Uint8Array, path: string, mem: GuestMemory, opts: MultibootOptions = {}): MultibootBoot {
  if (mem.size < PC_HOLE_END) {
    throw new BootError(null, `guest RAM is ${formatSize(mem.size)}; a multiboot guest needs at least 1 MiB (give the VM 2 MiB or more)`);
  }
  if (mem.size > FOUR_GIB) {
    throw new BootError(null, `guest RAM is ${formatSize(mem.size)}; this PC model has no RAM above 4 GiB`);
  }
  const kernel = parseMultibootImage(image, path);
  const modules = opts.modules ?? [];
  const cmdline = kernelCommandLine(path, opts.cmdline);
  const layout = layoutInfo(
    mem.size,
    encodeCString(cmdline, "the kernel command line"),
    modules.map((m, i) => encodeCString(m.cmdline, `module ${i}'s string`)),
  );
  const info: GpaRange = { start: MB_INFO_ADDR, end: layout.end };
  if (info.end > MB_INFO_LIMIT) {
    throw new BootError(
      path,
      `the multiboot info area (info, memory map, ${modules.length} module entries, command line and module strings: ${info.end - info.start} bytes) does not fit in ${rangeStr(MB_INFO_ADDR, MB_INFO_LIMIT)}; shorten the command line or the module strings`,
    );
  }

  for (const s of kernel.segments) {
    const name = s.index === null ? "the a.out-kludge image" : `program header ${s.index}`;
    const range: GpaRange = { start: s.paddr, end: s.paddr + s.memsz };
    const why = whyNotRam(range.start, range.end, mem.size);
    if (why) {
      const fix = range.end > mem.size ? "give the VM more RAM or link the kernel lower" : "link the kernel at 1 MiB (0x100000) or above";
      throw new ElfError(path, `${name} (paddr ${rangeStr(range.start, range.end)}) ${why}; ${fix}`);
    }
    if (rangesOverlap(range, info)) {
      throw new ElfError(
        path,
        `${name} (paddr ${rangeStr(range.start, range.end)}) overlaps the multiboot info area ${rangeStr(info.start, info.end)}; link the kernel at 1 MiB (0x100000) or above`,
      );
    }
  }

  // Place modules page-aligned after the kernel, stepping over the info area, the EBDA and the PC hole.
  const placed: LoadedModule[] = [];
  let cursor = alignUp(kernel.loadEnd, PAGE_SIZE);
  modules.forEach((m, i) => {
    let start = cursor;
    for (;;) {
      const r: GpaRange = { start, end: start + m.data.length };
      if (rangesOverlap(r, info) || (r.start === r.end && r.start >= info.start && r.start < info.end)) {
        start = alignUp(info.end, PAGE_SIZE);
      } else if (rangesOverlap(r, { start: LOW_MEM_END, end: PC_HOLE_END }) || (start >= LOW_MEM_END && start < PC_HOLE_END)) {
        // Not in the PC hole, nor in the EBDA below it that the memory map reports as reserved.
        start = PC_HOLE_END;
      } else break;
    }
    const end = start + m.data.length;
    if (end > mem.size) {
      throw new BootError(
        path,
        `module ${i} ("${m.cmdline}", ${formatSize(m.data.length)}) would end at ${hex(end)}, beyond the end of guest RAM (${formatSize(mem.size)}); give the VM more RAM`,
      );
    }
    placed.push({ start, end, cmdline: m.cmdline });
    cursor = alignUp(end, PAGE_SIZE);
  });

  // Everything is checked: write guest memory.
  for (const s of kernel.segments) {
    if (s.filesz > 0) mem.write(s.paddr, image.subarray(s.fileOffset, s.fileOffset + s.filesz));
    if (s.memsz > s.filesz) mem.fill(s.paddr + s.filesz, s.memsz - s.filesz, 0);
  }
  modules.forEach((m, i) => {
    if (m.data.length > 0) mem.write(placed[i]!.start, m.data);
  });

  const buf = new Uint8Array(info.end - info.start);
  const dv = new DataView(buf.buffer);
  const at = (gpa: number) => gpa - MB_INFO_ADDR;
  let flags = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_BOOT_LOADER_NAME;
  if (modules.length > 0) flags |= MULTIBOOT_INFO_MODS;
  dv.setUint32(MBI.flags, flags, true);
  dv.setUint32(MBI.mem_lower, LOW_MEM_END / 1024, true); // 639 KiB
  dv.setUint32(MBI.mem_upper, Math.floor((usableTop(mem.size) - PC_HOLE_END) / 1024), true);
  dv.setUint32(MBI.cmdline, layout.cmdlineAddr, true);
  if (modules.length > 0) {
    dv.setUint32(MBI.mods_count, modules.length, true);
    dv.setUint32(MBI.mods_addr, layout.modsAddr, true);
  }
  dv.setUint32(MBI.mmap_length, layout.mmapEntries.length * MMAP_ENTRY_SIZE, true);
  dv.setUint32(MBI.mmap_addr, layout.mmapAddr, true);
  dv.setUint32(MBI.boot_loader_name, layout.loaderNameAddr, true);
  layout.mmapEntries.forEach((e, i) => {
    const o = at(layout.mmapAddr) + i * MMAP_ENTRY_SIZE;
    dv.setUint32(o, MMAP_ENTRY_SIZE - 4, true);
    dv.setBigUint64(o + 4, BigInt(e.base), true);
    dv.setBigUint64(o + 12, BigInt(e.length), true);
    dv.setUint32(o + 20, e.type, true);
  });
  placed.forEach((p, i) => {
    const o = at(layout.modsAddr) + i * MOD_ENTRY_SIZE;
    dv.setUint32(o, p.start, true);
    dv.setUint32(o + 4, p.end, true);
    dv.setUint32(o + 8, layout.moduleStringAddrs[i]!, true);
    dv.setUint32(o + 12, 0, true);
  });
  for (const s of layout.strings) buf.set(s.bytes, at(s.addr));
  mem.write(MB_INFO_ADDR, buf);

  return {
    entry: kernel.entry,
    mbiAddr: MB_INFO_ADDR,
    eax: MULTIBOOT_BOOTLOADER_MAGIC,
    loadStart: kernel.loadStart,
    loadEnd: kernel.loadEnd,
    infoEnd: info.end,
    cmdline,
    modules: placed,
    format: kernel.format,
    warnings: kernel.warnings,
  };
}
