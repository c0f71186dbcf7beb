/**
 * The decoder against iced-x86, an independent disassembler. For every
 * opcode in the table (src/isa/opcodes.ts) we generate encodings — ModRM
 * with every mod/rm shape, SIB with and without base/index, disp8/disp32,
 * RIP-relative, 16-bit addressing (67 in 32-bit mode), REX variants, 66/67,
 * segment and rep prefixes — followed by a fixed tail of bytes that supply
 * the SIB, displacement and immediate, and let both decoders decide how many
 * bytes form the instruction. Compared, in 64-bit and 32-bit mode:
 *   - the length (or both invalid, for opcodes #UD in 64-bit mode)
 *   - the opcode (iced's opcode byte and map; +r forms within 0..7)
 *   - ModRM fields: modrm byte, mod, reg and rm with REX.R/REX.B, and the
 *     ModRM register operand among iced's register operands
 *   - the operand size (iced's o16/o32/o64) and the address size (from the
 *     registers iced's memory operand uses)
 *   - the immediate (and near/far branch targets, moffs)
 *   - the effective address: iced's base + index * scale + displacement
 *     evaluated with the same register values (RIP-relative: iced's target)
 */
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import * as iced from "iced-x86";
import { OPCODES } from "../../src/isa/opcodes.js";
import { TestCpu, CODE_ADDR } from "../support/longmode.js";

const { Decoder, DecoderOptions, Code, OpKind, OpCodeTableKind, MandatoryPrefix, Register } = iced;
type Bits = 64 | 32;

// ---- register values (distinct, with random upper halves) and iced register decoding
const REGVALS: bigint[] = [];
{
  let x = 0x9e3779b97f4a7c15n;
  for (let i = 0; i < 16; i++) {
    x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n);
    REGVALS.push(BigInt.asUintN(64, (x & 0xffffffff00000000n) | BigInt(0x1000 * (i + 1) + 0x35 * i)));
  }
}
interface Gpr { index: number; size: number }
function gprOf(r: iced.Register): Gpr | null {
  if (r >= Register.AL && r <= Register.BL) return { index: r - Register.AL, size: 1 };
  if (r >= Register.AH && r <= Register.BH) return { index: 4 + r - Register.AH, size: 1 };
  if (r >= Register.SPL && r <= Register.R15L) return { index: 4 + r - Register.SPL, size: 1 };
  if (r >= Register.AX && r <= Register.R15W) return { index: r - Register.AX, size: 2 };
  if (r >= Register.EAX && r <= Register.R15D) return { index: r - Register.EAX, size: 4 };
  if (r >= Register.RAX && r <= Register.R15) return { index: r - Register.RAX, size: 8 };
  return null;
}
const mask = (bits: number) => (1n << BigInt(bits)) - 1n;

// ---- encoding generator
const TAIL = [0x88, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x81, 0x93, 0xa5, 0xb7, 0xc9, 0x5b, 0x6d];
let seed = 12345;
const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };
const pick = <T>(a: readonly T[]) => a[rnd(a.length)];

interface Enc { code: number; bytes: number[]; modrmAt: number; rex: number; has67: boolean; why: string }

function opcodeBytes(code: number): number[] {
  const b = code & 0xff;
  switch (code >> 8) {
    case 0: return [b];
    case 1: return [0x0f, b];
    case 2: return [0x0f, 0x38, b];
    default: return [0x0f, 0x3a, b];
  }
}

// ModRM (+ SIB + displacement) shapes for 32/64-bit addressing, and for 16-bit.
function modrmShapes32(reg: number): number[][] {
  const out: number[][] = [];
  for (let rm = 0; rm < 8; rm++) out.push([0xc0 | (reg << 3) | rm]); // register
  for (const mod of [0, 1, 2]) for (let rm = 0; rm < 8; rm++) {
    const m = (mod << 6) | (reg << 3) | rm;
    if (rm === 4) {
      // SIB: a few scale/index/base combinations incl. no index (4) and no base (5 with mod 0)
      for (const sib of [0x00, 0x24, 0x4d, 0x95, 0xe6, 0x25, 0xfb, 0x65]) out.push([m, sib]);
    } else out.push([m]);
  }
  return out;
}
function modrmShapes16(reg: number): number[][] {
  const out: number[][] = [];
  for (const mod of [0, 1, 2, 3]) for (let rm = 0; rm < 8; rm++) out.push([(mod << 6) | (reg << 3) | rm]);
  return out;
}

