/**
 * Replays the host-CPU instruction vectors (test/vectors/data/*.json, format
 * in test/vectors/README.md) through the interpreter: each case runs exactly
 * one instruction in 64-bit mode at CPL 3 and must leave the registers, the
 * status flags and both memory buffers as the real CPU did. Registers the
 * form does not list must keep their pattern; the bytes around the buffers
 * must stay untouched.
 */
import { describe, it, expect, beforeAll } from "vitest";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../src/platform/node.js";
import { GPR_NAMES } from "../../src/vcpu.js";
import { TestCpu, CODE_ADDR } from "../support/longmode.js";

interface VecState { [key: string]: string }
interface VecCase { in: VecState; out: VecState }
interface VecForm { name: string; bytes: string; regs: string[]; cases: VecCase[] }
interface VecFile { forms: VecForm[] }

const DATA_DIR = join(packageRoot(), "test", "vectors", "data");
const SRC = 0x10000, DST = 0x20000, BUF_LEN = 32, GUARD = 32;
const FLAGS_MASK = 0xcd5n | 2n; // OF DF SF ZF AF PF CF and bit 1
const FLAG_NAMES: [bigint, string][] = [[0x800n, "OF"], [0x400n, "DF"], [0x80n, "SF"], [0x40n, "ZF"], [0x10n, "AF"], [0x4n, "PF"], [0x1n, "CF"]];
const MAX_REPORTED_CASES = 3;

/** Unlisted registers hold this pattern, different per register, and must keep it. */
const PATTERN = GPR_NAMES.map((_, i) => 0x5ac3_0000_0000_0000n | (BigInt(i + 1) * 0x0101_0101_0101n));

function hexBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
}
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const hex = (v: bigint) => "0x" + v.toString(16);

function flagDiff(want: bigint, got: bigint): string {
  const d = want ^ got;
  return FLAG_NAMES.filter(([bit]) => (d & bit) !== 0n).map(([bit, n]) => `${n}=${(got & bit) !== 0n ? 1 : 0} (want ${(want & bit) !== 0n ? 1 : 0})`).join(" ");
}

/** A case decoded once into numbers, ready to load. */
interface Prepared {
  regs: [number, bigint, bigint][]; // [gpr index, in, out]
  flagsIn: bigint;
  flagsOut: bigint;
  src?: [Uint8Array, Uint8Array]; // in, out
  dst?: [Uint8Array, Uint8Array];
}
function prepare(form: VecForm, c: VecCase): Prepared {
  const regs = form.regs.map((r): [number, bigint, bigint] => {
    const i = GPR_NAMES.indexOf(r as (typeof GPR_NAMES)[number]);
    if (i < 0 || r === "rsp") throw new Error(`${form.name}: unexpected register ${r}`);
    return [i, BigInt(c.in[r]), BigInt(c.out[r])];
  });
  const p: Prepared = { regs, flagsIn: BigInt(c.in.rflags), flagsOut: BigInt(c.out.rflags) };
  if (c.in.src !== undefined) {
    p.src = [hexBytes(c.in.src), hexBytes(c.out.src)];
    p.dst = [hexBytes(c.in.dst), hexBytes(c.out.dst)];
  }
  return p;
}

const GUARD_BYTES = new Uint8Array(BUF_LEN + 2 * GUARD).fill(0xe7);

/** Runs one case; returns a description of every difference (empty = match). */
function runCase(cpu: TestCpu, len: number, p: Prepared): string[] {
  const g = cpu.gpr;
  for (let i = 0; i < 16; i++) g[i] = PATTERN[i];
  for (const [i, v] of p.regs) g[i] = v;
  if (p.src && p.dst) {
    cpu.write(SRC - GUARD, GUARD_BYTES);
    cpu.write(DST - GUARD, GUARD_BYTES);
    cpu.write(SRC, p.src[0]);
    cpu.write(DST, p.dst[0]);
  }
  cpu.rflags = p.flagsIn | 2n;
  cpu.rip = BigInt(CODE_ADDR);
  const before = cpu.instructions;
  const exit = cpu.run(1);
  const diffs: string[] = [];
  if (exit !== "BUDGET") {
    let why = `exit ${exit}`;
    if (exit === "INTERNAL_ERROR") why += ` (unimplemented at ${hex(cpu.vcpu.internalError().rip)})`;
    if (exit === "SHUTDOWN") why += ` (exception vector ${cpu.vcpu.shutdownVector})`;
    return [why];
  }
  const rip = cpu.rip - BigInt(CODE_ADDR);
  if (rip !== BigInt(len)) diffs.push(`rip advanced by ${rip}, want ${len}`);
  if (cpu.instructions !== before + 1n) diffs.push(`instruction count advanced by ${cpu.instructions - before}, want 1`);
  const listed = new Set<number>();
  for (const [i, , want] of p.regs) {
    listed.add(i);
    if (g[i] !== want) diffs.push(`${GPR_NAMES[i]} = ${hex(g[i])}, want ${hex(want)}`);
  }
  for (let i = 0; i < 16; i++) {
    if (!listed.has(i) && g[i] !== PATTERN[i]) diffs.push(`unlisted ${GPR_NAMES[i]} changed to ${hex(g[i])}`);
  }
  const flags = cpu.rflags & FLAGS_MASK;
  if (flags !== p.flagsOut) diffs.push(`rflags = ${hex(flags)}, want ${hex(p.flagsOut)}: ${flagDiff(p.flagsOut, flags)}`);
  for (const [name, base, buf] of [["src", SRC, p.src], ["dst", DST, p.dst]] as const) {
    if (!buf) continue;
    const got = cpu.view(base, BUF_LEN);
    if (toHex(got) !== toHex(buf[1])) diffs.push(`${name} = ${toHex(got)}, want ${toHex(buf[1])}`);
    const lo = cpu.view(base - GUARD, GUARD), hi = cpu.view(base + BUF_LEN, GUARD);
    if (lo.some((b) => b !== 0xe7) || hi.some((b) => b !== 0xe7)) diffs.push(`${name}: bytes outside the buffer were written`);
  }
  return diffs;
}

