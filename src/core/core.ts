import { BlockCompiler } from "../jit/compile.js";

/**
 * The WASM core as TypeScript sees it: its exported functions and the layout
 * constants it exports (VCPU_*, EXIT_*, STAT_*, VM_*, MEMSLOT_*). The
 * constants are read from the module, never copied by hand
 * (assembly/cpu/state.ts is their one source of truth).
 */

export interface CoreFunctions {
  run(budget: number): number;
  vcpu_bind(base: number): void;
  vm_bind(base: number): void;
  heap_base(): number;
  memslots_changed(): void;
  tlb_flush_all(): void;
  mmu_reset_context(): void;
  decode_length(rip: bigint): number;
  decoded_field(i: number): number;
}

export interface Core {
  readonly module: WebAssembly.Module;
  readonly instance: WebAssembly.Instance;
  readonly fn: CoreFunctions;
  /** Every exported constant (a WebAssembly.Global) by name. */
  readonly k: Readonly<Record<string, number>>;
  /** Counter names (KVM's lower-case stat names) indexed by STAT_* id. */
  readonly statNames: readonly string[];
  /** Compiles hot blocks for this instance (one per thread). */
  readonly jit: BlockCompiler;
}

/** Memory page limits the module was built with (asconfig.json). */
export const CORE_MAX_PAGES = 65536;

export function instantiateCore(module: WebAssembly.Module, memory: WebAssembly.Memory): Core {
  // the function table compiled blocks are called through (src/jit/, assembly/cpu/jit.ts)
  const table = new WebAssembly.Table({ element: "anyfunc", initial: 1 });
  let jit: BlockCompiler | undefined;
  const jit_compile = (b: number, vcpu: number): number => jit!.compile(b, vcpu);
  const instance = new WebAssembly.Instance(module, { env: { memory, table, jit_compile } });
  const k: Record<string, number> = {};
  for (const [name, value] of Object.entries(instance.exports)) {
    if (value instanceof WebAssembly.Global) {
      const v = value.value as number | bigint;
      k[name] = typeof v === "bigint" ? Number(v) : v;
    }
  }
  const statNames: string[] = [];
  for (const [name, id] of Object.entries(k)) {
    if (name.startsWith("STAT_")) statNames[id] = name.slice(5).toLowerCase();
  }
  jit = new BlockCompiler(memory, table, instance, k, CORE_MAX_PAGES);
  return { module, instance, fn: instance.exports as unknown as CoreFunctions, k, statNames, jit };
}

export function constant(core: Core, name: string): number {
  const v = core.k[name];
  if (v === undefined) throw new Error(`the WASM core exports no constant ${name} (stale build? run npm run build)`);
  return v;
}
