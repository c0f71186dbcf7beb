/**
 * The per-vCPU local APIC and the APIC bus on a 2- and 3-vCPU machine (no
 * kernel: the APICs are driven through their MMIO registers as the guest
 * would): fixed IPIs to an APIC ID, self, all, all-but-self; INIT and SIPI
 * (an AP starts in real mode at CS = vector << 8); the timer in one-shot and
 * periodic mode with the divide register, on the vCPU's clock; priority (TPR,
 * ISR) and EOI; the kick that ends another vCPU's slice; remote TLB flush
 * requests served by run().
 */
import { describe, it, expect } from "vitest";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { APIC_ICR, APIC_ICR2, APIC_EOI, APIC_TPR, APIC_SPIV, APIC_LVTT, APIC_TMICT, APIC_TMCCT, APIC_TDCR, APIC_IRR, APIC_ISR, APIC_PPR } from "../../src/devices/lapic.js";

function machine(cpus: number, mmu: "tdp" | "shadow" = "tdp"): Machine {
  return new Machine({ module: loadCoreModule(), ramSize: 16 << 20, smp: cpus, smpMode: "deterministic", mmu });
}
const w = (m: Machine, cpu: number, reg: number, v: number) => m.smp!.runners[cpu]!.apic.mmioWrite(reg, 4, BigInt(v));
const r = (m: Machine, cpu: number, reg: number) => Number(m.smp!.runners[cpu]!.apic.mmioRead(reg, 4));
const kicked = (m: Machine, cpu: number) => m.vm.vcpus[cpu]!.u32(m.vm.core.k.VCPU_KICK);
const enable = (m: Machine) => { for (let i = 0; i < m.vm.vcpus.length; i++) w(m, i, APIC_SPIV, 0x1ff); };
const ipi = (m: Machine, from: number, dest: number, icr: number) => { w(m, from, APIC_ICR2, dest << 24); w(m, from, APIC_ICR, icr); };
const irrHas = (m: Machine, cpu: number, v: number) => ((r(m, cpu, APIC_IRR + 0x10 * (v >> 5)) >>> (v & 31)) & 1) === 1;

describe("local APIC registers", () => {
  const m = machine(3);
  it("ID is the vCPU index; version 0x50014; APs wait for SIPI, the BSP runs", () => {
    expect([0, 1, 2].map((i) => r(m, i, 0x20) >>> 24)).toEqual([0, 1, 2]);
    expect(r(m, 1, 0x30)).toBe(0x50014);
    const k = m.vm.core.k;
    expect(m.smp!.runners.map((x) => x.mpState)).toEqual([k.MP_STATE_RUNNABLE, k.MP_STATE_UNINITIALIZED, k.MP_STATE_UNINITIALIZED]);
  });
  it("TPR is CR8: a write to one shows in the other", () => {
    w(m, 0, APIC_TPR, 0x50);
    expect(m.vm.vcpus[0]!.get64(m.vm.core.k.VCPU_CR8)).toBe(5n);
    m.vm.vcpus[0]!.set64(m.vm.core.k.VCPU_CR8, 3n);
    expect(r(m, 0, APIC_TPR)).toBe(0x30);
    w(m, 0, APIC_TPR, 0);
  });
});

