// The decoder: legacy prefixes, REX, opcode maps (1-byte, 0F, 0F38, 0F3A),
// ModRM/SIB/displacement and immediates. What each opcode needs (ModRM?
// which immediate? invalid in 64-bit mode? default 64-bit operand?) comes
// from the generated table OPFLAGS (src/isa/opcodes.ts -> decode_table.ts),
// so this file knows no individual instruction.
//
// The decoded instruction lives in module globals: handlers read them.
import {
  OPFLAGS, OPF_MODRM, OPF_IMM_SHIFT, OPF_IMM_MASK, OPF_D64, OPF_F64, OPF_INV64, OPF_MODREG,
  IMM_NONE, IMM_B, IMM_W, IMM_Z, IMM_V, IMM_MOFFS, IMM_WB, IMM_PTR, IMM_F6, IMM_F7,
} from "./decode_table";
import { seg_base, SEG_CS, SEG_SS, SEG_DS, SEG_FS, SEG_GS, reg64, reg_read, reg_write, VCPU, VCPU_ICACHE, ICACHE_ENTRIES } from "./state";
import { mode64, code_size } from "./mode";
import { fetch_page, fetch_host, fetch_set } from "../mmu/tlb";
import { fetch_translate, lin_mask, read_sz, write_sz } from "./mem";
import { raise_gp, raise_ud, faulted, raise_unimplemented } from "./fault";

export let ip_start: u64 = 0; // RIP of the current instruction
export let next_ip: u64 = 0; // RIP of the next one (branches overwrite it)
export let opcode: i32 = 0; // 0x000-0x0ff, 0x100 | 0F xx, 0x200 | 0F 38 xx, 0x300 | 0F 3A xx
export let rex: i32 = 0; // the REX byte, 0 if none
export let rex_w: bool = false;
export let pfx_66: bool = false;
export let pfx_67: bool = false;
export let rep: i32 = 0; // 0, 0xF2 (repne) or 0xF3 (rep/repe)
export let lock: bool = false;
export let seg_ovr: i32 = -1;
export let opsize: i32 = 4; // operand size of 'v' operands: 2, 4 or 8
export let addrsize: i32 = 8;
export let modrm: i32 = 0;
export let mod_: i32 = 0;
export let reg: i32 = 0; // ModRM.reg with REX.R
export let rm: i32 = 0; // ModRM.rm with REX.B (register operand when mod_ == 3)
export let ea_seg: i32 = SEG_DS;
export let ea_off: u64 = 0; // effective address (offset within the segment)
export let ea: u64 = 0; // linear address of the memory operand
export let imm: u64 = 0; // immediate, sign-extended (IMM_W / IMM_MOFFS zero-extended)
export let imm2: u64 = 0; // second immediate (enter's level, far pointer's selector)

let cs_base: u64 = 0;
let riprel: bool = false;

// Instruction bytes are read through a window onto the current code page:
// `win` is the host address of the instruction's first byte and `win_len`
// how many bytes the page still holds (at most 15), so the common case is one
// compare per byte. Past the window, fetch_slow() translates the next page
// (faulting only if the instruction really extends onto it).
export let win: usize = 0;
let win_len: i32 = 0;
let pos: i32 = 0; // bytes consumed so far

@inline function fetch8(): u32 {
  if (pos < win_len) { const b = <u32>load<u8>(win + <usize>pos); pos++; return b; }
  return fetch_slow();
}
// While a block is being built (block.ts) the decoder must not translate
// the next page: that would take faults and set accessed bits for code the
// guest may never run. An instruction that leaves the window then just
// reports `fetch_crossed` and the block ends before it.
let fetch_no_cross: bool = false;
export let fetch_crossed: bool = false;
export function decode_set_no_cross(v: bool): void { fetch_no_cross = v; fetch_crossed = false; }
function fetch_slow(): u32 {
  if (fetch_no_cross) { fetch_crossed = true; pos++; return 0; }
  if (pos >= 15) { raise_gp(0); pos++; return 0; } // longer than 15 bytes
  // IP wraps at the code size within the segment; the base is added after
  const lin = (cs_base + ((ip_start + <u64>pos) & ip_mask())) & lin_mask;
  const h = fetch_translate(lin);
  if (h < 0) {
    if (h == -2) raise_unimplemented(); // executing from MMIO
    return 0;
  }
  pos++;
  return <u32>load<u8>(<usize>h);
}
@inline function ip_mask(): u64 { return code_size == 8 ? <u64>-1 : code_size == 4 ? 0xffffffff : 0xffff; }
@inline function fetch16(): u32 { const lo = fetch8(); return lo | (fetch8() << 8); }
@inline function fetch32(): u32 { const lo = fetch16(); return lo | (fetch16() << 16); }
@inline function fetch64(): u64 { const lo = <u64>fetch32(); return lo | (<u64>fetch32() << 32); }

