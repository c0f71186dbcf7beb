/**
 * 16-bit real mode, as far as an SMP AP start-up trampoline needs it: segment
 * arithmetic (linear = selector * 16 + offset, 16-bit IP/SP/offset
 * wrap-around), the IVT, and the way out: lgdt with a 16-bit operand size,
 * CR0.PE, a far jump into 32-bit code, then PAE/LME/PG and a far jump to a
 * 64-bit segment. The trampoline's source is realmode/trampoline.S (bytes
 * assembled with GNU as, regeneration command in the file).
 */
import { describe, it, expect } from "vitest";
import { TestCpu } from "../support/longmode.js";
import type { Gpr } from "../../src/vcpu.js";

// realmode/trampoline.S, loaded at 0x8000
const TRAMPOLINE = [
  0xfa, 0x8c, 0xc8, 0x8e, 0xd8, 0xb8, 0x00, 0x20, 0x8e, 0xd0, 0x31, 0xe4,
  0x68, 0x34, 0x12, 0xbb, 0x00, 0x30, 0x8e, 0xc3, 0x26, 0xc7, 0x06, 0x10,
  0x00, 0xef, 0xbe, 0xbb, 0xff, 0xff, 0x26, 0xc6, 0x47, 0x02, 0x5a, 0x8b,
  0x36, 0xbe, 0x00, 0x0f, 0x01, 0x16, 0xb8, 0x00, 0x0f, 0x20, 0xc0, 0x66,
  0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x3e, 0x80, 0x00, 0x00,
  0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0,
  0xbc, 0x00, 0x70, 0x00, 0x00, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f,
  0x22, 0xe0, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0xb9, 0x80,
  0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30,
  0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xea,
  0x7e, 0x80, 0x00, 0x00, 0x18, 0x00, 0x6a, 0x42, 0x48, 0xb8, 0x88, 0x77,
  0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x48, 0x8d, 0x15, 0x2d, 0x00, 0x00,
  0x00, 0xf4, 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
  0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00,
  0x00, 0x9a, 0xaf, 0x00, 0x1f, 0x00, 0x98, 0x80, 0x00, 0xaa, 0x89, 0x67,
];
const BASE = 0x8000;
const HLT_AT = 0x91, GDT_AT = 0x98, DATA16_AT = 0xbe; // offsets in the trampoline (nm)

/** A fresh vCPU in its real-mode reset state (CR0 = 60000010H), CS:IP set like a STARTUP IPI would. */
function realModeCpu(cs: number, ip: number): TestCpu {
  const t = new TestCpu();
  const v = t.vcpu;
  expect(v.get64(v.vm.core.k.VCPU_CR0) & 1n).toBe(0n);
  v.setSeg("cs", { selector: cs, base: BigInt(cs << 4), limit: 0xffff, attr: 0x9b });
  t.rip = BigInt(ip);
  return t;
}
const q = (t: TestCpu, a: number) => new DataView(t.view(a, 8).slice().buffer).getBigUint64(0, true);
const w = (t: TestCpu, a: number) => t.view(a, 2)[0] | (t.view(a, 2)[1] << 8);
const reg = (t: TestCpu, r: Gpr) => t.vcpu.reg(r);

describe("AP start-up trampoline: real mode -> protected mode -> 64-bit mode", () => {
  const t = realModeCpu(0x0800, 0);
  t.write(BASE, new Uint8Array(TRAMPOLINE));
  const exit = t.run(100);
  const k = t.vm.core.k;

  it("halts in 64-bit mode at the trampoline's hlt", () => {
    expect(exit).toBe("HLT");
    expect(t.rip).toBe(BigInt(BASE + HLT_AT + 1));
    const cs = t.vcpu.seg("cs");
    expect(cs.selector).toBe(0x18);
    expect(cs.attr & (1 << 13)).not.toBe(0); // L
    expect(t.vcpu.get64(k.VCPU_EFER) & 0x500n).toBe(0x500n); // LME, LMA
    expect(t.vcpu.get64(k.VCPU_CR0) & 0x80000001n).toBe(0x80000001n); // PG, PE
    expect(t.instructions).toBe(40n); // every instruction of the trampoline, hlt included
  });
  it("real-mode segment arithmetic: selector * 16 + offset, SP and effective addresses wrap at 64 KiB", () => {
    expect(w(t, 0x2fffe)).toBe(0x1234); // push with SP = 0 -> SS:FFFE
    expect(w(t, 0x30010)).toBe(0xbeef); // ES:0010
    expect(t.view(0x30001, 1)[0]).toBe(0x5a); // ES:[BX + 2] with BX = FFFF -> ES:0001
    expect(t.view(0x40001, 1)[0]).toBe(0); // not ES:10001
    expect(reg(t, "rsi") & 0xffffn).toBe(0x6789n); // DS-relative load
  });
  it("lgdt with a 16-bit operand size loads a 24-bit base", () => {
    expect(t.vcpu.get64(k.VCPU_GDTR_BASE)).toBe(BigInt(BASE + GDT_AT));
    expect(t.vcpu.u32(k.VCPU_GDTR_LIMIT)).toBe(0x1f);
  });
  it("64-bit code runs: a 64-bit push, a movabs, a RIP-relative lea", () => {
    expect(reg(t, "rsp")).toBe(0x6ff8n);
    expect(q(t, 0x6ff8)).toBe(0x42n);
    expect(reg(t, "rax")).toBe(0x1122334455667788n);
    expect(reg(t, "rdx")).toBe(BigInt(BASE + DATA16_AT));
  });
});

