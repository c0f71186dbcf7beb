/**
 * Builds a random guest for the fuzzer from a PRNG: the contents of guest RAM
 * (code pages, GDT, IDT, TSS, LDT, descriptor-table and far pointer images,
 * page tables for 2-level, PAE and 4-level paging with deliberate nastiness)
 * and, per episode, a random vCPU state (32-bit protected mode with or
 * without paging, PAE, long mode, compatibility mode, real mode; CPL 0 or 3;
 * sometimes control-register combinations no real CPU could be in).
 *
 * Guest-physical layout (RAM is at least 4 MiB):
 *   0x10000 GDT   0x11000 IDT   0x12000 TSS (+ I/O bitmap, 3 pages)
 *   0x15000 descriptor-table pointer images, far pointer images
 *   0x16000 LDT
 *   0x20000-0x40000, 0x300000-0x320000   page-table pool (2 x 32 pages)
 *   0x40000-0x50000, 0x200000-0x204000   code (random snippets and bytes)
 *   0x60000-0x80000 stacks (user 0x6f000, kernel 0x7f000, IST below it)
 *   0x80000-0xa0000 and the last 16 pages of RAM: random data
 * Everything below 16 MiB is identity-mapped by the page tables, so linear
 * addresses past the end of RAM reach MMIO exits.
 */
import type { Vm } from "../vm.js";
import type { Vcpu, SegName } from "../vcpu.js";
import { Rng } from "./rng.js";
import { fillCode, type GenContext } from "./x86gen.js";

export const GDT_ADDR = 0x10000;
export const IDT_ADDR = 0x11000;
export const TSS_ADDR = 0x12000;
export const PTRS_ADDR = 0x15000;
export const FARPTRS_ADDR = 0x15800;
export const LDT_ADDR = 0x16000;
export const CODE_RANGES: readonly [number, number][] = [[0x40000, 0x50000], [0x200000, 0x204000]];
const POOLS: readonly [number, number][] = [[0x20000, 0x40000], [0x300000, 0x320000]];
const USER_STACK = 0x6f000;
const KERNEL_STACK = 0x7f000;
const IDENTITY = 16 * 1024 * 1024;
const HOLE_START = 0xa0000, HOLE_END = 0x100000;

// GDT selectors (Linux-like, so STAR works for syscall/sysret)
export const SEL = {
  code32: 0x08, code64: 0x10, data: 0x18, ucode32: 0x23, udata: 0x2b, ucode64: 0x33, code16: 0x38,
  tss: 0x40, ldt: 0x50, gate: 0x60, data16: 0x70, conforming: 0x78,
} as const;
const GDT_ENTRIES = 32;

// page-table entry bits
const P = 1n, RW = 2n, US = 4n, PWT = 8n, PCD = 0x10n, A = 0x20n, D = 0x40n, PS = 0x80n, G = 0x100n, NX = 1n << 63n;

export type StartMode = "real" | "pm32" | "pm32-paging" | "pae" | "long64" | "compat";

/** What the episode generator and the checks need to know about a built guest. */
export interface GuestLayout {
  ramSize: number;
  roots: { pml4: number; pd32: number; pdpt: number };
  poolPages: number[];
}

const u64 = (v: bigint) => BigInt.asUintN(64, v);

/** Guest RAM as the fuzzer builds it (the PC hole is never written). */
class Ram {
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
    this.dv = new DataView(this.bytes.buffer);
  }
  set64(gpa: number, v: bigint): void { this.dv.setBigUint64(gpa, u64(v), true); }
  set32(gpa: number, v: number | bigint): void { this.dv.setUint32(gpa, Number(BigInt.asUintN(32, BigInt(v))), true); }
  set16(gpa: number, v: number): void { this.dv.setUint16(gpa, v & 0xffff, true); }
  get64(gpa: number): bigint { return this.dv.getBigUint64(gpa, true); }
}

/** Descriptor (8 bytes) from base/limit/attr (attr packed as in the vCPU struct). */
function segDesc(base: number, limit: number, attr: number): bigint {
  const g = (attr & 0x8000) !== 0;
  const lim = g ? limit >>> 12 : limit;
  return BigInt(lim & 0xffff) | (BigInt(base & 0xffffff) << 16n) | (BigInt(attr & 0xff) << 40n) |
    (BigInt((lim >>> 16) & 0xf) << 48n) | (BigInt((attr >> 12) & 0xf) << 52n) | (BigInt((base >>> 24) & 0xff) << 56n);
}
/** Inverse of segDesc: what a descriptor load puts in the hidden part. */
export function descToSeg(d: bigint): { base: bigint; limit: number; attr: number } {
  let limit = Number((d & 0xffffn) | (((d >> 48n) & 0xfn) << 16n));
  if (d & (1n << 55n)) limit = ((limit << 12) | 0xfff) >>> 0;
  const base = ((d >> 16n) & 0xffffffn) | (((d >> 56n) & 0xffn) << 24n);
  return { base, limit, attr: Number((d >> 40n) & 0xf0ffn) };
}

