/**
 * The migration stream format, version 1.
 *
 *   stream   := preamble section*           (the last section is END or ABORT)
 *   preamble := "S86M" u32 version          (little-endian, like everything here)
 *   section  := u32 type, u32 length, u32 crc32, payload[length]
 *
 * The CRC-32 covers the section's type and length fields and its payload, so a
 * flipped bit anywhere in a section, its header included, is caught. Sections:
 *
 *   HEADER   JSON {ramSize, pageSize, memslots, vcpus, source}       first
 *   MMU      JSON {mode, knobs}                                      second
 *   RAM      records {u64 gfn, u32 count, u32 kind} + data: kind 0 = count pages
 *            of 4 KiB follow, kind 1 = count zero pages (a marker, no data)
 *   ROUND    u32 round number: the pages of that pre-copy round have been sent
 *   VCPU     u32 id, u32 n, n x {u8 name length, name, u32 size, bytes}: every
 *            field of the vCPU struct by its core constant name (see state.ts)
 *   DEVICES  JSON {uart, debugExit, lapic, picMaster, picSlave, fwCfg, shutdownPort}
 *   END      JSON {rounds, pages, ramDigest}: the destination checks its RAM against it
 *   ABORT    JSON {reason}: the source cancelled (the guest stopped during pre-copy)
 *
 * A destination refuses (MigrationError) a wrong magic or version, a section whose
 * CRC does not match, an unknown or misplaced section, a malformed payload, a
 * stream that ends before END, or bytes after END.
 */
import { crc32 } from "./crc32.js";
import { MigrationError } from "../errors.js";
import { PAGE_SIZE } from "./pagehash.js";

export const MIGRATION_MAGIC = "S86M";
export const MIGRATION_VERSION = 1;
export const PREAMBLE_BYTES = 8;
export const SECTION_HEADER_BYTES = 12;
/** Larger sections are refused before their payload is read (a corrupt length must not make the reader wait for 4 GiB). */
export const MAX_SECTION_BYTES = 64 << 20;
export const RAM_RECORD_BYTES = 16;
export const RAM_KIND_PAGES = 0;
export const RAM_KIND_ZERO = 1;

export const SectionType = { HEADER: 1, MMU: 2, RAM: 3, ROUND: 4, VCPU: 5, DEVICES: 6, END: 7, ABORT: 8 } as const;
export type SectionName = keyof typeof SectionType;
const NAMES = new Map<number, SectionName>(Object.entries(SectionType).map(([k, v]) => [v, k as SectionName]));
export function sectionName(type: number): string { return NAMES.get(type) ?? `type ${type}`; }

export interface Section { type: number; name: string; payload: Uint8Array; /** Stream offset of the section header. */ offset: number; }

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

export function encodePreamble(version = MIGRATION_VERSION): Uint8Array {
  const b = new Uint8Array(PREAMBLE_BYTES);
  b.set(enc.encode(MIGRATION_MAGIC), 0);
  new DataView(b.buffer).setUint32(4, version, true);
  return b;
}

/** Fill in a section header in front of a payload already written at `buf[12..12+length)`. */
export function sealSection(buf: Uint8Array, type: number, length: number): Uint8Array {
  const dv = new DataView(buf.buffer, buf.byteOffset, SECTION_HEADER_BYTES);
  dv.setUint32(0, type, true);
  dv.setUint32(4, length, true);
  const crc = crc32(buf.subarray(SECTION_HEADER_BYTES, SECTION_HEADER_BYTES + length), crc32(buf.subarray(0, 8)));
  dv.setUint32(8, crc, true);
  return buf.subarray(0, SECTION_HEADER_BYTES + length);
}

export function encodeSection(type: number, payload: Uint8Array): Uint8Array {
  const buf = new Uint8Array(SECTION_HEADER_BYTES + payload.length);
  buf.set(payload, SECTION_HEADER_BYTES);
  return sealSection(buf, type, payload.length);
}

export function encodeJsonSection(type: number, value: unknown): Uint8Array {
  return encodeSection(type, enc.encode(JSON.stringify(value)));
}

export function encodeRoundSection(round: number): Uint8Array {
  const p = new Uint8Array(4);
  new DataView(p.buffer).setUint32(0, round, true);
  return encodeSection(SectionType.ROUND, p);
}

/**
 * Builds one RAM section from pages read straight out of guest memory: runs of
 * consecutive gfns of one kind become one record.
 */
export class RamSectionBuilder {
  private buf: Uint8Array;
  private dv: DataView;
  private len = 0; // payload bytes so far
  private rec = -1; // payload offset of the open record
  private recGfn = -1;
  private recKind = -1;
  private recCount = 0;
  pages = 0;
  zeroPages = 0;

