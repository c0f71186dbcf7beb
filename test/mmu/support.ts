/** Boot a bundled guest image with a chosen MMU mode and knobs, then audit the shadow MMU. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Machine, type RunResult } from "../../src/machine.js";
import { loadCoreModule, packageRoot } from "../../src/platform/node.js";
import type { MmuKnobs, MmuMode } from "../../src/mmu/knobs.js";
import type { AuditReport } from "../../src/mmu/shadow_mmu.js";
import { parseModules } from "../../src/cli/args.js";
import type { TraceRecorder } from "../../src/trace/trace.js";

export interface MmuRun extends RunResult {
  serial: string;
  machine: Machine;
  audit: AuditReport;
  /** Shadow pages in use at the end. */
  pages: number;
}

export function imagePath(name: string): string { return join(packageRoot(), "guest-images", `${name}.elf`); }

export interface ImageOptions {
  ramSize?: number; maxInstructions?: bigint; append?: string; initrd?: string;
  /** Called with the machine before it runs (e.g. to install a pte-write policy). */
  setup?: (m: Machine) => void;
  /** Record a trace (src/trace/trace.ts) of the run. */
  trace?: TraceRecorder;
}

export function runImage(name: string, mmu: MmuMode, knobs: Partial<MmuKnobs> = {}, opts: ImageOptions = {}): MmuRun {
  const bytes: number[] = [];
  const machine = new Machine({
    module: loadCoreModule(),
    ramSize: opts.ramSize ?? 256 * 1024 * 1024,
    kernel: new Uint8Array(readFileSync(imagePath(name))),
    kernelPath: `guest-images/${name}.elf`,
    append: opts.append,
    modules: opts.initrd ? parseModules(opts.initrd).map((m) => ({ data: new Uint8Array(readFileSync(join(packageRoot(), m.path))), cmdline: m.cmdline })) : undefined,
    onSerial: (b) => bytes.push(b),
    maxInstructions: opts.maxInstructions ?? 4_000_000_000n,
    mmu,
    knobs,
    trace: opts.trace,
  });
  opts.setup?.(machine);
  const r = machine.run();
  machine.vm.core.fn.vcpu_bind(machine.vm.vcpus[0].base);
  const audit = machine.vm.mmu.audit();
  return { ...r, serial: Buffer.from(bytes).toString("latin1"), machine, audit, pages: machine.vm.mmu.pagesInUse };
}

/** The transcript QEMU TCG printed for an image (captured with ../shared/qemu-oracle into test/guest/expected/). */
export function expectedTranscript(name: string): string {
  return readFileSync(join(packageRoot(), "test", "guest", "expected", `${name}.txt`), "latin1");
}
