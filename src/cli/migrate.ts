/**
 * `shadow86 --incoming URI` (destination) and `shadow86 -kernel IMAGE --migrate URI
 * --migrate-after N` (source). The guest's serial output is on stdout on each
 * side: the source's up to the switch-over, the destination's from there on.
 * Progress and summaries go to stderr; --json adds a machine-readable summary.
 */
import { Command, Option } from "commander";
import { writeFileSync } from "node:fs";
import type { RunResult } from "../machine.js";
import { loadCoreModule } from "../platform/node.js";
import { formatError, Shadow86Error, BootError, MigrationError } from "../errors.js";
import { SerialOut } from "./serial.js";
import { makeMachine, summary, writeTrace, type RunOptions } from "./run.js";
import { runMigrationSource, receiveMigration, type RoundReport, type MigrationSummary, type TrackerKind } from "../migration/index.js";
import { TraceRecorder } from "../trace/trace.js";

export interface MigrationCliOptions extends RunOptions {
  incoming?: string;
  migrate?: string;
  migrateAfter?: string;
  maxDowntime?: string;
  maxBandwidth?: string;
  maxRounds?: string;
  migrateSlice?: string;
  migrateTracker?: string;
  migrateAudit?: boolean;
  json?: string | boolean;
}

/** Exit status when an incoming migration is refused or lost. */
export const EXIT_MIGRATION_FAILED = 4;

export function addMigrationOptions(cmd: Command): Command {
  return cmd
    .option("--incoming <uri>", "wait for a migration on tcp:HOST:PORT (port 0: any free port) or read one from file:PATH, then run the guest it carries (no -kernel); also -incoming")
    .option("--migrate <uri>", "live-migrate the guest to tcp:HOST:PORT or file:PATH after --migrate-after instructions")
    .option("--migrate-after <n>", "guest instructions to run before migrating (default 0)")
    .option("--max-downtime <ms>", "downtime target: switch over once the pages left can be sent in this many ms (default 300)")
    .option("--max-bandwidth <rate>", "limit the migration link to this many bytes/s (suffixes K, M, G: 100M; default unlimited)")
    .option("--max-rounds <n>", "pre-copy rounds before the switch-over is forced, round 0 included (default 30)")
    .option("--migrate-slice <n>", "guest instructions run between two batches of pages (default: as long as the batch took on the link)")
    .addOption(new Option("--migrate-tracker <kind>", "how the source finds dirty pages: dirty-log (KVM_GET_DIRTY_LOG), hash (hash every page each round), auto (the dirty log)").choices(["auto", "dirty-log", "hash"]).default("auto"))
    .option("--migrate-audit", "at the switch-over, hash all RAM and refuse to switch over if the tracker missed a written page (a test oracle; adds a pass over RAM to the downtime)")
    .option("--json [file]", "with --migrate / --incoming: a JSON summary of the migration and the guest's run, to FILE or as the last line on stderr");
}

function whole(name: string, v: string | undefined, def: number): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v)) throw new BootError(null, `${name} wants a whole number, got "${v}"`);
  return Number(v);
}

function rate(v: string | undefined): number {
  if (v === undefined) return 0;
  const m = /^(\d+(?:\.\d+)?)([kKmMgG]?)(?:[bB](?:\/s)?)?$/.exec(v.trim());
  if (!m) throw new BootError(null, `--max-bandwidth wants bytes per second such as 100M or 1G, got "${v}"`);
  const mult = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as "" | "K" | "M" | "G"];
  return Number(m[1]) * mult;
}

const MiB = 1024 * 1024;
const fmtMs = (ms: number) => (ms < 10 ? ms.toFixed(1) : ms.toFixed(0));
const rounds = (n: number) => `${n} round${n === 1 ? "" : "s"}`;

export function roundLine(r: RoundReport): string {
  return `shadow86: migration round ${r.round}: sent ${r.pages} pages + ${r.zeroPages} zero (${(r.bytes / MiB).toFixed(1)} MiB) in ${fmtMs(r.ms)} ms` +
    `, guest ran ${r.guestInstructions} instructions; remaining ${r.remaining} dirty pages, dirty rate ${Math.round(r.dirtyRate)} pages/s` +
    `, bandwidth ${(r.bandwidth / MiB).toFixed(0)} MiB/s, expected downtime ${fmtMs(r.expectedDowntimeMs)} ms`;
}

function guestJson(r: RunResult | undefined) {
  return r && { status: r.status, stop: r.reason, instructions: Number(r.instructions), message: r.message };
}

function emitJson(o: MigrationCliOptions, value: unknown): void {
  const text = JSON.stringify(value, null, typeof o.json === "string" ? 2 : undefined);
  if (typeof o.json === "string") writeFileSync(o.json, text + "\n");
  else if (o.json) process.stderr.write(text + "\n");
}

