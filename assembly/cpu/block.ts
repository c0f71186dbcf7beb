// The block cache: straight-line runs of decoded instructions, so the run
// loop pays the fetch translation, the cache lookup and the byte check once
// per block instead of once per instruction, and the hottest forms run as
// specialised uops (uops.ts) that read their operands from the record.
//
// A block starts at the RIP it was entered at and holds up to
// BLOCK_MAX_INSNS instructions within one code page and BLOCK_CODE_MAX bytes;
// it ends after a near branch (jcc, jmp, call, ret, loop) and before any
// instruction that needs the run loop's per-instruction care (I/O, string
// ops and their rep budget, LOCK and the bus lock, anything that changes
// mode, IF or the interrupt shadow, far transfers, system instructions):
// those run one at a time as before. So within a block no interrupt can
// become deliverable, and the run loop's checks at block boundaries are the
// ones it made per instruction.
//
// Like the decoded-instruction cache, a block is keyed by the host address of
// its first byte and the decoding mode and keeps a copy of its code bytes,
// compared whenever it is looked up: a page remapped or rewritten (by this
// vCPU, another one, the host or a migration) simply misses. Once a block
// has run, the block that followed it is linked (one link for the
// fall-through, one for the branch target), and a linked block on the same
// code page runs without the lookup: a link is valid for one fetch generation (mmu/tlb.ts:
// fetch_gen), which every TLB flush, CPL or mode change, new run() and block
// build ends, and so does any write to a page holding cached code (the code
// map, mem.ts: smc_check). Such a write also ends the running block after
// the instruction, so a store into the next instruction is seen, as the SDM
// asks of self-modifying code.
import {
  VCPU, VCPU_BLOCKS, BLOCK_SETS, BLOCK_MAX_INSNS, BLOCK_SIZE, icount_add, stat_inc, stat_add, seg_base, SEG_CS, VCPU_JIT_STOP,
} from "./state";
import {
  decode, decoded_save, open_window, win, win_page_left, mode_key, decode_set_no_cross, fetch_crossed,
  next_ip, ip_start, opcode, mod_, reg, rep, lock, IC_OPCODE, IC_LEN, set_current,
} from "./decode";
import { code_size, mode64 } from "./mode";
import { faulted, clear_fault, raise_gp } from "./fault";
import { host_jit_compile, JIT_BRANCH_GP, JIT_STOP, jit_uop_next, jit_uop_at, jit_uop_clear } from "./jit";
import { VMB } from "../vm";
import { VM_KNOB_BLOCK_JIT } from "../mmu/layout";
import { exit_pending, code_written, code_written_clear, code_map_byte, fetch_tlb_hit } from "./mem";
import { fetch_gen, links_invalidate, fetch_page, fetch_host, fetch_set, PAGE_HI } from "../mmu/tlb";
import { uop_kind, uop_exec, uop_fuse, uop_insns, UOP_GENERIC, UOP_CALL64, fused_fault_ip, fused_fault_clear } from "./uops";
import { STAT_BLOCKS_BUILT, STAT_BLOCKS_COMPILED, STAT_COMPILED_INSNS } from "../stats";

export const BLOCK_CODE_MAX: i32 = 64;
export const B_HOST: usize = 0; // u32 host address of the first byte
export const B_MODE: usize = 4; // u8 mode_key() (0: empty slot)
export const B_N: usize = 5; // u8 instructions (0: the first one runs alone)
export const B_LEN: usize = 6; // u8 code bytes covered
export const B_INSNS: usize = 7; // u8 instructions (a fused uop holds two)
// links to the blocks that followed: [0] fall-through, [1] branch target;
// each {rip u64, block u32, fetch_gen u32} (B_CODE + BLOCK_CODE_MAX = 72..)
const B_LINKS: usize = 80;
const L_RIP: usize = 0;
const L_BLOCK: usize = 8;
const L_GEN: usize = 12;
// compiled code (cpu/jit.ts): table index (0: none) and runs so far
export const B_JIT: usize = 112; // u32
export const B_HOT: usize = 116; // u32
export const B_ITERS: usize = 120; // u32 iterations the last call of a compiled self-loop started
const B_CODE: usize = 8; // BLOCK_CODE_MAX bytes, zero padded
const B_LRU: usize = 72; // u8, in a set's first way: the way found last
export const B_UOPS: usize = 128; // BLOCK_MAX_INSNS x 64-byte records
// A uop's own fields (bytes 0..19; 20..63 are decode.ts's record)
export const U_KIND: usize = 0; // u8 UOP_* (uops.ts)
export const U_OFF: usize = 2; // u16 offset of the instruction from the block start
export const U_A: usize = 4; // u8 uop operand (register, alu op, condition)
export const U_B: usize = 5; // u8 second uop operand
export const U_VAL: usize = 8; // u64 precomputed value (immediate, relative target)

