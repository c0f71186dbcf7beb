// Bundle the CLI (src/cli/main.ts) into dist/cli.cjs, run by dist/shadow86.cjs, with esbuild.
//
// CommonJS with commander inside: node starts it ~12 ms sooner than an ES
// module importing commander from node_modules (the ESM loader's resolve,
// link and CJS-translation steps; measured 70 vs 82 ms to print `knobs`,
// node alone 57-60), which is a tenth of a short guest's whole run. The
// sources stay ES modules: import.meta.url becomes the bundle's file URL.
// iced-x86 and chart.js stay external (installed by npm, loaded only by
// the commands that use them).
import { build } from "esbuild";
import { chmodSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";

const common = { bundle: true, platform: "node", target: "node20", sourcemap: true, logLevel: "warning" } as const;

// The CLI itself, then the `shadow86` command that runs it through V8's code
// cache (src/cli/launch.ts), then the cache: written at the end of a boot of
// guest-images/hello.elf, so it holds what a run compiles (a cache of the
// bare compile saves 3-6 ms of node's start, this one 1-3 ms more).
const shebang = "#!/usr/bin/env node\n";
await build({
  ...common, format: "cjs", external: ["iced-x86", "chart.js"], entryPoints: ["src/cli/main.ts"], outfile: "dist/cli.cjs",
  define: { "import.meta.url": "__import_meta_url" },
  banner: { js: shebang + "const __import_meta_url = require(\"node:url\").pathToFileURL(__filename).href;" },
});
await build({ ...common, format: "cjs", entryPoints: ["src/cli/launch.ts"], outfile: "dist/shadow86.cjs", banner: { js: shebang } });
for (const f of ["dist/cli.cjs", "dist/shadow86.cjs"]) chmodSync(f, 0o755);
rmSync("dist/cli.cjs.v8cache", { force: true });
const hello = spawnSync(process.execPath, ["dist/shadow86.cjs", "-kernel", "guest-images/hello.elf", "-q"],
  { stdio: "ignore", env: { ...process.env, SHADOW86_CODE_CACHE: "write" } });
if (hello.status !== 33) { // 33: the guest passed; anything else is worth a look, but a start without the cache still works
  rmSync("dist/cli.cjs.v8cache", { force: true });
  console.warn(`bundle: no code cache: the hello guest exited with ${hello.status ?? hello.signal}, not 33 (PASS)`);
}

// The vCPU worker of parallel SMP (src/smp/parallel.ts starts it next to the CLI bundle).
await build({ ...common, format: "esm", packages: "external", entryPoints: ["src/smp/worker.ts"], outfile: "dist/smp-worker.mjs" });