  /** Room for `maxPages` pages (worst case: every page its own record). */
  constructor(maxPages: number) {
    this.buf = new Uint8Array(SECTION_HEADER_BYTES + maxPages * (RAM_RECORD_BYTES + PAGE_SIZE));
    this.dv = new DataView(this.buf.buffer);
  }

  private open(gfn: number, kind: number): void {
    if (this.rec >= 0 && kind === this.recKind && gfn === this.recGfn + this.recCount) return;
    this.closeRecord();
    this.rec = this.len;
    this.recGfn = gfn;
    this.recKind = kind;
    this.recCount = 0;
    const o = SECTION_HEADER_BYTES + this.rec;
    this.dv.setUint32(o, gfn >>> 0, true);
    this.dv.setUint32(o + 4, Math.floor(gfn / 2 ** 32), true);
    this.dv.setUint32(o + 12, kind, true);
    this.len += RAM_RECORD_BYTES;
  }

  private closeRecord(): void {
    if (this.rec >= 0) this.dv.setUint32(SECTION_HEADER_BYTES + this.rec + 8, this.recCount, true);
  }

  addZero(gfn: number): void {
    this.open(gfn, RAM_KIND_ZERO);
    this.recCount++;
    this.zeroPages++;
  }

  /** Append page `gfn` whose 4 KiB are `src[at..at+4096)`. */
  addPage(gfn: number, src: Uint8Array, at: number): void {
    this.open(gfn, RAM_KIND_PAGES);
    this.buf.set(src.subarray(at, at + PAGE_SIZE), SECTION_HEADER_BYTES + this.len);
    this.len += PAGE_SIZE;
    this.recCount++;
    this.pages++;
  }

  get empty(): boolean { return this.rec < 0; }

  /** The sealed section: a view of the builder's buffer, valid until reset(). */
  finish(): Uint8Array {
    this.closeRecord();
    return sealSection(this.buf, SectionType.RAM, this.len);
  }

  /** Start a new section in the same buffer (once the last one is written out). */
  reset(): void {
    this.len = 0;
    this.rec = -1;
    this.recGfn = -1;
    this.recKind = -1;
    this.recCount = 0;
    this.pages = 0;
    this.zeroPages = 0;
  }
}

/**
 * Incremental reader: push() the bytes as they arrive and get back the
 * complete, checksum-verified sections; finish() at the end of the stream.
 */
export class StreamParser {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Stream offset of the first buffered byte. */
  offset = 0;
  private preambleSeen = false;
  private ended = false;
  version = 0;

  constructor(readonly subject: string) {}

  private fail(what: string): never { throw new MigrationError(this.subject, what); }

  /** Take exactly n bytes off the front (n <= buffered). */
  private take(n: number): Uint8Array {
    let out: Uint8Array;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift(); else this.chunks[0] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - got);
        out.set(c.subarray(0, k), got);
        got += k;
        if (k === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    this.offset += n;
    return out;
  }

  private peekHeader(): { type: number; length: number; crc: number } {
    const h = this.buffered >= SECTION_HEADER_BYTES && this.chunks[0]!.length >= SECTION_HEADER_BYTES ? this.chunks[0]! : this.peekBytes(SECTION_HEADER_BYTES);
    const dv = new DataView(h.buffer, h.byteOffset, SECTION_HEADER_BYTES);
    return { type: dv.getUint32(0, true), length: dv.getUint32(4, true), crc: dv.getUint32(8, true) };
  }