// Two ways per set: a pair of hot blocks whose addresses hash alike (it
// happens: one pair in forkwait's fork loop rebuilt 120k blocks a run with one
// way) then both stay. B_LRU of a set's first way says which way was used last.
@inline function block_set(host: usize): usize {
  let x = <u32>host; // murmur3's finaliser: nearby code addresses spread over every set
  x ^= x >> 16; x *= 0x85ebca6b; x ^= x >> 13; x *= 0xc2b2ae35; x ^= x >> 16;
  return VCPU + VCPU_BLOCKS + <usize>(x & <u32>(BLOCK_SETS - 1)) * <usize>(2 * BLOCK_SIZE);
}
@inline function tail_mask(rem: i32): u64 { return rem >= 8 ? <u64>-1 : (<u64>1 << (<u64>rem << 3)) - 1; }

function code_matches(b: usize, h: usize, len: i32): bool {
  for (let i = 0; i < len; i += 8) {
    if ((load<u64>(h + <usize>i) & tail_mask(len - i)) != load<u64>(b + B_CODE + <usize>i)) return false;
  }
  return true;
}

// The block for RIP `at`, or 0 (a fault raised by the fetch is left for the
// run loop to deliver). A block with B_N 0 says the instruction there runs
// alone; it is a block all the same, with links to what follows it.
export function block_find(at: u64): usize {
  if (code_size == 2) return 0; // real / 16-bit code: rare, run one at a time
  // outside 64-bit mode IP wraps at 4 GiB: no block may span the wrap
  if (!mode64 && at > <u64>(0xffffffff - BLOCK_CODE_MAX)) return 0;
  if (!open_window(at)) return 0;
  const h = win;
  const left = win_page_left;
  const set = block_set(h);
  const mode = mode_key();
  for (let w = 0; w < 2; w++) {
    const b = set + <usize>(w * BLOCK_SIZE);
    if (load<u32>(b + B_HOST) == <u32>h && <u32>load<u8>(b + B_MODE) == mode) {
      const len = <i32>load<u8>(b + B_LEN);
      if (len <= left && code_matches(b, h, len)) {
        store<u8>(set + B_LRU, <u8>w);
        return b;
      }
    }
  }
  // the way not used last (an empty one first)
  const w = load<u8>(set + B_MODE) == 0 ? 0 : load<u8>(set + BLOCK_SIZE + B_MODE) == 0 ? 1 : 1 - <i32>load<u8>(set + B_LRU);
  store<u8>(set + B_LRU, <u8>w);
  return block_build(set + <usize>(w * BLOCK_SIZE), h, at, left);
}

const CLASS_NO = 0; // runs alone
const CLASS_IN = 1; // may sit inside a block
const CLASS_END = 2; // ends a block (near branches)

