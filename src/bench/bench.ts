/**
 * The benchmark suite behind `shadow86 bench` / `npm run bench`: each row runs
 * a guest image with a knob off and on (or one MMU mode against another) in
 * fresh shadow86 processes, and compares one metric. Ratios come from one run
 * on this machine: benchmarks report, tests assert.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { pteWriteTable } from "./pte_write_rows.js";

export interface Variant { label: string; args: string[]; }
export interface BenchRow {
  workload: string; // guest image (and append)
  image: string;
  append?: string;
  metric: "wall_s" | "mips" | "exits" | "pf_fixed" | "tlb_flush" | string;
  off: Variant;
  on: Variant;
  claim: string; // what the seed / issue says to expect
}

export interface RunStats { status: number | null; wallS: number; runS: number; instructions: number; counters: Record<string, number>; shadowPages?: number; }
export interface BenchResult { row: BenchRow; off: RunStats; on: RunStats; offValue: number; onValue: number; ratio: number; }

export function runShadow86(cli: string, cwd: string, image: string, append: string | undefined, args: string[]): RunStats {
  const dir = mkdtempSync(join(tmpdir(), "shadow86-bench-"));
  const stats = join(dir, "stats.json");
  const argv = [cli, "run", "--kernel", image, "-q", "--stats-json", stats, ...(append ? ["--append", append] : []), ...args];
  const t = performance.now();
  const r = spawnSync(process.execPath, argv, { cwd, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 900_000 });
  const wallS = (performance.now() - t) / 1000;
  if (!existsSync(stats)) throw new Error(`${image} ${args.join(" ")}: no stats (status ${r.status}): ${r.stderr.trim().split("\n").pop()}`);
  const j = JSON.parse(readFileSync(stats, "utf8")) as { counters: Record<string, number>; instructions: number; run_s: number; mmu?: { shadow_pages_in_use?: number } };
  return { status: r.status, wallS, runS: j.run_s, instructions: j.instructions, counters: j.counters, shadowPages: j.mmu?.shadow_pages_in_use };
}

export function metricOf(s: RunStats, metric: string): number {
  if (metric === "wall_s") return s.wallS;
  if (metric === "mips") return s.instructions / 1e6 / s.runS; // the guest's run, not node's start-up
  return s.counters[metric] ?? 0;
}

/** QEMU TCG wall time of the same image (seconds), or undefined when QEMU is absent. */
export function qemuWall(oracle: string, cwd: string, image: string, append?: string): number | undefined {
  if (!existsSync(oracle)) return undefined;
  const probe = spawnSync("sh", ["-c", "command -v qemu-system-x86_64"], { encoding: "utf8" });
  if (probe.status !== 0) return undefined;
  const t = performance.now();
  const r = spawnSync(oracle, [image, ...(append ? ["--", "-append", append] : [])], { cwd, stdio: "ignore", timeout: 900_000 });
  if (r.status === null) return undefined;
  return (performance.now() - t) / 1000;
}

/** Shadow faults (fixed, emulated, and the guest's own) per #PF the guest sees. */
export function faultsPerGuestFault(c: Record<string, number>): number | undefined {
  const g = c.pf_guest ?? 0;
  return g === 0 ? undefined : ((c.pf_fixed ?? 0) + (c.pf_emulate ?? 0) + g) / g;
}

/** tdp against shadow for every row that compares the two modes: the issue-4 table. */
export function mmuModesTable(results: BenchResult[]): string {
  const rows = results.filter((r) => r.row.off.label === "tdp" && r.row.on.label === "shadow");
  if (rows.length === 0) return "";
  const f = (v: number | undefined, d = 2) => (v === undefined ? "-" : v.toFixed(d));
  const out = ["| image | tdp wall s | shadow wall s | tdp exits | shadow exits | pf_guest | pf_fixed | shadow faults per guest fault | shadow pages in use |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|"];
  for (const r of rows) {
    const c = r.on.counters;
    out.push(`| ${r.row.workload} | ${f(r.off.wallS)} | ${f(r.on.wallS)} | ${r.off.counters.exits ?? 0} | ${c.exits ?? 0} | ${c.pf_guest ?? 0} | ${c.pf_fixed ?? 0} | ${f(faultsPerGuestFault(c), 1)} | ${r.on.shadowPages ?? "-"} |`);
  }
  return out.join("\n");
}

export function markdown(results: BenchResult[], qemu: Map<string, number | undefined>): string {
  const out = ["| workload | metric | knob off | knob on | ratio (on/off) | claim |", "|---|---|---:|---:|---:|---|"];
  const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3));
  for (const r of results) {
    if (r.off === r.on) out.push(`| ${r.row.workload} | ${r.row.metric} | - | ${fmt(r.onValue)} | - | ${r.row.claim} |`);
    else out.push(`| ${r.row.workload} | ${r.row.metric} (${r.row.off.label} -> ${r.row.on.label}) | ${fmt(r.offValue)} | ${fmt(r.onValue)} | ${r.ratio.toFixed(2)} | ${r.row.claim} |`);
  }
  const modes = mmuModesTable(results);
  if (modes) out.push("", modes);
  const pteWrite = pteWriteTable(results); // issue 5: the seeds' table (src/bench/pte_write_rows.ts)
  if (pteWrite) out.push("", pteWrite);
  if ([...qemu.values()].some((v) => v !== undefined)) {
    out.push("", "| image | shadow86 wall s | QEMU TCG wall s | shadow86 / QEMU |", "|---|---:|---:|---:|");
    // one line per workload: the last row's "on" run (the defaults come last where a workload has several rows)
    const last = new Map(results.map((r) => [r.row.workload, r]));
    for (const r of last.values()) {
      const q = qemu.get(r.row.workload);
      if (q !== undefined) out.push(`| ${r.row.workload} | ${r.on.wallS.toFixed(3)} | ${q.toFixed(3)} | ${(r.on.wallS / q).toFixed(2)} |`);
    }
  }
  return out.join("\n");
}
