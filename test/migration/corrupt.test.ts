/**
 * Bad streams: the destination refuses them with a MigrationError that says
 * what is wrong, and a source whose migration fails keeps its guest and
 * finishes it exactly as an unmigrated run.
 */
import { describe, it, expect, beforeAll } from "vitest";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { reference, migratedRun, bootMachine, rng, MiB, type GuestSpec } from "./support.js";
import { receiveMigration, runMigrationSource } from "../../src/migration/index.js";
import { MigrationError } from "../../src/errors.js";
import { loadCoreModule } from "../../src/platform/node.js";
import {
  StreamParser, SectionType, encodePreamble, encodeSection, encodeJsonSection, RamSectionBuilder, PREAMBLE_BYTES, SECTION_HEADER_BYTES,
} from "../../src/migration/stream.js";
import { crc32 } from "../../src/migration/crc32.js";

const dir = mkdtempSync(join(tmpdir(), "s86-mig-bad-"));
const G: GuestSpec = { image: "hello", ramSize: 16 * MiB };
const OPTS = { guestSlice: 2000, batchPages: 256, maxRounds: 2, maxDowntimeMs: 0 };

/** Where each section of a good stream starts, by name. */
function sectionsOf(stream: Uint8Array): { name: string; offset: number; length: number }[] {
  const out: { name: string; offset: number; length: number }[] = [];
  const p = new StreamParser("good");
  for (const s of p.push(stream)) out.push({ name: s.name, offset: s.offset, length: s.payload.length });
  return out;
}

async function refusal(stream: Uint8Array, name: string): Promise<string> {
  const f = join(dir, name);
  writeFileSync(f, stream);
  const e = await receiveMigration(`file:${f}`, { module: loadCoreModule() }).then(() => null, (x: unknown) => x);
  expect(e, "the destination accepted a bad stream").toBeInstanceOf(MigrationError);
  expect((e as MigrationError).name).toBe("MigrationError");
  return (e as MigrationError).message;
}

