/**
 * The block compiler (src/jit/) against the uops it replaces: random loops of
 * the register forms it compiles (ALU on registers and immediates at 32 and
 * 64 bits, mov, lea, shifts, imul, cmov, movzx, cqo/cdq/cdqe, not, movsxd)
 * run with block_jit=1 (compiled after one run) and with block_jit=0; the
 * registers and the status flags must end the same, and the compiled run
 * must really have run compiled code. The uops themselves are checked
 * against the host CPU (vectors.test.ts).
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR } from "../support/longmode.js";
import { Rng } from "../../src/fuzz/rng.js";

const FLAGS = 0x8d5n; // OF SF ZF AF PF CF
const DSTS = [0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]; // not rsp, not rcx (the loop counter)

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

/** A loop of random instructions: `bytes` long bodies span several blocks; short ones are one block that branches to itself (the compiled loop). */
function program(seed: number, bytes = 90): { code: number[]; perLoop: number } {
  const r = new Rng(seed);
  const body: number[] = [];
  let n = 0;
  while (body.length < bytes) { body.push(...insn(r)); n++; }
  // sub ecx, 1; jnz start (fused in one uop)
  const code = [...body, 0x83, 0xe9, 0x01];
  code.push(0x0f, 0x85, ...le32(-(code.length + 6)));
  return { code, perLoop: n + 2 };
}
function le32(v: number): number[] { return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]; }

function runBoth(seed: number, loops: number, bytes?: number): { a: bigint[]; b: bigint[]; compiled: bigint } {
  const { code, perLoop } = program(seed, bytes);
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
    cpu.rflags = 0x202n;
    cpu.rip = BigInt(CODE_ADDR);
    expect(cpu.run(loops * perLoop)).toBe("BUDGET");
    out.push([...cpu.gpr, cpu.rip, cpu.rflags & FLAGS]);
    if (jit) compiled = cpu.vcpu.stats().compiled_insns ?? 0n;
  }
  return { a: out[0]!, b: out[1]!, compiled };
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
