/**
 * System-level behaviour of the interpreter, judged by the Intel SDM (vol. 3,
 * ch. 5 and 6, and the instruction pages): event delivery through the IDT in
 * long and protected mode, error codes, #DF and triple fault, privilege
 * checks, stack switches, IRET, SYSCALL/SYSRET, call gates, the I/O bitmap.
 * Every handler in the IDT is a `hlt` stub, so a test sees which vector was
 * delivered and the frame the CPU pushed (test/support/syscpu.ts).
 * Code bytes were assembled with GNU as; the source is in the comments.
 */
import { describe, it, expect } from "vitest";
import {
  SysCpu, SEL, CODE_ADDR, STUBS, KSTACK, RSP0, IST1, USTACK, TSS, GDT, A, desc,
} from "../support/syscpu.js";

const C = CODE_ADDR;
const GP = 13, NP = 11, SS = 12, TS = 10, DF = 8, UD = 6, DB = 1;
const ascii = (v: bigint) => String.fromCharCode(...[0, 8, 16, 24].map((s) => Number((v >> BigInt(s)) & 0xffn)));

describe("cpuid", () => {
  it("leaf 0 names the vendor GenuineIntel", () => {
    const c = new SysCpu().setupLong();
    c.code([0x31, 0xc0, 0x0f, 0xa2, 0xf4]); // xor eax,eax; cpuid; hlt
    expect(c.run()).toBe("HLT");
    expect(ascii(c.reg("rbx")) + ascii(c.reg("rdx")) + ascii(c.reg("rcx"))).toBe("GenuineIntel");
    expect(c.reg("rax")).toBeGreaterThanOrEqual(1n);
  });
});

describe("triple fault", () => {
  it("an exception with an IDT limit of 0 shuts the vCPU down (SHUTDOWN exit, the vector recorded)", () => {
    const c = new SysCpu().setupLong();
    c.vcpu.u32(c.k.VCPU_IDTR_LIMIT, 0);
    c.code([0x0f, 0x0b]); // ud2
    expect(c.run()).toBe("SHUTDOWN");
    expect(c.exitVector).toBe(UD);
    expect(c.rip).toBe(BigInt(C)); // nothing was delivered
    expect(c.vcpu.stats().triple_faults).toBe(1n);
  });
  it("#GP whose gate and #DF's gate are both not present: #NP, #DF, then shutdown", () => {
    const c = new SysCpu().setupLong();
    c.gate(GP, { p: false });
    c.gate(DF, { p: false });
    c.code([0xb8, 0x80, 0, 0, 0, 0x8e, 0xd8]); // mov eax, 0x80; mov ds, ax (beyond the GDT)
    expect(c.run()).toBe("SHUTDOWN");
    expect(c.exitVector).toBe(GP);
  });
  it("in protected mode too", () => {
    const c = new SysCpu().setupProtected();
    c.vcpu.u32(c.k.VCPU_IDTR_LIMIT, 8 * 6 - 1); // vectors 0..5 only
    c.code([0x0f, 0x0b]); // ud2
    expect(c.run()).toBe("SHUTDOWN");
    expect(c.exitVector).toBe(UD);
  });
});

