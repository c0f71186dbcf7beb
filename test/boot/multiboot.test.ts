import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PF_R, PF_W, PF_X } from "../../src/boot/elf.js";
import {
  MBI,
  MB_INFO_ADDR,
  MULTIBOOT_BOOTLOADER_MAGIC,
  MULTIBOOT_INFO_BOOT_LOADER_NAME,
  MULTIBOOT_INFO_CMDLINE,
  MULTIBOOT_INFO_MEMORY,
  MULTIBOOT_INFO_MEM_MAP,
  MULTIBOOT_INFO_MODS,
  describeMultibootImage,
  findMultibootHeader,
  kernelCommandLine,
  loadMultiboot,
  parseMultibootImage,
} from "../../src/boot/multiboot.js";
import { BootError, ElfError, Shadow86Error, formatError } from "../../src/errors.js";
import { ArrayMemory } from "./array_memory.js";
import { buildAout, buildElf, mbHeader, pattern } from "./elf_builder.js";

const P = "guest-images/test.elf";
const MiB = 1 << 20;

function catchErr(fn: () => unknown): Shadow86Error {
  try {
    fn();
  } catch (e) {
    if (e instanceof Shadow86Error) return e;
    throw e;
  }
  throw new Error("expected an error");
}

function expectElfError(fn: () => unknown, re: RegExp): ElfError {
  const e = catchErr(fn);
  expect(e).toBeInstanceOf(ElfError);
  expect(e.name).toBe("ElfError");
  expect(e.message).toMatch(re);
  expect(e.message.startsWith(`${P}: `)).toBe(true);
  return e;
}

function kernel32(extra: Partial<Parameters<typeof buildElf>[0]> = {}) {
  return buildElf({
    cls: 32,
    entry: 0x100000,
    segments: [
      { paddr: 0x100000, data: pattern(0x300, 1), flags: PF_R | PF_X },
      { paddr: 0x101000, data: pattern(0x40, 2), memsz: 0x2000, flags: PF_R | PF_W },
    ],
    ...extra,
  });
}

describe("loadMultiboot: ELF kernels", () => {
  it("loads an ELF32 kernel and returns the boot registers", () => {
    const { bytes } = kernel32();
    const mem = new ArrayMemory(16 * MiB);
    const boot = loadMultiboot(bytes, P, mem, {});
    expect(boot.entry).toBe(0x100000);
    expect(boot.eax).toBe(0x2badb002);
    expect(boot.eax).toBe(MULTIBOOT_BOOTLOADER_MAGIC);
    expect(boot.mbiAddr).toBe(MB_INFO_ADDR);
    expect(boot.loadStart).toBe(0x100000);
    expect(boot.loadEnd).toBe(0x103000);
    expect(boot.format).toBe("elf32");
    expect(boot.warnings).toEqual([]);
    expect(mem.slice(0x100000, 0x300)).toEqual(pattern(0x300, 1));
    expect(mem.slice(0x101000, 0x40)).toEqual(pattern(0x40, 2));
  });

  it("zeroes bss (memsz - filesz) over whatever was in RAM", () => {
    const { bytes } = kernel32();
    const mem = new ArrayMemory(4 * MiB, 0xaa);
    loadMultiboot(bytes, P, mem);
    expect(mem.slice(0x101040, 0x2000 - 0x40).every((b) => b === 0)).toBe(true);
    expect(mem.bytes[0x103000]).toBe(0xaa); // nothing past memsz
    expect(mem.bytes[0x100300]).toBe(0xaa); // the gap between segments is not touched
  });

  it("loads an ELF64 kernel and translates a higher-half entry to its physical address", () => {
    const { bytes } = buildElf({
      cls: 64,
      entry: 0xffffffff80200010n,
      segments: [{ paddr: 0x200000, vaddr: 0xffffffff80200000n, data: pattern(0x100, 3), memsz: 0x1000, flags: PF_R | PF_X }],
    });
    const mem = new ArrayMemory(4 * MiB);
    const boot = loadMultiboot(bytes, P, mem);
    expect(boot.format).toBe("elf64");
    expect(boot.entry).toBe(0x200010);
    expect(boot.loadEnd).toBe(0x201000);
    expect(mem.slice(0x200000, 0x100)).toEqual(pattern(0x100, 3));
  });

  it("rejects an ELF64 entry above 4 GiB that no segment translates", () => {
    const { bytes } = buildElf({
      cls: 64,
      entry: 0xffffffff80200010n,
      segments: [{ paddr: 0x200000, vaddr: 0x200000, data: pattern(0x100), flags: PF_R | PF_X }],
    });
    expectElfError(() => loadMultiboot(bytes, P, new ArrayMemory(4 * MiB)), /entry point 0xffffffff80200010 is above 4 GiB/);
  });

  it("rejects an ELF64 segment with a physical address above 4 GiB", () => {
    const { bytes } = buildElf({ cls: 64, entry: 0x100000, segments: [{ paddr: 0x100000000n, data: pattern(0x10) }] });
    expectElfError(() => loadMultiboot(bytes, P, new ArrayMemory(4 * MiB)), /program header 0: physical range 0x100000000-0x100000010 is not below 4 GiB/);
  });

  it("accepts the kernel's segments in low memory, above the info area", () => {
    const { bytes } = buildElf({ cls: 32, entry: 0x20000, segments: [{ paddr: 0x20000, data: pattern(0x100) }] });
    const mem = new ArrayMemory(2 * MiB);
    expect(loadMultiboot(bytes, P, mem).entry).toBe(0x20000);
  });

  it("warns when the entry point is outside every segment", () => {
    const { bytes } = kernel32({ entry: 0x500000 });
    const boot = loadMultiboot(bytes, P, new ArrayMemory(8 * MiB));
    expect(boot.warnings.join("\n")).toMatch(/entry point 0x500000 is not inside any loaded segment/);
  });
});