const ATTR = {
  code32: (dpl: number) => 0xb | 0x10 | (dpl << 5) | 0x80 | 0x4000 | 0x8000,
  code64: (dpl: number) => 0xb | 0x10 | (dpl << 5) | 0x80 | 0x2000 | 0x8000,
  data: (dpl: number) => 0x3 | 0x10 | (dpl << 5) | 0x80 | 0x4000 | 0x8000,
};

export class GuestBuilder {
  readonly ram: Ram;
  readonly layout: GuestLayout;
  private readonly free: number[] = [];
  readonly interesting: { addrs: bigint[]; values: bigint[] };

  /** The stream every random choice comes from (the fuzzer gives each episode its own). */
  constructor(public rng: Rng, ramSize: number) {
    this.ram = new Ram(ramSize);
    for (const [s, e] of POOLS) for (let p = s; p < e && p + 4096 <= ramSize; p += 4096) this.free.push(p);
    // shuffle the pool so table placement varies
    for (let i = this.free.length - 1; i > 0; i--) { const j = rng.int(0, i); [this.free[i], this.free[j]] = [this.free[j]!, this.free[i]!]; }
    const poolPages = [...this.free];
    this.layout = { ramSize, roots: { pml4: 0, pd32: 0, pdpt: 0 }, poolPages };
    const end = BigInt(ramSize);
    this.interesting = {
      addrs: [
        0n, 0xfffn, 0x1000n, BigInt(GDT_ADDR), BigInt(IDT_ADDR), BigInt(TSS_ADDR), BigInt(LDT_ADDR), BigInt(PTRS_ADDR),
        0x7fff8n, 0x6fff8n, 0xa0000n, 0xb8000n, 0x9fffcn, 0xffff0n, 0x100000n - 4n,
        end - 1n, end - 2n, end - 4n, end - 8n, end - 0x1000n, end, end + 0x1000n, 0x10000000n,
        0xfee00000n, 0xfee000f0n, 0xfec00000n, 0xfffffff0n, 0xfffffffcn, 0xffffffffn, 0x100000000n,
        0x0000800000000000n, 0x00007ffffffffff8n, 0xffff800000000000n, 0xffff800000040000n, 0xffffff8000000000n, 0xfffffffffffff000n,
        ...poolPages.slice(0, 8).map((p) => BigInt(p)),
      ],
      values: [0n, 1n, 2n, 3n, 0x7fn, 0x80n, 0xffn, 0x7fffn, 0x8000n, 0xffffn, 0x7fffffffn, 0x80000000n, 0xffffffffn,
        0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 0x100000000n, 0xfffff000n],
    };
  }

  private alloc(): number {
    const p = this.free.pop();
    if (p === undefined) throw new Error("fuzz: page-table pool exhausted");
    this.ram.bytes.fill(0, p, p + 4096);
    return p;
  }

  /** A random linear address that is worth touching. */
  addr(): bigint {
    const r = this.rng;
    switch (r.int(0, 9)) {
      case 0: case 1: case 2: return r.pick(this.interesting.addrs) + BigInt(r.int(-8, 8));
      case 3: { const [s, e] = r.pick(CODE_RANGES); return BigInt(r.int(s, e - 1)); }
      case 4: return BigInt(r.int(0x60000, 0x7fff8));
      case 5: return BigInt(r.pick(this.layout.poolPages) + r.int(0, 4095));
      case 6: return BigInt(r.int(1, 4096) * 4096 - r.int(1, 8)); // straddles a page boundary
      case 7: return BigInt(r.u32());
      case 8: return r.u64();
      default: return BigInt(r.int(0, this.layout.ramSize - 1));
    }
  }
  value(): bigint {
    const r = this.rng;
    return r.weighted([[5, () => r.pick(this.interesting.values)], [3, () => BigInt(r.u32())], [2, () => r.u64()], [2, () => BigInt(r.int(0, 64))], [1, () => this.addr()]] as const)();
  }
  codeTarget(): bigint {
    const [s, e] = this.rng.pick(CODE_RANGES);
    const t = BigInt(this.rng.int(s, e - 1));
    return this.rng.chance(0.1) ? 0xffff800000000000n + t : t;
  }

  /** Fill guest RAM: code, descriptor tables, TSS, pointer images, page tables. */
  build(): void {
    const r = this.rng;
    // random data pages
    for (const [s, e] of [[0x80000, 0xa0000], [this.layout.ramSize - 0x10000, this.layout.ramSize]] as const) this.ram.bytes.set(r.bytes(e - s), s);
    this.buildGdt();
    this.buildTss();
    this.buildPointers();
    this.buildPageTables();
    // code last: the generator's addresses may point at any of the above
    // A few pages are generated per bitness; the others are rotated copies
    // with some bytes mutated (generating costs ~1.5 ms a page).
    const fresh: Uint8Array[] = [];
    for (const bits of [64, 32] as const) {
      const g = this.genContext(bits);
      for (let i = 0; i < 3; i++) {
        const page = new Uint8Array(4096);
        fillCode(g, page, r.pick([0.5, 0.8, 0.95, 1.0]));
        fresh.push(page);
      }
    }
    for (const [s, e] of CODE_RANGES) {
      for (let p = s; p < e; p += 4096) {
        const src = r.pick(fresh);
        const rot = r.chance(0.5) ? 0 : r.int(1, 4095);
        this.ram.bytes.set(src.subarray(rot), p);
        this.ram.bytes.set(src.subarray(0, rot), p + 4096 - rot);
        for (let n = r.int(0, 40); n > 0; n--) this.ram.bytes[p + r.int(0, 4095)] = r.u32() & 0xff;
      }
    }
    this.buildIdt(64);
  }

