/** `shadow86 [run]`: boot a kernel, serial on stdout, summary on stderr, QEMU's exit status. */
import { Command, Option } from "commander";
import { readFileSync, writeFileSync, existsSync, statSync } from "node:fs";
import { Machine, type RunResult } from "../machine.js";
import { loadCoreModule } from "../platform/node.js";
import { formatError, Shadow86Error, BootError } from "../errors.js";
import { parseMemSize, parseModules } from "./args.js";
import { disassemble } from "../isa/disasm.js";
import { SerialOut } from "./serial.js";
import { StatDisplay } from "./stat.js";
import { TraceRecorder } from "../trace/trace.js";
import { MMU_MODES, parseKnobs, knobsHelp, KnobError, type MmuMode } from "../mmu/knobs.js";
import { SMP_MODES, DEFAULT_SMP_SLICE, type SmpMode } from "../smp/smp.js";
import { runDirtyLogged } from "../dirty/cli.js";

export interface RunOptions {
  kernel?: string; memory: string; append?: string; initrd?: string; verbose?: boolean; cpu?: string;
  maxInstructions?: string; timeout?: string; statsJson?: string; quiet?: boolean; stat?: boolean; trace?: string;
  mmu?: string; knob?: string[]; mmuAudit?: boolean; dirtyLog?: string; dirtyLogMode?: string;
  smp?: string; smpMode?: string; smpSlice?: string;
}

/** The options shared by run, stat and profile. */
export function addRunOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--kernel <image>", "multiboot kernel image (ELF32/ELF64 or a.out kludge); also -kernel"))
    .option("-m, --memory <size>", "guest RAM, as QEMU's -m (256M, 1G; a bare number is MiB)", "256M")
    .option("--append <cmdline>", "kernel command line (the kernel sees \"IMAGE CMDLINE\", as with QEMU); also -append")
    .option("--cpu <model>", "CPU model and features, as QEMU's -cpu: shadow86 (default) or qemu64, then ,+feat/-feat for smep smap pdpe1gb nx")
    .option("--initrd <modules>", "multiboot modules, as QEMU's -initrd: \"FILE ARGS,FILE ARGS\" (\",,\" is a literal comma)")
    .option("-v, --verbose", "log the first access to each unknown I/O port or MMIO page, and loader warnings")
    .option("--max-instructions <n>", "stop the guest after N instructions (exit status 1)")
    .option("--timeout <seconds>", "stop the guest after this much wall-clock time, even one that retires no instructions (exit status 1, counters so far on stderr)")
    .option("--stats-json <file>", "write every counter at exit as JSON ({\"counters\": {...}, \"instructions\": N, \"run_s\": guest run time, ...})")
    .option("--trace <file>", "write a Chrome trace-event JSON file (Perfetto, chrome://tracing): exits, shadow page faults, zaps, TLB flushes, CR3 switches, exceptions")
    .option("--stat", "show a live kvm_stat-like counter table on stderr while the guest runs")
    .addOption(new Option("--mmu <mode>", "MMU: shadow (shadow page tables, as KVM without EPT) or tdp (TLB misses walk the guest's tables, as EPT/NPT or QEMU's softmmu)").choices(MMU_MODES as string[]).default("shadow"))
    .option("--knob <name=value>", `set an MMU knob (repeatable):\n${knobsHelp()}`, (v: string, prev: string[] = []) => [...prev, v])
    .option("--smp <n>", "N vCPUs (1-8; also -smp): local APICs with IPIs, INIT/SIPI and the timer, ACPI MADT, fw_cfg CPU count")
    .addOption(new Option("--smp-mode <mode>", "with --smp: parallel (one worker thread per vCPU) or deterministic (one thread, vCPUs interleaved in a fixed order: reproducible)").choices(SMP_MODES as string[]).default("parallel"))
    .option("--smp-slice <n>", `deterministic mode: instructions per vCPU per turn (default ${DEFAULT_SMP_SLICE})`)
    .option("--dirty-log <ms>", "dirty logging on every RAM slot, harvested (get + clear, re-protect) every MS ms of guest time (1 ms = 1,000,000 instructions); a summary goes to stderr (issue 8)")
    .addOption(new Option("--dirty-log-mode <mode>", "with --dirty-log: classic (KVM_GET_DIRTY_LOG clears) or manual (KVM_CLEAR_DIRTY_LOG, manual protect)").choices(["classic", "manual"]).default("classic"))
    .option("--mmu-audit", "check every shadow page against the guest's tables at exit (kvm_mmu_audit); problems go to stderr and make the status 1")
    .option("-q, --quiet", "no summary on stderr");
}

