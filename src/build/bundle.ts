// Bundle the CLI (src/cli/main.ts) into dist/shadow86.mjs with esbuild.
// Dependencies stay external (they are installed next to it by npm).
import { build } from "esbuild";
import { chmodSync } from "node:fs";

const common = { bundle: true, platform: "node", format: "esm", target: "node20", packages: "external", sourcemap: true, logLevel: "warning" } as const;

await build({ ...common, entryPoints: ["src/cli/main.ts"], outfile: "dist/shadow86.mjs", banner: { js: "#!/usr/bin/env node" } });
chmodSync("dist/shadow86.mjs", 0o755);

// The vCPU worker of parallel SMP (src/smp/parallel.ts starts it next to the CLI bundle).
await build({ ...common, entryPoints: ["src/smp/worker.ts"], outfile: "dist/smp-worker.mjs" });
