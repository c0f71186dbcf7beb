/**
 * Runs guest-fuzz seeds on worker threads with a watchdog. A seed that has
 * not finished after `hangMs` is a "hang" finding: its worker is terminated
 * (the only way to stop a WASM call that never returns) and a fresh worker
 * carries on with the next seed. Used by `npm run fuzz` and by the smoke
 * test in `npm test`.
 *
 * The worker is bundled with esbuild on first use into
 * node_modules/.cache/shadow86/ (next to the dependencies it needs), so the
 * same code runs under tsx and under vitest.
 */
import { Worker } from "node:worker_threads";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { buildSync } from "esbuild";
import { packageRoot } from "../platform/node.js";
import { type FuzzOptions, type SeedResult, reproCommand } from "./guest_fuzz.js";
import type { FromWorker, ToWorker, WorkerInit } from "./worker.js";

export interface PoolOptions {
  module: WebAssembly.Module;
  /** First seed and how many. */
  start: number;
  seeds: number;
  /** Worker threads (default 1). */
  jobs?: number;
  /** A seed running longer than this is a hang (default 60 s). */
  hangMs?: number;
  opts: FuzzOptions;
  onResult: (r: SeedResult) => void;
}

let bundled: string | undefined;
/** Bundle src/fuzz/worker.ts (once per process). */
export function workerBundle(): string {
  if (bundled) return bundled;
  const root = packageRoot();
  const dir = join(root, "node_modules", ".cache", "shadow86");
  mkdirSync(dir, { recursive: true });
  const outfile = join(dir, `fuzz-worker-${process.pid}.mjs`);
  buildSync({
    entryPoints: [join(root, "src", "fuzz", "worker.ts")],
    outfile, bundle: true, platform: "node", format: "esm", target: "node20",
    packages: "external", logLevel: "warning",
    // the bundle's own require() for packages that are CommonJS (iced-x86)
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  bundled = outfile;
  process.on("exit", () => rmSync(outfile, { force: true }));
  return outfile;
}

/** Run seeds start .. start+seeds-1; resolves when all are done (hangs included). */
export function runPool(p: PoolOptions): Promise<void> {
  const jobs = Math.max(1, p.jobs ?? 1);
  const hangMs = p.hangMs ?? 60_000;
  const file = workerBundle();
  let next = p.start;
  const end = p.start + p.seeds;
  let active = 0;
  return new Promise((resolve, reject) => {
    const spawn = (): void => {
      if (next >= end) { if (active === 0) resolve(); return; }
      active++;
      const init: WorkerInit = { module: p.module, opts: p.opts };
      const w = new Worker(file, { workerData: init });
      let current: number | undefined;
      let started = 0;
      let finished = false;
      const timer = setInterval(() => {
        if (current === undefined || performance.now() - started < hangMs) return;
        const seed = current;
        current = undefined;
        p.onResult(hangResult(seed, hangMs, p.opts.budget ?? 200_000));
        done(true);
      }, Math.min(1000, hangMs / 4));
      const done = (terminate: boolean): void => {
        if (finished) return;
        finished = true;
        clearInterval(timer);
        if (terminate) void w.terminate();
        active--;
        spawn(); // replaces itself (after a hang) or ends the pool
      };
      const feed = (): void => {
        if (next >= end) { w.postMessage({ type: "stop" } satisfies ToWorker); done(false); return; }
        w.postMessage({ type: "seed", seed: next++ } satisfies ToWorker);
      };
      w.on("message", (m: FromWorker) => {
        if (m.type === "ready") feed();
        else if (m.type === "start") { current = m.seed; started = performance.now(); }
        else { current = undefined; p.onResult(m.result); feed(); }
      });
      w.on("error", (e) => {
        // an exception escaping runSeed (it catches everything it can): report it against the seed
        if (current !== undefined) { p.onResult(errorResult(current, e)); current = undefined; done(true); }
        else { clearInterval(timer); reject(e); }
      });
      w.on("exit", (code) => {
        if (finished) return;
        if (current !== undefined) p.onResult(errorResult(current, new Error(`worker exited with code ${code}`)));
        current = undefined;
        done(false);
      });
      if (active < jobs && next < end) spawn();
    };
    spawn();
  });
}

function emptyResult(seed: number): SeedResult {
  return { seed, instructions: 0, budgetUsed: 0, enters: 0, episodes: 0, exceptions: 0, exits: {}, modes: {}, mmu: "", audits: 0, compiledInsns: 0, unimplemented: {}, findings: [], wallMs: 0, digest: "" };
}
function hangResult(seed: number, ms: number, budget: number): SeedResult {
  const r = emptyResult(seed);
  r.findings.push({ seed, kind: "hang", detail: `seed still running after ${ms} ms (worker terminated); rerun: ${reproCommand(seed, budget)}`, episode: -1, enter: -1, tail: [] });
  return r;
}
function errorResult(seed: number, e: unknown): SeedResult {
  const r = emptyResult(seed);
  r.findings.push({ seed, kind: "js-exception", detail: `escaped the fuzz harness: ${(e as Error).stack ?? String(e)}`, episode: -1, enter: -1, tail: [] });
  return r;
}
