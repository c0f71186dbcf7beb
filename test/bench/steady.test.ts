/** The steady-state table of `shadow86 bench` (src/bench/steady.ts): start-up cancels out of the per-round figure. */
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { perRound, steadyTable, startupFloor, startupTable, STEADY_IMAGES } from "../../src/bench/steady.js";
import { packageRoot, shadow86Command } from "../../src/platform/node.js";

describe("bench steady state vs QEMU", () => {
  it("per extra round is (t(R) - t(1)) / (R - 1): a fixed start-up drops out", () => {
    // 0.1 s start-up + 0.02 s a round, 20 rounds
    expect(perRound(0.12, 0.5, 20)).toBeCloseTo(0.02, 12);
  });
  it("tabulates both emulators and their ratios, and '-' without QEMU", () => {
    const t = steadyTable([
      { image: "cr3-switch", rounds: 20, ours1: 0.2, oursR: 0.77, qemu1: 0.15, qemuR: 1.6, status1: 33, statusR: 33 },
      { image: "forkwait", rounds: 3, ours1: 1.2, oursR: 3.2, status1: 33, statusR: 33 },
    ]).split("\n");
    expect(t).toHaveLength(4);
    expect(t[2]).toBe("| cr3-switch | 20 | 0.200 / 0.770 | 0.150 / 1.600 | 0.48 | 30.00 | 76.32 | 0.39 |");
    expect(t[3]).toBe("| forkwait | 3 | 1.200 / 3.200 | - / - | - | 1000.00 | - | - |");
  });
  it("covers the page-table-heavy images of issue 12, each with R > 1", () => {
    expect(STEADY_IMAGES.map((x) => x.image).sort()).toEqual(["cr3-switch", "forkwait", "pt-memset", "pt-torture"]);
    for (const x of STEADY_IMAGES) expect(x.rounds).toBeGreaterThan(1);
  });
  it("the start-up floor row: node alone, shadow86 to the first instruction, QEMU's whole run ('-' without it)", () => {
    expect(startupTable({ image: "pt-memset", runs: 5, nodeS: 0.0571, firstInsnS: 0.0764, qemuS: 0.0689 }).split("\n")[2]).toBe("| | 0.057 | 0.076 | 0.069 |");
    expect(startupTable({ image: "pt-memset", runs: 5, nodeS: 0.0571, firstInsnS: 0.0764 }).split("\n")[2]).toBe("| | 0.057 | 0.076 | - |");
    expect(startupTable({ image: "pt-memset", runs: 3, nodeS: 0.0571, firstInsnS: 0.0764 })).toMatch(/^\| start-up, best of 3 \|/);
  });
  it("times a run that stops after its first instruction (tests assert what runs, never how fast)", () => {
    const cli = shadow86Command(), cwd = packageRoot();
    // what the floor runs: the guest is stopped by --max-instructions (status 1), not by itself
    const r = spawnSync(process.execPath, [cli, "-kernel", "guest-images/pt-memset.elf", "--max-instructions", "1"], { cwd, encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/shadow86: 1 instructions in/);
    const f = startupFloor(cli, cwd, undefined, "pt-memset", 1);
    expect(f.qemuS).toBeUndefined();
    for (const t of [f.nodeS, f.firstInsnS]) { expect(t).toBeGreaterThan(0); expect(t).toBeLessThan(60); }
  });
});

