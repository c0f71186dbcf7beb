/**
 * Loader fuzzing: mutated kernel images for loadMultiboot (src/boot/multiboot.ts).
 * An image must either load or be refused with a Shadow86Error (ElfError /
 * BootError); never a RangeError/TypeError or any other exception, never a
 * write outside RAM or into the PC hole, and a refused image leaves guest
 * memory untouched (the loader checks everything before it writes).
 *
 * Mutations: bit flips, truncation at every header boundary, lying ELF
 * fields (e_phoff, e_phnum, e_phentsize, p_offset, p_filesz, p_memsz,
 * p_paddr, p_vaddr, e_entry), absurd sizes, a missing / broken multiboot
 * header, and a.out-kludge address fields out of range.
 */
import { loadMultiboot, MULTIBOOT_SEARCH } from "../boot/multiboot.js";
import { PC_HOLE_END, PC_HOLE_START, type GuestMemory } from "../boot/guest_memory.js";
import { Shadow86Error } from "../errors.js";
import { Rng } from "./rng.js";

export interface LoaderCase { name: string; bytes: Uint8Array }

/** Guest memory that only checks and records: a write outside RAM or into the PC hole is a loader bug. */
export class CheckingMemory implements GuestMemory {
  readonly writes: { gpa: number; len: number }[] = [];
  constructor(readonly size: number) {}
  private check(what: string, gpa: number, len: number): void {
    if (!Number.isSafeInteger(gpa) || !Number.isSafeInteger(len) || gpa < 0 || len < 0 || gpa + len > this.size) {
      throw new Error(`loader bug: ${what} at gpa ${gpa} + ${len} is outside RAM (${this.size} bytes)`);
    }
    if (len > 0 && gpa < PC_HOLE_END && gpa + len > PC_HOLE_START) throw new Error(`loader bug: ${what} at gpa ${gpa.toString(16)} + ${len} writes into the PC hole`);
  }
  write(gpa: number, data: Uint8Array): void { this.check("write", gpa, data.length); this.writes.push({ gpa, len: data.length }); }
  fill(gpa: number, len: number, _value: number): void { this.check("fill", gpa, len); this.writes.push({ gpa, len }); }
}

export type LoadOutcome =
  | { kind: "loaded"; entry: number }
  | { kind: "refused"; error: Shadow86Error }
  | { kind: "finding"; detail: string };

/** Load one image into a fresh CheckingMemory and classify what happened. */
export function tryLoad(bytes: Uint8Array, ramSize: number, path = "fuzz.elf"): LoadOutcome {
  const mem = new CheckingMemory(ramSize);
  try {
    const boot = loadMultiboot(bytes, path, mem);
    return { kind: "loaded", entry: boot.entry };
  } catch (e) {
    if (e instanceof Shadow86Error) {
      if (mem.writes.length) return { kind: "finding", detail: `refused with "${e.message}" after ${mem.writes.length} write(s) to guest memory (first at gpa 0x${mem.writes[0]!.gpa.toString(16)})` };
      if (e.message.includes("\n")) return { kind: "finding", detail: `refused with a multi-line message: ${JSON.stringify(e.message)}` };
      return { kind: "refused", error: e };
    }
    const err = e as Error;
    return { kind: "finding", detail: `${err?.name ?? typeof e}: ${err?.message ?? String(e)}\n${err?.stack ?? ""}` };
  }
}

// ---- image structure (enough to aim mutations at header fields)

interface Layout {
  is64: boolean;
  elf: boolean;
  phoff: number;
  phentsize: number;
  phnum: number;
  mbOffset: number;
}

