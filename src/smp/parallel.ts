/**
 * Parallel SMP (Node): one worker_thread per vCPU over the one shared
 * WebAssembly.Memory (the compiled module and the memory are posted to each
 * worker, which instantiates the core there). The main thread keeps the
 * devices: it completes the IO / MMIO exits workers hand it (in arrival
 * order; each vCPU waits for its own), watches for the guest's stop, and
 * stops the machine when every vCPU sleeps with nothing that can wake it.
 */
import { Worker } from "node:worker_threads";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { timeoutMessage, type Machine, type RunResult, type StopReason } from "../machine.js";
import type { Smp } from "./smp.js";
import { packageRoot } from "../platform/node.js";
import { CTL_STOP, CTL_KICKS, CTL_SLOT, CTL_IDLE, CTL_WORDS, type WorkerInit, type WorkerMessage } from "./protocol.js";

/** dist/smp-worker.mjs: next to the CLI bundle, or in the package's dist/ (tests run from src/). */
export function workerPath(): string {
  const env = process.env.SHADOW86_SMP_WORKER;
  if (env) return env;
  const here = fileURLToPath(new URL("./smp-worker.mjs", import.meta.url));
  if (existsSync(here)) return here;
  const dist = join(packageRoot(), "dist", "smp-worker.mjs");
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run "npm run build" (the vCPU worker is bundled with esbuild)`);
  return dist;
}

export function runParallel(machine: Machine, smp: Smp): Promise<RunResult> {
  const vm = machine.vm;
  const start = performance.now();
  const ctlBuf = new SharedArrayBuffer(CTL_WORDS * 4);
  const ctl = new Int32Array(ctlBuf);
  const n = vm.vcpus.length;
  const file = workerPath();
  const workers: Worker[] = [];
  const limit = machine.opts.maxInstructions ?? 0n;

  return new Promise<RunResult>((resolve, reject) => {
    let finished = false;
    let timer: ReturnType<typeof setInterval> | undefined;
    const finish = (reason: StopReason, status: number, message?: string, err?: Error): void => {
      if (finished) return;
      finished = true;
      Atomics.store(ctl, CTL_STOP, 1);
      for (let i = 0; i < n; i++) { smp.bus.kick(i); Atomics.notify(ctl, CTL_SLOT + i); }
      if (timer) clearInterval(timer);
      // let the workers leave run() (a kick ends a slice within 256 instructions) before reading counters
      setTimeout(() => {
        void Promise.all(workers.map((w) => w.terminate())).then(() => {
          if (err) { reject(err); return; }
          resolve({ reason, status, message, instructions: smp.instructions(), wallMs: performance.now() - start, stats: smp.stats() });
        });
      }, 20);
    };

    const handleExit = (cpu: number): void => {
      if (Atomics.load(ctl, CTL_SLOT + cpu) !== 1) return; // (also orders the reads of the exit struct after the worker's writes)
      const r = smp.runners[cpu]!;
      const v = r.vcpu;
      const exit = v.exitNames.get(v.u32(vm.core.k.EXIT_REASON));
      if (exit === "IO") v.completeIo();
      else if (exit === "MMIO") {
        const x = v.mmioExit();
        if (x.isWrite) machine.mmio.write(x.gpa, x.len, x.data);
        else v.completeMmioRead(machine.mmio.read(x.gpa, x.len));
      }
      const stop = machine.guestStop();
      if (stop) { finish(stop.reason, stop.status, stop.message); return; }
      Atomics.store(ctl, CTL_SLOT + cpu, 2);
      Atomics.notify(ctl, CTL_SLOT + cpu);
    };

    let idleCheck: ReturnType<typeof setTimeout> | undefined;
    const allIdle = (): boolean => {
      for (let i = 0; i < n; i++) if (Atomics.load(ctl, CTL_IDLE + i) !== 1) return false;
      return true;
    };
    const onIdle = (): void => {
      if (idleCheck || !allIdle()) return;
      const kicks = Atomics.load(ctl, CTL_KICKS);
      idleCheck = setTimeout(() => {
        idleCheck = undefined;
        if (allIdle() && Atomics.load(ctl, CTL_KICKS) === kicks) {
          finish("halted", 1, "every vCPU sleeps (HLT with no timer, or waiting for SIPI) and nothing can wake one");
        }
      }, 50);
    };

    for (let i = 0; i < n; i++) {
      const init: WorkerInit = {
        module: machine.opts.module, memory: vm.memory, ctl: ctlBuf, index: i, vmBase: vm.vmBase,
        vcpuBases: vm.vcpus.map((v) => v.base),
        mmu: { mode: vm.mmu.mode, layout: vm.mmu.layout, knobs: vm.mmu.knobs },
      };
      const w = new Worker(file, { workerData: init });
      w.on("message", (m: WorkerMessage) => {
        if (finished) return;
        if (m.t === "exit") handleExit(m.cpu);
        else if (m.t === "idle") onIdle();
        else if (m.t === "stop") finish(m.reason, m.status, m.message);
        else if (m.t === "error") finish("internal-error", 1, undefined, new Error(`vCPU ${m.cpu} worker failed: ${m.message}`));
      });
      w.on("error", (e) => finish("internal-error", 1, undefined, e));
      workers.push(w);
    }
    const timeoutMs = machine.opts.timeoutMs;
    if (limit > 0n || timeoutMs !== undefined) {
      timer = setInterval(() => {
        if (limit > 0n && smp.instructions() >= limit) finish("instruction-limit", 1, `stopped after about ${limit} instructions (--max-instructions; parallel vCPUs stop within a few ms)`);
        else if (timeoutMs !== undefined && performance.now() - start >= timeoutMs) finish("timeout", 1, timeoutMessage(timeoutMs, vm.vcpus[0]!.rip));
      }, 10);
    }
  });
}
