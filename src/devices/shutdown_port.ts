/**
 * The Bochs/QEMU "Shutdown" port 0x8900: writing the string "Shutdown" to it
 * powers the machine off (exit status 0, like QEMU).
 */
import type { IoDevice, IoSize } from "./io_bus.js";

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
}