function u32(b: Uint8Array, o: number): number { return o + 4 <= b.length ? new DataView(b.buffer, b.byteOffset).getUint32(o, true) : 0; }
function layoutOf(b: Uint8Array): Layout {
  const elf = b.length >= 52 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
  const is64 = elf && b[4] === 2 && b.length >= 64;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let phoff = 0, phentsize = 0, phnum = 0;
  if (elf) {
    if (is64) { phoff = Number(dv.getBigUint64(32, true)); phentsize = dv.getUint16(54, true); phnum = dv.getUint16(56, true); }
    else { phoff = dv.getUint32(28, true); phentsize = dv.getUint16(42, true); phnum = dv.getUint16(44, true); }
  }
  let mbOffset = -1;
  for (let i = 0; i + 12 <= Math.min(b.length, MULTIBOOT_SEARCH); i += 4) if (u32(b, i) === 0x1badb002) { mbOffset = i; break; }
  return { is64, elf, phoff, phentsize, phnum, mbOffset };
}

/** Header boundaries worth truncating at. */
export function truncationPoints(b: Uint8Array): number[] {
  const L = layoutOf(b);
  const pts = new Set<number>([0, 1, 3, 4, 5, 11, 12, 16, 20, 24, 28, 32, 40, 44, 48, 51, 52, 56, 63, 64]);
  if (L.elf && L.phoff < b.length) {
    for (let i = 0; i <= Math.min(L.phnum, 64); i++) {
      const at = L.phoff + i * L.phentsize;
      for (const d of [-1, 0, 1, 4, 8, 16, 24, 32, 40]) pts.add(at + d);
    }
    // each segment's file range end
    for (let i = 0; i < Math.min(L.phnum, 64); i++) {
      const p = L.phoff + i * L.phentsize;
      if (p + L.phentsize > b.length) break;
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const off = L.is64 ? Number(dv.getBigUint64(p + 8, true)) : dv.getUint32(p + 4, true);
      const filesz = L.is64 ? Number(dv.getBigUint64(p + 32, true)) : dv.getUint32(p + 16, true);
      for (const d of [-1, 0, 1]) { pts.add(off + d); pts.add(off + filesz + d); }
    }
  }
  if (L.mbOffset >= 0) for (const d of [0, 4, 8, 11, 12, 16, 20, 24, 28, 31, 32]) pts.add(L.mbOffset + d);
  return [...pts].filter((p) => p >= 0 && p < b.length).sort((x, y) => x - y);
}

const ABSURD32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff, 0x9000, 0x9fc00, 0xa0000, 0xfffff, 0x100000];
const ABSURD64 = [0n, 1n, 0xffffffffn, 0x100000000n, 0x7fffffffffffffffn, 0x8000000000000000n, 0xffffffffffffffffn, 1n << 53n, (1n << 53n) + 1n, 0x9000n, 0xa0000n];

