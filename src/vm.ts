/**
 * The VM (KVM's struct kvm as seen from userspace): one shared WebAssembly
 * memory holding the core's static data, the VM struct, the vCPU structs and
 * guest RAM; memslots mapping guest-physical ranges onto that RAM; the I/O
 * bus with the pc devices; and the vCPUs.
 *
 * Linear memory layout (computed here, handed to the core):
 *   [0, heap_base)            the core's read-only static data (tables)
 *   vmBase                    VM struct (VM_SIZE): memslots, MMU globals
 *   vcpuBase + i*VCPU_SIZE    vCPU structs (registers, exit struct, stats, TLB)
 *   ramBase                   guest RAM, gpa 0 .. ramSize (the pc hole is left unmapped)
 */
import { instantiateCore, constant, CORE_MAX_PAGES, type Core } from "./core/core.js";
import { Vcpu } from "./vcpu.js";
import type { GuestMemory } from "./boot/guest_memory.js";
import { PC_HOLE_START, PC_HOLE_END } from "./boot/guest_memory.js";
import { BootError } from "./errors.js";
import { IoBus } from "./devices/io_bus.js";
import { TRACE_RING_ENTRIES } from "./trace/trace.js";
import { ShadowMmu, planMmuLayout } from "./mmu/shadow_mmu.js";
import { DEFAULT_KNOBS, type MmuKnobs, type MmuMode } from "./mmu/knobs.js";
import { DirtyLog, dirtyLogBytes, type UserMemoryRegion } from "./dirty/dirty_log.js";

const PAGE = 4096;
/** Where QEMU's pc starts its PCI/MMIO window below 4 GiB (the end of RAM below 4 GiB). */
export const PC_LOW_RAM_MAX = 0xe0000000;
const TRACE_RING_BYTES = TRACE_RING_ENTRIES * 32;
const WASM_PAGE = 65536;
const MiB = 1024 * 1024;

export interface VmOptions {
  /** Guest RAM in bytes (QEMU's -m). */
  ramSize: number;
  /** The compiled core (see platform/node.ts loadCoreModule). */
  module: WebAssembly.Module;
  /** Extra linear memory after guest RAM that nothing maps (the fuzzer fills it with canaries to catch stray writes). */
  guardSize?: number;
  /** MMU mode: "shadow" (default: the guest's tables are shadowed, as KVM without EPT) or "tdp" (TLB misses walk the guest's tables). */
  mmu?: MmuMode;
  /** MMU knobs (src/mmu/knobs.ts); unset ones keep their defaults. */
  knobs?: Partial<MmuKnobs>;
  /** Number of vCPUs (1 to MAX_VCPUS, default 1); vCPU 0 is the boot processor. */
  vcpus?: number;
}

/** vCPU structs reserved in the layout (-smp N allows N up to this). */
export const MAX_VCPUS = 8;

/** A named range [start, end) of linear memory (see Vm.regions()). */
export interface MemoryRegion { name: string; start: number; end: number; }

export interface Memslot {
  slot: number;
  guestPhysAddr: number;
  size: number;
  flags: number;
  /** Offset of the slot's first byte in linear memory. */
  hostOffset: number;
}

export class Vm implements GuestMemory {
  readonly memory: WebAssembly.Memory;
  readonly core: Core;
  readonly size: number; // GuestMemory: bytes of RAM from gpa 0
  readonly ramBase: number;
  readonly vmBase: number;
  readonly heapBase: number;
  /** Start of the per-vCPU trace rings (TRACE_RING_BYTES each). */
  readonly traceBase: number;
  readonly vcpus: Vcpu[] = [];
  /** The shadow MMU's host handle (pools, knobs, audit, zap primitives). */
  readonly mmu: ShadowMmu;
  readonly io = new IoBus();
  readonly memslots = new Map<number, Memslot>();
  /** Memslots and dirty logging (src/dirty/dirty_log.ts). */
  readonly dirtyLog: DirtyLog;
  private bytes: Uint8Array;
  private dv: DataView;

