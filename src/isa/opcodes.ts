// The opcode table: the one source of truth for the decoder. At build time
// gen-decoder.ts turns it into assembly/cpu/decode_table.ts (per-opcode flags
// the decoder reads) and assembly/cpu/dispatch.ts (opcode -> handler call).
// Adding an instruction is one line here plus its handler in assembly/cpu/.
//
// Opcode numbers: 0x000-0x0ff one-byte map, 0x100 | xx for 0F xx,
// 0x200 | xx for 0F 38 xx, 0x300 | xx for 0F 3A xx.

export type Imm =
  | "b" // imm8, sign-extended
  | "w" // imm16, zero-extended
  | "z" // imm16 / imm32 by operand size, sign-extended
  | "v" // imm16 / imm32 / imm64 by operand size (mov r, imm)
  | "moffs" // address-size offset (mov al, [moffs])
  | "wb" // imm16 then imm8 (enter)
  | "ptr" // far pointer: offset (16/32) then selector
  | "f6" // imm8 only for /0 and /1 (test)
  | "f7"; // immz only for /0 and /1 (test)

export interface OpDef {
  name: string; // mnemonic for disassembly / traces ("grp1" style for groups)
  exec: string; // AssemblyScript call expression run by the dispatcher
  modrm?: boolean;
  imm?: Imm;
  d64?: boolean; // default operand size 64 in 64-bit mode (push/pop/near branches)
  f64?: boolean; // operand size forced to 64 in 64-bit mode
  inv64?: boolean; // #UD in 64-bit mode
  modreg?: boolean; // ModRM always names registers: mod is ignored, no SIB/displacement (mov cr/dr)
}

const table = new Map<number, OpDef>();
function op(code: number, name: string, exec: string, o: Omit<OpDef, "name" | "exec"> = {}): void {
  if (table.has(code)) throw new Error(`opcode 0x${code.toString(16)} defined twice`);
  table.set(code, { name, exec, ...o });
}
const M = { modrm: true } as const;

