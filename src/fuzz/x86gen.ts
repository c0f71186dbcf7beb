/**
 * Instruction snippets for the guest fuzzer: short byte sequences that do
 * something interesting to a hypervisor (control registers, MSRs, descriptor
 * tables, privilege changes, port I/O, INVLPG, string operations over page
 * boundaries, division traps...), mixed by the caller with random bytes.
 * Operands come from a GenContext that knows the guest's layout, so a good
 * share of the snippets hits mapped memory, real page tables and real
 * descriptors rather than faulting at once.
 */
import type { Rng } from "./rng.js";

export interface GenContext {
  rng: Rng;
  /** The mode the snippet is aimed at (the guest may be in another by then). */
  bits: 32 | 64;
  /** An interesting linear address (RAM, page tables, MMIO, end of RAM, non-canonical...). */
  addr(): bigint;
  /** An interesting operand value. */
  value(): bigint;
  cr0(): bigint;
  cr3(): bigint;
  cr4(): bigint;
  efer(): bigint;
  msr(): number;
  selector(): number;
  /** A low address (< 2 GiB) holding a descriptor-table pointer image (limit16, base). */
  tablePtr(): number;
  /** A low address (< 2 GiB) holding a far pointer (offset then selector). */
  farPtr(): number;
  /** A code address worth jumping to. */
  codeTarget(): bigint;
}

type Bytes = number[];

function le(v: bigint | number, n: number): Bytes {
  let x = BigInt.asUintN(n * 8, BigInt(v));
  const out: Bytes = [];
  for (let i = 0; i < n; i++) { out.push(Number(x & 0xffn)); x >>= 8n; }
  return out;
}

/** mov r, imm (r 0..15 in 64-bit mode, 0..7 otherwise). */
export function movImm(g: GenContext, r: number, v: bigint): Bytes {
  v = BigInt.asUintN(64, v);
  if (g.bits === 64) {
    const rexb = r >= 8 ? 1 : 0;
    if (v <= 0xffffffffn) return [...(rexb ? [0x41] : []), 0xb8 + (r & 7), ...le(v, 4)];
    return [0x48 | rexb, 0xb8 + (r & 7), ...le(v, 8)];
  }
  return [0xb8 + (r & 7), ...le(v, 4)];
}
/** ModRM + SIB for an absolute [disp32] operand (no RIP-relative surprise in 64-bit mode). */
function absMem(reg: number, disp: number): Bytes { return [((reg & 7) << 3) | 4, 0x25, ...le(disp, 4)]; }
function w(g: GenContext): Bytes { return g.bits === 64 && g.rng.chance(0.7) ? [0x48] : []; }
/** A register other than rsp (keeps some stack usable). */
function gpr(g: GenContext): number { const r = g.rng.pick([0, 1, 2, 3, 5, 6, 7]); return r; }

const PORTS = [0x3f8, 0x3f9, 0x3fd, 0xf4, 0x20, 0x21, 0xa0, 0x510, 0x511, 0x8900, 0x80, 0x60, 0x64, 0xcf8, 0xcfc, 0x70, 0x71, 0xffff, 0];

type Snippet = (g: GenContext) => Bytes;
/** A weighted choice among generators (only the chosen one runs). */
function lazy(g: GenContext, choices: (readonly [number, () => Bytes])[]): Bytes { return g.rng.weighted(choices)(); }

