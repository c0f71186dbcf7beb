/**
 * A pc-like machine around the VM: the devices a multiboot test kernel
 * expects (COM1 16550, isa-debug-exit), the multiboot loader, and the loop
 * that runs vCPU 0 and handles its exits until the guest stops.
 * Independent of Node: file reading and output are the caller's.
 */
import { Vm } from "./vm.js";
import type { Vcpu } from "./vcpu.js";
import type { TraceRecorder } from "./trace/trace.js";
import { parseCpuModel } from "./cpu_model.js";
import { loadMultiboot, type MultibootBoot } from "./boot/multiboot.js";
import { Uart16550, COM1_BASE, UART_PORT_COUNT } from "./devices/uart16550.js";
import { DebugExit, DEBUG_EXIT_IOBASE, DEBUG_EXIT_IOSIZE } from "./devices/debug_exit.js";
import { MmioBus } from "./devices/mmio_bus.js";
import { FwCfg, FW_CFG_PORT_SEL } from "./devices/fw_cfg.js";
import { Pic8259 } from "./devices/pic.js";
import { ShutdownPort, SHUTDOWN_PORT } from "./devices/shutdown_port.js";
import { LocalApic, APIC_DEFAULT_BASE } from "./devices/lapic.js";
import type { MmuKnobs, MmuMode } from "./mmu/knobs.js";
import { handlePtWrite } from "./mmu/pte_write.js";
import { Smp, type SmpMode } from "./smp/smp.js";

export interface MachineOptions {
  module: WebAssembly.Module;
  ramSize: number;
  /** The kernel to boot; absent for an empty machine that a migration stream restores (src/migration). */
  kernel?: Uint8Array;
  kernelPath?: string;
  append?: string;
  /** Multiboot modules (QEMU's -initrd "file args,file args"). */
  modules?: { data: Uint8Array; cmdline: string }[];
  /** Called once per unknown I/O port / MMIO page the guest touches (--verbose). */
  onUnknownAccess?: (what: string) => void;
  /** Each byte the guest transmits on COM1. */
  onSerial?: (byte: number) => void;
  /** CPU model, as -cpu: "MODEL[,+feat,-feat]" (src/cpu_model.ts); default: everything implemented. */
  cpu?: string;
  /** Record trace events (exits here, MMU events from the core's ring). */
  trace?: TraceRecorder;
  /** Stop after this many guest instructions (0 = no limit). */
  maxInstructions?: bigint;
  /**
   * Stop after this much wall-clock time in run(), in ms (--timeout). Checked
   * at every exit: it also stops a guest that retires no instructions at all
   * (an exception storm whose handler faults again), which --max-instructions cannot.
   */
  timeoutMs?: number;
  /** MMU mode (default "shadow") and knobs (src/mmu/knobs.ts). */
  mmu?: MmuMode;
  knobs?: Partial<MmuKnobs>;
  /** -smp N: N vCPUs (1 to 8) with per-vCPU local APICs, INIT/SIPI and ACPI tables (src/smp/). Unset: the classic single-vCPU machine. */
  smp?: number;
  /** How the vCPUs run: "deterministic" (one thread, fixed interleaving) or "parallel" (worker threads; Machine.runParallel). */
  smpMode?: SmpMode;
  /** Deterministic mode: instructions per vCPU per round. */
  smpSlice?: number;
}

export type StopReason =
  | "debug-exit" // the guest wrote to isa-debug-exit: status is QEMU's (v << 1) | 1
  | "power-off" // "Shutdown" written to port 0x8900: status 0
  | "shutdown" // triple fault: QEMU -no-reboot exits 0
  | "halted" // HLT with interrupts disabled: it can never wake
  | "internal-error" // an instruction the interpreter does not implement
  | "instruction-limit"
  | "timeout" // --timeout: the wall-clock limit
  | "paused"; // run()'s `until` was reached: the guest can continue with another run()

export interface RunResult {
  reason: StopReason;
  /** Process exit status, as QEMU would give for the same guest. */
  status: number;
  /** Human-readable explanation for anything but a debug-exit. */
  message?: string;
  instructions: bigint;
  wallMs: number;
  stats: Record<string, bigint>;
  internalError?: { rip: bigint; bytes: Uint8Array; bitness: 16 | 32 | 64 };
}

/** Budget per run() call: long enough to amortise the call, short enough to notice stops. */
const SLICE = 1 << 20;
const TRACE_SLICE = 4096;

