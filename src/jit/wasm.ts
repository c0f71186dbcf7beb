/**
 * A minimal WebAssembly binary writer for the block compiler (compile.ts):
 * one module with imported shared memory and functions, and one exported
 * function whose body the caller writes as opcodes.
 */

export const I32 = 0x7f, I64 = 0x7e;

/** Opcodes the compiler uses. */
export const Op = {
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, br_if: 0x0d, return: 0x0f,
  call: 0x10, drop: 0x1a, select: 0x1b,
  local_get: 0x20, local_set: 0x21, local_tee: 0x22, global_get: 0x23, global_set: 0x24,
  i32_load: 0x28, i64_load: 0x29, i32_load8_u: 0x2d, i64_load8_u: 0x31, i64_load32_u: 0x35,
  i32_store: 0x36, i64_store: 0x37, i64_store8: 0x3c, i64_store32: 0x3e,
  i32_const: 0x41, i64_const: 0x42,
  i32_eqz: 0x45, i32_eq: 0x46, i32_ne: 0x47, i32_lt_s: 0x48, i32_le_s: 0x4c, i32_le_u: 0x4d,
  i64_eqz: 0x50, i64_eq: 0x51, i64_ne: 0x52, i64_lt_s: 0x53, i64_lt_u: 0x54, i64_gt_s: 0x55, i64_gt_u: 0x56, i64_le_s: 0x57, i64_le_u: 0x58,
  i32_add: 0x6a, i32_sub: 0x6b, i32_mul: 0x6c, i32_and: 0x71, i32_or: 0x72, i32_xor: 0x73, i32_shl: 0x74, i32_shr_u: 0x76,
  i64_add: 0x7c, i64_sub: 0x7d, i64_mul: 0x7e, i64_and: 0x83, i64_or: 0x84, i64_xor: 0x85, i64_shl: 0x86, i64_shr_s: 0x87, i64_shr_u: 0x88,
  i32_wrap_i64: 0xa7, i64_extend_i32_u: 0xad,
  void: 0x40,
} as const;

export function uleb(n: number, out: number[]): void {
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
}

export function sleb64(v: bigint, out: number[]): void {
  v = BigInt.asIntN(64, v);
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) { out.push(b); return; }
    out.push(b | 0x80);
  }
}

export function sleb32(v: number, out: number[]): void { sleb64(BigInt(v | 0), out); }

function section(id: number, body: number[], out: number[]): void {
  out.push(id);
  uleb(body.length, out);
  out.push(...body);
}

function name(s: string, out: number[]): void {
  uleb(s.length, out);
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
}

export interface FuncType { params: number[]; results: number[] }
export interface Import { name: string; type: FuncType }
/** A mutable global imported from "env" (global indexes follow this order). */
export interface GlobalImport { name: string; type: number }

/** A function of the module: its locals' types and its code (without the final `end`). */
export interface FuncBody { locals: number[]; code: number[] }

/**
 * Module bytes: imports "env.memory" (shared, `maxPages`), `imports` (as
 * functions 0..n-1) and `globals` (mutable, 0..m-1), defines `funcs`, all of
 * `type`, exported as "f0", "f1", ... and each named `fname` for profilers.
 */
export function moduleBytes(maxPages: number, imports: Import[], globals: GlobalImport[], type: FuncType, funcs: FuncBody[], fname = "f"): Uint8Array<ArrayBuffer> {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const types = [...imports.map((i) => i.type), type];
  const t: number[] = [];
  uleb(types.length, t);
  for (const ft of types) {
    t.push(0x60);
    uleb(ft.params.length, t); t.push(...ft.params);
    uleb(ft.results.length, t); t.push(...ft.results);
  }
  section(1, t, out);
  const im: number[] = [];
  uleb(imports.length + globals.length + 1, im);
  name("env", im); name("memory", im); im.push(0x02, 0x03); uleb(1, im); uleb(maxPages, im);
  imports.forEach((i, n) => { name("env", im); name(i.name, im); im.push(0x00); uleb(n, im); });
  for (const g of globals) { name("env", im); name(g.name, im); im.push(0x03, g.type, 0x01); }
  section(2, im, out);
  const fs: number[] = [];
  uleb(funcs.length, fs);
  for (let i = 0; i < funcs.length; i++) uleb(imports.length, fs); // the type after the imports'
  section(3, fs, out);
  const ex: number[] = [];
  uleb(funcs.length, ex);
  funcs.forEach((_, i) => { name(`f${i}`, ex); ex.push(0x00); uleb(imports.length + i, ex); });
  section(7, ex, out);
  const code: number[] = [];
  uleb(funcs.length, code);
  for (const f of funcs) {
    const fb: number[] = [];
    uleb(f.locals.length, fb);
    for (const l of f.locals) { uleb(1, fb); fb.push(l); }
    fb.push(...f.code, Op.end);
    uleb(fb.length, code); code.push(...fb);
  }
  section(10, code, out);
  // a "name" section, so profiles show `fname` for the functions
  const names: number[] = [];
  name("name", names);
  const fnames: number[] = [];
  uleb(funcs.length, fnames);
  funcs.forEach((_, i) => { uleb(imports.length + i, fnames); name(fname, fnames); });
  names.push(1); uleb(fnames.length, names); names.push(...fnames);
  section(0, names, out);
  return new Uint8Array(out) as Uint8Array<ArrayBuffer>;
}
