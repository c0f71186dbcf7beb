/**
 * npm run fuzz -- [--seeds N] [--start S] [--budget B] [--jobs J] [--mmu shadow|tdp|mixed]
 *                 [--block-cache 0|1] [--diff] [--hang-ms MS] [--trace] [--json FILE]
 *
 * The long guest-fuzz run: seeds S .. S+N-1, each a fresh VM with a random
 * guest (see guest_fuzz.ts), B instructions of budget each, on J worker
 * threads with a hang watchdog. Prints progress, every finding with a
 * one-line reproduction command, and a summary; exits 1 if anything was
 * found. --trace runs the seeds in this thread and prints every exit (for
 * reproducing one seed). --diff runs every seed with the block cache on and
 * off and reports any difference in exits, registers or RAM; --block-cache
 * forces the knob (default: off for a quarter of the seeds).
 */
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { loadCoreModule } from "../platform/node.js";
import { runSeed, diffSeed, emptySummary, addToSummary, reproCommand, type FuzzOptions, type SeedResult, type Finding } from "./guest_fuzz.js";
import { runPool } from "./pool.js";

interface Args { seeds: number; start: number; budget: number; jobs: number; mmu: "shadow" | "tdp" | "mixed"; hangMs: number; trace: boolean; json?: string; diff: boolean; blockCache?: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { seeds: 1000, start: 0, budget: 200_000, jobs: Math.max(1, Math.min(availableParallelism(), 2)), mmu: "mixed", hangMs: 60_000, trace: false, diff: false };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i]!;
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${o} wants a value`);
      return v;
    };
    const num = (): number => {
      const v = val();
      if (!/^\d+$/.test(v)) throw new Error(`${o} wants a whole number, got "${v}"`);
      return Number(v);
    };
    switch (o) {
      case "--seeds": a.seeds = num(); break;
      case "--start": a.start = num(); break;
      case "--budget": a.budget = num(); break;
      case "--jobs": a.jobs = Math.max(1, num()); break;
      case "--hang-ms": a.hangMs = num(); break;
      case "--mmu": {
        const m = val();
        if (m !== "shadow" && m !== "tdp" && m !== "mixed") throw new Error(`--mmu wants shadow, tdp or mixed, got "${m}"`);
        a.mmu = m;
        break;
      }
      case "--trace": a.trace = true; break;
      case "--diff": a.diff = true; break;
      case "--block-cache": {
        const v = val();
        if (v !== "0" && v !== "1") throw new Error(`--block-cache wants 0 or 1, got "${v}"`);
        a.blockCache = v === "1";
        break;
      }
      case "--json": a.json = val(); break;
      case "-h": case "--help":
        process.stdout.write("usage: npm run fuzz -- [--seeds N] [--start S] [--budget B] [--jobs J] [--mmu shadow|tdp|mixed] [--block-cache 0|1] [--diff] [--hang-ms MS] [--trace] [--json FILE]\n");
        process.exit(0);
        break;
      default: throw new Error(`unknown option ${o} (see --help)`);
    }
  }
  return a;
}

function fmt(n: number): string { return n >= 1e9 ? `${(n / 1e9).toFixed(2)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n); }

function printFinding(f: Finding, budget: number, mmu: string): void {
  process.stdout.write(`\nFINDING seed ${f.seed} [${f.kind}] (${mmu || "?"})${f.episode >= 0 ? ` episode ${f.episode}, enter ${f.enter}` : ""}\n  ${f.detail.split("\n").join("\n  ")}\n`);
  if (f.tail.length) process.stdout.write(`  last events:\n    ${f.tail.join("\n    ")}\n`);
  process.stdout.write(`  reproduce: ${reproCommand(f.seed, budget)}\n`);
}

async function main(): Promise<number> {
  let args: Args;
  try { args = parseArgs(process.argv.slice(2)); } catch (e) { process.stderr.write(`fuzz: ${(e as Error).message}\n`); return 2; }
  const module = loadCoreModule();
  const opts: FuzzOptions = { budget: args.budget, mmu: args.mmu, blockCache: args.blockCache, differential: args.diff };
  const sum = emptySummary();
  const t0 = performance.now();
  let lastPrint = 0;
  const progress = (final = false): void => {
    const now = performance.now();
    if (!final && now - lastPrint < 2000) return;
    lastPrint = now;
    const s = (now - t0) / 1000;
    process.stderr.write(`fuzz: ${sum.seeds}/${args.seeds} seeds, ${fmt(sum.instructions)} instructions (${fmt(sum.instructions / s)}/s), ${fmt(sum.exceptions)} exceptions, ${sum.audits} MMU audits, ${sum.findings.length} findings, ${s.toFixed(0)} s\n`);
  };
  const onResult = (r: SeedResult): void => {
    addToSummary(sum, r);
    for (const f of r.findings) printFinding(f, args.budget, r.mmu);
    progress();
  };
  process.stdout.write(`fuzz: seeds ${args.start}..${args.start + args.seeds - 1}, budget ${args.budget} per seed, mmu ${args.mmu}, ${args.trace ? "in this thread, tracing" : `${args.jobs} worker(s), hang after ${args.hangMs} ms`}\n`);
  if (args.trace) {
    for (let s = args.start; s < args.start + args.seeds; s++) {
      const o = { ...opts, trace: (l: string) => process.stdout.write(`  ${l}\n`) };
      onResult(opts.differential ? diffSeed(module, s, o) : runSeed(module, s, o));
    }
  } else {
    await runPool({ module, start: args.start, seeds: args.seeds, jobs: args.jobs, hangMs: args.hangMs, opts, onResult });
  }
  progress(true);
  const secs = (performance.now() - t0) / 1000;
  const exits = Object.entries(sum.exits).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ");
  const modes = Object.entries(sum.modes).map(([k, v]) => `${k}=${v}`).join(" ");
  const unimpl = Object.entries(sum.unimplemented).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} (${v})`).join(", ");
  process.stdout.write([
    "",
    "fuzz summary",
    `  seeds          ${sum.seeds} (${args.start}..${args.start + args.seeds - 1}) in ${secs.toFixed(1)} s`,
    `  instructions   ${sum.instructions} retired, ${sum.budgetUsed} budget used, ${sum.exceptions} exceptions delivered`,
    `  episodes       ${sum.episodes} (${modes})`,
    `  run() calls    ${sum.enters}: ${exits}`,
    `  MMU audits     ${sum.audits}`,
    `  compiled       ${sum.compiledInsns} instructions retired by compiled blocks`,
    `  unimplemented  ${Object.keys(sum.unimplemented).length} distinct first bytes ended episodes${unimpl ? `: ${unimpl}` : ""}`,
    `  findings       ${sum.findings.length}${sum.findings.length ? ` (seeds ${[...new Set(sum.findings.map((f) => f.seed))].join(", ")})` : ""}`,
    "",
  ].join("\n"));
  if (args.json) writeFileSync(args.json, JSON.stringify({ ...sum, args, seconds: secs }, null, 1) + "\n");
  return sum.findings.length ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (e) => { process.stderr.write(`fuzz: ${(e as Error).stack ?? String(e)}\n`); process.exitCode = 2; });
