/**
 * The HTML report of `shadow86 bench --html FILE`: the bench tables plus
 * charts drawn by Chart.js (inlined, so the file is self-contained and works
 * offline). When every chart has drawn, the page sets
 * <body data-rendered="N"> so a headless browser can check it.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { BenchResult } from "./bench.js";

export interface ChartSpec {
  title: string;
  type: "bar" | "line";
  labels: string[];
  datasets: { label: string; data: number[] }[];
  yLabel: string;
}

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** Charts that follow from the bench rows: each metric off vs on, and shadow86 vs QEMU wall time. */
export function benchCharts(results: BenchResult[], qemu: Map<string, number | undefined>): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const byMetric = new Map<string, BenchResult[]>();
  for (const r of results) if (r.off !== r.on) byMetric.set(r.row.metric, [...(byMetric.get(r.row.metric) ?? []), r]);
  for (const [metric, rs] of byMetric) {
    charts.push({
      title: `${metric}: knob off vs on`, type: "bar", yLabel: metric,
      labels: rs.map((r) => `${r.row.workload} (${r.row.off.label} / ${r.row.on.label})`),
      datasets: [{ label: "off", data: rs.map((r) => r.offValue) }, { label: "on", data: rs.map((r) => r.onValue) }],
    });
  }
  const withQemu = results.filter((r) => qemu.get(r.row.workload) !== undefined);
  const seen = new Set<string>();
  const uniq = withQemu.filter((r) => !seen.has(r.row.workload) && seen.add(r.row.workload));
  if (uniq.length) {
    charts.push({
      title: "wall time: shadow86 vs QEMU TCG", type: "bar", yLabel: "seconds",
      labels: uniq.map((r) => r.row.workload),
      datasets: [{ label: "shadow86", data: uniq.map((r) => r.on.wallS) }, { label: "QEMU TCG", data: uniq.map((r) => qemu.get(r.row.workload)!) }],
    });
  }
  return charts;
}

export function renderReport(title: string, markdownTable: string, charts: ChartSpec[]): string {
  // the UMD build sits beside the package's main entry (dist/), outside its "exports"
  const chartJs = readFileSync(join(dirname(createRequire(import.meta.url).resolve("chart.js")), "chart.umd.min.js"), "utf8");
  const rows = markdownTable.split("\n");
  const tables: string[] = [];
  let cur: string[] = [];
  for (const line of [...rows, ""]) {
    if (line.startsWith("|")) cur.push(line);
    else if (cur.length) { tables.push(tableHtml(cur)); cur = []; }
  }
  const canvases = charts.map((c, i) => `<figure><figcaption>${esc(c.title)}</figcaption><canvas id="chart${i}" width="900" height="360"></canvas></figure>`).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px}table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #bbb;padding:4px 8px}td.n{text-align:right;font-variant-numeric:tabular-nums}figure{margin:24px 0}figcaption{font-weight:600}</style>
<script>${chartJs}</script></head>
<body data-rendered="0">
<h1>${esc(title)}</h1>
<p>Ratios come from one run on this machine (knob off and on in fresh processes); benchmarks report, tests assert.</p>
${tables.join("\n")}
${canvases}
<script>
const charts = ${JSON.stringify(charts)};
let drawn = 0;
charts.forEach((c, i) => {
  new Chart(document.getElementById("chart" + i), {
    type: c.type,
    data: { labels: c.labels, datasets: c.datasets },
    options: { animation: false, responsive: false, plugins: { legend: { position: "bottom" } }, scales: { y: { beginAtZero: true, title: { display: true, text: c.yLabel } } } },
  });
  drawn++;
});
document.body.dataset.rendered = String(drawn);
</script>
</body></html>
`;
}

function tableHtml(lines: string[]): string {
  const cells = (l: string) => l.replace(/^\||\|$/g, "").split("|").map((c) => c.trim());
  const [head, , ...body] = lines;
  const num = (c: string) => /^-?[\d.]+$/.test(c);
  return `<table><thead><tr>${cells(head!).map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${body
    .map((l) => `<tr>${cells(l).map((c) => `<td${num(c) ? ' class="n"' : ""}>${esc(c)}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
}