  genContext(bits: 32 | 64): GenContext {
    const r = this.rng;
    return {
      rng: r, bits,
      addr: () => this.addr(),
      value: () => this.value(),
      cr0: () => this.cr0(),
      cr3: () => this.cr3(),
      cr4: () => this.cr4(),
      efer: () => this.efer(),
      msr: () => r.weighted([[4, 0xc0000080], [2, 0xc0000081], [2, 0xc0000082], [1, 0xc0000083], [1, 0xc0000084], [2, 0xc0000100], [2, 0xc0000101], [2, 0xc0000102], [1, 0xc0000103],
        [1, 0x174], [1, 0x175], [1, 0x176], [1, 0x1b], [1, 0x277], [1, 0x10], [1, 0x1a0], [1, 0x6e0], [1, 0x2ff], [2, r.u32()], [1, 0x40000000 + r.int(0, 0x200)]] as const),
      selector: () => this.selector(),
      tablePtr: () => PTRS_ADDR + 16 * r.int(0, 15),
      farPtr: () => FARPTRS_ADDR + 16 * r.int(0, 15),
      codeTarget: () => this.codeTarget(),
    };
  }

  selector(): number {
    const r = this.rng;
    return r.weighted([[6, () => r.pick(Object.values(SEL)) | r.pick([0, 0, 3, 1, 2])], [2, () => r.int(0, GDT_ENTRIES + 4) * 8 | r.int(0, 7)], [1, () => r.int(0, 0xffff)], [1, () => 0]] as const)();
  }
  cr0(): bigint {
    const r = this.rng;
    let v = 0x11n | (r.chance(0.9) ? 1n : 0n) | (r.chance(0.7) ? 0x20n : 0n);
    for (const b of [1n, 2n, 4n, 8n, 1n << 16n, 1n << 18n]) if (r.chance(0.25)) v |= b;
    if (r.chance(0.6)) v |= 1n << 31n;
    if (r.chance(0.08)) v |= 1n << 29n;
    if (r.chance(0.1)) v |= 1n << 30n;
    if (r.chance(0.05)) v |= BigInt(r.u32()) << 32n;
    return v;
  }
  cr4(): bigint {
    const r = this.rng;
    let v = 0n;
    for (const [p, b] of [[0.3, 0x10n], [0.6, 0x20n], [0.3, 0x80n], [0.1, 1n], [0.1, 2n], [0.1, 4n], [0.1, 8n], [0.1, 0x40n], [0.1, 0x100n], [0.2, 0x200n], [0.1, 0x400n], [0.05, 0x800n],
      [0.05, 0x2000n], [0.1, 0x10000n], [0.1, 0x20000n], [0.1, 0x40000n], [0.15, 1n << 20n], [0.15, 1n << 21n], [0.05, 1n << 22n]] as const) if (r.chance(p)) v |= b;
    if (r.chance(0.05)) v |= BigInt(r.u32());
    return v;
  }
  efer(): bigint {
    const r = this.rng;
    let v = 0n;
    for (const [p, b] of [[0.6, 1n], [0.6, 0x100n], [0.3, 0x400n], [0.5, 0x800n]] as const) if (r.chance(p)) v |= b;
    if (r.chance(0.05)) v |= BigInt(r.u32());
    return v;
  }
  cr3(): bigint {
    const r = this.rng;
    const roots = this.layout.roots;
    return r.weighted([[4, () => BigInt(roots.pml4)], [2, () => BigInt(roots.pd32)], [2, () => BigInt(roots.pdpt)], [2, () => BigInt(r.pick(this.layout.poolPages) + (r.chance(0.5) ? 0 : r.int(0, 127) * 32))],
      [1, () => BigInt(r.u32())], [1, () => r.u64()], [1, () => BigInt(this.layout.ramSize) + BigInt(r.int(0, 16)) * 4096n], [1, () => BigInt(roots.pml4) | BigInt(r.int(1, 0xfff))]] as const)();
  }