describe("long mode delivery", () => {
  it("#GP(0) on rdmsr of an unknown MSR at CPL 0, frame on the current stack, 16-byte aligned", () => {
    const c = new SysCpu().setupLong();
    c.setReg("rax", 0x1111); c.setReg("rdx", 0x2222);
    c.setReg("rsp", KSTACK - 8); // misaligned on purpose
    c.code([0xb9, 0x78, 0x56, 0x34, 0x12, 0x0f, 0x32, 0xf4]); // mov ecx, 0x12345678; rdmsr; hlt
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    const f = c.frame64(true);
    expect(f).toMatchObject({ err: 0n, rip: BigInt(C + 5), cs: BigInt(SEL.KCODE64), ss: BigInt(SEL.KDATA), rsp: BigInt(KSTACK - 8) });
    expect(f.at).toBe(KSTACK - 16 - 48);
    expect([c.reg("rax"), c.reg("rdx")]).toEqual([0x1111n, 0x2222n]);
  });

  it("hlt at CPL 3 is #GP(0), delivered on TSS.RSP0 with a null SS", () => {
    const c = new SysCpu().setupLong().toUser();
    c.code([0xf4]); // hlt
    c.rflags = 0x202n;
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    const f = c.frame64(true);
    expect(f).toEqual({ err: 0n, rip: BigInt(C), cs: BigInt(SEL.UCODE64 | 3), rflags: 0x202n, rsp: BigInt(USTACK), ss: BigInt(SEL.UDATA | 3), at: RSP0 - 48 });
    expect([c.sel("cs"), c.sel("ss")]).toEqual([SEL.KCODE64, 0]);
    expect(c.rflags & 0x200n).toBe(0n); // interrupt gate cleared IF
  });

  it("the ring-0 frame of a ring-3 event is pushed with ring-0 privilege (RSP0 on a supervisor-only page)", () => {
    const c = new SysCpu().setupLong().toUser();
    c.supervisorOnly(RSP0 - 0x1000);
    c.gate(0x80, { dpl: 3 });
    c.code([0xcd, 0x80]); // int 0x80
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(0x80);
    expect(c.frame64(false)).toMatchObject({ rip: BigInt(C + 2), cs: 0x2bn, at: RSP0 - 40 });
  });

  it("a #PF pushing the ring-0 frame is a supervisor fault (U/S = 0)", () => {
    const c = new SysCpu().setupLong().toUser();
    c.setQ(TSS + 4, 0x300000n); // RSP0 beyond the 2 MiB mapped
    c.gate(14, { ist: 1 });
    c.code([0xf4]); // hlt: #GP, whose frame push #PFs; contributory then #PF is handled serially
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(14);
    const f = c.frame64(true);
    expect(f.err).toBe(2n); // write, supervisor, not present
    expect(c.vcpu.get64(c.k.VCPU_CR2)).toBe(0x300000n - 8n);
    expect(f.rip).toBe(BigInt(C));
  });

  it("#DF: #GP through a not-present gate escalates to #DF (error 0) on IST1", () => {
    const c = new SysCpu().setupLong();
    c.gate(GP, { p: false });
    c.gate(DF, { ist: 1 });
    c.code([0xb8, 0x80, 0, 0, 0, 0x8e, 0xd8]); // mov eax, 0x80; mov ds, ax
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(DF);
    const f = c.frame64(true);
    expect(f).toMatchObject({ err: 0n, rip: BigInt(C + 5), at: IST1 - 48 });
    expect(c.sel("ds")).toBe(SEL.KDATA);
  });

  it("EXT bit: a not-present gate for a CPU exception gives #NP(vector*8 + 3); for INT n, #NP(vector*8 + 2)", () => {
    let c = new SysCpu().setupLong();
    c.gate(UD, { p: false });
    c.code([0x0f, 0x0b]); // ud2
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(NP);
    expect(c.frame64(true).err).toBe(BigInt(UD * 8 + 3));
    c = new SysCpu().setupLong();
    c.gate(UD, { p: false });
    c.code([0xcd, 0x06]); // int 6
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(NP);
    expect(c.frame64(true)).toMatchObject({ err: BigInt(UD * 8 + 2), rip: BigInt(C) });
  });

  it("INT3 and INT n check the gate DPL (#GP(vector*8 + 2)); INT1 does not", () => {
    let c = new SysCpu().setupLong().toUser();
    c.code([0xcc]); // int3, gate DPL 0
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true)).toMatchObject({ err: 0x1an, rip: BigInt(C) });
    c = new SysCpu().setupLong().toUser();
    c.code([0xcd, 0x40]); // int 0x40
    expect(c.run()).toBe("HLT");
    expect(c.frame64(true)).toMatchObject({ err: 0x202n, rip: BigInt(C) });
    c = new SysCpu().setupLong().toUser();
    c.code([0xf1]); // int1 (icebp)
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(DB);
    expect(c.frame64(false)).toMatchObject({ rip: BigInt(C + 1), cs: BigInt(SEL.UCODE64 | 3) });
    c = new SysCpu().setupLong().toUser();
    c.gate(3, { dpl: 3 });
    c.code([0xcc]); // int3 through a DPL-3 gate: a trap, RIP after it
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(3);
    expect(c.frame64(false).rip).toBe(BigInt(C + 1));
  });

  it("#TS(TR selector) when an IST slot lies beyond the TSS limit", () => {
    const c = new SysCpu().setupLong();
    c.vcpu.setSeg("tr", { selector: SEL.TSS, base: BigInt(TSS), limit: 0x2b, attr: 0xb | A.P }); // RSP0-2 and IST1 only
    c.gate(0x41, { ist: 2 });
    c.code([0xcd, 0x41]); // int 0x41
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(TS);
    expect(c.frame64(true)).toMatchObject({ err: BigInt(SEL.TSS), rip: BigInt(C) });
  });

  it("non-canonical addresses: #GP(0) for data (CR2 untouched), #SS(0) for the stack", () => {
    let c = new SysCpu().setupLong();
    c.vcpu.set64(c.k.VCPU_CR2, 0x1234n);
    c.setReg("rcx", 0x0000800000000000n);
    c.code([0x48, 0x8b, 0x01]); // mov rax, [rcx]
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true).err).toBe(0n);
    expect(c.vcpu.get64(c.k.VCPU_CR2)).toBe(0x1234n);
    c = new SysCpu().setupLong();
    c.gate(SS, { ist: 1 }); // the current stack is unusable
    c.setReg("rsp", 0x0000800000000010n);
    c.code([0x50]); // push rax
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(SS);
    expect(c.frame64(true)).toMatchObject({ err: 0n, rsp: 0x0000800000000010n, at: IST1 - 48 });
  });

  it("MOV SS blocks an external interrupt for one instruction", () => {
    const c = new SysCpu().setupLong();
    c.setReg("rax", SEL.KDATA);
    c.code([0x8e, 0xd0, 0x90, 0xf4]); // mov ss, ax; nop; hlt
    c.rflags = 0x202n;
    expect(c.run(1)).toBe("BUDGET");
    c.vcpu.i32(c.k.VCPU_PENDING_IRQ, 0x20);
    expect(c.run(1)).toBe("BUDGET"); // the nop runs in the shadow
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(0x20);
    expect(c.frame64(false).rip).toBe(BigInt(C + 3));
  });
});

