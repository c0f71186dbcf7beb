import { writeSync } from "node:fs";

/** The guest's COM1 output on stdout, byte for byte, flushed per line. */
export class SerialOut {
  private buf = Buffer.alloc(1 << 16);
  private n = 0;
  push(b: number): void {
    this.buf[this.n++] = b;
    if (this.n === this.buf.length || b === 0x0a) this.flush();
  }
  flush(): void {
    let off = 0;
    while (off < this.n) off += writeSync(1, this.buf, off, this.n - off);
    this.n = 0;
  }
}
