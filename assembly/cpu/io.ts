// Port I/O: in/out (imm8 and DX forms). Every port access is an exit to the
// host (KVM_EXIT_IO); OUT completes and then exits, IN exits first and is
// restarted with the host's data latched (see fault.ts ABORT).
import {
  VCPU, VCPU_PENDING_IO, EXIT_IO, EXIT_IO_DIRECTION, EXIT_IO_SIZE, EXIT_IO_PORT, EXIT_IO_DATA,
  IOPL_MASK, VM, reg_read, reg_write, reg16, stat_inc, SEG_TR, seg_base, seg_limit, seg_attr,
} from "./state";
import { imm, opsize } from "./decode";
import { set_exit_pending, read_sys16 } from "./mem";
import { raise_abort, raise_gp, faulted } from "./fault";
import { get_eflags } from "./flags";
import { cpl, protected_mode, mode64 } from "./mode";
import { STAT_IO_EXITS } from "../stats";

// I/O permission (SDM vol. 1, 19.5): in protected mode with CPL > IOPL (or
// in virtual-8086 mode) every bit of the TSS I/O bitmap covering the access
// must be 0; the bitmap must lie within the limit of a 32/64-bit TSS.
// Anything else is #GP(0).
export function io_allowed(port: u32, size: i32): bool {
  if (!protected_mode) return true;
  const fl = get_eflags();
  if ((fl & VM) == 0 && <u32>cpl <= ((fl & IOPL_MASK) >> 12)) return true;
  const ta = seg_attr(SEG_TR);
  const type = ta & 0x1f; // with S, which must be 0
  if ((ta & 0x80) == 0 || (type != 9 && type != 11)) { raise_gp(0); return false; }
  const tss = seg_base(SEG_TR);
  const limit = <u64>seg_limit(SEG_TR);
  if (limit < 0x67) { raise_gp(0); return false; }
  const bitmap = <u64>read_sys16(tss + 0x66);
  if (faulted()) return false;
  const byte = bitmap + <u64>(port >> 3);
  if (byte + 1 > limit) { raise_gp(0); return false; }
  const bits = read_sys16(tss + byte); // two bytes: the access may straddle
  if (faulted()) return false;
  const mask: u32 = ((1 << size) - 1) << (port & 7);
  if ((bits & mask) != 0) { raise_gp(0); return false; }
  return true;
}

// IN: returns the data once the host has supplied it; otherwise requests it.
export function port_in(port: u32, size: i32): u64 {
  if (load<u32>(VCPU + VCPU_PENDING_IO) == 1 && load<u32>(VCPU + EXIT_IO_PORT) == port) {
    store<u32>(VCPU + VCPU_PENDING_IO, 0);
    const v = <u64>load<u32>(VCPU + EXIT_IO_DATA);
    return size == 4 ? v : v & ((<u64>1 << (<u64>size << 3)) - 1);
  }
  store<u32>(VCPU + EXIT_IO_DIRECTION, 0);
  store<u32>(VCPU + EXIT_IO_SIZE, size);
  store<u32>(VCPU + EXIT_IO_PORT, port);
  store<u32>(VCPU + EXIT_IO_DATA, 0);
  set_exit_pending(EXIT_IO);
  stat_inc(STAT_IO_EXITS);
  raise_abort();
  return 0;
}
export function port_out(port: u32, size: i32, v: u64): void {
  store<u32>(VCPU + EXIT_IO_DIRECTION, 1);
  store<u32>(VCPU + EXIT_IO_SIZE, size);
  store<u32>(VCPU + EXIT_IO_PORT, port);
  store<u32>(VCPU + EXIT_IO_DATA, <u32>v);
  set_exit_pending(EXIT_IO);
  stat_inc(STAT_IO_EXITS);
}

@inline function io_size(byte: i32): i32 { return byte != 0 ? 1 : (opsize == 2 ? 2 : 4); }

export function in_imm(byte: i32): void {
  const size = io_size(byte);
  const port = <u32>(imm & 0xff);
  if (!io_allowed(port, size)) return;
  const v = port_in(port, size);
  if (!faulted()) reg_write(0, size, false, v);
}
export function in_dx(byte: i32): void {
  const size = io_size(byte);
  const port = reg16(2);
  if (!io_allowed(port, size)) return;
  const v = port_in(port, size);
  if (!faulted()) reg_write(0, size, false, v);
}
export function out_imm(byte: i32): void {
  const size = io_size(byte);
  const port = <u32>(imm & 0xff);
  if (!io_allowed(port, size)) return;
  port_out(port, size, reg_read(0, size, false));
}
export function out_dx(byte: i32): void {
  const size = io_size(byte);
  const port = reg16(2);
  if (!io_allowed(port, size)) return;
  port_out(port, size, reg_read(0, size, false));
}