describe("the destination refuses bad streams (file:)", () => {
  let good: Uint8Array;
  let sections: ReturnType<typeof sectionsOf>;
  beforeAll(async () => {
    const ref = reference(G);
    const r = await migratedRun(G, "file", join(dir, "good.mig"), { ...OPTS, after: ref.instructions / 2n });
    expect(r.source.status).toBe("completed");
    expect(r.serial).toBe(ref.serial); // the good stream is good
    good = new Uint8Array(readFileSync(join(dir, "good.mig")));
    sections = sectionsOf(good);
  });

  it("has the sections in order: HEADER MMU RAM... ROUND... VCPU DEVICES END", () => {
    const names = sections.map((s) => s.name);
    expect(names[0]).toBe("HEADER");
    expect(names[1]).toBe("MMU");
    expect(names.slice(-3)).toEqual(["VCPU", "DEVICES", "END"]);
    expect(names.filter((n) => n === "ROUND").length).toBe(2);
  });

  it("a flipped byte in every section: checksum mismatch", async () => {
    for (const s of sections) {
      for (const at of [s.offset + 1, s.offset + SECTION_HEADER_BYTES + Math.floor(s.length / 2)]) {
        if (at >= s.offset + SECTION_HEADER_BYTES + s.length) continue;
        const bad = good.slice();
        bad[at]! ^= 0x40;
        const msg = await refusal(bad, `flip-${at}.mig`);
        // a flipped length byte may also make the section run past the end
        expect(msg, `byte ${at} in ${s.name}`).toMatch(/checksum mismatch|truncated|declares \d+ bytes/);
      }
    }
  });

  it("flipped single bits at random places (seeded) are all refused", async () => {
    const rand = rng(42);
    for (let i = 0; i < 12; i++) {
      const at = PREAMBLE_BYTES + Math.floor(rand() * (good.length - PREAMBLE_BYTES));
      const bad = good.slice();
      bad[at]! ^= 1 << Math.floor(rand() * 8);
      await refusal(bad, `bit-${i}.mig`);
    }
  });

  it("200 seeded mutations (bit flips, overwritten runs, re-sealed sections with lying lengths, dropped and repeated sections, cuts) are all refused", async () => {
    const rand = rng(7);
    const int = (n: number) => Math.floor(rand() * n);
    // a section re-sealed with a shorter length: its checksum is valid, the stream after it is garbage
    const reseal = (st: Uint8Array, sec: { offset: number; length: number }, len: number): Uint8Array => {
      const out = st.slice();
      const dv = new DataView(out.buffer, sec.offset, SECTION_HEADER_BYTES);
      dv.setUint32(4, len, true);
      dv.setUint32(8, crc32(out.subarray(sec.offset + SECTION_HEADER_BYTES, sec.offset + SECTION_HEADER_BYTES + len), crc32(out.subarray(sec.offset, sec.offset + 8))), true);
      return out;
    };
    const whole = (sec: { offset: number; length: number }) => good.subarray(sec.offset, sec.offset + SECTION_HEADER_BYTES + sec.length);
    const kinds = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      let bad: Uint8Array;
      const kind = ["bits", "run", "lie", "drop", "repeat", "cut"][i % 6]!;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
      // dropping or repeating a RAM section can be harmless (a zero-page run, pages sent twice): those
      // mutations pick the other sections, whose order and count the destination checks
      const pool = kind === "drop" || kind === "repeat" ? sections.filter((x) => x.name !== "RAM") : sections;
      const sec = pool[int(pool.length)]!;
      switch (kind) {
        case "bits": bad = good.slice(); for (let k = 1 + int(8); k > 0; k--) bad[PREAMBLE_BYTES + int(good.length - PREAMBLE_BYTES)]! ^= 1 << int(8); break;
        case "run": { bad = good.slice(); const at = int(good.length - 16); for (let k = 0; k < 1 + int(16); k++) bad[at + k] = int(256); break; }
        case "lie": bad = reseal(good, sec, sec.length === 0 ? 0 : int(sec.length)); if (sec.length === 0) bad[sec.offset + 5]! ^= 0x80; break;
        case "drop": { const j = sections.indexOf(sec); bad = new Uint8Array([...good.subarray(0, sec.offset), ...good.subarray(j + 1 < sections.length ? sections[j + 1]!.offset : good.length)]); break; }
        case "repeat": bad = new Uint8Array([...good.subarray(0, sec.offset), ...whole(sec), ...good.subarray(sec.offset)]); break;
        default: bad = good.slice(0, int(good.length)); break;
      }
      if (bad.length === good.length && bad.every((b, k) => b === good[k])) continue; // a mutation that changed nothing
      await refusal(bad, `mut-${i}.mig`);
    }
    expect([...kinds.values()].every((n) => n >= 30)).toBe(true);
  });

  it("truncated anywhere: refused as truncated", async () => {
    const cuts = [0, 3, PREAMBLE_BYTES, PREAMBLE_BYTES + 5, ...sections.map((s) => s.offset + 7), Math.floor(good.length / 2), good.length - 1];
    for (const n of cuts) {
      const msg = await refusal(good.slice(0, n), `cut-${n}.mig`);
      expect(msg, `cut at ${n}`).toMatch(n === 0 ? /empty stream/ : /truncated/);
    }
    // cut exactly between two sections: the stream ends before END
    const end = sections.find((s) => s.name === "END")!;
    expect(await refusal(good.slice(0, end.offset), "cut-before-end.mig")).toMatch(/ends before the END section/);
  });

  it("a wrong version or magic: refused by name", async () => {
    const v2 = good.slice();
    v2.set(encodePreamble(2));
    expect(await refusal(v2, "v2.mig")).toMatch(/version 2; this shadow86 reads version 1/);
    const v0 = good.slice();
    v0[4] = 0;
    expect(await refusal(v0, "v0.mig")).toMatch(/version 0/);
    const magic = good.slice();
    magic[0] = 0x7f;
    expect(await refusal(magic, "magic.mig")).toMatch(/not a shadow86 migration stream/);
  });

  it("bytes after END: refused", async () => {
    const more = new Uint8Array(good.length + 3);
    more.set(good);
    expect(await refusal(more, "trailing.mig")).toMatch(/unexpected bytes after/);
  });

  it("well-formed sections in the wrong order or with bad contents: refused", async () => {
    const cat = (...parts: Uint8Array[]) => { const n = parts.reduce((a, p) => a + p.length, 0); const o = new Uint8Array(n); let i = 0; for (const p of parts) { o.set(p, i); i += p.length; } return o; };
    const sec = (name: string) => { const s = sections.find((x) => x.name === name)!; return good.slice(s.offset, s.offset + SECTION_HEADER_BYTES + s.length); };
    const pre = encodePreamble();
    expect(await refusal(cat(pre, sec("MMU")), "no-header.mig")).toMatch(/the MMU section must follow the header/);
    expect(await refusal(cat(pre, sec("HEADER"), sec("MMU"), sec("END")), "no-vcpu.mig")).toMatch(/ends before the vCPU state/);
    expect(await refusal(cat(pre, sec("HEADER"), sec("MMU"), sec("VCPU"), sec("END")), "no-devices.mig")).toMatch(/no device state/);
    expect(await refusal(cat(pre, encodeJsonSection(SectionType.HEADER, { ramSize: 3, pageSize: 4096, vcpus: 1, memslots: [] })), "bad-ram.mig")).toMatch(/bad ramSize/);
    expect(await refusal(cat(pre, sec("HEADER"), encodeJsonSection(SectionType.MMU, { mode: "ept", knobs: {} })), "bad-mmu.mig")).toMatch(/unknown MMU mode "ept"/);
    expect(await refusal(cat(pre, sec("HEADER"), encodeJsonSection(SectionType.MMU, { mode: "shadow", knobs: { prev_roots: 7 } })), "bad-knob.mig")).toMatch(/prev_roots/);
    const b = new RamSectionBuilder(1);
    b.addZero(G.ramSize / 4096 + 10); // past the end of RAM
    expect(await refusal(cat(pre, sec("HEADER"), sec("MMU"), b.finish()), "bad-gfn.mig")).toMatch(/not guest RAM/);
    const hole = new RamSectionBuilder(1);
    hole.addZero(0xb8); // the VGA hole between 640 KiB and 1 MiB is not RAM either
    expect(await refusal(cat(pre, sec("HEADER"), sec("MMU"), hole.finish()), "hole-gfn.mig")).toMatch(/not guest RAM/);
    expect(await refusal(cat(pre, sec("HEADER"), sec("MMU"), encodeSection(SectionType.RAM, new Uint8Array(20))), "bad-rec.mig")).toMatch(/malformed RAM section/);
    expect(await refusal(cat(pre, encodeJsonSection(SectionType.ABORT, { reason: "testing" })), "abort.mig")).toMatch(/the source cancelled the migration: testing/);
    // a device state that its device rejects
    const dev = JSON.parse(new TextDecoder().decode(sec("DEVICES").subarray(SECTION_HEADER_BYTES))) as Record<string, Record<string, unknown>>;
    dev.uart!.lcr = 999;
    const upToDevices = good.slice(0, sections.find((s) => s.name === "DEVICES")!.offset);
    expect(await refusal(cat(upToDevices, encodeJsonSection(SectionType.DEVICES, dev), sec("END")), "bad-dev.mig")).toMatch(/uart16550 state: lcr is 999/);
    // a RAM digest that does not match what arrived
    const end = JSON.parse(new TextDecoder().decode(sec("END").subarray(SECTION_HEADER_BYTES))) as Record<string, unknown>;
    end.ramDigest = "0123456789abcdef";
    const noEnd = good.slice(0, sections.find((s) => s.name === "END")!.offset);
    expect(await refusal(cat(noEnd, encodeJsonSection(SectionType.END, end)), "bad-digest.mig")).toMatch(/RAM digest mismatch/);
  });
});

