/**
 * The guest fuzzer: one seed = one fresh VM whose guest RAM, page tables,
 * descriptor tables and vCPU state come from a PRNG (see guest_setup.ts),
 * run in episodes through `vcpu.enter(budget)` the way the machine's exit loop
 * runs a real guest, with exits answered like the machine answers them (IN
 * with random data, MMIO reads with all ones, timer-like interrupts injected).
 *
 * Allowed outcomes: the exits IO, MMIO, HLT, SHUTDOWN, INTERNAL_ERROR, BUDGET
 * and PT_WRITE, with sane exit data. Anything else is a finding:
 *   - a JS exception or a WebAssembly trap (RuntimeError) out of enter()
 *   - an enter() that takes too long for its budget (a true hang is caught by
 *     the worker watchdog in pool.ts)
 *   - more instructions retired than the budget allowed
 *   - nonsense in the exit struct (IO size 3, MMIO exit for a RAM gpa...)
 *   - a byte changed outside the regions the core may write (Vm.regions():
 *     static data, VM struct, vCPU structs, memslot RAM): every gap of the
 *     linear-memory layout, the PC hole and a guard area after RAM hold
 *     canaries checked after every seed
 *   - the core's static data (below heap_base) changed
 *   - (shadow MMU) kvm_mmu_audit reports an inconsistency: it runs every
 *     AUDIT_EVERY enters, at the end of every episode and of the seed.
 * The MMU mode (shadow or tdp) and its knobs (prev_roots, zap_orphans, a
 * small n_max_mmu_pages to force recycling, block_cache) are drawn per seed too.
 *
 * diffSeed() runs a seed with the block cache on and off: the two runs must
 * see the same exits at the same instructions and end with the same
 * registers and guest RAM (SeedResult.digest), else a "block-diff" finding.
 */
import { createHash } from "node:crypto";
import { Vm } from "../vm.js";
import type { ExitName } from "../vcpu.js";
import { Rng } from "./rng.js";
import { GuestBuilder, type StartMode } from "./guest_setup.js";
import { disassemble } from "../isa/disasm.js";
import { handlePtWrite } from "../mmu/pte_write.js";
import type { MmuKnobs, MmuMode } from "../mmu/knobs.js";

export const FINDING_KINDS = ["js-exception", "wasm-trap", "slow-enter", "hang", "budget-overrun", "bad-exit", "canary", "static-data", "memory-grew", "mmu-audit", "block-diff"] as const;
export type FindingKind = (typeof FINDING_KINDS)[number];

export interface Finding {
  seed: number;
  kind: FindingKind;
  detail: string;
  /** Episode and enter() call where it was seen (-1 for end-of-seed checks). */
  episode: number;
  enter: number;
  /** The last exits before the finding, oldest first. */
  tail: string[];
}

export interface FuzzOptions {
  /** Guest RAM in bytes (default 8 MiB). */
  ramSize?: number;
  /** Instructions (budget units) per seed (default 200_000). */
  budget?: number;
  /** Largest budget handed to one enter() (default 20_000); each call gets a random budget up to it. */
  maxSlice?: number;
  /** Episodes per seed at most (default 16): a new random vCPU state after SHUTDOWN/INTERNAL_ERROR/HLT. */
  maxEpisodes?: number;
  /** An enter() slower than this many ms per 10 000 budget is a finding (default 2000). */
  slowMsPer10k?: number;
  /** Check the canaries after every exit too (slow; for narrowing a canary finding down). */
  checkEveryExit?: boolean;
  /** Test hook, called after every enter(): lets a test sabotage the VM to prove the checks fire. */
  afterEnter?: (vm: Vm) => void;
  /** Called with a line per exit (for --trace). */
  trace?: (line: string) => void;
  /** MMU mode: one of them, or "mixed" (default: a quarter of the seeds run tdp). */
  mmu?: MmuMode | "mixed";
  /** Triage: set up but do not run episodes below this one (their random draws still happen). */
  firstEpisode?: number;
  /** MMU knobs to use instead of random ones. */
  knobs?: Partial<MmuKnobs>;
  /** Run kvm_mmu_audit every this many enters in shadow mode (default 64; 0 = only at episode ends). */
  auditEvery?: number;
  /** Force the block_cache knob (default: off for a quarter of the seeds). */
  blockCache?: boolean;
  /** Run every seed with the block cache on and off and compare (diffSeed). */
  differential?: boolean;
}

