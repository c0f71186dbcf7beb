/**
 * Run a machine with dirty logging on every RAM slot and harvest the log
 * every N guest instructions (KVM's dirty_log_test / dirty_log_perf_test
 * loop; `--dirty-log MS` on the command line). Guest time is instruction
 * count: the TSC advances one tick per instruction, read as a nominal 1 GHz
 * clock, so 1 ms of guest time = 1,000,000 instructions and runs are
 * deterministic.
 *
 * With `check`, the host keeps a copy of every logged page as of the last
 * harvest and verifies at each harvest that every page whose content changed
 * has its bit set: a missed page is a page the guest wrote without the MMU
 * marking it (the torture test's oracle, independent of the MMU).
 */
import type { Machine, RunResult } from "../machine.js";
import { KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY } from "./dirty_log.js";

export const INSNS_PER_GUEST_MS = 1_000_000n;
const PAGE = 4096;

export interface HarvestOptions {
  /** Harvest after every this many guest instructions. */
  everyInstructions: bigint;
  /** Verify the log against page contents at each harvest (slow: compares all logged RAM). */
  check?: boolean;
  /** Use manual protect (get + clear) instead of classic get. */
  manual?: boolean;
  /** Manual mode: KVM_DIRTY_LOG_INITIALLY_SET. */
  initiallySet?: boolean;
  /** Run this many instructions before turning logging on (so mappings, large sptes included, exist). */
  startAfter?: bigint;
  /** Called once, right after logging was turned on. */
  onEnabled?: () => void;
}

export interface HarvestReport {
  result: RunResult;
  harvests: number;
  /** Dirty pages reported over all harvests. */
  dirtyPages: number;
  /** Pages that changed without their bit set (check only). */
  missed: number;
  firstMissed?: { slot: number; gpa: number; harvest: number };
  /** Pages reported dirty whose content did not change (check only; not an error). */
  spurious: number;
  /** Wall time spent in getDirtyLog/clearDirtyLog (ms), total and worst. */
  harvestMs: number;
  maxHarvestMs: number;
  /** Wall time to turn logging on (write-protect every slot), ms. */
  enableMs: number;
}

export function runWithDirtyLog(machine: Machine, o: HarvestOptions): HarvestReport {
  const vm = machine.vm;
  const tStart = performance.now();
  if (o.everyInstructions <= 0n) throw new Error("harvest interval must be positive");
  if (o.manual) vm.enableManualDirtyLogProtect({ initiallySet: o.initiallySet });
  if (o.startAfter) {
    const r = machine.run(undefined, o.startAfter);
    if (r.reason !== "paused") throw new Error(`the guest stopped (${r.reason}) before logging started`);
  }
  const slots = [...vm.memslots.values()].filter((s) => !(s.flags & KVM_MEM_READONLY)).map((s) => ({ ...s }));
  const u8 = () => new Uint8Array(vm.memory.buffer);
  const snap = new Map<number, Uint8Array>();
  if (o.check) for (const s of slots) snap.set(s.slot, u8().slice(s.hostOffset, s.hostOffset + s.size));
  const t0 = performance.now();
  for (const s of slots) vm.setUserMemoryRegion({ slot: s.slot, guestPhysAddr: s.guestPhysAddr, size: s.size, flags: s.flags | KVM_MEM_LOG_DIRTY_PAGES });
  o.onEnabled?.();
  const rep: HarvestReport = { result: undefined as unknown as RunResult, harvests: 0, dirtyPages: 0, missed: 0, spurious: 0, harvestMs: 0, maxHarvestMs: 0, enableMs: performance.now() - t0 };
  if (o.manual && o.initiallySet) harvest(); // start from a clean log (every page counts as dirty at first)
  let next = machine.vm.vcpus[0].instructions + o.everyInstructions;
  for (;;) {
    const r = machine.run(undefined, next);
    harvest();
    if (r.reason !== "paused") { rep.result = { ...r, wallMs: performance.now() - tStart }; break; } // wall time of the whole run, harvests included
    next += o.everyInstructions;
  }
  return rep;

  function harvest(): void {
    rep.harvests++;
    const mem = u8();
    for (const s of slots) {
      const npages = s.size / PAGE;
      const t = performance.now();
      const bm = vm.getDirtyLog(s.slot);
      if (o.manual) vm.clearDirtyLog(s.slot, 0, npages, bm);
      const dt = performance.now() - t;
      rep.harvestMs += dt;
      rep.maxHarvestMs = Math.max(rep.maxHarvestMs, dt);
      const words = new Uint32Array(bm.buffer, bm.byteOffset, bm.length * 2);
      for (const w of words) rep.dirtyPages += popcount(w);
      if (!o.check) continue;
      const copy = snap.get(s.slot)!;
      for (let p = 0; p < npages; p++) {
        const a = s.hostOffset + p * PAGE, b = p * PAGE;
        const dirty = ((words[p >>> 5]! >>> (p & 31)) & 1) !== 0;
        const same = Buffer.compare(mem.subarray(a, a + PAGE), copy.subarray(b, b + PAGE)) === 0;
        if (same) { if (dirty) rep.spurious++; continue; }
        if (!dirty) {
          if (rep.missed++ === 0) rep.firstMissed = { slot: s.slot, gpa: s.guestPhysAddr + p * PAGE, harvest: rep.harvests };
        }
        copy.set(mem.subarray(a, a + PAGE), b);
      }
    }
  }
}

function popcount(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}
