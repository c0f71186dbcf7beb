/**
 * SMP: N vCPUs over one shared memory. vCPU 0 (the BSP) boots the kernel; the
 * APs wait for INIT-SIPI. Each vCPU has its own WASM instance (the core keeps
 * per-instance caches: decoder, lazy flags, fetch page) and its own local
 * APIC (src/smp/vcpu_runner.ts); IPIs travel through the ApicBus.
 *
 * Two ways to run them:
 *  - deterministic (tests): one thread, vCPUs interleaved round-robin in index
 *    order, each for a fixed slice of its clock per round; halted vCPUs are
 *    credited the slice as idle time, so every vCPU's clock is the same at a
 *    round boundary and runs are reproducible;
 *  - parallel (the default for the CLI): one worker_thread per vCPU
 *    (src/smp/parallel.ts).
 * The machine stops when the guest exits, or when every vCPU is halted or
 * waits for a SIPI and no timer can wake any of them.
 */
import { instantiateCore, type Core } from "../core/core.js";
import { timeoutMessage, type Machine, type RunResult, type StopReason } from "../machine.js";
import type { Vcpu, ExitName } from "../vcpu.js";
import { ApicBus } from "./apic_bus.js";
import { VcpuRunner } from "./vcpu_runner.js";
import { acpiTables, BIOS_AREA_START, BIOS_AREA_END } from "../boot/acpi.js";
import { handlePtWrite } from "../mmu/pte_write.js";

export type SmpMode = "deterministic" | "parallel";
export const SMP_MODES: SmpMode[] = ["deterministic", "parallel"];
/** Instructions per vCPU per round in deterministic mode. */
export const DEFAULT_SMP_SLICE = 1000;
/** PAUSEs in one run() after which a vCPU yields (KVM's PLE window, counted in PAUSEs here). */
export const PLE_WINDOW = 64;

export interface SmpOptions { cpus: number; mode?: SmpMode; slice?: number; }

/** The memslot that maps the BIOS area (ACPI tables) read-only. */
export const BIOS_SLOT = 2;

export class Smp {
  readonly bus: ApicBus;
  readonly runners: VcpuRunner[];
  readonly cores: Core[];
  readonly mode: SmpMode;
  readonly slice: number;

  constructor(readonly machine: Machine, opts: SmpOptions) {
    const vm = machine.vm;
    const k = vm.core.k;
    this.mode = opts.mode ?? "deterministic";
    this.slice = opts.slice ?? DEFAULT_SMP_SLICE;
    this.bus = new ApicBus(vm.memory, k, vm.vcpus.map((v) => v.base));
    this.cores = vm.vcpus.map((_, i) => {
      if (i === 0) return vm.core;
      const c = instantiateCore(machine.opts.module, vm.memory);
      c.fn.vm_bind(vm.vmBase);
      return c;
    });
    this.runners = vm.vcpus.map((v, i) => new VcpuRunner(this.cores[i]!, v, vm.memory, this.bus));
    this.bus.localApics = this.runners.map((r) => r.apic);
    for (const r of this.runners) if (r.id !== 0) r.mpState = k.MP_STATE_UNINITIALIZED;
    // PAUSE-loop exiting: a vCPU spinning on PAUSE yields (its turn, or its host core)
    if (vm.vcpus.length > 1) new DataView(vm.memory.buffer).setUint32(vm.vmBase + k.VM_PLE_WINDOW, PLE_WINDOW, true);
    // firmware: ACPI RSDP/RSDT/MADT in the BIOS area, mapped read-only
    for (const t of acpiTables(vm.vcpus.length)) vm.write(t.gpa, t.bytes);
    vm.setUserMemoryRegion({ slot: BIOS_SLOT, guestPhysAddr: BIOS_AREA_START, size: BIOS_AREA_END - BIOS_AREA_START, flags: k.MEM_READONLY });
  }

