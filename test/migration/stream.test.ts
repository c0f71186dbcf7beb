import { describe, it, expect } from "vitest";
import { crc32 } from "../../src/migration/crc32.js";
import {
  StreamParser, SectionType, encodePreamble, encodeSection, encodeJsonSection, encodeRoundSection, RamSectionBuilder,
  decodeRam, decodeJson, decodeRound, MAX_SECTION_BYTES, RAM_KIND_PAGES, RAM_KIND_ZERO,
} from "../../src/migration/stream.js";
import { MigrationError } from "../../src/errors.js";
import { rng } from "./support.js";

const cat = (...parts: Uint8Array[]) => { const o = new Uint8Array(parts.reduce((a, p) => a + p.length, 0)); let i = 0; for (const p of parts) { o.set(p, i); i += p.length; } return o; };

describe("crc32", () => {
  it("is the IEEE CRC-32 (check value 0xcbf43926) and continues across pieces", () => {
    const data = new TextEncoder().encode("123456789");
    expect(crc32(data)).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const big = new Uint8Array(10007).map((_, i) => (i * 2654435761) >>> 24);
    expect(crc32(big.subarray(3000), crc32(big.subarray(0, 3000)))).toBe(crc32(big));
  });
});

describe("stream sections", () => {
  const page = new Uint8Array(8192).map((_, i) => i & 0xff);
  function sample(): Uint8Array {
    const ram = new RamSectionBuilder(8);
    ram.addPage(5, page, 0);
    ram.addPage(6, page, 4096); // consecutive: same record
    ram.addZero(7);
    ram.addZero(8);
    ram.addPage(100, page, 0);
    return cat(encodePreamble(), encodeJsonSection(SectionType.HEADER, { a: 1 }), ram.finish().slice(), encodeRoundSection(0),
      encodeJsonSection(SectionType.END, { ok: true }));
  }

  it("parse the same however the bytes are split", () => {
    const s = sample();
    const whole = new StreamParser("t").push(s);
    expect(whole.map((x) => x.name)).toEqual(["HEADER", "RAM", "ROUND", "END"]);
    const rand = rng(7);
    for (let trial = 0; trial < 20; trial++) {
      const p = new StreamParser("t");
      const got = [];
      let i = 0;
      while (i < s.length) {
        const n = trial === 0 ? 1 : 1 + Math.floor(rand() * 3000);
        got.push(...p.push(s.subarray(i, i + n)));
        i += n;
      }
      p.finish();
      expect(got.map((x) => [x.name, x.offset, Buffer.from(x.payload).toString("hex")])).toEqual(whole.map((x) => [x.name, x.offset, Buffer.from(x.payload).toString("hex")]));
    }
  });

  it("RAM records: runs of one kind, zero pages without data", () => {
    const [, ram] = new StreamParser("t").push(sample());
    const recs = decodeRam("t", ram!);
    expect(recs.map((r) => [r.gfn, r.count, r.kind])).toEqual([[5, 2, RAM_KIND_PAGES], [7, 2, RAM_KIND_ZERO], [100, 1, RAM_KIND_PAGES]]);
    expect(Buffer.compare(Buffer.from(ram!.payload.subarray(recs[0]!.data, recs[0]!.data + 8192)), Buffer.from(page))).toBe(0);
    expect(ram!.payload.length).toBe(3 * 16 + 3 * 4096); // the two zero pages cost 16 bytes together
  });

  it("ROUND and JSON payloads decode; malformed ones are MigrationErrors", () => {
    const secs = new StreamParser("t").push(sample());
    expect(decodeJson("t", secs[0]!)).toEqual({ a: 1 });
    expect(decodeRound("t", secs[2]!)).toBe(0);
    const [bad] = new StreamParser("t").push(cat(encodePreamble(), encodeSection(SectionType.HEADER, new TextEncoder().encode("{nope"))));
    expect(() => decodeJson("t", bad!)).toThrow(/not valid JSON/);
    const [arr] = new StreamParser("t").push(cat(encodePreamble(), encodeSection(SectionType.HEADER, new TextEncoder().encode("[1]"))));
    expect(() => decodeJson("t", arr!)).toThrow(/not a JSON object/);
  });

  it("refuses an absurd section length at once, without waiting for the bytes", () => {
    const h = new Uint8Array(12);
    new DataView(h.buffer).setUint32(0, SectionType.RAM, true);
    new DataView(h.buffer).setUint32(4, MAX_SECTION_BYTES + 1, true);
    expect(() => new StreamParser("t").push(cat(encodePreamble(), h))).toThrow(MigrationError);
  });

  it("refuses an unknown section type even with a good checksum", () => {
    expect(() => new StreamParser("t").push(cat(encodePreamble(), encodeSection(99, new Uint8Array(4))))).toThrow(/unknown section type 99/);
  });
});