describe("loadMultiboot: the multiboot information structure", () => {
  const mem = new ArrayMemory(32 * MiB);
  const boot = loadMultiboot(kernel32().bytes, P, mem, { cmdline: "console=ttyS0 verbose" });
  const mbi = boot.mbiAddr;

  it("sets MEM, CMDLINE, MMAP and LOADER_NAME (and not MODS without modules)", () => {
    expect(mem.u32(mbi + MBI.flags)).toBe(MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MEM_MAP | MULTIBOOT_INFO_BOOT_LOADER_NAME);
    expect(mem.u32(mbi + MBI.mods_count)).toBe(0);
  });

  it("reports 639 KiB of low memory and the RAM above 1 MiB less QEMU's firmware-reserved top 128 KiB", () => {
    expect(mem.u32(mbi + MBI.mem_lower)).toBe(639);
    expect(mem.u32(mbi + MBI.mem_upper)).toBe(31 * 1024 - 128);
  });

  it("passes QEMU's command line: the kernel path, a space, the append string", () => {
    expect(mem.cstring(mem.u32(mbi + MBI.cmdline))).toBe(`${P} console=ttyS0 verbose`);
    expect(boot.cmdline).toBe(`${P} console=ttyS0 verbose`);
    expect(kernelCommandLine("k.elf", undefined)).toBe("k.elf ");
  });

  it("names the boot loader", () => {
    expect(mem.cstring(mem.u32(mbi + MBI.boot_loader_name))).toBe("shadow86");
  });

  it("builds the PC memory map", () => {
    const addr = mem.u32(mbi + MBI.mmap_addr);
    const len = mem.u32(mbi + MBI.mmap_length);
    const entries: [bigint, bigint, number][] = [];
    for (let p = addr; p < addr + len; p += mem.u32(p) + 4) {
      expect(mem.u32(p)).toBe(20);
      entries.push([mem.u64(p + 4), mem.u64(p + 12), mem.u32(p + 20)]);
    }
    expect(entries).toEqual([
      [0n, 0x9fc00n, 1],
      [0x9fc00n, 0x400n, 2],
      [0xf0000n, 0x10000n, 2],
      [0x100000n, BigInt(31 * MiB - 128 * 1024), 1],
      [BigInt(32 * MiB - 128 * 1024), BigInt(128 * 1024), 2],
    ]);
  });

  it("keeps the info area in low memory below 0x9fc00", () => {
    expect(boot.infoEnd).toBeGreaterThan(MB_INFO_ADDR);
    expect(boot.infoEnd).toBeLessThanOrEqual(0x9fc00);
    for (const field of [MBI.cmdline, MBI.boot_loader_name, MBI.mmap_addr]) {
      const a = mem.u32(mbi + field);
      expect(a).toBeGreaterThanOrEqual(MB_INFO_ADDR + MBI.size);
      expect(a).toBeLessThan(boot.infoEnd);
    }
  });
});