describe("compatibility mode", () => {
  it("an interrupt from 32-bit code reads an IDT above 4 GiB with 64-bit linear addresses", () => {
    const c = new SysCpu().setupLong().toUser();
    c.vcpu.setSeg("cs", { selector: SEL.UCODE32 | 3, base: 0n, limit: 0xffffffff, attr: 0xb | A.S | A.dpl(3) | A.P | A.DB | A.G });
    // linear 0x1_0000_6000 -> the IDT at physical 0x6000; linear 0x6000 -> an empty page
    const PDPT = 0x2000, PD2 = 0x20000, PT2 = 0x21000;
    c.setQ(PDPT + 4 * 8, BigInt(PD2) | 7n);
    c.setQ(PD2, BigInt(PT2) | 7n);
    c.setQ(PT2 + 6 * 8, 0x6000n | 0x67n);
    c.setQ(0x4000 + 6 * 8, 0x7000n | 0x67n);
    c.vcpu.set64(c.k.VCPU_IDTR_BASE, 0x100006000n);
    c.vcpu.flushTlb();
    for (let v = 0; v < 256; v++) c.gate(v); // (written through the physical address)
    c.gate(0x80, { dpl: 3 });
    c.code([0xcd, 0x80]); // int 0x80
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(0x80);
    expect(c.frame64(false)).toMatchObject({ rip: BigInt(C + 2), cs: BigInt(SEL.UCODE32 | 3), rsp: BigInt(USTACK), ss: BigInt(SEL.UDATA | 3), at: RSP0 - 40 });
  });
});

describe("MSRs and control registers", () => {
  it("an invalid memory type in IA32_PAT is #GP(0)", () => {
    const c = new SysCpu().setupLong();
    const pat = c.vcpu.get64(c.k.VCPU_PAT);
    c.code([0xb9, 0x77, 0x02, 0x00, 0x00, 0xb8, 0x02, 0x00, 0x00, 0x00, 0x31, 0xd2, 0x0f, 0x30, 0xf4]); // wrmsr(0x277, 2)
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.vcpu.get64(c.k.VCPU_PAT)).toBe(pat);
  });
  it("CR3 bits above MAXPHYADDR (bit 63 without PCIDs) are #GP(0) in long mode", () => {
    const c = new SysCpu().setupLong();
    c.code([0x48, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xd8, 0xf4]); // mov rax, 1<<63 | 0x1000; mov cr3, rax
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
  });
});

