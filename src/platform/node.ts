/** Node-only adapters: locating and compiling the WASM core. The VM itself does not import node:*. */
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root (the directory holding shadow86's package.json). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "assembly"))) return dir;
    dir = dirname(dir);
  }
  throw new Error("cannot find the shadow86 package root");
}

/** The `shadow86` command as npm installs it (dist/shadow86.cjs, src/cli/launch.ts): what benchmarks time. */
export function shadow86Command(): string { return join(packageRoot(), "dist", "shadow86.cjs"); }

let cached: WebAssembly.Module | undefined;
export function loadCoreModule(debug = false): WebAssembly.Module {
  if (cached && !debug) return cached;
  // SHADOW86_BUILD_DIR lets a developer test a core built elsewhere (parallel work trees).
  const dir = process.env.SHADOW86_BUILD_DIR ?? join(packageRoot(), "build");
  const file = join(dir, debug ? "shadow86.debug.wasm" : "shadow86.wasm");
  if (!existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first`);
  const m = new WebAssembly.Module(readFileSync(file));
  if (!debug) cached = m;
  return m;
}
