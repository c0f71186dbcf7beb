/**
 * The block compiler (src/jit/) against the uops it replaces: random loops of
 * the register forms it compiles (ALU on registers and immediates at 32 and
 * 64 bits, mov, lea, shifts, imul, cmov, movzx, cqo/cdq/cdqe, not, movsxd)
 * run with block_jit=1 (compiled after one run) and with block_jit=0; the
 * registers and the status flags must end the same, and the compiled run
 * must really have run compiled code. The uops themselves are checked
 * against the host CPU (vectors.test.ts). The stack uops (push, pop, call,
 * ret) are checked the same way, stack memory included, and at a fault, and
 * so are the instructions compiled blocks hand to the core (jit_uop).
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR, PML4_ADDR } from "../support/longmode.js";
import { Rng } from "../../src/fuzz/rng.js";

const FLAGS = 0x8d5n; // OF SF ZF AF PF CF
const DSTS = [0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]; // not rsp, rcx (the loop counter), r15 (the scratch base)
const SCRATCH = 0x10000; // r15 points here: 256 bytes the memory forms use

function rex(w: boolean, reg: number, rm: number, index = 0): number[] {
  const b = 0x40 | (w ? 8 : 0) | ((reg >> 3) << 2) | ((index >> 3) << 1) | (rm >> 3);
  return b === 0x40 ? [] : [b];
}
const modrm = (reg: number, rm: number) => 0xc0 | ((reg & 7) << 3) | (rm & 7);

/** One random instruction of a form the compiler takes. */
function insn(r: Rng): number[] {
  const w = r.chance(0.5);
  const d = r.pick(DSTS), s = r.int(0, 15);
  const imm8 = r.int(0, 255), imm32 = [r.int(0, 255), r.int(0, 255), r.int(0, 255), r.int(0, 255)];
  switch (r.int(0, 14)) {
    case 0: return [...rex(w, s, d), r.pick([0x01, 0x09, 0x21, 0x29, 0x31, 0x39, 0x85]), modrm(s, d)]; // alu E, G
    case 1: return [...rex(w, d, s), r.pick([0x03, 0x0b, 0x23, 0x2b, 0x33, 0x3b]), modrm(d, s)]; // alu G, E
    case 2: return [...rex(w, 0, d), 0x83, modrm(r.pick([0, 1, 4, 5, 6, 7]), d), imm8]; // alu E, imm8
    case 3: return [...rex(w, 0, d), 0x81, modrm(r.pick([0, 1, 4, 5, 6, 7]), d), ...imm32]; // alu E, imm32
    case 4: return [...rex(w, s, d), 0x89, modrm(s, d)]; // mov
    case 5: return r.chance(0.5) ? [...rex(w, 0, d), 0xc7, modrm(0, d), ...imm32] : [...rex(true, 0, d), 0xb8 + (d & 7), ...imm32, ...imm32];
    case 6: { // lea d, [base + index*scale + disp8]
      const base = r.pick([0, 2, 3, 6, 7, 8, 9]), index = r.pick([0, 2, 3, 5, 6, 7, 10]);
      return [...rex(w, d, base, index), 0x8d, 0x44 | ((d & 7) << 3), (r.int(0, 3) << 6) | ((index & 7) << 3) | (base & 7), imm8];
    }
    case 7: return [...rex(w, 0, d), 0xc1, modrm(r.pick([4, 5, 7]), d), r.int(1, w ? 63 : 31)]; // shl/shr/sar
    case 8: return r.chance(0.5) ? [...rex(w, d, s), 0x0f, 0xaf, modrm(d, s)] : [...rex(w, d, s), 0x6b, modrm(d, s), imm8]; // imul
    case 9: return [...rex(w, d, s), 0x0f, 0x40 + r.int(0, 15), modrm(d, s)]; // cmovcc
    case 10: return [0x40 | ((d >> 3) << 2) | (s >> 3), 0x0f, 0xb6, modrm(d, s)]; // movzx r32, r8 (REX: low bytes)
    case 11: return r.pick([[0x48, 0x99], [0x99], [0x48, 0x98]]); // cqo, cdq, cdqe
    case 12: return [...rex(w, 0, d), 0xf7, modrm(2, d)]; // not
    case 13: return [...rex(true, d, s), 0x63, modrm(d, s)]; // movsxd
    default: return [...rex(w, s, d), 0x85, modrm(s, d)]; // test
  }
}

