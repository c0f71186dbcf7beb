// vCPU state: one struct per vCPU in linear memory (the analogue of KVM's
// kvm_vcpu_arch + kvm_run). This file is the single source of truth for its
// layout: TypeScript reads the offsets through the exported VCPU_* / EXIT_*
// constants, never through a hand-copied table.
//
// Per-instance WASM globals (the "current vCPU" pointer, the decoder's scratch
// state, the lazy flags) are fine: each vCPU thread instantiates the module
// once. Anything that must survive an exit, be read by the host or migrate
// lives here.

// ---- general purpose registers: rax rcx rdx rbx rsp rbp rsi rdi r8..r15
export const VCPU_REGS: i32 = 0; // 16 x u64
export const VCPU_RIP: i32 = 128;
export const VCPU_RFLAGS: i32 = 136; // valid whenever run() is not executing

// ---- segment registers: 8 x 16 bytes {selector u16, attr u16, limit u32, base u64}
// attr packs descriptor bits 40..55 like VMX access rights:
//   type[3:0] S[4] DPL[6:5] P[7] AVL[12] L[13] D/B[14] G[15]
export const VCPU_SEGS: i32 = 144;
export const SEG_SIZE: i32 = 16;
export const SEG_SELECTOR: i32 = 0;
export const SEG_ATTR: i32 = 2;
export const SEG_LIMIT: i32 = 4;
export const SEG_BASE: i32 = 8;
export const SEG_ES: i32 = 0;
export const SEG_CS: i32 = 1;
export const SEG_SS: i32 = 2;
export const SEG_DS: i32 = 3;
export const SEG_FS: i32 = 4;
export const SEG_GS: i32 = 5;
export const SEG_LDTR: i32 = 6;
export const SEG_TR: i32 = 7;

// ---- descriptor tables: base u64, limit u32 (+pad)
export const VCPU_GDTR_BASE: i32 = 272;
export const VCPU_GDTR_LIMIT: i32 = 280;
export const VCPU_IDTR_BASE: i32 = 288;
export const VCPU_IDTR_LIMIT: i32 = 296;

// ---- control and debug registers, MSRs (all u64)
export const VCPU_CR0: i32 = 304;
export const VCPU_CR2: i32 = 312;
export const VCPU_CR3: i32 = 320;
export const VCPU_CR4: i32 = 328;
export const VCPU_CR8: i32 = 336;
export const VCPU_EFER: i32 = 344;
export const VCPU_DR: i32 = 352; // dr0..dr7, 8 x u64
export const VCPU_STAR: i32 = 416;
export const VCPU_LSTAR: i32 = 424;
export const VCPU_CSTAR: i32 = 432;
export const VCPU_SFMASK: i32 = 440;
export const VCPU_KERNEL_GS_BASE: i32 = 448;
export const VCPU_SYSENTER_CS: i32 = 456;
export const VCPU_SYSENTER_ESP: i32 = 464;
export const VCPU_SYSENTER_EIP: i32 = 472;
export const VCPU_PAT: i32 = 480;
export const VCPU_TSC_OFFSET: i32 = 488; // TSC = insn_count + offset
export const VCPU_APIC_BASE: i32 = 496;
export const VCPU_MISC_ENABLE: i32 = 504;
export const VCPU_PDPTR: i32 = 512; // 4 x u64, loaded on CR3 write in PAE mode
export const VCPU_TSC_AUX: i32 = 544;
export const VCPU_XCR0: i32 = 552;

// ---- run state
export const VCPU_INSN_COUNT: i32 = 560; // u64 retired instructions (drives TSC)
export const VCPU_HALTED: i32 = 568; // u32: 1 while in HLT
export const VCPU_PENDING_IO: i32 = 572; // u32: an IN / MMIO read waits for host data
export const VCPU_PENDING_IRQ: i32 = 576; // i32: external vector to inject, -1 none
export const VCPU_INTR_SHADOW: i32 = 580; // u32: STI / MOV SS shadow
export const VCPU_ID: i32 = 584; // u32 vcpu index