export interface SeedResult {
  seed: number;
  /** Retired guest instructions (VCPU_INSN_COUNT). */
  instructions: number;
  /** Budget consumed: instructions attempted, including ones that faulted. */
  budgetUsed: number;
  enters: number;
  episodes: number;
  exceptions: number;
  exits: Partial<Record<ExitName, number>>;
  modes: Partial<Record<StartMode, number>>;
  /** MMU mode and the knobs that differ from the defaults. */
  mmu: string;
  /** kvm_mmu_audit runs (each checks every shadow page, spte, rmap entry and TLB entry). */
  audits: number;
  /** Instructions retired by blocks compiled to WebAssembly (src/jit/). */
  compiledInsns: number;
  /** First bytes of instructions that ended an episode with INTERNAL_ERROR (coverage gaps), by hex. */
  unimplemented: Record<string, number>;
  findings: Finding[];
  wallMs: number;
  /** SHA-1 over every exit (kind, instructions retired, RIP), the final registers and guest RAM. */
  digest: string;
}

const GUARD = 64 * 1024;
const CANARIES = [0x5a, 0xa5, 0xc3, 0x3c];

/** Static data of a pristine core instance, per module: what every run must leave intact. */
const pristine = new WeakMap<WebAssembly.Module, Uint8Array>();

interface Gap { start: number; end: number; name: string }

/** The canary-filled ranges: everything in linear memory outside Vm.regions(). */
export function layoutGaps(vm: Vm): Gap[] {
  const total = vm.memory.buffer.byteLength;
  const regions = vm.regions();
  const gaps: Gap[] = [];
  let at = 0;
  let prev = "start of memory";
  for (const r of regions) {
    if (r.start > at) gaps.push({ start: at, end: r.start, name: `between ${prev} and ${r.name}` });
    at = Math.max(at, r.end);
    prev = r.name;
  }
  if (at < total) gaps.push({ start: at, end: total, name: `after ${prev} (guard)` });
  return gaps;
}

function fillGaps(vm: Vm, gaps: Gap[], canary: number): void {
  const b = new Uint8Array(vm.memory.buffer);
  for (const g of gaps) b.fill(canary, g.start, g.end);
}

let canaryBuf = Buffer.alloc(0);
function checkGaps(vm: Vm, gaps: Gap[], canary: number): string | null {
  const buf = vm.memory.buffer as unknown as ArrayBuffer;
  for (const g of gaps) {
    const len = g.end - g.start;
    if (canaryBuf.length < len || canaryBuf[0] !== canary) canaryBuf = Buffer.alloc(Math.max(len, canaryBuf.length), canary);
    const view = Buffer.from(buf, g.start, len);
    if (!view.equals(canaryBuf.subarray(0, len))) {
      let first = -1, last = -1, n = 0;
      for (let i = 0; i < len; i++) if (view[i] !== canary) { if (first < 0) first = i; last = i; n++; }
      const off = (x: number) => `0x${(g.start + x).toString(16)}`;
      const sample = [...view.subarray(first, Math.min(first + 16, last + 1))].map((x) => x.toString(16).padStart(2, "0")).join(" ");
      const ramOff = g.start + first - vm.ramBase;
      const gpa = ramOff >= 0 ? ` (gpa 0x${ramOff.toString(16)} if it were RAM)` : "";
      return `${n} byte(s) changed ${g.name}: linear memory ${off(first)}..${off(last)}${gpa}, first bytes ${sample}`;
    }
  }
  return null;
}

/**
 * The instruction at the vCPU's RIP, for traces and findings: read through the
 * fuzzer's identity map (or its 0xffff800000000000 alias), not through the
 * guest's page tables, which may say otherwise by then.
 */
