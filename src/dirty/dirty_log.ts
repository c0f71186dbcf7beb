/**
 * Memslots and dirty logging, the KVM API in TypeScript over the WASM core
 * (assembly/mmu/dirty.ts, wp_all.ts, fast_pf.ts):
 *
 * - `setUserMemoryRegion` (KVM_SET_USER_MEMORY_REGION): create, move (the
 *   slot keeps its host memory and appears at a new gpa), delete (size 0),
 *   flags-only changes; resize is delete + create. Flags LOG_DIRTY_PAGES and
 *   READONLY (a guest write to a read-only slot exits as an MMIO write).
 *   Overlaps, misaligned or out-of-RAM ranges, changing READONLY on a live
 *   slot, or aliasing another slot's host memory are errors (MemslotError).
 *   Delete and move zap every shadow page (kvm_mmu_zap_all_fast, as KVM's
 *   flush_shadow_memslot) and flush the TLBs.
 * - A dirty bitmap per logged slot in linear memory (the "dirty bitmaps"
 *   region of vm.regions()), set by the MMU on every guest write.
 * - `getDirtyLog(slot)`: KVM_GET_DIRTY_LOG. Classic mode returns and clears
 *   the bitmap and re-protects the pages; with manual protect
 *   (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, `enableManualDirtyLogProtect`) it only
 *   returns it, and `clearDirtyLog(slot, first, count, mask?)`
 *   (KVM_CLEAR_DIRTY_LOG) clears and re-protects. `initiallySet`
 *   (KVM_DIRTY_LOG_INITIALLY_SET) starts a newly logged slot all dirty and
 *   skips its write protection.
 * - How pages are re-protected: the `wp_all` knob (src/mmu/knobs.ts): `rmap`
 *   walks each page's rmap (kvm_mmu_slot_remove_write_access, O(pages)),
 *   `generation` bumps the write-protect-all generation (seed 000, O(1)).
 */
import type { Vm } from "../vm.js";
import { Shadow86Error } from "../errors.js";

export const KVM_MEM_LOG_DIRTY_PAGES = 1;
export const KVM_MEM_READONLY = 2;
const PAGE = 4096;

/** A memslot request could not be applied (the message says why). */
export class MemslotError extends Shadow86Error {
  constructor(what: string) {
    super(null, what);
    this.name = "MemslotError";
  }
}

export interface UserMemoryRegion { slot: number; guestPhysAddr: number; size: number; flags: number }

/** The dirty-log functions the core exports (assembly/mmu/dirty_exports.ts). */
interface DirtyCoreFunctions {
  kvm_dirty_log_enable(si: number, initiallySet: number): void;
  kvm_get_dirty_log(si: number, out: number, clear: number): number;
  kvm_clear_dirty_log(si: number, first: number, count: number, mask: number, scratch: number): number;
  dirty_memslots_changed(): void;
  memslots_changed(): void;
  mmu_write_protect_all(enable: number): void;
  mmu_zap_all_fast(): void;
  kvm_dirty_log_audit(): number;
  dirty_audit_first_gfn(): number;
  dirty_audit_first_what(): number;
  vcpu_bind(base: number): void;
}

/** Bytes of linear memory dirty logging needs for `ramSize` of RAM (bitmaps + two scratch bitmaps). */
export function dirtyLogBytes(ramSize: number, maxSlots = 32): number {
  const words = Math.ceil(ramSize / PAGE / 64) + maxSlots;
  return Math.ceil((words * 8 * 3) / PAGE) * PAGE;
}

export interface DirtyLogStats {
  /** getDirtyLog / clearDirtyLog calls that re-protected something. */
  reprotects: number;
  /** Dirty pages returned by getDirtyLog. */
  pagesReported: number;
}