// ---- tracing (see trace.ts): a ring of TRACE_EVENT_SIZE-byte events the host drains
export const VCPU_TRACE_ENABLED: i32 = 592; // u32
export const VCPU_TRACE_HEAD: i32 = 596; // u32 events written so far (wraps)
export const VCPU_TRACE_RING: i32 = 600; // u32 offset of the ring in linear memory
export const VCPU_TRACE_MASK: i32 = 604; // u32 ring entries - 1 (a power of two)

// ---- the CPU model (-cpu): optional features this vCPU advertises and
// honours; a feature that is off reads as absent in CPUID and its CR4/EFER
// bit raises #GP, its paging bit is reserved.
export const VCPU_FEATURES: i32 = 608; // u32 FEAT_* bits
export const FEAT_SMEP: u32 = 1 << 0;
export const FEAT_SMAP: u32 = 1 << 1;
export const FEAT_PDPE1GB: u32 = 1 << 2;
export const FEAT_NX: u32 = 1 << 3;
export const FEAT_ALL: u32 = FEAT_SMEP | FEAT_SMAP | FEAT_PDPE1GB | FEAT_NX;
@inline export function has_feature(f: u32): bool { return (load<u32>(VCPU + VCPU_FEATURES) & f) != 0; }

// ---- the exit struct (like struct kvm_run): written by the core when run()
// returns, read by the host; for IN / MMIO reads the host writes the data back
// here before the next run().
export const VCPU_EXIT: i32 = 640;
export const EXIT_REASON: i32 = 640; // u32 EXIT_* below
export const EXIT_IO_DIRECTION: i32 = 644; // u32 0 = in, 1 = out
export const EXIT_IO_SIZE: i32 = 648; // u32 1, 2, 4
export const EXIT_IO_PORT: i32 = 652; // u32
export const EXIT_IO_DATA: i32 = 656; // u32 value out / value in
export const EXIT_MMIO_GPA: i32 = 664; // u64
export const EXIT_MMIO_DATA: i32 = 672; // u64
export const EXIT_MMIO_LEN: i32 = 680; // u32
export const EXIT_MMIO_IS_WRITE: i32 = 684; // u32
export const EXIT_INTERNAL_RIP: i32 = 688; // u64 linear rip of the failing instruction
export const EXIT_INTERNAL_SUBERROR: i32 = 696; // u32 INTERNAL_* below
export const EXIT_INTERNAL_LEN: i32 = 700; // u32 bytes captured
export const EXIT_INTERNAL_BYTES: i32 = 704; // 16 bytes
export const EXIT_SHUTDOWN_VECTOR: i32 = 720; // u32 the exception that triple-faulted
// PT_WRITE: the core performed a guest write to a write-protected page-table
// gfn and retired the instruction; the host applies the pte-write policy
// (src/mmu/) before the next run(). Up to PT_WRITE_LOG_MAX writes of one
// instruction are logged; the first one's facts are in full.
export const EXIT_PT_WRITE_GPA: i32 = 728; // u64 gpa of the first write
export const EXIT_PT_WRITE_VALUE: i32 = 736; // u64 the bytes written (low SIZE bytes)
export const EXIT_PT_WRITE_OLD: i32 = 744; // u64 the bytes they replaced
export const EXIT_PT_WRITE_SIZE: i32 = 752; // u32 1, 2, 4, 8
export const EXIT_PT_WRITE_FLAGS: i32 = 756; // u32 PT_WRITE_F_*
export const EXIT_PT_WRITE_REP_COUNT: i32 = 760; // u64 iterations left after this one (rep string ops)
export const EXIT_PT_WRITE_RIP: i32 = 768; // u64 rip of the instruction
export const EXIT_PT_WRITE_NR: i32 = 776; // u32 writes logged (0: nothing pending)
export const EXIT_PT_WRITE_LOG: i32 = 784; // PT_WRITE_LOG_MAX x {gpa u64, size u32, pad u32}
export const PT_WRITE_LOG_MAX: i32 = 8;
export const PT_WRITE_F_STRING: u32 = 1 << 0; // a string instruction (movs, stos, ins)
export const PT_WRITE_F_REP: u32 = 1 << 1; // ... with a rep prefix
export const PT_WRITE_F_OVERFLOW: u32 = 1 << 2; // more writes than the log holds