// Which instructions a block may hold (the decoder's globals describe it).
function block_class(): i32 {
  const op = opcode;
  if (lock) return CLASS_NO;
  if (op < 0x40) {
    // ALU forms and BCD; not the segment pushes/pops (06 07 0e 16 17 1e 1f)
    const lo = op & 7;
    return lo >= 6 && op != 0x27 && op != 0x2f && op != 0x37 && op != 0x3f ? CLASS_NO : CLASS_IN;
  }
  if (op < 0x60) return CLASS_IN; // inc/dec r (32-bit), push/pop r
  if (op < 0x100) {
    if (op >= 0x70 && op <= 0x7f) return CLASS_END; // jcc
    if (op >= 0xb0 && op <= 0xbf) return CLASS_IN; // mov r, imm
    switch (op) {
      case 0x63: case 0x68: case 0x69: case 0x6a: case 0x6b:
      case 0x80: case 0x81: case 0x82: case 0x83: case 0x84: case 0x85:
      case 0x88: case 0x89: case 0x8a: case 0x8b: case 0x8c: case 0x8d: case 0x8f:
      case 0x91: case 0x92: case 0x93: case 0x94: case 0x95: case 0x96: case 0x97:
      case 0x98: case 0x99: case 0x9c: case 0x9e: case 0x9f:
      case 0xa0: case 0xa1: case 0xa2: case 0xa3: case 0xa8: case 0xa9:
      case 0xc0: case 0xc1: case 0xc6: case 0xc7: case 0xc8: case 0xc9:
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: case 0xd7:
      case 0xf5: case 0xf6: case 0xf7: case 0xf8: case 0xf9: case 0xfc: case 0xfd: case 0xfe:
        return CLASS_IN;
      case 0x86: case 0x87: return mod_ == 3 ? CLASS_IN : CLASS_NO; // xchg with memory locks the bus
      case 0x90: return rep == 0xf3 ? CLASS_NO : CLASS_IN; // pause counts spins (mov.ts)
      // one movs/cmps/stos/lods/scas is a load and/or a store like any other
      // (a stosb byte loop clearing a page table); with rep it counts steps
      // against the budget and may yield (string.ts): alone
      case 0xa4: case 0xa5: case 0xa6: case 0xa7: case 0xaa: case 0xab: case 0xac: case 0xad: case 0xae: case 0xaf:
        return rep == 0 ? CLASS_IN : CLASS_NO;
      case 0xc2: case 0xc3: case 0xe0: case 0xe1: case 0xe2: case 0xe3: case 0xe8: case 0xe9: case 0xeb:
        return CLASS_END;
      case 0xff: {
        const sub = reg & 7;
        if (sub <= 1 || sub == 6) return CLASS_IN; // inc, dec, push
        return sub == 2 || sub == 4 ? CLASS_END : CLASS_NO; // near call / jmp; far ones run alone
      }
      default: return CLASS_NO;
    }
  }
  if (op >= 0x180 && op <= 0x18f) return CLASS_END; // jcc rel32
  if ((op >= 0x140 && op <= 0x14f) || (op >= 0x190 && op <= 0x19f) || (op >= 0x1c8 && op <= 0x1cf)) return CLASS_IN;
  if (op >= 0x118 && op <= 0x11f) return CLASS_IN; // nop Ev
  // mov to CR3 ends a block: the code after it may be mapped elsewhere by
  // the new tables, and the next block is found through the new translation
  // (links are taken only to bytes the current fetch translation maps). A
  // context switch then costs no trip through the run loop. Writes to the
  // other control registers change the mode or paging: alone.
  if (op == 0x122) return reg == 3 ? CLASS_END : CLASS_NO;
  switch (op) {
    case 0x120: // mov from a control register: a read (every #PF handler reads CR2)
    case 0x10d: case 0x131: // prefetch, rdtsc (the TSC is the retired count: exact inside a block)
    case 0x1a3: case 0x1a4: case 0x1a5: case 0x1ab: case 0x1ac: case 0x1ad: case 0x1af:
    case 0x1b0: case 0x1b1: case 0x1b3: case 0x1b6: case 0x1b7: case 0x1b8: case 0x1ba: case 0x1bb:
    case 0x1bc: case 0x1bd: case 0x1be: case 0x1bf: case 0x1c0: case 0x1c1: case 0x2f6:
      return CLASS_IN;
    default: return CLASS_NO;
  }
}

