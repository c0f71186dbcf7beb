/**
 * Builds small synthetic ELF32/ELF64 kernels and a.out-kludge flat images with a
 * multiboot v1 header, for the loader tests.
 */

export const MB_MAGIC = 0x1badb002;

export interface MbHeaderSpec {
  flags?: number;
  /** Override the checksum (default: the correct one). */
  checksum?: number;
  /** a.out-kludge address fields; also sets flags bit 16 unless flags is given. */
  addr?: { headerAddr: number; loadAddr: number; loadEndAddr: number; bssEndAddr: number; entryAddr: number };
}

export function mbHeader(spec: MbHeaderSpec = {}): Uint8Array {
  const flags = spec.flags ?? (spec.addr ? 0x10003 : 0x3);
  const out = new Uint8Array(spec.addr ? 32 : 12);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MB_MAGIC, true);
  dv.setUint32(4, flags >>> 0, true);
  dv.setUint32(8, spec.checksum ?? (-(MB_MAGIC + flags) >>> 0), true);
  if (spec.addr) {
    dv.setUint32(12, spec.addr.headerAddr, true);
    dv.setUint32(16, spec.addr.loadAddr, true);
    dv.setUint32(20, spec.addr.loadEndAddr, true);
    dv.setUint32(24, spec.addr.bssEndAddr, true);
    dv.setUint32(28, spec.addr.entryAddr, true);
  }
  return out;
}

export interface SegSpec {
  paddr: number | bigint;
  vaddr?: number | bigint;
  data: Uint8Array;
  memsz?: number;
  flags?: number;
  type?: number;
}

export interface ElfSpec {
  cls: 32 | 64;
  machine?: number;
  type?: number;
  entry: number | bigint;
  segments: SegSpec[];
  /** false: no multiboot header at all. */
  multiboot?: MbHeaderSpec | false;
}

export interface BuiltElf {
  bytes: Uint8Array;
  phoff: number;
  phentsize: number;
  mbOffset: number;
  segOffsets: number[];
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

export function buildElf(spec: ElfSpec): BuiltElf {
  const is64 = spec.cls === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const phoff = ehsize;
  const mb = spec.multiboot === false ? new Uint8Array(0) : mbHeader(spec.multiboot ?? {});
  const mbOffset = align(phoff + phentsize * spec.segments.length, 4);
  let cur = align(mbOffset + mb.length, 16);
  const segOffsets = spec.segments.map((s) => {
    const o = cur;
    cur = align(cur + s.data.length, 16);
    return o;
  });
  const bytes = new Uint8Array(Math.max(cur, mbOffset + mb.length));
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1], 0);
  dv.setUint16(16, spec.type ?? 2, true);
  dv.setUint16(18, spec.machine ?? (is64 ? 62 : 3), true);
  dv.setUint32(20, 1, true);
  if (is64) {
    dv.setBigUint64(24, BigInt(spec.entry), true);
    dv.setBigUint64(32, BigInt(phoff), true);
    dv.setUint16(52, ehsize, true);
    dv.setUint16(54, phentsize, true);
    dv.setUint16(56, spec.segments.length, true);
  } else {
    dv.setUint32(24, Number(spec.entry), true);
    dv.setUint32(28, phoff, true);
    dv.setUint16(40, ehsize, true);
    dv.setUint16(42, phentsize, true);
    dv.setUint16(44, spec.segments.length, true);
  }
  spec.segments.forEach((s, i) => {
    const p = phoff + i * phentsize;
    const memsz = s.memsz ?? s.data.length;
    const vaddr = s.vaddr ?? s.paddr;
    const flags = s.flags ?? 5;
    if (is64) {
      dv.setUint32(p, s.type ?? 1, true);
      dv.setUint32(p + 4, flags, true);
      dv.setBigUint64(p + 8, BigInt(segOffsets[i]!), true);
      dv.setBigUint64(p + 16, BigInt(vaddr), true);
      dv.setBigUint64(p + 24, BigInt(s.paddr), true);
      dv.setBigUint64(p + 32, BigInt(s.data.length), true);
      dv.setBigUint64(p + 40, BigInt(memsz), true);
      dv.setBigUint64(p + 48, 0x1000n, true);
    } else {
      dv.setUint32(p, s.type ?? 1, true);
      dv.setUint32(p + 4, segOffsets[i]!, true);
      dv.setUint32(p + 8, Number(vaddr), true);
      dv.setUint32(p + 12, Number(s.paddr), true);
      dv.setUint32(p + 16, s.data.length, true);
      dv.setUint32(p + 20, memsz, true);
      dv.setUint32(p + 24, flags, true);
      dv.setUint32(p + 28, 0x1000, true);
    }
    bytes.set(s.data, segOffsets[i]!);
  });
  bytes.set(mb, mbOffset);
  return { bytes, phoff, phentsize, mbOffset, segOffsets };
}

/** Deterministic filler bytes. */
export function pattern(len: number, seed = 1): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * A flat a.out-kludge image: `text` is loaded at loadAddr with the multiboot
 * header at file offset `headerOffset` (inside the text, as in a real image).
 */
export function buildAout(opts: {
  loadAddr: number;
  text: Uint8Array;
  headerOffset?: number;
  loadEndAddr?: number;
  bssEndAddr?: number;
  entryAddr?: number;
  headerAddr?: number;
  flags?: number;
}): Uint8Array {
  const hoff = opts.headerOffset ?? 0;
  const out = new Uint8Array(Math.max(opts.text.length, hoff + 32));
  out.set(opts.text);
  const h = mbHeader({
    flags: opts.flags,
    addr: {
      headerAddr: opts.headerAddr ?? opts.loadAddr + hoff,
      loadAddr: opts.loadAddr,
      loadEndAddr: opts.loadEndAddr ?? 0,
      bssEndAddr: opts.bssEndAddr ?? 0,
      entryAddr: opts.entryAddr ?? opts.loadAddr + hoff + 32,
    },
  });
  out.set(h, hoff);
  return out;
}