describe("IRET", () => {
  it("iretq to ring 3 loads CS/SS/RSP/RFLAGS and nulls DS/ES/FS/GS holding ring-0 segments", () => {
    const c = new SysCpu().setupLong();
    c.write(C + 0x100, [0xf4]); // ring-3 hlt
    // push 0x23; push 0xe000; push 0x202; push 0x2b; push 0x30100; iretq
    c.code([0x6a, 0x23, 0x68, 0x00, 0xe0, 0x00, 0x00, 0x68, 0x02, 0x02, 0x00, 0x00, 0x6a, 0x2b, 0x68, 0x00, 0x01, 0x03, 0x00, 0x48, 0xcf]);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true)).toMatchObject({ err: 0n, rip: BigInt(C + 0x100), cs: 0x2bn, rflags: 0x202n, rsp: 0xe000n, ss: 0x23n });
    for (const s of ["ds", "es", "fs", "gs"] as const) expect(c.sel(s)).toBe(0);
  });

  it("iretq at the same privilege still pops SS:RSP (64-bit mode)", () => {
    const c = new SysCpu().setupLong();
    // push 0x10; push 0xa800; pushfq; push 0x08; lea rcx,[rip+3]; push rcx; iretq; hlt
    c.code([0x48, 0x89, 0xe0, 0x6a, 0x10, 0x68, 0x00, 0xa8, 0x00, 0x00, 0x9c, 0x6a, 0x08, 0x48, 0x8d, 0x0d, 0x03, 0x00, 0x00, 0x00, 0x51, 0x48, 0xcf, 0xf4]);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(-1);
    expect(c.reg("rsp")).toBe(0xa800n);
    expect(c.rip).toBe(BigInt(C + 24));
    expect(c.sel("ds")).toBe(SEL.KDATA);
  });

  it("iretq to a non-canonical RIP is #GP(0) and changes nothing", () => {
    const c = new SysCpu().setupLong();
    const sp = KSTACK - 40;
    c.setQ(sp, 0x0000800000000000n); c.setQ(sp + 8, BigInt(SEL.UCODE64 | 3)); c.setQ(sp + 16, 2n); c.setQ(sp + 24, BigInt(USTACK)); c.setQ(sp + 32, BigInt(SEL.UDATA | 3));
    c.setReg("rsp", sp);
    c.code([0x48, 0xcf]); // iretq
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true)).toMatchObject({ err: 0n, rip: BigInt(C), cs: BigInt(SEL.KCODE64), rsp: BigInt(sp) });
  });
});

describe("SYSCALL / SYSRET", () => {
  const LSTAR = C + 0x200;
  function setup(): SysCpu {
    const c = new SysCpu().setupLong().toUser();
    c.vcpu.set64(c.k.VCPU_STAR, (BigInt(SEL.UCODE32) << 48n) | (BigInt(SEL.KCODE64) << 32n));
    c.vcpu.set64(c.k.VCPU_LSTAR, BigInt(LSTAR));
    c.vcpu.set64(c.k.VCPU_SFMASK, 0x600n); // IF DF
    c.write(LSTAR, [0xf4, 0x48, 0x0f, 0x07]); // hlt; sysretq
    return c;
  }
  it("syscall enters ring 0 at LSTAR; sysretq returns to 64-bit ring 3 with RFLAGS from R11", () => {
    const c = setup();
    c.code([0x0f, 0x05, 0xf4]); // syscall; hlt
    c.rflags = 0x602n;
    expect(c.run()).toBe("HLT");
    expect(c.rip).toBe(BigInt(LSTAR + 1));
    expect([c.sel("cs"), c.sel("ss")]).toEqual([SEL.KCODE64, SEL.KDATA]);
    expect([c.reg("rcx"), c.reg("r11"), c.rflags]).toEqual([BigInt(C + 2), 0x602n, 0x2n]);
    c.unhalt();
    expect(c.run()).toBe("HLT"); // sysretq, then the ring-3 hlt faults
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true)).toMatchObject({ rip: BigInt(C + 2), cs: BigInt(SEL.UCODE64 | 3), ss: BigInt(SEL.UDATA | 3), rflags: 0x602n });
  });
  it("sysret at CPL 3 is #GP(0); syscall in compatibility mode or with EFER.SCE = 0 is #UD", () => {
    let c = setup();
    c.code([0x48, 0x0f, 0x07]); // sysretq
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    c = setup();
    c.vcpu.setSeg("cs", { selector: SEL.UCODE32 | 3, base: 0n, limit: 0xffffffff, attr: 0xb | A.S | A.dpl(3) | A.P | A.DB | A.G });
    c.code([0x0f, 0x05]); // syscall (compatibility mode)
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(UD);
    c = setup();
    c.vcpu.set64(c.k.VCPU_EFER, 0xd00n);
    c.code([0x0f, 0x05]);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(UD);
  });
});

