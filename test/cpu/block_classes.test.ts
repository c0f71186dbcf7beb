/**
 * Instructions the block cache holds since it stopped running them alone:
 * one movs/cmps/stos/lods/scas without rep (a stosb byte loop clearing a page
 * table, pt-memset), mov from a control register (every #PF handler reads
 * CR2), and mov to CR3, which ends its block. Each loop runs one instruction
 * at a time (block_cache=0, the oracle), as uops and compiled; registers,
 * flags, memory and the retired count must agree, and with the cache on every
 * iteration must have run inside a block. A rep string instruction still runs
 * alone (it counts steps against the budget and may yield).
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR, PML4_ADDR, ATTR_DATA32 } from "../support/longmode.js";
import type { MmuKnobs } from "../../src/mmu/knobs.js";

const SRC = 0x10000, DST = 0x20000, SPAN = 0x1000;
const MODES: { name: string; knobs: Partial<MmuKnobs> }[] = [
  { name: "one at a time", knobs: { block_cache: false } },
  { name: "uops", knobs: { block_jit: 0 } },
  { name: "compiled", knobs: { block_jit: 2 } },
];

interface Outcome { exit: string; gpr: bigint[]; rflags: bigint; src: number[]; dst: number[]; instructions: bigint; alone: bigint }

/** `body` + `jnz` back to its start (after `pre`), then a `hlt`: at CPL 3 a #GP, and with no IDT a SHUTDOWN. */
function loop(pre: number[], body: number[]): number[] {
  return [...pre, ...body, 0x75, (-(body.length + 2)) & 0xff, 0xf4];
}

function run64(code: number[], regs: Record<number, bigint>, knobs: Partial<MmuKnobs>, unmap?: number): Outcome {
  const cpu = new TestCpu(undefined, knobs);
  cpu.enterLongModeUser();
  const src = cpu.view(SRC, SPAN), dst = cpu.view(DST, SPAN);
  for (let i = 0; i < SPAN; i++) { src[i] = (i * 7 + 3) & 0xff; dst[i] = (i * 13 + (i >> 4)) & 0xff; }
  if (unmap !== undefined) { // the PTE of page `unmap` not present
    new DataView(cpu.view(PML4_ADDR + 0x3000, 4096).buffer, cpu.view(PML4_ADDR + 0x3000, 4096).byteOffset).setBigUint64((unmap >> 12) * 8, 0n, true);
    cpu.vcpu.flushTlb();
  }
  cpu.write(CODE_ADDR, Uint8Array.from(code));
  cpu.rip = BigInt(CODE_ADDR);
  for (const [r, v] of Object.entries(regs)) cpu.gpr[Number(r)] = v;
  const exit = cpu.run(100_000);
  const s = cpu.vcpu.stats();
  return {
    exit, gpr: [...cpu.gpr], rflags: cpu.rflags, src: [...cpu.view(SRC, SPAN)], dst: [...cpu.view(DST, SPAN)],
    instructions: cpu.instructions, alone: cpu.instructions - (s.block_insns ?? 0n),
  };
}

const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSI = 6, RDI = 7;
const DEC_RCX = [0x48, 0xff, 0xc9];