/** Field lies on one program header or the ELF header; returns the mutated copy. */
function lie(b: Uint8Array, rng: Rng, ramSize: number): { name: string; bytes: Uint8Array } {
  const out = b.slice();
  const dv = new DataView(out.buffer);
  const L = layoutOf(b);
  const ram = [ramSize - 1, ramSize, ramSize - 4096, ramSize + 4096];
  const v32 = () => rng.chance(0.7) ? rng.pick([...ABSURD32, ...ram]) : rng.u32();
  const v64 = () => rng.chance(0.7) ? rng.pick([...ABSURD64, ...ram.map(BigInt)]) : rng.u64();
  if (!L.elf) return { name: "not an ELF: random dword", bytes: out };
  const field = rng.int(0, 11);
  const ph = L.phoff + rng.int(0, Math.max(0, L.phnum - 1)) * L.phentsize;
  const inPh = (o: number, size: number) => ph + o + size <= out.length;
  let name = "";
  const set = (o: number, size: 2 | 4 | 8, v: bigint | number, what: string) => {
    if (o + size > out.length) return;
    if (size === 2) dv.setUint16(o, Number(v) & 0xffff, true);
    else if (size === 4) dv.setUint32(o, Number(BigInt.asUintN(32, BigInt(v))), true);
    else dv.setBigUint64(o, BigInt.asUintN(64, BigInt(v)), true);
    name = `${what} = 0x${BigInt.asUintN(size * 8, BigInt(v)).toString(16)}`;
  };
  if (L.is64) {
    switch (field) {
      case 0: set(32, 8, v64(), "e_phoff"); break;
      case 1: set(56, 2, rng.pick([0, 1, 2, 0xffff, 0xfffe, 64, 1000]), "e_phnum"); break;
      case 2: set(54, 2, rng.pick([0, 1, 32, 55, 56, 57, 64, 0xffff]), "e_phentsize"); break;
      case 3: set(24, 8, v64(), "e_entry"); break;
      case 4: if (inPh(8, 8)) set(ph + 8, 8, v64(), "p_offset"); break;
      case 5: if (inPh(32, 8)) set(ph + 32, 8, v64(), "p_filesz"); break;
      case 6: if (inPh(40, 8)) set(ph + 40, 8, v64(), "p_memsz"); break;
      case 7: if (inPh(24, 8)) set(ph + 24, 8, v64(), "p_paddr"); break;
      case 8: if (inPh(16, 8)) set(ph + 16, 8, v64(), "p_vaddr"); break;
      case 9: if (inPh(0, 4)) set(ph, 4, rng.pick([0, 1, 2, 3, 4, 6, 0x6474e551, 0xffffffff]), "p_type"); break;
      case 10: set(16, 2, rng.pick([0, 1, 2, 3, 4, 0xffff]), "e_type"); break;
      default: set(18, 2, rng.pick([0, 3, 62, 40, 0xffff]), "e_machine"); break;
    }
  } else {
    switch (field) {
      case 0: set(28, 4, v32(), "e_phoff"); break;
      case 1: set(44, 2, rng.pick([0, 1, 2, 0xffff, 0xfffe, 64, 1000]), "e_phnum"); break;
      case 2: set(42, 2, rng.pick([0, 1, 31, 32, 33, 56, 0xffff]), "e_phentsize"); break;
      case 3: set(24, 4, v32(), "e_entry"); break;
      case 4: if (inPh(4, 4)) set(ph + 4, 4, v32(), "p_offset"); break;
      case 5: if (inPh(16, 4)) set(ph + 16, 4, v32(), "p_filesz"); break;
      case 6: if (inPh(20, 4)) set(ph + 20, 4, v32(), "p_memsz"); break;
      case 7: if (inPh(12, 4)) set(ph + 12, 4, v32(), "p_paddr"); break;
      case 8: if (inPh(8, 4)) set(ph + 8, 4, v32(), "p_vaddr"); break;
      case 9: if (inPh(0, 4)) set(ph, 4, rng.pick([0, 1, 2, 3, 4, 6, 0x6474e551, 0xffffffff]), "p_type"); break;
      case 10: set(16, 2, rng.pick([0, 1, 2, 3, 4, 0xffff]), "e_type"); break;
      default: set(18, 2, rng.pick([0, 3, 62, 40, 0xffff]), "e_machine"); break;
    }
  }
  return { name: name || "no field in range", bytes: out };
}

