/**
 * vCPU, device and MMU-configuration state for the migration stream.
 *
 * The vCPU is saved field by field under the core's own constant names
 * (VCPU_REGS, VCPU_CR3, ...), at the offsets and sizes the running core
 * exports, so a destination built from another layout refuses with the name of
 * the field that does not fit instead of restoring garbage. Not migrated: the
 * software TLB, the decoded-instruction cache and the MMU area (the destination
 * rebuilds shadow pages and roots on demand, as KVM does after KVM_SET_SREGS),
 * the vCPU id and the trace ring pointers (host-local). The exit struct goes
 * as one blob (an IN or MMIO read latched for the next run() lives there), the
 * counters by their KVM names.
 */
import type { Vcpu } from "../vcpu.js";
import type { Machine } from "../machine.js";
import { MigrationError } from "../errors.js";
import { Shadow86Error } from "../errors.js";
import { SectionType, encodeSection, type Section } from "./stream.js";

/** The architectural state fields, with their sizes (offsets come from the core). */
export const VCPU_STATE_FIELDS: readonly (readonly [string, number])[] = [
  ["VCPU_REGS", 16 * 8], ["VCPU_RIP", 8], ["VCPU_RFLAGS", 8], ["VCPU_SEGS", 8 * 16],
  ["VCPU_GDTR_BASE", 8], ["VCPU_GDTR_LIMIT", 4], ["VCPU_IDTR_BASE", 8], ["VCPU_IDTR_LIMIT", 4],
  ["VCPU_CR0", 8], ["VCPU_CR2", 8], ["VCPU_CR3", 8], ["VCPU_CR4", 8], ["VCPU_CR8", 8], ["VCPU_EFER", 8],
  ["VCPU_DR", 8 * 8], ["VCPU_STAR", 8], ["VCPU_LSTAR", 8], ["VCPU_CSTAR", 8], ["VCPU_SFMASK", 8],
  ["VCPU_KERNEL_GS_BASE", 8], ["VCPU_SYSENTER_CS", 8], ["VCPU_SYSENTER_ESP", 8], ["VCPU_SYSENTER_EIP", 8],
  ["VCPU_PAT", 8], ["VCPU_TSC_OFFSET", 8], ["VCPU_APIC_BASE", 8], ["VCPU_MISC_ENABLE", 8], ["VCPU_PDPTR", 4 * 8],
  ["VCPU_TSC_AUX", 8], ["VCPU_XCR0", 8],
  ["VCPU_FEATURES", 4], // the CPU model (-cpu) travels with the vCPU
  ["VCPU_INSN_COUNT", 8], ["VCPU_HALTED", 4], ["VCPU_PENDING_IO", 4], ["VCPU_PENDING_IRQ", 4], ["VCPU_INTR_SHADOW", 4],
  // SMP (src/smp/): run state, a SIPI's vector, INIT/SIPI not yet taken
  ["VCPU_MP_STATE", 4], ["VCPU_SIPI_VECTOR", 4], ["VCPU_APIC_EVENTS", 4],
];

/**
 * VCPU_* constants that are not state to migrate (host-local pointers, caches
 * the destination rebuilds, sizes). Every other VCPU_* constant the core
 * exports must be in VCPU_STATE_FIELDS: test/migration/state.test.ts checks it,
 * so a field added to assembly/cpu/state.ts cannot be forgotten here.
 */
export const VCPU_NOT_MIGRATED = [
  "VCPU_ID", "VCPU_KICK", "VCPU_APIC_IRR" /* inside the exit struct's bytes, which migrate */, "VCPU_JIT_STOP" /* likewise; transient */, "VCPU_KEEP_LINKS" /* likewise; set just before run(), which clears it */, "VCPU_TRACE_ENABLED", "VCPU_TRACE_HEAD", "VCPU_TRACE_RING", "VCPU_TRACE_MASK",
  "VCPU_EXIT", "VCPU_STATS", "VCPU_STATS_MAX", "VCPU_MMU", "VCPU_MMU_END", "VCPU_TLB", "VCPU_TLB_LOG_N", "VCPU_TLB_LOG", "VCPU_ICACHE", "VCPU_BLOCKS", "VCPU_CODE_MAP", "VCPU_SIZE",
];

const EXIT_BLOB = "VCPU_EXIT";
const STAT_PREFIX = "STAT:";
const enc = new TextEncoder();
const dec = new TextDecoder();

function constant(cpu: Vcpu, name: string): number {
  const v = cpu.vm.core.k[name];
  if (v === undefined) throw new Error(`the WASM core exports no ${name}`);
  return v;
}

/** Bytes [off, off+size) of the vCPU struct (a copy). */
function structBytes(cpu: Vcpu, off: number, size: number): Uint8Array {
  return new Uint8Array(cpu.vm.memory.buffer, cpu.base + off, size).slice();
}

/** The VCPU section for one vCPU (stopped, between run() calls). */
export function encodeVcpu(cpu: Vcpu): Uint8Array {
  const fields: [string, Uint8Array][] = VCPU_STATE_FIELDS.map(([name, size]) => [name, structBytes(cpu, constant(cpu, name), size)]);
  const exitOff = constant(cpu, "VCPU_EXIT");
  fields.push([EXIT_BLOB, structBytes(cpu, exitOff, constant(cpu, "VCPU_STATS") - exitOff)]);
  cpu.vm.core.statNames.forEach((name, id) => {
    if (name) fields.push([STAT_PREFIX + name, structBytes(cpu, constant(cpu, "VCPU_STATS") + id * 8, 8)]);
  });
  let len = 8;
  const names = fields.map(([n]) => enc.encode(n));
  fields.forEach(([, b], i) => { len += 1 + names[i]!.length + 4 + b.length; });
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, cpu.id, true);
  dv.setUint32(4, fields.length, true);
  let o = 8;
  fields.forEach(([, b], i) => {
    const n = names[i]!;
    out[o++] = n.length;
    out.set(n, o); o += n.length;
    dv.setUint32(o, b.length, true); o += 4;
    out.set(b, o); o += b.length;
  });
  return encodeSection(SectionType.VCPU, out);
}