// Open the fetch window at the instruction start. `win_page_left` is how
// many bytes the code page holds from there (block.ts builds within it).
export let win_page_left: i32 = 0;
export function open_window(rip: u64): bool {
  cs_base = mode64 ? 0 : seg_base(SEG_CS);
  const lin = (cs_base + rip) & lin_mask;
  const page = lin & ~<u64>0xfff;
  if (page != fetch_page) {
    const h = fetch_translate(lin);
    if (h < 0) {
      if (h == -2) raise_unimplemented();
      return false;
    }
    fetch_set(page, <usize>h - <usize>(lin & 0xfff));
  }
  const off = <i32>(lin & 0xfff);
  win = fetch_host + <usize>off;
  win_len = 4096 - off;
  win_page_left = win_len;
  if (win_len > 15) win_len = 15;
  // outside 64-bit mode IP wraps at the code size: keep the window inside it
  if (code_size != 8) {
    const to_wrap = <i64>(ip_mask() - rip) + 1;
    if (<i64>win_len > to_wrap) win_len = <i32>to_wrap;
  }
  pos = 0;
  return true;
}

// Decode the instruction at RIP. Returns false if decoding faulted.
export function decode(rip: u64): bool {
  ip_start = rip;
  if (!open_window(rip)) return false;
  if (icache_hit(rip)) return true;
  rex = 0; rex_w = false; pfx_66 = false; pfx_67 = false; rep = 0; lock = false; seg_ovr = -1;
  riprel = false;
  let b: u32;
  while (true) {
    b = fetch8();
    if (faulted()) return false;
    if (b == 0x66) { pfx_66 = true; rex = 0; continue; }
    if (b == 0x67) { pfx_67 = true; rex = 0; continue; }
    if (b == 0xf2 || b == 0xf3) { rep = <i32>b; rex = 0; continue; }
    if (b == 0xf0) { lock = true; rex = 0; continue; }
    if (b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e) {
      if (!mode64) seg_ovr = <i32>((b >> 3) & 3); // es=0 cs=1 ss=2 ds=3
      rex = 0; continue;
    }
    if (b == 0x64 || b == 0x65) { seg_ovr = b == 0x64 ? SEG_FS : SEG_GS; rex = 0; continue; }
    if (mode64 && (b & 0xf0) == 0x40) { rex = <i32>b; continue; }
    break;
  }
  rex_w = (rex & 8) != 0;
  let op = <i32>b;
  if (b == 0x0f) {
    const b2 = fetch8();
    if (b2 == 0x38) op = 0x200 | <i32>fetch8();
    else if (b2 == 0x3a) op = 0x300 | <i32>fetch8();
    else op = 0x100 | <i32>b2;
    if (faulted()) return false;
  }
  opcode = op;
  const fl = <u32>load<u16>(OPFLAGS + (<usize>op << 1));
  if (mode64) {
    if ((fl & OPF_INV64) != 0) { raise_ud(); return false; }
    if (rex_w) opsize = 8;
    else if ((fl & OPF_F64) != 0) opsize = 8;
    else if ((fl & OPF_D64) != 0) opsize = pfx_66 ? 2 : 8;
    else opsize = pfx_66 ? 2 : 4;
    addrsize = pfx_67 ? 4 : 8;
  } else {
    opsize = (code_size == 4) != pfx_66 ? 4 : 2;
    addrsize = (code_size == 4) != pfx_67 ? 4 : 2;
  }
  if ((fl & OPF_MODRM) != 0) {
    if ((fl & OPF_MODREG) != 0) decode_modrm_reg(); else decode_modrm();
    if (faulted()) return false;
    // Group 5's near call/jmp and push default to 64-bit operands in 64-bit
    // mode (its inc/dec do not), so the table cannot say d64 for the opcode.
    if (op == 0xff && mode64 && !rex_w) {
      const sub = (modrm >> 3) & 7;
      if (sub == 2 || sub == 4) opsize = 8;
      else if (sub == 6) opsize = pfx_66 ? 2 : 8;
    }
  } else {
    mod_ = 3;
  }
  const kind = (fl >> OPF_IMM_SHIFT) & OPF_IMM_MASK;
  if (kind != IMM_NONE) {
    switch (kind) {
      case IMM_B: imm = <u64><i64><i8>fetch8(); break;
      case IMM_W: imm = <u64>fetch16(); break;
      case IMM_Z: imm = opsize == 2 ? <u64><i64><i16>fetch16() : <u64><i64><i32>fetch32(); break;
      case IMM_V:
        if (opsize == 8) imm = fetch64();
        else imm = opsize == 2 ? <u64>fetch16() : <u64>fetch32();
        break;
      case IMM_MOFFS:
        if (addrsize == 8) imm = fetch64();
        else imm = addrsize == 2 ? <u64>fetch16() : <u64>fetch32();
        break;
      case IMM_WB: imm = <u64>fetch16(); imm2 = <u64>fetch8(); break;
      case IMM_PTR:
        imm = opsize == 2 ? <u64>fetch16() : <u64>fetch32();
        imm2 = <u64>fetch16();
        break;
      case IMM_F6: if ((modrm & 0x38) < 0x10) imm = <u64><i64><i8>fetch8(); break;
      case IMM_F7:
        if ((modrm & 0x38) < 0x10) imm = opsize == 2 ? <u64><i64><i16>fetch16() : <u64><i64><i32>fetch32();
        break;
      default: break;
    }
    if (faulted()) return false;
  }
  if (pos > 15) { raise_gp(0); return false; }
  next_ip = (rip + <u64>pos) & ip_mask();
  if (mod_ != 3) compute_ea();
  if (pos <= win_len) icache_fill();
  return true;
}