describe("loadMultiboot: modules", () => {
  it("places modules page-aligned after the kernel and lists them", () => {
    const mem = new ArrayMemory(16 * MiB, 0xee);
    const m0 = pattern(5000, 7);
    const m1 = pattern(10, 8);
    const boot = loadMultiboot(kernel32().bytes, P, mem, {
      cmdline: "a=b",
      modules: [
        { data: m0, cmdline: "initrd.img root=/dev/ram" },
        { data: m1, cmdline: "second" },
      ],
    });
    const mbi = boot.mbiAddr;
    expect(mem.u32(mbi + MBI.flags) & MULTIBOOT_INFO_MODS).toBe(MULTIBOOT_INFO_MODS);
    expect(mem.u32(mbi + MBI.mods_count)).toBe(2);
    const mods = mem.u32(mbi + MBI.mods_addr);
    expect(boot.modules).toEqual([
      { start: 0x103000, end: 0x103000 + 5000, cmdline: "initrd.img root=/dev/ram" },
      { start: 0x105000, end: 0x105000 + 10, cmdline: "second" },
    ]);
    for (const [i, m] of boot.modules.entries()) {
      const e = mods + 16 * i;
      expect(mem.u32(e)).toBe(m.start);
      expect(mem.u32(e + 4)).toBe(m.end);
      expect(mem.cstring(mem.u32(e + 8))).toBe(m.cmdline);
      expect(mem.u32(e + 12)).toBe(0);
      expect(m.start % 4096).toBe(0);
    }
    expect(mem.slice(0x103000, 5000)).toEqual(m0);
    expect(mem.slice(0x105000, 10)).toEqual(m1);
    expect(mem.cstring(mem.u32(mbi + MBI.cmdline))).toBe(`${P} a=b`);
  });

  it("steps modules over the PC hole for a kernel in low memory", () => {
    const { bytes } = buildElf({ cls: 32, entry: 0x90000, segments: [{ paddr: 0x90000, data: pattern(0x100) }] });
    const mem = new ArrayMemory(4 * MiB);
    const boot = loadMultiboot(bytes, P, mem, {
      modules: [
        { data: pattern(0x8000), cmdline: "fits below the EBDA" },
        { data: pattern(0x8000), cmdline: "would reach the EBDA" },
        { data: pattern(0x10), cmdline: "n" },
      ],
    });
    expect(boot.modules.map((m) => m.start)).toEqual([0x91000, 0x100000, 0x108000]);
  });

  it("refuses modules that do not fit in RAM", () => {
    const e = catchErr(() => loadMultiboot(kernel32().bytes, P, new ArrayMemory(2 * MiB), { modules: [{ data: new Uint8Array(MiB), cmdline: "big.img" }] }));
    expect(e).toBeInstanceOf(BootError);
    expect(e.message).toMatch(/module 0 \("big.img", 1 MiB\) would end at 0x203000, beyond the end of guest RAM \(2 MiB\); give the VM more RAM/);
  });

  it("refuses a command line that overflows the info area", () => {
    const e = catchErr(() => loadMultiboot(kernel32().bytes, P, new ArrayMemory(2 * MiB), { cmdline: "x".repeat(0x97000) }));
    expect(e).toBeInstanceOf(BootError);
    expect(e.message).toMatch(/does not fit in 0x9000-0x9fc00; shorten the command line/);
    const nul = catchErr(() => loadMultiboot(kernel32().bytes, P, new ArrayMemory(2 * MiB), { cmdline: "a\0b" }));
    expect(nul.message).toMatch(/NUL/);
  });
});

