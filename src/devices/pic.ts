/**
 * The two 8259 PICs, as far as a test kernel that only masks them needs:
 * initialisation words are accepted, OCW1 (the mask) reads back, nothing is
 * ever raised through them.
 */
import type { IoDevice, IoSize } from "./io_bus.js";
import { Shadow86Error } from "../errors.js";

/** The PIC's state, for migration. */
export interface PicState { version: 1; imr: number; icwStep: number; }

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

  saveState(): PicState { return { version: 1, imr: this.imr, icwStep: this.icwStep }; }

  /** Restore what `saveState` returned; a malformed state is a Shadow86Error and changes nothing. */
  loadState(state: unknown): void {
    const s = (state ?? {}) as Partial<Record<keyof PicState, unknown>>;
    const int = (v: unknown, max: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
    if (s.version !== 1 || !int(s.imr, 0xff) || !int(s.icwStep, 3)) throw new Shadow86Error("pic8259 state", `malformed: ${JSON.stringify(state)}`);
    this.imr = s.imr;
    this.icwStep = s.icwStep;
  }
}