describe("a failed migration leaves the source running (tcp:)", () => {
  const ref = () => reference(G);

  async function failing(tcpTamper: Parameters<typeof migratedRun>[3]["tcpTamper"], pattern: RegExp) {
    const r = await migratedRun(G, "tcp", "", { ...OPTS, after: ref().instructions / 3n, tcpTamper });
    expect(r.source.status).toBe("failed");
    expect(r.source.error).toMatch(pattern);
    // the guest went on at the source and finished exactly like an unmigrated run
    expect(r.sourceSerial).toBe(ref().serial);
    expect(r.status).toBe(ref().status);
    expect(r.result.instructions).toBe(ref().instructions);
  }

  it("a flipped byte: the destination refuses, the source carries on", async () => {
    await failing((c, off) => {
      const at = 5000; // inside a RAM section
      if (at >= off && at < off + c.length) { const d = c.slice(); d[at - off]! ^= 0xff; return { data: d }; }
      return { data: c };
    }, /refused the migration: checksum mismatch/);
  });

  it("a truncated stream: the destination refuses, the source carries on", async () => {
    const cut = 100_000;
    await failing((c, off) => (off + c.length >= cut ? { data: c.subarray(0, Math.max(0, cut - off)), end: true } : { data: c }), /refused the migration: stream truncated/);
  });

  it("a wrong version: the destination refuses, the source carries on", async () => {
    await failing((c, off) => {
      if (off === 0) { const d = c.slice(); d[4] = 9; return { data: d }; }
      return { data: c };
    }, /refused the migration: migration stream version 9/);
  });

  it("the link drops mid-stream: the source carries on", async () => {
    // a "destination" that reads 64 KiB and hangs up without a word
    const server: Server = createServer((s) => {
      let n = 0;
      s.on("data", (d: Buffer) => { n += d.length; if (n > 65536) s.destroy(); });
      s.on("error", () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    const out: number[] = [];
    const m = bootMachine(G, out);
    const o = await runMigrationSource(m, { ...OPTS, uri: `tcp:127.0.0.1:${port}`, after: ref().instructions / 3n });
    server.close();
    expect(o.summary.status).toBe("failed");
    expect(o.summary.error).toMatch(/connection to the destination was lost|refused/);
    expect(Buffer.from(out).toString("latin1")).toBe(ref().serial);
    expect(o.result!.status).toBe(ref().status);
  });

  it("nobody listening: the source carries on", async () => {
    const server: Server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r())); // a port that was just free
    const out: number[] = [];
    const o = await runMigrationSource(bootMachine(G, out), { ...OPTS, uri: `tcp:127.0.0.1:${port}`, after: 1000n });
    expect(o.summary.status).toBe("failed");
    expect(o.summary.error).toMatch(/cannot connect/);
    expect(Buffer.from(out).toString("latin1")).toBe(ref().serial);
    expect(o.result!.status).toBe(ref().status);
  });
});