describe("SYSENTER / SYSEXIT (protected mode)", () => {
  it("sysenter enters ring 0 at SYSENTER_EIP/ESP with CS = SYSENTER_CS, SS = +8, IF cleared; sysexit returns to ring 3 (CS +16, SS +24)", () => {
    const c = new SysCpu().setupProtected().toUser();
    const KE = C + 0x200;
    c.write(KE, [0xf4, 0x0f, 0x35]); // hlt; sysexit
    c.vcpu.set64(c.k.VCPU_SYSENTER_CS, BigInt(SEL.KCODE32));
    c.vcpu.set64(c.k.VCPU_SYSENTER_EIP, BigInt(KE));
    c.vcpu.set64(c.k.VCPU_SYSENTER_ESP, BigInt(RSP0));
    c.code([0x0f, 0x34, 0xf4]); // sysenter; hlt
    c.rflags = 0x202n;
    expect(c.run()).toBe("HLT");
    expect([c.rip, c.reg("rsp"), c.rflags & 0x200n]).toEqual([BigInt(KE + 1), BigInt(RSP0), 0n]);
    expect([c.sel("cs"), c.sel("ss")]).toEqual([SEL.KCODE32, SEL.KCODE32 + 8]);
    c.setReg("rdx", C + 2); c.setReg("rcx", USTACK - 64);
    c.unhalt();
    expect(c.run()).toBe("HLT"); // sysexit, then the ring-3 hlt faults
    expect(c.vector()).toBe(GP);
    expect([c.d(RSP0 - 20), c.d(RSP0 - 16), c.d(RSP0 - 8), c.d(RSP0 - 4)]).toEqual([C + 2, (SEL.KCODE32 + 16) | 3, USTACK - 64, (SEL.KCODE32 + 24) | 3]);
  });
  it("sysexit at CPL 3 is #GP(0)", () => {
    const c = new SysCpu().setupProtected().toUser();
    c.vcpu.set64(c.k.VCPU_SYSENTER_CS, BigInt(SEL.KCODE32));
    c.code([0x0f, 0x35]);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
  });
});

describe("I/O permission", () => {
  it("CPL 3 with IOPL 0 and no I/O bitmap: #GP(0)", () => {
    const c = new SysCpu().setupLong().toUser();
    c.setReg("rdx", 0x80);
    c.code([0xec]); // in al, dx
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
  });
  it("the TSS I/O bitmap allows exactly the ports whose bits are clear", () => {
    const c = new SysCpu().setupLong().toUser();
    const bitmap = TSS + 0x68;
    c.t.vm.fill(bitmap, 8192 + 1, 0xff);
    c.write(bitmap + 0x10, [0xfe]); // port 0x80 allowed, 0x81 not
    c.vcpu.setSeg("tr", { selector: SEL.TSS, base: BigInt(TSS), limit: 0x68 + 8192, attr: 0xb | A.P });
    c.setReg("rdx", 0x80);
    c.code([0xec, 0xec]); // in al, dx; in al, dx
    expect(c.run()).toBe("IO");
    expect(c.vcpu.u32(c.k.EXIT_IO_PORT)).toBe(0x80);
    c.vcpu.completeIo();
    expect(c.run(1)).toBe("BUDGET"); // the IN restarts and completes with the data
    expect(c.rip).toBe(BigInt(C + 1));
    c.setReg("rdx", 0x81);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true).rip).toBe(BigInt(C + 1));
  });
});

describe("LTR", () => {
  it("marks an available TSS busy; loading a busy one is #GP(selector)", () => {
    const c = new SysCpu().setupLong();
    c.setQ(GDT + SEL.TSS, c.q(GDT + SEL.TSS) & ~(2n << 40n)); // type 9: available
    c.vcpu.setSeg("tr", { selector: 0, base: 0n, limit: 0, attr: 0 });
    c.code([0x66, 0xb8, 0x30, 0x00, 0x0f, 0x00, 0xd8, 0xf4]); // mov ax, 0x30; ltr ax; hlt
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(-1);
    expect(c.sel("tr")).toBe(SEL.TSS);
    expect((c.q(GDT + SEL.TSS) >> 40n) & 0xfn).toBe(0xbn);
    c.code([0x66, 0xb8, 0x30, 0x00, 0x0f, 0x00, 0xd8, 0xf4]);
    c.unhalt();
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true).err).toBe(BigInt(SEL.TSS));
  });
});