export function insnAt(vm: Vm, vcpu: Vm["vcpus"][number]): string {
  const cs = vcpu.seg("cs");
  const long = (vcpu.get64(vm.core.k.VCPU_EFER) & 0x400n) !== 0n && (cs.attr & 0x2000) !== 0;
  const bitness = long ? 64 : (vcpu.get64(vm.core.k.VCPU_CR0) & 1n) && cs.attr & 0x4000 ? 32 : 16;
  let lin = long ? vcpu.rip : (cs.base + vcpu.rip) & 0xffffffffn;
  if (lin >= 0xffff800000000000n) lin -= 0xffff800000000000n;
  if (lin + 16n > BigInt(vm.size) || (lin + 16n > 0xa0000n && lin < 0x100000n)) return "(bytes not in RAM)";
  const bytes = vm.read(Number(lin), 16);
  const hex = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  return `${hex}: ${disassemble(bytes, bitness as 16 | 32 | 64, vcpu.rip) ?? "(invalid)"} [${bitness}-bit]`;
}

/** Control registers, RIP and the instruction there, for findings. */
export function stateLine(vm: Vm, vcpu: Vm["vcpus"][number]): string {
  const k = vm.core.k;
  const h = (off: number) => `0x${vcpu.get64(off).toString(16)}`;
  const cs = vcpu.seg("cs");
  return `cr0 ${h(k.VCPU_CR0)} cr3 ${h(k.VCPU_CR3)} cr4 ${h(k.VCPU_CR4)} efer ${h(k.VCPU_EFER)} cs 0x${cs.selector.toString(16)} (attr 0x${cs.attr.toString(16)}) rip 0x${vcpu.rip.toString(16)} rflags 0x${vcpu.rflags.toString(16)}; ${insnAt(vm, vcpu)}`;
}

function staticData(vm: Vm): Uint8Array { return new Uint8Array(vm.memory.buffer, 0, vm.heapBase); }

