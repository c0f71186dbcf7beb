/**
 * Live-migration benchmark: dirty-writer at a few write rates, migrated between
 * two shadow86 processes over loopback tcp with a bandwidth limit (so pre-copy
 * takes several rounds, as on a real link), with the dirty log write-protecting
 * by rmap walk and by seed 000's generation scheme (`wp_all`). Prints a markdown table: rounds,
 * pages sent, total time, downtime (measured and expected), the dirty rate the
 * tracker saw, and the guest's own progress during migration against an
 * unmigrated run. The destination stops the guest right after the switch-over
 * (--max-instructions 1): what it does afterwards is not the benchmark.
 *
 *   npx tsx src/migration/bench.ts [--bandwidth 64M] [-m MiB] [--writes 16,64,112,4096] [--knob name=value ...] [--mmu shadow|tdp] [--migrate-tracker hash]
 *
 * Uses dist/shadow86.cjs (npm run build); SHADOW86_BUILD_DIR is honoured.
 */
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { packageRoot, shadow86Command } from "../platform/node.js";
import type { MigrationSummary } from "./source.js";

const root = packageRoot();
const cli = shadow86Command();

interface Proc { status: number | null; stderr: string; }
const children = new Set<ReturnType<typeof spawn>>();
function start(args: string[], onStderr?: (s: string) => void): Promise<Proc> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    children.add(p);
    p.on("exit", () => children.delete(p));
    let stderr = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => { stderr += d; onStderr?.(stderr); });
    p.on("close", (status) => resolve({ status, stderr }));
  });
}
const lastJson = (s: string) => JSON.parse(s.trim().split("\n").pop()!) as { migration: MigrationSummary };

const args = process.argv.slice(2);
const opt = (name: string, def: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1]! : def; };
const bandwidth = opt("--bandwidth", "64M");
const memory = opt("-m", "128");
const writeRates = opt("--writes", "16,64,112,4096").split(",").map(Number);
const extra: string[] = [];
args.forEach((a, i) => { if (a === "--knob" || a === "--mmu" || a === "--migrate-tracker") extra.push(a, args[i + 1]!); });

const PAGES = 8192;
const AFTER = 2_000_000;
const rows: string[] = [
  `dirty-writer pages=${PAGES} (32 MiB region) in ${memory} MiB, migrated after ${AFTER} instructions over loopback tcp limited to ${bandwidth}/s, --max-downtime 300${extra.length ? `, ${extra.join(" ")}` : ""}`,
  "",
  "| writes/round | wp_all | rounds | pages sent (+zero) | total ms | downtime ms (expected) | downtime: harvest / pages / state / answer ms | dirty rate pages/s | guest MIPS migrating / alone | guest writes/s migrating |",
  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
];
/** One migration of `guest` with wp_all=`wp`: its table row. */
async function migrateOnce(guest: string[], writes: number, wp: string, mips: number, writesPerInsn: number): Promise<string> {
  let port = 0;
  let portKnown!: () => void;
  const gotPort = new Promise<void>((r) => { portKnown = r; });
  const dest = start(["--incoming", "tcp:127.0.0.1:0", "--max-instructions", "1", "--json", "-q"], (s) => {
    const m = /waiting for a migration on tcp:127\.0\.0\.1:(\d+)/.exec(s);
    if (m && !port) { port = Number(m[1]); portKnown(); }
  });
  await gotPort;
  const src = await start([...guest, "--knob", `wp_all=${wp}`, "--migrate", `tcp:127.0.0.1:${port}`, "--migrate-after", String(AFTER), "--max-bandwidth", bandwidth, "--json", "-q"]);
  if (src.status !== 0) for (const c of children) c.kill(); // a source that did not migrate leaves the destination waiting
  await dest;
  let m: MigrationSummary;
  try { m = lastJson(src.stderr).migration; } catch { return `| ${writes} | ${wp} | the source failed: ${src.stderr.trim().split("\n")[0]} |`; }
  if (m.status !== "completed") return `| ${writes} | ${wp} | migration ${m.status}: ${m.error} |`;
  const d = m.downtimeParts!;
  return `| ${writes} | ${wp} | ${m.rounds} | ${m.pagesSent} (+${m.zeroPages}) | ${m.totalMs.toFixed(0)} | ${m.downtimeMs!.toFixed(0)} (${m.expectedDowntimeMs!.toFixed(0)}) | ` +
    `${[d.harvestMs, d.pagesMs, d.stateMs, d.answerMs].map((x) => x.toFixed(0)).join(" / ")} | ` +
    `${Math.round(m.dirtyRate)} | ${m.guestMips.toFixed(1)} / ${mips.toFixed(1)} | ${Math.round(m.guestMips * 1e6 * writesPerInsn)} |`;
}

for (const writes of writeRates) {
  const guest = ["-kernel", "guest-images/dirty-writer.elf", "-m", memory, "-append", `rounds=100000 pages=${PAGES} writes=${writes}`, ...extra];
  // the guest alone (no migration, no logging): MIPS and writes per instruction over 40 M instructions
  const alone = spawnSync(process.execPath, [cli, ...guest, "--max-instructions", "40000000"], { cwd: root, encoding: "utf8" });
  const mips = Number(/\(([\d.]+) MIPS\)/.exec(alone.stderr)?.[1]);
  const roundsDone = (alone.stdout.match(/^round \d+: /gm) ?? []).length;
  const writesPerInsn = (roundsDone * writes) / 40e6;
  for (const wp of ["rmap", "generation"]) rows.push(await migrateOnce(guest, writes, wp, mips, writesPerInsn));
}
console.log(rows.join("\n"));
