/**
 * The dirty-log torture test, in the spirit of KVM's dirty_log_test: the
 * dirty-writer guest stamps random pages through 4 KiB and 2 MiB mappings
 * spread over several memslots; the host harvests the log every N guest
 * instructions and checks that every page of every logged slot whose
 * content changed since the last harvest has its bit set. The oracle is the
 * page contents, not the MMU: zero missed pages, for both write-protect
 * strategies, both log modes, shadow and tdp. The negative control (a knob
 * that skips re-protection) must miss pages.
 */
import { describe, it, expect } from "vitest";
import { runWithDirtyLog } from "../../src/dirty/harvest.js";
import { dirtyWriter } from "./support.js";

type Mode = { manual: boolean; initiallySet?: boolean };
const MODES: [string, Mode][] = [
  ["classic get", { manual: false }],
  ["manual get+clear", { manual: true }],
  ["manual, initially set", { manual: true, initiallySet: true }],
];

describe("dirty-log torture (dirty-writer, 3 RAM slots, harvest every 20k instructions)", () => {
  for (const wp of ["rmap", "generation"] as const) {
    for (const [name, mode] of MODES) {
      it(`shadow, wp_all=${wp}, ${name}: zero missed pages, large sptes made read-only`, () => {
        const { machine, serial, core } = dirtyWriter({ knobs: { wp_all: wp } });
        let largeWritableAfter = -1;
        const rep = runWithDirtyLog(machine, {
          everyInstructions: 20_000n, check: true, manual: mode.manual, initiallySet: mode.initiallySet,
          // logging starts once the guest has mapped its region (large sptes included)
          startAfter: 150_000n,
          onEnabled: () => {
            core.vcpu_bind(machine.vm.vcpus[0].base);
            largeWritableAfter = core.mmu_count_large_sptes(1);
          },
        });
        expect(serial()).toContain("ALL PASSED");
        expect(rep.result.reason).toBe("debug-exit");
        expect(rep.harvests).toBeGreaterThan(15);
        expect(rep.missed, JSON.stringify(rep.firstMissed)).toBe(0);
        expect(rep.dirtyPages).toBeGreaterThan(5000);
        const st = rep.result.stats;
        expect(st.fast_pf_fixed).toBeGreaterThan(1000n);
        // the VM still audits clean, and every writable path leads to a dirty page
        expect(machine.vm.mmu.audit().first).toBe("");
        expect(machine.vm.dirtyLog.audit()).toMatchObject({ errors: 0 });
        if (wp === "rmap" && !mode.initiallySet) expect(largeWritableAfter).toBe(0); // seed 001: read-only, not writable
        // rmap: no large spte is left writable in a logged slot after the run (generation
        // leaves them writable below read-only upper sptes until a write moves the protection down:
        // the dirty-log audit above checks what is reachable for writing)
        core.vcpu_bind(machine.vm.vcpus[0].base);
        if (wp === "rmap" && !mode.initiallySet) expect(core.mmu_count_large_sptes(1)).toBe(0);
      }, 60_000);
    }
  }

  it("tdp (the TLB is the only cache of write rights): zero missed pages", () => {
    const { machine, serial } = dirtyWriter({ mmu: "tdp" });
    const rep = runWithDirtyLog(machine, { everyInstructions: 20_000n, check: true, startAfter: 150_000n });
    expect(serial()).toContain("ALL PASSED");
    expect(rep.missed, JSON.stringify(rep.firstMissed)).toBe(0);
    expect(machine.vm.dirtyLog.audit()).toMatchObject({ errors: 0 });
  }, 60_000);

  for (const wp of ["rmap", "generation"] as const) {
    for (const mmu of ["shadow", "tdp"] as const) {
      if (mmu === "tdp" && wp === "generation") continue;
      it(`negative control (${mmu}, wp_all=${wp}): broken_dirty_log=no_reprotect misses pages`, () => {
        const { machine, serial } = dirtyWriter({ mmu, knobs: { wp_all: wp, broken_dirty_log: "no_reprotect" } });
        const rep = runWithDirtyLog(machine, { everyInstructions: 20_000n, check: true, startAfter: 150_000n });
        expect(serial()).toContain("ALL PASSED"); // the guest cannot tell; only the log is wrong
        expect(rep.missed).toBeGreaterThan(100);
        expect(machine.vm.dirtyLog.audit().errors).toBeGreaterThan(0);
      }, 60_000);
    }
  }

  it("large sptes exist before logging starts (so the seed 001 path is exercised)", () => {
    const { machine, core } = dirtyWriter();
    const r = machine.run(undefined, 150_000n);
    expect(r.reason).toBe("paused");
    core.vcpu_bind(machine.vm.vcpus[0].base);
    const large = core.mmu_count_large_sptes(0);
    expect(large).toBeGreaterThan(0);
    expect(core.mmu_count_large_sptes(1)).toBeGreaterThan(0);
    // enabling logging (rmap) makes them read-only instead of zapping them
    machine.vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 36 * 1024 * 1024, size: 12 * 1024 * 1024, flags: 1 });
    machine.vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 1 * 1024 * 1024, size: 31 * 1024 * 1024, flags: 1 });
    machine.vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 32 * 1024 * 1024, size: 4 * 1024 * 1024, flags: 1 });
    core.vcpu_bind(machine.vm.vcpus[0].base);
    expect(core.mmu_count_large_sptes(0)).toBe(large);
    expect(core.mmu_count_large_sptes(1)).toBe(0);
    // the guest's writes through the 2 MiB half: 4 KiB sptes replace the large ones written
    // (never a writable large spte: the fast path does not fix them, seed 001)
    const r2 = machine.run(undefined, 400_000n);
    expect(r2.reason).toBe("paused");
    core.vcpu_bind(machine.vm.vcpus[0].base);
    expect(core.mmu_count_large_sptes(1)).toBe(0);
    expect(core.mmu_count_large_sptes(0)).toBeLessThan(large);
    expect(machine.vm.dirtyLog.audit()).toMatchObject({ errors: 0 });
  });
});
