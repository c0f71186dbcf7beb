/**
 * The two 8259 PICs, as far as a test kernel that only masks them needs:
 * initialisation words are accepted, OCW1 (the mask) reads back, nothing is
 * ever raised through them.
 */
import type { IoDevice, IoSize } from "./io_bus.js";

export class Pic8259 implements IoDevice {
  private imr = 0;
  private icwStep = 0;

  ioRead(port: number, _size: IoSize): number {
    return (port & 1) === 1 ? this.imr : 0; // IRR/ISR read as 0: no interrupt pending
  }

  ioWrite(port: number, _size: IoSize, value: number): void {
    if ((port & 1) === 0) {
      if (value & 0x10) this.icwStep = 1; // ICW1 starts initialisation
      return; // OCW2/OCW3 (EOI, read-register select): nothing to do
    }
    if (this.icwStep > 0 && this.icwStep < 4) { this.icwStep++; if (this.icwStep === 4) this.icwStep = 0; return; }
    this.imr = value & 0xff;
  }
}