describe("loadMultiboot: a.out kludge (flags bit 16)", () => {
  it("loads a flat image at load_addr with bss and entry_addr", () => {
    const text = pattern(0x800, 9);
    const img = buildAout({ loadAddr: 0x100000, text, headerOffset: 0x40, loadEndAddr: 0x100800, bssEndAddr: 0x104000, entryAddr: 0x100080 });
    const mem = new ArrayMemory(4 * MiB, 0x55);
    const boot = loadMultiboot(img, "flat.bin", mem);
    expect(boot.format).toBe("aout-kludge");
    expect(boot.entry).toBe(0x100080);
    expect(boot.loadEnd).toBe(0x104000);
    expect(mem.slice(0x100000, 0x800)).toEqual(img.subarray(0, 0x800));
    expect(mem.slice(0x100800, 0x3800).every((b) => b === 0)).toBe(true);
    expect(mem.bytes[0x104000]).toBe(0x55);
  });

  it("loads the rest of the file when load_end_addr is 0, from the header's file position", () => {
    // The header sits at file offset 0x20 but claims header_addr = load_addr + 0x10:
    // the first 0x10 bytes of the file are not loaded.
    const img = buildAout({ loadAddr: 0x200000, text: pattern(0x100, 4), headerOffset: 0x20, headerAddr: 0x200010, entryAddr: 0x200010 });
    const mem = new ArrayMemory(4 * MiB);
    const boot = loadMultiboot(img, "flat.bin", mem);
    expect(boot.loadStart).toBe(0x200000);
    expect(boot.loadEnd).toBe(0x200000 + img.length - 0x10);
    expect(mem.slice(0x200000, img.length - 0x10)).toEqual(img.subarray(0x10));
  });

  it("uses the address fields even for an ELF file", () => {
    const text = pattern(0x200, 5);
    const img = buildAout({ loadAddr: 0x300000, text, headerOffset: 0x80, entryAddr: 0x300000 });
    img.set([0x7f, 0x45, 0x4c, 0x46], 0);
    expect(loadMultiboot(img, "x.elf", new ArrayMemory(4 * MiB)).format).toBe("aout-kludge");
  });

  const aoutErr = (o: Parameters<typeof buildAout>[0], re: RegExp) =>
    expectElfError(() => loadMultiboot(buildAout(o), P, new ArrayMemory(4 * MiB)), re);

  it("rejects inconsistent address fields", () => {
    aoutErr({ loadAddr: 0x100000, text: pattern(0x100), headerAddr: 0xff000 }, /header_addr 0xff000 is below load_addr 0x100000/);
    aoutErr({ loadAddr: 0x100000, text: pattern(0x100), headerOffset: 0x10, headerAddr: 0x100020 }, /loading would start before the beginning of the file/);
    aoutErr({ loadAddr: 0x100000, text: pattern(0x100), loadEndAddr: 0xf0000 }, /load_end_addr 0xf0000 is below load_addr/);
    aoutErr({ loadAddr: 0x100000, text: pattern(0x100), loadEndAddr: 0x100400 }, /load_end_addr 0x100400 asks for 1024 bytes from file offset 0x0, past the end of the file \(256 bytes\)/);
    aoutErr({ loadAddr: 0x100000, text: pattern(0x100), loadEndAddr: 0x100100, bssEndAddr: 0x100080 }, /bss_end_addr 0x100080 is below the end of the loaded image 0x100100/);
    aoutErr({ loadAddr: 0xfffff000, text: pattern(0x100), bssEndAddr: 0xffffffff }, /beyond the end of guest RAM/);
  });

  it("rejects a header whose address fields are cut off by the end of the file", () => {
    const h = mbHeader({ addr: { headerAddr: 0x100000, loadAddr: 0x100000, loadEndAddr: 0, bssEndAddr: 0, entryAddr: 0x100000 } });
    expectElfError(() => loadMultiboot(h.slice(0, 20), P, new ArrayMemory(4 * MiB)), /multiboot header at offset 0x0 is truncated: the address fields \(flags bit 16\) need 32 bytes/);
  });
});