/** The memslot table, bitmaps and dirty-log calls of one VM (vm.dirtyLog). */
export class DirtyLog {
  private readonly fn: DirtyCoreFunctions;
  /** Slot id -> bitmap offset in linear memory (logged slots only). */
  private readonly bitmaps = new Map<number, number>();
  /** Manual protect (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) and KVM_DIRTY_LOG_INITIALLY_SET. */
  manualProtect = false;
  initiallySet = false;
  readonly stats: DirtyLogStats = { reprotects: 0, pagesReported: 0 };
  /**
   * Called after every re-protection (enable, get, clear), once the core has
   * raised the TLB flush / root reload generations. With vCPUs running in
   * other threads (-smp parallel) a vCPU notices them within 256 instructions;
   * a harvest is exact only once every running vCPU has (KVM's
   * kvm_flush_remote_tlbs waits for them): the SMP code sets this to kick the
   * vCPUs and wait. Unset: single-threaded callers, nothing to wait for.
   */
  afterReprotect?: () => void;
  /** Scratch bitmaps for get/clear (each big enough for any slot). */
  private readonly outBuf: number;
  private readonly maskBuf: number;
  private readonly bitmapArea: number;

  constructor(private readonly vm: Vm, readonly start: number, readonly end: number) {
    this.fn = vm.core.instance.exports as unknown as DirtyCoreFunctions;
    const third = Math.floor((end - start) / 3 / 8) * 8;
    this.bitmapArea = start;
    this.outBuf = start + third;
    this.maskBuf = start + 2 * third;
  }

  private get k() { return this.vm.core.k; }
  private dv(): DataView { return new DataView(this.vm.memory.buffer); }
  private bind(): void { if (this.vm.vcpus.length > 0) this.fn.vcpu_bind(this.vm.vcpus[0].base); }

  /** Write the knobs dirty logging reads (wp_all strategy, the test-only broken switch). */
  applyKnobs(k: { wp_all: "rmap" | "generation"; broken_dirty_log: "none" | "no_reprotect" }): void {
    const dv = this.dv();
    dv.setUint32(this.vm.vmBase + this.k.VM_DIRTY_WP_ALL, k.wp_all === "generation" ? this.k.WP_ALL_GENERATION : this.k.WP_ALL_RMAP, true);
    dv.setUint32(this.vm.vmBase + this.k.VM_DIRTY_BROKEN, k.broken_dirty_log === "no_reprotect" ? 1 : 0, true);
  }

  /** KVM_ENABLE_CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): getDirtyLog stops clearing; clearDirtyLog does it. */
  enableManualProtect(opts: { initiallySet?: boolean } = {}): void {
    if (this.bitmaps.size > 0) throw new MemslotError("manual dirty-log protect must be enabled before any slot logs dirty pages (as KVM_ENABLE_CAP)");
    this.manualProtect = true;
    this.initiallySet = opts.initiallySet ?? false;
  }