// ---- one-byte map
const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
ALU.forEach((name, i) => {
  const b = i << 3;
  op(b + 0, name, `alu_EbGb(${i})`, M);
  op(b + 1, name, `alu_EvGv(${i})`, M);
  op(b + 2, name, `alu_GbEb(${i})`, M);
  op(b + 3, name, `alu_GvEv(${i})`, M);
  op(b + 4, name, `alu_ALIb(${i})`, { imm: "b" });
  op(b + 5, name, `alu_rAXIz(${i})`, { imm: "z" });
});
op(0x06, "push es", "push_seg(0)", { inv64: true });
op(0x07, "pop es", "pop_seg(0)", { inv64: true });
op(0x0e, "push cs", "push_seg(1)", { inv64: true });
op(0x16, "push ss", "push_seg(2)", { inv64: true });
op(0x17, "pop ss", "pop_seg(2)", { inv64: true });
op(0x1e, "push ds", "push_seg(3)", { inv64: true });
op(0x1f, "pop ds", "pop_seg(3)", { inv64: true });
op(0x27, "daa", "daa()", { inv64: true });
op(0x2f, "das", "das()", { inv64: true });
op(0x37, "aaa", "aaa()", { inv64: true });
op(0x3f, "aas", "aas()", { inv64: true });
for (let r = 0; r < 8; r++) {
  op(0x40 + r, "inc", `inc_r(${r})`, { inv64: true }); // REX prefixes in 64-bit mode
  op(0x48 + r, "dec", `dec_r(${r})`, { inv64: true });
  op(0x50 + r, "push", `push_r(${r})`, { d64: true });
  op(0x58 + r, "pop", `pop_r(${r})`, { d64: true });
}
op(0x60, "pusha", "pusha()", { inv64: true });
op(0x61, "popa", "popa()", { inv64: true });
op(0x63, "movsxd/arpl", "op_63()", M);
op(0x68, "push", "push_imm()", { imm: "z", d64: true });
op(0x69, "imul", "imul_GvEvI()", { ...M, imm: "z" });
op(0x6a, "push", "push_imm()", { imm: "b", d64: true });
op(0x6b, "imul", "imul_GvEvI()", { ...M, imm: "b" });
op(0x6c, "insb", "ins(1)");
op(0x6d, "ins", "ins(0)");
op(0x6e, "outsb", "outs(1)");
op(0x6f, "outs", "outs(0)");
for (let cc = 0; cc < 16; cc++) op(0x70 + cc, "jcc", `jcc(${cc})`, { imm: "b", f64: true });
op(0x80, "grp1", "grp1_Eb()", { ...M, imm: "b" });
op(0x81, "grp1", "grp1_Ev()", { ...M, imm: "z" });
op(0x82, "grp1", "grp1_Eb()", { ...M, imm: "b", inv64: true });
op(0x83, "grp1", "grp1_Ev()", { ...M, imm: "b" });
op(0x84, "test", "test_EbGb()", M);
op(0x85, "test", "test_EvGv()", M);
op(0x86, "xchg", "xchg_EbGb()", M);
op(0x87, "xchg", "xchg_EvGv()", M);
op(0x88, "mov", "mov_EbGb()", M);
op(0x89, "mov", "mov_EvGv()", M);
op(0x8a, "mov", "mov_GbEb()", M);
op(0x8b, "mov", "mov_GvEv()", M);
op(0x8c, "mov", "mov_EwSw()", M);
op(0x8d, "lea", "lea()", M);
op(0x8e, "mov", "mov_SwEw()", M);
op(0x8f, "pop", "pop_Ev()", { ...M, d64: true });
op(0x90, "nop", "nop_90()");
for (let r = 1; r < 8; r++) op(0x90 + r, "xchg", `xchg_rAX(${r})`);
op(0x98, "cbw", "cbw()");
op(0x99, "cwd", "cwd()");
op(0x9a, "call far", "call_far_ptr()", { imm: "ptr", inv64: true });
op(0x9b, "fwait", "nop()");
op(0x9c, "pushf", "pushf()", { d64: true });
op(0x9d, "popf", "popf()", { d64: true });
op(0x9e, "sahf", "sahf()");
op(0x9f, "lahf", "lahf()");
op(0xa0, "mov", "mov_AL_moffs()", { imm: "moffs" });
op(0xa1, "mov", "mov_rAX_moffs()", { imm: "moffs" });
op(0xa2, "mov", "mov_moffs_AL()", { imm: "moffs" });
op(0xa3, "mov", "mov_moffs_rAX()", { imm: "moffs" });
op(0xa4, "movsb", "movs(1)");
op(0xa5, "movs", "movs(0)");
op(0xa6, "cmpsb", "cmps(1)");
op(0xa7, "cmps", "cmps(0)");
op(0xa8, "test", "test_ALIb()", { imm: "b" });
op(0xa9, "test", "test_rAXIz()", { imm: "z" });
op(0xaa, "stosb", "stos(1)");
op(0xab, "stos", "stos(0)");
op(0xac, "lodsb", "lods(1)");
op(0xad, "lods", "lods(0)");
op(0xae, "scasb", "scas(1)");
op(0xaf, "scas", "scas(0)");
for (let r = 0; r < 8; r++) {
  op(0xb0 + r, "mov", `mov_rIb(${r})`, { imm: "b" });
  op(0xb8 + r, "mov", `mov_rIv(${r})`, { imm: "v" });
}
op(0xc0, "grp2", "grp2_Eb(0)", { ...M, imm: "b" });
op(0xc1, "grp2", "grp2_Ev(0)", { ...M, imm: "b" });
op(0xc2, "ret", "ret_near()", { imm: "w", f64: true });
op(0xc3, "ret", "ret_near()", { f64: true });
op(0xc4, "les", "les_lds(0)", { ...M, inv64: true });
op(0xc5, "lds", "les_lds(3)", { ...M, inv64: true });
op(0xc6, "mov", "mov_EbIb()", { ...M, imm: "b" });
op(0xc7, "mov", "mov_EvIz()", { ...M, imm: "z" });
op(0xc8, "enter", "enter()", { imm: "wb", d64: true });
op(0xc9, "leave", "leave()", { d64: true });
op(0xca, "retf", "ret_far()", { imm: "w" });
op(0xcb, "retf", "ret_far()");
op(0xcc, "int3", "int3()");
op(0xcd, "int", "int_Ib()", { imm: "b" });
op(0xce, "into", "into()", { inv64: true });
op(0xcf, "iret", "iret()");
op(0xd0, "grp2", "grp2_Eb(1)", M);
op(0xd1, "grp2", "grp2_Ev(1)", M);
op(0xd2, "grp2", "grp2_Eb(2)", M);
op(0xd3, "grp2", "grp2_Ev(2)", M);
op(0xd4, "aam", "aam()", { imm: "b", inv64: true });
op(0xd5, "aad", "aad()", { imm: "b", inv64: true });
op(0xd7, "xlat", "xlat()");
op(0xe0, "loopne", "loop(0)", { imm: "b", f64: true });
op(0xe1, "loope", "loop(1)", { imm: "b", f64: true });
op(0xe2, "loop", "loop(2)", { imm: "b", f64: true });
op(0xe3, "jrcxz", "jrcxz()", { imm: "b", f64: true });
op(0xe4, "in", "in_imm(1)", { imm: "b" });
op(0xe5, "in", "in_imm(0)", { imm: "b" });
op(0xe6, "out", "out_imm(1)", { imm: "b" });
op(0xe7, "out", "out_imm(0)", { imm: "b" });
op(0xe8, "call", "call_rel()", { imm: "z", f64: true });
op(0xe9, "jmp", "jmp_rel()", { imm: "z", f64: true });
op(0xea, "jmp far", "jmp_far_ptr()", { imm: "ptr", inv64: true });
op(0xeb, "jmp", "jmp_rel()", { imm: "b", f64: true });
op(0xec, "in", "in_dx(1)");
op(0xed, "in", "in_dx(0)");
op(0xee, "out", "out_dx(1)");
op(0xef, "out", "out_dx(0)");
op(0xf1, "int1", "int1()");
op(0xf4, "hlt", "hlt()");
op(0xf5, "cmc", "cmc()");
op(0xf6, "grp3", "grp3_Eb()", { ...M, imm: "f6" });
op(0xf7, "grp3", "grp3_Ev()", { ...M, imm: "f7" });
op(0xf8, "clc", "clc()");
op(0xf9, "stc", "stc()");
op(0xfa, "cli", "cli()");
op(0xfb, "sti", "sti()");
op(0xfc, "cld", "cld()");
op(0xfd, "std", "std()");
op(0xfe, "grp4", "grp4_Eb()", M);
op(0xff, "grp5", "grp5_Ev()", M);

