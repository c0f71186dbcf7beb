/**
 * The software TLB's flush (mmu/tlb.ts) clears only the entries filled since
 * the last flush while they fit its log, and everything once they do not: a
 * guest reads N pages (caching them), their PTEs are pointed at other frames
 * behind the TLB's back, and a flush must make every one of them read its new
 * frame, with N inside the log and past it. Before the flush the TLB still
 * answers with the old frames (it does cache them). tdp mode: its TLB caches
 * the guest's own walks, so host-side PTE edits plus a flush are what a guest
 * PTE write plus MOV CR3 are (shadow mode would need the write trapped).
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR, PML4_ADDR } from "../support/longmode.js";

const PAGES = 0x100000, ALT = 0x180000; // N pages read at PAGES; the frames they move to at ALT
const PT = PML4_ADDR + 0x3000;

// loop: add rax, [rsi]; add rsi, 0x1000; sub ecx, 1; jnz loop
const SUM = [0x48, 0x03, 0x06, 0x48, 0x81, 0xc6, 0x00, 0x10, 0x00, 0x00, 0x83, 0xe9, 0x01, 0x75, 0xf1];

function sumPages(cpu: TestCpu, n: number): bigint {
  cpu.gpr[0] = 0n; cpu.gpr[1] = BigInt(n); cpu.gpr[6] = BigInt(PAGES);
  cpu.rip = BigInt(CODE_ADDR);
  expect(cpu.run(4 * n)).toBe("BUDGET");
  return cpu.gpr[0]!;
}

describe("TLB flush", () => {
  for (const mmu of ["tdp"] as const) {
    for (const n of [10, 61, 62, 63, 120]) {
      it(`after ${n} pages were read, a flush makes all of them see their new frames (--mmu ${mmu})`, () => {
        const cpu = new TestCpu(undefined, {}, mmu);
        cpu.enterLongModeUser();
        cpu.write(CODE_ADDR, Uint8Array.from(SUM));
        const dv = new DataView(cpu.vm.memory.buffer);
        const put = (gpa: number, v: bigint) => dv.setBigUint64(cpu.vm.ramBase + gpa, v, true);
        let old = 0n, alt = 0n;
        for (let i = 0; i < n; i++) {
          put(PAGES + i * 4096, BigInt(i + 1)); old += BigInt(i + 1);
          put(ALT + i * 4096, BigInt(1000 + i)); alt += BigInt(1000 + i);
        }
        expect(sumPages(cpu, n)).toBe(old);
        for (let i = 0; i < n; i++) put(PT + ((PAGES >> 12) + i) * 8, BigInt(ALT + i * 4096) | 0x67n);
        expect(sumPages(cpu, n)).toBe(old); // still cached
        cpu.vcpu.flushTlb();
        expect(sumPages(cpu, n)).toBe(alt);
      });
    }
  }
});