  constructor(opts: VmOptions) {
    const ram = opts.ramSize;
    if (!Number.isInteger(ram) || ram < 2 * MiB || ram % PAGE !== 0) {
      throw new BootError(null, `guest RAM must be a whole number of 4 KiB pages and at least 2 MiB (got ${ram} bytes)`);
    }
    // QEMU's pc keeps 3.5 GiB..4 GiB for MMIO (the xAPIC, the I/O APIC, the
    // BIOS) and puts more RAM above 4 GiB; this machine has no RAM above 4 GiB,
    // so RAM that would cover that window is refused rather than shadowing it.
    if (ram > PC_LOW_RAM_MAX) {
      throw new BootError(null, `guest RAM of ${ram / MiB} MiB is more than this pc machine has below the 3.5 GiB MMIO window (at most ${PC_LOW_RAM_MAX / MiB} MiB)`);
    }
    // Instantiate on a small memory first: the layout depends on the core's
    // own constants (heap_base, VM_SIZE, VCPU_SIZE); then grow to fit RAM.
    this.memory = new WebAssembly.Memory({ initial: 64, maximum: CORE_MAX_PAGES, shared: true });
    this.core = instantiateCore(opts.module, this.memory);
    const heap = this.heapBase = this.core.fn.heap_base();
    const vmSize = constant(this.core, "VM_SIZE");
    const vcpuSize = constant(this.core, "VCPU_SIZE");
    this.vmBase = align(heap, WASM_PAGE);
    const vcpuBase = this.vmBase + align(vmSize, PAGE);
    const maxVcpus = MAX_VCPUS;
    const nVcpus = opts.vcpus ?? 1;
    if (!Number.isInteger(nVcpus) || nVcpus < 1 || nVcpus > maxVcpus) throw new BootError(null, `the number of vCPUs must be 1 to ${maxVcpus} (got ${nVcpus})`);
    // one trace ring per possible vCPU (used only when tracing is on)
    this.traceBase = align(vcpuBase + maxVcpus * vcpuSize, PAGE);
    // the shadow MMU's pools: shadow pages, pte_list_descs, hash, rmap, write tracking
    const mmuMode = opts.mmu ?? "shadow";
    const knobs: MmuKnobs = { ...DEFAULT_KNOBS, ...opts.knobs };
    const mmuStart = align(this.traceBase + maxVcpus * TRACE_RING_BYTES, PAGE);
    const mmuLayout = planMmuLayout(this.core.k, mmuStart, ram, mmuMode, knobs);
    // dirty bitmaps (src/dirty/) after the MMU's pools
    const dirtyStart = mmuLayout.end, dirtyEnd = dirtyStart + dirtyLogBytes(ram);
    this.ramBase = align(dirtyEnd, 16 * MiB);
    // at least 64 KiB after RAM: the decoder reads whole 8-byte words at the
    // end of the last page (and masks off what is not the instruction)
    const guard = Math.max(opts.guardSize ?? 0, 65536);
    const total = this.ramBase + ram + guard;
    const pages = Math.ceil(total / WASM_PAGE);
    if (pages > CORE_MAX_PAGES) {
      // the MMU's pools grow with RAM: search for the most RAM that really fits
      const fits = (mib: number) => align(planMmuLayout(this.core.k, mmuStart, mib * MiB, mmuMode, knobs).end + dirtyLogBytes(mib * MiB), 16 * MiB) + mib * MiB + guard <= CORE_MAX_PAGES * WASM_PAGE;
      let lo = 0, hi = 4096;
      while (lo < hi) { const mid = Math.ceil((lo + hi) / 2); if (fits(mid)) lo = mid; else hi = mid - 1; }
      throw new BootError(null, `guest RAM of ${ram / MiB} MiB does not fit the 4 GiB WebAssembly address space (at most ${lo} MiB with this MMU mode)`);
    }
    try {
      this.memory.grow(pages - 64);
    } catch (e) {
      throw new BootError(null, `cannot allocate ${Math.round(total / MiB)} MiB for guest RAM: ${(e as Error).message}`);
    }
    this.size = ram;
    this.bytes = new Uint8Array(this.memory.buffer);
    this.dv = new DataView(this.memory.buffer);
    this.core.fn.vm_bind(this.vmBase);
    this.mmu = new ShadowMmu(this.core, mmuMode, mmuLayout, knobs, () => this.dv, this.vmBase);
    this.mmu.init();
    this.dirtyLog = new DirtyLog(this, dirtyStart, dirtyEnd);
    this.dirtyLog.applyKnobs(knobs);
    // QEMU pc: RAM below the 640 KiB hole and above 1 MiB; the hole is MMIO (unassigned).
    this.setUserMemoryRegion({ slot: 0, guestPhysAddr: 0, size: Math.min(ram, PC_HOLE_START), flags: 0 });
    if (ram > PC_HOLE_END) this.setUserMemoryRegion({ slot: 1, guestPhysAddr: PC_HOLE_END, size: ram - PC_HOLE_END, flags: 0 });
    for (let i = 0; i < nVcpus; i++) this.vcpus.push(new Vcpu(this, i, vcpuBase + i * vcpuSize));
  }