  /** KVM_SET_USER_MEMORY_REGION. */
  setUserMemoryRegion(r: UserMemoryRegion): void {
    const vm = this.vm;
    const { slot, guestPhysAddr: gpa, size, flags } = r;
    if (!Number.isInteger(slot) || slot < 0 || slot >= 0x10000) throw new MemslotError(`memslot id must be 0..65535 (got ${slot})`);
    if ((flags & ~(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY)) !== 0) throw new MemslotError(`memslot ${slot}: unknown flags 0x${flags.toString(16)} (LOG_DIRTY_PAGES=1, READONLY=2)`);
    const old = vm.memslots.get(slot);
    let zap = false;
    if (size === 0) {
      if (!old) throw new MemslotError(`memslot ${slot}: cannot delete a slot that does not exist`);
      vm.memslots.delete(slot);
      this.bitmaps.delete(slot);
      zap = true;
    } else {
      if (gpa % PAGE || size % PAGE || gpa < 0 || size < 0) throw new MemslotError(`memslot ${slot}: guest address and size must be multiples of 4 KiB (got 0x${gpa.toString(16)} + 0x${size.toString(16)})`);
      if (gpa + size > vm.size) throw new MemslotError(`memslot ${slot}: 0x${gpa.toString(16)} + 0x${size.toString(16)} is beyond guest RAM (0x${vm.size.toString(16)}): slots must lie in [0, RAM size)`);
      for (const s of vm.memslots.values()) {
        if (s.slot !== slot && gpa < s.guestPhysAddr + s.size && s.guestPhysAddr < gpa + size) {
          throw new MemslotError(`memslot ${slot} (0x${gpa.toString(16)}-0x${(gpa + size - 1).toString(16)}) overlaps memslot ${s.slot} (0x${s.guestPhysAddr.toString(16)}-0x${(s.guestPhysAddr + s.size - 1).toString(16)})`);
        }
      }
      let hostOffset: number;
      if (!old) {
        // a new slot is backed by the RAM at its gpa; no other (moved) slot may use that memory
        hostOffset = vm.ramBase + gpa;
        for (const s of vm.memslots.values()) {
          if (hostOffset < s.hostOffset + s.size && s.hostOffset < hostOffset + size) {
            throw new MemslotError(`memslot ${slot}: its RAM (guest 0x${gpa.toString(16)}) is in use by memslot ${s.slot}, which was moved there`);
          }
        }
      } else {
        if (old.size !== size) throw new MemslotError(`memslot ${slot}: a slot cannot be resized in place (${old.size} -> ${size} bytes): delete it (size 0) and create it again`);
        if ((old.flags ^ flags) & KVM_MEM_READONLY) throw new MemslotError(`memslot ${slot}: READONLY cannot be changed on an existing slot (delete and re-create it)`);
        hostOffset = old.hostOffset; // KVM_MR_MOVE keeps the memory (userspace_addr)
        if (old.guestPhysAddr === gpa && old.flags === flags) return; // no change
        if (old.guestPhysAddr !== gpa) zap = true;
      }
      vm.memslots.set(slot, { slot, guestPhysAddr: gpa, size, flags, hostOffset });
      if (!(flags & KVM_MEM_LOG_DIRTY_PAGES)) this.bitmaps.delete(slot);
    }
    const newlyLogged = size !== 0 && (flags & KVM_MEM_LOG_DIRTY_PAGES) !== 0 && !this.bitmaps.has(slot);
    const wasLogging = this.bitmaps.size;
    this.layoutBitmaps(newlyLogged ? slot : -1);
    this.writeSlotTable();
    this.bind();
    if (zap || size === 0) {
      // the gfn -> host mapping changed: no shadow page or TLB entry may keep the old one
      if (vm.mmu?.shadow && vm.vcpus.length > 0) vm.mmu.fn.mmu_zap_all_fast();
      for (const v of vm.vcpus) v.flushTlb();
    }
    if (newlyLogged && vm.vcpus.length > 0) {
      this.fn.kvm_dirty_log_enable(this.slotIndex(slot), this.manualProtect && this.initiallySet ? 1 : 0);
      this.afterReprotect?.();
    }
    // generation strategy: write protection stays on only while something logs
    if (wasLogging > 0 && this.bitmaps.size === 0 && vm.mmu?.shadow && vm.vcpus.length > 0) this.fn.mmu_write_protect_all(0);
  }

  /** Index of `slot` in the core's slot table. */
  private slotIndex(slot: number): number {
    const i = [...this.vm.memslots.keys()].indexOf(slot);
    if (i < 0) throw new MemslotError(`memslot ${slot} does not exist`);
    return i;
  }