export function summary(r: RunResult): string {
  const secs = r.wallMs / 1000;
  const mips = Number(r.instructions) / 1e6 / Math.max(secs, 1e-9);
  const lines = [`shadow86: ${r.instructions} instructions in ${secs.toFixed(3)} s (${mips.toFixed(1)} MIPS), stop: ${r.reason}, status ${r.status}`];
  const nonzero = Object.entries(r.stats).filter(([, v]) => v !== 0n);
  if (nonzero.length) lines.push("shadow86: counters: " + nonzero.map(([k, v]) => `${k}=${v}`).join(" "));
  return lines.join("\n");
}

/** Build the machine from options; errors are Shadow86Errors (status 2). */
export function makeMachine(o: RunOptions, serial: SerialOut): Machine {
  if (!o.kernel) throw new BootError(null, "no kernel given: use -kernel IMAGE (see --help)");
  let ramSize: number;
  try { ramSize = parseMemSize(o.memory); } catch (e) { throw new BootError(null, (e as Error).message); }
  if (!existsSync(o.kernel)) throw new BootError(o.kernel, "no such file");
  if (statSync(o.kernel).isDirectory()) throw new BootError(o.kernel, "is a directory, not a kernel image");
  const kernel = new Uint8Array(readFileSync(o.kernel));
  let maxInstructions: bigint | undefined;
  if (o.maxInstructions !== undefined) {
    if (!/^\d+$/.test(o.maxInstructions)) throw new BootError(null, `--max-instructions wants a whole number, got "${o.maxInstructions}"`);
    maxInstructions = BigInt(o.maxInstructions);
  }
  let timeoutMs: number | undefined;
  if (o.timeout !== undefined) {
    timeoutMs = Number(o.timeout) * 1000;
    if (!/^\d+(\.\d+)?$/.test(o.timeout) || !(timeoutMs > 0)) throw new BootError(null, `--timeout wants a positive number of seconds, got "${o.timeout}"`);
  }
  const modules = (o.initrd ? parseModules(o.initrd) : []).map((m) => {
    if (!existsSync(m.path)) throw new BootError(m.path, "no such file (from -initrd)");
    return { data: new Uint8Array(readFileSync(m.path)), cmdline: m.cmdline };
  });
  let smp: number | undefined;
  if (o.smp !== undefined) {
    smp = Number(o.smp);
    if (!/^\d+$/.test(o.smp) || smp < 1 || smp > 8) throw new BootError(null, `-smp wants a number of vCPUs from 1 to 8, got "${o.smp}"`);
  }
  let smpSlice: number | undefined;
  if (o.smpSlice !== undefined) {
    smpSlice = Number(o.smpSlice);
    if (!/^\d+$/.test(o.smpSlice) || smpSlice < 1) throw new BootError(null, `--smp-slice wants a positive number of instructions, got "${o.smpSlice}"`);
  }
  if (smp !== undefined && (o.smpMode ?? "parallel") === "parallel" && o.trace) throw new BootError(null, "--trace with -smp needs --smp-mode deterministic (worker threads keep their trace rings to themselves)");
  let knobs;
  try { knobs = parseKnobs(o.knob ?? []); } catch (e) { if (e instanceof KnobError) throw new BootError(null, e.message); throw e; }
  const machine = new Machine({
    mmu: (o.mmu ?? "shadow") as MmuMode, knobs,
    module: loadCoreModule(), ramSize, kernel, kernelPath: o.kernel, append: o.append, modules,
    onSerial: (b) => serial.push(b), maxInstructions, timeoutMs, trace: o.trace ? new TraceRecorder() : undefined,
    cpu: o.cpu, smp, smpMode: (o.smpMode ?? "parallel") as SmpMode, smpSlice,
    onUnknownAccess: o.verbose ? (what) => process.stderr.write(`shadow86: ${what}\n`) : undefined,
  });
  if (o.verbose) for (const w of machine.boot.warnings) process.stderr.write(`shadow86: ${w}\n`);
  return machine;
}