export class Machine {
  readonly vm: Vm;
  private readonly booted: MultibootBoot | undefined;
  readonly uart: Uart16550;
  readonly debugExit: DebugExit;
  readonly mmio = new MmioBus();
  readonly lapic: LocalApic;
  readonly fwCfg: FwCfg;
  readonly pics: readonly [Pic8259, Pic8259];
  readonly shutdownPort: ShutdownPort;
  private exitStatus: number | undefined;
  private poweredOff = false;
  /** The SMP machinery when the machine was built with `smp` (else undefined). */
  readonly smp: Smp | undefined;

  constructor(readonly opts: MachineOptions) {
    this.vm = new Vm({ ramSize: opts.ramSize, module: opts.module, mmu: opts.mmu, knobs: opts.knobs, vcpus: opts.smp ?? 1 });
    this.uart = new Uart16550({ onTransmit: (b) => opts.onSerial?.(b) });
    this.debugExit = new DebugExit({ onExit: (s) => { if (this.exitStatus === undefined) this.exitStatus = s; } });
    this.vm.io.register(COM1_BASE, UART_PORT_COUNT, this.uart, "uart16550");
    this.vm.io.register(DEBUG_EXIT_IOBASE, DEBUG_EXIT_IOSIZE, this.debugExit, "isa-debug-exit");
    this.fwCfg = new FwCfg({ ramSize: opts.ramSize, cpus: this.vm.vcpus.length });
    this.pics = [new Pic8259(), new Pic8259()];
    this.shutdownPort = new ShutdownPort(() => { this.poweredOff = true; });
    this.vm.io.register(FW_CFG_PORT_SEL, 2, this.fwCfg, "fw_cfg");
    this.vm.io.register(0x20, 2, this.pics[0], "pic-master");
    this.vm.io.register(0xa0, 2, this.pics[1], "pic-slave");
    this.vm.io.register(SHUTDOWN_PORT, 1, this.shutdownPort, "shutdown");
    this.smp = opts.smp !== undefined ? new Smp(this, { cpus: opts.smp, mode: opts.smpMode, slice: opts.smpSlice }) : undefined;
    this.lapic = this.smp ? this.smp.runners[0]!.apic : new LocalApic(0);
    this.mmio.register(APIC_DEFAULT_BASE, 0x1000, this.lapic, "lapic");
    const report = opts.onUnknownAccess;
    if (report) {
      this.vm.io.onFirstUnknown = (a) => report(`unknown I/O port 0x${a.port.toString(16)} (${a.kind}, ${a.size} byte${a.size > 1 ? "s" : ""}): reads return all ones, writes are ignored`);
      this.mmio.onFirstUnknown = (gpa, kind) => report(`unassigned MMIO at 0x${gpa.toString(16)} (${kind}): reads return all ones, writes are ignored`);
    }
    if (opts.kernel) {
      this.booted = loadMultiboot(opts.kernel, opts.kernelPath ?? "kernel", this.vm, { cmdline: opts.append, modules: opts.modules });
      this.vm.vcpus[0].setMultibootState(this.booted.entry, this.booted.mbiAddr);
    }
    if (opts.cpu !== undefined) {
      const features = parseCpuModel(opts.cpu, this.vm.core.k);
      for (const v of this.vm.vcpus) v.u32(this.vm.core.k.VCPU_FEATURES, features);
    }
    if (opts.trace) for (const v of this.vm.vcpus) opts.trace.attach(v, this.vm.traceRing(v.id));
  }

  /**
   * Run an SMP machine with one worker_thread per vCPU (smpMode "parallel";
   * needs dist/smp-worker.mjs, built by npm run build). Resolves when the guest stops.
   */
  async runParallel(): Promise<RunResult> {
    if (!this.smp) throw new Error("runParallel() needs a machine built with the smp option");
    const { runParallel } = await import("./smp/parallel.js");
    return runParallel(this, this.smp);
  }

  /** The guest asked to stop (isa-debug-exit or power-off), as a run result's reason/status; else undefined. */
  guestStop(): { reason: StopReason; status: number; message?: string } | undefined {
    if (this.exitStatus !== undefined) return { reason: "debug-exit", status: this.exitStatus };
    if (this.poweredOff) return { reason: "power-off", status: 0, message: "guest powered off (port 0x8900)" };
    return undefined;
  }

