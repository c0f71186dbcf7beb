// CPUID: what this CPU honestly implements (no x87/SSE: guests are built
// -mgeneral-regs-only). Vendor GenuineIntel so QEMU-targeted kernels take
// their Intel paths; the brand string names us.
import { reg_read, set_reg32, VCPU_ID, vcpu_load32, stat_inc, has_feature, FEAT_SMEP, FEAT_SMAP, FEAT_NX, FEAT_PDPE1GB } from "./state";
import { MAXPHYADDR } from "../mmu/walk";
import { STAT_CPUID_EXITS } from "../stats";

// leaf 1 EDX
export const CPUID_1_EDX: u32 =
  (1 << 3) | // PSE
  (1 << 4) | // TSC
  (1 << 5) | // MSR
  (1 << 6) | // PAE
  (1 << 8) | // CX8
  (1 << 9) | // APIC (the machine's xAPIC at 0xFEE00000, src/devices/lapic.ts)
  (1 << 11) | // SEP (sysenter/sysexit)
  (1 << 13) | // PGE
  (1 << 15) | // CMOV
  (1 << 16) | // PAT
  (1 << 17) | // PSE-36
  (1 << 19); // CLFSH
// leaf 1 ECX
export const CPUID_1_ECX: u32 = (1 << 13) | (1 << 23) | (1 << 31); // CX16, POPCNT, hypervisor
// leaf 7 EBX
export const CPUID_7_EBX: u32 = (1 << 7) | (1 << 9) | (1 << 20); // SMEP, ERMS, SMAP
// leaf 0x80000001
export const CPUID_X1_EDX: u32 = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29); // SYSCALL NX 1GB RDTSCP LM
export const CPUID_X1_ECX: u32 = (1 << 0) | (1 << 5); // LAHF-SAHF, LZCNT (ABM)

@inline function s4(a: i32, b: i32, c: i32, d: i32): u32 { return <u32>a | (<u32>b << 8) | (<u32>c << 16) | (<u32>d << 24); }

function brand(i: i32): u32 {
  // "shadow86 x86-64 interpreter" padded with NULs, 48 bytes
  const text = "shadow86 x86-64 interpreter";
  let v: u32 = 0;
  for (let k = 0; k < 4; k++) {
    const idx = i * 4 + k;
    const ch: u32 = idx < text.length ? <u32>text.charCodeAt(idx) : 0;
    v |= ch << (<u32>k * 8);
  }
  return v;
}

export function cpuid(): void {
  stat_inc(STAT_CPUID_EXITS);
  const leaf = <u32>reg_read(0, 4, false);
  const sub = <u32>reg_read(1, 4, false);
  let a: u32 = 0, b: u32 = 0, c: u32 = 0, d: u32 = 0;
  switch (leaf) {
    case 0:
      a = 0xa;
      b = s4(0x47, 0x65, 0x6e, 0x75); // "Genu"
      d = s4(0x69, 0x6e, 0x65, 0x49); // "ineI"
      c = s4(0x6e, 0x74, 0x65, 0x6c); // "ntel"
      break;
    case 1:
      a = 0x000006f1; // family 6, model 15, stepping 1
      b = (vcpu_load32(VCPU_ID) << 24) | (1 << 16) | (8 << 8); // APIC ID, 1 logical CPU, clflush 64 B
      c = CPUID_1_ECX;
      d = CPUID_1_EDX;
      break;
    case 7:
      if (sub == 0) {
        b = CPUID_7_EBX;
        if (!has_feature(FEAT_SMEP)) b &= ~(1 << 7);
        if (!has_feature(FEAT_SMAP)) b &= ~(1 << 20);
      }
      break;
    case 0x80000000: a = 0x80000008; break;
    case 0x80000001:
      c = CPUID_X1_ECX;
      d = CPUID_X1_EDX;
      if (!has_feature(FEAT_NX)) d &= ~(1 << 20);
      if (!has_feature(FEAT_PDPE1GB)) d &= ~(1 << 26);
      break;
    case 0x80000002: case 0x80000003: case 0x80000004: {
      const base = <i32>(leaf - 0x80000002) * 4;
      a = brand(base); b = brand(base + 1); c = brand(base + 2); d = brand(base + 3);
      break;
    }
    case 0x80000008: a = MAXPHYADDR | (48 << 8); break;
    default: break; // unknown and reserved leaves read as zero (leaf 0xA: no PMU)
  }
  set_reg32(0, a); set_reg32(3, b); set_reg32(1, c); set_reg32(2, d);
}