  /** Handle one exit of `r`; returns a stop (reason, status, message) or undefined to go on. */
  handleExit(r: VcpuRunner, exit: ExitName): { reason: StopReason; status: number; message?: string; extra?: Partial<RunResult> } | undefined {
    const m = this.machine;
    const cpu = r.vcpu;
    if (m.vm.mmu.shadow) handlePtWrite(cpu, m.vm.mmu);
    const trace = m.opts.trace;
    if (trace) { trace.drain(cpu); if (exit !== "BUDGET") trace.exit(cpu, exit); }
    switch (exit) {
      case "IO": {
        cpu.completeIo();
        return m.guestStop();
      }
      case "MMIO":
        if (!r.handleApicMmio()) {
          const x = cpu.mmioExit();
          if (x.isWrite) m.mmio.write(x.gpa, x.len, x.data);
          else cpu.completeMmioRead(m.mmio.read(x.gpa, x.len));
        }
        return undefined;
      case "SHUTDOWN":
        return { reason: "shutdown", status: 0, message: `vCPU ${cpu.id} triple-faulted (vector ${cpu.shutdownVector} could not be delivered) at rip 0x${cpu.rip.toString(16)}; QEMU with -no-reboot exits 0 here too` };
      case "INTERNAL_ERROR": {
        const cs = cpu.seg("cs").attr;
        const ie = { ...cpu.internalError(), bitness: (cs & 0x2000 ? 64 : cs & 0x4000 ? 32 : 16) as 16 | 32 | 64 };
        const hex = [...ie.bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
        return { reason: "internal-error", status: 1, message: `vCPU ${cpu.id}: unsupported instruction at rip 0x${ie.rip.toString(16)}: ${hex}`, extra: { internalError: ie } };
      }
      default:
        return undefined; // HLT (the runner sleeps it), BUDGET, PT_WRITE (handled above)
    }
  }

  /** Sum of every vCPU's retired instructions. */
  instructions(): bigint { return this.machine.vm.vcpus.reduce((s, v) => s + v.instructions, 0n); }

  /** Counters summed over the vCPUs. */
  stats(): Record<string, bigint> {
    const out: Record<string, bigint> = {};
    for (const v of this.machine.vm.vcpus) for (const [n, x] of Object.entries(v.stats())) out[n] = (out[n] ?? 0n) + x;
    return out;
  }

  /** Why nothing can run: every vCPU halted (or waiting for SIPI) and no timer can wake one. */
  private allAsleepMessage(): string {
    const parts = this.runners.map((r) => {
      const st = r.prepare();
      return `vCPU ${r.id} ${st === "wait-sipi" ? "waits for SIPI" : r.vcpu.interruptsEnabled ? "halted (IF=1, no timer)" : "halted (IF=0)"}`;
    });
    return `every vCPU sleeps and nothing can wake one: ${parts.join(", ")}`;
  }

  /** Deterministic mode: round-robin on this thread. */
  /**
   * With `until`, stop as "paused" at the end of the first round in which
   * vCPU 0 has retired that many instructions (rounds are never cut, so a
   * paused and resumed run interleaves exactly like an uninterrupted one).
   */
  runDeterministic(onSlice?: (cpu: Vcpu) => void, until?: bigint): RunResult {
    const start = performance.now();
    const limit = this.machine.opts.maxInstructions ?? 0n;
    const timeoutMs = this.machine.opts.timeoutMs;
    const deadline = timeoutMs !== undefined ? start + timeoutMs : Infinity;
    const done = (reason: StopReason, status: number, message?: string, extra: Partial<RunResult> = {}): RunResult => ({
      reason, status, message, instructions: this.instructions(), wallMs: performance.now() - start, stats: this.stats(), ...extra,
    });
    const slice = this.slice;
    for (;;) {
      let anyRan = false;
      for (const r of this.runners) {
        const t0 = r.clock();
        let used = 0;
        while (used < slice) {
          if (r.prepare() !== "run") break;
          anyRan = true;
          const before = r.vcpu.instructions;
          const exit = r.enter(slice - used);
          // a BUDGET exit used the whole turn, even if no instruction retired (an exception storm):
          // counting only retired instructions let such a vCPU keep its turn forever
          used = exit === "BUDGET" ? slice : used + Math.max(1, Number(r.vcpu.instructions - before));
          const stop = this.handleExit(r, exit);
          if (stop) return done(stop.reason, stop.status, stop.message, stop.extra);
          if (performance.now() >= deadline) return done("timeout", 1, timeoutMessage(timeoutMs!, r.vcpu.rip));
        }
        // a vCPU that slept for part of its slice is credited the rest as idle time
        const ran = r.clock() - t0;
        if (ran < slice) r.addIdle(slice - ran);
      }
      if (!anyRan) {
        // nobody ran this round: jump to the earliest timer that can wake a vCPU
        let next = Infinity;
        for (const r of this.runners) if (r.vcpu.halted && r.mpState === this.machine.vm.core.k.MP_STATE_RUNNABLE && r.timerCanWake) next = Math.min(next, r.ticksToTimer());
        if (next === Infinity) return done("halted", 1, this.allAsleepMessage());
        for (const r of this.runners) r.addIdle(next);
      }
      if (limit > 0n && this.instructions() >= limit) return done("instruction-limit", 1, `stopped after ${limit} instructions (--max-instructions)`);
      onSlice?.(this.machine.vm.vcpus[0]!);
      if (until !== undefined && this.machine.vm.vcpus[0]!.instructions >= until) return done("paused", 0);
    }
  }
}
