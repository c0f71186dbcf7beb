/**
 * Parallel SMP: what the main thread and the vCPU workers share besides the
 * guest's memory. A small control block (SharedArrayBuffer, Int32 words):
 *   CTL_STOP          1 when the machine stops: workers leave their loop
 *   CTL_KICKS         bumped on every IPI / kick (idle detection)
 *   CTL_SLOT + i      vCPU i's device request: 0 idle, 1 waiting for the main
 *                     thread (an IO / MMIO exit it cannot handle itself), 2 done
 *   CTL_IDLE + i      vCPU i sleeps: 0 no, 1 with nothing but an IPI to wake
 *                     it, 2 until its timer
 * Devices live on the main thread: a worker posts {t: "exit"} and waits on its
 * slot; the main thread completes the exit in the shared exit struct, so each
 * vCPU's I/O happens in its program order and serial output stays sensible.
 */
export const CTL_STOP = 0;
export const CTL_KICKS = 1;
export const CTL_SLOT = 8;
export const CTL_IDLE = 16;
export const CTL_WORDS = 32;

/** Clock ticks (instructions) a sleeping vCPU is credited per millisecond of wall time. */
export const IDLE_TICKS_PER_MS = 50_000;
/** Instructions per run() call in a worker (a kick cuts it short). */
export const WORKER_SLICE = 200_000;

export interface WorkerInit {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ctl: SharedArrayBuffer;
  index: number;
  vmBase: number;
  vcpuBases: number[];
  mmu: { mode: "shadow" | "tdp"; layout: unknown; knobs: unknown };
}

export type WorkerMessage =
  | { t: "exit"; cpu: number }
  | { t: "idle"; cpu: number }
  | { t: "stop"; cpu: number; reason: "shutdown" | "internal-error"; status: number; message: string }
  | { t: "error"; cpu: number; message: string };
