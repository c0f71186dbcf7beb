/**
 * Implicit supervisor accesses (the IDT gate and GDT descriptors an
 * exception delivery and iretq read) take the software TLB's supervisor
 * right on a hit, as every other access does (cpu/mem.ts: read_sys*). A hit
 * must never let one through that SMAP forbids: with CR4.SMAP an implicit
 * supervisor access to a user page faults even with EFLAGS.AC set (SDM vol.
 * 3, 4.6.1), however the page got into the TLB.
 */
import { describe, it, expect } from "vitest";
import { TestCpu, CODE_ADDR, GDT_ADDR, PML4_ADDR, ATTR_DATA32 } from "../support/longmode.js";
import type { MmuMode } from "../../src/mmu/knobs.js";

const HANDLER = 0x31000, UNMAPPED = 0x200000; // the identity map covers 2 MiB: above it the PDE is not present
const IDT_ADDR = 0x9000; // a page of its own: the only user page the delivery touches
const STACK_PAGE = 0x7000;
const CR4_PAE = 1n << 5n, CR4_SMAP = 1n << 21n;
const RSI = 6, RCX = 1;

/**
 * A ring-0 64-bit vCPU whose #PF handler steps over a 2-byte load and
 * returns. The identity map's pages are user pages; the GDT, stack, code and
 * handler pages are made supervisor pages, so the IDT's is the one user page
 * an exception delivery reads.
 */
function ring0(mmu: MmuMode, smap: boolean): TestCpu {
  const cpu = new TestCpu(undefined, {}, mmu);
  cpu.enterLongModeUser();
  const k = cpu.vm.core.k, v = cpu.vcpu;
  const pt = new DataView(cpu.view(PML4_ADDR + 0x3000, 4096).buffer, cpu.view(PML4_ADDR + 0x3000, 4096).byteOffset, 4096);
  for (const page of [GDT_ADDR, STACK_PAGE, CODE_ADDR, HANDLER]) pt.setBigUint64((page >> 12) * 8, pt.getBigUint64((page >> 12) * 8, true) & ~4n, true);
  const gdt = new DataView(cpu.view(GDT_ADDR, 24).buffer, cpu.view(GDT_ADDR, 24).byteOffset, 24);
  gdt.setBigUint64(8, 0x00af9a000000ffffn, true); // 0x08: 64-bit ring-0 code
  gdt.setBigUint64(16, 0x00cf92000000ffffn, true); // 0x10: ring-0 data
  v.set64(k.VCPU_GDTR_BASE, BigInt(GDT_ADDR));
  v.u32(k.VCPU_GDTR_LIMIT, 23);
  const idt = new DataView(cpu.view(IDT_ADDR, 512).buffer, cpu.view(IDT_ADDR, 512).byteOffset, 512);
  idt.setUint32(14 * 16, (0x08 << 16) | (HANDLER & 0xffff), true);
  idt.setUint32(14 * 16 + 4, (HANDLER & 0xffff0000) | 0x8e00, true);
  v.set64(k.VCPU_IDTR_BASE, BigInt(IDT_ADDR));
  v.u32(k.VCPU_IDTR_LIMIT, 32 * 16 - 1);
  v.setSeg("cs", { selector: 0x08, base: 0n, limit: 0xffffffff, attr: 0xb | (1 << 4) | (1 << 7) | (1 << 13) | (1 << 15) });
  v.setSeg("ss", { selector: 0x10, base: 0n, limit: 0xffffffff, attr: ATTR_DATA32 });
  v.setReg("rsp", 0x8000n);
  v.set64(k.VCPU_CR4, CR4_PAE | (smap ? CR4_SMAP : 0n));
  v.pagingStateChanged();
  cpu.write(HANDLER, Uint8Array.from([0x48, 0x83, 0xc4, 0x08, 0x48, 0x83, 0x04, 0x24, 0x02, 0x48, 0xcf])); // add rsp, 8; add qword [rsp], 2; iretq
  return cpu;
}

describe("implicit supervisor accesses and the TLB", () => {
  it.each(["shadow", "tdp"] as const)("%s: a #PF and its iretq take one TLB miss (the faulting load), not one per IDT/GDT read", (mmu) => {
    const cpu = ring0(mmu, false);
    // loop: mov al, [rsi]; dec ecx; jnz loop; hlt
    cpu.write(CODE_ADDR, Uint8Array.from([0x8a, 0x06, 0xff, 0xc9, 0x75, 0xfa, 0xf4]));
    const run = (n: number) => {
      cpu.rip = BigInt(CODE_ADDR); cpu.gpr[RSI] = BigInt(UNMAPPED); cpu.gpr[RCX] = BigInt(n);
      cpu.vcpu.u32(cpu.vm.core.k.VCPU_HALTED, 0);
      expect(cpu.run(100_000)).toBe("HLT");
    };
    run(10); // the IDT, GDT, stack and handler pages in the TLB
    const before = cpu.vcpu.stats();
    run(1000);
    const after = cpu.vcpu.stats();
    expect(after.pf_guest! - before.pf_guest!).toBe(1000n);
    expect(after.tlb_miss! - before.tlb_miss!).toBe(1000n);
  });

  it.each(["shadow", "tdp"] as const)("%s: with SMAP the delivery's IDT read of a user page faults even when EFLAGS.AC let an explicit read fill the TLB", (mmu) => {
    for (const smap of [false, true]) {
      const cpu = ring0(mmu, smap);
      // stac; mov rax, [IDT + 14 * 16] (explicit: allowed with AC); mov al, [rsi] (#PF); hlt
      const idt14 = IDT_ADDR + 14 * 16;
      cpu.write(CODE_ADDR, Uint8Array.from([0x0f, 0x01, 0xcb, 0x48, 0x8b, 0x04, 0x25, idt14 & 0xff, (idt14 >> 8) & 0xff, 0, 0, 0x8a, 0x06, 0xf4]));
      cpu.rip = BigInt(CODE_ADDR); cpu.gpr[RSI] = BigInt(UNMAPPED);
      // without SMAP the handler returns to the hlt; with it the delivery faults on the IDT: #DF, no gate, triple fault
      expect(cpu.run(1000)).toBe(smap ? "SHUTDOWN" : "HLT");
    }
  });
});