function block_build(b: usize, h: usize, at: u64, left: i32): usize {
  stat_inc(STAT_BLOCKS_BUILT); // (links to this slot's old block fail block_follow's checks)
  const m = code_map_byte(h);
  store<u8>(m, <u8>(<u32>load<u8>(m) | (<u32>1 << (<u32>(h >> 12) & 7))));
  let n = 0; // uops
  let insns = 0;
  let len = 0;
  let prev: usize = 0;
  let prev_kind = UOP_GENERIC;
  decode_set_no_cross(true);
  while (insns < BLOCK_MAX_INSNS && len < left) {
    const ip = at + <u64>len;
    if (!decode(ip) || faulted() || fetch_crossed) { clear_fault(); break; }
    const ilen = <i32>(next_ip - ip); // no IP wrap inside a block (block_find)
    if (len + ilen > BLOCK_CODE_MAX) break;
    const cls = block_class();
    if (cls == CLASS_NO) { if (n == 0) len = ilen; break; }
    insns++;
    len += ilen;
    const fk = prev != 0 ? uop_fuse(prev, prev_kind) : 0;
    if (fk != 0) {
      store<u8>(prev + U_KIND, <u8>fk);
    } else {
      const u = b + B_UOPS + (<usize>n << 6);
      decoded_save(u, ilen);
      store<u16>(u + U_OFF, <u16>(len - ilen));
      prev_kind = uop_kind(u);
      store<u8>(u + U_KIND, <u8>prev_kind);
      prev = u;
      n++;
    }
    if (cls == CLASS_END) break;
  }
  decode_set_no_cross(false);
  if (len == 0) { store<u8>(b + B_MODE, 0); return 0; } // nothing decodable: build again next time
  store<u32>(b + B_HOST, <u32>h);
  store<u8>(b + B_MODE, <u8>mode_key());
  store<u8>(b + B_N, <u8>n);
  store<u8>(b + B_INSNS, <u8>insns);
  store<u8>(b + B_LEN, <u8>len);
  store<u32>(b + B_JIT, 0);
  store<u32>(b + B_HOT, 0);
  jit_uop_clear(); // it may name a uop of the block this slot held
  for (let i = 0; i < BLOCK_CODE_MAX; i += 8) {
    store<u64>(b + B_CODE + <usize>i, i < len ? load<u64>(h + <usize>i) & tail_mask(len - i) : 0);
  }
  return b;
}

// Where the last block (chain) left off: the next RIP when it ended
// normally, else see blocks_run.
export let block_next: u64 = 0;

// Run block `b` entered at RIP `at`; returns the instructions retired. After
// a fault ip_start is the faulting instruction (not retired), else
// block_next is where to go on.
function block_run(b: usize, at: u64): i32 {
  const hot = load<u32>(b + B_HOT) + 1;
  store<u32>(b + B_HOT, hot);
  if (hot == load<u32>(VMB + VM_KNOB_BLOCK_JIT)) { // the knob is the threshold (0: never)
    const idx = host_jit_compile(b, VCPU);
    store<u32>(b + B_JIT, idx);
    if (idx != 0) stat_inc(STAT_BLOCKS_COMPILED);
  }
  const n = <i32>load<u8>(b + B_N);
  let u = b + B_UOPS;
  const end = u + (<usize>n << 6);
  let retired = 0;
  let nip: u64 = at;
  while (true) {
    const ip = at + <u64>load<u16>(u + U_OFF);
    const kind = <i32>load<u8>(u + U_KIND);
    nip = uop_exec(kind, u, ip);
    if (faulted()) {
      // the fault path delivers at ip_start; a fused uop whose jcc faulted retired its first half
      if (fused_fault_ip != 0) { set_current(fused_fault_ip, 0, 0); fused_fault_clear(); retired++; icount_add(1); }
      else set_current(ip, <i32>load<u16>(u + IC_OPCODE), ip);
      break;
    }
    const k = uop_insns(kind);
    retired += k;
    icount_add(k); // per instruction: the TSC and the MMU's emulated-write cache read it
    if (exit_pending != 0 || code_written) break;
    u += 64;
    if (u == end) break;
  }
  block_next = nip;
  return retired;
}

