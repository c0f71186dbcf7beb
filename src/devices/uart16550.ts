/**
 * A 16550A UART (COM1 at 0x3f8 by default), modelled on QEMU's hw/char/serial.c,
 * transmit side only.
 *
 * - THR writes go out at once through `onTransmit(byte)`; the transmitter is always
 *   idle, so LSR always reads THRE|TEMT (0x60) and polling loops finish at once.
 * - No input: RBR reads 0 and LSR.DR is never set. In loopback mode (MCR bit 4)
 *   transmitted bytes are dropped (real hardware would receive them) and MSR
 *   reflects the MCR outputs as on real hardware (some probes check that).
 * - IER/IIR follow QEMU: with IER.THRI set, IIR reports "THR empty" (0x02) after
 *   a transmit or an IER write until IIR is read; IIR bits 6-7 are set while the
 *   FIFOs are enabled (FCR bit 0). `irqLevel` and `onIrq` expose the IRQ line
 *   (COM1 is IRQ 4) for when there is an interrupt controller.
 * - Accesses wider than a byte are split into byte accesses, low port first (QEMU
 *   declares the device byte-only).
 */

import { Shadow86Error } from "../errors.js";
import type { IoDevice, IoSize } from "./io_bus.js";

export const COM1_BASE = 0x3f8;
export const COM1_IRQ = 4;
export const UART_PORT_COUNT = 8;

// Register offsets.
export const UART_RX = 0; // RBR (read), THR (write), DLL (DLAB)
export const UART_IER = 1; // IER, DLM (DLAB)
export const UART_IIR = 2; // IIR (read), FCR (write)
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_LCR_DLAB = 0x80;
export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IER_MSI = 0x08;
export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_ID = 0x06;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_FE = 0xc0;
export const UART_FCR_FE = 0x01;
export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;
export const UART_LSR_DR = 0x01;
export const UART_LSR_BI = 0x10;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_DCD = 0x80;
export const UART_MSR_ANY_DELTA = 0x0f;

/** The UART's registers, for migration. Plain numbers so it serialises as JSON. */
export interface UartState {
  version: 1;
  divisor: number;
  rbr: number;
  ier: number;
  iir: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  thrIpending: boolean;
}

export interface UartOptions {
  /** First port (default 0x3f8). */
  base?: number;
  /** Called with each byte the guest transmits. */
  onTransmit?: (byte: number) => void;
  /** Called when the interrupt line changes level. */
  onIrq?: (level: boolean) => void;
}

export class Uart16550 implements IoDevice {
  readonly base: number;
  onTransmit: (byte: number) => void;
  onIrq: ((level: boolean) => void) | null;
  /** Bytes transmitted since creation (also counts bytes dropped in loopback). */
  txCount = 0;

  private divisor = 0;
  private rbr = 0;
  private ier = 0;
  private iir = 0;
  private lcr = 0;
  private mcr = 0;
  private lsr = 0;
  private msr = 0;
  private scr = 0;
  private fcr = 0;
  private thrIpending = false;
  private irq = false;

  constructor(opts: UartOptions = {}) {
    this.base = opts.base ?? COM1_BASE;
    this.onTransmit = opts.onTransmit ?? (() => {});
    this.onIrq = opts.onIrq ?? null;
    this.reset();
  }

  /** Power-on state (QEMU's serial_reset): 9600 8N1, OUT2 set, CTS/DSR/DCD asserted. */
  reset(): void {
    this.divisor = 0x0c;
    this.rbr = 0;
    this.ier = 0;
    this.iir = UART_IIR_NO_INT;
    this.lcr = 0;
    this.mcr = UART_MCR_OUT2;
    this.lsr = UART_LSR_TEMT | UART_LSR_THRE;
    this.msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
    this.scr = 0;
    this.fcr = 0;
    this.thrIpending = false;
    this.setIrq(false);
  }

  get irqLevel(): boolean {
    return this.irq;
  }

  ioRead(port: number, size: IoSize): number {
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.readByte((port + i - this.base) & 7) << (8 * i);
    return v >>> 0;
  }

  ioWrite(port: number, size: IoSize, value: number): void {
    for (let i = 0; i < size; i++) this.writeByte((port + i - this.base) & 7, (value >>> (8 * i)) & 0xff);
  }

