import { describe, it, expect } from "vitest";
import { FwCfg, FW_CFG_PORT_SEL, FW_CFG_PORT_DATA, FW_CFG_SIGNATURE, FW_CFG_NB_CPUS, FW_CFG_ID, FW_CFG_FILE_DIR } from "../../src/devices/fw_cfg.js";
import { LocalApic, APIC_ID, APIC_LVR, APIC_ICR, APIC_SPIV, APIC_VERSION } from "../../src/devices/lapic.js";
import { ShutdownPort, SHUTDOWN_PORT } from "../../src/devices/shutdown_port.js";
import { Pic8259 } from "../../src/devices/pic.js";
import { MmioBus } from "../../src/devices/mmio_bus.js";
import { parseModules } from "../../src/cli/args.js";

function fwRead(fw: FwCfg, item: number, n: number): number[] {
  fw.ioWrite(FW_CFG_PORT_SEL, 2, item);
  return Array.from({ length: n }, () => fw.ioRead(FW_CFG_PORT_DATA, 1));
}

describe("fw_cfg", () => {
  const fw = new FwCfg({ ramSize: 256 << 20, cpus: 3 });
  it("reads the signature QEMU byte by byte, then zeros past the end", () => {
    expect(String.fromCharCode(...fwRead(fw, FW_CFG_SIGNATURE, 4))).toBe("QEMU");
    expect(fw.ioRead(FW_CFG_PORT_DATA, 1)).toBe(0);
  });
  it("reports the CPU count, the traditional interface and an empty file directory", () => {
    expect(fwRead(fw, FW_CFG_NB_CPUS, 2)).toEqual([3, 0]);
    expect(fwRead(fw, FW_CFG_ID, 4)).toEqual([1, 0, 0, 0]);
    expect(fwRead(fw, FW_CFG_FILE_DIR, 4)).toEqual([0, 0, 0, 0]);
  });
  it("restarts an item at offset 0 when re-selected", () => {
    fwRead(fw, FW_CFG_SIGNATURE, 2);
    expect(fwRead(fw, FW_CFG_SIGNATURE, 1)).toEqual([0x51]);
  });
});

describe("local xAPIC", () => {
  const apic = new LocalApic(0);
  it("has QEMU's version and the ID in bits 24-31", () => {
    expect(apic.mmioRead(APIC_LVR, 4)).toBe(BigInt(APIC_VERSION));
    expect(apic.mmioRead(APIC_ID, 4)).toBe(0n);
    expect(new LocalApic(2).mmioRead(APIC_ID, 4)).toBe(2n << 24n);
  });
  it("keeps the spurious vector register and reports ICR delivery idle", () => {
    apic.mmioWrite(APIC_SPIV, 4, 0x1ffn);
    expect(apic.mmioRead(APIC_SPIV, 4)).toBe(0x1ffn);
    apic.mmioWrite(APIC_ICR, 4, 0x000c4500n | (1n << 12n)); // INIT, all-excluding-self
    expect(Number(apic.mmioRead(APIC_ICR, 4)) & (1 << 12)).toBe(0);
    expect(apic.ipis).toHaveLength(1);
  });
});

describe("pc odds and ends", () => {
  it("port 0x8900 powers off on the string Shutdown", () => {
    let off = 0;
    const p = new ShutdownPort(() => off++);
    for (const c of "xxShutdow") p.ioWrite(SHUTDOWN_PORT, 1, c.charCodeAt(0));
    expect(off).toBe(0);
    p.ioWrite(SHUTDOWN_PORT, 1, "n".charCodeAt(0));
    expect(off).toBe(1);
  });
  it("the PIC accepts initialisation and reads back its mask", () => {
    const pic = new Pic8259();
    for (const [port, v] of [[0x20, 0x11], [0x21, 0x20], [0x21, 0x04], [0x21, 0x01], [0x21, 0xfb]] as const) pic.ioWrite(port, 1, v);
    expect(pic.ioRead(0x21, 1)).toBe(0xfb);
  });
  it("unassigned MMIO reads all ones and counts", () => {
    const bus = new MmioBus();
    expect(bus.read(0xfec00000, 4)).toBe(0xffffffffn);
    bus.write(0xfec00000, 4, 1n);
    expect(bus.unknownAccesses).toBe(2);
  });
  it("-initrd splits modules on commas, keeps ',,' as a comma and the whole text as the module string", () => {
    expect(parseModules("a.bin x=1,b.bin,c,,d.bin y")).toEqual([
      { path: "a.bin", cmdline: "a.bin x=1" },
      { path: "b.bin", cmdline: "b.bin" },
      { path: "c,d.bin", cmdline: "c,d.bin y" },
    ]);
  });
});
