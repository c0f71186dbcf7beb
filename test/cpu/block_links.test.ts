/**
 * Links between cached blocks and memory the host writes between two run()s
 * (the loader, a device, a test): a new run() makes every link compare its
 * target's bytes again, unless the host says nothing outside the core wrote
 * guest memory (enter(budget, keepLinks), which the machine's loop passes
 * only after a PT_WRITE exit). The guest's own writes to code are the code
 * map's business (smc.test.ts).
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR } from "../support/longmode.js";

const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const B = CODE_ADDR + 0x1000; // the second block, on the next page

// A: add rbx, 1; jmp B                      (block A links to block B)
// B: mov eax, imm32; add rdx, rax; sub ecx, 1; jnz A; then a CPL 3 hlt (#GP, no IDT: SHUTDOWN)
function load(cpu: TestCpu, imm: number): void {
  cpu.write(CODE_ADDR, Uint8Array.from([0x48, 0x83, 0xc3, 0x01, 0xe9, ...le32(B - (CODE_ADDR + 9))]));
  const b = [0xb8, ...le32(imm), 0x48, 0x01, 0xc2, 0x83, 0xe9, 0x01];
  cpu.write(B, Uint8Array.from([...b, 0x0f, 0x85, ...le32(CODE_ADDR - (B + b.length + 6)), 0xf4]));
}

function loop(cpu: TestCpu, n: number): bigint {
  cpu.gpr[1] = BigInt(n);
  cpu.gpr[2] = 0n;
  cpu.rip = BigInt(CODE_ADDR);
  expect(cpu.run(10 * n)).toBe("SHUTDOWN");
  return cpu.gpr[2]!;
}

describe("block links across run() entries", () => {
  it.each([0, 2])("a host write to a linked block between two runs is executed (block_jit=%i)", (jit) => {
    const cpu = new TestCpu(undefined, { block_jit: jit });
    cpu.enterLongModeUser();
    load(cpu, 1);
    expect(loop(cpu, 100)).toBe(100n);
    expect(cpu.vcpu.stats().block_insns).toBeGreaterThan(500n); // A and B ran as linked blocks
    load(cpu, 3); // B's immediate, behind the link A -> B
    expect(loop(cpu, 100)).toBe(300n);
  });
});
