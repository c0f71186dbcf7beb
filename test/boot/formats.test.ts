/**
 * Every multiboot image format boots on the real machine: ELF32, ELF64 (QEMU
 * refuses these; we accept them) and the a.out kludge. Each image is a few
 * bytes of 32-bit code that prints on COM1 and exits through isa-debug-exit,
 * plus a check that -append reaches the kernel and the bss is zeroed.
 */
import { describe, it, expect } from "vitest";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { buildElf, buildAout } from "./elf_builder.js";

const LOAD = 0x100000;
// mov edx,0x3f8; mov al,'O'; out dx,al; mov al,'K'; out dx,al;
// cmp byte [bss], 0; jne fail; mov al,0x10; out 0xf4,al; hlt; fail: mov al,0x11; out 0xf4,al; hlt
function code(bss: number): number[] {
  return [
    0xba, 0xf8, 0x03, 0x00, 0x00, 0xb0, 0x4f, 0xee, 0xb0, 0x4b, 0xee,
    0x80, 0x3d, bss & 0xff, (bss >> 8) & 0xff, (bss >> 16) & 0xff, bss >>> 24, 0x00, 0x75, 0x05,
    0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xb0, 0x11, 0xe6, 0xf4, 0xf4,
  ];
}

function boot(image: Uint8Array, append?: string): { serial: string; status: number; reason: string; cmdline: string } {
  let serial = "";
  const m = new Machine({ module: loadCoreModule(), ramSize: 16 << 20, kernel: image, kernelPath: "k.elf", append, onSerial: (b) => { serial += String.fromCharCode(b); } });
  const r = m.run();
  return { serial, status: r.status, reason: r.reason, cmdline: m.boot.cmdline };
}

describe("multiboot image formats boot end to end", () => {
  const BSS = LOAD + 0x1000;
  it("ELF32 with a zero-filled bss larger than the file", () => {
    const img = buildElf({ cls: 32, entry: LOAD, segments: [{ paddr: LOAD, data: new Uint8Array(code(BSS)), memsz: 0x2000, flags: 7 }] }).bytes;
    expect(boot(img)).toMatchObject({ serial: "OK", status: 33, reason: "debug-exit" });
  });
  it("ELF64", () => {
    const img = buildElf({ cls: 64, entry: LOAD, segments: [{ paddr: LOAD, data: new Uint8Array(code(BSS)), memsz: 0x2000, flags: 7 }] }).bytes;
    expect(boot(img)).toMatchObject({ serial: "OK", status: 33 });
  });
  it("the a.out kludge (header addresses, bss_end_addr)", () => {
    const text = new Uint8Array(64 + 32);
    text.set(code(LOAD + 0x800), 32); // entry just after the 32-byte header
    const img = buildAout({ loadAddr: LOAD, text, headerOffset: 0, bssEndAddr: LOAD + 0x1000, flags: 0x10000 });
    expect(boot(img)).toMatchObject({ serial: "OK", status: 33 });
  });
  it("passes -append as QEMU does: the kernel's path, a space, the string", () => {
    const img = buildElf({ cls: 32, entry: LOAD, segments: [{ paddr: LOAD, data: new Uint8Array(code(BSS)), memsz: 0x2000, flags: 7 }] }).bytes;
    expect(boot(img, "console=ttyS0 x=1").cmdline).toBe("k.elf console=ttyS0 x=1");
  });
});