describe("loadMultiboot: bad images", () => {
  const mem = () => new ArrayMemory(4 * MiB);

  it("empty and short files", () => {
    expectElfError(() => loadMultiboot(new Uint8Array(0), P, mem()), /empty file/);
    expectElfError(() => loadMultiboot(new Uint8Array(8), P, mem()), /file too short \(8 bytes\)/);
  });

  it("an ELF without a multiboot header", () => {
    const { bytes } = kernel32({ multiboot: false });
    const e = expectElfError(() => loadMultiboot(bytes, P, mem()), /not a multiboot image \(no header in the first 8 KiB\)/);
    expect(formatError(e)).toBe(`ElfError: ${P}: not a multiboot image (no header in the first 8 KiB)`);
  });

  it("a header beyond the first 8 KiB does not count", () => {
    const img = new Uint8Array(0x3000);
    img.set(mbHeader({ addr: { headerAddr: 0x100000, loadAddr: 0x100000, loadEndAddr: 0, bssEndAddr: 0, entryAddr: 0x100000 } }), 0x2000);
    expectElfError(() => loadMultiboot(img, P, mem()), /no header in the first 8 KiB/);
  });

  it("multiboot2 images and Linux bzImages get a hint", () => {
    const mb2 = new Uint8Array(64);
    new DataView(mb2.buffer).setUint32(8, 0xe85250d6, true);
    expectElfError(() => loadMultiboot(mb2, P, mem()), /multiboot2 kernel/);
    const bz = new Uint8Array(0x400);
    new DataView(bz.buffer).setUint32(0x202, 0x53726448, true);
    expectElfError(() => loadMultiboot(bz, P, mem()), /Linux bzImage/);
  });

  it("a bad checksum", () => {
    const { bytes } = kernel32({ multiboot: { flags: 3, checksum: 0x12345678 } });
    expectElfError(() => loadMultiboot(bytes, P, mem()), /multiboot header at offset 0x[0-9a-f]+ has a bad checksum: .* \(checksum should be 0xe4524ffb\)/);
  });

  it("a valid header after one with a bad checksum is used (as QEMU scans)", () => {
    const { bytes, mbOffset } = kernel32({ multiboot: { flags: 3, checksum: 1 } });
    const copy = new Uint8Array(bytes.length + 16);
    copy.set(bytes);
    // Append a good header in the 16 spare bytes at the end (still inside 8 KiB).
    const at = Math.ceil(bytes.length / 4) * 4;
    copy.set(mbHeader({ flags: 3 }), at);
    expect(findMultibootHeader(copy, P).offset).toBe(at);
    expect(findMultibootHeader(copy, P).offset).not.toBe(mbOffset);
  });

  it("a non-ELF file without the address fields", () => {
    const img = new Uint8Array(256);
    img.set(mbHeader({ flags: 3 }), 16);
    expectElfError(() => loadMultiboot(img, P, mem()), /not an ELF file and the multiboot header has no address fields/);
  });

  it("required flags it cannot satisfy; video mode is tolerated with a warning", () => {
    expectElfError(() => loadMultiboot(kernel32({ multiboot: { flags: 0x3 | (1 << 5) | (1 << 9) } }).bytes, P, mem()), /unknown required bits 5, 9/);
    const boot = loadMultiboot(kernel32({ multiboot: { flags: 0x7 } }).bytes, P, mem());
    expect(boot.warnings.join()).toMatch(/video mode/);
    // Optional bits 17-31 are fine.
    expect(loadMultiboot(kernel32({ multiboot: { flags: 0x3 | (1 << 20) } }).bytes, P, mem()).warnings).toEqual([]);
  });

  it("a program header table or segment data outside the file", () => {
    const { bytes } = kernel32();
    const b = bytes.slice();
    new DataView(b.buffer).setUint32(28, 0x7ffff000, true); // e_phoff far past the end
    expectElfError(() => loadMultiboot(b, P, mem()), /program header table \(offset 0x7ffff000, 2 entries of 32 bytes\) extends past the end of the file/);
    expectElfError(() => loadMultiboot(bytes.slice(0, bytes.length - 0x40), P, mem()), /program header 1: file range .* extends past the end of the file/);
  });

  it("a segment beyond the end of RAM", () => {
    const { bytes } = buildElf({ cls: 32, entry: 0x400000, segments: [{ paddr: 0x3ff000, data: pattern(0x100), memsz: 0x2000 }] });
    expectElfError(() => loadMultiboot(bytes, P, mem()), /program header 0 \(paddr 0x3ff000-0x401000\) ends at 0x401000, beyond the end of guest RAM \(0x400000, 4 MiB\); give the VM more RAM/);
  });

  it("an absurd memsz", () => {
    const { bytes } = buildElf({ cls: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: pattern(0x100), memsz: 0xffff0000 }] });
    expectElfError(() => loadMultiboot(bytes, P, mem()), /not below 4 GiB/);
    const ok = buildElf({ cls: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: pattern(0x100), memsz: 0xe0000000 }] });
    expectElfError(() => loadMultiboot(ok.bytes, P, mem()), /beyond the end of guest RAM/);
  });

  it("a segment in the VGA/BIOS hole", () => {
    for (const paddr of [0xa0000, 0xb8000, 0xf0000, 0x9f000]) {
      const { bytes } = buildElf({ cls: 32, entry: paddr, segments: [{ paddr, data: pattern(0x100), memsz: 0x2000 }] });
      expectElfError(() => loadMultiboot(bytes, P, mem()), /overlaps the PC hole 0xa0000-0xfffff .*link the kernel at 1 MiB/);
    }
  });

  it("a segment over the multiboot info area", () => {
    const { bytes } = buildElf({ cls: 32, entry: 0x8000, segments: [{ paddr: 0x8000, data: pattern(0x100), memsz: 0x1100 }] });
    expectElfError(() => loadMultiboot(bytes, P, mem()), /overlaps the multiboot info area 0x9000-0x9[0-9a-f]{3}; link the kernel at 1 MiB/);
  });

  it("overlapping segments", () => {
    const { bytes } = buildElf({
      cls: 32,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: pattern(0x100), memsz: 0x2000 },
        { paddr: 0x101000, data: pattern(0x100) },
      ],
    });
    expectElfError(() => loadMultiboot(bytes, P, mem()), /program headers 0 \(0x100000-0x102000\) and 1 \(0x101000-0x101100\) overlap/);
  });

  it("too little RAM", () => {
    const e = catchErr(() => loadMultiboot(kernel32().bytes, P, new ArrayMemory(512 * 1024)));
    expect(e).toBeInstanceOf(BootError);
    expect(formatError(e)).toMatch(/^BootError: guest RAM is 512 KiB; a multiboot guest needs at least 1 MiB/);
  });

  it("nothing is written to guest memory when the image is rejected", () => {
    const m = mem();
    const { bytes } = buildElf({
      cls: 32,
      entry: 0x100000,
      segments: [
        { paddr: 0x100000, data: pattern(0x100) },
        { paddr: 0x3ff000, data: pattern(0x100), memsz: 0x2000 },
      ],
    });
    expect(() => loadMultiboot(bytes, P, m)).toThrow(ElfError);
    expect(m.writes).toEqual([]);
  });

  it("mutated images give a Shadow86Error or a load that stays inside RAM, never anything else", () => {
    const base = [
      kernel32().bytes,
      buildElf({ cls: 64, entry: 0x100000, segments: [{ paddr: 0x100000, data: pattern(0x80), memsz: 0x1000 }] }).bytes,
      buildAout({ loadAddr: 0x100000, text: pattern(0x200), headerOffset: 0x40, loadEndAddr: 0x100200, bssEndAddr: 0x101000 }),
    ];
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let loaded = 0;
    const ram = new ArrayMemory(2 * MiB);
    for (let iter = 0; iter < 3000; iter++) {
      const img = base[iter % base.length]!.slice();
      const flips = 1 + rnd(4);
      for (let k = 0; k < flips; k++) {
        const at = rnd(Math.min(img.length, 0x100));
        img[at] = rnd(3) === 0 ? 0xff : rnd(256);
      }
      // ArrayMemory throws a plain Error on writes outside RAM or into the hole.
      try {
        loadMultiboot(img, P, ram);
        loaded++;
      } catch (e) {
        if (!(e instanceof Shadow86Error)) throw e;
      }
    }
    expect(loaded).toBeGreaterThan(0);
  });
});