describe("string instructions and mov from CR inside blocks", () => {
  const cases: { name: string; code: number[]; regs: Record<number, bigint>; alone: bigint; unmap?: number }[] = [
    { name: "stosb loop, DF=0", code: loop([0xfc], [0xaa, ...DEC_RCX]), regs: { [RAX]: 0x5an, [RDI]: BigInt(DST), [RCX]: 300n }, alone: 0n },
    { name: "stosw loop, DF=1", code: loop([0xfd], [0x66, 0xab, ...DEC_RCX]), regs: { [RAX]: 0xbeefn, [RDI]: BigInt(DST + 0x800), [RCX]: 200n }, alone: 0n },
    { // lodsb; add rbx, rax; movsq; cmpsb; scasb; dec rcx (CF and the others from scasb survive dec's)
      name: "lodsb, movsq, cmpsb, scasb", code: loop([0xfc], [0xac, 0x48, 0x01, 0xc3, 0x48, 0xa5, 0xa6, 0xae, ...DEC_RCX]),
      regs: { [RSI]: BigInt(SRC), [RDI]: BigInt(DST), [RCX]: 100n }, alone: 0n,
    },
    { // mov ecx, 16; rep stosb; dec edx: the rep runs alone, 40 times
      name: "rep stosb still runs alone", code: loop([0xfc], [0xb9, 16, 0, 0, 0, 0xf3, 0xaa, 0xff, 0xca]),
      regs: { [RAX]: 0x33n, [RDI]: BigInt(DST), [RDX]: 40n }, alone: 40n,
    },
    { // the loop stores into a page whose PTE is not present: #PF, no IDT, SHUTDOWN with RDI/RCX at the faulting stosb
      name: "stosb loop into a not-present page", code: loop([0xfc], [0xaa, ...DEC_RCX]),
      regs: { [RAX]: 0x77n, [RDI]: BigInt(DST + 0xf00), [RCX]: 0x200n }, alone: 0n, unmap: DST + 0x1000,
    },
  ];
  it.each(cases)("$name: the same in every mode, inside blocks with the cache on", ({ code, regs, alone, unmap }) => {
    const [oracle, ...others] = MODES.map((m) => run64(code, regs, m.knobs, unmap));
    expect(oracle!.exit).toBe("SHUTDOWN"); // the final hlt at CPL 3 (or the #PF), with no IDT
    expect(oracle!.instructions).toBeGreaterThan(100n);
    for (const o of others) {
      expect({ ...o, alone: 0n }).toEqual({ ...oracle!, alone: 0n });
      expect(o.alone).toBe(alone);
    }
  });

  it("the not-present case really faulted mid-loop", () => {
    const o = run64(loop([0xfc], [0xaa, ...DEC_RCX]), { [RAX]: 0x77n, [RDI]: BigInt(DST + 0xf00), [RCX]: 0x200n }, { block_jit: 2 }, DST + 0x1000);
    expect(o.gpr[RDI]).toBe(BigInt(DST + 0x1000)); // the store to the unmapped page did not retire
    expect(o.gpr[RCX]).toBe(0x100n);
  });

  it("mov from CR0/CR2 at CPL 0 runs inside blocks", () => {
    const results = MODES.map(({ knobs }) => {
      const cpu = new TestCpu(undefined, knobs);
      cpu.enterProtectedMode32();
      cpu.vcpu.set64(cpu.vm.core.k.VCPU_CR2, 0x12345n);
      // mov eax, cr2; add ebx, eax; mov edx, cr0; add ebx, edx; dec ecx; jnz; hlt
      cpu.write(CODE_ADDR, Uint8Array.from(loop([], [0x0f, 0x20, 0xd0, 0x01, 0xc3, 0x0f, 0x20, 0xc2, 0x01, 0xd3, 0x49])));
      cpu.rip = BigInt(CODE_ADDR);
      cpu.gpr[RCX] = 50n;
      expect(cpu.run(10_000)).toBe("HLT");
      return { ebx: cpu.gpr[RBX], alone: cpu.instructions - (cpu.vcpu.stats().block_insns ?? 0n) };
    });
    const cr0 = 0x31n; // PE | ET | NE (enterProtectedMode32)
    for (const r of results) expect(r.ebx).toBe(50n * (0x12345n + cr0));
    expect(results.map((r) => r.alone)).toEqual([301n, 1n, 1n]); // 50 x 6 and the hlt; with the cache, only the hlt runs alone
  });

  it("mov to CR3 ends its block: the next instruction comes from the new tables, never through a stale link", () => {
    // root B maps the code page to another frame, whose bytes differ only after the mov cr3
    const ROOT_B = 0x50000, OTHER = 0x60000;
    const tail = (ebx: number) => [0x0f, 0x22, 0xd8, 0xbb, ebx, 0, 0, 0, 0x48, 0xff, 0xc9, 0x75, 0xf0, 0xf4]; // mov cr3, rax; mov ebx, n; dec rcx; jnz (to the mov rax, rdx before); hlt
    const results = MODES.map(({ knobs }) => {
      const cpu = new TestCpu(undefined, knobs);
      cpu.enterLongModeUser();
      // CPL 0: a 64-bit ring-0 code segment and a ring-0 stack segment
      cpu.vcpu.setSeg("cs", { selector: 0x08, base: 0n, limit: 0xffffffff, attr: 0xb | (1 << 4) | (1 << 7) | (1 << 13) | (1 << 15) });
      cpu.vcpu.setSeg("ss", { selector: 0x10, base: 0n, limit: 0xffffffff, attr: ATTR_DATA32 });
      for (let i = 0; i < 4; i++) cpu.write(ROOT_B + i * 0x1000, cpu.view(PML4_ADDR + i * 0x1000, 4096).slice());
      const dv = (a: number) => new DataView(cpu.view(a, 4096).buffer, cpu.view(a, 4096).byteOffset, 4096);
      for (let i = 0; i < 3; i++) dv(ROOT_B + i * 0x1000).setBigUint64(0, BigInt(ROOT_B + (i + 1) * 0x1000) | 0x67n, true);
      dv(ROOT_B + 0x3000).setBigUint64((CODE_ADDR >> 12) * 8, BigInt(OTHER) | 0x67n, true);
      cpu.write(CODE_ADDR, Uint8Array.from([0x48, 0x89, 0xd0, ...tail(1)])); // mov rax, rdx first
      cpu.write(OTHER, Uint8Array.from([0x48, 0x89, 0xd0, ...tail(2)]));
      const run = (root: number, n: number) => {
        cpu.vcpu.set64(cpu.vm.core.k.VCPU_CR3, BigInt(PML4_ADDR));
        cpu.vcpu.pagingStateChanged();
        cpu.gpr[RDX] = BigInt(root); cpu.gpr[RCX] = BigInt(n); cpu.rip = BigInt(CODE_ADDR);
        expect(cpu.run(100_000)).toBe("HLT");
        cpu.vcpu.u32(cpu.vm.core.k.VCPU_HALTED, 0);
        return cpu.gpr[RBX];
      };
      const same = run(PML4_ADDR, 50); // the loop under root A only: links and (compiled) code for its blocks
      const switched = run(ROOT_B, 1); // one switch to B: the mov ebx after it is B's
      return { same, switched, alone: cpu.instructions - (cpu.vcpu.stats().block_insns ?? 0n) };
    });
    for (const r of results) expect({ same: r.same, switched: r.switched }).toEqual({ same: 1n, switched: 2n });
    expect(results.map((r) => r.alone)).toEqual([results[0]!.alone, 2n, 2n]); // with the cache only the two hlts run alone
  });
});