function finishRun(o: MigrationCliOptions, result: RunResult): void {
  if (result.message) process.stderr.write(`shadow86: ${result.message}\n`);
  if (!o.quiet) process.stderr.write(summary(result) + "\n");
}

export async function migrationCommand(o: MigrationCliOptions): Promise<number> {
  try {
    if (o.incoming && o.migrate) throw new BootError(null, "--incoming and --migrate do not go together (a destination cannot be a source at once)");
    return o.incoming ? await incoming(o, o.incoming) : await outgoing(o, o.migrate!);
  } catch (e) {
    if (e instanceof MigrationError) { process.stderr.write(`shadow86: ${formatError(e)}\n`); return EXIT_MIGRATION_FAILED; }
    if (e instanceof Shadow86Error) { process.stderr.write(`shadow86: ${formatError(e)}\n`); return 2; }
    throw e;
  }
}

async function incoming(o: MigrationCliOptions, uri: string): Promise<number> {
  if (o.kernel) throw new BootError(null, "--incoming takes the guest from the migration stream: leave out -kernel");
  const serial = new SerialOut();
  let where = uri;
  let maxInstructions: bigint | undefined;
  if (o.maxInstructions !== undefined) maxInstructions = BigInt(whole("--max-instructions", o.maxInstructions, 0));
  const received = await receiveMigration(uri, {
    module: loadCoreModule(), onSerial: (b) => serial.push(b), maxInstructions, trace: o.trace ? new TraceRecorder() : undefined,
    onUnknownAccess: o.verbose ? (what) => process.stderr.write(`shadow86: ${what}\n`) : undefined,
    onListening: (port) => {
      where = uri.replace(/:\d+$/, `:${port}`);
      process.stderr.write(`shadow86: waiting for a migration on ${where}\n`);
    },
  });
  const s = received.summary;
  if (!o.quiet) {
    process.stderr.write(`shadow86: migration received on ${where}: ${rounds(s.rounds)}, ${s.pagesReceived} pages + ${s.zeroPages} zero` +
      ` (${(s.bytesReceived / MiB).toFixed(1)} MiB) in ${fmtMs(s.receiveMs)} ms; restored and checked (RAM digest ${s.ramDigest}) in ${fmtMs(s.restoreMs)} ms;` +
      ` resuming at instruction ${s.instructions}\n`);
  }
  let result: RunResult;
  try { result = received.machine.run(); } finally { serial.flush(); }
  // the summary's count and MIPS are this side's: from the switch-over on
  finishRun(o, { ...result, instructions: result.instructions - BigInt(s.instructions) });
  writeTrace(o, received.machine);
  emitJson(o, { migration: s, guest: guestJson(result) });
  return result.status;
}

async function outgoing(o: MigrationCliOptions, uri: string): Promise<number> {
  const serial = new SerialOut();
  const machine = makeMachine(o, serial);
  const after = BigInt(whole("--migrate-after", o.migrateAfter, 0));
  const slice = o.migrateSlice === undefined ? undefined : whole("--migrate-slice", o.migrateSlice, 0);
  let outcome;
  try {
    outcome = await runMigrationSource(machine, {
      uri, after,
      maxDowntimeMs: whole("--max-downtime", o.maxDowntime, 300),
      maxBandwidth: rate(o.maxBandwidth),
      maxRounds: whole("--max-rounds", o.maxRounds, 30),
      guestSlice: slice,
      tracker: (o.migrateTracker ?? "auto") as TrackerKind,
      audit: o.migrateAudit === true,
      onProgress: (r) => { if (!o.quiet) { serial.flush(); process.stderr.write(roundLine(r) + "\n"); } },
    });
  } finally { serial.flush(); }
  const m: MigrationSummary = outcome.summary;
  if (m.status === "completed") {
    process.stderr.write(`shadow86: migration to ${uri} completed: ${rounds(m.rounds)}, ${m.pagesSent} pages + ${m.zeroPages} zero` +
      ` (${(m.bytesSent / MiB).toFixed(1)} MiB) in ${fmtMs(m.totalMs)} ms, downtime ${fmtMs(m.downtimeMs!)} ms (expected ${fmtMs(m.expectedDowntimeMs!)} ms),` +
      ` switch-over at instruction ${m.switchoverInstructions}, ${m.tracker} tracker` +
      `${m.audit ? `, audit: ${m.audit.missed} of ${m.audit.pages} pages missed` : ""}; the guest goes on at the destination\n`);
    emitJson(o, { migration: m });
    // the source's trace ends at the switch-over (migration rounds are spans on vCPU 0's track)
    writeTrace(o, machine);
    return 0;
  }
  process.stderr.write(`shadow86: migration ${m.status === "cancelled" ? "cancelled" : "failed"}: ${m.error}; the guest ${m.status === "cancelled" ? "finished" : "goes on"} here\n`);
  const result = outcome.result!;
  finishRun(o, result);
  emitJson(o, { migration: m, guest: guestJson(result) });
  return result.status;
}
