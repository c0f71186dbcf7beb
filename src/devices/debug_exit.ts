/**
 * QEMU's isa-debug-exit device (hw/misc/debugexit.c), as guest images use it:
 * `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
 *
 * A write of value v (8, 16 or 32 bits, at any port of the range) makes QEMU call
 * exit((v << 1) | 1); the process exit status is the low 8 bits of that, so
 * status = ((v << 1) | 1) & 0xff: always odd, and v = 0 gives 1. A guest that
 * means "pass" conventionally writes 0x10 (status 33) or similar and the test
 * harness maps it. Reads return 0.
 */

import type { IoDevice, IoSize } from "./io_bus.js";
import { Shadow86Error } from "../errors.js";

/** The first exit request (if any), for migration. */
export interface DebugExitState { version: 1; exitStatus: number | null; exitValue: number | null; }

export const DEBUG_EXIT_IOBASE = 0xf4;
export const DEBUG_EXIT_IOSIZE = 4;

/** The host exit status QEMU produces for a write of `value` to isa-debug-exit. */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) & 0xff;
}

export interface DebugExitOptions {
  iobase?: number;
  iosize?: number;
  /** Called on every write with the exit status the guest asked for. */
  onExit?: (status: number) => void;
}

export class DebugExit implements IoDevice {
  readonly iobase: number;
  readonly iosize: number;
  onExit: (status: number) => void;
  /** The status of the first exit request, or null while none has been made. */
  exitStatus: number | null = null;
  /** The raw value the guest wrote with that first request. */
  exitValue: number | null = null;

  constructor(opts: DebugExitOptions = {}) {
    this.iobase = opts.iobase ?? DEBUG_EXIT_IOBASE;
    this.iosize = opts.iosize ?? DEBUG_EXIT_IOSIZE;
    this.onExit = opts.onExit ?? (() => {});
  }

  ioRead(_port: number, _size: IoSize): number {
    return 0;
  }

  ioWrite(_port: number, _size: IoSize, value: number): void {
    const status = debugExitStatus(value);
    if (this.exitStatus === null) {
      this.exitStatus = status;
      this.exitValue = value >>> 0;
    }
    this.onExit(status);
  }

  saveState(): DebugExitState { return { version: 1, exitStatus: this.exitStatus, exitValue: this.exitValue }; }

  /** Restore what `saveState` returned (does not call onExit); a malformed state is a Shadow86Error. */
  loadState(state: unknown): void {
    const s = (state ?? {}) as Partial<Record<keyof DebugExitState, unknown>>;
    const ok = (v: unknown, max: number) => v === null || (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max);
    if (s.version !== 1 || !ok(s.exitStatus, 0xff) || !ok(s.exitValue, 0xffffffff)) throw new Shadow86Error("isa-debug-exit state", `malformed: ${JSON.stringify(state)}`);
    this.exitStatus = s.exitStatus as number | null;
    this.exitValue = s.exitValue as number | null;
  }
}