export function runCommand(o: RunOptions): number | Promise<number> {
  const serial = new SerialOut();
  let result: RunResult;
  let machine: Machine;
  try {
    machine = makeMachine(o, serial);
    if (machine.smp?.mode === "parallel") {
      const m = machine;
      return m.runParallel().then((r) => finishRun(o, m, r, serial), (e: unknown) => {
        serial.flush();
        if (e instanceof Shadow86Error) { process.stderr.write(`shadow86: ${formatError(e)}\n`); return 2; }
        throw e;
      });
    }
    const live = o.stat ? new StatDisplay(process.stderr.isTTY === true) : undefined;
    if (o.dirtyLog !== undefined) result = runDirtyLogged(machine, o.dirtyLog, o.dirtyLogMode === "manual", o.quiet === true); // issue 8 (src/dirty/)
    else result = machine.run(live ? (cpu) => live.tick(cpu) : undefined);
    if (live) live.render(result.stats, result.instructions);
  } catch (e) {
    serial.flush();
    if (e instanceof Shadow86Error) { process.stderr.write(`shadow86: ${formatError(e)}\n`); return 2; }
    throw e;
  }
  return finishRun(o, machine, result, serial);
}

/** Write --trace's file from the machine's recorder (run, migration source and destination). */
export function writeTrace(o: RunOptions, machine: Machine): void {
  if (o.trace && machine.opts.trace) writeFileSync(o.trace, JSON.stringify(machine.opts.trace.toJSON()) + "\n");
}

/** After the guest stopped: messages, summary, audit, trace, stats JSON; returns the exit status. */
function finishRun(o: RunOptions, machine: Machine, result: RunResult, serial: SerialOut): number {
  serial.flush();
  if (result.message) {
    let msg = result.message;
    if (result.internalError) {
      const text = disassemble(result.internalError.bytes, result.internalError.bitness, result.internalError.rip);
      if (text) msg += ` (${text})`;
    }
    process.stderr.write(`shadow86: ${msg}\n`);
  }
  if (!o.quiet) process.stderr.write(summary(result) + "\n");
  const mmu = machine.vm.mmu;
  if (!o.quiet && mmu.shadow) process.stderr.write(`shadow86: shadow mmu: ${mmu.pagesInUse} shadow pages in use (n_max_mmu_pages ${mmu.maxPages})\n`);
  if (o.mmuAudit && mmu.shadow) {
    const { vcpus, core } = machine.vm;
    // the audit counts the bound vCPU's object caches in the pools: with several vCPUs, empty them all first
    if (vcpus.length > 1) for (const v of vcpus) { core.fn.vcpu_bind(v.base); mmu.fn.mmu_test_free_caches(); }
    let a = { errors: 0, checked: 0, first: "" };
    for (const v of vcpus) { // each vCPU's roots and TLB
      core.fn.vcpu_bind(v.base);
      const x = mmu.audit();
      a = { errors: a.errors + x.errors, checked: a.checked + x.checked, first: a.first || (x.first && (vcpus.length > 1 ? `vCPU ${v.id}: ${x.first}` : x.first)) };
    }
    process.stderr.write(a.errors === 0 ? `shadow86: mmu audit: clean (${a.checked} sptes checked)\n` : `shadow86: mmu audit: ${a.errors} problems; first: ${a.first}\n`);
    if (a.errors !== 0 && result.status !== 1) result = { ...result, status: 1 };
  }
  writeTrace(o, machine);
  if (o.statsJson) {
    const counters = Object.fromEntries(Object.entries(result.stats).map(([k, v]) => [k, Number(v)]));
    const mmuInfo = { mode: mmu.mode, shadow_pages_in_use: mmu.pagesInUse, n_max_mmu_pages: mmu.maxPages };
    // run_s: the guest's run in this process (what "N instructions in X s" reports), without node's start-up
    writeFileSync(o.statsJson, JSON.stringify({ counters, instructions: Number(result.instructions), run_s: result.wallMs / 1000, status: result.status, stop: result.reason, mmu: mmuInfo }, null, 2) + "\n");
  }
  return result.status;
}