/** One random register instruction the compiler leaves to the core (jit_uop): inc/dec, adc/sbb, neg, mul, xchg, bswap, bt, setcc, movsx. */
function coreInsn(r: Rng): number[] {
  const w = r.chance(0.5);
  const d = r.pick(DSTS), s = r.pick(DSTS);
  switch (r.int(0, 8)) {
    case 0: return [...rex(w, 0, d), 0xff, modrm(r.int(0, 1), d)]; // inc / dec
    case 1: return [...rex(w, s, d), r.pick([0x11, 0x19]), modrm(s, d)]; // adc / sbb
    case 2: return [...rex(w, 0, d), 0xf7, modrm(3, d)]; // neg
    case 3: return [...rex(w, 0, s), 0xf7, modrm(4, s)]; // mul: rdx:rax
    case 4: return [...rex(w, s, d), 0x87, modrm(s, d)]; // xchg
    case 5: return [...rex(w, 0, d), 0x0f, 0xc8 + (d & 7)]; // bswap
    case 6: return [...rex(w, s, d), 0x0f, 0xa3, modrm(s, d)]; // bt
    case 7: return [0x40 | (d >> 3), 0x0f, 0x90 + r.int(0, 15), modrm(0, d)]; // setcc r8 (REX: low bytes)
    default: return [...rex(w, d, s), 0x0f, r.pick([0xbe, 0xbf]), modrm(d, s)]; // movsx
  }
}

/** One random memory instruction on [r15 + disp8] (loads, stores, compares, ALU with a memory source). */
function memInsn(r: Rng): number[] {
  const w = r.chance(0.5);
  const d = r.pick(DSTS);
  const disp = r.int(0, 0xf0);
  const m = (reg: number) => [0x47 | ((reg & 7) << 3), disp]; // modrm mod=01 rm=111 (with REX.B: r15), disp8
  const rx = (wide: boolean, reg: number) => [0x41 | (wide ? 8 : 0) | ((reg >> 3) << 2)];
  switch (r.int(0, 9)) {
    case 0: return [...rx(w, d), 0x8b, ...m(d)]; // mov r, [m]
    case 1: return [...rx(w, d), 0x89, ...m(d)]; // mov [m], r
    case 2: return [...rx(false, d), 0x0f, 0xb6, ...m(d)]; // movzx r32, byte [m]
    case 3: return [...rx(false, d), 0x88, ...m(d)]; // mov byte [m], r8
    case 4: return [...rx(w, 0), 0xc7, ...m(0), r.int(0, 255), r.int(0, 255), 0, r.int(0, 255)]; // mov [m], imm32
    case 5: return [...rx(false, 0), 0xc6, ...m(0), r.int(0, 255)]; // mov byte [m], imm8
    case 6: return [...rx(w, 0), 0x83, ...m(7), r.int(0, 255)]; // cmp [m], imm8
    case 7: return [...rx(false, 0), 0x80, ...m(7), r.int(0, 255)]; // cmp byte [m], imm8
    case 8: return [...rx(w, d), r.pick([0x03, 0x0b, 0x23, 0x2b, 0x33, 0x3b]), ...m(d)]; // alu r, [m]
    default: return [...rex(w, 0, d), 0x83, modrm(r.pick([0, 1, 4, 5, 6, 7]), d), r.int(0, 255)];
  }
}

/** A loop of random instructions: `bytes` long bodies span several blocks; short ones are one block that branches to itself (the compiled loop). */
function program(seed: number, bytes = 90, memory = false, core = false): { code: number[]; perLoop: number } {
  const r = new Rng(seed);
  const body: number[] = [];
  let n = 0;
  while (body.length < bytes) { body.push(...(memory && r.chance(0.4) ? memInsn(r) : core && r.chance(0.3) ? coreInsn(r) : insn(r))); n++; }
  // sub ecx, 1; jnz start (fused in one uop)
  const code = [...body, 0x83, 0xe9, 0x01];
  code.push(0x0f, 0x85, ...le32(-(code.length + 6)));
  return { code, perLoop: n + 2 };
}
/**
 * A loop whose body pushes and pops random registers (balanced), calls a
 * subroutine of random register instructions that pushes and pops too, and
 * counts down: the stack uops between the forms above.
 */