// ModRM.reg values to try: all 8 for groups and opcodes whose reg field selects something.
function regChoices(name: string): number[] {
  if (/^grp|^mov$|^pop$/.test(name)) return [0, 1, 2, 3, 4, 5, 6, 7];
  return [0, 2, 5, 7];
}

function generate(bits: Bits): Enc[] {
  const out: Enc[] = [];
  let code = 0;
  const add = (prefixes: number[], op: number[], modrm: number[] | null, why: string) => {
    const lastRex = bits === 64 && prefixes.length > 0 && (prefixes[prefixes.length - 1] & 0xf0) === 0x40 ? prefixes[prefixes.length - 1] : 0;
    const bytes = [...prefixes, ...op, ...(modrm ?? []), ...TAIL];
    out.push({ code, bytes, modrmAt: modrm ? prefixes.length + op.length : -1, rex: lastRex, has67: prefixes.includes(0x67), why });
  };
  for (const [c, def] of OPCODES) {
    code = c;
    if (bits === 64 && code >= 0x40 && code <= 0x4f) continue; // REX prefixes in 64-bit mode
    if (code === 0xc4 || code === 0xc5) { // VEX in 64-bit mode and with mod = 3
      if (bits === 64) continue;
    }
    const op = opcodeBytes(code);
    // mandatory prefixes
    let mandatory: number[][] = [[]];
    if (code === 0x2f6) mandatory = [[0x66], [0xf3]];
    else if (code === 0x1b8) mandatory = [[0xf3]];
    else if (code === 0x1bc || code === 0x1bd) mandatory = [[], [0xf3]];
    const rexes = bits === 64 ? [0x48, 0x41, 0x44, 0x42, 0x4f, 0x40, 0x4c] : [];
    const generic: number[][] = [[0x66], [0x2e], [0x64], ...rexes.map((r) => [r]), ...(bits === 64 ? [[0x66, 0x48], [0x48, 0x66], [0x66, 0x41]] : [])];
    const isString = code >= 0xa4 && code <= 0xaf || (code >= 0x6c && code <= 0x6f);
    if (isString) generic.push([0xf3], [0xf2], [0xf3, 0x67], [0xf2, 0x66]);
    for (const mp of mandatory) {
      if (def.modrm) {
        for (const reg of regChoices(def.name)) {
          if (code === 0x8f && reg !== 0) continue; // XOP escape
          const shapes = modrmShapes32(reg);
          for (const s of shapes) {
            if ((code === 0xc4 || code === 0xc5) && (s[0] >> 6) === 3) continue; // VEX
            add(mp, op, s, "plain");
          }
          // prefix variants on a few shapes
          for (let k = 0; k < 4; k++) {
            const s = pick(shapes);
            if ((code === 0xc4 || code === 0xc5) && (s[0] >> 6) === 3) continue;
            add([...pick(generic), ...mp], op, s, "prefixed");
            add([0x67, ...mp], op, s, "67");
          }
          if (bits === 32) for (const s of modrmShapes16(reg)) {
            if ((code === 0xc4 || code === 0xc5) && (s[0] >> 6) === 3) continue;
            if (rnd(3) === 0 || def.name === "lea" || def.name === "mov") add([0x67, ...mp], op, s, "16-bit addressing");
          }
        }
      } else {
        add(mp, op, null, "plain");
        for (const g of generic) add([...g, ...mp], op, null, "prefixed");
        add([0x67, ...mp], op, null, "67");
      }
    }
  }
  return out;
}

// ---- comparison
interface Result {
  compared: number; invalidBoth: number; skippedIcedInvalid: number; mismatches: string[];
  /** how many encodings each check looked at (so a check cannot silently stop running) */
  checked: { modrm: number; rmVsIced: number; opsize: number; addrsize: number; ea: number; riprel: number; imm: number; branch: number; moffs: number };
}

