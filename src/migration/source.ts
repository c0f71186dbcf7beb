/**
 * The source side of a live migration: pre-copy, then stop-and-copy.
 *
 * The guest keeps running between the pieces of migration work: every batch of
 * pages sent is followed by a slice of guest execution as long as the batch
 * took on the link (at `maxBandwidth`, if set), as if the guest ran on its own
 * CPU while a migration thread sent. Round 0 sends all RAM (zero pages as
 * markers); each later round sends what the dirty tracker reports written since
 * the page was last sent. After each round the source estimates the link's
 * bandwidth and the guest's dirty rate; when the pages left fit the downtime
 * target (`maxDowntimeMs`, 300 by default; the estimate includes the harvest) or
 * the round limit is reached, the vCPU stays stopped, and the rest of RAM, the
 * vCPU and device state and the END section (with a RAM digest) go out. Downtime
 * is measured from the start of that last harvest (the guest's last instruction
 * here) to the destination's "OK".
 *
 * A migration that fails (the destination refuses, the link drops, no answer)
 * leaves the guest running on the source as if nothing had happened. A guest
 * that stops during pre-copy cancels the migration (an ABORT section tells the
 * destination) and its result is the source's.
 */
import type { Machine, RunResult } from "../machine.js";
import type { Vcpu } from "../vcpu.js";
import { MigrationError } from "../errors.js";
import { openOutgoing, type Outgoing } from "./transport.js";
import { createDirtyTracker, ramRanges, allGfns, type DirtyTracker, type TrackerKind } from "./dirty.js";
import { PageHasher, PAGE_SIZE, ramDigest, livePageHashes } from "./pagehash.js";
import {
  SectionType, encodePreamble, encodeJsonSection, encodeRoundSection, RamSectionBuilder, RAM_RECORD_BYTES,
} from "./stream.js";
import { encodeVcpu, saveDevices } from "./state.js";

export interface MigrateOptions {
  /** tcp:HOST:PORT or file:PATH. */
  uri: string;
  /** Start migrating once the guest has retired this many instructions (default 0: at once). */
  after?: bigint;
  /** Downtime target in ms (default 300, QEMU's default). */
  maxDowntimeMs?: number;
  /** Link speed limit in bytes/s (like QEMU's max-bandwidth); 0 or unset = as fast as the transport goes. */
  maxBandwidth?: number;
  /** Pre-copy rounds before the switch-over is forced, round 0 included (default 30). */
  maxRounds?: number;
  /** Pages per RAM section (default 256 = 1 MiB). */
  batchPages?: number;
  /** Guest instructions to run after each batch; unset: run the guest for as long as the batch took on the link. */
  guestSlice?: number;
  /** Dirty tracker: "auto" (the dirty log when the VM has one, else page hashing), "hash", "dirty-log", or one of your own. */
  tracker?: TrackerKind | DirtyTracker;
  /**
   * Test oracle: at the switch-over, hash all of RAM and compare every page with what was
   * last sent; a page the dirty tracker failed to report fails the migration (the guest
   * carries on here). Costs one pass over RAM inside the downtime (none for the hash tracker).
   */
  audit?: boolean;
  /** How long to wait for the destination's answer after END (default 60 s). */
  ackTimeoutMs?: number;
  /** After each pre-copy round. */
  onProgress?: (r: RoundReport) => void;
  /** At the switch-over, with the vCPU stopped and all RAM sent (tests compare RAM here). */
  onSwitchover?: (m: Machine) => void;
  /** Passed to Machine.run (live stats). */
  onSlice?: (cpu: Vcpu) => void;
}

export interface RoundReport {
  round: number;
  /** Pages sent with data in this round, and zero pages sent as markers. */
  pages: number;
  zeroPages: number;
  bytes: number;
  ms: number;
  /** Pages found dirty at the end of the round: what the next round (or the stop-and-copy) sends. */
  remaining: number;
  /** Guest pages dirtied per second of this round. */
  dirtyRate: number;
  /** Bytes/s the source moves RAM at (hashing, copying, checksumming and the possibly limited link). */
  bandwidth: number;
  harvestMs: number;
  expectedDowntimeMs: number;
  guestInstructions: number;
}