describe("IPIs through the APIC bus", () => {
  it("fixed IPI to an APIC ID: the target's IRR bit and its kick word are set, nobody else's", () => {
    const m = machine(3);
    enable(m);
    ipi(m, 0, 2, 0x4041);
    expect(irrHas(m, 2, 0x41)).toBe(true);
    expect(irrHas(m, 1, 0x41)).toBe(false);
    expect([kicked(m, 0), kicked(m, 1), kicked(m, 2)]).toEqual([0, 0, 1]);
  });
  it("shorthands: self, all including self, all excluding self", () => {
    const m = machine(3);
    enable(m);
    ipi(m, 1, 0, (1 << 18) | 0x50); // self
    expect([0, 1, 2].map((c) => irrHas(m, c, 0x50))).toEqual([false, true, false]);
    ipi(m, 1, 0, (2 << 18) | 0x60); // all
    expect([0, 1, 2].map((c) => irrHas(m, c, 0x60))).toEqual([true, true, true]);
    ipi(m, 1, 0, (3 << 18) | 0x70); // all but self
    expect([0, 1, 2].map((c) => irrHas(m, c, 0x70))).toEqual([true, false, true]);
  });
  it("priority: the highest IRR vector above the TPR and the in-service class is offered; EOI ends the highest in service", () => {
    const m = machine(2);
    enable(m);
    const a = m.smp!.runners[1]!.apic;
    ipi(m, 0, 1, 0x41);
    ipi(m, 0, 1, 0x92);
    expect(a.pendingVector()).toBe(0x92);
    a.accept(0x92);
    expect(r(m, 1, APIC_ISR + 0x40) >>> 18 & 1).toBe(1); // 0x92 = word 4, bit 18
    expect(r(m, 1, APIC_PPR)).toBe(0x90);
    expect(a.pendingVector()).toBe(-1); // 0x41 is below the in-service class
    w(m, 1, APIC_EOI, 0);
    expect(a.pendingVector()).toBe(0x41);
    w(m, 1, APIC_TPR, 0x40);
    expect(a.pendingVector()).toBe(-1); // masked by the TPR class
    w(m, 1, APIC_TPR, 0);
    expect(a.pendingVector()).toBe(0x41);
  });
  it("a software-disabled APIC (SVR bit 8 clear, the reset value) offers nothing", () => {
    const m = machine(2);
    ipi(m, 0, 1, 0x41);
    expect(m.smp!.runners[1]!.apic.pendingVector()).toBe(-1);
    w(m, 1, APIC_SPIV, 0x1ff);
    expect(m.smp!.runners[1]!.apic.pendingVector()).toBe(0x41);
  });
  it("INIT then SIPI: the AP starts in real mode at CS = vector << 8, IP 0; a second SIPI is ignored; INIT de-assert does nothing", () => {
    const m = machine(2);
    const k = m.vm.core.k;
    const ap = m.smp!.runners[1]!;
    ipi(m, 0, 1, 0x8500); // INIT, level de-assert: ignored
    expect(ap.prepare()).toBe("wait-sipi");
    expect(ap.inits).toBe(0);
    ipi(m, 0, 1, 0x4500); // INIT assert
    ipi(m, 0, 1, 0x4608); // SIPI 0x08
    ipi(m, 0, 1, 0x4609); // second SIPI (another vector): must not restart the AP
    expect(ap.prepare()).toBe("run");
    expect([ap.inits, ap.sipis]).toEqual([1, 1]);
    const cs = ap.vcpu.seg("cs");
    expect([cs.selector, cs.base, ap.vcpu.rip]).toEqual([0x0800, 0x8000n, 0n]);
    expect(ap.vcpu.get64(k.VCPU_CR0) & 1n).toBe(0n);
    expect(ap.mpState).toBe(k.MP_STATE_RUNNABLE);
    ipi(m, 0, 1, 0x460a); // a SIPI to a running AP
    expect(ap.prepare()).toBe("run");
    expect(ap.vcpu.seg("cs").selector).toBe(0x0800);
  });
});