describe("describeMultibootImage", () => {
  it("describes format, entry and segments", () => {
    const { bytes } = buildElf({
      cls: 64,
      entry: 0xffffffff80200010n,
      segments: [{ paddr: 0x200000, vaddr: 0xffffffff80200000n, data: pattern(0x100), memsz: 0x1000, flags: PF_R | PF_X }],
    });
    const text = describeMultibootImage(parseMultibootImage(bytes, "k64.elf"));
    expect(text).toContain("k64.elf: multiboot v1 elf64 kernel");
    expect(text).toContain("entry 0x200010 (e_entry 0xffffffff80200010)");
    expect(text).toContain("phdr 0: paddr 0x200000-0x201000 vaddr 0xffffffff80200000 file 0x");
    expect(text).toContain("r-x");
  });
});

describe("the committed guest images", () => {
  const dir = join(import.meta.dirname, "../../guest-images");
  const images = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".elf")) : [];
  it.skipIf(images.length === 0).each(images)("%s loads", (name) => {
    const path = `guest-images/${name}`;
    const mem = new ArrayMemory(64 * MiB);
    const boot = loadMultiboot(new Uint8Array(readFileSync(join(dir, name))), path, mem, {});
    expect(boot.entry).toBeGreaterThanOrEqual(0x100000);
    expect(boot.loadStart).toBeGreaterThanOrEqual(0x100000);
    expect(boot.warnings).toEqual([]);
  });
});