  /**
   * Every range of linear memory the core may legitimately write (guest RAM as
   * its memslots' ranges, so the PC hole is not RAM here). Everything else is
   * padding: the fuzzer fills it with canaries. A new VM-wide or per-vCPU
   * structure must be listed here.
   */
  regions(): MemoryRegion[] {
    const k = this.core.k;
    return [
      { name: "static data", start: 0, end: this.heapBase },
      { name: "vm", start: this.vmBase, end: this.vmBase + k.VM_SIZE },
      ...this.vcpus.map((v) => ({ name: `vcpu${v.id}`, start: v.base, end: v.base + k.VCPU_SIZE })),
      ...this.vcpus.map((v) => ({ name: `trace ring ${v.id}`, start: this.traceRing(v.id), end: this.traceRing(v.id) + TRACE_RING_BYTES })),
      ...(this.mmu.layout.end > this.mmu.layout.start ? [{ name: "shadow mmu", start: this.mmu.layout.start, end: this.mmu.layout.end }] : []),
      { name: "dirty bitmaps", start: this.dirtyLog.start, end: this.dirtyLog.end },
      ...[...this.memslots.values()].map((s) => ({ name: `memslot ${s.slot}`, start: s.hostOffset, end: s.hostOffset + s.size })),
    ].sort((a, b) => a.start - b.start);
  }

  /** Where vCPU `id`'s trace ring lives (see src/trace/trace.ts). */
  traceRing(id: number): number { return this.traceBase + id * TRACE_RING_BYTES; }

  /** KVM_SET_USER_MEMORY_REGION: create, move, delete (size 0), flags LOG_DIRTY_PAGES / READONLY (src/dirty/dirty_log.ts). */
  setUserMemoryRegion(r: UserMemoryRegion): void { this.dirtyLog.setUserMemoryRegion(r); }
  /** KVM_GET_DIRTY_LOG: the slot's bitmap (bit i = page i); classic mode also clears and re-protects. */
  getDirtyLog(slot: number): BigUint64Array { return this.dirtyLog.getDirtyLog(slot); }
  /** KVM_CLEAR_DIRTY_LOG (manual protect): clear and re-protect pages [first, first + count) set in mask. */
  clearDirtyLog(slot: number, first: number, count: number, mask?: BigUint64Array | Uint8Array): number { return this.dirtyLog.clearDirtyLog(slot, first, count, mask); }
  /** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (with KVM_DIRTY_LOG_INITIALLY_SET if asked); before any slot logs. */
  enableManualDirtyLogProtect(opts: { initiallySet?: boolean } = {}): void { this.dirtyLog.enableManualProtect(opts); }

  // ---- GuestMemory (host access to guest-physical RAM)
  private ramRange(gpa: number, len: number): number {
    if (!(gpa >= 0 && len >= 0 && gpa + len <= this.size)) throw new BootError(null, `guest-physical range 0x${gpa.toString(16)}+${len} is outside RAM`);
    return this.ramBase + gpa;
  }
  // host writes dirty the pages too (kvm_write_guest's mark_page_dirty; src/dirty/dirty_log.ts)
  write(gpa: number, data: Uint8Array): void { this.bytes.set(data, this.ramRange(gpa, data.length)); this.dirtyLog?.markRange(gpa, data.length); }
  fill(gpa: number, len: number, value: number): void { const a = this.ramRange(gpa, len); this.bytes.fill(value, a, a + len); this.dirtyLog?.markRange(gpa, len); }
  read(gpa: number, len: number): Uint8Array { const a = this.ramRange(gpa, len); return this.bytes.slice(a, a + len); }
}

function align(v: number, a: number): number { return Math.ceil(v / a) * a; }
