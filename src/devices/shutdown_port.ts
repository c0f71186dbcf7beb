/**
 * The Bochs/QEMU "Shutdown" port 0x8900: writing the string "Shutdown" to it
 * powers the machine off (exit status 0, like QEMU).
 */
import type { IoDevice, IoSize } from "./io_bus.js";
import { Shadow86Error } from "../errors.js";

/** What the port has seen of "Shutdown" so far, for migration. */
export interface ShutdownPortState { version: 1; tail: string; }

export const SHUTDOWN_PORT = 0x8900;

export class ShutdownPort implements IoDevice {
  private tail = "";
  constructor(private readonly onPowerOff: () => void) {}
  ioRead(): number { return 0xff; }
  ioWrite(_port: number, size: IoSize, value: number): void {
    for (let i = 0; i < size; i++) {
      this.tail = (this.tail + String.fromCharCode((value >>> (8 * i)) & 0xff)).slice(-8);
      if (this.tail === "Shutdown") { this.tail = ""; this.onPowerOff(); }
    }
  }
  saveState(): ShutdownPortState { return { version: 1, tail: this.tail }; }
  loadState(state: unknown): void {
    const s = (state ?? {}) as Partial<Record<keyof ShutdownPortState, unknown>>;
    if (s.version !== 1 || typeof s.tail !== "string" || s.tail.length > 8) throw new Shadow86Error("shutdown port state", `malformed: ${JSON.stringify(state)}`);
    this.tail = s.tail;
  }
}