function compareAll(cpu: TestCpu, bits: Bits): Result {
  const res: Result = { compared: 0, invalidBoth: 0, skippedIcedInvalid: 0, mismatches: [], checked: { modrm: 0, rmVsIced: 0, opsize: 0, addrsize: 0, ea: 0, riprel: 0, imm: 0, branch: 0, moffs: 0 } };
  const c = res.checked;
  const encs = generate(bits);
  const rip = BigInt(CODE_ADDR);
  for (let i = 0; i < 16; i++) cpu.gpr[i] = REGVALS[i];
  for (const e of encs) {
    const hex = e.bytes.map((b) => b.toString(16).padStart(2, "0")).join("");
    const bad = (msg: string) => res.mismatches.push(`${bits}-bit ${hex} (${e.why}): ${msg}`);
    cpu.write(CODE_ADDR, Uint8Array.from(e.bytes));
    const ourLen = cpu.decodeLength(rip);
    const dec = new Decoder(bits, Uint8Array.from(e.bytes), DecoderOptions.None);
    dec.ip = rip;
    const ins = dec.decode();
    const oc = ins.opCode;
    try {
      const text = () => { const f = new iced.Formatter(iced.FormatterSyntax.Intel); try { return f.format(ins); } finally { f.free(); } };
      const def = OPCODES.get(e.code)!;
      if (ins.code === Code.INVALID) {
        if (ourLen === -1) res.invalidBoth++;
        else if (bits === 64 && def.inv64) bad(`iced: invalid, ours: length ${ourLen}`);
        else res.skippedIcedInvalid++; // e.g. lea with a register operand: our handler raises #UD when it runs
        continue;
      }
      res.compared++;
      const len = ins.length;
      if (ourLen !== len) { bad(`length ${ourLen}, iced ${len} (${text()})`); continue; }
      const f = (k: number) => cpu.decodedField(k);
      // opcode: the byte we placed, and iced's map + opcode (+r forms: base..base+7)
      const ourOp = f(0);
      const tableBase = oc.table === OpCodeTableKind.Normal ? 0 : oc.table === OpCodeTableKind.T0F ? 0x100 : oc.table === OpCodeTableKind.T0F38 ? 0x200 : 0x300;
      // iced folds a fixed ModRM byte into the opcode (0F 01 D0 xgetbv): split it off
      const icedOp = tableBase | (oc.opCode > 0xff ? oc.opCode >> 8 : oc.opCode);
      if (oc.opCode > 0xff && f(1) !== (oc.opCode & 0xff)) bad(`modrm 0x${f(1).toString(16)}, iced opcode ${oc.opCodeString}`);
      const plusR = /\+r/.test(oc.opCodeString);
      if (ourOp !== e.code) bad(`opcode 0x${ourOp.toString(16)}, placed 0x${e.code.toString(16)}`);
      if (!(ourOp === icedOp || (plusR && ourOp - icedOp >= 0 && ourOp - icedOp < 8))) bad(`opcode 0x${ourOp.toString(16)}, iced 0x${icedOp.toString(16)} (${text()})`);
      // ModRM fields
      if (e.modrmAt >= 0) {
        const m = e.bytes[e.modrmAt];
        const mod = oc.ignoresModBits ? 3 : m >> 6; // mov cr/dr: ModRM always names registers
        c.modrm++;
        const wantReg = ((m >> 3) & 7) | ((e.rex & 4) << 1);
        if (f(1) !== m || f(2) !== mod || f(3) !== wantReg) bad(`modrm/mod/reg ${f(1).toString(16)}/${f(2)}/${f(3)}, want ${m.toString(16)}/${mod}/${wantReg}`);
        if (mod === 3) {
          const wantRm = (m & 7) | ((e.rex & 1) << 3);
          if (f(4) !== wantRm) bad(`rm ${f(4)}, want ${wantRm}`);
          // iced's ModRM.rm register operand (when it is a GPR) must be ours
          const gprs: number[] = [];
          for (let k = 0; k < ins.opCount; k++) if (ins.opKind(k) === OpKind.Register) { const g = gprOf(ins.opRegister(k)); if (g) gprs.push(g.index); }
          if (gprs.length > 0) c.rmVsIced++;
          if (gprs.length > 0 && !gprs.includes(f(4))) bad(`rm ${f(4)} is none of iced's register operands ${gprs} (${text()})`);
        }
      }
      // operand size (iced's o16/o32/o64; not for mandatory-66 opcodes, and group 5 call/jmp/push
      // whose 64-bit default the handler applies once ModRM.reg is known)
      const grp5NearD64 = bits === 64 && ourOp === 0xff && [2, 4, 6].includes((e.bytes[e.modrmAt] >> 3) & 7);
      // port I/O: REX.W is ignored; the I/O handlers cap the size at 4
      const io = [0x6d, 0x6f, 0xe5, 0xe7, 0xed, 0xef].includes(ourOp) && f(5) === 8 && oc.operandSize === 32;
      if (oc.operandSize !== 0 && oc.mandatoryPrefix !== MandatoryPrefix.P66 && !grp5NearD64 && !io) {
        c.opsize++;
        if (f(5) * 8 !== oc.operandSize) bad(`opsize ${f(5)}, iced o${oc.operandSize} (${text()})`);
      }
      // memory operand: address size and effective address
      for (let k = 0; k < ins.opCount; k++) {
        const kind = ins.opKind(k);
        if (kind === OpKind.MemorySegSI || kind === OpKind.MemorySegESI || kind === OpKind.MemorySegRSI
          || kind === OpKind.MemorySegDI || kind === OpKind.MemorySegEDI || kind === OpKind.MemorySegRDI
          || kind === OpKind.MemoryESDI || kind === OpKind.MemoryESEDI || kind === OpKind.MemoryESRDI) {
          const want = [OpKind.MemorySegSI, OpKind.MemorySegDI, OpKind.MemoryESDI].includes(kind) ? 2
            : [OpKind.MemorySegESI, OpKind.MemorySegEDI, OpKind.MemoryESEDI].includes(kind) ? 4 : 8;
          c.addrsize++;
          if (f(6) !== want) bad(`addrsize ${f(6)}, iced ${want} (string operand, ${text()})`);
        }
        if (kind !== OpKind.Memory) continue;
        const base = ins.memoryBase, index = ins.memoryIndex;
        const disp = ins.memoryDisplacementU64;
        if (e.modrmAt < 0 && (base !== Register.None || index !== Register.None)) { // xlat [rBX + AL]
          const g = gprOf(base);
          if (!g || f(6) !== g.size) bad(`addrsize ${f(6)}, iced base register ${base} (${text()})`);
          continue;
        }
        if (e.modrmAt < 0) { // moffs
          const w = BigInt(ins.memoryDisplSize * 8);
          const ours = (BigInt.asUintN(32, BigInt(f(8))) << 32n) | BigInt.asUintN(32, BigInt(f(7)));
          if ((ours & mask(Number(w))) !== (disp & mask(Number(w)))) bad(`moffs 0x${ours.toString(16)}, iced 0x${disp.toString(16)}`);
          if (f(6) !== ins.memoryDisplSize) bad(`addrsize ${f(6)}, iced ${ins.memoryDisplSize} (moffs)`);
          c.moffs++;
          continue;
        }
        if (f(2) === 3) { bad(`mod 3 but iced has a memory operand (${text()})`); continue; }
        let asize = 0;
        let ea: bigint;
        if (base === Register.RIP || base === Register.EIP) {
          asize = base === Register.RIP ? 8 : 4;
          ea = disp;
          c.riprel++;
        } else {
          ea = disp;
          for (const [r, scale] of [[base, 1], [index, ins.memoryIndexScale]] as const) {
            if (r === Register.None) continue;
            const g = gprOf(r);
            if (!g) { bad(`unexpected address register ${r}`); continue; }
            asize = g.size;
            ea += (REGVALS[g.index] & mask(g.size * 8)) * BigInt(scale);
          }
        }
        if (asize === 0) asize = bits === 64 ? (e.has67 ? 4 : 8) : (e.has67 ? 2 : 4); // absolute disp32/disp16
        ea &= mask(asize * 8);
        c.addrsize++; c.ea++;
        if (f(6) !== asize) bad(`addrsize ${f(6)}, iced ${asize} (${text()})`);
        const ours = BigInt.asUintN(32, BigInt(f(9)));
        if (ours !== (ea & 0xffffffffn)) bad(`ea offset 0x${ours.toString(16)}, iced 0x${(ea & 0xffffffffn).toString(16)} (${text()})`);
      }
      // immediates and branch targets
      const ourImm = (BigInt.asUintN(32, BigInt(f(8))) << 32n) | BigInt.asUintN(32, BigInt(f(7)));
      // (only encoded immediates: iced shows D0-D3's count of 1 as an immediate too)
      for (let k = 0; k < ins.opCount && def.imm !== undefined; k++) {
        const kind = ins.opKind(k);
        let width = 0;
        switch (kind) {
          case OpKind.Immediate8: width = 8; break;
          case OpKind.Immediate16: case OpKind.Immediate8to16: width = 16; break;
          case OpKind.Immediate32: case OpKind.Immediate8to32: width = 32; break;
          case OpKind.Immediate64: case OpKind.Immediate8to64: case OpKind.Immediate32to64: width = 64; break;
          default: break;
        }
        if (width) {
          const want = ins.immediate(k) & mask(width);
          c.imm++;
          if ((ourImm & mask(width)) !== want) bad(`imm 0x${ourImm.toString(16)}, iced 0x${want.toString(16)} (${text()})`);
          break; // the first immediate; enter's second (Immediate8_2nd) is imm2
        }
        if (kind === OpKind.NearBranch16 || kind === OpKind.NearBranch32 || kind === OpKind.NearBranch64) {
          const w = kind === OpKind.NearBranch16 ? 16 : kind === OpKind.NearBranch32 ? 32 : 64;
          const target = (rip + BigInt(len) + ourImm) & mask(w);
          c.branch++;
          if (target !== ins.nearBranchTarget) bad(`branch target 0x${target.toString(16)}, iced 0x${ins.nearBranchTarget.toString(16)} (${text()})`);
        }
        if (kind === OpKind.FarBranch16 || kind === OpKind.FarBranch32) {
          const want = BigInt(kind === OpKind.FarBranch16 ? ins.farBranch16 : ins.farBranch32);
          if ((ourImm & mask(kind === OpKind.FarBranch16 ? 16 : 32)) !== want) bad(`far offset 0x${ourImm.toString(16)}, iced 0x${want.toString(16)}`);
        }
      }
    } finally {
      oc.free();
      ins.free();
      dec.free();
    }
  }
  return res;
}

