/**
 * The block compiler (issue 12): turns a hot block of the WASM core's block
 * cache (assembly/cpu/block.ts) into a WebAssembly function and installs it
 * in the core's function table; the core calls it by call_indirect from then
 * on (assembly/cpu/jit.ts). A uop this file does not emit itself runs in the
 * core through jit_uop; a block keeps running as uops only when it holds a
 * fused uop this file declines or rdtsc.
 *
 * Generated code: guest registers live in locals (all the block uses loaded
 * at entry, the written ones stored at exit). An ALU op's flags stay as three
 * locals (dst, src, result) that a later condition reads inline when it can
 * be decided from them (as the fused uops do), and reach the core's lazy
 * flags (exported globals) only at the end or before a core helper that
 * reads them. Shifts and imul are computed inline; their flags, which the
 * core defines eagerly, are materialised by calling the core on the saved
 * operands only if nothing overwrote them. A block that branches back to its
 * own start loops inside the function while its instructions fit the limit
 * the core passes (the first iteration always runs) and stores how many
 * iterations it started in the block's B_ITERS. A load, store, push, pop,
 * call or ret whose page the software TLB holds with the permission it needs
 * is done inline (the TLB test of mem.ts; for a store, the code map's too);
 * any other, and div, go through core helpers (for the stack uops with RSP
 * in the vCPU struct around the call); when one stops the block (a fault,
 * an exit, a write to code: VCPU_JIT_STOP) the function returns JIT_STOP | uop index with
 * registers and flags as they were before that uop (after it, for a store
 * that did happen), and a final branch to a non-canonical target returns
 * JIT_BRANCH_GP. The record layout and the uop kinds come from the core's
 * exports, never from copies here.
 */
import { moduleBytes, Op, I32, I64, uleb, sleb64, sleb32, type Import, type GlobalImport } from "./wasm.js";

type K = Readonly<Record<string, number>>;

const M32 = 0xffffffffn;
// the opcodes of a TLB hit's inline load / store, by size
const LOAD_OP: Record<number, number> = { 1: Op.i64_load8_u, 4: Op.i64_load32_u, 8: Op.i64_load };
const STORE_OP: Record<number, number> = { 1: Op.i64_store8, 4: Op.i64_store32, 8: Op.i64_store };
const IMPORTS: Import[] = [
  { name: "cond", type: { params: [I32], results: [I32] } },
  { name: "shift", type: { params: [I32, I64, I32, I32], results: [I64] } },
  { name: "imul", type: { params: [I64, I64, I32], results: [I64] } },
  { name: "ld", type: { params: [I64, I32], results: [I64] } },
  { name: "st", type: { params: [I64, I32, I64, I64], results: [] } },
  { name: "div", type: { params: [I64, I32, I32], results: [] } },
  { name: "push", type: { params: [I64, I64], results: [] } },
  { name: "pop", type: { params: [], results: [I64] } },
  { name: "call", type: { params: [I64, I64, I64], results: [] } },
  { name: "ret", type: { params: [], results: [I64] } },
  { name: "uop", type: { params: [I32, I32, I64], results: [I64] } },
];
// the core's lazy flags (assembly/cpu/flags.ts), set directly at a block's end
// and what a load / a store needs in a TLB entry at the current CPL (mmu/tlb.ts)
const GLOBALS: GlobalImport[] = [{ name: "lf_op", type: I32 }, { name: "lf_size", type: I32 }, { name: "lf_dst", type: I64 }, { name: "lf_src", type: I64 }, { name: "lf_res", type: I64 },
  { name: "tlb_need_r", type: I64 }, { name: "tlb_need_w", type: I64 }];
const G_OP = 0, G_SIZE = 1, G_DST = 2, G_SRC = 3, G_RES = 4, G_NEED_R = 5, G_NEED_W = 6;
/** Blocks compiled in one module at most (the one that became hot and warm ones). */
const BATCH = 16;
const F_COND = 0, F_SHIFT = 1, F_IMUL = 2, F_LD = 3, F_ST = 4, F_DIV = 5, F_PUSH = 6, F_POP = 7, F_CALL = 8, F_RET = 9, F_UOP = 10;

/**
 * Flags a block has produced but not yet written to the core: an ALU op's
 * (lazy: op, size, dst, src, result), or a shift's / multiply's, whose flags
 * the core computes eagerly: materialised by calling it again on the saved
 * operands (its result dropped), only if still needed at the end.
 */
interface Flags { lfop: number; aop: number; size: number; d: number; s: number; r: number; call?: "shift" | "imul"; count?: number }