describe("call gates", () => {
  it("64-bit: call far from ring 3 through a DPL-3 gate to ring 0 (RSP0, null SS), retfq back", () => {
    const c = new SysCpu().setupLong().toUser();
    const KG = C + 0x400;
    c.write(KG, [0xf4, 0x48, 0xcb]); // hlt; retfq
    c.setQ(GDT + SEL.GATE, BigInt(KG & 0xffff) | (BigInt(SEL.KCODE64) << 16n) | (0xecn << 40n) | (BigInt(KG >>> 16) << 48n));
    c.setQ(GDT + SEL.GATE + 8, 0n);
    c.code([0xff, 0x1d, 0x10, 0x00, 0x00, 0x00, 0xf4]); // call fword ptr [rip+0x10]; hlt
    c.setD(C + 0x16, 0); c.setW(C + 0x1a, SEL.GATE | 3);
    expect(c.run()).toBe("HLT");
    expect(c.rip).toBe(BigInt(KG + 1));
    expect([c.sel("cs"), c.sel("ss")]).toEqual([SEL.KCODE64, 0]);
    const sp = Number(c.reg("rsp"));
    expect(sp).toBe(RSP0 - 32);
    expect([c.q(sp), c.q(sp + 8), c.q(sp + 16), c.q(sp + 24)]).toEqual([BigInt(C + 6), 0x2bn, BigInt(USTACK), 0x23n]);
    c.unhalt();
    expect(c.run()).toBe("HLT"); // back in ring 3: its hlt faults
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true)).toMatchObject({ rip: BigInt(C + 6), cs: 0x2bn, rsp: BigInt(USTACK), ss: 0x23n });
  });
});

describe("far transfers in 64-bit mode", () => {
  it("call far through a DPL-0 gate at CPL 0 pushes CS:RIP as quadwords on the current stack; retfq returns", () => {
    const c = new SysCpu().setupLong();
    const KG = C + 0x400;
    c.write(KG, [0xf4, 0x48, 0xcb]); // hlt; retfq
    c.setQ(GDT + SEL.GATE, BigInt(KG & 0xffff) | (BigInt(SEL.KCODE64) << 16n) | (0x8cn << 40n) | (BigInt(KG >>> 16) << 48n));
    c.setQ(GDT + SEL.GATE + 8, 0n);
    c.code([0xff, 0x1d, 0x10, 0x00, 0x00, 0x00, 0xf4]); // call fword ptr [rip+0x10]; hlt
    c.setD(C + 0x16, 0); c.setW(C + 0x1a, SEL.GATE);
    expect(c.run()).toBe("HLT");
    expect(c.rip).toBe(BigInt(KG + 1));
    expect(Number(c.reg("rsp"))).toBe(KSTACK - 16);
    expect([c.q(KSTACK - 16), c.q(KSTACK - 8)]).toEqual([BigInt(C + 6), BigInt(SEL.KCODE64)]);
    expect(c.sel("ss")).toBe(SEL.KDATA);
    c.unhalt();
    expect(c.run()).toBe("HLT");
    expect([c.rip, c.reg("rsp"), BigInt(c.sel("cs"))]).toEqual([BigInt(C + 7), BigInt(KSTACK), BigInt(SEL.KCODE64)]);
  });
  it("a gate whose upper half has a non-zero type is #GP(gate selector)", () => {
    const c = new SysCpu().setupLong();
    c.setQ(GDT + SEL.GATE, BigInt(SEL.KCODE64) << 16n | (0x8cn << 40n));
    c.setQ(GDT + SEL.GATE + 8, 0xcn << 8n); // type 0xc in the upper half: must be 0
    c.code([0xff, 0x1d, 0x10, 0x00, 0x00, 0x00, 0xf4]);
    c.setD(C + 0x16, 0); c.setW(C + 0x1a, SEL.GATE);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.frame64(true)).toMatchObject({ err: BigInt(SEL.GATE), rsp: BigInt(KSTACK) });
  });
});