function stackProgram(seed: number): { code: number[]; perLoop: number } {
  const r = new Rng(seed);
  const push = (x: number) => (x >= 8 ? [0x41, 0x50 + (x & 7)] : [0x50 + x]);
  const pop = (x: number) => (x >= 8 ? [0x41, 0x58 + (x & 7)] : [0x58 + x]);
  const part = (n: number): { code: number[]; count: number } => {
    const code: number[] = [];
    let count = 0, depth = 0;
    for (let i = 0; i < n; i++) {
      if (r.chance(0.3)) { code.push(...push(r.int(0, 15))); depth++; } // push rsp too: it pushes the old value
      else if (depth > 0 && r.chance(0.4)) { code.push(...pop(r.pick(DSTS))); depth--; }
      else code.push(...insn(r));
      count++;
    }
    for (; depth > 0; depth--, count++) code.push(...pop(r.pick(DSTS)));
    return { code, count };
  };
  const body = part(r.int(2, 8)), sub = part(r.int(1, 6));
  // loop: body; call sub; sub ecx, 1; jnz loop; sub: ...; ret
  const code = [...body.code, 0xe8, ...le32(9), 0x83, 0xe9, 0x01];
  code.push(0x0f, 0x85, ...le32(-(code.length + 6)));
  code.push(...sub.code, 0xc3);
  return { code, perLoop: body.count + 1 + sub.count + 1 + 2 };
}
function le32(v: number): number[] { return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]; }

function runBoth(seed: number, loops: number, bytes?: number, memory = false, stack = false, core = false): { a: bigint[]; b: bigint[]; compiled: bigint } {
  const { code, perLoop } = stack ? stackProgram(seed) : program(seed, bytes, memory, core);
  const out: bigint[][] = [];
  let compiled = 0n;
  for (const jit of [1, 0]) {
    const cpu = new TestCpu(undefined, { block_jit: jit });
    cpu.enterLongModeUser();
    cpu.write(CODE_ADDR, Uint8Array.from(code));
    const r = new Rng(seed ^ 0x1234);
    for (let i = 0; i < 16; i++) cpu.gpr[i] = BigInt(r.u32()) << 32n | BigInt(r.u32());
    cpu.gpr[1] = BigInt(loops);
    cpu.gpr[4] = 0x8000n;
    cpu.gpr[15] = BigInt(SCRATCH);
    cpu.write(SCRATCH, Uint8Array.from({ length: 256 }, () => r.int(0, 255)));
    cpu.rflags = 0x202n;
    cpu.rip = BigInt(CODE_ADDR);
    expect(cpu.run(loops * perLoop)).toBe("BUDGET");
    out.push([...cpu.gpr, cpu.rip, cpu.rflags & FLAGS, ...new BigUint64Array(cpu.view(SCRATCH, 256).slice().buffer),
      ...new BigUint64Array(cpu.view(0x8000 - 256, 256).slice().buffer)]); // the stack below the initial rsp
    expect(cpu.vm.core.jit.errors).toEqual([]);
    if (jit) compiled = cpu.vcpu.stats().compiled_insns ?? 0n;
  }
  return { a: out[0]!, b: out[1]!, compiled };
}

/**
 * Run `code` compiled (block_jit=1) and as uops until it faults (no IDT:
 * shutdown), from registers `regs` (index: value); both must end with the
 * same count, RIP, registers and CR2, the compiled run having run compiled
 * code. Returns CR2.
 */
function faultBoth(code: number[], regs: Record<number, bigint>, setup?: (cpu: TestCpu) => void): bigint {
  const ends: unknown[] = [];
  for (const jit of [1, 0]) {
    const cpu = new TestCpu(undefined, { block_jit: jit });
    cpu.enterLongModeUser();
    setup?.(cpu);
    cpu.write(CODE_ADDR, Uint8Array.from(code));
    for (const [r, v] of Object.entries(regs)) cpu.gpr[Number(r)] = v;
    cpu.rip = BigInt(CODE_ADDR);
    expect(cpu.run(100_000)).toBe("SHUTDOWN");
    ends.push([cpu.instructions, cpu.rip, [...cpu.gpr], cpu.vcpu.get64(cpu.vm.core.k.VCPU_CR2!), jit ? (cpu.vcpu.stats().compiled_insns ?? 0n) > 0n : true]);
  }
  expect(ends[0]).toEqual(ends[1]);
  return (ends[0] as unknown[])[3] as bigint;
}