/** Multiboot header damage: no magic, bad checksum, flags, a.out-kludge address fields. */
function mbDamage(b: Uint8Array, rng: Rng, ramSize: number): { name: string; bytes: Uint8Array } {
  const L = layoutOf(b);
  const out = b.slice();
  const dv = new DataView(out.buffer);
  if (L.mbOffset < 0) return { name: "no multiboot header to damage", bytes: out };
  const o = L.mbOffset;
  const k = rng.int(0, 5);
  const fixSum = () => dv.setUint32(o + 8, (-(0x1badb002 + dv.getUint32(o + 4, true))) >>> 0, true);
  if (k === 0) { dv.setUint32(o, 0, true); return { name: "multiboot magic cleared", bytes: out }; }
  if (k === 1) { dv.setUint32(o + 8, dv.getUint32(o + 8, true) ^ 1, true); return { name: "multiboot checksum off by one bit", bytes: out }; }
  if (k === 2) { dv.setUint32(o, 0xe85250d6, true); return { name: "multiboot2 magic instead", bytes: out }; }
  if (k === 3) {
    const flags = rng.pick([1 << 3, 1 << 15, 0xffff, 0xffffffff, 1 << 2, 1 << 16]);
    dv.setUint32(o + 4, flags, true); fixSum();
    return { name: `multiboot flags 0x${flags.toString(16)} (valid checksum)`, bytes: out };
  }
  // a.out kludge: set bit 16 and lie in the address fields
  if (o + 32 > out.length) return { name: "a.out fields past the end", bytes: out };
  dv.setUint32(o + 4, (dv.getUint32(o + 4, true) | 0x10000) >>> 0, true); fixSum();
  const f = ["header_addr", "load_addr", "load_end_addr", "bss_end_addr", "entry_addr"];
  const base = rng.pick([0x100000, 0, 0x9000, 0xa0000, ramSize - 4096, 0xfffff000]);
  const vals = [base + o, base, rng.pick([0, base + out.length - o, base - 1, 0xffffffff]), rng.pick([0, base + 0x100000, base - 1, 0xffffffff, ramSize + 1]), base + o + 32];
  const which = rng.int(0, 4);
  vals[which] = rng.chance(0.5) ? rng.pick([0, 1, 0xffffffff, 0x80000000, ramSize, base - 1]) : rng.u32();
  for (let i = 0; i < 5; i++) dv.setUint32(o + 12 + 4 * i, vals[i]! >>> 0, true);
  return { name: `a.out kludge: ${f[which]} = 0x${(vals[which]! >>> 0).toString(16)} (${f.map((n, i) => `${n} 0x${(vals[i]! >>> 0).toString(16)}`).join(", ")})`, bytes: out };
}

/** Every mutation of `base` for one seed: truncations, bit flips, lies, header damage, garbage. */
export function* mutations(base: Uint8Array, seed: number, ramSize: number, n: number): Generator<LoaderCase> {
  const rng = new Rng(seed);
  for (const t of truncationPoints(base)) yield { name: `truncated to ${t} bytes`, bytes: base.slice(0, t) };
  for (let i = 0; i < n; i++) {
    const kind = rng.int(0, 5);
    if (kind <= 1) {
      const out = base.slice();
      const flips = rng.int(1, 8);
      const span = rng.chance(0.7) ? Math.min(out.length, 512) : out.length;
      const at: number[] = [];
      for (let f = 0; f < flips; f++) { const p = rng.int(0, span * 8 - 1); at.push(p); out[p >> 3] ^= 1 << (p & 7); }
      yield { name: `bit flips at ${at.map((p) => `${p >> 3}.${p & 7}`).join(",")}`, bytes: out };
    } else if (kind <= 3) {
      const c = lie(base, rng, ramSize);
      yield { name: `lie: ${c.name}`, bytes: rng.chance(0.3) ? lie(c.bytes, rng, ramSize).bytes : c.bytes };
    } else if (kind === 4) {
      const c = mbDamage(base, rng, ramSize);
      yield { name: `header damage: ${c.name}`, bytes: c.bytes };
    } else {
      // garbage: random bytes of a random size, sometimes with an ELF magic or a multiboot header in front
      const len = rng.pick([0, 1, 12, 31, 32, 52, 64, 100, 4096, 8192, 9000]);
      const out = rng.bytes(len);
      if (rng.chance(0.5) && len >= 4) out.set([0x7f, 0x45, 0x4c, 0x46], 0);
      if (rng.chance(0.3) && len >= 16) { out.set([0x7f, 0x45, 0x4c, 0x46, rng.pick([1, 2]), 1, 1], 0); }
      yield { name: `garbage of ${len} bytes`, bytes: out };
    }
  }
}
