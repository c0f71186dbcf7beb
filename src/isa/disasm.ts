/** Disassembly for messages and traces, by iced-x86 (an independent decoder). */
import { createRequire } from "node:module";

type Iced = typeof import("iced-x86");
let iced: Iced | undefined;
function load(): Iced | undefined {
  if (iced) return iced;
  try {
    iced = createRequire(import.meta.url)("iced-x86") as Iced;
  } catch {
    return undefined;
  }
  return iced;
}

/** Intel-syntax text of the first instruction in `bytes`, or undefined if it does not decode. */
export function disassemble(bytes: Uint8Array, bitness: 16 | 32 | 64, rip = 0n): string | undefined {
  const x = load();
  if (!x || bytes.length === 0) return undefined;
  const decoder = new x.Decoder(bitness, bytes, x.DecoderOptions.None);
  decoder.ip = rip;
  const insn = decoder.decode();
  const formatter = new x.Formatter(x.FormatterSyntax.Intel);
  try {
    if (insn.code === x.Code.INVALID) return undefined;
    return formatter.format(insn);
  } finally {
    insn.free();
    formatter.free();
    decoder.free();
  }
}