  /** Pack the logged slots' bitmaps into the area (contents kept; `fresh` gets a new one). */
  private layoutBitmaps(fresh: number): void {
    const u8 = new Uint8Array(this.vm.memory.buffer);
    const saved = new Map<number, Uint8Array>();
    for (const [slot, off] of this.bitmaps) {
      const s = this.vm.memslots.get(slot);
      if (s) saved.set(slot, u8.slice(off, off + this.bitmapBytes(s.size)));
    }
    this.bitmaps.clear();
    let at = this.bitmapArea;
    for (const s of this.vm.memslots.values()) {
      if (!(s.flags & KVM_MEM_LOG_DIRTY_PAGES)) continue;
      if (s.slot !== fresh && !saved.has(s.slot)) continue;
      const n = this.bitmapBytes(s.size);
      if (at + n > this.outBuf) throw new MemslotError("no room for another dirty bitmap");
      this.bitmaps.set(s.slot, at);
      const keep = saved.get(s.slot);
      if (keep) u8.set(keep, at); else u8.fill(0, at, at + n);
      at += n;
    }
  }

  private bitmapBytes(size: number): number { return Math.ceil(size / PAGE / 64) * 8; }

  /** Write the slot table into the VM struct (the core's gpa_to_host reads it). */
  private writeSlotTable(): void {
    const k = this.k, dv = this.dv(), base = this.vm.vmBase;
    const slots = [...this.vm.memslots.values()];
    if (slots.length > k.VM_MAX_SLOTS) throw new MemslotError(`too many memslots (at most ${k.VM_MAX_SLOTS})`);
    dv.setUint32(base + k.VM_NR_SLOTS, slots.length, true);
    slots.forEach((s, i) => {
      const a = base + k.VM_SLOTS + i * k.MEMSLOT_SIZE;
      dv.setBigUint64(a + k.MEMSLOT_BASE_GFN, BigInt(s.guestPhysAddr / PAGE), true);
      dv.setBigUint64(a + k.MEMSLOT_NPAGES, BigInt(s.size / PAGE), true);
      dv.setBigUint64(a + k.MEMSLOT_HOST, BigInt(s.hostOffset), true);
      dv.setUint32(a + k.MEMSLOT_FLAGS, s.flags, true);
      dv.setUint32(a + k.MEMSLOT_DIRTY_BITMAP, this.bitmaps.get(s.slot) ?? 0, true);
    });
    dv.setUint32(base + k.VM_DIRTY_LOGGED_SLOTS, this.bitmaps.size, true);
    this.fn.memslots_changed();
    this.fn.dirty_memslots_changed();
  }

  private loggedIndex(slot: number, what: string): { index: number; npages: number } {
    const s = this.vm.memslots.get(slot);
    if (!s) throw new MemslotError(`${what}: memslot ${slot} does not exist`);
    if (!this.bitmaps.has(slot)) throw new MemslotError(`${what}: memslot ${slot} does not log dirty pages (set LOG_DIRTY_PAGES first)`);
    return { index: this.slotIndex(slot), npages: s.size / PAGE };
  }

  /**
   * KVM_GET_DIRTY_LOG: bit i of the result = page i of the slot (u64 words,
   * little-endian). Classic mode clears the log and re-protects the pages
   * before the guest runs again; manual mode leaves both to clearDirtyLog.
   */
  getDirtyLog(slot: number): BigUint64Array {
    const { index, npages } = this.loggedIndex(slot, "getDirtyLog");
    this.bind();
    const n = this.fn.kvm_get_dirty_log(index, this.outBuf, this.manualProtect ? 0 : 1);
    this.stats.pagesReported += Math.max(n, 0);
    if (!this.manualProtect && n > 0) { this.stats.reprotects++; this.afterReprotect?.(); }
    const words = Math.ceil(npages / 64);
    return new BigUint64Array(this.vm.memory.buffer.slice(this.outBuf, this.outBuf + words * 8));
  }

