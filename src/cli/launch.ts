/**
 * The `shadow86` command (dist/shadow86.cjs): runs the CLI bundle
 * (dist/cli.cjs) compiled with V8's code cache for it (dist/cli.cjs.v8cache,
 * written by `npm run build`), as Node 22's module.enableCompileCache() would.
 *
 * Why: node parses the 400 KB bundle on every start (6-7 ms here, a tenth of a
 * short guest's whole run); with the cache it does not. A cache from another
 * node or V8 version or other V8 flags is rejected by V8 and the bundle is
 * compiled as usual, so the cache can only make a start faster, never wrong.
 * With SHADOW86_CODE_CACHE=write the run writes the cache at exit, holding
 * every function it compiled (the build does this at the end of a boot of
 * guest-images/hello.elf, src/build/bundle.ts).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire, Module } from "node:module";
import { dirname, join } from "node:path";
import { Script } from "node:vm";

const file = join(__dirname, "cli.cjs");
const cacheFile = `${file}.v8cache`;
const write = process.env.SHADOW86_CODE_CACHE === "write";

let cachedData: Buffer | undefined;
if (!write) {
  try { cachedData = readFileSync(cacheFile); } catch { /* no cache: compile as usual */ }
}
// The bundle keeps its "#!" line (it also runs on its own): a comment to the wrapper.
const source = readFileSync(file, "utf8").replace(/^#!/, "//");
const script = new Script(Module.wrap(source), { filename: file, cachedData });
const run = script.runInThisContext() as (exports: object, require: NodeRequire, module: object, filename: string, dirname: string) => void;
if (write) process.on("exit", () => { writeFileSync(cacheFile, script.createCachedData()); });
const mod = { exports: {}, filename: file, id: file, loaded: false };
run.call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file));