describe("block compiler", () => {
  it("compiled register loops end with the registers and flags the uops leave", () => {
    let compiled = 0n;
    for (let seed = 1; seed <= 150; seed++) {
      const { a, b, compiled: c } = runBoth(seed, 40);
      expect(a, `seed ${seed}: program ${program(seed).code.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`).toEqual(b);
      compiled += c;
    }
    expect(compiled).toBeGreaterThan(150n * 20n * 30n); // most of the loop ran compiled
  });
  it("loops with loads, stores and compares on memory end with the same registers, flags and memory", () => {
    let compiled = 0n;
    for (let seed = 2000; seed < 2150; seed++) {
      const bytes = seed & 1 ? 30 : 80; // one-block loops and longer ones
      const { a, b, compiled: c } = runBoth(seed, 60, bytes, true);
      expect(a, `seed ${seed}: program ${program(seed, bytes, true).code.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`).toEqual(b);
      compiled += c;
    }
    expect(compiled).toBeGreaterThan(150n * 40n * 5n);
  });
  it("a fault in a compiled loop stops it at the faulting instruction, as the uops do", () => {
    // loop: mov rax, [rdx]; add rdx, 0x1000; add rbx, rax; sub ecx, 1; jnz loop
    // rdx walks up from 1 MiB and faults (#PF, no IDT: shutdown) past the 2 MiB identity map
    const code = [0x48, 0x8b, 0x02, 0x48, 0x81, 0xc2, 0x00, 0x10, 0x00, 0x00, 0x48, 0x01, 0xc3, 0x83, 0xe9, 0x01, 0x75, 0xee];
    expect(faultBoth(code, { 1: 10_000n, 2: 0x100000n, 3: 0n })).toBe(0x200000n);
  });
  it("a compiled store to a page the TLB holds for reads only faults, as the uops do", () => {
    // loop: mov rbx, [rdx]; mov [rdx], rax; add rdx, 0x1000; sub ecx, 1; jnz loop
    // page 0x105000 is read-only: its load fills the TLB entry without write
    // permission, so the store (inline TLB test in compiled code) must fault
    const code = [0x48, 0x8b, 0x1a, 0x48, 0x89, 0x02, 0x48, 0x81, 0xc2, 0x00, 0x10, 0x00, 0x00, 0x83, 0xe9, 0x01, 0x75, 0xee];
    const readOnly = (cpu: TestCpu) => cpu.write(PML4_ADDR + 0x3000 + 0x105 * 8, Uint8Array.from([0x05 | 0x60, 0x50, 0x10])); // P U A D, frame 0x105
    expect(faultBoth(code, { 1: 10_000n, 2: 0x100000n }, readOnly)).toBe(0x105000n);
  });
  it("loops with push, pop, call and ret end with the same registers, flags and stack", () => {
    let compiled = 0n;
    for (let seed = 3000; seed < 3150; seed++) {
      const { a, b, compiled: c } = runBoth(seed, 40, undefined, false, true);
      expect(a, `seed ${seed}: program ${stackProgram(seed).code.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`).toEqual(b);
      compiled += c;
    }
    expect(compiled).toBeGreaterThan(150n * 30n * 5n);
  });
  it("loops with instructions the core runs for the compiled code (jit_uop) end with the same registers, flags and memory", () => {
    let compiled = 0n;
    for (let seed = 4000; seed < 4150; seed++) {
      const bytes = seed & 1 ? 30 : 80;
      const { a, b, compiled: c } = runBoth(seed, 40, bytes, (seed & 2) !== 0, false, true);
      expect(a, `seed ${seed}: program ${program(seed, bytes, (seed & 2) !== 0, true).code.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`).toEqual(b);
      compiled += c;
    }
    expect(compiled).toBeGreaterThan(150n * 30n * 5n);
  });
  it("a push or a call whose stack write faults stops the compiled block there, as the uops do", () => {
    // rsp climbs by 4 KiB a loop from 1 MiB + 32 KiB; the first stack write past the 2 MiB identity map faults (#PF, no IDT: shutdown)
    // push:  loop: push rax; pop rbx; add rsp, 0x1000; sub ecx, 1; jnz loop
    // call:  loop: call sub; add rsp, 0x1000; sub ecx, 1; jnz loop; sub: ret
    const progs = [
      [0x50, 0x5b, 0x48, 0x81, 0xc4, 0x00, 0x10, 0x00, 0x00, 0x83, 0xe9, 0x01, 0x75, 0xf2],
      [0xe8, ...le32(16), 0x48, 0x81, 0xc4, 0x00, 0x10, 0x00, 0x00, 0x83, 0xe9, 0x01, 0x0f, 0x85, ...le32(-21), 0xc3],
    ];
    for (const code of progs) expect(faultBoth(code, { 0: 0x1234n, 1: 10_000n, 4: 0x108000n })).toBe(0x200ff8n);
  });
  it("a one-block loop runs inside the compiled function and ends the same", () => {
    let compiled = 0n;
    for (let seed = 1000; seed < 1150; seed++) {
      const { a, b, compiled: c } = runBoth(seed, 300, 30);
      expect(a, `seed ${seed}: program ${program(seed, 30).code.map((x) => x.toString(16).padStart(2, "0")).join(" ")}`).toEqual(b);
      compiled += c;
    }
    expect(compiled).toBeGreaterThan(150n * 250n * 5n);
  });
});