  /**
   * KVM_CLEAR_DIRTY_LOG (manual protect only): clear pages [first, first +
   * count) of the slot that are set in `mask` (the bitmap getDirtyLog gave,
   * indexed from page `first`; all of them without a mask) and re-protect
   * them. `first` must be a multiple of 64, and `count` too unless the range
   * ends at the slot's end (KVM's rules). Returns the pages cleared.
   */
  clearDirtyLog(slot: number, first: number, count: number, mask?: BigUint64Array | Uint8Array): number {
    if (!this.manualProtect) throw new MemslotError("clearDirtyLog needs manual protect (enableManualDirtyLogProtect), as KVM_CLEAR_DIRTY_LOG needs KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2");
    const { index, npages } = this.loggedIndex(slot, "clearDirtyLog");
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first % 64 !== 0 || first + count > npages || (count % 64 !== 0 && first + count !== npages)) {
      throw new MemslotError(`clearDirtyLog(slot ${slot}, first ${first}, count ${count}): first must be a multiple of 64 and count a multiple of 64 or reach the slot's end (${npages} pages)`);
    }
    let maskPtr = 0;
    if (mask) {
      const bytes = new Uint8Array(mask.buffer, mask.byteOffset, mask.byteLength);
      const need = Math.ceil(count / 64) * 8;
      const u8 = new Uint8Array(this.vm.memory.buffer);
      u8.fill(0, this.maskBuf, this.maskBuf + need);
      u8.set(bytes.subarray(0, Math.min(need, bytes.length)), this.maskBuf);
      maskPtr = this.maskBuf;
    }
    this.bind();
    const n = this.fn.kvm_clear_dirty_log(index, first, count, maskPtr, this.outBuf);
    if (n < 0) throw new MemslotError(`clearDirtyLog(slot ${slot}): rejected by the core`);
    if (n > 0) { this.stats.reprotects++; this.afterReprotect?.(); }
    return n;
  }

  /**
   * The host wrote guest-physical [gpa, gpa + len) (vm.write / vm.fill: the
   * loader, devices, an incoming migration): set the bits of the logged pages
   * it covers, as KVM's kvm_write_guest marks what it writes. Atomic (u32 halves).
   */
  markRange(gpa: number, len: number): void {
    if (this.bitmaps.size === 0 || len <= 0) return;
    const i32 = new Int32Array(this.vm.memory.buffer);
    const first = Math.floor(gpa / PAGE), last = Math.floor((gpa + len - 1) / PAGE);
    for (const [slot, off] of this.bitmaps) {
      const s = this.vm.memslots.get(slot)!;
      const base = s.guestPhysAddr / PAGE, end = base + s.size / PAGE;
      for (let g = Math.max(first, base); g <= Math.min(last, end - 1); g++) {
        const rel = g - base;
        Atomics.or(i32, (off >> 2) + (rel >> 5), 1 << (rel & 31));
      }
    }
  }

  /** Where slot's bitmap lives (0 if it does not log). */
  bitmapOffset(slot: number): number { return this.bitmaps.get(slot) ?? 0; }

  /** The dirty-log audit (tests): problems found and the first one. */
  audit(): { errors: number; gfn: number; what: string } {
    this.bind();
    const errors = this.fn.kvm_dirty_log_audit();
    const what = ["", "writable 4 KiB spte on a clean page", "writable large spte over a clean page", "TLB entry with write permission on a clean page"][this.fn.dirty_audit_first_what()] ?? "?";
    return { errors, gfn: this.fn.dirty_audit_first_gfn(), what };
  }
}

/** Iterate the set bits of a dirty bitmap (page indexes within the slot). */
export function* dirtyPages(bitmap: BigUint64Array, npages = bitmap.length * 64): Iterable<number> {
  const u32 = new Uint32Array(bitmap.buffer, bitmap.byteOffset, bitmap.length * 2);
  for (let w = 0; w < u32.length; w++) {
    let b = u32[w]!;
    while (b !== 0) {
      const bit = 31 - Math.clz32(b & -b);
      const page = w * 32 + bit;
      if (page < npages) yield page;
      b &= b - 1;
    }
  }
}
