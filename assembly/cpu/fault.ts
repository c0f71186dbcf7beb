// Faults raised while an instruction executes. WebAssembly has no longjmp, so
// a fault is recorded here and every handler checks `faulted()` after each
// memory access or check that can fault, before it commits any register: the
// run loop then rewinds RIP to the instruction and delivers the exception.
//
// ABORT is not an exception: it stops the instruction so the host can supply
// data (an IN or an MMIO read); the instruction restarts from scratch on the
// next run() and then finds its data latched.

export const DE: i32 = 0;
export const DB: i32 = 1;
export const NMI: i32 = 2;
export const BP: i32 = 3;
export const OFV: i32 = 4; // #OF (overflow); OF is the flag
export const BR: i32 = 5;
export const UD: i32 = 6;
export const NM: i32 = 7;
export const DF_VEC: i32 = 8; // #DF; DF is the flag
export const TS: i32 = 10;
export const NP: i32 = 11;
export const SS_VEC: i32 = 12;
export const GP: i32 = 13;
export const PF_VEC: i32 = 14;
export const MF: i32 = 16;
export const AC_VEC: i32 = 17;
export const MC: i32 = 18;
export const XM: i32 = 19;
export const ABORT: i32 = 256; // host data needed (see above)
export const UNIMPLEMENTED: i32 = 257; // the interpreter lacks this instruction

// #PF error code bits (SDM vol. 3, 4.7)
export const PFERR_PRESENT: u32 = 1 << 0;
export const PFERR_WRITE: u32 = 1 << 1;
export const PFERR_USER: u32 = 1 << 2;
export const PFERR_RSVD: u32 = 1 << 3;
export const PFERR_FETCH: u32 = 1 << 4;
export const PFERR_PK: u32 = 1 << 5;

export let exc_vector: i32 = -1;
export let exc_code: u32 = 0;
export let exc_has_code: bool = false;
export let exc_cr2: u64 = 0;

@inline export function faulted(): bool { return exc_vector >= 0; }

export function raise(vector: i32, code: u32, has_code: bool): void {
  if (exc_vector >= 0) return; // first fault of the instruction wins
  exc_vector = vector;
  exc_code = code;
  exc_has_code = has_code;
}
@inline export function raise_ud(): void { raise(UD, 0, false); }
@inline export function raise_gp(code: u32): void { raise(GP, code, true); }
@inline export function raise_ss(code: u32): void { raise(SS_VEC, code, true); }
@inline export function raise_de(): void { raise(DE, 0, false); }
@inline export function raise_np(code: u32): void { raise(NP, code, true); }
@inline export function raise_ts(code: u32): void { raise(TS, code, true); }
export function raise_pf(addr: u64, code: u32): void {
  if (exc_vector >= 0) return;
  exc_cr2 = addr;
  raise(PF_VEC, code, true);
}
@inline export function raise_abort(): void { raise(ABORT, 0, false); }
@inline export function raise_unimplemented(): void { raise(UNIMPLEMENTED, 0, false); }

@inline export function clear_fault(): void { exc_vector = -1; exc_has_code = false; exc_code = 0; }