describe("protected mode delivery", () => {
  it("no privilege change: EFLAGS, CS, EIP on the current stack", () => {
    const c = new SysCpu().setupProtected();
    c.code([0x0f, 0x0b]); // ud2
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(UD);
    expect(Number(c.reg("rsp"))).toBe(KSTACK - 12);
    expect([c.d(KSTACK - 12), c.d(KSTACK - 8), c.d(KSTACK - 4)]).toEqual([C, SEL.KCODE32, 2]);
  });
  it("32-bit gate from CPL 3: SS:ESP from the TSS, then SS, ESP, EFLAGS, CS, EIP", () => {
    const c = new SysCpu().setupProtected().toUser();
    c.gate(0x80, { dpl: 3 });
    c.rflags = 0x202n;
    c.code([0xcd, 0x80]); // int 0x80
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(0x80);
    expect([c.sel("ss"), Number(c.reg("rsp"))]).toEqual([SEL.KDATA, RSP0 - 20]);
    expect([0, 4, 8, 12, 16].map((o) => c.d(RSP0 - 20 + o))).toEqual([C + 2, SEL.UCODE32 | 3, 0x202, USTACK, SEL.UDATA | 3]);
  });
  it("16-bit gate from CPL 3: a frame of words", () => {
    const c = new SysCpu().setupProtected().toUser();
    c.gate(0x81, { dpl: 3, type: 0x6 });
    c.code([0xcd, 0x81]); // int 0x81
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(0x81);
    expect(Number(c.reg("rsp"))).toBe(RSP0 - 10);
    expect([0, 2, 4, 6, 8].map((o) => c.w(RSP0 - 10 + o))).toEqual([(C + 2) & 0xffff, SEL.UCODE32 | 3, 2, USTACK & 0xffff, SEL.UDATA | 3]);
  });
  it("#TS(SS selector) when the TSS's SS for the new ring is not a ring-1 data segment", () => {
    const c = new SysCpu().setupProtected().toUser();
    c.setD(TSS + 12, RSP0); c.setD(TSS + 16, SEL.UDATA); // SS1:ESP1 with a DPL-3 SS
    c.gate(0x82, { dpl: 3, sel: SEL.R1CODE32 });
    c.code([0xcd, 0x82]); // int 0x82
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(TS);
    expect([c.d(RSP0 - 24), c.d(RSP0 - 20)]).toEqual([SEL.UDATA, C]); // error code, EIP of the int
  });
  it("iretd to ring 3 and far jumps: non-conforming DPL != CPL is #GP(selector), not present is #NP(selector)", () => {
    let c = new SysCpu().setupProtected();
    c.write(C + 0x100, [0xf4]);
    // push 0x23; push 0xe000; push 0x202; push 0x1b; push 0x30100; iretd
    c.code([0x6a, 0x23, 0x68, 0x00, 0xe0, 0x00, 0x00, 0x68, 0x02, 0x02, 0x00, 0x00, 0x6a, 0x1b, 0x68, 0x00, 0x01, 0x03, 0x00, 0xcf]);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect([0, 4, 8, 12, 16, 20].map((o) => c.d(RSP0 - 24 + o))).toEqual([0, C + 0x100, 0x1b, 0x202, USTACK, 0x23]);
    expect(c.sel("ds")).toBe(0);
    c = new SysCpu().setupProtected();
    c.code([0xea, 0x00, 0x01, 0x03, 0x00, 0x1b, 0x00]); // jmp 0x1b:0x30100
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP);
    expect(c.d(KSTACK - 16)).toBe(0x18);
    c = new SysCpu().setupProtected();
    c.gdt(SEL.GATE, desc(0xb, 0, { db: true, p: false }));
    c.code([0x9a, 0x00, 0x01, 0x03, 0x00, SEL.GATE, 0x00]); // call 0x58:0x30100
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(NP);
    expect(c.d(KSTACK - 16)).toBe(SEL.GATE);
    expect(Number(c.reg("rsp"))).toBe(KSTACK - 16); // nothing pushed by the failed call
  });
  it("32-bit call gate from ring 3 copies its parameters to the ring-0 stack; retf 8 returns and releases them", () => {
    const c = new SysCpu().setupProtected().toUser();
    const KG = C + 0x400;
    c.write(KG, [0xf4, 0xca, 0x08, 0x00]); // hlt; retf 8
    c.setQ(GDT + SEL.GATE, BigInt(KG & 0xffff) | (BigInt(SEL.KCODE32) << 16n) | (2n << 32n) | (0xecn << 40n) | (BigInt(KG >>> 16) << 48n));
    // push 0x11111111; push 0x22222222; call 0x5b:0; hlt
    c.code([0x68, 0x11, 0x11, 0x11, 0x11, 0x68, 0x22, 0x22, 0x22, 0x22, 0x9a, 0x00, 0x00, 0x00, 0x00, 0x5b, 0x00, 0xf4]);
    expect(c.run()).toBe("HLT");
    expect(c.rip).toBe(BigInt(KG + 1));
    expect([c.sel("cs"), c.sel("ss"), Number(c.reg("rsp"))]).toEqual([SEL.KCODE32, SEL.KDATA, RSP0 - 24]);
    expect([0, 4, 8, 12, 16, 20].map((o) => c.d(RSP0 - 24 + o))).toEqual([C + 17, 0x1b, 0x22222222, 0x11111111, USTACK - 8, 0x23]);
    c.unhalt();
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(GP); // the ring-3 hlt after the call
    expect([c.d(RSP0 - 20), c.d(RSP0 - 16), c.d(RSP0 - 8)]).toEqual([C + 17, 0x1b, USTACK]);
  });
});