  private readByte(reg: number): number {
    switch (reg) {
      case UART_RX:
        if (this.lcr & UART_LCR_DLAB) return this.divisor & 0xff;
        this.lsr &= ~(UART_LSR_DR | UART_LSR_BI);
        this.updateIrq();
        return this.rbr;
      case UART_IER:
        return this.lcr & UART_LCR_DLAB ? (this.divisor >> 8) & 0xff : this.ier;
      case UART_IIR: {
        const ret = this.iir;
        if ((ret & UART_IIR_ID) === UART_IIR_THRI) {
          this.thrIpending = false;
          this.updateIrq();
        }
        return ret;
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR:
        return this.lsr;
      case UART_MSR: {
        if (this.mcr & UART_MCR_LOOP) {
          // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
          return ((this.mcr & 0x0c) << 4) | ((this.mcr & UART_MCR_RTS) << 3) | ((this.mcr & UART_MCR_DTR) << 5);
        }
        const ret = this.msr;
        if (this.msr & UART_MSR_ANY_DELTA) {
          this.msr &= 0xf0;
          this.updateIrq();
        }
        return ret;
      }
      default: // UART_SCR
        return this.scr;
    }
  }

  private writeByte(reg: number, v: number): void {
    switch (reg) {
      case UART_RX:
        if (this.lcr & UART_LCR_DLAB) {
          this.divisor = (this.divisor & 0xff00) | v;
          return;
        }
        this.txCount++;
        if (!(this.mcr & UART_MCR_LOOP)) this.onTransmit(v);
        // The byte is gone at once: THR and the shift register are empty again.
        this.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
        this.thrIpending = true;
        this.updateIrq();
        return;
      case UART_IER:
        if (this.lcr & UART_LCR_DLAB) {
          this.divisor = (this.divisor & 0x00ff) | (v << 8);
          return;
        }
        this.ier = v & 0x0f;
        if (this.lsr & UART_LSR_THRE) this.thrIpending = true;
        this.updateIrq();
        return;
      case UART_IIR: // FCR
        if (v === this.fcr) return;
        if (v & UART_FCR_FE) this.iir |= UART_IIR_FE;
        else this.iir &= ~UART_IIR_FE;
        this.fcr = v & 0xc9; // the bits that stick: FE, DMA mode, trigger level
        this.updateIrq();
        return;
      case UART_LCR:
        this.lcr = v;
        return;
      case UART_MCR:
        this.mcr = v & 0x1f;
        return;
      case UART_LSR:
      case UART_MSR:
        return; // read-only
      default: // UART_SCR
        this.scr = v;
        return;
    }
  }

  private updateIrq(): void {
    let id = UART_IIR_NO_INT;
    if (this.ier & UART_IER_THRI && this.thrIpending) id = UART_IIR_THRI;
    else if (this.ier & UART_IER_MSI && this.msr & UART_MSR_ANY_DELTA) id = UART_IIR_MSI;
    this.iir = id | (this.iir & 0xf0);
    this.setIrq(id !== UART_IIR_NO_INT);
  }

  private setIrq(level: boolean): void {
    if (level === this.irq) return;
    this.irq = level;
    this.onIrq?.(level);
  }

  saveState(): UartState {
    return {
      version: 1,
      divisor: this.divisor,
      rbr: this.rbr,
      ier: this.ier,
      iir: this.iir,
      lcr: this.lcr,
      mcr: this.mcr,
      lsr: this.lsr,
      msr: this.msr,
      scr: this.scr,
      fcr: this.fcr,
      thrIpending: this.thrIpending,
    };
  }

  /** Restore registers saved by `saveState`; a malformed state is a Shadow86Error and changes nothing. */
  loadState(state: unknown): void {
    const bad = (what: string): never => {
      throw new Shadow86Error("uart16550 state", what);
    };
    if (typeof state !== "object" || state === null) bad("not an object");
    const s = state as Record<string, unknown>;
    if (s.version !== 1) bad(`unsupported version ${String(s.version)} (expected 1)`);
    const byte = (k: string, max = 0xff): number => {
      const v = s[k];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) bad(`${k} is ${String(v)}, expected an integer 0..${max}`);
      return v as number;
    };
    if (typeof s.thrIpending !== "boolean") bad(`thrIpending is ${String(s.thrIpending)}, expected a boolean`);
    // Validate everything before touching the device.
    const divisor = byte("divisor", 0xffff);
    const rbr = byte("rbr");
    const ier = byte("ier", 0x0f);
    const iir = byte("iir");
    const lcr = byte("lcr");
    const mcr = byte("mcr", 0x1f);
    const lsr = byte("lsr");
    const msr = byte("msr");
    const scr = byte("scr");
    const fcr = byte("fcr");
    this.divisor = divisor;
    this.rbr = rbr;
    this.ier = ier;
    this.iir = iir;
    this.lcr = lcr;
    this.mcr = mcr;
    this.lsr = lsr;
    this.msr = msr;
    this.scr = scr;
    this.fcr = fcr;
    this.thrIpending = s.thrIpending as boolean;
    this.updateIrq();
  }
}