// ---- SMP (src/smp/): words other threads write, so they live in the struct.
// The host owns them; the core only polls VCPU_KICK.
export const VCPU_KICK: i32 = 612; // u32: nonzero makes run() return (EXIT_BUDGET) within 256 instructions
export const VCPU_MP_STATE: i32 = 616; // u32 MP_STATE_* (KVM_MP_STATE_*)
export const VCPU_SIPI_VECTOR: i32 = 620; // u32 vector of the last SIPI
export const VCPU_APIC_EVENTS: i32 = 624; // u32 APIC_EV_* bits: INIT / SIPI posted by another vCPU
// the local APIC's IRR, 8 x u32 (set by senders with atomics): in the spare
// room after the exit struct's fields (migrated with the exit struct's bytes)
export const VCPU_APIC_IRR: i32 = 928;
// u32: a compiled block's memory helper stopped it (a fault, an exit, code
// written; cpu/jit.ts), in the same spare room
export const VCPU_JIT_STOP: i32 = 1016;
// u32: the host sets 1 before run() when nothing outside the core has written
// guest memory since the last exit (a PT_WRITE exit the pte-write policy
// handled): links between cached blocks then stay valid. run() clears it.
export const VCPU_KEEP_LINKS: i32 = 1020;
export const MP_STATE_RUNNABLE: u32 = 0;
export const MP_STATE_UNINITIALIZED: u32 = 1; // an AP before INIT / SIPI
export const MP_STATE_INIT_RECEIVED: u32 = 2; // wait-for-SIPI
export const MP_STATE_HALTED: u32 = 3;
export const APIC_EV_INIT: u32 = 1 << 0;
export const APIC_EV_SIPI: u32 = 1 << 1;

// ---- counters: u64 each, indexed by STAT_* (see stats.ts)
export const VCPU_STATS: i32 = 1024;
export const VCPU_STATS_MAX: i32 = 128;

// ---- the vCPU's MMU state (struct kvm_mmu, object caches, guest walker):
// 2 KiB laid out in assembly/mmu/layout.ts
export const VCPU_MMU: i32 = 2048;

// ---- the software TLB (see mmu/tlb.ts): TLB_ENTRIES x 16 bytes, then the
// log of entries filled since the last flush (u32 count, TLB_LOG_MAX x u16)
export const VCPU_TLB: i32 = 4096;
export const TLB_ENTRIES: i32 = 1024;
export const VCPU_TLB_LOG_N: i32 = VCPU_TLB + TLB_ENTRIES * 16;
export const VCPU_TLB_LOG: i32 = VCPU_TLB_LOG_N + 4;
export const TLB_LOG_MAX: i32 = 62;

// ---- the decoded-instruction cache (see cpu/decode.ts): ICACHE_ENTRIES x 64 bytes
export const VCPU_ICACHE: i32 = VCPU_TLB_LOG + TLB_LOG_MAX * 2;
export const ICACHE_ENTRIES: i32 = 1024;

// ---- the block cache (see cpu/block.ts): BLOCK_ENTRIES x BLOCK_SIZE bytes
export const VCPU_BLOCKS: i32 = VCPU_ICACHE + ICACHE_ENTRIES * 64;
export const BLOCK_SETS: i32 = 1024; // two ways each (cpu/block.ts)
export const BLOCK_ENTRIES: i32 = 2 * BLOCK_SETS;
export const BLOCK_MAX_INSNS: i32 = 16;
export const BLOCK_SIZE: i32 = 128 + BLOCK_MAX_INSNS * 64;

// ---- pages holding cached blocks: 1 bit per 4 KiB of linear memory (4 GiB)
// (see cpu/mem.ts: smc_check)
export const VCPU_CODE_MAP: i32 = VCPU_BLOCKS + BLOCK_ENTRIES * BLOCK_SIZE;
export const CODE_MAP_BYTES: i32 = 1 << 17;

