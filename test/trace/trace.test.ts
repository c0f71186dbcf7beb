import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { readFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { packageRoot } from "../../src/platform/node.js";

const root = packageRoot();
function traceOf(image: string): { traceEvents: { name: string; ph: string; ts: number; tid: number }[]; otherData: { dropped: number } } {
  const f = join(mkdtempSync(join(tmpdir(), "s86-trace-")), "t.json");
  const r = spawnSync(process.execPath, [join(root, "dist/shadow86.cjs"), "-kernel", `guest-images/${image}.elf`, "-q", "--trace", f], { cwd: root, encoding: "latin1" });
  expect(r.status).toBe(33);
  return JSON.parse(readFileSync(f, "utf8"));
}

describe("--trace (Chrome trace-event JSON)", () => {
  it("records CR3 switches, TLB flushes and exits for cr3-switch, nothing dropped", () => {
    const t = traceOf("cr3-switch");
    const count = (n: string) => t.traceEvents.filter((e) => e.name === n).length;
    expect(count("cr3")).toBeGreaterThan(35000); // 7 x 5000 switches plus set-up
    expect(count("tlb_flush")).toBeGreaterThan(35000);
    expect(count("exit IO")).toBeGreaterThan(100);
    expect(t.otherData.dropped).toBe(0);
    expect(t.traceEvents.find((e) => e.ph === "M")).toMatchObject({ name: "thread_name", tid: 0 });
    const ts = t.traceEvents.filter((e) => e.ph === "i").map((e) => e.ts);
    expect(ts).toEqual([...ts].sort((a, b) => a - b)); // one vCPU: events in time order
  });
  it("records shadow page faults, zaps, page-table writes, exceptions and invlpg for pt-torture", () => {
    const t = traceOf("pt-torture");
    const names = new Set(t.traceEvents.map((e) => e.name));
    for (const n of ["exception", "invlpg", "cr3", "tlb_flush", "pf_fixed", "pf_guest", "zap", "pt_write", "exit IO"]) expect(names).toContain(n);
    expect(t.otherData.dropped).toBe(0);
  });
});

describe("--trace with a migration", () => {
  it("shows each pre-copy round as a span on vCPU 0's track", () => {
    const dir = mkdtempSync(join(tmpdir(), "s86-trace-mig-"));
    const f = join(dir, "t.json");
    const r = spawnSync(process.execPath, [join(root, "dist/shadow86.cjs"), "-kernel", "guest-images/cr3-switch.elf", "-q",
      "--migrate", `file:${join(dir, "stream.bin")}`, "--migrate-after", "500000", "--trace", f], { cwd: root, encoding: "latin1" });
    expect(r.status).toBe(0); // the guest goes on at the destination
    const t = JSON.parse(readFileSync(f, "utf8")) as { traceEvents: { name: string; ph: string; ts: number; dur?: number; tid: number; args?: { pages?: number } }[] };
    const rounds = t.traceEvents.filter((e) => e.name.startsWith("migration round"));
    expect(rounds.length).toBeGreaterThanOrEqual(1);
    expect(rounds[0]).toMatchObject({ name: "migration round 0", ph: "X", tid: 0 });
    expect(rounds[0]!.ts).toBeGreaterThanOrEqual(500); // starts after --migrate-after (1 us = 1000 instructions)
    expect(rounds[0]!.args!.pages).toBeGreaterThan(0);
  });
});
