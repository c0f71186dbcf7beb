/**
 * One core instance runs every vCPU of a deterministic SMP machine in turn,
 * each with its own block cache, and a compiled block reads and writes the
 * registers of the vCPU it was compiled for. Nothing the block cache keeps
 * between run() calls may lead one vCPU into another's blocks: here vCPU 0
 * stops right after an instruction that runs alone (leaving the chain's
 * hint on it), and vCPU 1, on the same code, goes on from there.
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR } from "../support/longmode.js";

// loop: add rax, 1; add rbx, rax; lock add qword [r15], 1 (runs alone); jmp loop
const CODE = [0x48, 0x83, 0xc0, 0x01, 0x48, 0x01, 0xc3, 0xf0, 0x49, 0x83, 0x07, 0x01, 0xeb, 0xf2];
const JMP = CODE_ADDR + 12;

describe("block cache with two vCPUs on one core instance", () => {
  it("a vCPU never runs the blocks another vCPU left its chain in", () => {
    const cpu = new TestCpu(undefined, { block_jit: 1 }, "shadow", 2);
    const [a, b] = cpu.vm.vcpus;
    cpu.enterLongModeUser(a);
    cpu.enterLongModeUser(b!);
    cpu.write(CODE_ADDR, Uint8Array.from(CODE));
    for (const v of [a!, b!]) { v.setReg("r15", 0x10000n); v.setReg("rsp", 0x8000n); }
    b!.rip = BigInt(JMP);
    expect(b!.enter(1)).toBe("BUDGET"); // vCPU 1's TLB now maps the code page, as a running vCPU's would
    b!.rip = BigInt(JMP);
    a!.rip = BigInt(CODE_ADDR);
    expect(a!.enter(4 * 50 + 3)).toBe("BUDGET"); // 50 loops and the next add, add, lock: compiled by now
    const aRegs = [a!.reg("rax"), a!.reg("rbx")];
    expect(aRegs).toEqual([51n, 51n * 52n / 2n]);
    expect(b!.enter(4)).toBe("BUDGET"); // jmp, add, add, lock
    expect([b!.reg("rax"), b!.reg("rbx")]).toEqual([1n, 1n]);
    expect([a!.reg("rax"), a!.reg("rbx")]).toEqual(aRegs);
  });
});