/** Run one seed. Never throws: everything unexpected becomes a Finding. */
export function runSeed(module: WebAssembly.Module, seed: number, opts: FuzzOptions = {}): SeedResult {
  const t0 = performance.now();
  const ramSize = opts.ramSize ?? 8 * 1024 * 1024;
  const budget = opts.budget ?? 200_000;
  const maxSlice = opts.maxSlice ?? 20_000;
  const maxEpisodes = opts.maxEpisodes ?? 16;
  const slowMsPer10k = opts.slowMsPer10k ?? 2000;
  const rng = new Rng(seed); // builds the guest's RAM
  const host = new Rng(seed ^ 0x27d4eb2f); // the host's decisions: budgets, I/O data, interrupts
  const res: SeedResult = { seed, instructions: 0, budgetUsed: 0, enters: 0, episodes: 0, exceptions: 0, exits: {}, modes: {}, mmu: "", audits: 0, compiledInsns: 0, unimplemented: {}, findings: [], wallMs: 0, digest: "" };
  const digest = createHash("sha1");
  const tail: string[] = [];
  let episode = -1;
  const find = (kind: FindingKind, detail: string) => res.findings.push({ seed, kind, detail, episode, enter: res.enters, tail: [...tail] });
  const report = (e: unknown, where: string): void => {
    const err = e instanceof Error ? e : new Error(String(e));
    const trap = e instanceof WebAssembly.RuntimeError || (e instanceof RangeError && /call stack/.test(err.message));
    // a trap's stack names the core function that trapped (the core is built with a name section)
    const frames = (err.stack ?? "").split("\n").slice(1, trap ? 6 : 12).map((l) => l.trim()).join(" <- ");
    let state = "";
    try { if (vmRef) state = `; vCPU: ${stateLine(vmRef, vmRef.vcpus[0]!)}`; } catch { /* the state is a bonus */ }
    find(trap ? "wasm-trap" : "js-exception", `${where}: ${err.name}: ${err.message} at ${frames}${state}`);
  };
  let vmRef: Vm | undefined;
  const audit = (when: string): void => {
    const v = vmRef;
    if (!v || !v.mmu.shadow) return;
    v.core.fn.vcpu_bind(v.vcpus[0]!.base);
    const a = v.mmu.audit();
    res.audits++;
    if (a.errors) find("mmu-audit", `${when}: kvm_mmu_audit found ${a.errors} problem(s) in ${a.checked} checks; first: ${a.first}`);
  };

  // the VM's configuration comes from its own stream, so a seed builds the same guest in every MMU mode
  const cfg = new Rng(seed ^ 0x5bd1e995);
  const mmuMode: MmuMode = opts.mmu === "shadow" || opts.mmu === "tdp" ? opts.mmu : cfg.chance(0.25) ? "tdp" : "shadow";
  let knobs: Partial<MmuKnobs> = {};
  if (cfg.chance(0.3)) knobs.prev_roots = false;
  if (cfg.chance(0.3)) knobs.zap_orphans = true;
  if (cfg.chance(0.4)) knobs.n_max_mmu_pages = cfg.pick([8, 16, 24, 64]);
  if (opts.knobs) knobs = { ...opts.knobs };
  // drawn from the seed, not from cfg, so adding it left every other draw as it was
  if (opts.blockCache !== undefined) knobs.block_cache = opts.blockCache;
  else if (((seed >>> 2) & 3) === 0) knobs.block_cache = false;
  // compile blocks after 2 runs in most seeds, so the block compiler sees the random code too
  if (((seed >>> 4) & 3) !== 0) knobs.block_jit = 2;
  res.mmu = `${mmuMode}${Object.entries(knobs).map(([k, v]) => ` ${k}=${v}`).join("")}`;
  const auditEvery = opts.auditEvery ?? 64;

  const vm = new Vm({ module, ramSize, guardSize: (seed & 1) === 0 ? GUARD : 0, mmu: mmuMode, knobs });
  if (!pristine.has(module)) pristine.set(module, staticData(vm).slice());
  const staticRef = pristine.get(module)!;
  const canary = CANARIES[seed & 3]!;
  const memBytes = vm.memory.buffer.byteLength;
  const vcpu = vm.vcpus[0]!;
  const k = vm.core.k;
  vmRef = vm;

  const guest = new GuestBuilder(rng, ramSize);
  guest.build();
  guest.writeTo(vm);
  const gaps = layoutGaps(vm);
  fillGaps(vm, gaps, canary);

  try {
    while (res.budgetUsed < budget && episode + 1 < maxEpisodes && res.findings.length === 0) {
      episode++;
      res.episodes++;
      guest.rng = new Rng((Math.imul(seed, 0x9e3779b1) ^ (episode + 1) * 0x85ebca6b) >>> 0); // each episode its own stream
      const st = guest.setupVcpu(vcpu, vm);
      vcpu.pagingStateChanged(); // KVM_SET_SREGS: the MMU forgets roots built for the previous episode's state
      res.modes[st.mode] = (res.modes[st.mode] ?? 0) + 1;
      tail.push(`episode ${episode}: ${st.mode} cpl ${st.cpl}${st.invalid ? " (invalid control registers)" : ""}: ${stateLine(vm, vcpu)}`);
      opts.trace?.(tail[tail.length - 1]!);
      let wakeups = 0, deviceExits = 0;
      if (episode < (opts.firstEpisode ?? 0)) continue;
      let keepLinks = false; // as the machine's loop: after a PT_WRITE exit, unless a hook touches memory
      episodeLoop: while (res.budgetUsed < budget) {
        const slice = Math.min(host.chance(0.3) ? host.int(1, 64) : host.int(1, maxSlice), budget - res.budgetUsed);
        const before = vcpu.instructions;
        const excBefore = vcpu.stat(k.STAT_EXCEPTIONS);
        const t = performance.now();
        let exit: ExitName;
        try {
          exit = vcpu.enter(slice, keepLinks);
        } catch (e) {
          report(e, "enter()");
          break episodeLoop;
        }
        const dt = performance.now() - t;
        keepLinks = exit === "PT_WRITE" && !opts.afterEnter;
        res.enters++;
        // writes to shadowed page tables ride on any exit: the machine's policy handles them
        if (vm.mmu.shadow) handlePtWrite(vcpu, vm.mmu);
        const retired = Number(vcpu.instructions - before);
        res.instructions += retired;
        // budget a non-BUDGET exit used: retired instructions, plus faulting ones (one exception each), plus the exiting one
        res.budgetUsed += exit === "BUDGET" ? slice : Math.min(slice, retired + Number(vcpu.stat(k.STAT_EXCEPTIONS) - excBefore) + 1);
        res.exits[exit] = (res.exits[exit] ?? 0) + 1;
        const line = `enter(${slice}) -> ${exit} after ${retired} insns, rip 0x${vcpu.rip.toString(16)} cs 0x${vcpu.seg("cs").selector.toString(16)}`;
        digest.update(line + "\n");
        tail.push(line);
        if (tail.length > 12) tail.shift();
        if (opts.trace) opts.trace(`${line} (${dt.toFixed(1)} ms)  ${insnAt(vm, vcpu)}`);
        opts.afterEnter?.(vm);
        if (retired < 0 || retired > slice) find("budget-overrun", `enter(${slice}) retired ${retired} instructions`);
        if (dt > slowMsPer10k * Math.max(1, slice / 10_000)) find("slow-enter", `enter(${slice}) took ${dt.toFixed(0)} ms; stopped at ${insnAt(vm, vcpu)}`);
        if (vm.memory.buffer.byteLength !== memBytes) find("memory-grew", `linear memory grew from ${memBytes} to ${vm.memory.buffer.byteLength} bytes`);
        if (opts.checkEveryExit) {
          const c = checkGaps(vm, gaps, canary);
          if (c) find("canary", c);
        }
        if (auditEvery > 0 && res.enters % auditEvery === 0) audit(`after enter ${res.enters}`);
        if (res.findings.length) break episodeLoop;

        switch (exit) {
          case "BUDGET":
            // a timer-like interrupt now and then
            if (host.chance(0.1)) vcpu.i32(k.VCPU_PENDING_IRQ, host.chance(0.9) ? host.int(0x20, 0xff) : host.int(0, 0x1f));
            break;
          case "IO": {
            const size = vcpu.u32(k.EXIT_IO_SIZE), port = vcpu.u32(k.EXIT_IO_PORT), dir = vcpu.u32(k.EXIT_IO_DIRECTION);
            if (![1, 2, 4].includes(size) || port > 0xffff || dir > 1) { find("bad-exit", `IO exit with size ${size}, port 0x${port.toString(16)}, direction ${dir}`); break episodeLoop; }
            if (++deviceExits > 3000) break episodeLoop; // an I/O storm: move on to a new episode
            if (dir === 0) {
              vcpu.u32(k.EXIT_IO_DATA, size === 4 ? host.u32() : host.u32() & ((1 << (size * 8)) - 1));
              vcpu.u32(k.VCPU_PENDING_IO, 1);
            }
            break;
          }
          case "MMIO": {
            const m = vcpu.mmioExit();
            if (![1, 2, 4, 8].includes(m.len)) { find("bad-exit", `MMIO exit with length ${m.len}`); break episodeLoop; }
            for (const s of vm.memslots.values()) {
              if (m.gpa >= s.guestPhysAddr && m.gpa < s.guestPhysAddr + s.size) { find("bad-exit", `MMIO exit for gpa 0x${m.gpa.toString(16)}, which is RAM (memslot ${s.slot})`); break episodeLoop; }
            }
            if (++deviceExits > 3000) break episodeLoop;
            if (!m.isWrite) vcpu.completeMmioRead(m.len === 8 ? 0xffffffffffffffffn : (1n << BigInt(m.len * 8)) - 1n);
            break;
          }
          case "HLT":
            if (!vcpu.halted) { find("bad-exit", "HLT exit but the vCPU is not halted"); break episodeLoop; }
            // wake it with an interrupt a few times when it can take one
            if (vcpu.interruptsEnabled && wakeups++ < 4) { vcpu.i32(k.VCPU_PENDING_IRQ, host.int(0x20, 0xff)); break; }
            break episodeLoop;
          case "SHUTDOWN": {
            const v = vcpu.shutdownVector;
            if (v > 255) find("bad-exit", `SHUTDOWN exit for vector ${v}, which is no interrupt vector`);
            break episodeLoop;
          }
          case "INTERNAL_ERROR": {
            const ie = vcpu.internalError();
            if (ie.bytes.length > 15) { find("bad-exit", `INTERNAL_ERROR with ${ie.bytes.length} instruction bytes`); break episodeLoop; }
            const key = [...ie.bytes.subarray(0, 3)].map((b) => b.toString(16).padStart(2, "0")).join(" ") || "(no bytes)";
            res.unimplemented[key] = (res.unimplemented[key] ?? 0) + 1;
            break episodeLoop;
          }
          case "PT_WRITE":
            break; // handled above, as the machine does
        }
      }
      res.exceptions = Number(vcpu.stats()["exceptions"] ?? 0n);
      if (res.findings.length === 0) audit(`end of episode ${episode}`);
    }
  } catch (e) {
    // host code called between enters (PT_WRITE policy, audit, Vcpu accessors) or the harness itself
    report(e, "host code between enters");
  }

  // end-of-seed checks
  episode = -1;
  try {
    res.compiledInsns = Number(vcpu.stats().compiled_insns ?? 0n);
    if (vm.core.jit.errors.length) find("js-exception", `the block compiler failed: ${vm.core.jit.errors[0]}`);
    digest.update(stateLine(vm, vcpu));
    digest.update(new Uint8Array(vm.memory.buffer, vcpu.base + k.VCPU_REGS, 16 * 8)); // rax..r15
    digest.update(new Uint8Array(vm.memory.buffer, vm.ramBase, ramSize));
    res.digest = digest.digest("hex");
    if (res.findings.length === 0) audit("end of seed");
    const c = checkGaps(vm, gaps, canary);
    if (c) find("canary", c);
    const now = staticData(vm);
    if (!Buffer.from(now.buffer as ArrayBuffer, 0, now.length).equals(staticRef)) {
      let i = 0;
      while (now[i] === staticRef[i]) i++;
      find("static-data", `the core's static data changed at offset 0x${i.toString(16)} (heap_base 0x${vm.heapBase.toString(16)})`);
    }
  } catch (e) {
    report(e, "end-of-seed checks");
  }
  res.wallMs = performance.now() - t0;
  return res;
}