  /** What the multiboot loader did (only for a machine created with a kernel). */
  get boot(): MultibootBoot {
    if (!this.booted) throw new Error("this machine booted no kernel (it was created empty, for an incoming migration)");
    return this.booted;
  }

  /**
   * Run vCPU 0 until the guest stops. `onSlice` is called between run() calls (live stats).
   * With `until`, stop as "paused" once the guest has retired that many instructions
   * (never later); another run() continues exactly there (live migration runs the guest in such slices).
   */
  run(onSlice?: (cpu: Vcpu) => void, until?: bigint): RunResult {
    if (this.smp) {
      return this.smp.runDeterministic(onSlice, until);
    }
    const cpu = this.vm.vcpus[0];
    const start = performance.now();
    const limit = this.opts.maxInstructions ?? 0n;
    const deadline = this.opts.timeoutMs !== undefined ? start + this.opts.timeoutMs : Infinity;
    const done = (reason: StopReason, status: number, message?: string, extra: Partial<RunResult> = {}): RunResult => ({
      reason, status, message, instructions: cpu.instructions, wallMs: performance.now() - start, stats: cpu.stats(), ...extra,
    });
    let keepLinks = false; // after a PT_WRITE exit: handled in the MMU, no guest memory written here
    for (;;) {
      if (deadline !== Infinity && performance.now() >= deadline) return done("timeout", 1, timeoutMessage(this.opts.timeoutMs!, cpu.rip));
      // with tracing on, short slices drain the ring before it can wrap
      let budget = this.opts.trace ? TRACE_SLICE : SLICE;
      if (limit > 0n) {
        const left = limit - cpu.instructions;
        if (left <= 0n) return done("instruction-limit", 1, `stopped after ${limit} instructions (--max-instructions)`);
        if (left < BigInt(budget)) budget = Number(left);
      }
      if (until !== undefined) {
        const left = until - cpu.instructions;
        if (left <= 0n) return done("paused", 0);
        if (left < BigInt(budget)) budget = Number(left);
      }
      const exit = cpu.enter(budget, keepLinks);
      keepLinks = exit === "PT_WRITE";
      // writes to shadowed page tables ride on any exit (PT_WRITE, or an MMIO/IO one of the same instruction)
      if (this.vm.mmu.shadow) handlePtWrite(cpu, this.vm.mmu);
      const trace = this.opts.trace;
      if (trace) { trace.drain(cpu); if (exit !== "BUDGET") trace.exit(cpu, exit); }
      switch (exit) {
        case "IO":
          cpu.completeIo();
          if (this.exitStatus !== undefined) return done("debug-exit", this.exitStatus);
          if (this.poweredOff) return done("power-off", 0, "guest powered off (port 0x8900)");
          break;
        case "MMIO": {
          const m = cpu.mmioExit();
          if (m.isWrite) this.mmio.write(m.gpa, m.len, m.data);
          else cpu.completeMmioRead(this.mmio.read(m.gpa, m.len));
          break;
        }
        case "BUDGET":
          onSlice?.(cpu);
          break;
        case "HLT":
          // No interrupt source is modelled yet, so a halted vCPU never wakes.
          return done("halted", 1, `guest halted at rip 0x${cpu.rip.toString(16)} with ${cpu.interruptsEnabled ? "interrupts enabled but no interrupt source" : "interrupts disabled"}; it can never continue`);
        case "SHUTDOWN":
          return done("shutdown", 0, `guest triple-faulted (vector ${cpu.shutdownVector} could not be delivered) at rip 0x${cpu.rip.toString(16)}; QEMU with -no-reboot exits 0 here too`);
        case "INTERNAL_ERROR": {
          const cs = cpu.seg("cs").attr;
          const ie = { ...cpu.internalError(), bitness: (cs & 0x2000 ? 64 : cs & 0x4000 ? 32 : 16) as 16 | 32 | 64 };
          const hex = [...ie.bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
          return done("internal-error", 1, `unsupported instruction at rip 0x${ie.rip.toString(16)}: ${hex}`, { internalError: ie });
        }
        case "PT_WRITE":
          break; // handled above (src/mmu/pte_write.ts)
      }
    }
  }
}

/** What --timeout says when it stops a guest. */
export function timeoutMessage(ms: number, rip: bigint): string {
  return `stopped after ${ms / 1000} s of wall-clock time (--timeout) at rip 0x${rip.toString(16)}`;
}