// The linear address of the code at `ip` (CS's base counts outside 64-bit mode).
@inline function code_lin(ip: u64): u64 { return mode64 ? ip : (seg_base(SEG_CS) + ip) & 0xffffffff; }

// The block after block `b` (entered at `ip`) when the next RIP is `nip`:
// through b's link when it is valid, else looked up and linked. 0: none.
// A link is taken only to a block built from the bytes the current fetch
// translation maps at `nip` (the slot may hold another block by now): on the
// fetch page, or on another page the TLB holds for execution. The one-
// instruction path would translate no more than that, so both paths make the
// same translations (the same TLB misses, walks and shadow faults); a TLB
// miss is looked up (and translated) anew. A link made before the current
// fetch generation (a new run(), a mode change, a write to cached code) is
// taken once the block is found to be in the current mode with its bytes
// unchanged: cheaper than the lookup, and the fast path stays three compares.
@inline function block_follow(b: usize, ip: u64, nip: u64): usize {
  const link = b + B_LINKS + (nip == ip + <u64>load<u8>(b + B_LEN) ? 0 : 16);
  if (load<u32>(link + L_GEN) == fetch_gen && load<u64>(link + L_RIP) == nip) {
    const nb = <usize>load<u32>(link + L_BLOCK);
    const lin = code_lin(nip);
    if ((lin & PAGE_HI) == fetch_page && <u32>(fetch_host + <usize>(lin & 0xfff)) == load<u32>(nb + B_HOST)) return nb;
  }
  return block_follow_slow(link, nip);
}
// The rest of block_follow, out of the chain loop: a link to another page or
// from an older generation, else a lookup.
function block_follow_slow(link: usize, nip: u64): usize {
  if (load<u64>(link + L_RIP) == nip) {
    const nb = <usize>load<u32>(link + L_BLOCK);
    const lin = code_lin(nip);
    let h: usize = 0;
    if ((lin & PAGE_HI) == fetch_page) h = fetch_host + <usize>(lin & 0xfff);
    else {
      h = fetch_tlb_hit(lin);
      if (h != 0) fetch_set(lin & PAGE_HI, h - <usize>(lin & 0xfff));
    }
    if (h != 0 && <u32>h == load<u32>(nb + B_HOST) &&
        (load<u32>(link + L_GEN) == fetch_gen || (<u32>load<u8>(nb + B_MODE) == mode_key() && code_matches(nb, h, <i32>load<u8>(nb + B_LEN))))) {
      store<u32>(link + L_GEN, fetch_gen);
      return nb;
    }
  }
  return block_link(link, nip);
}
function block_link(link: usize, nip: u64): usize {
  set_current(nip, 0, nip); // a fetch fault in block_find is delivered at nip
  const nb = block_find(nip);
  if (nb != 0) {
    store<u64>(link + L_RIP, nip);
    store<u32>(link + L_BLOCK, <u32>nb);
    store<u32>(link + L_GEN, fetch_gen);
  }
  return nb;
}

// Where the next blocks_run() looks first: the links of the block the last
// chain stopped at, when it was cut short by the SMP poll, or reached an
// instruction that runs alone (hint_alone: the run loop runs it next, then
// the chain goes on through its links rather than a lookup).
let hint_b: usize = 0;
let hint_ip: u64 = 0;
let hint_gen: u32 = 0;
let hint_alone = false;
// At run() entry: the hint may name another vCPU's block (one core instance
// runs the vCPUs of a deterministic SMP machine in turn).
export function blocks_run_begin(): void { hint_b = 0; }

