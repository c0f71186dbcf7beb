/**
 * A fuzz worker thread: asks the pool for a seed, runs it, reports the result.
 * It says which seed it starts before running it, so the pool's watchdog can
 * name the seed when a run() never returns (the pool then terminates this
 * thread: a synchronous WASM call cannot be interrupted from inside).
 */
import { parentPort, workerData } from "node:worker_threads";
import { runSeed, diffSeed, type FuzzOptions } from "./guest_fuzz.js";

export interface WorkerInit { module: WebAssembly.Module; opts: FuzzOptions }
export type ToWorker = { type: "seed"; seed: number } | { type: "stop" };
export type FromWorker =
  | { type: "ready" }
  | { type: "start"; seed: number }
  | { type: "result"; result: ReturnType<typeof runSeed> };

const port = parentPort;
if (port) {
  const { module, opts } = workerData as WorkerInit;
  port.on("message", (m: ToWorker) => {
    if (m.type === "stop") { port.close(); return; }
    port.postMessage({ type: "start", seed: m.seed } satisfies FromWorker);
    const result = opts.differential ? diffSeed(module, m.seed, opts) : runSeed(module, m.seed, opts);
    port.postMessage({ type: "result", result } satisfies FromWorker);
  });
  port.postMessage({ type: "ready" } satisfies FromWorker);
}
