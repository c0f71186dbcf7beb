/** Boot a bundled guest image in-process and collect what it says. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Machine, type RunResult } from "../../src/machine.js";
import { loadCoreModule, packageRoot } from "../../src/platform/node.js";
import { parseModules } from "../../src/cli/args.js";

export interface GuestRun extends RunResult { serial: string; machine: Machine; }

export function imagePath(name: string): string { return join(packageRoot(), "guest-images", `${name}.elf`); }

export function bootImage(name: string, opts: { ramSize?: number; append?: string; initrd?: string; maxInstructions?: bigint } = {}): GuestRun {
  const path = imagePath(name);
  const bytes: number[] = [];
  const machine = new Machine({
    module: loadCoreModule(),
    ramSize: opts.ramSize ?? 256 * 1024 * 1024,
    kernel: new Uint8Array(readFileSync(path)),
    kernelPath: `guest-images/${name}.elf`,
    append: opts.append,
    modules: opts.initrd ? parseModules(opts.initrd).map((m) => ({ data: new Uint8Array(readFileSync(join(packageRoot(), m.path))), cmdline: m.cmdline })) : undefined,
    onSerial: (b) => bytes.push(b),
    maxInstructions: opts.maxInstructions ?? 2_000_000_000n,
  });
  const r = machine.run();
  return { ...r, serial: Buffer.from(bytes).toString("latin1"), machine };
}