// A compiled block (cpu/jit.ts) retires all its instructions, unless its
// final branch faults (#GP on a non-canonical target). A block that branches
// back to its own start loops inside the compiled function while its
// instructions fit in `limit` (the first iteration always runs), and reports
// how many iterations it started in B_ITERS.
@inline function block_run_compiled(b: usize, at: u64, j: u32, limit: i32): i32 {
  const insns = <i32>load<u8>(b + B_INSNS);
  store<u32>(VCPU + VCPU_JIT_STOP, 0);
  const nip = call_indirect<u64>(j, at, limit);
  let retired = (<i32>load<u32>(b + B_ITERS) - 1) * insns; // the iterations before the last one
  if ((nip & ~<u64>0xff) == JIT_STOP) {
    // a memory access of uop i stopped it: a fault (uop i not retired), or an
    // exit or a write to code after a store (retired)
    const i = <i32>(nip & 0xff);
    for (let k = 0; k < i; k++) retired += uop_insns(<i32>load<u8>(b + B_UOPS + (<usize>k << 6) + U_KIND));
    const u = b + B_UOPS + (<usize>i << 6);
    if (faulted()) set_current(at + <u64>load<u16>(u + U_OFF), <i32>load<u16>(u + IC_OPCODE), at);
    else {
      const kind = <i32>load<u8>(u + U_KIND);
      retired += uop_insns(kind);
      if (kind == UOP_CALL64) block_next = at + <u64>load<u16>(u + U_OFF) + <u64>load<u8>(u + IC_LEN) + load<u64>(u + U_VAL); // its push stopped it
      else if (jit_uop_at == u) block_next = jit_uop_next; // run by jit_uop: maybe a branch
      else block_next = i + 1 < <i32>load<u8>(b + B_N) ? at + <u64>load<u16>(u + 64 + U_OFF) : at + <u64>load<u8>(b + B_LEN);
    }
  } else if (nip == JIT_BRANCH_GP) {
    const u = b + B_UOPS + ((<usize>load<u8>(b + B_N) - 1) << 6);
    let ip = at + <u64>load<u16>(u + U_OFF);
    if (uop_insns(<i32>load<u8>(u + U_KIND)) == 2) ip += <u64>load<u8>(u + IC_LEN); // the jcc of a fused uop
    retired += insns - 1;
    set_current(ip, 0, ip);
    raise_gp(0);
  } else {
    retired += insns;
    block_next = nip;
  }
  icount_add(retired);
  return retired;
}

// Run blocks from RIP `at` as long as they chain: until `budget` would be
// exceeded, the instruction count reaches `stop_at` (the run loop's next SMP
// poll), an exit is pending, a fault was raised, code was written or there
// is no block at the next RIP. Returns the instructions retired; with none
// and no fault, the instruction at `at` must run alone.
export function blocks_run(at: u64, budget: i32, icount_now: u64, stop_at: u64): i32 {
  if (code_written) { code_written_clear(); links_invalidate(); } // by an instruction that ran alone
  let done = 0;
  let ip = at;
  let ic = icount_now;
  let b: usize;
  if (hint_b != 0 && hint_gen == fetch_gen) {
    if (hint_alone && hint_ip == at) { hint_alone = false; return 0; } // then follow its links
    b = block_follow(hint_b, hint_ip, at);
  } else { set_current(ip, 0, ip); b = block_find(ip); }
  hint_b = 0;
  let compiled = 0; // instructions retired by compiled blocks (counted once, at the end)
  while (b != 0) {
    const room = budget - done;
    if (<i32>load<u8>(b + B_INSNS) > room) break; // the tail of a slice runs one at a time
    const j = load<u32>(b + B_JIT);
    let r: i32 = 0;
    if (j != 0) {
      r = block_run_compiled(b, ip, j, stop_at - ic < <u64>room ? <i32>(stop_at - ic) : room);
      compiled += r;
    } else if (load<u8>(b + B_N) == 0) { // (never compiled)
      hint_b = b; hint_ip = ip; hint_gen = fetch_gen; hint_alone = true;
      break;
    } else r = block_run(b, ip);
    done += r;
    ic += <u64>r;
    if (faulted() || exit_pending != 0) break;
    if (code_written) { code_written_clear(); links_invalidate(); break; }
    const nip = block_next;
    if (done >= budget) break; // the budget ends here: no lookup (it could fault) for a block that cannot run
    if (ic >= stop_at) { hint_b = b; hint_ip = ip; hint_gen = fetch_gen; hint_alone = false; break; }
    b = block_follow(b, ip, nip);
    ip = nip;
  }
  if (compiled != 0) stat_add(STAT_COMPILED_INSNS, <u64>compiled);
  return done;
}