function describeCase(form: VecForm, idx: number, diffs: string[]): string {
  const c = form.cases[idx];
  const inputs = Object.entries(c.in).map(([k, v]) => `${k}=${v}`).join(" ");
  return `  case ${idx}: in ${inputs}\n` + diffs.map((d) => `      ${d}`).join("\n");
}

const files = readdirSync(DATA_DIR).filter((f) => f.endsWith(".json")).sort();
const loaded = files.map((f) => ({ file: f, doc: JSON.parse(readFileSync(join(DATA_DIR, f), "utf8")) as VecFile }));

// Every case runs twice: through the block cache's uops (the default) and
// through the one-instruction-at-a-time path (block_cache=0).
describe.each([true, false])("host-CPU instruction vectors (block_cache=%s)", (blockCache) => {
  let cpu: TestCpu;
  beforeAll(() => {
    cpu = new TestCpu(undefined, { block_cache: blockCache });
    cpu.enterLongModeUser();
  });

  it("runs the cases in 64-bit mode at CPL 3 (privileged instructions fault)", () => {
    for (const code of [[0xfa], [0x0f, 0x20, 0xc0], [0xf4]]) { // cli, mov rax, cr0, hlt
      cpu.write(CODE_ADDR, Uint8Array.from(code));
      cpu.rip = BigInt(CODE_ADDR);
      cpu.rflags = 2n;
      expect(cpu.run(1), code.toString()).toBe("SHUTDOWN"); // #GP, no IDT: triple fault
      expect(cpu.vcpu.shutdownVector).toBe(13);
      cpu.enterLongModeUser();
    }
    cpu.write(CODE_ADDR, Uint8Array.from([0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8])); // mov rax, imm64: a 10-byte instruction only in 64-bit mode
    cpu.rip = BigInt(CODE_ADDR);
    expect(cpu.run(1)).toBe("BUDGET");
    expect(cpu.gpr[0]).toBe(0x0807060504030201n);
  });

  it("has the expected corpus (1098 forms x 64 cases)", () => {
    const forms = loaded.flatMap((l) => l.doc.forms);
    expect(forms.length).toBe(1098);
    for (const f of forms) expect(f.cases.length, f.name).toBe(64);
  });

  for (const { file, doc } of loaded) {
    it(`${file}: every case matches the host CPU`, () => {
      const report: string[] = [];
      let cases = 0, bad = 0;
      for (const form of doc.forms) {
        const code = hexBytes(form.bytes);
        cpu.write(CODE_ADDR, code);
        const failing: string[] = [];
        let nbad = 0;
        form.cases.forEach((c, idx) => {
          const diffs = runCase(cpu, code.length, prepare(form, c));
          cases++;
          if (diffs.length) {
            nbad++;
            if (failing.length < MAX_REPORTED_CASES) failing.push(describeCase(form, idx, diffs));
          }
        });
        if (nbad) {
          bad += nbad;
          report.push(`${form.name} [${form.bytes}]: ${nbad}/${form.cases.length} cases differ\n${failing.join("\n")}`);
        }
      }
      expect(cases).toBe(doc.forms.length * 64);
      if (report.length) {
        expect.fail(`${file}: ${report.length} of ${doc.forms.length} forms, ${bad} of ${cases} cases differ from the host CPU\n${report.join("\n")}`);
      }
    });
  }
});