  // ---- descriptor tables
  private buildGdt(): void {
    const r = this.rng, ram = this.ram;
    const put = (sel: number, d: bigint) => ram.set64(GDT_ADDR + (sel & ~7), d);
    put(0, 0n);
    put(SEL.code32, segDesc(0, 0xffffffff, ATTR.code32(0)));
    put(SEL.code64, segDesc(0, 0xffffffff, ATTR.code64(0)));
    put(SEL.data, segDesc(0, 0xffffffff, ATTR.data(0)));
    put(SEL.ucode32, segDesc(0, 0xffffffff, ATTR.code32(3)));
    put(SEL.udata, segDesc(0, 0xffffffff, ATTR.data(3)));
    put(SEL.ucode64, segDesc(0, 0xffffffff, ATTR.code64(3)));
    put(SEL.code16, segDesc(r.chance(0.5) ? 0 : 0x40000, 0xffff, 0x9b));
    // 64-bit TSS (16 bytes; its high half is a null descriptor to a 32-bit CPU)
    const tssLimit = r.chance(0.8) ? 0x68 + 8192 : r.pick([0, 0x67, 0x66, 0x20, 0xfffff]);
    put(SEL.tss, segDesc(TSS_ADDR, tssLimit, r.chance(0.9) ? 0x89 : r.int(0, 255)));
    put(SEL.tss + 8, r.chance(0.9) ? 0n : r.u64());
    put(SEL.ldt, segDesc(LDT_ADDR, r.chance(0.8) ? 0x3f : r.int(0, 0xffff), r.chance(0.9) ? 0x82 : r.int(0, 255)));
    put(SEL.ldt + 8, 0n);
    // call gate to the 64-bit (or 32-bit) kernel code
    const target = this.codeTarget();
    const gateSel = r.pick([SEL.code64, SEL.code32, SEL.ucode64, r.int(0, 0xffff)]);
    const gateDpl = r.pick([0, 3]);
    put(SEL.gate, (target & 0xffffn) | (BigInt(gateSel) << 16n) | (BigInt(r.int(0, 31)) << 32n) | (BigInt(0x8c | (gateDpl << 5)) << 40n) | (((target >> 16n) & 0xffffn) << 48n));
    put(SEL.gate + 8, (target >> 32n) & 0xffffffffn);
    put(SEL.data16, segDesc(r.pick([0, 0x60000, 0xfffff000]), r.pick([0xffff, 0xfff, 0]), r.pick([0x93, 0x97, 0xf3, 0x91])));
    put(SEL.conforming, segDesc(0, 0xffffffff, 0x9f | 0x4000 | 0x8000 | (r.chance(0.5) ? 0x2000 : 0)));
    for (let i = SEL.conforming / 8 + 1; i < GDT_ENTRIES; i++) {
      put(i * 8, r.weighted([[3, () => segDesc(r.u32(), r.u32(), r.int(0, 0xffff))], [2, () => r.u64()], [1, () => 0n],
        [2, () => segDesc(this.rng.pick([0, 0x60000, 0xffff0000]), 0xffffffff, r.pick([ATTR.code32(3), ATTR.data(3), ATTR.code64(0), ATTR.data(0), 0x93, 0x9b, 0xf3, 0xfb]))]] as const)());
    }
    // LDT: a few descriptors
    for (let i = 0; i < 8; i++) this.ram.set64(LDT_ADDR + i * 8, i === 0 ? 0n : r.chance(0.5) ? segDesc(0, 0xffffffff, r.pick([ATTR.code32(3), ATTR.data(3), ATTR.data(0), ATTR.code64(3)])) : r.u64());
    // random mutations
    const n = r.weighted([[6, 0], [3, 1], [1, 4]] as const);
    for (let i = 0; i < n; i++) this.ram.bytes[GDT_ADDR + r.int(0, GDT_ENTRIES * 8 - 1)] ^= 1 << r.int(0, 7);
  }

  /** The IDT in 64-bit (16-byte gates) or 32-bit (8-byte gates) format. */
  buildIdt(bits: 32 | 64): void {
    const r = this.rng, ram = this.ram;
    ram.bytes.fill(0, IDT_ADDR, IDT_ADDR + 4096);
    for (let v = 0; v < 256; v++) {
      const off = this.codeTarget();
      const sel = r.weighted([[8, bits === 64 ? SEL.code64 : SEL.code32], [1, this.selector()], [1, r.pick([SEL.ucode64, SEL.ucode32, SEL.conforming, SEL.code16])]] as const);
      const type = r.weighted([[6, bits === 64 ? 0xe : 0xe], [3, 0xf], [1, r.pick([0x5, 0x6, 0x7, 0xc, 0x0, 0x9])]] as const);
      const dpl = r.chance(0.6) ? 3 : 0;
      const p = r.chance(0.95) ? 0x80 : 0;
      const ist = r.chance(0.2) ? r.int(1, 7) : 0;
      const lo = (off & 0xffffn) | (BigInt(sel) << 16n) | (BigInt(ist) << 32n) | (BigInt(type | (dpl << 5) | p) << 40n) | (((off >> 16n) & 0xffffn) << 48n);
      if (bits === 64) {
        ram.set64(IDT_ADDR + v * 16, r.chance(0.03) ? r.u64() : lo);
        ram.set64(IDT_ADDR + v * 16 + 8, r.chance(0.03) ? r.u64() : (off >> 32n) & 0xffffffffn);
      } else {
        ram.set64(IDT_ADDR + v * 8, r.chance(0.03) ? r.u64() : lo & ~(0xffn << 32n));
      }
    }
  }

