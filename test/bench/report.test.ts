/**
 * The bench HTML report renders in a real browser: headless Chromium (Debian
 * package `chromium`, installed by .ci/run) loads the file, Chart.js draws
 * every chart, and a screenshot is taken.
 */
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { writeFileSync, mkdtempSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { renderReport, benchCharts } from "../../src/bench/report.js";
import { markdown, type BenchResult } from "../../src/bench/bench.js";

function chromium(): string {
  for (const c of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) if (existsSync(c)) return c;
  throw new Error("headless Chromium is needed for this test: apt-get install chromium (.ci/run installs it)");
}
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

const stats = (wallS: number, counters: Record<string, number>) => ({ status: 33, wallS, runS: wallS - 0.1, instructions: 1e8, counters });
const off = stats(2.0, { exits: 3000 });
const on = stats(1.5, { exits: 2000 });
const results: BenchResult[] = [{
  row: { workload: "demand-fault", image: "x", metric: "exits", off: { label: "update_pte=0", args: [] }, on: { label: "update_pte=1", args: [] }, claim: "seed 002: 3 exits -> 2" },
  off, on, offValue: 3000, onValue: 2000, ratio: 2 / 3,
}];

describe("bench --html report", () => {
  const dir = mkdtempSync(join(tmpdir(), "s86-report-"));
  const file = join(dir, "report.html");
  const qemu = new Map([["demand-fault", 0.5]]);
  writeFileSync(file, renderReport("shadow86 bench", markdown(results, qemu), benchCharts(results, qemu)));

  it("is self-contained HTML with the tables", () => {
    const html = readFileSync(file, "utf8");
    expect(html).toContain("<td>seed 002: 3 exits -&gt; 2</td>");
    expect(html).not.toMatch(/<script src=/);
  });

  it("draws every chart in headless Chromium", () => {
    const r = spawnSync(chromium(), [...FLAGS, `--user-data-dir=${join(dir, "profile")}`, "--dump-dom", `file://${file}`], { encoding: "utf8", timeout: 60_000 });
    expect(r.stdout).toMatch(/<body data-rendered="2"/);
  });

  it("screenshots to a non-trivial PNG", () => {
    const png = join(dir, "shot.png");
    spawnSync(chromium(), [...FLAGS, `--user-data-dir=${join(dir, "profile2")}`, "--window-size=1000,1200", `--screenshot=${png}`, `file://${file}`], { timeout: 60_000 });
    const bytes = readFileSync(png);
    expect(bytes.subarray(1, 4).toString("latin1")).toBe("PNG");
    expect(bytes.length).toBeGreaterThan(20_000); // charts drawn, not a blank page
  });
});