// ---- the decoded-instruction cache
//
// Keyed by the host address of the instruction's first byte (so by physical
// location and mapping) and the decoding mode; a hit also compares the
// cached instruction bytes with memory, so self-modifying code and page
// remapping need no invalidation: a changed instruction simply misses.
// Instructions that cross a page are not cached.
const IC_BYTES0 = 0; // u64 first 8 bytes (masked to the length)
const IC_BYTES1 = 8; // u64 bytes 8..15 (masked)
const IC_HOST = 16; // u32 host address of byte 0
const IC_MODE = 21; // u8 mode key (code size | mode64)

@inline function ic_entry(host: usize): usize {
  // consecutive bytes get consecutive slots: adjacent one-byte instructions
  // (push/pop/nop...) must not share a slot and evict each other every pass
  return VCPU + VCPU_ICACHE + (((host ^ (host >> 10)) & <usize>(ICACHE_ENTRIES - 1)) << 6);
}
@inline export function mode_key(): u32 { return <u32>code_size | (mode64 ? 0x10 : 0); }
@inline function len_mask0(len: i32): u64 { return len >= 8 ? <u64>-1 : (<u64>1 << (<u64>len << 3)) - 1; }
@inline function len_mask1(len: i32): u64 { return len <= 8 ? 0 : (<u64>1 << (<u64>(len - 8) << 3)) - 1; }

function icache_fill(): void {
  const e = ic_entry(win);
  const len = pos;
  store<u64>(e + IC_BYTES0, load<u64>(win) & len_mask0(len));
  store<u64>(e + IC_BYTES1, len > 8 ? load<u64>(win + 8) & len_mask1(len) : 0);
  store<u32>(e + IC_HOST, <u32>win);
  store<u8>(e + IC_MODE, <u8>mode_key());
  decoded_save(e, len);
}

// Load the decoded instruction at the open window from the cache; false on a miss.
@inline function icache_hit(rip: u64): bool {
  const e = ic_entry(win);
  if (load<u32>(e + IC_HOST) != <u32>win || <u32>load<u8>(e + IC_MODE) != mode_key()) return false;
  const len = <i32>load<u8>(e + IC_LEN);
  if (len > win_len) return false;
  if ((load<u64>(win) & len_mask0(len)) != load<u64>(e + IC_BYTES0)) return false;
  if (len > 8 && (load<u64>(win + 8) & len_mask1(len)) != load<u64>(e + IC_BYTES1)) return false;
  decoded_load(e, rip);
  return true;
}