  private buildTss(): void {
    const r = this.rng, ram = this.ram;
    ram.bytes.fill(0, TSS_ADDR, TSS_ADDR + 0x3000);
    const stack = () => BigInt(r.weighted([[6, KERNEL_STACK - r.int(0, 16) * 16], [2, 0x7e000 - r.int(0, 7) * 0x200], [1, r.u32()], [1, this.layout.ramSize - r.int(0, 16)]] as const));
    // 64-bit TSS: RSP0-2 at 4, IST1-7 at 0x24, I/O map base at 0x66
    for (let i = 0; i < 3; i++) ram.set64(TSS_ADDR + 4 + i * 8, r.chance(0.05) ? r.u64() : stack());
    for (let i = 0; i < 7; i++) ram.set64(TSS_ADDR + 0x24 + i * 8, r.chance(0.1) ? r.u64() : stack());
    ram.set16(TSS_ADDR + 0x66, r.chance(0.8) ? 0x68 : r.int(0, 0xffff));
    // The 32-bit TSS overlays the same page when the guest runs 32-bit code:
    // ESP0 at 4 and SS0 at 8 are fixed up per episode (see applyTss32).
    ram.bytes.set(r.bytes(8192), TSS_ADDR + 0x68); // I/O bitmap: random permissions
    if (r.chance(0.5)) ram.bytes.fill(0, TSS_ADDR + 0x68, TSS_ADDR + 0x68 + 8192);
  }
  /** For 32-bit episodes: ESP0/SS0 in the TSS (clobbers the 64-bit RSP0 field, which is fine). */
  applyTss32(): void {
    const r = this.rng;
    this.ram.set32(TSS_ADDR + 4, r.chance(0.9) ? KERNEL_STACK : r.u32());
    this.ram.set16(TSS_ADDR + 8, r.chance(0.9) ? SEL.data : this.selector());
  }

  private buildPointers(): void {
    const r = this.rng, ram = this.ram;
    const end = this.layout.ramSize;
    const images: [number, bigint][] = [
      [GDT_ENTRIES * 8 - 1, BigInt(GDT_ADDR)], [0xfff, BigInt(IDT_ADDR)], [0x7ff, BigInt(IDT_ADDR)], [0, 0n], [0xffff, 0xfee00000n],
      [0xffff, BigInt(end)], [0xfff, BigInt(end - 8)], [0xffff, BigInt(POOLS[0]![0])], [0xfff, 0xffff800000000000n + BigInt(IDT_ADDR)],
      [0xfff, 0x0000800000000000n], [0xffff, 0xfffffff8n], [0x17, BigInt(GDT_ADDR)], [GDT_ENTRIES * 8 - 1, BigInt(GDT_ADDR)],
      [0xfff, BigInt(IDT_ADDR)], [r.int(0, 0xffff), r.u64()], [r.int(0, 0xffff), BigInt(r.u32())],
    ];
    images.forEach(([limit, base], i) => { ram.set16(PTRS_ADDR + i * 16, limit); ram.set64(PTRS_ADDR + i * 16 + 2, base); });
    for (let i = 0; i < 16; i++) {
      const a = FARPTRS_ADDR + i * 16;
      const off = r.chance(0.8) ? this.codeTarget() : this.value();
      const sel = this.selector();
      if (i % 2 === 0) { ram.set32(a, off); ram.set16(a + 4, sel); } // m16:32
      else { ram.set64(a, off); ram.set16(a + 8, sel); } // m16:64
    }
  }

  // ---- page tables

  private leafFlags(): bigint {
    const r = this.rng;
    let f = P | RW | US;
    if (r.chance(0.05)) f &= ~US;
    if (r.chance(0.05)) f &= ~RW;
    if (r.chance(0.6)) f |= A;
    if (r.chance(0.5)) f |= D;
    if (r.chance(0.1)) f |= G;
    if (r.chance(0.05)) f |= PWT | PCD;
    return f;
  }
  private tableFlags(): bigint { return P | RW | US | (this.rng.chance(0.5) ? A : 0n) | (this.rng.chance(0.02) ? 0n : 0n); }
  /** An interesting physical frame for a corrupted entry. */
  private nastyFrame(): bigint {
    const r = this.rng;
    const end = BigInt(this.layout.ramSize);
    return r.weighted([[2, () => BigInt(r.pick(this.layout.poolPages))], [2, () => end + BigInt(r.int(0, 64)) * 4096n], [1, () => end - 4096n], [2, () => 0xfee00000n], [1, () => 0xa0000n],
      [1, () => 0xb8000n], [1, () => 0x100000000n], [1, () => 0xffffff000n], [1, () => (1n << 39n)], [1, () => BigInt(GDT_ADDR)], [1, () => BigInt(IDT_ADDR)], [1, () => BigInt(r.int(0, 0x7ff)) << 12n]] as const)();
  }
  private nastyBits(): bigint {
    const r = this.rng;
    return r.weighted([[3, () => 0n], [1, () => 1n << BigInt(r.int(40, 51))], [1, () => NX], [1, () => PS], [1, () => BigInt(r.int(1, 511)) << 12n], [1, () => 1n << BigInt(r.int(52, 62))]] as const)();
  }

