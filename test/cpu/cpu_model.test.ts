/**
 * -cpu: a feature the model leaves out reads as absent in CPUID and its
 * control bit raises #GP; the default model advertises and honours them.
 */
import { describe, it, expect } from "vitest";
import { SysCpu } from "../support/syscpu.js";
import { parseCpuModel } from "../../src/cpu_model.js";

const GP = 13;

function cpu(model: string): SysCpu {
  const c = new SysCpu().setupLong();
  c.vcpu.u32(c.k.VCPU_FEATURES, parseCpuModel(model, c.k));
  return c;
}
// mov rax, cr4; or eax, BIT; mov cr4, rax; hlt
const setCr4 = (bit: number) => [0x0f, 0x20, 0xe0, 0x0d, bit & 0xff, (bit >> 8) & 0xff, (bit >> 16) & 0xff, (bit >>> 24) & 0xff, 0x0f, 0x22, 0xe0, 0xf4];
// mov ecx, 0xc0000080; rdmsr; or eax, 0x800; wrmsr; hlt
const setNxe = [0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x08, 0x00, 0x00, 0x0f, 0x30, 0xf4];
function cpuid(c: SysCpu, leaf: number, sub = 0): { b: bigint; d: bigint } {
  c.unhalt();
  c.code([0xb8, leaf & 0xff, (leaf >> 8) & 0xff, (leaf >> 16) & 0xff, leaf >>> 24, 0xb9, sub, 0, 0, 0, 0x0f, 0xa2, 0xf4]);
  expect(c.run()).toBe("HLT");
  return { b: c.reg("rbx"), d: c.reg("rdx") };
}

describe("-cpu models and features", () => {
  it("shadow86 (default) advertises SMEP, SMAP, NX and 1 GiB pages", () => {
    const c = cpu("shadow86");
    expect(cpuid(c, 7).b & ((1n << 7n) | (1n << 20n))).toBe((1n << 7n) | (1n << 20n));
    expect(cpuid(c, 0x80000001).d & ((1n << 20n) | (1n << 26n))).toBe((1n << 20n) | (1n << 26n));
  });
  it("qemu64 advertises NX only, and setting CR4.SMEP or CR4.SMAP raises #GP", () => {
    const c = cpu("qemu64");
    expect(cpuid(c, 7).b & ((1n << 7n) | (1n << 20n))).toBe(0n);
    expect(cpuid(c, 0x80000001).d & ((1n << 20n) | (1n << 26n))).toBe(1n << 20n);
    for (const bit of [1 << 20, 1 << 21]) {
      const d = cpu("qemu64");
      d.code(setCr4(bit));
      expect(d.run()).toBe("HLT");
      expect(d.vector()).toBe(GP);
    }
  });
  it("shadow86,-nx makes EFER.NXE a reserved bit (#GP on wrmsr)", () => {
    const c = cpu("shadow86,-nx");
    c.code(setNxe);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    const ok = cpu("shadow86");
    ok.code(setNxe);
    expect(ok.run()).toBe("HLT");
    expect(ok.vector()).toBe(-1);
  });
  it("refuses unknown models, unknown features and features shadow86 does not implement", () => {
    const k = new SysCpu().k;
    expect(() => parseCpuModel("pentium", k)).toThrow(/unknown CPU model "pentium"/);
    expect(() => parseCpuModel("shadow86,+pku", k)).toThrow(/"pku" is not implemented/);
    expect(() => parseCpuModel("shadow86,+frob", k)).toThrow(/unknown CPU feature "frob"/);
    expect(parseCpuModel("qemu64,-pku", k)).toBe(k.FEAT_NX);
    expect(parseCpuModel("qemu64,+smep,pdpe1gb=on", k)).toBe(k.FEAT_NX | k.FEAT_SMEP | k.FEAT_PDPE1GB);
  });
});