/**
 * A seed with the block cache on and off (cpu/block.ts against the one
 * instruction at a time path): the result of the block-cache run, with a
 * "block-diff" finding when the two runs' digests differ.
 */
export function diffSeed(module: WebAssembly.Module, seed: number, opts: FuzzOptions = {}): SeedResult {
  const on = runSeed(module, seed, { ...opts, blockCache: true });
  const off = runSeed(module, seed, { ...opts, blockCache: false });
  if (on.findings.length === 0 && off.findings.length === 0 && on.digest !== off.digest) {
    on.findings.push({ seed, kind: "block-diff", episode: -1, enter: -1, tail: [],
      detail: `block_cache=1 and block_cache=0 end differently: ${on.instructions} vs ${off.instructions} instructions, ` +
        `exits ${JSON.stringify(on.exits)} vs ${JSON.stringify(off.exits)} (reproduce each with --block-cache 1 / 0 --trace)` });
  }
  on.wallMs += off.wallMs;
  return on;
}

/** Totals over many seeds. */
export interface FuzzSummary {
  seeds: number;
  instructions: number;
  budgetUsed: number;
  enters: number;
  episodes: number;
  exceptions: number;
  audits: number;
  compiledInsns: number;
  exits: Partial<Record<ExitName, number>>;
  modes: Partial<Record<StartMode, number>>;
  unimplemented: Record<string, number>;
  findings: Finding[];
}