class Emitter {
  code: number[] = [];
  locals: number[] = []; // types of locals after the parameter
  private regLocal = new Map<number, number>();
  writtenRegs = new Set<number>();
  newLocal(type = I64): number { this.locals.push(type); return this.locals.length + 1; } // locals 0 and 1 are the parameters
  reg(r: number): number {
    let l = this.regLocal.get(r);
    if (l === undefined) { l = this.newLocal(); this.regLocal.set(r, l); }
    return l;
  }
  get regs(): [number, number][] { return [...this.regLocal.entries()]; }
  op(...b: number[]): void { this.code.push(...b); }
  get(l: number): void { this.op(Op.local_get); uleb(l, this.code); }
  set(l: number): void { this.op(Op.local_set); uleb(l, this.code); }
  i64(v: bigint): void { this.op(Op.i64_const); sleb64(v, this.code); }
  i32(v: number): void { this.op(Op.i32_const); sleb32(v, this.code); }
  call(f: number): void { this.op(Op.call); uleb(f, this.code); }
  /** A register's value, masked to 32 bits for size 4 (8 for size 1: the low byte). */
  readReg(r: number, size: number): void {
    this.get(this.reg(r));
    if (size === 4) { this.i64(M32); this.op(Op.i64_and); }
    else if (size === 1) { this.i64(0xffn); this.op(Op.i64_and); }
  }
  /** Use register r (every register a block uses is loaded at entry). */
  markRead(r: number): void { this.reg(r); }
  /** Pop a value into a register (already zero-extended when size 4). */
  writeReg(r: number): void { this.set(this.reg(r)); this.writtenRegs.add(r); }
  sext(size: number): void {
    if (size === 4) { this.i64(32n); this.op(Op.i64_shl); this.i64(32n); this.op(Op.i64_shr_s); }
    else if (size === 1) { this.i64(56n); this.op(Op.i64_shl); this.i64(56n); this.op(Op.i64_shr_s); }
  }
}

