/**
 * Where the pre-copy loop learns which guest pages changed: a DirtyTracker.
 *
 * - `DirtyLogTracker` (the default): KVM's way, over issue 8's per-memslot dirty
 *   bitmaps: LOG_DIRTY_PAGES on every RAM slot, `vm.getDirtyLog(slot)` (return
 *   and clear, re-protect with the VM's wp_all strategy) at each harvest.
 * - `PageHashTracker` (needs nothing from the MMU; the test oracle): remembers the
 *   64-bit hash of every page *as the source last sent it* and, at each
 *   harvest, hashes all of RAM (in WASM, in place: ~30 ms per 256 MiB here) and
 *   reports the pages whose hash differs. Comparing with what was sent, not
 *   with the previous harvest, makes it exact even for a page that changes and
 *   changes back across a send (an A-B-A the destination must not miss); the
 *   only way to miss a write is a 64-bit hash collision. The source's `audit`
 *   option applies the same comparison to any tracker at the switch-over.
 */
import type { Vm } from "../vm.js";
import { PageHasher, PAGE_SIZE, PAGE_SHIFT, type PageHashes } from "./pagehash.js";

export interface DirtyTracker {
  /** "hash" or "dirty-log". */
  readonly kind: string;
  /** Begin tracking. The caller then sends every page (round 0). */
  start(): void;
  /** Gfns written since start() or the previous harvest (each once, ascending within a slot). */
  harvest(): Iterable<number>;
  /** End tracking (leave the VM as it was). */
  stop(): void;
  /** The source sent `gfn` with this content hash. Content trackers need it; a dirty log ignores it. */
  sent?(gfn: number, hashLo: number, hashHi: number): void;
  /** Wall time of the last harvest (it counts towards the downtime). */
  lastHarvestMs: number;
  /** Content trackers: every page's hash as of the last harvest (the source's RAM digest then costs nothing). */
  harvestedHashes?(): PageHashes;
}

/** One RAM memslot as the migration code sees it. */
export interface RamRange { slot: number; baseGfn: number; npages: number; host: number; flags: number; }

/** The VM's RAM memslots, by gfn. */
export function ramRanges(vm: Vm): RamRange[] {
  return [...vm.memslots.values()]
    .map((s) => ({ slot: s.slot, baseGfn: s.guestPhysAddr >>> PAGE_SHIFT, npages: s.size / PAGE_SIZE, host: s.hostOffset, flags: s.flags }))
    .sort((a, b) => a.baseGfn - b.baseGfn);
}

export function* allGfns(ranges: readonly RamRange[]): Iterable<number> {
  for (const r of ranges) for (let i = 0; i < r.npages; i++) yield r.baseGfn + i;
}

export class PageHashTracker implements DirtyTracker {
  readonly kind = "hash";
  lastHarvestMs = 0;
  private readonly ranges: RamRange[];
  private readonly hasher: PageHasher;
  private sentLo = new Int32Array(0);
  private sentHi = new Int32Array(0);
  private known = new Uint8Array(0);
  private curLo = new Int32Array(0);
  private curHi = new Int32Array(0);

  constructor(private readonly vm: Vm) {
    this.ranges = ramRanges(vm);
    this.hasher = new PageHasher(vm.memory);
  }

  start(): void {
    const n = this.vm.size >>> PAGE_SHIFT;
    this.sentLo = new Int32Array(n);
    this.sentHi = new Int32Array(n);
    this.known = new Uint8Array(n); // nothing sent yet: every page is dirty until it is
    this.curLo = new Int32Array(n);
    this.curHi = new Int32Array(n);
  }

  sent(gfn: number, lo: number, hi: number): void {
    this.sentLo[gfn] = lo;
    this.sentHi[gfn] = hi;
    this.known[gfn] = 1;
  }

