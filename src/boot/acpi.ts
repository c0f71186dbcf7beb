/**
 * Minimal ACPI firmware tables so a guest finds its CPUs the standard way:
 * an RSDP (ACPI 1.0, revision 0) in the BIOS area, an RSDT pointing at one
 * MADT that lists a local APIC per vCPU (processor ID = APIC ID = vCPU
 * index). No I/O APIC: no image needs one. The tables go into the read-only
 * BIOS region 0xE0000-0xFFFFF (see Machine: a KVM_MEM_READONLY memslot).
 */

export const BIOS_AREA_START = 0xe0000;
export const BIOS_AREA_END = 0x100000;
export const RSDT_ADDR = 0xe0000;
export const MADT_ADDR = 0xe0040;
export const RSDP_ADDR = 0xf0000;
const OEM_ID = "SHAD86";
const OEM_TABLE_ID = "SHADOW86";

function checksum(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return (0x100 - s) & 0xff;
}

function ascii(b: Uint8Array, off: number, s: string, len: number): void {
  for (let i = 0; i < len; i++) b[off + i] = i < s.length ? s.charCodeAt(i) : 0x20;
}

/** An SDT: the 36-byte header with `body` after it, checksummed. */
function sdt(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const t = new Uint8Array(36 + body.length);
  const dv = new DataView(t.buffer);
  ascii(t, 0, signature, 4);
  dv.setUint32(4, t.length, true);
  t[8] = revision;
  ascii(t, 10, OEM_ID, 6);
  ascii(t, 16, OEM_TABLE_ID, 8);
  dv.setUint32(24, 1, true); // OEM revision
  ascii(t, 28, "S86 ", 4); // creator id
  dv.setUint32(32, 1, true); // creator revision
  t.set(body, 36);
  t[9] = checksum(t);
  return t;
}

export function buildMadt(cpus: number, lapicAddr = 0xfee00000): Uint8Array {
  const body = new Uint8Array(8 + 8 * cpus);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, lapicAddr, true);
  dv.setUint32(4, 1, true); // PCAT_COMPAT: dual 8259s present
  for (let i = 0; i < cpus; i++) {
    const e = 8 + 8 * i;
    body[e] = 0; // processor local APIC
    body[e + 1] = 8;
    body[e + 2] = i; // ACPI processor UID
    body[e + 3] = i; // APIC ID
    dv.setUint32(e + 4, 1, true); // enabled
  }
  return sdt("APIC", 1, body);
}

export function buildRsdt(tables: number[]): Uint8Array {
  const body = new Uint8Array(4 * tables.length);
  const dv = new DataView(body.buffer);
  tables.forEach((a, i) => dv.setUint32(4 * i, a, true));
  return sdt("RSDT", 1, body);
}

export function buildRsdp(rsdtAddr: number): Uint8Array {
  const t = new Uint8Array(20);
  ascii(t, 0, "RSD PTR ", 8);
  ascii(t, 9, OEM_ID, 6);
  t[15] = 0; // ACPI 1.0
  new DataView(t.buffer).setUint32(16, rsdtAddr, true);
  t[8] = checksum(t);
  return t;
}

/** The tables for `cpus` vCPUs as {gpa, bytes} pieces inside the BIOS area. */
export function acpiTables(cpus: number): { gpa: number; bytes: Uint8Array }[] {
  const madt = buildMadt(cpus);
  if (MADT_ADDR + madt.length > RSDP_ADDR) throw new Error("MADT too large");
  return [
    { gpa: RSDT_ADDR, bytes: buildRsdt([MADT_ADDR]) },
    { gpa: MADT_ADDR, bytes: madt },
    { gpa: RSDP_ADDR, bytes: buildRsdp(RSDT_ADDR) },
  ];
}