export interface VcpuState { id: number; fields: Map<string, Uint8Array>; }

/** Parse a VCPU section and check it against this core's layout (nothing is written). */
export function decodeVcpu(subject: string, s: Section, cpuLayout: Readonly<Record<string, number>>): VcpuState {
  const p = s.payload;
  const bad = (what: string): never => { throw new MigrationError(subject, `VCPU section at offset ${s.offset}: ${what}`); };
  if (p.length < 8) bad("too short");
  const dv = new DataView(p.buffer, p.byteOffset, p.length);
  const id = dv.getUint32(0, true);
  const n = dv.getUint32(4, true);
  const fields = new Map<string, Uint8Array>();
  let o = 8;
  for (let i = 0; i < n; i++) {
    if (o + 1 > p.length) bad(`ends inside field ${i} of ${n}`);
    const nl = p[o++]!;
    if (o + nl + 4 > p.length) bad(`ends inside field ${i} of ${n}`);
    const name = dec.decode(p.subarray(o, o + nl)); o += nl;
    const size = dv.getUint32(o, true); o += 4;
    if (o + size > p.length) bad(`field ${name} declares ${size} bytes past the section's end`);
    if (fields.has(name)) bad(`field ${name} appears twice`);
    fields.set(name, p.subarray(o, o + size)); o += size;
  }
  if (o !== p.length) bad(`${p.length - o} stray bytes after the last field`);
  // every field this core has must come, with this core's size; no unknown state fields
  for (const [name, size] of VCPU_STATE_FIELDS) {
    if (cpuLayout[name] === undefined) continue; // (a core without it cannot hold it: refused below if sent)
    const f = fields.get(name);
    if (!f) bad(`the stream has no ${name}: it comes from an incompatible shadow86`);
    else if (f.length !== size) bad(`${name} has ${f.length} bytes in the stream, ${size} here: incompatible vCPU layouts`);
  }
  const exitSize = cpuLayout.VCPU_STATS! - cpuLayout.VCPU_EXIT!;
  const exit = fields.get(EXIT_BLOB);
  if (!exit || exit.length !== exitSize) bad(`the exit struct has ${exit?.length ?? "no"} bytes, ${exitSize} here: incompatible vCPU layouts`);
  const known = new Set(VCPU_STATE_FIELDS.map(([n]) => n));
  for (const name of fields.keys()) {
    if (name === EXIT_BLOB || name.startsWith(STAT_PREFIX)) continue;
    if (!known.has(name) || cpuLayout[name] === undefined) bad(`unknown vCPU state field ${name}: the stream comes from a newer shadow86`);
  }
  return { id, fields };
}

/** Write a decoded state into a (fresh) vCPU. Counters the stream has and this core does not are dropped. */
export function restoreVcpu(cpu: Vcpu, st: VcpuState): void {
  const mem = new Uint8Array(cpu.vm.memory.buffer);
  for (const [name, bytes] of st.fields) {
    let off: number | undefined;
    if (name === EXIT_BLOB) off = cpu.vm.core.k.VCPU_EXIT;
    else if (name.startsWith(STAT_PREFIX)) {
      const id = cpu.vm.core.statNames.indexOf(name.slice(STAT_PREFIX.length));
      if (id < 0 || bytes.length !== 8) continue;
      off = cpu.vm.core.k.VCPU_STATS! + id * 8;
    } else off = cpu.vm.core.k[name];
    if (off === undefined) continue;
    mem.set(bytes, cpu.base + off);
  }
  cpu.flushTlb(); // nothing cached may outlive the registers it was built from
}

/** Device state (plain JSON). */
export function saveDevices(m: Machine): Record<string, unknown> {
  return {
    uart: m.uart.saveState(),
    debugExit: m.debugExit.saveState(),
    lapic: m.lapic.saveState(),
    picMaster: m.pics[0].saveState(),
    picSlave: m.pics[1].saveState(),
    fwCfg: m.fwCfg.saveState(),
    shutdownPort: m.shutdownPort.saveState(),
  };
}

export function restoreDevices(subject: string, m: Machine, d: Record<string, unknown>): void {
  const each: [string, { loadState(s: unknown): void }][] = [
    ["uart", m.uart], ["debugExit", m.debugExit], ["lapic", m.lapic], ["picMaster", m.pics[0]],
    ["picSlave", m.pics[1]], ["fwCfg", m.fwCfg], ["shutdownPort", m.shutdownPort],
  ];
  const known = new Set(each.map(([n]) => n));
  for (const k of Object.keys(d)) if (!known.has(k)) throw new MigrationError(subject, `DEVICES section: unknown device "${k}"`);
  for (const [name, dev] of each) {
    if (!(name in d)) throw new MigrationError(subject, `DEVICES section: no state for ${name}`);
    try { dev.loadState(d[name]); } catch (e) {
      if (e instanceof Shadow86Error) throw new MigrationError(subject, `DEVICES section: ${e.message}`, { cause: e });
      throw e;
    }
  }
}