  private buildPageTables(): void {
    const r = this.rng, ram = this.ram;
    const nx = () => (r.chance(0.05) ? NX : 0n);
    // 4-level
    const pml4 = this.alloc(), pdpt = this.alloc(), pd = this.alloc();
    ram.set64(pml4, BigInt(pdpt) | this.tableFlags());
    ram.set64(pdpt, BigInt(pd) | this.tableFlags());
    for (let i = 0; i < IDENTITY >> 21; i++) {
      if (r.chance(0.5)) ram.set64(pd + i * 8, BigInt(i << 21) | PS | this.leafFlags() | nx());
      else {
        const pt = this.alloc();
        ram.set64(pd + i * 8, BigInt(pt) | this.tableFlags() | nx());
        for (let j = 0; j < 512; j++) ram.set64(pt + j * 8, BigInt((i << 21) + (j << 12)) | this.leafFlags() | nx());
      }
    }
    ram.set64(pml4 + 511 * 8, BigInt(pml4) | P | RW | (r.chance(0.5) ? US : 0n)); // self-reference (recursive mapping)
    ram.set64(pml4 + 256 * 8, BigInt(pdpt) | P | RW | US); // 0xffff800000000000 aliases the low 1 GiB
    ram.set64(pdpt + 3 * 8, 0xc0000000n | PS | P | RW | US); // 1 GiB page over the MMIO hole (0xfee00000)
    if (r.chance(0.5)) ram.set64(pdpt + 1 * 8, 0x40000000n | PS | P | RW | US); // 1 GiB beyond RAM
    if (r.chance(0.5)) ram.set64(pdpt + 2 * 8, BigInt(pd) | P | RW | US); // alias of the first GiB's directory
    if (r.chance(0.3)) ram.set64(pdpt + 4 * 8, 0x40000000n + BigInt(r.int(1, 0x3ffff)) * 4096n | PS | P | RW); // misaligned 1 GiB page
    if (r.chance(0.3)) ram.set64(pd + 100 * 8, BigInt(r.int(1, 511)) * 4096n | PS | P | RW | US); // misaligned 2 MiB page
    this.layout.roots.pml4 = pml4;

    // 2-level 32-bit
    const pd32 = this.alloc();
    for (let i = 0; i < IDENTITY >> 22; i++) {
      if (r.chance(0.5)) ram.set32(pd32 + i * 4, BigInt(i << 22) | PS | this.leafFlags() | (r.chance(0.1) ? BigInt(r.int(1, 255)) << 13n : 0n));
      else {
        const pt = this.alloc();
        ram.set32(pd32 + i * 4, BigInt(pt) | this.tableFlags());
        for (let j = 0; j < 1024; j++) ram.set32(pt + j * 4, BigInt((i << 22) + (j << 12)) | this.leafFlags());
      }
    }
    ram.set32(pd32 + 1023 * 4, BigInt(pd32) | P | RW | US); // self-reference
    ram.set32(pd32 + (0xfec00000 >>> 22) * 4, 0xfec00000n | PS | P | RW | US); // MMIO (4 MiB page, or a "table" at 0xfec00000 without PSE)
    ram.set32(pd32 + 768 * 4, BigInt(pd32) | P | RW | US); // 0xc0000000: the directory as a page table
    if (r.chance(0.3)) ram.set32(pd32 + 5 * 4, 0x00400000n | PS | P | RW | US | (1n << 21n)); // PSE-36 reserved bit
    this.layout.roots.pd32 = pd32;

    // PAE: 4 PDPTEs (32-byte aligned) then directories
    const pdptPage = this.alloc();
    const pdptAe = pdptPage + (r.chance(0.5) ? 0 : r.int(1, 127) * 32);
    const paeDirs: number[] = [];
    for (let k = 0; k < 4; k++) {
      if (k === 0 || r.chance(0.4)) {
        const d = this.alloc();
        paeDirs.push(d);
        ram.set64(pdptAe + k * 8, BigInt(d) | P | (r.chance(0.05) ? RW : 0n)); // RW is reserved in a PDPTE
      } else ram.set64(pdptAe + k * 8, r.chance(0.5) ? 0n : (0xc0000000n | P));
    }
    const d0 = paeDirs[0]!;
    for (let i = 0; i < IDENTITY >> 21; i++) {
      if (r.chance(0.6)) ram.set64(d0 + i * 8, BigInt(i << 21) | PS | this.leafFlags() | nx());
      else {
        const pt = this.free.length > 6 ? this.alloc() : pd; // reuse a 4-level directory when the pool runs low
        ram.set64(d0 + i * 8, BigInt(pt) | this.tableFlags());
        if (pt !== pd) for (let j = 0; j < 512; j++) ram.set64(pt + j * 8, BigInt((i << 21) + (j << 12)) | this.leafFlags() | nx());
      }
    }
    for (const d of paeDirs.slice(1)) for (let i = 0; i < 8; i++) ram.set64(d + i * 8, r.chance(0.5) ? BigInt(r.int(0, 7) << 21) | PS | P | RW | US : this.nastyFrame() | P | RW | US);
    this.layout.roots.pdpt = pdptAe;

    // corruption: entries at page tables, past RAM, MMIO, reserved bits, self references
    const pagesUsed = this.layout.poolPages.filter((p) => !this.free.includes(p));
    const n = r.weighted([[2, 0], [4, 4], [3, 16], [1, 64]] as const);
    for (let i = 0; i < n; i++) {
      const page = r.pick(pagesUsed);
      const idx = r.chance(0.5) ? r.int(0, 15) : r.int(0, 511);
      const at = page + idx * 8;
      const kind = r.int(0, 5);
      const old = ram.get64(at);
      if (kind === 0) ram.set64(at, r.u64());
      else if (kind === 1) ram.set64(at, old ^ (1n << BigInt(r.int(0, 63))));
      else if (kind === 2) ram.set64(at, this.nastyFrame() | this.leafFlags() | this.nastyBits() | (r.chance(0.3) ? PS : 0n));
      else if (kind === 3) ram.set64(at, BigInt(page) | this.leafFlags() | (r.chance(0.3) ? PS : 0n)); // self-referencing table
      else if (kind === 4) ram.set64(at, old & ~P);
      else ram.set32(at + r.pick([0, 4]), Number(this.nastyFrame() & 0xfffff000n) | Number(this.leafFlags() & 0xfffn));
    }
  }