export function emptySummary(): FuzzSummary {
  return { seeds: 0, instructions: 0, budgetUsed: 0, enters: 0, episodes: 0, exceptions: 0, audits: 0, compiledInsns: 0, exits: {}, modes: {}, unimplemented: {}, findings: [] };
}

export function addToSummary(s: FuzzSummary, r: SeedResult): void {
  s.seeds++;
  s.instructions += r.instructions;
  s.budgetUsed += r.budgetUsed;
  s.enters += r.enters;
  s.episodes += r.episodes;
  s.exceptions += r.exceptions;
  s.audits += r.audits;
  s.compiledInsns += r.compiledInsns;
  for (const [k, v] of Object.entries(r.exits)) s.exits[k as ExitName] = (s.exits[k as ExitName] ?? 0) + v;
  for (const [k, v] of Object.entries(r.modes)) s.modes[k as StartMode] = (s.modes[k as StartMode] ?? 0) + v;
  for (const [k, v] of Object.entries(r.unimplemented)) s.unimplemented[k] = (s.unimplemented[k] ?? 0) + v;
  s.findings.push(...r.findings);
}

/** The command that reruns one seed alone, with a trace of its exits. */
export function reproCommand(seed: number, budget: number): string {
  return `npm run fuzz -- --start ${seed} --seeds 1 --budget ${budget} --trace`;
}
