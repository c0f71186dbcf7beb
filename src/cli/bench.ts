/** `shadow86 bench`: run the benchmark suite, print one markdown table (and QEMU TCG times). */
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { runShadow86, metricOf, qemuWall, markdown, type BenchResult } from "../bench/bench.js";
import { suite } from "../bench/suite.js";
import { renderReport, benchCharts } from "../bench/report.js";
import { packageRoot, loadCoreModule, shadow86Command } from "../platform/node.js";
import { mmuMicro, mmuMicroTable } from "../bench/mmu_micro.js";
import { STEADY_IMAGES, runSteady, steadyTable, startupFloor, startupTable } from "../bench/steady.js";

export function benchCommand(o: { json?: string; html?: string; only?: string; qemu: boolean }): number {
  const root = packageRoot();
  const cli = shadow86Command();
  const oracle = join(root, "..", "shared", "qemu-oracle");
  let rows = suite();
  if (o.only) rows = rows.filter((r) => r.workload.includes(o.only!));
  const results: BenchResult[] = [];
  const qemu = new Map<string, number | undefined>();
  rows.forEach((row, i) => {
    process.stderr.write(`bench [${i + 1}/${rows.length}] ${row.workload}: ${row.off.label} vs ${row.on.label}...\n`);
    const off = runShadow86(cli, root, row.image, row.append, row.off.args);
    const on = row.on.args.join(" ") === row.off.args.join(" ") ? off : runShadow86(cli, root, row.image, row.append, row.on.args);
    const offValue = metricOf(off, row.metric), onValue = metricOf(on, row.metric);
    results.push({ row, off, on, offValue, onValue, ratio: offValue === 0 ? 0 : onValue / offValue });
    if (o.qemu && !qemu.has(row.workload)) qemu.set(row.workload, qemuWall(oracle, root, row.image, row.append));
  });
  const steadyImages = STEADY_IMAGES.filter((x) => !o.only || x.image.includes(o.only));
  const steady = steadyImages.map((x, i) => {
    process.stderr.write(`bench: steady state [${i + 1}/${steadyImages.length}] ${x.image} rounds=1 and rounds=${x.rounds}${o.qemu ? ", shadow86 and QEMU" : ""}...\n`);
    return runSteady(cli, root, oracle, o.qemu, x);
  });
  // where every whole run starts from; QEMU runs all of pt-memset in about that time
  process.stderr.write("bench: start-up floor (node alone, shadow86 to the first instruction, QEMU's whole pt-memset)...\n");
  const floor = startupFloor(cli, root, o.qemu ? oracle : undefined);
  process.stderr.write("bench: MMU micro-benchmarks (MOV CR3, shadow page fault, TLB miss, guest #PF, gpte write)...\n");
  const module = loadCoreModule();
  const micro = [mmuMicro(module, "shadow"), mmuMicro(module, "tdp")];
  const steadyMd = steadyTable(steady);
  const table = markdown(results, qemu) + (steadyMd ? "\n\n" + steadyMd : "") + "\n\n" + startupTable(floor) + "\n\n" + mmuMicroTable(micro);
  process.stdout.write(table + "\n");
  if (o.html) {
    writeFileSync(o.html, renderReport("shadow86 bench", table, benchCharts(results, qemu)));
    process.stderr.write(`bench: report written to ${o.html}\n`);
  }
  if (o.json) {
    const rows = results.map((r) => ({ ...r, qemuWallS: qemu.get(r.row.workload) }));
    const mmu = micro.map((m) => ({ mode: m.mode, cr3HitNs: m.cr3HitNs, cr3MissNs: m.cr3MissNs, faultNs: m.faultNs, freshPagePrefetchNs: m.freshPagePrefetchNs, tlbMissNs: m.tlbMissNs, guestPfNs: m.guestPfNs, gpteWriteNs: m.gpteWriteNs,
      switches: m.switches, faults: m.faults, gpteWrites: m.gpteWrites }));
    writeFileSync(o.json, JSON.stringify({ rows, steady, startup: floor, mmuMicro: mmu }, null, 2) + "\n");
  }
  return results.some((r) => r.off.status !== 33 || r.on.status !== 33) || steady.some((x) => x.status1 !== 33 || x.statusR !== 33) ? 1 : 0;
}