export interface MigrationSummary {
  role: "source";
  uri: string;
  status: "completed" | "failed" | "cancelled";
  error?: string;
  tracker: string;
  /** Instruction count when migration started and at the switch-over. */
  startInstructions: number;
  switchoverInstructions?: number;
  /** Pre-copy rounds (round 0 included). */
  rounds: number;
  pagesSent: number;
  zeroPages: number;
  bytesSent: number;
  totalMs: number;
  /** From the vCPU's last instruction on the source (the final harvest included) to the destination's OK (tcp) or the complete file. */
  downtimeMs?: number;
  expectedDowntimeMs?: number;
  /** Pages sent during the stop-and-copy. */
  stopCopyPages?: number;
  /** Where the downtime went: the final harvest, the last pages, vCPU/device state and the digest, the destination's checks until its answer. */
  downtimeParts?: { harvestMs: number; pagesMs: number; stateMs: number; answerMs: number };
  bandwidth: number;
  /** The last round's dirty rate (pages/s). */
  dirtyRate: number;
  /** The guest's own progress while pre-copy ran. */
  guestInstructions: number;
  guestMips: number;
  /** Digest of RAM as sent (the destination checks its RAM against it). */
  ramDigest?: string;
  /** What `audit` found: pages checked, pages written but never reported (must be 0), time. */
  audit?: { pages: number; missed: number; firstMissedGfn?: number; ms: number };
  roundReports: RoundReport[];
}

export interface SourceOutcome {
  summary: MigrationSummary;
  /** The guest's result when it finished on the source (migration cancelled, failed, or never started). */
  result?: RunResult;
}

/** Guest instructions per run() call while a batch's time is being filled. */
const GUEST_CHUNK = 5_000;
/** What the state sections and END add to the stop-and-copy, roughly. */
const STATE_BYTES = 64 * 1024;

class Stopped { constructor(readonly result: RunResult) {} }

/**
 * Run `machine`'s guest and migrate it to `opts.uri` after `opts.after` instructions.
 * Resolves when the guest has moved (summary.status "completed": the source must
 * not run it again) or has finished here (`result`).
 */
export async function runMigrationSource(machine: Machine, opts: MigrateOptions): Promise<SourceOutcome> {
  const cpu = machine.vm.vcpus[0]!;
  const first = machine.run(opts.onSlice, opts.after ?? 0n);
  const summary: MigrationSummary = {
    role: "source", uri: opts.uri, status: "failed", tracker: "", startInstructions: Number(cpu.instructions), rounds: 0,
    pagesSent: 0, zeroPages: 0, bytesSent: 0, totalMs: 0, bandwidth: 0, dirtyRate: 0, guestInstructions: 0, guestMips: 0, roundReports: [],
  };
  if (first.reason !== "paused") {
    summary.status = "cancelled";
    summary.error = `the guest stopped (${first.reason}) before the migration started`;
    await sendAbort(opts.uri, summary.error);
    return { summary, result: first };
  }
  let out: Outgoing;
  try { out = await openOutgoing(opts.uri); } catch (e) {
    summary.error = (e as Error).message;
    return { summary, result: machine.run(opts.onSlice) };
  }
  const tracker = typeof opts.tracker === "object" ? opts.tracker : createDirtyTracker(machine.vm, opts.tracker ?? "auto");
  summary.tracker = tracker.kind;
  const t0 = performance.now();
  try {
    await precopy(machine, out, tracker, opts, summary);
    summary.status = "completed";
    return { summary };
  } catch (e) {
    tracker.stop();
    summary.totalMs = performance.now() - t0;
    if (e instanceof Stopped) {
      summary.status = "cancelled";
      summary.error = `the guest stopped (${e.result.reason}) during pre-copy`;
      try { await out.write(encodeJsonSection(SectionType.ABORT, { reason: summary.error })); } catch { /* the destination is gone anyway */ }
      out.abort();
      return { summary, result: e.result };
    }
    if (!(e instanceof MigrationError)) throw e;
    // tell the destination why, if it is still listening
    try { await out.write(encodeJsonSection(SectionType.ABORT, { reason: e.what })); } catch { /* gone */ }
    out.abort();
    summary.status = "failed";
    summary.error = e.message;
    // the guest carries on here as if nothing had happened
    return { summary, result: machine.run(opts.onSlice) };
  } finally {
    summary.totalMs = performance.now() - t0;
  }
}

