/**
 * A kvm_stat-like live view of the counters while the guest runs: counter,
 * total, rate per second. In a terminal the table is redrawn in place on
 * stderr; otherwise one plain line per interval.
 */
import type { Vcpu } from "../vcpu.js";

export class StatDisplay {
  private last = new Map<string, bigint>();
  private lastT = performance.now();
  private drawnLines = 0;
  constructor(private readonly tty: boolean, private readonly intervalMs = 1000, private readonly write = (s: string) => process.stderr.write(s)) {}

  tick(cpu: Vcpu): void {
    const now = performance.now();
    if (now - this.lastT < this.intervalMs) return;
    this.render(cpu.stats(), cpu.instructions, now);
  }

  render(stats: Record<string, bigint>, instructions: bigint, now = performance.now()): void {
    const dt = Math.max((now - this.lastT) / 1000, 1e-6);
    const rows: [string, bigint, number][] = [["instructions", instructions, Number(instructions - (this.last.get("instructions") ?? 0n)) / dt]];
    for (const [k, v] of Object.entries(stats)) if (v !== 0n) rows.push([k, v, Number(v - (this.last.get(k) ?? 0n)) / dt]);
    this.last = new Map(rows.map(([k, v]) => [k, v]));
    this.last.set("instructions", instructions);
    this.lastT = now;
    if (this.tty) {
      const w = Math.max(...rows.map((r) => r[0].length), 8);
      const lines = [`${"counter".padEnd(w)} ${"total".padStart(14)} ${"per second".padStart(14)}`,
        ...rows.map(([k, v, r]) => `${k.padEnd(w)} ${String(v).padStart(14)} ${r.toFixed(0).padStart(14)}`)];
      const up = this.drawnLines ? `\x1b[${this.drawnLines}A` : "";
      this.write(up + lines.map((l) => l + "\x1b[K").join("\n") + "\n");
      this.drawnLines = lines.length;
    } else {
      this.write("shadow86 stat: " + rows.map(([k, v, r]) => `${k}=${v} (${r.toFixed(0)}/s)`).join(" ") + "\n");
    }
  }
}
