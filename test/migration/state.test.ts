import { describe, it, expect } from "vitest";
import { Vm } from "../../src/vm.js";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { VCPU_STATE_FIELDS, VCPU_NOT_MIGRATED, encodeVcpu, decodeVcpu, restoreVcpu, saveDevices, restoreDevices } from "../../src/migration/state.js";
import { StreamParser, encodePreamble } from "../../src/migration/stream.js";
import { MigrationError } from "../../src/errors.js";

const MiB = 1 << 20;
const k = () => new Vm({ ramSize: 2 * MiB, module: loadCoreModule() }).core.k;

describe("vCPU state", () => {
  it("every VCPU_* offset the core exports is migrated or knowingly left out", () => {
    const c = k();
    const migrated = new Set(VCPU_STATE_FIELDS.map(([n]) => n));
    const unknown = Object.keys(c).filter((n) => n.startsWith("VCPU_") && !migrated.has(n) && !VCPU_NOT_MIGRATED.includes(n));
    expect(unknown, "add new vCPU struct fields to VCPU_STATE_FIELDS (src/migration/state.ts)").toEqual([]);
  });

  it("field sizes fit the layout: no field runs into the next one or into the exit struct", () => {
    const c = k();
    const offsets = [...new Set(Object.entries(c).filter(([n]) => n.startsWith("VCPU_") && n !== "VCPU_STATS_MAX" && n !== "VCPU_SIZE").map(([, v]) => v))].sort((a, b) => a - b);
    for (const [name, size] of VCPU_STATE_FIELDS) {
      const off = c[name]!;
      const next = offsets.find((o) => o > off)!;
      expect(off + size, `${name} at ${off} + ${size} overlaps the field at ${next}`).toBeLessThanOrEqual(next);
      expect(off + size).toBeLessThanOrEqual(c.VCPU_EXIT!);
    }
  });

  function machine() { return new Machine({ module: loadCoreModule(), ramSize: 4 * MiB }); }

  it("round-trips every field, the exit struct and the counters into a fresh vCPU", () => {
    const a = machine().vm.vcpus[0]!;
    const mem = new Uint8Array(a.vm.memory.buffer);
    // scribble a pattern over every migrated byte
    let x = 1;
    for (const [name, size] of VCPU_STATE_FIELDS) for (let i = 0; i < size; i++) mem[a.base + a.vm.core.k[name]! + i] = (x = (x * 73 + 11) & 0xff);
    a.set64(a.vm.core.k.EXIT_IO_DATA!, 0x1234n);
    a.set64(a.vm.core.k.VCPU_STATS! + 8 * a.vm.core.statNames.indexOf("exits"), 77n);
    const [s] = new StreamParser("t").push(new Uint8Array([...encodePreamble(), ...encodeVcpu(a)]));
    const b = machine().vm.vcpus[0]!;
    restoreVcpu(b, decodeVcpu("t", s!, b.vm.core.k));
    const mb = new Uint8Array(b.vm.memory.buffer);
    for (const [name, size] of VCPU_STATE_FIELDS) {
      const o = a.vm.core.k[name]!;
      expect(Buffer.from(mb.subarray(b.base + o, b.base + o + size)).equals(Buffer.from(mem.subarray(a.base + o, a.base + o + size))), name).toBe(true);
    }
    expect(b.get64(b.vm.core.k.EXIT_IO_DATA!)).toBe(0x1234n);
    expect(b.stats().exits).toBe(77n);
  });

  it("refuses a vCPU section from an incompatible layout, naming the field", () => {
    const a = machine().vm.vcpus[0]!;
    const [s] = new StreamParser("t").push(new Uint8Array([...encodePreamble(), ...encodeVcpu(a)]));
    const layout = { ...a.vm.core.k, VCPU_NEW_THING: 900 };
    expect(() => decodeVcpu("t", s!, layout)).not.toThrow(); // a field this core has but VCPU_STATE_FIELDS lacks is the coverage test's job
    // a stream field of the wrong size
    const bytes = new Uint8Array(s!.payload);
    const name = new TextEncoder().encode("VCPU_CR3");
    const at = bytes.findIndex((_, i) => name.every((c, j) => bytes[i + j] === c));
    new DataView(bytes.buffer).setUint32(at + name.length, 4, true);
    const bad = { ...s!, payload: bytes };
    expect(() => decodeVcpu("t", bad, a.vm.core.k)).toThrow(MigrationError);
  });
});

describe("device state", () => {
  it("round-trips through JSON into a fresh machine", () => {
    const a = new Machine({ module: loadCoreModule(), ramSize: 4 * MiB });
    a.vm.io.write(0x3fb, 1, 0x83); // UART LCR with DLAB
    a.vm.io.write(0x3f8, 1, 0x01);
    a.vm.io.write(0x21, 1, 0xfb); // PIC mask
    a.vm.io.write(0x510, 2, 0x0000); // fw_cfg signature
    a.vm.io.read(0x511, 1);
    a.lapic.mmioWrite(0x80, 4, 0x20n); // TPR
    a.vm.io.write(0x8900, 1, "S".charCodeAt(0));
    const saved = JSON.parse(JSON.stringify(saveDevices(a))) as Record<string, unknown>;
    const b = new Machine({ module: loadCoreModule(), ramSize: 4 * MiB });
    restoreDevices("t", b, saved);
    expect(saveDevices(b)).toEqual(saveDevices(a));
    expect(b.vm.io.read(0x21, 1)).toBe(0xfb);
    expect(b.vm.io.read(0x511, 1)).toBe("E".charCodeAt(0)); // fw_cfg continues mid-item: "QEMU"[1]
    expect(b.lapic.mmioRead(0x80, 4)).toBe(0x20n);
  });

  it("refuses a missing, unknown or malformed device", () => {
    const a = new Machine({ module: loadCoreModule(), ramSize: 4 * MiB });
    const saved = saveDevices(a);
    const { lapic: _drop, ...noLapic } = saved;
    expect(() => restoreDevices("t", a, noLapic)).toThrow(/no state for lapic/);
    expect(() => restoreDevices("t", a, { ...saved, floppy: {} })).toThrow(/unknown device "floppy"/);
    expect(() => restoreDevices("t", a, { ...saved, picMaster: { version: 1, imr: 300, icwStep: 0 } })).toThrow(/pic8259 state/);
    expect(() => restoreDevices("t", a, { ...saved, lapic: { version: 1, regs: [1, 2] } })).toThrow(/lapic state/);
  });
});
