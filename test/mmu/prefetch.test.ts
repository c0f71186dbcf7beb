/**
 * pte_prefetch (assembly/mmu/fault.ts, KVM's FNAME(pte_prefetch)): a shadow
 * page fault on a 4 KiB page also installs the not-present sptes of its
 * aligned group of 8 whose guest entries are present and accessed, and stops
 * at the first that is not. Prefetched sptes are speculative: not accessed
 * until the spte walk uses them.
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR, PML4_ADDR } from "../support/longmode.js";

const PT = PML4_ADDR + 0x3000; // the identity map's one page table (longmode.ts)
const GROUP = 0x40; // pages 0x40-0x47: an aligned group of 8, away from code, tables and stack

/** Read one byte of each page (`mov al, [page * 4096]`), then the hlt that ends the run; the shadow faults it took. */
function touch(cpu: TestCpu, pages: number[]): bigint {
  const code: number[] = [];
  for (const p of pages) { const a = p * 4096; code.push(0x8a, 0x04, 0x25, a & 0xff, (a >> 8) & 0xff, (a >> 16) & 0xff, a >>> 24); }
  code.push(0xf4); // at CPL 3: #GP, no IDT, SHUTDOWN
  cpu.write(CODE_ADDR, Uint8Array.from(code));
  cpu.rip = BigInt(CODE_ADDR);
  const before = cpu.vcpu.stats().pf_fixed ?? 0n;
  expect(cpu.run(1000)).toBe("SHUTDOWN");
  expect(cpu.rip).toBe(BigInt(CODE_ADDR + code.length - 1)); // every load done, the hlt reached
  return (cpu.vcpu.stats().pf_fixed ?? 0n) - before;
}

function fresh(prefetch: boolean): TestCpu {
  const cpu = new TestCpu(undefined, { pte_prefetch: prefetch });
  cpu.enterLongModeUser();
  touch(cpu, [0x10]); // the code page and the tables above the group faulted in already
  return cpu;
}

const pages = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const gpteView = (cpu: TestCpu) => new DataView(cpu.view(PT, 4096).buffer, cpu.view(PT, 4096).byteOffset, 4096);

describe("pte_prefetch", () => {
  it("one fault maps its aligned group of 8 (off: one fault per page)", () => {
    const on = fresh(true);
    expect(touch(on, [GROUP])).toBe(1n);
    expect(touch(on, pages(GROUP + 1, GROUP + 7))).toBe(0n);
    expect(touch(on, [GROUP + 8])).toBe(1n); // the next group
    const off = fresh(false);
    expect(touch(off, [GROUP])).toBe(1n);
    expect(touch(off, pages(GROUP + 1, GROUP + 7))).toBe(7n);
    for (const cpu of [on, off]) expect(cpu.vm.mmu.audit()).toMatchObject({ errors: 0 });
  });

  it("stops at the first guest entry it may not map (accessed bit clear), as KVM does", () => {
    const cpu = fresh(true);
    const pt = gpteView(cpu);
    const e = (GROUP + 3) * 8;
    pt.setBigUint64(e, pt.getBigUint64(e, true) & ~0x20n, true); // A clear: the guest walk must set it
    expect(touch(cpu, [GROUP, GROUP + 4])).toBe(2n);
    expect(touch(cpu, [GROUP + 1, GROUP + 2])).toBe(0n); // GROUP's fault prefetched +1 and +2 ...
    expect(touch(cpu, [GROUP + 5])).toBe(1n); // ... and every fault in the group stops at +3 (the walk from its start)
    expect(touch(cpu, [GROUP + 3])).toBe(1n); // the walk sets A: this fault prefetches +6 and +7
    expect(touch(cpu, [GROUP + 6, GROUP + 7])).toBe(0n);
    expect(pt.getBigUint64(e, true) & 0x20n).toBe(0x20n); // the walk set A
    expect(cpu.vm.mmu.audit()).toMatchObject({ errors: 0 });
  });

  it("leaves prefetched sptes unaccessed until used", () => {
    const cpu = fresh(true);
    touch(cpu, [GROUP]);
    const fn = cpu.vm.core.fn as unknown as { mmu_spte_accessed(sp: number, index: number): number; mmu_gfn_next_sp(gfn: number, prev: number): number };
    const sp = fn.mmu_gfn_next_sp(PT >> 12, 0); // the shadow page of the identity map's page table
    expect(sp).not.toBe(0);
    expect(fn.mmu_spte_accessed(sp, GROUP)).toBe(1); // the faulting one
    expect(fn.mmu_spte_accessed(sp, GROUP + 5)).toBe(0); // prefetched
    touch(cpu, [GROUP + 5]);
    expect(fn.mmu_spte_accessed(sp, GROUP + 5)).toBe(1);
  });
});