  harvest(): number[] {
    const t = performance.now();
    const out: number[] = [];
    const h = this.hasher;
    for (const r of this.ranges) {
      for (let i = 0; i < r.npages; i++) {
        const gfn = r.baseGfn + i;
        const lo = h.hash(r.host + i * PAGE_SIZE);
        this.curLo[gfn] = lo;
        this.curHi[gfn] = h.hi;
        if (!this.known[gfn] || lo !== this.sentLo[gfn] || h.hi !== this.sentHi[gfn]) out.push(gfn);
      }
    }
    this.lastHarvestMs = performance.now() - t;
    return out;
  }

  harvestedHashes(): PageHashes {
    const lo = this.curLo, hi = this.curHi;
    let last = 0;
    return { hash: (gfn) => { last = gfn; return lo[gfn]!; }, get hi() { return hi[last]!; } };
  }

  stop(): void {
    this.sentLo = new Int32Array(0);
    this.sentHi = new Int32Array(0);
    this.known = new Uint8Array(0);
    this.curLo = new Int32Array(0);
    this.curHi = new Int32Array(0);
  }
}

/** What DirtyLogTracker needs from the VM (issue 8's KVM-like API). */
export interface DirtyLogVm {
  memslots: Vm["memslots"];
  setUserMemoryRegion(r: { slot: number; guestPhysAddr: number; size: number; flags: number }): void;
  /** KVM_GET_DIRTY_LOG: the slot's bitmap (bit i = page i of the slot, little-endian words), cleared and re-protected. */
  getDirtyLog(slot: number): ArrayBufferView;
}

/** KVM_MEM_LOG_DIRTY_PAGES. */
export const MEM_LOG_DIRTY_PAGES = 1;

export class DirtyLogTracker implements DirtyTracker {
  readonly kind = "dirty-log";
  lastHarvestMs = 0;
  private readonly ranges: RamRange[];

  constructor(private readonly vm: DirtyLogVm) {
    this.ranges = ramRanges(vm as unknown as Vm);
  }

  private setLogging(on: boolean): void {
    for (const r of this.ranges) {
      const flags = on ? r.flags | MEM_LOG_DIRTY_PAGES : r.flags;
      this.vm.setUserMemoryRegion({ slot: r.slot, guestPhysAddr: r.baseGfn * PAGE_SIZE, size: r.npages * PAGE_SIZE, flags });
    }
  }

  start(): void {
    this.setLogging(true);
    for (const r of this.ranges) this.vm.getDirtyLog(r.slot); // start clean: round 0 sends everything
  }

  harvest(): number[] {
    const t = performance.now();
    const out: number[] = [];
    for (const r of this.ranges) {
      const v = this.vm.getDirtyLog(r.slot);
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      const n = Math.min(bytes.length, Math.ceil(r.npages / 8));
      for (let i = 0; i < n; i++) {
        let b = bytes[i]!;
        while (b !== 0) {
          const bit = 31 - Math.clz32(b & -b);
          const page = i * 8 + bit;
          if (page < r.npages) out.push(r.baseGfn + page);
          b &= b - 1;
        }
      }
    }
    this.lastHarvestMs = performance.now() - t;
    return out;
  }

  stop(): void { this.setLogging(false); }
}

export type TrackerKind = "auto" | "hash" | "dirty-log";

/** The dirty log when the VM has one (issue 8), page hashing otherwise (or when asked). */
export function createDirtyTracker(vm: Vm, kind: TrackerKind = "auto"): DirtyTracker {
  const logVm = vm as unknown as Partial<DirtyLogVm>;
  const hasLog = typeof logVm.getDirtyLog === "function";
  if (kind === "dirty-log" && !hasLog) throw new Error("this VM has no dirty log (vm.getDirtyLog, issue 8): use the hash tracker");
  if (kind === "dirty-log" || (kind === "auto" && hasLog)) return new DirtyLogTracker(vm as unknown as DirtyLogVm);
  return new PageHashTracker(vm);
}