describe("APIC timer (the vCPU's clock: retired instructions + idle time)", () => {
  it("one-shot with divide-by-2 (reset value): fires once at initial count x 2, current count counts down, then 0", () => {
    const m = machine(1);
    enable(m);
    const run = m.smp!.runners[0]!;
    w(m, 0, APIC_LVTT, 0x30);
    w(m, 0, APIC_TMICT, 1000);
    expect(run.ticksToTimer()).toBe(2000);
    run.addIdle(500);
    expect(r(m, 0, APIC_TMCCT)).toBe(750);
    run.addIdle(1499);
    run.prepare();
    expect(irrHas(m, 0, 0x30)).toBe(false);
    run.addIdle(1);
    run.prepare();
    expect(irrHas(m, 0, 0x30)).toBe(true);
    expect(r(m, 0, APIC_TMCCT)).toBe(0);
    expect(run.ticksToTimer()).toBe(Infinity);
  });
  it("periodic with divide-by-1 and divide-by-16: re-arms every period", () => {
    const m = machine(1);
    enable(m);
    const run = m.smp!.runners[0]!;
    const a = run.apic;
    w(m, 0, APIC_TDCR, 0xb); // divide by 1
    w(m, 0, APIC_LVTT, (1 << 17) | 0x31);
    w(m, 0, APIC_TMICT, 100);
    let fired = 0;
    for (let i = 0; i < 10; i++) {
      run.addIdle(run.ticksToTimer());
      run.prepare();
      if (irrHas(m, 0, 0x31)) { fired++; a.accept(0x31); w(m, 0, APIC_EOI, 0); }
    }
    expect(fired).toBe(10);
    w(m, 0, APIC_TDCR, 0x3); // divide by 16, effective from the next TMICT write
    w(m, 0, APIC_TMICT, 10);
    expect(run.ticksToTimer()).toBe(160);
    w(m, 0, APIC_TMICT, 0); // stops it
    expect(run.ticksToTimer()).toBe(Infinity);
  });
  it("a masked LVT timer counts but raises nothing", () => {
    const m = machine(1);
    enable(m);
    const run = m.smp!.runners[0]!;
    w(m, 0, APIC_LVTT, (1 << 16) | 0x32);
    w(m, 0, APIC_TMICT, 10);
    run.addIdle(100);
    run.prepare();
    expect(irrHas(m, 0, 0x32)).toBe(false);
  });
});

describe("kicks and remote requests in run()", () => {
  // a vCPU spinning on `jmp $` in real mode at 0x7000
  function spinner(m: Machine, cpu: number) {
    m.vm.write(0x7000, new Uint8Array([0xeb, 0xfe]));
    const run = m.smp!.runners[cpu]!;
    run.vcpu.setSeg("cs", { selector: 0x0700, base: 0x7000n, limit: 0xffff, attr: 0x9b });
    run.vcpu.rip = 0n;
    run.mpState = m.vm.core.k.MP_STATE_RUNNABLE;
    return run;
  }
  it("a kick ends another vCPU's slice within 256 instructions", () => {
    const m = machine(2);
    const run = spinner(m, 1);
    expect(run.enter(1000)).toBe("BUDGET");
    expect(run.vcpu.instructions).toBe(1000n);
    m.smp!.bus.kick(1); // prepare() clears it; set it after: as another thread would mid-slice
    const before = run.vcpu.instructions;
    expect(run.enter(1_000_000)).toBe("BUDGET");
    expect(Number(run.vcpu.instructions - before)).toBeLessThanOrEqual(256);
  });
  it("kvm_flush_remote_tlbs (the VM's flush generation) makes the other vCPU flush its TLB before it runs on", () => {
    const m = machine(2);
    const k = m.vm.core.k;
    const run = spinner(m, 1);
    run.enter(100);
    const flushes = run.vcpu.stats().tlb_flush!;
    // kvm_flush_remote_tlbs on vCPU 0: bumps the VM-wide generation (O(1) in vCPUs) and flushes vCPU 0 at once
    const gen = () => m.vm.vcpus[1]!.u32(k.MMU_TLB_FLUSH_GEN);
    const before = m.vm.vcpus[0]!.stats().remote_tlb_flush!;
    m.vm.core.fn.vcpu_bind(m.vm.vcpus[0]!.base);
    (m.vm.core.instance.exports.kvm_flush_remote_tlbs as () => void)();
    expect(m.vm.vcpus[0]!.stats().remote_tlb_flush).toBe(before + 1n);
    expect(gen()).not.toBe(new DataView(m.vm.memory.buffer).getUint32(m.vm.vmBase + k.VM_TLB_FLUSH_GEN, true));
    run.enter(1);
    expect(gen()).toBe(new DataView(m.vm.memory.buffer).getUint32(m.vm.vmBase + k.VM_TLB_FLUSH_GEN, true));
    expect(run.vcpu.stats().tlb_flush).toBe(flushes + 1n);
    run.enter(100);
    expect(run.vcpu.stats().tlb_flush).toBe(flushes + 1n); // served once
  });
});

