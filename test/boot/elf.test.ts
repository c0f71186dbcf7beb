import { describe, expect, it } from "vitest";
import { EM_386, EM_X86_64, PF_R, PF_W, PF_X, PT_LOAD, parseElf, physicalEntry } from "../../src/boot/elf.js";
import { ElfError } from "../../src/errors.js";
import { buildElf, pattern } from "./elf_builder.js";

const P = "k.elf";

function expectElfError(fn: () => unknown, re: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ElfError);
  expect((err as ElfError).message).toMatch(re);
  expect((err as ElfError).message.startsWith(`${P}: `)).toBe(true);
}

describe("parseElf", () => {
  it("reads an ELF32 image", () => {
    const { bytes } = buildElf({
      cls: 32,
      entry: 0x100010,
      segments: [
        { paddr: 0x100000, data: pattern(64), flags: PF_R | PF_X },
        { paddr: 0x101000, data: pattern(16), memsz: 0x100, flags: PF_R | PF_W },
        { paddr: 0, data: new Uint8Array(0), type: 0x6474e551 }, // PT_GNU_STACK
      ],
    });
    const elf = parseElf(bytes, P);
    expect(elf.elfClass).toBe(32);
    expect(elf.machine).toBe(EM_386);
    expect(elf.entry).toBe(0x100010n);
    expect(elf.segments).toHaveLength(3);
    expect(elf.loadSegments.map((s) => [s.index, s.paddr, s.filesz, s.memsz])).toEqual([
      [0, 0x100000n, 64, 64],
      [1, 0x101000n, 16, 0x100],
    ]);
    expect(elf.loadSegments[0]!.type).toBe(PT_LOAD);
  });

  it("reads an ELF64 image with 64-bit vaddrs", () => {
    const { bytes } = buildElf({
      cls: 64,
      entry: 0xffffffff80200004n,
      segments: [{ paddr: 0x200000, vaddr: 0xffffffff80200000n, data: pattern(32), flags: PF_R | PF_X }],
    });
    const elf = parseElf(bytes, P);
    expect(elf.elfClass).toBe(64);
    expect(elf.machine).toBe(EM_X86_64);
    expect(elf.loadSegments[0]!.vaddr).toBe(0xffffffff80200000n);
    expect(physicalEntry(elf)).toBe(0x200004n);
  });

  it("translates the entry only through an executable segment, as QEMU does", () => {
    const { bytes } = buildElf({
      cls: 64,
      entry: 0xffffffff80200004n,
      segments: [{ paddr: 0x200000, vaddr: 0xffffffff80200000n, data: pattern(32), flags: PF_R | PF_W }],
    });
    expect(physicalEntry(parseElf(bytes, P))).toBe(0xffffffff80200004n);
  });

  it("skips zero-sized PT_LOAD segments", () => {
    const { bytes } = buildElf({
      cls: 32,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: pattern(8) },
        { paddr: 0x900000000 & 0xffffffff, data: new Uint8Array(0), memsz: 0 },
      ],
    });
    expect(parseElf(bytes, P).loadSegments).toHaveLength(1);
  });

  const good32 = () => buildElf({ cls: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: pattern(64) }] });
  const good64 = () => buildElf({ cls: 64, entry: 0x100000, segments: [{ paddr: 0x100000, data: pattern(64) }] });

  it("rejects non-ELF and empty files", () => {
    expectElfError(() => parseElf(new Uint8Array(0), P), /empty file/);
    expectElfError(() => parseElf(new Uint8Array([1, 2, 3, 4, 5]), P), /not an ELF file/);
  });

  it("rejects truncated headers", () => {
    expectElfError(() => parseElf(good32().bytes.slice(0, 40), P), /truncated ELF32 header/);
    expectElfError(() => parseElf(good64().bytes.slice(0, 60), P), /truncated ELF64 header/);
    expectElfError(() => parseElf(good64().bytes.slice(0, 5), P), /truncated file: EI_DATA/);
  });

  it("rejects a bad class, endianness or version", () => {
    for (const [off, val, re] of [
      [4, 3, /unsupported ELF class 3/],
      [5, 2, /not a little-endian/],
      [6, 0, /unsupported ELF version 0/],
    ] as const) {
      const { bytes } = good32();
      bytes[off] = val;
      expectElfError(() => parseElf(bytes, P), re);
    }
  });

  it("rejects non-executables and non-x86 machines", () => {
    expectElfError(() => parseElf(buildElf({ cls: 32, type: 3, entry: 0, segments: [{ paddr: 0x100000, data: pattern(4) }] }).bytes, P), /ET_DYN.*-static -no-pie/);
    expectElfError(() => parseElf(buildElf({ cls: 32, type: 1, entry: 0, segments: [{ paddr: 0x100000, data: pattern(4) }] }).bytes, P), /ET_REL/);
    expectElfError(() => parseElf(buildElf({ cls: 64, machine: 0xb7, entry: 0, segments: [{ paddr: 0x100000, data: pattern(4) }] }).bytes, P), /EM_AARCH64 is not an x86 kernel/);
  });

  it("rejects a program header table outside the file", () => {
    const { bytes } = good32();
    new DataView(bytes.buffer).setUint32(28, bytes.length - 8, true); // e_phoff
    expectElfError(() => parseElf(bytes, P), /program header table .* extends past the end of the file/);
    const b64 = good64().bytes;
    new DataView(b64.buffer).setBigUint64(32, 0xffffffffffffff00n, true);
    expectElfError(() => parseElf(b64, P), /program header table .* extends past the end of the file/);
    const many = good32().bytes;
    new DataView(many.buffer).setUint16(44, 500, true); // e_phnum
    expectElfError(() => parseElf(many, P), /500 entries of 32 bytes.*extends past/);
  });

  it("rejects bad phnum and phentsize", () => {
    const a = good32().bytes;
    new DataView(a.buffer).setUint16(44, 0, true);
    expectElfError(() => parseElf(a, P), /no program headers/);
    const b = good32().bytes;
    new DataView(b.buffer).setUint16(42, 16, true);
    expectElfError(() => parseElf(b, P), /e_phentsize is 16/);
    const c = good64().bytes;
    new DataView(c.buffer).setUint16(54, 32, true);
    expectElfError(() => parseElf(c, P), /e_phentsize is 32, an ELF64 program header is 56/);
    const d = good32().bytes;
    new DataView(d.buffer).setUint16(44, 0xffff, true);
    expectElfError(() => parseElf(d, P), /PN_XNUM/);
  });

  it("rejects segment file ranges outside the file", () => {
    const { bytes, phoff } = good32();
    new DataView(bytes.buffer).setUint32(phoff + 16, 0x10000, true); // p_filesz
    new DataView(bytes.buffer).setUint32(phoff + 20, 0x10000, true); // p_memsz
    expectElfError(() => parseElf(bytes, P), /program header 0: file range .* extends past the end of the file/);
    const b = good64();
    new DataView(b.bytes.buffer).setBigUint64(b.phoff + 8, 0x7fffffffffffn, true); // p_offset
    expectElfError(() => parseElf(b.bytes, P), /program header 0: file range/);
    const c = good64();
    new DataView(c.bytes.buffer).setBigUint64(c.phoff + 32, 0xffffffffffffffffn, true); // p_filesz
    new DataView(c.bytes.buffer).setBigUint64(c.phoff + 40, 0xffffffffffffffffn, true); // p_memsz
    expectElfError(() => parseElf(c.bytes, P), /p_filesz .* is absurdly large/);
  });

  it("rejects filesz > memsz and files with nothing to load", () => {
    const { bytes, phoff } = good32();
    new DataView(bytes.buffer).setUint32(phoff + 20, 8, true);
    expectElfError(() => parseElf(bytes, P), /p_filesz \(0x40\) is larger than p_memsz \(0x8\)/);
    const none = buildElf({ cls: 32, entry: 0, segments: [{ paddr: 0, data: new Uint8Array(0), type: 4 }] }).bytes;
    expectElfError(() => parseElf(none, P), /no PT_LOAD segments/);
  });
});
