/**
 * BCD adjustments (daa das aaa aas aam aad) in 32-bit protected mode. They
 * are invalid in 64-bit mode, so the host-CPU vectors cannot cover them;
 * instead every input pair is checked against decimal arithmetic: the
 * adjusted result of `adc al, bl; daa` must be the packed-BCD sum, and so on.
 */
import { describe, it, expect, beforeAll } from "vitest";
import { TestCpu, CODE_ADDR, STACK_TOP } from "../support/longmode.js";

const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
const bcd = (n: number) => ((Math.floor(n / 10) << 4) | (n % 10));
const parityEven = (v: number) => { let p = 0; for (let x = v & 0xff; x; x >>= 1) p ^= x & 1; return p === 0; };

describe("BCD instructions (32-bit mode)", () => {
  let cpu: TestCpu;
  beforeAll(() => {
    cpu = new TestCpu();
    cpu.enterProtectedMode32();
  });

  /** Runs `code` (n instructions) from CODE_ADDR with eax/ebx/flags; returns eax and flags. */
  function exec(code: number[], n: number, eax: number, ebx: number, flags: number): { eax: number; flags: number } {
    cpu.write(CODE_ADDR, new Uint8Array(code));
    cpu.gpr[0] = BigInt(eax >>> 0);
    cpu.gpr[3] = BigInt(ebx >>> 0);
    cpu.gpr[4] = BigInt(STACK_TOP);
    cpu.rflags = BigInt(flags | 2);
    cpu.rip = BigInt(CODE_ADDR);
    const before = cpu.instructions;
    const exit = cpu.run(n);
    if (exit !== "BUDGET") throw new Error(`${code.map((b) => b.toString(16)).join(" ")}: exit ${exit}, exception vector ${cpu.exceptionVector()}`);
    expect(cpu.rip).toBe(BigInt(CODE_ADDR + code.length));
    expect(cpu.instructions - before).toBe(BigInt(n));
    return { eax: Number(cpu.gpr[0] & 0xffffffffn), flags: Number(cpu.rflags) };
  }
  function szp(al: number): number {
    return (al === 0 ? ZF : 0) | (al & 0x80 ? SF : 0) | (parityEven(al) ? PF : 0);
  }

  it("adc al, bl; daa gives the packed-BCD sum for every pair and carry-in", () => {
    const bad: string[] = [];
    for (let a = 0; a < 100; a++) for (let b = 0; b < 100; b++) for (const cin of [0, 1]) {
      const sum = a + b + cin;
      const r = exec([0x12, 0xc3, 0x27], 2, 0x12345600 | bcd(a), bcd(b), cin);
      const want = (0x12345600 | bcd(sum % 100)) >>> 0;
      const wantFlags = (sum >= 100 ? CF : 0) | szp(bcd(sum % 100));
      if (r.eax !== want || (r.flags & (CF | ZF | SF | PF | OF)) !== wantFlags) {
        bad.push(`${a}+${b}+${cin}: eax=${r.eax.toString(16)} flags=${r.flags.toString(16)}, want eax=${want.toString(16)} flags~${wantFlags.toString(16)}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it("sbb al, bl; das gives the packed-BCD difference with borrow for every pair", () => {
    const bad: string[] = [];
    for (let a = 0; a < 100; a++) for (let b = 0; b < 100; b++) for (const cin of [0, 1]) {
      const diff = a - b - cin;
      const r = exec([0x1a, 0xc3, 0x2f], 2, bcd(a), bcd(b), cin);
      const want = bcd((diff + 100) % 100);
      const wantFlags = (diff < 0 ? CF : 0) | szp(want);
      if ((r.eax & 0xffff) !== want || (r.flags & (CF | ZF | SF | PF | OF)) !== wantFlags) {
        bad.push(`${a}-${b}-${cin}: ax=${(r.eax & 0xffff).toString(16)} flags=${r.flags.toString(16)}, want ax=${want.toString(16)} flags~${wantFlags.toString(16)}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it("add al, bl; aaa and sub al, bl; aas adjust unpacked and ASCII digits, carrying into AH", () => {
    const bad: string[] = [];
    for (const ascii of [0, 0x30]) for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) for (const ah of [0, 7, 0xff]) {
      const add = exec([0x02, 0xc3, 0x37], 2, (ah << 8) | (a + ascii), b + ascii, 0);
      const carry = a + b >= 10;
      const wantAdd = (((ah + (carry ? 1 : 0)) & 0xff) << 8) | ((a + b) % 10);
      const addFlags = (carry ? CF | AF : 0) | (((a + b) % 10) === 0 ? ZF : 0) | (parityEven((a + b) % 10) ? PF : 0);
      if ((add.eax & 0xffff) !== wantAdd || (add.flags & (CF | AF | ZF | SF | PF | OF)) !== addFlags) {
        bad.push(`aaa ${a}+${b} ah=${ah} ascii=${ascii}: ax=${(add.eax & 0xffff).toString(16)} flags=${add.flags.toString(16)}, want ${wantAdd.toString(16)} ~${addFlags.toString(16)}`);
      }
      const sub = exec([0x2a, 0xc3, 0x3f], 2, (ah << 8) | (a + ascii), b + ascii, 0);
      const borrow = a < b;
      const wantSub = (((ah - (borrow ? 1 : 0)) & 0xff) << 8) | ((a - b + 10) % 10);
      const subFlags = (borrow ? CF | AF : 0) | (((a - b + 10) % 10) === 0 ? ZF : 0) | (parityEven((a - b + 10) % 10) ? PF : 0);
      if ((sub.eax & 0xffff) !== wantSub || (sub.flags & (CF | AF | ZF | SF | PF | OF)) !== subFlags) {
        bad.push(`aas ${a}-${b} ah=${ah} ascii=${ascii}: ax=${(sub.eax & 0xffff).toString(16)} flags=${sub.flags.toString(16)}, want ${wantSub.toString(16)} ~${subFlags.toString(16)}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it("aam / aad split and join digits in any base", () => {
    const bad: string[] = [];
    for (const base of [10, 16, 7, 1, 255]) {
      for (let v = 0; v < 256; v++) {
        const r = exec([0xd4, base], 1, 0xabcd0000 | (0x5a << 8) | v, 0, 0);
        const al = v % base, ah = Math.floor(v / base);
        const want = (0xabcd0000 | (ah << 8) | al) >>> 0;
        if (r.eax !== want || (r.flags & (CF | AF | ZF | SF | PF | OF)) !== szp(al)) bad.push(`aam ${base} al=${v}: eax=${r.eax.toString(16)} flags=${r.flags.toString(16)}`);
      }
      for (let hi = 0; hi < 256; hi += 17) for (let lo = 0; lo < 256; lo += 13) {
        const r = exec([0xd5, base], 1, 0xabcd0000 | (hi << 8) | lo, 0, CF | AF | OF);
        const al = (hi * base + lo) & 0xff;
        const want = (0xabcd0000 | al) >>> 0;
        if (r.eax !== want || (r.flags & (CF | AF | ZF | SF | PF | OF)) !== szp(al)) bad.push(`aad ${base} ax=${hi}:${lo}: eax=${r.eax.toString(16)} flags=${r.flags.toString(16)}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
  });

  it("aam 0 raises #DE at the instruction and changes nothing", () => {
    cpu.write(CODE_ADDR, new Uint8Array([0xd4, 0x00]));
    cpu.gpr[0] = 0x1234n;
    cpu.gpr[4] = BigInt(STACK_TOP);
    cpu.rflags = 2n;
    cpu.rip = BigInt(CODE_ADDR);
    expect(cpu.run(10)).toBe("HLT");
    expect(cpu.exceptionVector()).toBe(0);
    expect(cpu.gpr[0]).toBe(0x1234n);
    const frame = new DataView(cpu.view(STACK_TOP - 12, 12).slice().buffer);
    expect(frame.getUint32(0, true)).toBe(CODE_ADDR); // EIP pushed: the faulting instruction
    expect(frame.getUint32(4, true)).toBe(0x08);
  });
});

describe("BCD instructions in 64-bit mode", () => {
  it("are invalid: #UD (without an IDT it escalates to a triple fault that names vector 6)", () => {
    const cpu = new TestCpu();
    cpu.enterLongModeUser();
    for (const code of [[0x27], [0x2f], [0x37], [0x3f], [0xd4, 0x0a], [0xd5, 0x0a]]) {
      cpu.write(CODE_ADDR, new Uint8Array(code));
      cpu.rip = BigInt(CODE_ADDR);
      cpu.gpr[0] = 0x99n;
      expect(cpu.run(1), code.toString()).toBe("SHUTDOWN");
      expect(cpu.vcpu.shutdownVector, code.toString()).toBe(6);
      expect(cpu.gpr[0]).toBe(0x99n);
      cpu.enterLongModeUser(); // a triple fault leaves the vCPU in shutdown state: start afresh
    }
  });
});
