// Trace events: a per-vCPU ring buffer in linear memory that the host drains
// after each run() (src/trace/). Off by default: an event site costs one
// load and a branch. Each event is 32 bytes:
//   u64 icount (guest instruction count: the event's time)
//   u32 kind (TRACE_*), u32 a
//   u64 b, u64 c
import { VCPU, VCPU_TRACE_ENABLED, VCPU_TRACE_HEAD, VCPU_TRACE_RING, VCPU_TRACE_MASK, icount } from "./cpu/state";

export const TRACE_EVENT_SIZE: i32 = 32;
export const TRACE_PF_FIXED: u32 = 1; // a = error code, b = gva, c = gpa: a shadow page fault installed sptes
export const TRACE_PF_GUEST: u32 = 2; // a = error code, b = gva: #PF injected into the guest
export const TRACE_ZAP: u32 = 3; // a = level, b = gfn: a shadow page zapped
export const TRACE_TLB_FLUSH: u32 = 4; // a = 1 if global pages were kept
export const TRACE_CR3: u32 = 5; // a = 1 on a prev_roots hit, b = new cr3
export const TRACE_INVLPG: u32 = 6; // b = gva
export const TRACE_EXCEPTION: u32 = 7; // a = vector, b = rip, c = error code
export const TRACE_PT_WRITE: u32 = 8; // a = size, b = gpa, c = value

export function trace(kind: u32, a: u32, b: u64, c: u64): void {
  if (load<u32>(VCPU + VCPU_TRACE_ENABLED) == 0) return;
  const head = load<u32>(VCPU + VCPU_TRACE_HEAD);
  const e = <usize>load<u32>(VCPU + VCPU_TRACE_RING) + (<usize>(head & load<u32>(VCPU + VCPU_TRACE_MASK)) << 5);
  store<u64>(e, icount);
  store<u32>(e + 8, kind);
  store<u32>(e + 12, a);
  store<u64>(e + 16, b);
  store<u64>(e + 24, c);
  store<u32>(VCPU + VCPU_TRACE_HEAD, head + 1);
}
