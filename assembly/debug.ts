// Decoder probes for tests (decoder vs. an independent disassembler).
import { decode, opcode, modrm, mod_, reg, rm, imm, ea_off, opsize, addrsize, next_ip, ip_start } from "./cpu/decode";
import { clear_fault, faulted } from "./cpu/fault";
import { update_mode } from "./cpu/mode";

// Decode the instruction at `rip` (in the bound vCPU's current mode) and
// return its length, or -1 if decoding faulted.
export function decode_length(rip: u64): i32 {
  update_mode();
  clear_fault();
  const ok = decode(rip);
  if (!ok || faulted()) { clear_fault(); return -1; }
  return <i32>(next_ip - ip_start);
}
// Fields of the last decode: 0 opcode, 1 modrm, 2 mod, 3 reg, 4 rm,
// 5 opsize, 6 addrsize, 7 imm (low 32), 8 imm (high 32), 9 ea offset (low 32).
export function decoded_field(i: i32): i32 {
  switch (i) {
    case 0: return opcode;
    case 1: return modrm;
    case 2: return mod_;
    case 3: return reg;
    case 4: return rm;
    case 5: return opsize;
    case 6: return addrsize;
    case 7: return <i32>imm;
    case 8: return <i32>(imm >> 32);
    case 9: return <i32>ea_off;
    default: return 0;
  }
}
