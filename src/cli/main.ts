/**
 * shadow86 command line. `shadow86 [run] -kernel IMAGE [-m 256M] [-append "..."]`
 * boots a kernel; the guest's serial output goes to stdout byte for byte and
 * nothing else does; the summary and every message go to stderr; the exit
 * status is QEMU's. Subcommands: run (default), stat, profile.
 */
import { Command, CommanderError } from "commander";
import { normaliseArgv } from "./args.js";
import { addRunOptions, runCommand, type RunOptions } from "./run.js";
import { profileCommand } from "./profile.js";
import { benchCommand } from "./bench.js";
import { knobsHelp } from "../mmu/knobs.js";
import { addMigrationOptions, migrationCommand, type MigrationCliOptions } from "./migrate.js";

const EXIT_HELP = `
Exit status: as QEMU's with isa-debug-exit: (value << 1) | 1 of the byte the guest
writes to port 0xf4; 0 after a triple fault (like -no-reboot) or a power-off; 1 when
shadow86 stops the guest itself (unsupported instruction, halt with no way to wake,
--max-instructions); 2 for bad arguments or images; 4 when an incoming migration is
refused or lost. A source whose migration completed exits 0 (the guest goes on at the
destination); one whose migration failed keeps running the guest and exits with its status.

Example: shadow86 -kernel guest-images/hello.elf -m 256M`;

export function main(argv: string[]): number | Promise<number> {
  let status: number | Promise<number> = 0;
  const program = new Command();
  program
    .name("shadow86")
    .description("An x86-64 emulator whose MMU models KVM's shadow paging. Boots multiboot kernels like qemu-system-x86_64 -kernel; QEMU's one-dash spellings (-kernel, -append, -initrd) work.")
    .helpOption("-h, --help", "show this help")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stderr.write(s) })
    .showHelpAfterError("(run shadow86 --help for the options)");

  addMigrationOptions(addRunOptions(program.command("run", { isDefault: true }).description("boot a kernel (the default command)")))
    .addHelpText("after", EXIT_HELP)
    .action((o: MigrationCliOptions) => {
      if (o.migrate || o.incoming) status = migrationCommand(o);
      else if (o.json !== undefined || o.migrateAfter !== undefined) { process.stderr.write("shadow86: --json and --migrate-after go with --migrate or --incoming\n"); status = 2; }
      else status = runCommand(o);
    });

  addRunOptions(program.command("stat").description("boot a kernel and show live kvm_stat-like counters on stderr"))
    .action((o: RunOptions) => { status = runCommand({ ...o, stat: true }); });

  addRunOptions(program.command("profile").description("boot a kernel under the V8 profiler and print the hottest WASM and TypeScript functions"))
    .option("--out <file>", "keep the .cpuprofile (open it in Chrome DevTools)")
    .option("--top <n>", "how many functions to list", "20")
    .action((o: RunOptions & { out?: string; top: string }) => { status = profileCommand(o); });

  program.command("knobs").description("list every MMU knob with its values, default and the seed it comes from")
    .action(() => { process.stdout.write("MMU modes: --mmu shadow (default) | tdp\nKnobs (--knob name=value):\n" + knobsHelp() + "\n"); status = 0; });

  program.command("bench").description("run the benchmark suite: one markdown table (knob off vs on, ratio, the seed's claim) and QEMU TCG times")
    .option("--json <file>", "also write the results as JSON")
    .option("--html <file>", "also write an HTML report with charts (self-contained)")
    .option("--only <text>", "only the workloads whose name contains TEXT")
    .option("--no-qemu", "do not time QEMU TCG on the same images")
    .action((o: { json?: string; html?: string; only?: string; qemu: boolean }) => { status = benchCommand(o); });

  program.addHelpText("after", EXIT_HELP);
  try {
    program.parse(normaliseArgv(argv), { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    throw e;
  }
  return status;
}

const status = main(process.argv.slice(2));
if (typeof status === "number") process.exitCode = status;
else void status.then((s) => { process.exitCode = s; }); // a rejection is a bug: Node prints its stack, status 1
