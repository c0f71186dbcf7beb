/**
 * QEMU's fw_cfg, the traditional I/O interface: a 16-bit selector written to
 * port 0x510 and a byte-wide data port 0x511 that reads the selected item from
 * offset 0 onwards (past its end reads 0). Items as in QEMU's
 * docs/specs/fw_cfg.rst: signature "QEMU", ID (traditional interface only),
 * RAM size, CPU counts, and an empty file directory.
 */
import type { IoDevice, IoSize } from "./io_bus.js";
import { Shadow86Error } from "../errors.js";

/** fw_cfg's guest-visible state, for migration (the items follow from the machine's configuration). */
export interface FwCfgState { version: 1; selector: number; offset: number; }

export const FW_CFG_PORT_SEL = 0x510;
export const FW_CFG_PORT_DATA = 0x511;
export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_FILE_DIR = 0x19;

export class FwCfg implements IoDevice {
  private readonly items = new Map<number, Uint8Array>();
  private selector = 0;
  private offset = 0;

  constructor(opts: { ramSize: number; cpus: number }) {
    this.items.set(FW_CFG_SIGNATURE, new TextEncoder().encode("QEMU"));
    this.items.set(FW_CFG_ID, le(1, 4)); // bit 0: traditional interface; no DMA
    this.items.set(FW_CFG_RAM_SIZE, le(opts.ramSize, 8));
    this.items.set(FW_CFG_NB_CPUS, le(opts.cpus, 2));
    this.items.set(FW_CFG_MAX_CPUS, le(opts.cpus, 2));
    this.items.set(FW_CFG_FILE_DIR, new Uint8Array(4)); // big-endian count 0: no files
  }

  ioRead(port: number, size: IoSize): number {
    if (port !== FW_CFG_PORT_DATA) return 0;
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.nextByte() << (8 * i);
    return v >>> 0;
  }

  ioWrite(port: number, size: IoSize, value: number): void {
    if (port === FW_CFG_PORT_SEL && size >= 2) { this.selector = value & 0xffff; this.offset = 0; }
    else if (port === FW_CFG_PORT_SEL && size === 1) { this.selector = (this.selector & 0xff00) | value; this.offset = 0; }
  }

  saveState(): FwCfgState { return { version: 1, selector: this.selector, offset: this.offset }; }

  /** Restore what `saveState` returned; a malformed state is a Shadow86Error and changes nothing. */
  loadState(state: unknown): void {
    const s = (state ?? {}) as Partial<Record<keyof FwCfgState, unknown>>;
    const int = (v: unknown, max: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;
    if (s.version !== 1 || !int(s.selector, 0xffff) || !int(s.offset, 0xffffffff)) throw new Shadow86Error("fw_cfg state", `malformed: ${JSON.stringify(state)}`);
    this.selector = s.selector;
    this.offset = s.offset;
  }

  private nextByte(): number {
    const item = this.items.get(this.selector & 0x3fff);
    if (!item || this.offset >= item.length) return 0;
    return item[this.offset++]!;
  }
}

function le(v: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = BigInt(v);
  for (let i = 0; i < n; i++) { out[i] = Number(x & 0xffn); x >>= 8n; }
  return out;
}