describe("the scheduler: HLT sleeps, the machine stops only when nothing can wake a vCPU", () => {
  // real-mode code at 0x7000 on vCPU 0 (the APs wait for SIPI)
  function bsp(m: Machine, code: number[]) {
    m.vm.write(0x7000, new Uint8Array(code));
    const v = m.vm.vcpus[0]!;
    v.setSeg("cs", { selector: 0x0700, base: 0x7000n, limit: 0xffff, attr: 0x9b });
    v.rip = 0n;
  }
  it("cli; hlt on the BSP with the APs waiting for SIPI: stops as halted, saying why", () => {
    const m = machine(2);
    bsp(m, [0xfa, 0xf4]);
    const r = m.run();
    expect(r.reason).toBe("halted");
    expect(r.status).toBe(1);
    expect(r.message).toMatch(/vCPU 0 halted \(IF=0\), vCPU 1 waits for SIPI/);
  });
  it("sti; hlt with the APIC timer armed sleeps until the timer interrupt (time jumps while everyone sleeps)", () => {
    const m = machine(2);
    enable(m);
    // IVT entry 0x40 -> 0x0000:0x7100, a handler that halts with IF=0 (so the run stops there)
    m.vm.write(0x40 * 4, new Uint8Array([0x00, 0x71, 0x00, 0x00]));
    m.vm.write(0x7100, new Uint8Array([0xfa, 0xf4])); // handler: cli; hlt
    bsp(m, [0xfb, 0xf4, 0xeb, 0xfd]); // sti; hlt; jmp back to hlt
    w(m, 0, APIC_LVTT, 0x40);
    w(m, 0, APIC_TMICT, 5_000_000); // 10M ticks with divide-by-2
    const r = m.run();
    expect(r.reason).toBe("halted");
    const v0 = m.vm.vcpus[0]!;
    expect(v0.seg("cs").base + v0.rip).toBe(0x7102n); // after the handler's hlt
    expect(r.stats.interrupts).toBe(1n);
    expect(m.smp!.runners[0]!.clock()).toBeGreaterThanOrEqual(10_000_000);
    expect(r.instructions).toBeLessThan(20n); // slept, did not spin
  });
  it("an IPI wakes a halted AP: the BSP starts it, the AP runs `sti; hlt`, the BSP's fixed IPI wakes it into its handler", () => {
    const m = machine(2);
    enable(m);
    // AP trampoline at 0x8000 (SIPI vector 8): sti; hlt; jmp $-2 ; IVT 0x50 -> 0x0000:0x8100: cli; hlt
    m.vm.write(0x8000, new Uint8Array([0xfb, 0xf4, 0xeb, 0xfd]));
    m.vm.write(0x50 * 4, new Uint8Array([0x00, 0x81, 0x00, 0x00]));
    m.vm.write(0x8100, new Uint8Array([0xfa, 0xf4]));
    bsp(m, [0xfa, 0xf4]);
    ipi(m, 0, 1, 0x4500);
    ipi(m, 0, 1, 0x4608);
    expect(m.run().reason).toBe("halted"); // both asleep: the AP in `sti; hlt`, the BSP with IF=0
    const ap = m.smp!.runners[1]!;
    expect(ap.vcpu.halted).toBe(true);
    expect(ap.vcpu.interruptsEnabled).toBe(true);
    w(m, 1, APIC_SPIV, 0x1ff); // the INIT reset the AP's APIC: enable it again
    ipi(m, 0, 1, 0x4050);
    const r = m.run();
    expect(r.reason).toBe("halted");
    expect(ap.vcpu.seg("cs").base + ap.vcpu.rip).toBe(0x8102n); // woke, took vector 0x50, halted in its handler
  });
});
