// Bundle the CLI (src/cli/main.ts) into dist/shadow86.cjs with esbuild.
//
// CommonJS with commander inside: node starts it ~12 ms sooner than an ES
// module importing commander from node_modules (the ESM loader's resolve,
// link and CJS-translation steps; measured 70 vs 82 ms to print `knobs`,
// node alone 57-60), which is a tenth of a short guest's whole run. The
// sources stay ES modules: import.meta.url becomes the bundle's file URL.
// iced-x86 and chart.js stay external (installed by npm, loaded only by
// the commands that use them).
import { build } from "esbuild";
import { chmodSync } from "node:fs";

const common = { bundle: true, platform: "node", target: "node20", sourcemap: true, logLevel: "warning" } as const;

await build({
  ...common, format: "cjs", external: ["iced-x86", "chart.js"], entryPoints: ["src/cli/main.ts"], outfile: "dist/shadow86.cjs",
  define: { "import.meta.url": "__import_meta_url" },
  banner: { js: "#!/usr/bin/env node\nconst __import_meta_url = require(\"node:url\").pathToFileURL(__filename).href;" },
});
chmodSync("dist/shadow86.cjs", 0o755);

// The vCPU worker of parallel SMP (src/smp/parallel.ts starts it next to the CLI bundle).
await build({ ...common, format: "esm", packages: "external", entryPoints: ["src/smp/worker.ts"], outfile: "dist/smp-worker.mjs" });
