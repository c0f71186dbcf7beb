/**
 * The retired-instruction count (and the TSC, which is that count) is the
 * guest's: it must not depend on how the MMU is modelled or on where run()'s
 * budgets fall. pt-memset clears live page tables with rep stos: in shadow
 * mode the first store to a write-protected table yields the instruction
 * with a PT_WRITE exit and it restarts; in tdp mode nothing is protected. A
 * yielded rep used to count as retired, so shadow mode counted more, and a
 * migrated guest (whose destination rebuilds its shadow pages) counted fewer
 * than one never migrated.
 */
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { imagePath } from "../support/guest.js";
import type { MmuMode } from "../../src/mmu/knobs.js";

function run(mmu: MmuMode, slice?: number): { status: number; instructions: bigint; ptWrites: bigint } {
  const m = new Machine({
    module: loadCoreModule(), ramSize: 256 << 20, kernel: new Uint8Array(readFileSync(imagePath("pt-memset"))),
    kernelPath: "guest-images/pt-memset.elf", mmu, onSerial: () => {}, maxInstructions: 100_000_000n,
  });
  let r = m.run(undefined, slice === undefined ? undefined : BigInt(slice));
  // slices of `slice` instructions: run() budgets then fall inside rep instructions
  while (slice !== undefined && r.reason === "paused") r = m.run(undefined, r.instructions + BigInt(slice));
  return { status: r.status, instructions: r.instructions, ptWrites: r.stats.pt_write_exits ?? 0n };
}

describe("retired instruction count", () => {
  it("is the same with shadow paging, with tdp, and in slices of 333 instructions", () => {
    const shadow = run("shadow"), tdp = run("tdp"), sliced = run("shadow", 333);
    expect(shadow.status).toBe(33);
    expect(shadow.ptWrites).toBeGreaterThan(0n); // some rep stos did yield on a page table
    expect(tdp.ptWrites).toBe(0n);
    expect(tdp.instructions).toBe(shadow.instructions);
    expect(sliced.status).toBe(33);
    expect(sliced.instructions).toBe(shadow.instructions);
  });
});