describe("real mode", () => {
  it("IP wraps at 64 KiB within the code segment (an instruction straddling CS:FFFF)", () => {
    const t = realModeCpu(0x1000, 0xfffe);
    t.write(0x1fffe, new Uint8Array([0xb8, 0x34])); // mov ax, 0x1234 ...
    t.write(0x10000, new Uint8Array([0x12, 0xf4])); // ... whose last byte is at CS:0000; hlt
    t.write(0x0, new Uint8Array([0x99])); // what a fetch forgetting the CS base would read
    expect(t.run(10)).toBe("HLT");
    expect(reg(t, "rax") & 0xffffn).toBe(0x1234n);
    expect(t.rip).toBe(2n);
  });

  it("INT n goes through the IVT (FLAGS, CS, IP pushed; IF/TF cleared) and IRET returns", () => {
    const t = realModeCpu(0x1000, 0x100);
    // mov ax, 0x7000; mov ss, ax; mov sp, 0x100; sti; int 0x21; hlt
    t.write(0x10100, new Uint8Array([0xb8, 0x00, 0x70, 0x8e, 0xd0, 0xbc, 0x00, 0x01, 0xfb, 0xcd, 0x21, 0xf4]));
    t.write(0x21 * 4, new Uint8Array([0x10, 0x00, 0x00, 0x09])); // IVT[0x21] = 0900:0010
    t.write(0x9010, new Uint8Array([0x9c, 0x5b, 0xcf])); // pushf; pop bx; iret
    expect(t.run(20)).toBe("HLT");
    expect(t.rip).toBe(0x10cn);
    expect(t.vcpu.seg("cs").selector).toBe(0x1000);
    expect(reg(t, "rbx") & 0x300n).toBe(0n); // IF and TF clear in the handler
    expect(t.rflags & 0x200n).toBe(0x200n); // IRET restored IF
    expect(reg(t, "rsp") & 0xffffn).toBe(0x100n);
    const frame = 0x70000 + 0x100 - 6;
    expect([w(t, frame), w(t, frame + 2), w(t, frame + 4) & 0x200]).toEqual([0x10b, 0x1000, 0x200]);
  });

  it("far call and far return through real-mode segments", () => {
    const t = realModeCpu(0x1000, 0x100);
    t.vcpu.setSeg("ss", { selector: 0x7000, base: 0x70000n, limit: 0xffff, attr: 0x93 });
    t.vcpu.setReg("rsp", 0x100n);
    t.write(0x10100, new Uint8Array([0x9a, 0x20, 0x00, 0x00, 0x09, 0xf4])); // call 0900:0020; hlt
    t.write(0x9020, new Uint8Array([0x8c, 0xc9, 0xcb])); // mov cx, cs; retf
    expect(t.run(10)).toBe("HLT");
    expect(reg(t, "rcx") & 0xffffn).toBe(0x900n);
    expect(t.vcpu.seg("cs")).toMatchObject({ selector: 0x1000, base: 0x10000n });
    expect(t.rip).toBe(0x106n);
    expect([w(t, 0x700fc), w(t, 0x700fe)]).toEqual([0x105, 0x1000]);
  });

  it("an IVT too short for the exception is a triple fault (the classic reset trick)", () => {
    const t = realModeCpu(0x1000, 0x100);
    t.vcpu.u32(t.vm.core.k.VCPU_IDTR_LIMIT, 0);
    t.write(0x10100, new Uint8Array([0xcc])); // int3
    expect(t.run(10)).toBe("SHUTDOWN");
  });
});