  /** Copy the built RAM into the VM (skipping the PC hole, which is not RAM). */
  writeTo(vm: Vm): void {
    const b = this.ram.bytes;
    vm.write(0, b.subarray(0, HOLE_START));
    if (b.length > HOLE_END) vm.write(HOLE_END, b.subarray(HOLE_END));
  }

  // ---- vCPU state for one episode

  /** Reset vCPU 0 to a random start state; returns the mode chosen. */
  setupVcpu(vcpu: Vcpu, vm: Vm): { mode: StartMode; cpl: number; invalid: boolean } {
    const r = this.rng, k = vm.core.k;
    const mode = r.weighted([[1, "real"], [2, "pm32"], [2, "pm32-paging"], [2, "pae"], [6, "long64"], [1, "compat"]] as const) as StartMode;
    const cpl = mode === "real" ? 0 : r.chance(0.35) ? 3 : 0;
    const is64 = mode === "long64" || mode === "compat";
    // IDT format follows the mode's bitness; the TSS's 32-bit fields too
    this.buildIdtInVm(vm, is64 ? 64 : 32);
    if (!is64) { this.applyTss32(); this.writeRange(vm, TSS_ADDR, 16); }

    const gdtDesc = (sel: number): bigint => {
      const b = vm.read(GDT_ADDR + (sel & ~7), 8);
      return new DataView(b.buffer).getBigUint64(0, true);
    };
    const loadSeg = (name: SegName, sel: number) => { const s = descToSeg(gdtDesc(sel)); vcpu.setSeg(name, { selector: sel, ...s }); };

    let cr0 = 0x11n | (r.chance(0.7) ? 0x20n : 0n) | (r.chance(0.5) ? 1n << 16n : 0n) | (r.chance(0.1) ? 1n << 18n : 0n);
    let cr4 = 0n, efer = 0n, cr3 = 0n;
    if (r.chance(0.3)) cr4 |= 0x80n; // PGE
    if (r.chance(0.1)) cr4 |= 1n << 20n; // SMEP
    if (r.chance(0.1)) cr4 |= 1n << 21n; // SMAP
    if (r.chance(0.5)) efer |= 1n; // SCE
    if (r.chance(0.5)) efer |= 0x800n; // NXE
    switch (mode) {
      case "real": cr0 = 0x10n; break;
      case "pm32": break;
      case "pm32-paging": cr0 |= 1n << 31n; if (r.chance(0.6)) cr4 |= 0x10n; cr3 = BigInt(this.layout.roots.pd32); break;
      case "pae": cr0 |= 1n << 31n; cr4 |= 0x20n; cr3 = BigInt(this.layout.roots.pdpt); break;
      default: cr0 |= 1n << 31n; cr4 |= 0x20n; efer |= 0x500n; cr3 = BigInt(this.layout.roots.pml4); break;
    }
    let invalid = false;
    if (r.chance(0.08)) {
      // a combination no real CPU can be in (KVM_SET_SREGS would refuse most): the core must still stay inside its sandbox
      invalid = true;
      cr0 ^= r.pick([1n, 1n << 31n, 1n << 29n, 1n << 30n, BigInt(r.u32()) << 32n]);
      cr4 ^= r.pick([0x20n, 0x10n, 1n << 20n, BigInt(r.u32())]);
      efer ^= r.pick([0x400n, 0x100n, 0x800n, BigInt(r.u32())]);
      if (r.chance(0.3)) cr3 = r.u64();
    }
    vcpu.set64(k.VCPU_CR0, cr0);
    vcpu.set64(k.VCPU_CR4, cr4);
    vcpu.set64(k.VCPU_EFER, efer);
    vcpu.set64(k.VCPU_CR3, cr3);
    vcpu.set64(k.VCPU_CR2, r.chance(0.5) ? 0n : this.addr());
    if (mode === "pae" || invalid) {
      const base = Number(cr3 & 0xffffffe0n);
      for (let i = 0; i < 4; i++) {
        const gpa = base + i * 8;
        const e = gpa + 8 <= this.layout.ramSize && (gpa < HOLE_START || gpa >= HOLE_END) ? new DataView(vm.read(gpa, 8).buffer).getBigUint64(0, true) : 0n;
        vcpu.set64(k.VCPU_PDPTR + i * 8, e);
      }
    }

    if (mode === "real") {
      const cs = r.pick([0, 0x4000, 0x2000]);
      vcpu.setSeg("cs", { selector: cs, base: BigInt(cs << 4), limit: 0xffff, attr: 0x9b });
      for (const s of ["ds", "es", "fs", "gs", "ss"] as const) vcpu.setSeg(s, { selector: 0x6000, base: 0x60000n, limit: 0xffff, attr: 0x93 });
      vcpu.rip = BigInt(r.int(0, 0xffff));
      vcpu.setReg("rsp", BigInt(r.int(0, 0xffff)));
    } else {
      const csSel = mode === "long64" ? (cpl ? SEL.ucode64 : SEL.code64) : cpl ? SEL.ucode32 : SEL.code32;
      const dataSel = cpl ? SEL.udata : SEL.data;
      loadSeg("cs", csSel);
      for (const s of ["ds", "es", "fs", "gs", "ss"] as const) loadSeg(s, dataSel);
      if (r.chance(0.1)) loadSeg(r.pick(["ds", "es", "fs", "gs"] as const), this.selector());
      vcpu.rip = mode === "long64" ? this.codeTarget() : BigInt(Number(this.codeTarget() & 0xffffffffn));
      vcpu.setReg("rsp", r.chance(0.9) ? BigInt((cpl ? USER_STACK : KERNEL_STACK) - r.int(0, 64) * 8) : this.addr());
    }
    if (r.chance(0.3)) vcpu.set64(k.VCPU_SEGS + 4 * k.SEG_SIZE + k.SEG_BASE, this.addr()); // FS base
    if (r.chance(0.3)) vcpu.set64(k.VCPU_SEGS + 5 * k.SEG_SIZE + k.SEG_BASE, this.addr()); // GS base
    vcpu.setSeg("ldtr", r.chance(0.5) ? { selector: SEL.ldt, ...descToSeg(gdtDesc(SEL.ldt)) } : { selector: 0, base: 0n, limit: 0, attr: 0x82 });
    vcpu.setSeg("tr", { selector: SEL.tss, ...descToSeg(gdtDesc(SEL.tss)), attr: 0x8b });
    vcpu.set64(k.VCPU_GDTR_BASE, r.chance(0.95) ? BigInt(GDT_ADDR) : this.addr());
    vcpu.u32(k.VCPU_GDTR_LIMIT, r.chance(0.95) ? GDT_ENTRIES * 8 - 1 : r.int(0, 0xffff));
    vcpu.set64(k.VCPU_IDTR_BASE, r.chance(0.95) ? BigInt(IDT_ADDR) : this.addr());
    vcpu.u32(k.VCPU_IDTR_LIMIT, r.chance(0.9) ? (is64 ? 0xfff : 0x7ff) : r.pick([0, 0x7f, 0xff, 0xffff, r.int(0, 0xfff)]));

    for (const name of ["rax", "rcx", "rdx", "rbx", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const) vcpu.setReg(name, r.chance(0.5) ? this.addr() : this.value());
    let fl = 2n;
    if (r.chance(0.6)) fl |= 0x200n; // IF
    if (r.chance(0.1)) fl |= 0x400n; // DF
    if (r.chance(0.04)) fl |= 0x100n; // TF
    if (r.chance(0.1)) fl |= 1n << 18n; // AC
    if (r.chance(0.2)) fl |= BigInt(r.int(1, 3)) << 12n; // IOPL
    if (r.chance(0.03)) fl |= 1n << 14n; // NT
    if (r.chance(0.02)) fl |= 1n << 17n; // VM
    if (r.chance(0.02)) fl |= BigInt(r.u32()) & 0x3f7fd5n;
    fl |= BigInt(r.int(0, 0xff)) & 0xd5n; // arithmetic flags
    vcpu.rflags = fl;

    const star = (BigInt(SEL.ucode32 & ~3) << 48n) | (BigInt(SEL.code64) << 32n);
    vcpu.set64(k.VCPU_STAR, r.chance(0.9) ? star : r.u64());
    vcpu.set64(k.VCPU_LSTAR, r.chance(0.9) ? this.codeTarget() : this.addr());
    vcpu.set64(k.VCPU_CSTAR, this.codeTarget());
    vcpu.set64(k.VCPU_SFMASK, r.chance(0.7) ? 0x47700n : BigInt(r.u32()));
    vcpu.set64(k.VCPU_SYSENTER_CS, BigInt(r.chance(0.8) ? SEL.code32 : this.selector()));
    vcpu.set64(k.VCPU_SYSENTER_ESP, BigInt(KERNEL_STACK));
    vcpu.set64(k.VCPU_SYSENTER_EIP, this.codeTarget() & 0xffffffffn);
    vcpu.set64(k.VCPU_KERNEL_GS_BASE, this.addr());
    if (r.chance(0.05)) vcpu.set64(k.VCPU_DR + 7 * 8, BigInt(r.u32()));
    vcpu.u32(k.VCPU_HALTED, 0);
    vcpu.u32(k.VCPU_PENDING_IO, 0);
    vcpu.i32(k.VCPU_PENDING_IRQ, -1);
    vcpu.u32(k.VCPU_INTR_SHADOW, 0);
    return { mode, cpl, invalid };
  }

  private buildIdtInVm(vm: Vm, bits: 32 | 64): void {
    this.buildIdt(bits);
    this.writeRange(vm, IDT_ADDR, 4096);
  }
  private writeRange(vm: Vm, gpa: number, len: number): void { vm.write(gpa, this.ram.bytes.subarray(gpa, gpa + len)); }
}

export { Rng };
