/** The steady-state table of `shadow86 bench` (src/bench/steady.ts): start-up cancels out of the per-round figure. */
import { describe, it, expect } from "vitest";
import { perRound, steadyTable, STEADY_IMAGES } from "../../src/bench/steady.js";

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
});