export const VCPU_SIZE: i32 = VCPU_CODE_MAP + CODE_MAP_BYTES;

// exit reasons (names follow KVM_EXIT_*)
export const EXIT_NONE: i32 = 0;
export const EXIT_IO: i32 = 2;
export const EXIT_HLT: i32 = 5;
export const EXIT_MMIO: i32 = 6;
export const EXIT_SHUTDOWN: i32 = 8;
export const EXIT_INTERNAL_ERROR: i32 = 17;
export const EXIT_BUDGET: i32 = 64; // shadow86: instruction budget exhausted
export const EXIT_PT_WRITE: i32 = 65; // shadow86: write to a write-protected page table

// INTERNAL_ERROR sub-errors
export const INTERNAL_UNIMPLEMENTED: i32 = 1; // an instruction the interpreter lacks
export const INTERNAL_BAD_STATE: i32 = 2;

// EFLAGS bits
export const CF: u32 = 1 << 0;
export const PF: u32 = 1 << 2;
export const AF: u32 = 1 << 4;
export const ZF: u32 = 1 << 6;
export const SF: u32 = 1 << 7;
export const TF: u32 = 1 << 8;
export const IF: u32 = 1 << 9;
export const DF: u32 = 1 << 10;
export const OF: u32 = 1 << 11;
export const IOPL_MASK: u32 = 3 << 12;
export const NT: u32 = 1 << 14;
export const RF: u32 = 1 << 16;
export const VM: u32 = 1 << 17;
export const AC: u32 = 1 << 18;
export const VIF: u32 = 1 << 19;
export const VIP: u32 = 1 << 20;
export const ID: u32 = 1 << 21;
export const ARITH_FLAGS: u32 = CF | PF | AF | ZF | SF | OF;

// control register bits
export const CR0_PE: u64 = 1 << 0;
export const CR0_MP: u64 = 1 << 1;
export const CR0_EM: u64 = 1 << 2;
export const CR0_TS: u64 = 1 << 3;
export const CR0_ET: u64 = 1 << 4;
export const CR0_NE: u64 = 1 << 5;
export const CR0_WP: u64 = 1 << 16;
export const CR0_AM: u64 = 1 << 18;
export const CR0_NW: u64 = 1 << 29;
export const CR0_CD: u64 = 1 << 30;
export const CR0_PG: u64 = 1 << 31;
export const CR4_VME: u64 = 1 << 0;
export const CR4_PVI: u64 = 1 << 1;
export const CR4_TSD: u64 = 1 << 2;
export const CR4_DE: u64 = 1 << 3;
export const CR4_PSE: u64 = 1 << 4;
export const CR4_PAE: u64 = 1 << 5;
export const CR4_MCE: u64 = 1 << 6;
export const CR4_PGE: u64 = 1 << 7;
export const CR4_PCE: u64 = 1 << 8;
export const CR4_OSFXSR: u64 = 1 << 9;
export const CR4_OSXMMEXCPT: u64 = 1 << 10;
export const CR4_SMEP: u64 = 1 << 20;
export const CR4_SMAP: u64 = 1 << 21;
export const EFER_SCE: u64 = 1 << 0;
export const EFER_LME: u64 = 1 << 8;
export const EFER_LMA: u64 = 1 << 10;
export const EFER_NXE: u64 = 1 << 11;

// The current vCPU: set by vcpu_bind(); every access below is VCPU + offset.
export let VCPU: usize = 0;
export function bind_vcpu_ptr(base: usize): void { VCPU = base; }

@inline export function vcpu_load64(off: i32): u64 { return load<u64>(VCPU + <usize>off); }
@inline export function vcpu_store64(off: i32, v: u64): void { store<u64>(VCPU + <usize>off, v); }
@inline export function vcpu_load32(off: i32): u32 { return load<u32>(VCPU + <usize>off); }
@inline export function vcpu_store32(off: i32, v: u32): void { store<u32>(VCPU + <usize>off, v); }