async function precopy(machine: Machine, out: Outgoing, tracker: DirtyTracker, opts: MigrateOptions, summary: MigrationSummary): Promise<void> {
  const vm = machine.vm;
  const cpu = vm.vcpus[0]!;
  const ranges = ramRanges(vm);
  const mem = new Uint8Array(vm.memory.buffer);
  const hasher = new PageHasher(vm.memory);
  // every page's hash as last sent: the END digest, and what an audit compares RAM with
  const sentLo = new Int32Array(vm.size / PAGE_SIZE), sentHi = new Int32Array(vm.size / PAGE_SIZE);
  const maxBw = opts.maxBandwidth ?? 0;
  const batch = Math.max(1, opts.batchPages ?? 256);
  const maxRounds = Math.max(1, opts.maxRounds ?? 30);
  const maxDowntime = opts.maxDowntimeMs ?? 300;
  // what moving RAM costs the source per byte: hashing, copying and checksumming a batch, plus
  // its time on the (limited) link; the downtime estimate divides by this rate
  let xferMs = 0, xferBytes = 0;
  const insn0 = cpu.instructions;
  const t0 = performance.now();

  const hostOf = (gfn: number): number => {
    for (const r of ranges) if (gfn - r.baseGfn < r.npages && gfn >= r.baseGfn) return r.host + (gfn - r.baseGfn) * PAGE_SIZE;
    throw new Error(`gfn 0x${gfn.toString(16)} is not guest RAM`);
  };

  /** Send a chunk: how long it took, and how long it takes on the (possibly rate-limited) link. */
  const send = async (chunk: Uint8Array): Promise<{ ms: number; linkMs: number }> => {
    const t = performance.now();
    await out.write(chunk);
    const ms = performance.now() - t;
    summary.bytesSent += chunk.length;
    return { ms, linkMs: maxBw > 0 ? Math.max(ms, (chunk.length / maxBw) * 1000) : ms };
  };

  /** Let the guest run for `ms` of wall time (or opts.guestSlice instructions). */
  const runGuest = (ms: number): void => {
    if (opts.guestSlice !== undefined) {
      const r = machine.run(opts.onSlice, cpu.instructions + BigInt(opts.guestSlice));
      if (r.reason !== "paused") throw new Stopped(r);
      return;
    }
    const deadline = performance.now() + ms;
    do {
      const r = machine.run(opts.onSlice, cpu.instructions + BigInt(GUEST_CHUNK));
      if (r.reason !== "paused") throw new Stopped(r);
    } while (performance.now() < deadline);
  };

  /** Send pages in RAM sections; `live`: the guest runs after each one. */
  const b = new RamSectionBuilder(batch);
  const sendPages = async (gfns: Iterable<number>, live: boolean, count: { pages: number; zero: number }): Promise<void> => {
    let n = 0;
    let tBatch = performance.now();
    const flush = async () => {
      if (b.empty) return;
      const section = b.finish();
      const buildMs = performance.now() - tBatch;
      const { ms, linkMs } = await send(section); // written out: the buffer can be reused
      xferMs += buildMs + linkMs;
      xferBytes += section.length;
      count.pages += b.pages;
      count.zero += b.zeroPages;
      b.reset();
      n = 0;
      if (live) runGuest(linkMs);
      else await sleep(linkMs - ms); // the stop-and-copy on a limited link takes the link's time
      tBatch = performance.now();
    };
    for (const gfn of gfns) {
      const host = hostOf(gfn);
      const lo = hasher.hash(host);
      const hi = hasher.hi;
      if (lo === 0 && hi === 0) b.addZero(gfn); else b.addPage(gfn, mem, host);
      tracker.sent?.(gfn, lo, hi);
      sentLo[gfn] = lo;
      sentHi[gfn] = hi;
      if (++n === batch) await flush();
    }
    await flush();
  };

  await send(encodePreamble());
  await send(encodeJsonSection(SectionType.HEADER, {
    ramSize: vm.size, pageSize: PAGE_SIZE, vcpus: vm.vcpus.length, source: "shadow86",
    memslots: [...vm.memslots.values()].map((s) => ({ slot: s.slot, guestPhysAddr: s.guestPhysAddr, size: s.size, flags: s.flags })),
  }));
  await send(encodeJsonSection(SectionType.MMU, mmuConfig(machine)));

  tracker.start();
  let pending: Iterable<number> = allGfns(ranges);
  let dirty: number[] = [];
  let harvestStart = 0;
  for (let round = 0; ; round++) {
    const rs = performance.now();
    const bytes0 = summary.bytesSent;
    const i0 = cpu.instructions;
    const count = { pages: 0, zero: 0 };
    await sendPages(pending, true, count);
    await send(encodeRoundSection(round));
    harvestStart = performance.now();
    dirty = [...tracker.harvest()];
    const ms = performance.now() - rs;
    const bandwidth = xferBytes / Math.max(xferMs / 1000, 1e-6);
    const report: RoundReport = {
      round, pages: count.pages, zeroPages: count.zero, bytes: summary.bytesSent - bytes0, ms,
      remaining: dirty.length, dirtyRate: dirty.length / Math.max(ms / 1000, 1e-6), bandwidth,
      harvestMs: tracker.lastHarvestMs,
      expectedDowntimeMs: tracker.lastHarvestMs + ((dirty.length * (PAGE_SIZE + RAM_RECORD_BYTES) + STATE_BYTES) / bandwidth) * 1000,
      guestInstructions: Number(cpu.instructions - i0),
    };
    summary.roundReports.push(report);
    machine.opts.trace?.span(cpu.id, `migration round ${round}`, Number(i0), Number(cpu.instructions), { pages: count.pages, zeroPages: count.zero, remaining: dirty.length });
    summary.rounds = round + 1;
    summary.pagesSent += count.pages;
    summary.zeroPages += count.zero;
    summary.dirtyRate = report.dirtyRate;
    summary.bandwidth = bandwidth;
    summary.expectedDowntimeMs = report.expectedDowntimeMs;
    opts.onProgress?.(report);
    if (report.expectedDowntimeMs <= maxDowntime || round + 1 >= maxRounds) break;
    pending = dirty;
  }
  summary.guestInstructions = Number(cpu.instructions - insn0);
  summary.guestMips = summary.guestInstructions / 1e6 / Math.max((performance.now() - t0) / 1000, 1e-9);

  // stop-and-copy: the vCPU is not run again here (the last harvest saw RAM as it is now);
  // it has not run since that harvest began, so the downtime counts from there
  const stopT = harvestStart;
  summary.switchoverInstructions = Number(cpu.instructions);
  const count = { pages: 0, zero: 0 };
  const tPages = performance.now();
  await sendPages(dirty, false, count);
  const tState = performance.now();
  summary.pagesSent += count.pages;
  summary.zeroPages += count.zero;
  summary.stopCopyPages = count.pages + count.zero;
  for (const v of vm.vcpus) await send(encodeVcpu(v));
  await send(encodeJsonSection(SectionType.DEVICES, saveDevices(machine)));
  opts.onSwitchover?.(machine);
  let last = 0;
  summary.ramDigest = ramDigest({ hash: (gfn) => { last = gfn; return sentLo[gfn]!; }, get hi() { return sentHi[last]!; } }, ranges);
  if (opts.audit) {
    // RAM has not changed since the last harvest: a content tracker already has every page's hash
    const ta = performance.now();
    const live = tracker.harvestedHashes?.() ?? livePageHashes(hasher);
    const a = { pages: 0, missed: 0, firstMissedGfn: undefined as number | undefined, ms: 0 };
    for (const r of ranges) {
      for (let i = 0; i < r.npages; i++) {
        const gfn = r.baseGfn + i;
        const lo = live.hash(gfn, r.host + i * PAGE_SIZE);
        a.pages++;
        if (lo !== sentLo[gfn] || live.hi !== sentHi[gfn]) { a.missed++; a.firstMissedGfn ??= gfn; }
      }
    }
    a.ms = performance.now() - ta;
    summary.audit = a;
    if (a.missed > 0) {
      throw new MigrationError(out.uri, `audit: the ${tracker.kind} tracker missed ${a.missed} written pages (first gfn 0x${a.firstMissedGfn!.toString(16)}): not switching over`);
    }
  }
  await send(encodeJsonSection(SectionType.END, { rounds: summary.rounds, pages: summary.pagesSent, zeroPages: summary.zeroPages, ramDigest: summary.ramDigest }));
  const tAnswer = performance.now();
  await out.finish(opts.ackTimeoutMs ?? 60_000);
  const tEnd = performance.now();
  summary.downtimeMs = tEnd - stopT;
  summary.downtimeParts = { harvestMs: tPages - stopT, pagesMs: tState - tPages, stateMs: tAnswer - tState, answerMs: tEnd - tAnswer };
  tracker.stop();
}

/** The MMU section: mode and knobs, so the destination builds the same MMU. */
export function mmuConfig(machine: Machine): { mode: string; knobs: Record<string, unknown> } {
  const mmu = machine.vm.mmu;
  return { mode: mmu.mode, knobs: { ...mmu.knobs } };
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

/** Tell a destination that is waiting that nothing will come (best effort). */
async function sendAbort(uri: string, reason: string): Promise<void> {
  let out: Outgoing | undefined;
  try {
    out = await openOutgoing(uri);
    await out.write(encodePreamble());
    await out.write(encodeJsonSection(SectionType.ABORT, { reason }));
    await out.finish(2000).catch(() => undefined);
  } catch { /* nobody listening: nothing to tell */ } finally { out?.abort(); }
}