export class BlockCompiler {
  compiled = 0;
  private readonly sentinel: bigint;
  private readonly stop: bigint;
  constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly table: WebAssembly.Table,
    private readonly instance: WebAssembly.Instance,
    private readonly k: K,
    private readonly maxPages: number,
    /** Stop compiling after this many blocks (the table and V8's code space are not freed). */
    private readonly limit = 4096,
  ) {
    this.sentinel = BigInt.asUintN(64, (instance.exports.JIT_BRANCH_GP as WebAssembly.Global).value as bigint);
    this.stop = BigInt.asUintN(64, (instance.exports.JIT_STOP as WebAssembly.Global).value as bigint);
  }

  /** What went wrong compiling (a bug: the block then keeps running as uops); the fuzzer reports it. */
  readonly errors: string[] = [];

  /** Compile block `b` of the vCPU at `vcpu`: its table index, or 0 when it has other uops. */
  compile(b: number, vcpu: number): number {
    if (this.compiled >= this.limit) return 0;
    try {
      return this.install(b, vcpu);
    } catch (e) {
      // never let an exception unwind through the core's run(): it is mid-instruction
      this.noteError(b, e);
      return 0;
    }
  }
  private noteError(b: number, e: unknown): void {
    if (this.errors.length < 16) this.errors.push(`block at 0x${b.toString(16)}: ${(e as Error).message}`);
  }

  /**
   * Compile block `b` and, in the same module, up to BATCH - 1 other warm
   * blocks of the vCPU's cache (run at least a quarter as often): V8 spends
   * ~0.5 ms setting up each module and little per function, and a function
   * never called is never compiled (lazily). The others get their table
   * index here; the core stores b's from the return value.
   */
  private install(b: number, vcpu: number): number {
    const first = this.generate(b, vcpu);
    if (!first) return 0;
    const k = this.k, dv = new DataView(this.memory.buffer);
    const funcs = [first], blocks = [b];
    for (const o of this.warmBlocks(b, vcpu)) {
      if (funcs.length >= BATCH || this.compiled + funcs.length >= this.limit) break;
      let g;
      try { g = this.generate(o, vcpu); } catch (err) { this.noteError(o, err); }
      if (g) { funcs.push(g); blocks.push(o); }
    }
    const e = this.instance.exports;
    const bytes = moduleBytes(this.maxPages, IMPORTS, GLOBALS, { params: [I64, I32], results: [I64] }, funcs, "jit/block");
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { memory: this.memory, cond: e.jit_cond, shift: e.jit_shift, imul: e.jit_imul, ld: e.jit_ld, st: e.jit_st, div: e.jit_div, push: e.jit_push, pop: e.jit_pop, call: e.jit_call, ret: e.jit_ret, uop: e.jit_uop,
        lf_op: e.lf_op, lf_size: e.lf_size, lf_dst: e.lf_dst, lf_src: e.lf_src, lf_res: e.lf_res, tlb_need_r: e.tlb_need_r, tlb_need_w: e.tlb_need_w },
    });
    const base = this.table.grow(funcs.length);
    blocks.forEach((o, i) => {
      this.table.set(base + i, inst.exports[`f${i}`] as (ip: bigint, max: number) => bigint);
      if (i > 0) dv.setUint32(o + k.B_JIT!, base + i, true);
    });
    this.compiled += funcs.length;
    if (blocks.length > 1) { // the core counts b itself
      const stat = vcpu + k.VCPU_STATS! + k.STAT_BLOCKS_COMPILED! * 8;
      dv.setBigUint64(stat, dv.getBigUint64(stat, true) + BigInt(blocks.length - 1), true);
    }
    return base;
  }

  /** Blocks of the vCPU's cache, other than `b`, not compiled and run at least a quarter as often as `b`: hottest first. */
  private warmBlocks(b: number, vcpu: number): number[] {
    // a scan of every entry of the cache, in cold JS on each compile: typed
    // arrays and the layout's offsets read once (records are 4-byte aligned)
    const k = this.k;
    const u8 = new Uint8Array(this.memory.buffer), u32 = new Uint32Array(this.memory.buffer);
    const size = k.BLOCK_SIZE!, first = vcpu + k.VCPU_BLOCKS!, end = first + k.BLOCK_ENTRIES! * size;
    const mode = k.B_MODE!, n = k.B_N!, jit = k.B_JIT!, hotAt = k.B_HOT!;
    const bar = Math.max(1, u32[(b + hotAt) >> 2]! >>> 2);
    const found: [number, number][] = [];
    for (let o = first; o < end; o += size) {
      const hot = u32[(o + hotAt) >> 2]!;
      if (hot < bar || o === b || u8[o + mode] === 0 || u8[o + n] === 0 || u32[(o + jit) >> 2] !== 0) continue;
      found.push([hot, o]);
    }
    return found.sort((x, y) => y[0] - x[0]).map(([, o]) => o);
  }

  /** The function body for block `b`, or undefined when it must keep running as uops. */
  generate(b: number, vcpu: number): { locals: number[]; code: number[] } | undefined {
    // a block with uops run by the core (jit_uop) is generated twice: the
    // first pass finds the registers the block writes (spilled to the vCPU
    // struct before each such uop) and uses (read back after it)
    const first = this.emit(b, vcpu);
    if (!first || !first.viaCore) return first;
    return this.emit(b, vcpu, { written: first.written, used: first.used });
  }

  private emit(b: number, vcpu: number, spill?: { written: number[]; used: number[] }):
    { locals: number[]; code: number[]; written: number[]; used: number[]; viaCore: boolean } | undefined {
    const k = this.k;
    const dv = new DataView(this.memory.buffer);
    const u8 = (a: number) => dv.getUint8(a), i8 = (a: number) => dv.getInt8(a), u16 = (a: number) => dv.getUint16(a, true);
    const u64 = (a: number) => dv.getBigUint64(a, true);
    const n = u8(b + k.B_N!), len = u8(b + k.B_LEN!), insnsPer = u8(b + k.B_INSNS!);
    const e = new Emitter(); // the prologue's code (register loads); locals are body's
    const body = new Emitter();
    let fl: Flags | undefined;
    const emitFlagsStore = (f: Flags): void => {
      if (f.call === "shift") { body.i32(f.aop); body.get(f.d); body.i32(f.count!); body.i32(f.size); body.call(F_SHIFT); body.op(Op.drop); return; }
      if (f.call === "imul") { body.get(f.d); body.get(f.s); body.i32(f.size); body.call(F_IMUL); body.op(Op.drop); return; }
      const logic = f.lfop === k.LF_LOGIC;
      const gset = (g: number): void => { body.op(Op.global_set); uleb(g, body.code); };
      body.i32(f.lfop); gset(G_OP); body.i32(f.size); gset(G_SIZE);
      if (logic) { body.i64(0n); gset(G_DST); body.i64(0n); gset(G_SRC); } else { body.get(f.d); gset(G_DST); body.get(f.s); gset(G_SRC); }
      body.get(f.r); gset(G_RES);
    };
    const storeFlags = (): void => {
      if (!fl) return;
      emitFlagsStore(fl);
      fl = undefined;
    };
    const sign = (l: number, size: number): void => { body.get(l); body.sext(size); body.i64(0n); body.op(Op.i64_lt_s); };
    /** Push the condition `cc` (i32 0/1). */
    const cond = (cc: number): void => {
      const c2 = cc >> 1;
      const f = fl && !fl.call ? fl : undefined;
      const sub = f && (f.aop === k.ALU_SUB || f.aop === k.ALU_CMP);
      const logic = f && (f.aop === k.ALU_AND || f.aop === k.ALU_OR || f.aop === k.ALU_XOR || f.aop === k.ALU_TEST);
      if (f && sub && c2 !== 0 && c2 !== 5) {
        switch (c2) {
          case 1: body.get(f.d); body.get(f.s); body.op(Op.i64_lt_u); break;
          case 2: body.get(f.r); body.op(Op.i64_eqz); break;
          case 3: body.get(f.d); body.get(f.s); body.op(Op.i64_le_u); break;
          case 4: sign(f.r, f.size); break;
          case 6: body.get(f.d); body.sext(f.size); body.get(f.s); body.sext(f.size); body.op(Op.i64_lt_s); break;
          default: body.get(f.d); body.sext(f.size); body.get(f.s); body.sext(f.size); body.op(Op.i64_le_s); break;
        }
      } else if (f && logic && c2 !== 5) {
        switch (c2) {
          case 0: case 1: body.i32(0); break;
          case 2: case 3: body.get(f.r); body.op(Op.i64_eqz); break;
          case 4: case 6: sign(f.r, f.size); break;
          default: body.get(f.r); body.op(Op.i64_eqz); sign(f.r, f.size); body.op(Op.i32_or); break;
        }
      } else {
        storeFlags();
        body.i32(cc); body.call(F_COND);
        return;
      }
      if (cc & 1) body.op(Op.i32_eqz);
    };
    /** dst OP src at size (an ALU uop), flags kept as locals; the result written unless cmp/test. */
    const alu = (a: number, aop: number, size: number, src: () => void, dst?: number): boolean => {
      if (aop === k.ALU_ADC || aop === k.ALU_SBB) return false;
      const d = dst ?? body.newLocal(), s = body.newLocal(), r = body.newLocal();
      if (dst === undefined) { body.readReg(a, size); body.set(d); }
      src(); body.set(s);
      body.get(d); body.get(s);
      let lfop: number;
      switch (aop) {
        case k.ALU_ADD: body.op(Op.i64_add); lfop = k.LF_ADD!; break;
        case k.ALU_OR: body.op(Op.i64_or); lfop = k.LF_LOGIC!; break;
        case k.ALU_AND: case k.ALU_TEST: body.op(Op.i64_and); lfop = k.LF_LOGIC!; break;
        case k.ALU_XOR: body.op(Op.i64_xor); lfop = k.LF_LOGIC!; break;
        default: body.op(Op.i64_sub); lfop = k.LF_SUB!; break; // sub, cmp
      }
      if (size === 4) { body.i64(M32); body.op(Op.i64_and); } else if (size === 1) { body.i64(0xffn); body.op(Op.i64_and); }
      body.set(r);
      if (aop !== k.ALU_CMP && aop !== k.ALU_TEST && dst === undefined) {
        if (size === 1) { body.markRead(a); body.get(body.reg(a)); body.i64(~0xffn); body.op(Op.i64_and); body.get(r); body.op(Op.i64_or); }
        else body.get(r);
        body.writeReg(a);
      }
      fl = { lfop, aop, size, d, s, r };
      return true;
    };
    const nip = body.newLocal();
    const iters = body.newLocal(I32);
    const stopAt = body.newLocal(I32); // the uop a memory access stopped at, -1: none
    body.i32(0); body.set(iters);
    body.i32(-1); body.set(stopAt);
    body.op(Op.block, Op.void); // stops leave through here
    body.op(Op.loop, Op.void);
    body.get(iters); body.i32(1); body.op(Op.i32_add); body.set(iters);
    /** Push 1 when local `v` holds a canonical address. */
    const canonical = (v: number): void => { body.get(v); body.i64(16n); body.op(Op.i64_shl); body.i64(16n); body.op(Op.i64_shr_s); body.get(v); body.op(Op.i64_eq); };
    /** nip = target of a near branch at operand size `opsize` (target on the stack). */
    const branchTarget = (opsize: number): void => {
      if (opsize !== 8) { body.i64(M32); body.op(Op.i64_and); body.set(nip); return; }
      const t = body.newLocal();
      body.set(t);
      body.get(t); body.i64(this.sentinel); canonical(t); body.op(Op.select); body.set(nip); // canonical ? t : sentinel
    };
    const ipPlus = (delta: bigint): void => { body.get(0); body.i64(delta); body.op(Op.i64_add); };
    const mode64 = (u8(b + k.B_MODE!) & 0x10) !== 0;
    /** The linear address of uop `u`'s memory operand (uops.ts: uop_lin), into a new local. */
    const linear = (u: number, next: bigint): number | undefined => {
      if (u8(u + k.IC_ADDRSIZE!) === 2) return undefined;
      const base = i8(u + k.IC_BASE!), index = i8(u + k.IC_INDEX!), scale = u8(u + k.IC_SCALE!), seg = u8(u + k.IC_SEG!);
      body.i64(u64(u + k.IC_DISP!));
      if (base >= 0) { body.readReg(base, 8); body.op(Op.i64_add); }
      if (index >= 0) { body.readReg(index, 8); body.i64(BigInt(scale)); body.op(Op.i64_shl); body.op(Op.i64_add); }
      if ((u8(u + k.IC_FLAGS!) & 8) !== 0) { ipPlus(next); body.op(Op.i64_add); }
      if (u8(u + k.IC_ADDRSIZE!) === 4) { body.i64(M32); body.op(Op.i64_and); }
      if (!mode64 || seg >= k.SEG_FS!) { // a segment base: read from the vCPU struct at run time
        body.i32(vcpu + k.VCPU_SEGS! + seg * k.SEG_SIZE! + k.SEG_BASE!); body.op(Op.i64_load, 3, 0); body.op(Op.i64_add);
        if (!mode64) { body.i64(M32); body.op(Op.i64_and); }
      }
      const l = body.newLocal(); body.set(l);
      return l;
    };
    /** RSP to the vCPU struct before a stack helper, and back after (it may have moved it). */
    const rspAddr = vcpu + k.VCPU_REGS! + 4 * 8;
    const spOut = (): void => { body.i32(rspAddr); body.get(body.reg(4)); body.op(Op.i64_store, 3, 0); };
    const spIn = (): void => { body.i32(rspAddr); body.op(Op.i64_load, 3, 0); body.writeReg(4); };
    /** After a memory helper: leave through the stop path when it stopped the block (uop `i`); `depth`: blocks the caller has opened since the loop. */
    const checkStop = (i: number, depth = 0): void => {
      body.i32(vcpu + k.VCPU_JIT_STOP!); body.op(Op.i32_load, 2, 0);
      body.op(Op.if, Op.void);
      if (fl) emitFlagsStore(fl); // the flags as they were before the instruction
      body.i32(i); body.set(stopAt); body.op(Op.br, 2 + depth);
      body.op(Op.end);
    };
    /**
     * The TLB hit test of mem.ts (tlb_hit) inline: pushes 1 when the entry
     * for `lin` holds its page with the permission in global `need` and
     * `size` bytes fit in the page, leaving the entry's address in local `e`.
     */
    const tlbHit = (lin: number, e: number, need: number, size: number): void => {
      body.get(lin); body.i64(12n); body.op(Op.i64_shr_u); body.op(Op.i32_wrap_i64);
      body.i32(k.TLB_ENTRIES! - 1); body.op(Op.i32_and); body.i32(4); body.op(Op.i32_shl);
      body.i32(vcpu + k.VCPU_TLB!); body.op(Op.i32_add); body.set(e);
      body.get(e); body.op(Op.i64_load, 3, 0); body.get(lin); body.op(Op.i64_xor); body.i64(~0xfffn); body.op(Op.i64_and); body.op(Op.i64_eqz);
      body.get(e); body.op(Op.i64_load, 3, 0); body.op(Op.global_get); uleb(need, body.code); body.op(Op.i64_and); body.op(Op.i64_eqz); body.op(Op.i32_eqz);
      body.op(Op.i32_and);
      if (size > 1) { pageOff(lin); body.i32(4096 - size); body.op(Op.i32_le_u); body.op(Op.i32_and); }
    };
    const pageOff = (lin: number): void => { body.get(lin); body.op(Op.i32_wrap_i64); body.i32(0xfff); body.op(Op.i32_and); };
    /** The host address of a TLB hit: the entry's host page plus the offset. */
    const hostAddr = (lin: number, e: number): void => { body.get(e); body.op(Op.i32_load, 2, 8); pageOff(lin); body.op(Op.i32_add); };
    // A load or store that hits the TLB is done here (as read64/write64 do
    // it, with no call); anything else, and a store to a page that holds
    // cached code (the code map), goes through the core's helper.
    /** Push 1 when a store of `size` bytes at `lin` can be done inline, with its host address in local `h`. */
    const storeHit = (lin: number, h: number, size: number): void => {
      const e = body.newLocal(I32);
      tlbHit(lin, e, G_NEED_W, size);
      body.op(Op.if, I32);
      // a hit: 1 unless the page's bit in the code map is set (mem.ts: smc_check)
      hostAddr(lin, e); body.op(Op.local_tee); uleb(h, body.code);
      body.i32(15); body.op(Op.i32_shr_u); body.op(Op.i32_load8_u, 0); uleb(vcpu + k.VCPU_CODE_MAP!, body.code);
      body.get(h); body.i32(12); body.op(Op.i32_shr_u); body.i32(7); body.op(Op.i32_and); body.op(Op.i32_shr_u);
      body.i32(1); body.op(Op.i32_and); body.op(Op.i32_eqz);
      body.op(Op.else); body.i32(0); body.op(Op.end);
    };
    /** Push the value of a load of `size` bytes at `lin`: inline on a TLB hit, else `slow` (which leaves it on the stack). */
    const loadOr = (lin: number, size: number, slow: () => void): void => {
      const e = body.newLocal(I32);
      tlbHit(lin, e, G_NEED_R, size);
      body.op(Op.if, I64);
      hostAddr(lin, e); body.op(LOAD_OP[size]!, 0, 0);
      body.op(Op.else); slow(); body.op(Op.end);
    };
    const load = (u: number, next: bigint, size: number, i: number): number | undefined => {
      const lin = linear(u, next);
      if (lin === undefined) return undefined;
      const v = body.newLocal();
      loadOr(lin, size, () => { body.get(lin); body.i32(size); body.call(F_LD); });
      body.set(v);
      checkStop(i); // (a hit leaves VCPU_JIT_STOP as the block found it: clear)
      return v;
    };
    const store = (u: number, next: bigint, size: number, i: number, value: () => void, off: number): boolean => {
      const lin = linear(u, next);
      if (lin === undefined) return false;
      const h = body.newLocal(I32);
      storeHit(lin, h, size);
      body.op(Op.if, Op.void);
      body.get(h); value(); body.op(STORE_OP[size]!, 0, 0);
      body.op(Op.else);
      body.get(lin); body.i32(size); value(); ipPlus(BigInt(off)); body.call(F_ST);
      checkStop(i, 1);
      body.op(Op.end);
      return true;
    };
    // The stack uops (64-bit mode: SS's base is not used) inline when the
    // stack slot hits the TLB, else through the core's helper with RSP in
    // the vCPU struct (a non-canonical RSP never hits: the TLB holds
    // canonical pages only, so the helper raises #SS).
    /**
     * Store `value` (8 bytes) below RSP and move RSP inline, when `ok` (if
     * given) pushes 1 and the slot hits the TLB; else run `slow` (the core's
     * helper, RSP in the vCPU struct around it).
     */
    const pushOr = (i: number, value: () => void, slow: () => void, ok?: () => void): void => {
      const sp = body.newLocal(), h = body.newLocal(I32);
      body.get(body.reg(4)); body.i64(8n); body.op(Op.i64_sub); body.set(sp);
      if (ok) { ok(); body.op(Op.if, I32); storeHit(sp, h, 8); body.op(Op.else); body.i32(0); body.op(Op.end); } else storeHit(sp, h, 8);
      body.op(Op.if, Op.void);
      body.get(h); value(); body.op(Op.i64_store, 0, 0);
      body.get(sp); body.writeReg(4);
      body.op(Op.else);
      spOut(); slow(); spIn();
      checkStop(i, 1);
      body.op(Op.end);
    };
    /**
     * Load the 8 bytes at RSP into a new local and move RSP past them inline,
     * when the slot hits the TLB and `ok` (if given) pushes 1 for the value;
     * else `slow` pushes the value (the core's helper moves RSP).
     */
    const popOr = (i: number, slow: () => void, ok?: (v: number) => void): number => {
      const v = body.newLocal(), e = body.newLocal(I32), sp = body.reg(4);
      tlbHit(sp, e, G_NEED_R, 8);
      body.op(Op.if, I32);
      hostAddr(sp, e); body.op(Op.i64_load, 0, 0); body.set(v);
      if (ok) ok(v); else body.i32(1);
      body.op(Op.else); body.i32(0); body.op(Op.end);
      body.op(Op.if, Op.void);
      body.get(sp); body.i64(8n); body.op(Op.i64_add); body.writeReg(4);
      body.op(Op.else);
      spOut(); slow(); body.set(v); spIn();
      checkStop(i, 1);
      body.op(Op.end);
      return v;
    };
    /** The jcc half of a fused uop: nip = taken ? target : the instruction after the jcc. */
    const fusedBranch = (u: number, next: bigint): void => {
      const jnext = next + BigInt(u8(u + k.U_JLEN!));
      cond(u8(u + k.U_CC!));
      body.op(Op.if, I64); ipPlus(jnext + u64(u + k.U_JREL!)); body.op(Op.else); ipPlus(jnext); body.op(Op.end);
      branchTarget(u8(u + k.U_JSIZE!)); // only the taken side can be non-canonical
    };
    /** Run uop `i` (record `u`) in the core: the registers the block writes go to the vCPU struct before, those it uses come back after; the flags go through the core. */
    let usedCore = false;
    const viaCore = (i: number, kind: number, u: number, off: number): void => {
      usedCore = true;
      storeFlags();
      for (const r of spill?.written ?? []) { body.i32(vcpu + k.VCPU_REGS! + r * 8); body.get(body.reg(r)); body.op(Op.i64_store, 3, 0); }
      body.i32(kind); body.i32(u); ipPlus(BigInt(off)); body.call(F_UOP);
      for (const r of spill?.used ?? []) { body.i32(vcpu + k.VCPU_REGS! + r * 8); body.op(Op.i64_load, 3, 0); body.writeReg(r); }
      checkStop(i); // the nip it returned stays on the stack: a stop leaves through a br that drops it
    };
    let ended = false;
    for (let i = 0; i < n; i++) {
      const u = b + k.B_UOPS! + i * 64;
      const kind = u8(u + k.U_KIND!), off = u16(u + k.U_OFF!), a = u8(u + k.U_A!), rb = u8(u + k.U_B!), c = u8(u + k.U_C!);
      const val = u64(u + k.U_VAL!), ilen = u8(u + k.IC_LEN!), opsize = u8(u + k.IC_OPSIZE!);
      const next = BigInt(off + ilen);
      const emit = (): boolean => {
        switch (kind) {
          case k.UOP_NOP: break;
          case k.UOP_MOV_RR64: body.readReg(rb, 8); body.writeReg(a); break;
          case k.UOP_MOV_RR32: body.readReg(rb, 4); body.writeReg(a); break;
          case k.UOP_MOV_RI: body.i64(val); body.writeReg(a); break;
          case k.UOP_MOVZX8_RR: body.readReg(rb, 8); body.i64(0xffn); body.op(Op.i64_and); body.writeReg(a); break;
          case k.UOP_MOVSXD: body.readReg(rb, 8); body.sext(4); body.writeReg(a); break;
          case k.UOP_CDQE: body.readReg(0, 8); body.sext(4); body.writeReg(0); break;
          case k.UOP_CQO:
            if (rb === 8) { body.readReg(0, 8); body.i64(63n); body.op(Op.i64_shr_s); }
            else { body.readReg(0, 8); body.sext(4); body.i64(63n); body.op(Op.i64_shr_s); body.i64(M32); body.op(Op.i64_and); }
            body.writeReg(2);
            break;
          case k.UOP_NOT:
            body.readReg(a, 8); body.i64(-1n); body.op(Op.i64_xor);
            if (rb !== 8) { body.i64(M32); body.op(Op.i64_and); }
            body.writeReg(a);
            break;
          case k.UOP_LEA64: case k.UOP_LEA32: {
            const base = i8(u + k.IC_BASE!), index = i8(u + k.IC_INDEX!), scale = u8(u + k.IC_SCALE!);
            body.i64(u64(u + k.IC_DISP!));
            if (base >= 0) { body.readReg(base, 8); body.op(Op.i64_add); }
            if (index >= 0) { body.readReg(index, 8); body.i64(BigInt(scale)); body.op(Op.i64_shl); body.op(Op.i64_add); }
            if ((u8(u + k.IC_FLAGS!) & 8) !== 0) { ipPlus(next); body.op(Op.i64_add); }
            if (u8(u + k.IC_ADDRSIZE!) === 4 || kind === k.UOP_LEA32) { body.i64(M32); body.op(Op.i64_and); }
            if (u8(u + k.IC_ADDRSIZE!) === 2) return false;
            body.writeReg(a);
            break;
          }
          case k.UOP_ALU_RR64: if (!alu(a, c, 8, () => body.readReg(rb, 8))) return false; break;
          case k.UOP_ALU_RR32: if (!alu(a, c, 4, () => body.readReg(rb, 4))) return false; break;
          case k.UOP_ALU_RI64: if (!alu(a, c, 8, () => body.i64(val))) return false; break;
          case k.UOP_ALU_RI32: if (!alu(a, c, 4, () => body.i64(val & M32))) return false; break;
          case k.UOP_SHIFT64: case k.UOP_SHIFT32: { // shl 4, shr 5, sar 7 by a constant 1..63
            const size = kind === k.UOP_SHIFT64 ? 8 : 4;
            const count = Number(val);
            const d = body.newLocal();
            body.readReg(a, size); body.set(d);
            if (c === 7) { body.get(d); body.sext(size); body.i64(BigInt(count)); body.op(Op.i64_shr_s); }
            else { body.get(d); body.i64(BigInt(count)); body.op(c === 4 ? Op.i64_shl : Op.i64_shr_u); }
            if (size === 4 && c !== 5) { body.i64(M32); body.op(Op.i64_and); }
            body.writeReg(a);
            fl = { lfop: 0, aop: c, size, d, s: 0, r: 0, call: "shift", count };
            break;
          }
          case k.UOP_IMUL_RR64: case k.UOP_IMUL_RR32: case k.UOP_IMUL_RRI64: case k.UOP_IMUL_RRI32: {
            const size = kind === k.UOP_IMUL_RR64 || kind === k.UOP_IMUL_RRI64 ? 8 : 4;
            const rr = kind === k.UOP_IMUL_RR64 || kind === k.UOP_IMUL_RR32;
            const x = body.newLocal(), y = body.newLocal();
            body.readReg(rr ? a : rb, size); body.set(x);
            if (rr) body.readReg(rb, size); else body.i64(val);
            body.set(y);
            body.get(x); body.get(y); body.op(Op.i64_mul); // the low half does not depend on the sign extension
            if (size === 4) { body.i64(M32); body.op(Op.i64_and); }
            body.writeReg(a);
            fl = { lfop: 0, aop: 0, size, d: x, s: y, r: 0, call: "imul" };
            break;
          }
          case k.UOP_CMOV64:
            body.markRead(a); // kept when the condition is false
            cond(c);
            body.op(Op.if, Op.void); body.readReg(rb, 8); body.writeReg(a); body.op(Op.end);
            break;
          case k.UOP_CMOV32: // zero-extends even when false
            body.readReg(rb, 4); body.readReg(a, 4); cond(c); body.op(Op.select); body.writeReg(a);
            break;
          case k.UOP_FUSED_RR64: case k.UOP_FUSED_RR32: case k.UOP_FUSED_RI64: case k.UOP_FUSED_RI32: {
            const size = kind === k.UOP_FUSED_RR64 || kind === k.UOP_FUSED_RI64 ? 8 : 4;
            const rr = kind === k.UOP_FUSED_RR64 || kind === k.UOP_FUSED_RR32;
            if (!alu(a, c, size, rr ? () => body.readReg(rb, size) : () => body.i64(size === 4 ? val & M32 : val))) return false;
            fusedBranch(u, next);
            ended = true;
            break;
          }
          case k.UOP_JCC:
            cond(c);
            body.op(Op.if, I64); ipPlus(next + val); body.op(Op.else); ipPlus(next); body.op(Op.end);
            branchTarget(opsize);
            ended = true;
            break;
          case k.UOP_JMP: ipPlus(next + val); branchTarget(opsize); ended = true; break;
          case k.UOP_LOAD64: case k.UOP_LOAD32: case k.UOP_LOAD_ZX8: {
            const v = load(u, next, kind === k.UOP_LOAD64 ? 8 : kind === k.UOP_LOAD32 ? 4 : 1, i);
            if (v === undefined) return false;
            body.get(v); body.writeReg(a);
            break;
          }
          case k.UOP_STORE64: case k.UOP_STORE32: case k.UOP_STORE8: {
            const size = kind === k.UOP_STORE64 ? 8 : kind === k.UOP_STORE32 ? 4 : 1;
            if (!store(u, next, size, i, () => body.readReg(a, size), off)) return false;
            break;
          }
          case k.UOP_MOV_MI64: case k.UOP_MOV_MI32: case k.UOP_MOV_MI8: {
            const size = kind === k.UOP_MOV_MI64 ? 8 : kind === k.UOP_MOV_MI32 ? 4 : 1;
            if (!store(u, next, size, i, () => body.i64(val), off)) return false;
            break;
          }
          case k.UOP_ALU_RM64: case k.UOP_ALU_RM32: {
            const size = kind === k.UOP_ALU_RM64 ? 8 : 4;
            const v = load(u, next, size, i);
            if (v === undefined || !alu(a, c, size, () => body.get(v))) return false;
            break;
          }
          case k.UOP_CMP_MI64: case k.UOP_CMP_MI32: case k.UOP_CMP_MI8: {
            const size = kind === k.UOP_CMP_MI64 ? 8 : kind === k.UOP_CMP_MI32 ? 4 : 1;
            const v = load(u, next, size, i);
            if (v === undefined || !alu(0, k.ALU_CMP!, size, () => body.i64(size === 8 ? val : val & (size === 4 ? M32 : 0xffn)), v)) return false;
            break;
          }
          case k.UOP_ALU_RI8:
            if (!alu(a, c, 1, () => body.i64(val & 0xffn))) return false;
            break;
          case k.UOP_FUSED_RI8: case k.UOP_FUSED_MI8: case k.UOP_FUSED_MI32: case k.UOP_FUSED_MI64: {
            const size = kind === k.UOP_FUSED_MI64 ? 8 : kind === k.UOP_FUSED_MI32 ? 4 : 1;
            const imm = size === 8 ? val : val & (size === 4 ? M32 : 0xffn);
            if (kind === k.UOP_FUSED_RI8) { if (!alu(a, c, 1, () => body.i64(imm))) return false; }
            else {
              const v = load(u, next, size, i);
              if (v === undefined || !alu(0, k.ALU_CMP!, size, () => body.i64(imm), v)) return false;
            }
            fusedBranch(u, next);
            ended = true;
            break;
          }
          case k.UOP_DIV: case k.UOP_IDIV: {
            // the core divides rdx:rax in the vCPU struct: write them back, call, read them back
            const size = rb;
            const src = body.newLocal();
            body.readReg(a, size); body.set(src);
            for (const r of [0, 2]) { body.markRead(r); body.i32(vcpu + k.VCPU_REGS! + r * 8); body.get(body.reg(r)); body.op(Op.i64_store, 3, 0); }
            body.get(src); body.i32(size); body.i32(kind === k.UOP_IDIV ? 1 : 0); body.call(F_DIV);
            checkStop(i); // #DE: rax and rdx untouched, as stored
            for (const r of [0, 2]) { body.i32(vcpu + k.VCPU_REGS! + r * 8); body.op(Op.i64_load, 3, 0); body.writeReg(r); }
            break;
          }
          case k.UOP_PUSH64: {
            const v = body.newLocal();
            body.readReg(a, 8); body.set(v); // push rsp pushes the old value
            pushOr(i, () => body.get(v), () => { body.get(v); ipPlus(BigInt(off)); body.call(F_PUSH); });
            break;
          }
          case k.UOP_POP64: {
            const v = popOr(i, () => body.call(F_POP));
            body.get(v); body.writeReg(a); // pop rsp: the popped value wins
            break;
          }
          case k.UOP_CALL64: { // #GP(0) before the push when the target is not canonical (the helper raises it)
            const t = body.newLocal();
            ipPlus(next + val); body.set(t);
            pushOr(i, () => ipPlus(next), () => { body.get(t); ipPlus(next); ipPlus(BigInt(off)); body.call(F_CALL); }, () => canonical(t));
            body.get(t); body.set(nip);
            ended = true;
            break;
          }
          case k.UOP_RET64: { // #GP(0) for a non-canonical return address, RSP unchanged (the helper raises it)
            const t = popOr(i, () => body.call(F_RET), canonical);
            body.get(t); body.set(nip);
            ended = true;
            break;
          }
          default: return false;
        }
        return true;
      };
      // a uop the compiler does not emit itself (or a form of one it declines)
      // runs in the core through jit_uop; what the attempt emitted is dropped
      const mark = body.code.length, flBefore = fl, endedBefore: boolean = ended;
      if (!emit()) {
        if (kind >= k.UOP_FUSED_FIRST! && kind <= k.UOP_FUSED_LAST!) return undefined; // a fused uop's fault rules are block_run's
        if (kind === k.UOP_GENERIC && u16(u + k.IC_OPCODE!) === 0x131) return undefined; // rdtsc reads the retired count, exact only between uops
        body.code.length = mark; fl = flBefore; ended = endedBefore;
        viaCore(i, kind, u, off);
        if (i === n - 1) { body.set(nip); ended = true; } else body.op(Op.drop);
      }
      if (ended && i !== n - 1) return undefined; // a branch ends its block
    }
    if (!ended) { ipPlus(BigInt(len)); body.set(nip); }
    // back to the start while the block branches to itself and the core allows more
    // another iteration while (iters + 1) * insns <= limit, i.e. iters * insns < limit - insns + 1
    body.get(nip); body.get(0); body.op(Op.i64_eq); body.get(iters); body.i32(insnsPer); body.op(Op.i32_mul); body.get(1); body.i32(insnsPer); body.op(Op.i32_sub); body.op(Op.i32_le_s); body.op(Op.i32_and);
    body.op(Op.if, Op.void);
    // the next iteration starts from the flags this one left: a condition or a
    // stop before its first producer must find them in the core
    if (fl) emitFlagsStore(fl);
    body.op(Op.br, 1, Op.end, Op.end);
    storeFlags(); // a stop stored the flags it left behind itself
    body.op(Op.end); // the stop block
    body.i32(b + k.B_ITERS!); body.get(iters); body.op(Op.i32_store, 2, 0);
    // prologue: every register the block uses (a stop may leave from any
    // iteration, so each written register must hold its value in every
    // one); epilogue: the registers written
    for (const [r, l] of body.regs) {
      e.i32(vcpu + k.VCPU_REGS! + r * 8); e.op(Op.i64_load, 3, 0); e.set(l);
    }
    for (const r of body.writtenRegs) {
      body.i32(vcpu + k.VCPU_REGS! + r * 8); body.get(body.reg(r)); body.op(Op.i64_store, 3, 0);
    }
    // nip, or JIT_STOP | uop index after a stop
    body.i64(this.stop); body.get(stopAt); body.op(Op.i64_extend_i32_u); body.op(Op.i64_or);
    body.get(nip);
    body.get(stopAt); body.i32(0); body.op(Op.i32_lt_s); body.op(Op.i32_eqz);
    body.op(Op.select);
    return { locals: body.locals, code: [...e.code, ...body.code], written: [...body.writtenRegs], used: body.regs.map(([r]) => r), viaCore: usedCore };
  }
}