describe("decoder vs iced-x86", () => {
  let cpu: TestCpu;
  beforeAll(() => { cpu = new TestCpu(); });
  afterAll(() => { /* iced objects are freed per encoding */ });

  for (const bits of [64, 32] as const) {
    it(`${bits}-bit mode: lengths and fields match for every generated encoding`, () => {
      if (bits === 64) cpu.enterLongModeUser(); else cpu.enterProtectedMode32();
      const r = compareAll(cpu, bits);
      // enough coverage to mean something, and every mismatch reported
      console.log(`decoder vs iced-x86, ${bits}-bit: ${r.compared} encodings compared, ${r.invalidBoth} invalid in both, ${r.skippedIcedInvalid} invalid for iced only (skipped); checks: ${JSON.stringify(r.checked)}`);
      expect(r.compared).toBeGreaterThan(5000);
      for (const [k, n] of Object.entries(r.checked)) if (k !== "riprel" || bits === 64) expect(n, `${k} checks`).toBeGreaterThan(10);
      if (r.mismatches.length) expect.fail(`${r.mismatches.length} mismatches (of ${r.compared} compared):\n${r.mismatches.slice(0, Number(process.env.DECODER_SHOW ?? 60)).join("\n")}`);
      if (bits === 64) expect(r.invalidBoth).toBeGreaterThan(10); // the inv64 opcodes
    });
  }
});