  private peekBytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let got = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - got);
      out.set(c.subarray(0, k), got);
      got += k;
      if (got === n) break;
    }
    return out;
  }

  push(chunk: Uint8Array): Section[] {
    if (chunk.length === 0) return [];
    if (this.ended) this.fail(`${chunk.length} unexpected bytes after the stream's last section (offset ${this.offset})`);
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Section[] = [];
    if (!this.preambleSeen) {
      if (this.buffered < PREAMBLE_BYTES) return out;
      const p = this.take(PREAMBLE_BYTES);
      const magic = String.fromCharCode(p[0]!, p[1]!, p[2]!, p[3]!);
      if (magic !== MIGRATION_MAGIC) this.fail(`not a shadow86 migration stream (starts with ${JSON.stringify(magic)}, expected "${MIGRATION_MAGIC}")`);
      this.version = new DataView(p.buffer, p.byteOffset, 8).getUint32(4, true);
      if (this.version !== MIGRATION_VERSION) this.fail(`migration stream version ${this.version}; this shadow86 reads version ${MIGRATION_VERSION} only`);
      this.preambleSeen = true;
    }
    while (!this.ended && this.buffered >= SECTION_HEADER_BYTES) {
      const h = this.peekHeader();
      if (h.length > MAX_SECTION_BYTES) this.fail(`section at offset ${this.offset} declares ${h.length} bytes (more than the ${MAX_SECTION_BYTES} a section may have): corrupt stream`);
      if (this.buffered < SECTION_HEADER_BYTES + h.length) break;
      const offset = this.offset;
      const raw = this.take(SECTION_HEADER_BYTES + h.length);
      const crc = crc32(raw.subarray(SECTION_HEADER_BYTES), crc32(raw.subarray(0, 8)));
      if (crc !== h.crc) this.fail(`checksum mismatch in the ${sectionName(h.type)} section at offset ${offset} (crc32 0x${crc.toString(16)}, the stream says 0x${h.crc.toString(16)}): corrupt stream`);
      if (!NAMES.has(h.type)) this.fail(`unknown section type ${h.type} at offset ${offset}`);
      const s: Section = { type: h.type, name: sectionName(h.type), payload: raw.subarray(SECTION_HEADER_BYTES), offset };
      if (h.type === SectionType.END || h.type === SectionType.ABORT) this.ended = true;
      out.push(s);
    }
    if (this.ended && this.buffered > 0) this.fail(`${this.buffered} unexpected bytes after the stream's last section (offset ${this.offset})`);
    return out;
  }

  /** The transport reached its end: refuse a stream cut short. */
  finish(): void {
    if (this.ended) return;
    if (!this.preambleSeen) this.fail(this.offset + this.buffered === 0 ? "empty stream (the source sent nothing)" : `stream truncated: ${this.buffered} bytes, shorter than the ${PREAMBLE_BYTES}-byte preamble`);
    if (this.buffered >= SECTION_HEADER_BYTES) {
      const h = this.peekHeader();
      this.fail(`stream truncated at offset ${this.offset + this.buffered}: the ${sectionName(h.type)} section at offset ${this.offset} declares ${h.length} bytes, only ${this.buffered - SECTION_HEADER_BYTES} arrived`);
    }
    this.fail(`stream truncated at offset ${this.offset + this.buffered}: it ends before the END section${this.buffered ? ` (${this.buffered} bytes of a section header)` : ""}`);
  }
}

export function decodeJson(subject: string, s: Section): Record<string, unknown> {
  let v: unknown;
  try { v = JSON.parse(dec.decode(s.payload)); } catch (e) {
    throw new MigrationError(subject, `the ${s.name} section at offset ${s.offset} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new MigrationError(subject, `the ${s.name} section at offset ${s.offset} is not a JSON object`);
  return v as Record<string, unknown>;
}

export function decodeRound(subject: string, s: Section): number {
  if (s.payload.length !== 4) throw new MigrationError(subject, `the ROUND section at offset ${s.offset} has ${s.payload.length} bytes, expected 4`);
  return new DataView(s.payload.buffer, s.payload.byteOffset, 4).getUint32(0, true);
}

export interface RamRecord { gfn: number; count: number; kind: number; /** Offset of the data in the payload (kind 0). */ data: number; }

/** The records of a RAM section, structure checked (gfn ranges are the caller's to check). */
export function decodeRam(subject: string, s: Section): RamRecord[] {
  const p = s.payload;
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  const out: RamRecord[] = [];
  let o = 0;
  const bad = (what: string): never => { throw new MigrationError(subject, `malformed RAM section at offset ${s.offset}: ${what}`); };
  while (o < p.length) {
    if (p.length - o < RAM_RECORD_BYTES) bad(`${p.length - o} stray bytes at its end`);
    const gfn = dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 2 ** 32;
    const count = dv.getUint32(o + 8, true);
    const kind = dv.getUint32(o + 12, true);
    if (count === 0) bad(`an empty record for gfn 0x${gfn.toString(16)}`);
    if (kind !== RAM_KIND_PAGES && kind !== RAM_KIND_ZERO) bad(`record kind ${kind} (expected 0 = pages or 1 = zero pages)`);
    o += RAM_RECORD_BYTES;
    out.push({ gfn, count, kind, data: o });
    if (kind === RAM_KIND_PAGES) {
      if (p.length - o < count * PAGE_SIZE) bad(`a record of ${count} pages at gfn 0x${gfn.toString(16)} with only ${p.length - o} bytes left`);
      o += count * PAGE_SIZE;
    }
  }
  return out;
}