describe("stack edge cases (64-bit mode)", () => {
  it("enter 0x20, 3 copies two frame pointers from the old frame and pushes the new one (SDM ENTER)", () => {
    const c = new SysCpu().setupLong();
    const S = 0xa000, B = 0xa800;
    c.setQ(B - 8, 0x1111n); c.setQ(B - 16, 0x2222n);
    c.setReg("rsp", S); c.setReg("rbp", B);
    c.code([0xc8, 0x20, 0x00, 0x03, 0xf4]);
    expect(c.run()).toBe("HLT");
    expect([c.q(S - 8), c.q(S - 16), c.q(S - 24), c.q(S - 32)]).toEqual([BigInt(B), 0x1111n, 0x2222n, BigInt(S - 8)]);
    expect([c.reg("rbp"), c.reg("rsp")]).toEqual([BigInt(S - 8), BigInt(S - 32 - 0x20)]);
    c.unhalt();
    c.code([0xc9, 0xf4]); // leave
    expect(c.run()).toBe("HLT");
    expect([c.reg("rsp"), c.reg("rbp")]).toEqual([BigInt(S), BigInt(B)]);
  });
  it("push rsp pushes the old value; pop rsp loads the popped value", () => {
    const c = new SysCpu().setupLong();
    c.code([0x54, 0x58, 0x5c, 0xf4]); // push rsp; pop rax; pop rsp
    c.setQ(KSTACK, 0x7770n);
    expect(c.run()).toBe("HLT");
    expect([c.reg("rax"), c.reg("rsp")]).toEqual([BigInt(KSTACK), 0x7770n]);
  });
  it("push ax moves RSP by 2, push fs by 8 (the selector zero-extended)", () => {
    const c = new SysCpu().setupLong();
    c.setQ(KSTACK - 16, ~0n); c.setQ(KSTACK - 8, ~0n);
    c.setReg("rax", 0xabcd);
    c.code([0x66, 0x50, 0x0f, 0xa0, 0xf4]);
    expect(c.run()).toBe("HLT");
    expect(c.reg("rsp")).toBe(BigInt(KSTACK - 10));
    expect(c.w(KSTACK - 2)).toBe(0xabcd);
    expect(c.q(KSTACK - 10)).toBe(BigInt(SEL.KDATA));
  });
});

describe("privileged instructions at CPL 3", () => {
  // each must raise #GP(0) at the instruction
  const cases: [string, number[]][] = [
    ["hlt", [0xf4]],
    ["mov rax, cr0", [0x0f, 0x20, 0xc0]],
    ["mov cr3, rax", [0x0f, 0x22, 0xd8]],
    ["wrmsr", [0x0f, 0x30]],
    ["lidt [rax]", [0x0f, 0x01, 0x18]],
    ["invlpg [rax]", [0x0f, 0x01, 0x38]],
    ["cli (IOPL 0)", [0xfa]],
    ["swapgs", [0x0f, 0x01, 0xf8]],
    ["clts", [0x0f, 0x06]],
    ["wbinvd", [0x0f, 0x09]],
  ];
  for (const [name, bytes] of cases) {
    it(`${name}: #GP(0)`, () => {
      const c = new SysCpu().setupLong().toUser();
      c.setReg("rax", 0x10000);
      c.code([...bytes, 0xf4]);
      expect(c.run()).toBe("HLT");
      expect(c.vector()).toBe(GP);
      expect(c.frame64(true)).toMatchObject({ err: 0n, rip: BigInt(C) });
    });
  }
  it("clac: #UD (not #GP)", () => {
    const c = new SysCpu().setupLong().toUser();
    c.code([0x0f, 0x01, 0xca]);
    expect(c.run()).toBe("HLT");
    expect(c.vector()).toBe(UD);
  });
});

void STUBS;
