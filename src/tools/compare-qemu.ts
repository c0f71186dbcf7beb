/**
 * npm run test:qemu — the standing QEMU oracle: every bundled guest image runs
 * on QEMU TCG (../shared/qemu-oracle) and on shadow86 in each MMU mode; stdout
 * and exit status must be identical. Prints a table of wall times
 * (shadow86 / QEMU) and exits 1 on any difference.
 *
 * Images whose verdict QEMU itself gets wrong are listed in QEMU_DEVIATIONS
 * with the SDM rule; they are run on shadow86 only and judged by their own
 * PASS/FAIL output there.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, existsSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../platform/node.js";

const QEMU_DEVIATIONS: Record<string, string> = {
  "pt-rsvd": "QEMU 7.2 TCG reports reserved-bit #PF without the P bit; SDM vol. 3 4.7: a reserved-bit violation is only detected on a present entry, so P=1 (error code P|RSVD)",
};

/** Extra arguments per image, the same for QEMU and shadow86 (long images run shorter). */
const ARGS: Record<string, string[]> = {
  "bench-cpu": ["-append", "rounds=1"],
};
/**
 * Images that need the multiprocessor machine (ACPI MADT, APIC timer): both
 * sides run them with -smp 2, shadow86 in its deterministic mode so the
 * output is reproducible. (Without -smp shadow86 is the single-vCPU machine,
 * which has no ACPI tables or APIC timer.)
 */
const SMP: Record<string, number> = { "smp-torture": 2, "smp-dirty": 2 };

const root = packageRoot();
const oracle = process.env.QEMU_ORACLE ?? join(root, "..", "shared", "qemu-oracle");
const only = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const images = readdirSync(join(root, "guest-images")).filter((f) => f.endsWith(".elf")).map((f) => f.replace(/\.elf$/, ""))
  .filter((n) => only.length === 0 || only.includes(n)).sort();

function run(cmd: string, args: string[]): { stdout: string; status: number | null; ms: number; stderr: string } {
  const t = performance.now();
  const r = spawnSync(cmd, args, { cwd: root, encoding: "latin1", maxBuffer: 64 << 20, timeout: 600_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status, ms: performance.now() - t };
}

const modes = ["tdp", "shadow"];
if (!existsSync(oracle)) { console.error(`qemu-oracle not found at ${oracle}`); process.exit(2); }

let failures = 0;
const rows: string[] = ["| image | QEMU status | QEMU s | " + modes.map((m) => `shadow86 ${m} s | ratio`).join(" | ") + " | verdict |",
  "|---|---|---|" + modes.map(() => "---|---").join("|") + "|---|"];
for (const img of images) {
  const path = `guest-images/${img}.elf`;
  const deviation = QEMU_DEVIATIONS[img];
  const extra = ARGS[img] ?? [];
  const smp = SMP[img];
  const q = deviation ? undefined : run(oracle, [...(smp ? ["-smp", String(smp)] : []), path, ...(extra.length ? ["--", ...extra] : [])]);
  const ours = [...extra, ...(smp ? ["-smp", String(smp), "--smp-mode", "deterministic"] : [])];
  const cells: string[] = [];
  let ok = true;
  for (const m of modes) {
    const s = run(process.execPath, [join(root, "dist/shadow86.cjs"), "-kernel", path, "-q", ...ours, "--mmu", m]);
    if (q) {
      const same = s.stdout === q.stdout && s.status === q.status;
      if (!same) { ok = false; console.error(`${img} (${m}): differs from QEMU (status ${s.status} vs ${q.status})`); }
    } else if (s.status !== 33) { ok = false; console.error(`${img} (${m}): status ${s.status}, expected 33 (PASS)`); }
    cells.push(`${(s.ms / 1000).toFixed(2)} | ${q ? (s.ms / q.ms).toFixed(2) : "-"}`);
  }
  if (!ok) failures++;
  rows.push(`| ${img} | ${q ? q.status : "n/a"} | ${q ? (q.ms / 1000).toFixed(2) : "-"} | ${cells.join(" | ")} | ${ok ? "same" : "DIFFERENT"}${deviation ? " (judged by the SDM: " + deviation + ")" : ""} |`);
}
console.log(rows.join("\n"));
console.log(`\n${images.length - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