// ---- registers
@inline export function reg64(r: i32): u64 { return load<u64>(VCPU + (<usize>r << 3)); }
@inline export function set_reg64(r: i32, v: u64): void { store<u64>(VCPU + (<usize>r << 3), v); }
@inline export function reg32(r: i32): u32 { return load<u32>(VCPU + (<usize>r << 3)); }
// A 32-bit register write zero-extends to 64 bits (in every mode: harmless outside long mode).
@inline export function set_reg32(r: i32, v: u32): void { store<u64>(VCPU + (<usize>r << 3), <u64>v); }
@inline export function reg16(r: i32): u32 { return <u32>load<u16>(VCPU + (<usize>r << 3)); }
@inline export function set_reg16(r: i32, v: u32): void { store<u16>(VCPU + (<usize>r << 3), <u16>v); }

// 8-bit registers: without REX, encodings 4..7 are AH CH DH BH.
@inline function reg8_addr(r: i32, rex: bool): usize {
  if (!rex && r >= 4 && r < 8) return VCPU + (<usize>(r - 4) << 3) + 1;
  return VCPU + (<usize>r << 3);
}
@inline export function reg8(r: i32, rex: bool): u32 { return <u32>load<u8>(reg8_addr(r, rex)); }
@inline export function set_reg8(r: i32, rex: bool, v: u32): void { store<u8>(reg8_addr(r, rex), <u8>v); }

// Read / write a register of `size` bytes (1, 2, 4, 8). Size 4 zero-extends.
export function reg_read(r: i32, size: i32, rex: bool): u64 {
  if (size == 8) return reg64(r);
  if (size == 4) return <u64>reg32(r);
  if (size == 2) return <u64>reg16(r);
  return <u64>reg8(r, rex);
}
export function reg_write(r: i32, size: i32, rex: bool, v: u64): void {
  if (size == 8) set_reg64(r, v);
  else if (size == 4) set_reg32(r, <u32>v);
  else if (size == 2) set_reg16(r, <u32>v);
  else set_reg8(r, rex, <u32>v);
}

@inline export function rip(): u64 { return load<u64>(VCPU + VCPU_RIP); }
@inline export function set_rip(v: u64): void { store<u64>(VCPU + VCPU_RIP, v); }

// ---- segments
@inline export function seg_addr(s: i32): usize { return VCPU + <usize>(VCPU_SEGS + s * SEG_SIZE); }
@inline export function seg_base(s: i32): u64 { return load<u64>(seg_addr(s) + SEG_BASE); }
@inline export function seg_selector(s: i32): u32 { return <u32>load<u16>(seg_addr(s) + SEG_SELECTOR); }
@inline export function seg_attr(s: i32): u32 { return <u32>load<u16>(seg_addr(s) + SEG_ATTR); }
@inline export function seg_limit(s: i32): u32 { return load<u32>(seg_addr(s) + SEG_LIMIT); }
export function seg_set(s: i32, selector: u32, base: u64, limit: u32, attr: u32): void {
  const a = seg_addr(s);
  store<u16>(a + SEG_SELECTOR, <u16>selector);
  store<u16>(a + SEG_ATTR, <u16>attr);
  store<u32>(a + SEG_LIMIT, limit);
  store<u64>(a + SEG_BASE, base);
}

// ---- counters
@inline export function stat_inc(id: i32): void {
  const a = VCPU + <usize>(VCPU_STATS + (id << 3));
  store<u64>(a, load<u64>(a) + 1);
}
@inline export function stat_add(id: i32, n: u64): void {
  const a = VCPU + <usize>(VCPU_STATS + (id << 3));
  store<u64>(a, load<u64>(a) + n);
}

// Retired-instruction count while run() executes (synced with
// VCPU_INSN_COUNT on entry and exit): the deterministic clock.
export let icount: u64 = 0;
@inline export function icount_inc(): void { icount++; }
@inline export function icount_add(n: i32): void { icount += <u64>n; }
export function icount_load(): void { icount = load<u64>(VCPU + VCPU_INSN_COUNT); }
export function icount_store(): void { store<u64>(VCPU + VCPU_INSN_COUNT, icount); }