// A decoded instruction as a record (bytes IC_LEN.. of an icache entry; the
// block cache's uops use the same record): what the decoder leaves in the
// globals above, so a cached instruction runs through the same handlers.
export function decoded_save(e: usize, len: i32): void {
  store<u8>(e + IC_LEN, <u8>len);
  store<u16>(e + IC_OPCODE, <u16>opcode);
  store<u8>(e + IC_FLAGS, <u8>((pfx_66 ? 1 : 0) | (pfx_67 ? 2 : 0) | (lock ? 4 : 0) | (riprel ? 8 : 0)));
  store<u8>(e + IC_REP, <u8>rep);
  store<u8>(e + IC_REX, <u8>rex);
  store<i8>(e + IC_SEGOVR, <i8>seg_ovr);
  store<u8>(e + IC_OPSIZE, <u8>opsize);
  store<u8>(e + IC_ADDRSIZE, <u8>addrsize);
  store<u8>(e + IC_MODRM, <u8>modrm);
  store<u8>(e + IC_MOD, <u8>mod_);
  store<i8>(e + IC_REG, <i8>reg);
  store<i8>(e + IC_RM, <i8>rm);
  store<i8>(e + IC_BASE, <i8>ea_base);
  store<i8>(e + IC_INDEX, <i8>ea_index);
  store<u8>(e + IC_SCALE, <u8>ea_scale);
  store<u8>(e + IC_SEG, <u8>ea_seg);
  store<u64>(e + IC_DISP, ea_disp);
  store<u64>(e + IC_IMM, imm);
  store<u64>(e + IC_IMM2, imm2);
}

// The decoder's globals from a record, for the instruction at `rip`; the
// memory operand's address is computed from the registers of the moment.
export function decoded_load(e: usize, rip: u64): void {
  ip_start = rip;
  opcode = <i32>load<u16>(e + IC_OPCODE);
  const f = <u32>load<u8>(e + IC_FLAGS);
  pfx_66 = (f & 1) != 0; pfx_67 = (f & 2) != 0; lock = (f & 4) != 0; riprel = (f & 8) != 0;
  rep = <i32>load<u8>(e + IC_REP);
  rex = <i32>load<u8>(e + IC_REX);
  rex_w = (rex & 8) != 0;
  seg_ovr = <i32>load<i8>(e + IC_SEGOVR);
  opsize = <i32>load<u8>(e + IC_OPSIZE);
  addrsize = <i32>load<u8>(e + IC_ADDRSIZE);
  modrm = <i32>load<u8>(e + IC_MODRM);
  mod_ = <i32>load<u8>(e + IC_MOD);
  reg = <i32>load<i8>(e + IC_REG);
  rm = <i32>load<i8>(e + IC_RM);
  imm = load<u64>(e + IC_IMM);
  imm2 = load<u64>(e + IC_IMM2);
  next_ip = (rip + <u64>load<u8>(e + IC_LEN)) & ip_mask();
  if (mod_ != 3) {
    ea_base = <i32>load<i8>(e + IC_BASE);
    ea_index = <i32>load<i8>(e + IC_INDEX);
    ea_scale = <i32>load<u8>(e + IC_SCALE);
    ea_seg = <i32>load<u8>(e + IC_SEG);
    ea_disp = load<u64>(e + IC_DISP);
    compute_ea();
  }
}
// Record fields (offsets into a 64-byte record; 0..19 belong to the owner).
export const IC_LEN = 20; // u8
export const IC_OPCODE = 22; // u16
export const IC_FLAGS = 24; // u8: 1 pfx66, 2 pfx67, 4 lock, 8 riprel
export const IC_REP = 25; // u8
export const IC_REX = 26; // u8
export const IC_SEGOVR = 27; // i8
export const IC_OPSIZE = 28; // u8
export const IC_ADDRSIZE = 29; // u8
export const IC_MODRM = 30; // u8
export const IC_MOD = 31; // u8
export const IC_REG = 32; // i8
export const IC_RM = 33; // i8
export const IC_BASE = 34; // i8
export const IC_INDEX = 35; // i8
export const IC_SCALE = 36; // u8
export const IC_SEG = 37; // u8
export const IC_DISP = 40; // u64
export const IC_IMM = 48; // u64
export const IC_IMM2 = 56; // u64

// The memory operand as components, so a cached decode can recompute the
// address from the registers of the moment: base/index register (-1: none),
// scale, displacement, default/override segment, RIP-relative.
let ea_base: i32 = -1;
let ea_index: i32 = -1;
let ea_scale: i32 = 0;
let ea_disp: u64 = 0;

// MOV to/from CR/DR: ModRM names two registers whatever mod says (the SDM:
// "the 2 bits in the mod field are ignored"), so no SIB or displacement.
function decode_modrm_reg(): void {
  modrm = <i32>fetch8();
  mod_ = 3;
  reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
  rm = (modrm & 7) | ((rex & 1) << 3);
}

