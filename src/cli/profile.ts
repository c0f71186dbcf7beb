/**
 * `shadow86 profile`: run the guest in a child node under --cpu-prof (the WASM
 * core is built with --debug, so its functions keep their names) and print the
 * hottest functions by self time, and where the exits went.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import type { RunOptions } from "./run.js";
import { shadow86Command } from "../platform/node.js";

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[]; }
interface CpuProfile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; }

export interface HotFunction { name: string; where: string; selfMs: number; selfPct: number; }

/** Self time per function from a V8 .cpuprofile, hottest first. */
export function hottest(profile: CpuProfile): HotFunction[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { where: string; us: number }>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const url = n.callFrame.url;
    const wasm = url.startsWith("wasm://") || /^assembly\//.test(n.callFrame.functionName);
    const name = n.callFrame.functionName || `(${url ? "anonymous" : "program"})`;
    const where = wasm ? "wasm" : url.includes("node:") ? "node" : url ? "ts" : "v8";
    const e = self.get(name) ?? { where, us: 0 };
    e.us += dt;
    self.set(name, e);
  });
  return [...self.entries()].map(([name, e]) => ({ name, where: e.where, selfMs: e.us / 1000, selfPct: (100 * e.us) / Math.max(total, 1) }))
    .sort((a, b) => b.selfMs - a.selfMs);
}

export function profileCommand(o: RunOptions & { out?: string; top: string }): number {
  const dir = mkdtempSync(join(tmpdir(), "shadow86-prof-"));
  const cli = shadow86Command();
  const args = ["--cpu-prof", "--cpu-prof-dir", dir, cli, "run", "--kernel", o.kernel ?? "", "-m", o.memory, "--stats-json", join(dir, "stats.json")];
  if (o.append) args.push("--append", o.append);
  if (o.maxInstructions) args.push("--max-instructions", o.maxInstructions);
  const r = spawnSync(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) { process.stderr.write("shadow86 profile: the run produced no profile\n"); return 2; }
  const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
  const hot = hottest(profile).slice(0, Number(o.top) || 20);
  const lines = ["", "| self % | self ms | where | function |", "|---:|---:|---|---|",
    ...hot.map((h) => `| ${h.selfPct.toFixed(1)} | ${h.selfMs.toFixed(0)} | ${h.where} | ${h.name} |`)];
  try {
    const stats = JSON.parse(readFileSync(join(dir, "stats.json"), "utf8")) as { counters: Record<string, number> };
    const exits = Object.entries(stats.counters).filter(([k, v]) => v > 0 && /exits$/.test(k));
    if (exits.length) lines.push("", "exits by reason: " + exits.map(([k, v]) => `${k}=${v}`).join(" "));
  } catch { /* the guest may have failed before writing stats */ }
  process.stderr.write(lines.join("\n") + "\n");
  if (o.out) { copyFileSync(join(dir, file), o.out); process.stderr.write(`profile written to ${o.out}\n`); }
  return r.status ?? 1;
}
