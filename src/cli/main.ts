/**
 * shadow86 command line: `shadow86 -kernel IMAGE [-m 256M] [-append "..."]`.
 * The guest's serial output goes to stdout byte for byte and nothing else
 * does; the summary and every message go to stderr. The exit status is QEMU's.
 */
import { Command, CommanderError, Option } from "commander";
import { readFileSync, writeFileSync, writeSync, existsSync, statSync } from "node:fs";
import { Machine, type RunResult } from "../machine.js";
import { loadCoreModule } from "../platform/node.js";
import { formatError, Shadow86Error, BootError } from "../errors.js";
import { normaliseArgv, parseMemSize, parseModules } from "./args.js";
import { disassemble } from "../isa/disasm.js";

class SerialOut {
  private buf = Buffer.alloc(1 << 16);
  private n = 0;
  push(b: number): void {
    this.buf[this.n++] = b;
    if (this.n === this.buf.length || b === 0x0a) this.flush();
  }
  flush(): void {
    let off = 0;
    while (off < this.n) off += writeSync(1, this.buf, off, this.n - off);
    this.n = 0;
  }
}

function summary(r: RunResult): string {
  const secs = r.wallMs / 1000;
  const mips = Number(r.instructions) / 1e6 / Math.max(secs, 1e-9);
  const lines = [`shadow86: ${r.instructions} instructions in ${secs.toFixed(3)} s (${mips.toFixed(1)} MIPS), stop: ${r.reason}, status ${r.status}`];
  const nonzero = Object.entries(r.stats).filter(([, v]) => v !== 0n);
  if (nonzero.length) lines.push("shadow86: counters: " + nonzero.map(([k, v]) => `${k}=${v}`).join(" "));
  return lines.join("\n");
}

export function main(argv: string[]): number {
  const program = new Command();
  program
    .name("shadow86")
    .usage("-kernel IMAGE [-m SIZE] [-append CMDLINE] [options]")
    .description("Boot a multiboot kernel on shadow86, an x86-64 emulator whose MMU models KVM's shadow paging.\nQEMU-style one-dash spellings (-kernel, -append) are accepted.")
    .addOption(new Option("--kernel <image>", "multiboot kernel image (ELF32/ELF64 or a.out kludge)"))
    .option("-m, --memory <size>", "guest RAM, as QEMU's -m (256M, 1G; a bare number is MiB)", "256M")
    .option("--append <cmdline>", "kernel command line (the kernel sees \"IMAGE CMDLINE\", as with QEMU)")
    .option("--initrd <modules>", "multiboot modules, as QEMU's -initrd: \"FILE ARGS,FILE ARGS\" (\",,\" is a literal comma)")
    .option("-v, --verbose", "log the first access to each unknown I/O port or MMIO page, and the image's layout")
    .option("--max-instructions <n>", "stop the guest after N instructions (exit status 1)")
    .option("--stats-json <file>", "write every counter at exit as JSON ({\"counters\": {...}})")
    .option("-q, --quiet", "no summary on stderr")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stderr.write(s) })
    .addHelpText("after", `
Exit status: as QEMU's with isa-debug-exit: (value << 1) | 1 of the byte the guest
writes to port 0xf4; 0 after a triple fault (like -no-reboot); 1 when shadow86 stops
the guest itself (unsupported instruction, halt with no way to wake, --max-instructions);
2 for bad arguments or images.

Example: shadow86 -kernel guest-images/hello.elf -m 256M`);
  try {
    program.parse(normaliseArgv(argv), { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  const o = program.opts<{ kernel?: string; memory: string; append?: string; initrd?: string; verbose?: boolean; maxInstructions?: string; statsJson?: string; quiet?: boolean }>();
  if (!o.kernel) {
    process.stderr.write("shadow86: no kernel given: use -kernel IMAGE (see --help)\n");
    return 2;
  }
  const serial = new SerialOut();
  let result: RunResult;
  try {
    const ramSize = parseMemSize(o.memory);
    if (!existsSync(o.kernel)) throw new BootError(o.kernel, "no such file");
    if (statSync(o.kernel).isDirectory()) throw new BootError(o.kernel, "is a directory, not a kernel image");
    const kernel = new Uint8Array(readFileSync(o.kernel));
    let maxInstructions: bigint | undefined;
    if (o.maxInstructions !== undefined) {
      if (!/^\d+$/.test(o.maxInstructions)) throw new BootError(null, `--max-instructions wants a whole number, got "${o.maxInstructions}"`);
      maxInstructions = BigInt(o.maxInstructions);
    }
    const modules = (o.initrd ? parseModules(o.initrd) : []).map((m) => {
      if (!existsSync(m.path)) throw new BootError(m.path, "no such file (from -initrd)");
      return { data: new Uint8Array(readFileSync(m.path)), cmdline: m.cmdline };
    });
    const machine = new Machine({
      module: loadCoreModule(), ramSize, kernel, kernelPath: o.kernel, append: o.append, modules,
      onSerial: (b) => serial.push(b), maxInstructions,
      onUnknownAccess: o.verbose ? (what) => process.stderr.write(`shadow86: ${what}\n`) : undefined,
    });
    if (o.verbose) for (const w of machine.boot.warnings) process.stderr.write(`shadow86: ${w}\n`);
    result = machine.run();
  } catch (e) {
    serial.flush();
    if (e instanceof Shadow86Error) { process.stderr.write(`shadow86: ${formatError(e)}\n`); return 2; }
    if (e instanceof Error && /invalid memory size/.test(e.message)) { process.stderr.write(`shadow86: ${e.message}\n`); return 2; }
    throw e;
  }
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
  if (o.statsJson) {
    const counters = Object.fromEntries(Object.entries(result.stats).map(([k, v]) => [k, Number(v)]));
    writeFileSync(o.statsJson, JSON.stringify({ counters, instructions: Number(result.instructions), status: result.status, stop: result.reason }, null, 2) + "\n");
  }
  return result.status;
}

process.exitCode = main(process.argv.slice(2));