const snippets: (readonly [number, Snippet])[] = [
  // registers get interesting values (addresses, boundaries)
  [14, (g) => movImm(g, gpr(g), g.rng.chance(0.6) ? g.addr() : g.value())],
  // mov crN, reg (and the occasional invalid CR number / CR8)
  [6, (g) => {
    const cr = g.rng.weighted([[4, 0], [3, 3], [4, 4], [1, 2], [1, 8], [1, g.rng.int(0, 15)]] as const);
    const v = cr === 0 ? g.cr0() : cr === 3 ? g.cr3() : cr === 4 ? g.cr4() : g.value();
    const rexr = cr >= 8 ? 0x44 : 0;
    return [...movImm(g, 0, v), ...(rexr && g.bits === 64 ? [rexr] : []), 0x0f, 0x22, 0xc0 | ((cr & 7) << 3)];
  }],
  // mov reg, crN / drN, mov drN, reg
  [2, (g) => [0x0f, g.rng.pick([0x20, 0x21, 0x23]), 0xc0 | (g.rng.int(0, 7) << 3) | gpr(g)]],
  // wrmsr / rdmsr
  [5, (g) => {
    const v = g.rng.chance(0.5) && g.rng.chance(0.5) ? g.value() : g.efer();
    return [...movImm(g, 1, BigInt(g.msr())), ...movImm(g, 0, v & 0xffffffffn), ...movImm(g, 2, v >> 32n), 0x0f, g.rng.chance(0.8) ? 0x30 : 0x32];
  }],
  // lgdt / lidt / sgdt / sidt / lmsw / smsw / invlpg [abs]
  [5, (g) => [...(g.bits === 64 && g.rng.chance(0.2) ? [0x66] : []), 0x0f, 0x01, ...absMem(g.rng.weighted([[4, 2], [4, 3], [1, 0], [1, 1], [1, 4], [1, 6], [1, 7]] as const), g.tablePtr())]],
  // lldt / ltr / verr / verw / str / sldt with a selector in ax
  [3, (g) => [...movImm(g, 0, BigInt(g.selector())), 0x0f, 0x00, 0xc0 | (g.rng.int(0, 5) << 3)]],
  // lar / lsl
  [1, (g) => [...movImm(g, 0, BigInt(g.selector())), 0x0f, g.rng.pick([0x02, 0x03]), 0xc8]],
  // mov sreg, ax (ds es fs gs ss, occasionally cs -> #UD)
  [5, (g) => [...movImm(g, 0, BigInt(g.selector())), 0x8e, 0xc0 | (g.rng.weighted([[3, 3], [2, 0], [2, 4], [2, 5], [3, 2], [1, 1], [1, 6]] as const) << 3)]],
  // int n / int3 / into / int1
  [5, (g) => lazy(g, [[6, () => [0xcd, g.rng.chance(0.5) ? g.rng.int(0, 255) : g.rng.pick([0x80, 3, 8, 13, 14, 0x20, 0xff])]], [1, () => [0xcc]], [1, () => [0xce]], [1, () => [0xf1]]])],
  // iret (16/32/64-bit)
  [4, (g) => [...g.rng.pick([[], [0x66], [0x48]] as Bytes[]).filter((b) => b !== 0x48 || g.bits === 64), 0xcf]],
  // push an iret frame, then iret (lands in another privilege level / mode sometimes)
  [3, (g) => {
    const out: Bytes = [];
    const push = (v: bigint) => out.push(...movImm(g, 0, v), 0x50);
    if (g.bits === 64) { push(BigInt(g.selector())); push(g.addr()); }
    push(g.rng.chance(0.5) ? 0x2n : g.value() & 0x3f7fd5n | 2n);
    push(BigInt(g.selector()));
    push(g.codeTarget());
    out.push(...(g.bits === 64 ? [0x48] : []), 0xcf);
    return out;
  }],
  // syscall / sysret / sysenter / sysexit / swapgs / rdtscp
  [4, (g) => lazy(g, [[3, () => [0x0f, 0x05]], [2, () => [...w(g), 0x0f, 0x07]], [2, () => [0x0f, 0x34]], [2, () => [...w(g), 0x0f, 0x35]], [2, () => [0x0f, 0x01, 0xf8]], [1, () => [0x0f, 0x01, 0xf9]]])],
  // port I/O
  [5, (g) => {
    const port = g.rng.chance(0.8) ? g.rng.pick(PORTS) : g.rng.int(0, 0xffff);
    return [...movImm(g, 2, BigInt(port)), ...(g.rng.chance(0.3) ? [0x66] : []), g.rng.pick([0xec, 0xed, 0xee, 0xef, 0xe4, 0xe5, 0xe6, 0xe7]), ...(g.rng.chance(0.5) ? [port & 0xff] : [])];
  }],
  // rep ins / outs
  [2, (g) => [...movImm(g, 2, BigInt(g.rng.pick(PORTS))), ...movImm(g, 1, BigInt(g.rng.int(0, 40))), ...movImm(g, 7, g.addr()), ...movImm(g, 6, g.addr()), 0xf3, g.rng.pick([0x6c, 0x6d, 0x6e, 0x6f])]],
  // invlpg [reg]
  [3, (g) => { const r = gpr(g); return [...movImm(g, r, g.addr()), 0x0f, 0x01, 0x38 | r]; }],
  // far jmp / call through memory (m16:32 / m16:64), direct far jmp/call in 32-bit code, retf
  [4, (g) => {
    const k = g.rng.int(0, 4);
    if (k === 0 && g.bits === 32) return [g.rng.pick([0xea, 0x9a]), ...le(g.codeTarget(), 4), ...le(g.selector(), 2)];
    if (k === 1) return g.rng.pick([[0xcb], [0xca, 8, 0], [0x48, 0xcb], [0x66, 0xcb]]).filter((b, i) => i > 0 || b !== 0x48 || g.bits === 64);
    return [...w(g), 0xff, ...absMem(g.rng.pick([3, 5]), g.farPtr())];
  }],
  // stack: push/pop/pushf/popf/pusha/popa/leave/enter, stack pointer games
  [6, (g) => lazy(g, [
    [3, () => [0x50 + g.rng.int(0, 7)]], [3, () => [0x58 + gpr(g)]], [2, () => [0x9c]], [3, () => [...(g.rng.chance(0.3) ? [0x66] : []), ...movImm(g, 0, g.value()), 0x50, 0x9d]],
    [1, () => [0x60]], [1, () => [0x61]], [1, () => [0xc9]], [2, () => [0xc8, g.rng.int(0, 255), g.rng.int(0, 255), g.rng.pick([0, 1, 2, 31, 255])]],
    [2, () => movImm(g, 4, g.addr())], [1, () => [0x0f, 0xa0]], [1, () => [0x0f, 0xa1]], [1, () => [0x0f, 0xa9]], [1, () => [0x07]], [1, () => [0x17]], [1, () => [0x1f]],
  ])],
  // flags / misc one-byte
  [4, (g) => [g.rng.weighted([[2, 0xfa], [3, 0xfb], [1, 0xfc], [1, 0xfd], [1, 0xf4], [1, 0x9e], [1, 0x9f], [1, 0xf5], [1, 0xd7], [1, 0x27], [1, 0x2f], [1, 0x37], [1, 0x3f]] as const)]],
  // clts / wbinvd / invd / cpuid / rdtsc / rdpmc / ud2
  [2, (g) => [0x0f, g.rng.pick([0x06, 0x09, 0x08, 0xa2, 0x31, 0x33, 0x0b])]],
  // rep string operations with random counts and pointers
  [6, (g) => {
    const out: Bytes = [];
    out.push(...movImm(g, 1, g.rng.chance(0.7) ? BigInt(g.rng.int(0, 0x3000)) : g.value()));
    out.push(...movImm(g, 6, g.addr()), ...movImm(g, 7, g.addr()));
    if (g.rng.chance(0.3)) out.push(g.rng.pick([0xfc, 0xfd]));
    if (g.rng.chance(0.2)) out.push(0x67);
    out.push(g.rng.pick([0xf3, 0xf3, 0xf2]), ...w(g), g.rng.pick([0xa4, 0xa5, 0xaa, 0xab, 0xa6, 0xa7, 0xac, 0xad, 0xae, 0xaf]));
    return out;
  }],
  // division traps: div by zero, INT_MIN / -1 in every width
  [4, (g) => {
    const width = g.rng.pick(g.bits === 64 ? [8, 16, 32, 64] : [8, 16, 32]);
    const out: Bytes = [];
    const min = width === 64 ? 0x8000000000000000n : width === 32 ? 0x80000000n : width === 16 ? 0x8000n : 0x80n;
    out.push(...movImm(g, 0, g.rng.chance(0.6) ? min : g.value()));
    out.push(...movImm(g, 2, g.rng.chance(0.5) ? -1n : g.value()));
    out.push(...movImm(g, 1, g.rng.pick([0n, -1n, 1n, 2n, g.value()])));
    const pre = width === 64 ? [0x48] : width === 16 ? [0x66] : [];
    out.push(...pre, width === 8 ? 0xf6 : 0xf7, g.rng.pick([0xf1, 0xf9, 0xe1, 0xe9])); // div/idiv/mul/imul ecx
    return out;
  }],
  // read-modify-write and locked ops on interesting memory
  [8, (g) => {
    const r = g.rng.pick([3, 6, 7]);
    const out = [...movImm(g, r, g.addr())];
    const mod = g.rng.chance(0.5) ? 0x00 : 0x80;
    const m = (reg: number) => { const b = [mod | ((reg & 7) << 3) | r]; if (mod === 0x80) b.push(...le(g.rng.chance(0.5) ? g.rng.int(-16, 4096 + 16) : g.rng.u32(), 4)); return b; };
    const op = g.rng.int(0, 9);
    const lock = g.rng.chance(0.3) ? [0xf0] : [];
    switch (op) {
      case 0: out.push(...w(g), 0x89, ...m(gpr(g))); break; // mov [m], r
      case 1: out.push(...w(g), 0x8b, ...m(gpr(g))); break; // mov r, [m]
      case 2: out.push(...lock, ...w(g), 0x81, ...m(g.rng.int(0, 7)), ...le(g.rng.u32(), 4)); break; // alu [m], imm
      case 3: out.push(...lock, ...w(g), 0x0f, g.rng.pick([0xab, 0xb3, 0xbb, 0xa3]), ...m(gpr(g))); break; // bt* [m], r (bit offsets far away)
      case 4: out.push(...lock, ...w(g), 0x0f, g.rng.pick([0xb0, 0xb1, 0xc0, 0xc1]), ...m(gpr(g))); break; // cmpxchg / xadd
      case 5: out.push(...lock, ...w(g), 0x0f, 0xc7, ...m(1)); break; // cmpxchg8b / 16b
      case 6: out.push(...lock, ...w(g), 0x87, ...m(gpr(g))); break; // xchg
      case 7: out.push(...w(g), 0xc7, ...m(0), ...le(g.rng.u32(), 4)); break;
      case 8: out.push(...w(g), 0xd3, ...m(g.rng.int(0, 7))); break; // shifts by cl
      default: out.push(...lock, ...w(g), 0xf7, ...m(g.rng.pick([2, 3]))); break; // not / neg
    }
    return out;
  }],
  // moffs loads and stores (64-bit absolute addresses in long mode)
  [2, (g) => [...w(g), g.rng.pick([0xa0, 0xa1, 0xa2, 0xa3]), ...le(g.addr(), g.bits === 64 ? 8 : 4)]],
  // self-modifying code: store into the code just ahead
  [2, (g) => g.bits === 64 ? [0xc6, 0x05, ...le(g.rng.int(0, 64), 4), g.rng.u32() & 0xff] : [0xe8, 0, 0, 0, 0, 0x58, 0xc6, 0x40, g.rng.int(8, 60), g.rng.u32() & 0xff]],
  // control flow
  [6, (g) => lazy(g, [
    [3, () => [0xeb, g.rng.int(0, 255)]], [2, () => [0xe9, ...le(g.rng.int(-0x3000, 0x3000), 4)]], [2, () => [0xe8, ...le(g.rng.int(-0x3000, 0x3000), 4)]],
    [2, () => [0x70 + g.rng.int(0, 15), g.rng.int(0, 255)]], [2, () => [0xc3]], [1, () => [0xc2, g.rng.int(0, 255), 0]],
    [3, () => [...movImm(g, 0, g.codeTarget()), 0xff, g.rng.pick([0xe0, 0xd0])]], [1, () => [g.rng.pick([0xe0, 0xe1, 0xe2, 0xe3]), g.rng.int(0, 255)]],
    [1, () => [...movImm(g, 0, g.value()), 0xff, g.rng.pick([0xe0, 0xd0])]],
  ])],
  // arithmetic soup
  [6, (g) => [...w(g), g.rng.pick([0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x85, 0x87, 0x8d, 0x0f]), g.rng.int(0xc0, 0xff)]],
  // prefix soup in front of a random opcode
  [4, (g) => {
    const out: Bytes = [];
    const n = g.rng.int(1, 6);
    for (let i = 0; i < n; i++) out.push(g.rng.pick([0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x40 + g.rng.int(0, 15)]));
    out.push(...g.rng.bytes(g.rng.int(1, 8)));
    return out;
  }],
  // two-byte map at random
  [3, (g) => [0x0f, g.rng.int(0, 255), ...g.rng.bytes(g.rng.int(1, 6))]],
  // plain random bytes
  [8, (g) => [...g.rng.bytes(g.rng.int(1, 16))]],
];

/** One snippet for the context's mode. */
export function snippet(g: GenContext): Bytes { return g.rng.weighted(snippets)(g); }

/** Fill `out` with snippets (share `structured`) and random runs, until full. */
export function fillCode(g: GenContext, out: Uint8Array, structured: number): void {
  let i = 0;
  while (i < out.length) {
    const b = g.rng.chance(structured) ? snippet(g) : [...g.rng.bytes(g.rng.int(1, 24))];
    for (let j = 0; j < b.length && i < out.length; j++) out[i++] = b[j]!;
  }
}