// ---- two-byte map (0F xx)
const T = 0x100;
op(T | 0x00, "grp6", "grp6()", M);
op(T | 0x01, "grp7", "grp7()", M);
op(T | 0x02, "lar", "lar()", M);
op(T | 0x03, "lsl", "lsl()", M);
op(T | 0x05, "syscall", "syscall()");
op(T | 0x06, "clts", "clts()");
op(T | 0x07, "sysret", "sysret()");
op(T | 0x08, "invd", "priv_nop()");
op(T | 0x09, "wbinvd", "priv_nop()");
op(T | 0x0b, "ud2", "op_ud()");
op(T | 0x0d, "prefetch", "nop()", M);
for (let i = 0x18; i <= 0x1f; i++) op(T | i, "nop", "nop()", M); // hint nops, endbr64 (F3 0F 1E FA)
op(T | 0x20, "mov", "mov_R_CR()", { ...M, modreg: true });
op(T | 0x21, "mov", "mov_R_DR()", { ...M, modreg: true });
op(T | 0x22, "mov", "mov_CR_R()", { ...M, modreg: true });
op(T | 0x23, "mov", "mov_DR_R()", { ...M, modreg: true });
op(T | 0x30, "wrmsr", "wrmsr()");
op(T | 0x31, "rdtsc", "rdtsc()");
op(T | 0x32, "rdmsr", "rdmsr()");
op(T | 0x34, "sysenter", "sysenter()");
op(T | 0x35, "sysexit", "sysexit()");
for (let cc = 0; cc < 16; cc++) {
  op(T | (0x40 + cc), "cmovcc", `cmovcc(${cc})`, M);
  op(T | (0x80 + cc), "jcc", `jcc(${cc})`, { imm: "z", f64: true });
  op(T | (0x90 + cc), "setcc", `setcc(${cc})`, M);
}
op(T | 0xa0, "push fs", "push_seg(4)", { d64: true });
op(T | 0xa1, "pop fs", "pop_seg(4)", { d64: true });
op(T | 0xa2, "cpuid", "cpuid()");
op(T | 0xa3, "bt", "bt_EvGv(0)", M);
op(T | 0xa4, "shld", "shld(0)", { ...M, imm: "b" });
op(T | 0xa5, "shld", "shld(1)", M);
op(T | 0xa8, "push gs", "push_seg(5)", { d64: true });
op(T | 0xa9, "pop gs", "pop_seg(5)", { d64: true });
op(T | 0xab, "bts", "bt_EvGv(1)", M);
op(T | 0xac, "shrd", "shrd(0)", { ...M, imm: "b" });
op(T | 0xad, "shrd", "shrd(1)", M);
op(T | 0xae, "grp15", "grp15()", M);
op(T | 0xaf, "imul", "imul_GvEv()", M);
op(T | 0xb0, "cmpxchg", "cmpxchg_EbGb()", M);
op(T | 0xb1, "cmpxchg", "cmpxchg_EvGv()", M);
op(T | 0xb2, "lss", "lfp(2)", M);
op(T | 0xb3, "btr", "bt_EvGv(2)", M);
op(T | 0xb4, "lfs", "lfp(4)", M);
op(T | 0xb5, "lgs", "lfp(5)", M);
op(T | 0xb6, "movzx", "movzx_GvEb()", M);
op(T | 0xb7, "movzx", "movzx_GvEw()", M);
op(T | 0xb8, "popcnt", "popcnt_GvEv()", M);
op(T | 0xb9, "ud1", "op_ud()", M);
op(T | 0xba, "grp8", "grp8()", { ...M, imm: "b" });
op(T | 0xbb, "btc", "bt_EvGv(3)", M);
op(T | 0xbc, "bsf", "bsf_GvEv()", M);
op(T | 0xbd, "bsr", "bsr_GvEv()", M);
op(T | 0xbe, "movsx", "movsx_GvEb()", M);
op(T | 0xbf, "movsx", "movsx_GvEw()", M);
op(T | 0xc0, "xadd", "xadd_EbGb()", M);
op(T | 0xc1, "xadd", "xadd_EvGv()", M);
op(T | 0xc7, "grp9", "grp9()", M);
for (let r = 0; r < 8; r++) op(T | (0xc8 + r), "bswap", `bswap_r(${r})`);
op(T | 0xff, "ud0", "op_ud()", M);

// ---- three-byte map (0F 38 xx)
const T38 = 0x200;
op(T38 | 0xf6, "adcx/adox", "adcx_adox()", M); // 66: adcx, F3: adox (mandatory prefixes)

export const OPCODES: ReadonlyMap<number, OpDef> = table;