function decode_modrm(): void {
  modrm = <i32>fetch8();
  mod_ = modrm >> 6;
  reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
  const rml = modrm & 7;
  if (mod_ == 3) { rm = rml | ((rex & 1) << 3); return; }
  rm = -1;
  ea_base = -1; ea_index = -1; ea_scale = 0; ea_disp = 0;
  let seg = SEG_DS;
  if (addrsize == 2) {
    switch (rml) {
      case 0: ea_base = 3; ea_index = 6; break; // bx+si
      case 1: ea_base = 3; ea_index = 7; break; // bx+di
      case 2: ea_base = 5; ea_index = 6; seg = SEG_SS; break; // bp+si
      case 3: ea_base = 5; ea_index = 7; seg = SEG_SS; break; // bp+di
      case 4: ea_base = 6; break; // si
      case 5: ea_base = 7; break; // di
      case 6:
        if (mod_ == 0) ea_disp = <u64>fetch16();
        else { ea_base = 5; seg = SEG_SS; }
        break;
      default: ea_base = 3; break; // bx
    }
    if (mod_ == 1) ea_disp = <u64><i64><i8>fetch8();
    else if (mod_ == 2) ea_disp = <u64>fetch16();
  } else {
    if (rml == 4) {
      const sib = <i32>fetch8();
      ea_scale = sib >> 6;
      const index = ((sib >> 3) & 7) | ((rex & 2) << 2);
      const base = (sib & 7) | ((rex & 1) << 3);
      if (index != 4) ea_index = index;
      if ((base & 7) == 5 && mod_ == 0) {
        ea_disp = <u64><i64><i32>fetch32();
      } else {
        ea_base = base;
        if ((base & 7) == 4 || (base & 7) == 5) seg = SEG_SS;
      }
    } else if (rml == 5 && mod_ == 0) {
      ea_disp = <u64><i64><i32>fetch32();
      if (mode64) riprel = true;
    } else {
      ea_base = rml | ((rex & 1) << 3);
      if (rml == 5) seg = SEG_SS;
    }
    if (mod_ == 1) ea_disp = <u64><i64><i8>fetch8();
    else if (mod_ == 2) ea_disp = <u64><i64><i32>fetch32();
  }
  if (seg_ovr >= 0) seg = seg_ovr;
  ea_seg = seg;
}

// Effective and linear address from the components (after next_ip is known).
@inline function compute_ea(): void {
  let off = ea_disp;
  if (ea_base >= 0) off += reg64(ea_base);
  if (ea_index >= 0) off += reg64(ea_index) << <u64>ea_scale;
  if (riprel) off += next_ip;
  if (addrsize == 4) off &= 0xffffffff;
  else if (addrsize == 2) off &= 0xffff;
  ea_off = off;
  ea = linear(ea_seg, off);
}

// Segment:offset -> linear address (64-bit mode: only FS/GS have bases).
export function linear(seg: i32, off: u64): u64 {
  if (mode64) return (seg == SEG_FS || seg == SEG_GS) ? seg_base(seg) + off : off;
  return (seg_base(seg) + off) & 0xffffffff;
}

@inline export function set_next_ip(v: u64): void { next_ip = v; }
// A specialised uop (uops.ts) is the current instruction without a full
// decode: what the fault path and the PT_WRITE log read about it.
@inline export function set_current(ip: u64, op: i32, next: u64): void { ip_start = ip; opcode = op; next_ip = next; }
@inline export function forget_opcode(): void { opcode = 0; }

// ---- operand access for handlers

// r/m operand of `size` bytes: register when mod == 3, memory otherwise.
export function read_E(size: i32): u64 {
  if (mod_ == 3) return reg_read(rm, size, rex != 0);
  return read_sz(ea, size);
}
export function write_E(size: i32, v: u64): void {
  if (mod_ == 3) reg_write(rm, size, rex != 0, v);
  else write_sz(ea, size, v);
}
@inline export function read_G(size: i32): u64 { return reg_read(reg, size, rex != 0); }
@inline export function write_G(size: i32, v: u64): void { reg_write(reg, size, rex != 0, v); }

// The memory operand's linear address after `delta` bytes (bit strings, far pointers).
export function ea_plus(delta: u64): u64 {
  let off = ea_off + delta;
  if (addrsize == 4) off &= 0xffffffff;
  else if (addrsize == 2) off &= 0xffff;
  return linear(ea_seg, off);
}

// Unimplemented / undefined opcodes reach here from the dispatcher.
export function op_unimplemented(): void { raise_unimplemented(); }
export function op_ud(): void { raise_ud(); }
