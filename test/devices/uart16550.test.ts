import { describe, expect, it } from "vitest";
import { IoBus } from "../../src/devices/io_bus.js";
import { COM1_BASE, Uart16550, type UartState } from "../../src/devices/uart16550.js";
import { Shadow86Error } from "../../src/errors.js";

function setup() {
  const out: number[] = [];
  const irqs: boolean[] = [];
  const uart = new Uart16550({ onTransmit: (b) => out.push(b), onIrq: (l) => irqs.push(l) });
  const bus = new IoBus();
  bus.register(uart.base, 8, uart, "uart16550");
  const text = () => String.fromCharCode(...out);
  return { uart, bus, out, irqs, text };
}

const B = COM1_BASE;

describe("Uart16550", () => {
  it("transmits THR writes and always reports the transmitter empty", () => {
    const { bus, text } = setup();
    expect(bus.read(B + 5, 1)).toBe(0x60);
    for (const c of "hi\n") {
      while (!(bus.read(B + 5, 1) & 0x20)) {}
      bus.write(B, 1, c.charCodeAt(0));
    }
    expect(text()).toBe("hi\n");
    expect(bus.read(B + 5, 1)).toBe(0x60);
  });

  it("has QEMU's reset values", () => {
    const { bus } = setup();
    expect(bus.read(B + 1, 1)).toBe(0); // IER
    expect(bus.read(B + 2, 1)).toBe(0x01); // IIR: no interrupt
    expect(bus.read(B + 3, 1)).toBe(0); // LCR
    expect(bus.read(B + 4, 1)).toBe(0x08); // MCR: OUT2
    expect(bus.read(B + 6, 1)).toBe(0xb0); // MSR: DCD DSR CTS
    expect(bus.read(B + 7, 1)).toBe(0); // SCR
    expect(bus.read(B + 0, 1)).toBe(0); // RBR: no input
  });

  it("runs the usual init sequence: divisor latch, 8N1, FIFO, modem control", () => {
    const { bus, out, uart } = setup();
    bus.write(B + 1, 1, 0x00); // IER off
    bus.write(B + 3, 1, 0x80); // DLAB
    bus.write(B + 0, 1, 0x03); // DLL: 38400 baud
    bus.write(B + 1, 1, 0x00); // DLM
    expect(bus.read(B + 0, 1)).toBe(0x03);
    expect(bus.read(B + 1, 1)).toBe(0x00);
    bus.write(B + 3, 1, 0x03); // 8N1, DLAB off
    bus.write(B + 2, 1, 0xc7); // FIFO on, clear, 14-byte trigger
    bus.write(B + 4, 1, 0x0b); // DTR RTS OUT2
    expect(out).toEqual([]); // divisor writes are not data
    expect(bus.read(B + 3, 1)).toBe(0x03);
    expect(bus.read(B + 2, 1)).toBe(0xc1); // FIFOs enabled, no interrupt
    expect(bus.read(B + 4, 1)).toBe(0x0b);
    expect(uart.saveState().divisor).toBe(3);
    expect(uart.saveState().fcr).toBe(0xc1);
    bus.write(B + 2, 1, 0x00); // FIFO off
    expect(bus.read(B + 2, 1)).toBe(0x01);
  });

  it("keeps the scratch register and ignores writes to LSR and MSR", () => {
    const { bus } = setup();
    bus.write(B + 7, 1, 0x5a);
    expect(bus.read(B + 7, 1)).toBe(0x5a);
    bus.write(B + 5, 1, 0);
    bus.write(B + 6, 1, 0);
    expect(bus.read(B + 5, 1)).toBe(0x60);
    expect(bus.read(B + 6, 1)).toBe(0xb0);
  });

  it("masks IER to 4 bits and MCR to 5 bits", () => {
    const { bus } = setup();
    bus.write(B + 1, 1, 0xf0);
    expect(bus.read(B + 1, 1)).toBe(0);
    bus.write(B + 4, 1, 0xff);
    expect(bus.read(B + 4, 1)).toBe(0x1f);
  });

  it("raises the THR-empty interrupt when enabled, clears it on an IIR read", () => {
    const { bus, uart, irqs } = setup();
    bus.write(B + 1, 1, 0x02); // IER.THRI
    expect(uart.irqLevel).toBe(true);
    expect(bus.read(B + 2, 1)).toBe(0x02);
    expect(uart.irqLevel).toBe(false);
    expect(bus.read(B + 2, 1)).toBe(0x01);
    bus.write(B, 1, 0x41);
    expect(uart.irqLevel).toBe(true);
    bus.write(B + 1, 1, 0x00);
    expect(uart.irqLevel).toBe(false);
    expect(irqs).toEqual([true, false, true, false]);
  });

  it("drops output in loopback and mirrors MCR in MSR", () => {
    const { bus, out, uart } = setup();
    bus.write(B + 4, 1, 0x1e); // LOOP | OUT2 | OUT1 | RTS
    bus.write(B, 1, 0x41);
    expect(out).toEqual([]);
    expect(uart.txCount).toBe(1);
    expect(bus.read(B + 6, 1)).toBe(0xd0); // DCD RI CTS
    bus.write(B + 4, 1, 0x11); // LOOP | DTR
    expect(bus.read(B + 6, 1)).toBe(0x20); // DSR
  });

  it("splits wide accesses into byte accesses", () => {
    const { bus, out } = setup();
    bus.write(B + 7, 1, 0x99);
    expect(bus.read(B + 4, 2)).toBe(0x6008); // MCR, LSR
    expect(bus.read(B + 5, 2)).toBe(0xb060); // LSR, MSR
    expect(bus.read(B + 4, 4)).toBe(0x99b06008); // MCR, LSR, MSR, SCR
    out.length = 0;
    bus.write(B, 2, 0x4241); // THR <- 'A', IER <- 0x42 & 0xf
    expect(out).toEqual([0x41]);
    expect(bus.read(B + 1, 1)).toBe(0x02);
  });

  it("saves and restores its registers", () => {
    const a = setup();
    a.bus.write(B + 3, 1, 0x80);
    a.bus.write(B, 1, 0x01);
    a.bus.write(B + 3, 1, 0x1b);
    a.bus.write(B + 2, 1, 0x01);
    a.bus.write(B + 7, 1, 0x77);
    a.bus.write(B + 1, 1, 0x02);
    const state = a.uart.saveState();
    const json = JSON.parse(JSON.stringify(state)) as UartState;
    const b = setup();
    b.uart.loadState(json);
    expect(b.uart.saveState()).toEqual(state);
    expect(b.uart.irqLevel).toBe(true);
    for (const r of [1, 3, 4, 5, 6, 7]) expect(b.bus.read(B + r, 1)).toBe(a.bus.read(B + r, 1));
    b.bus.write(B + 3, 1, 0x9b);
    expect(b.bus.read(B, 1)).toBe(0x01);
  });

  it("rejects a malformed saved state without changing anything", () => {
    const { uart } = setup();
    const before = uart.saveState();
    expect(() => uart.loadState(null)).toThrow(Shadow86Error);
    expect(() => uart.loadState({ ...before, version: 2 })).toThrow(/unsupported version 2/);
    expect(() => uart.loadState({ ...before, scr: 300 })).toThrow(/scr is 300/);
    expect(() => uart.loadState({ ...before, lcr: 0x80, mcr: "x" })).toThrow(/mcr is x/);
    expect(() => uart.loadState({ ...before, thrIpending: 1 })).toThrow(/thrIpending/);
    expect(uart.saveState()).toEqual(before);
  });
});
