/**
 * Unit tests of seed 000's write-protect-all generation logic
 * (assembly/mmu/wp_all.ts) on a live VM: enable / disable / re-enable, pages
 * created after the bump, root load, and protection moving down one level
 * on write faults only.
 */
import { describe, it, expect } from "vitest";
import { dirtyWriter, type DirtyCore } from "./support.js";
import type { Machine } from "../../src/machine.js";

const W = 2n, P = 1n, PS = 0x80n;

function setup(): { machine: Machine; core: DirtyCore; ind: () => { enabled: boolean; gen: number }; spte: (spt: number, i: number) => bigint } {
  const { machine, core } = dirtyWriter({ knobs: { wp_all: "generation" }, split: false });
  const r = machine.run(undefined, 200_000n); // the guest has built its mappings and is writing
  expect(r.reason).toBe("paused");
  const vm = machine.vm;
  core.vcpu_bind(vm.vcpus[0].base);
  const dv = () => new DataView(vm.memory.buffer);
  const ind = () => {
    const v = dv().getBigUint64(vm.vmBase + vm.core.k.VM_MMU_WRITE_PROTECT_ALL_INDICATOR, true);
    return { enabled: (v >> 63n) !== 0n, gen: Number(v & 0x7fffffffffffffffn) };
  };
  const spte = (spt: number, i: number) => dv().getBigUint64(spt + i * 8, true);
  return { machine, core, ind, spte };
}

/** Present non-leaf entries of a page: [index, spte]. */
function links(spte: (spt: number, i: number) => bigint, spt: number, level: number): [number, bigint][] {
  const out: [number, bigint][] = [];
  for (let i = 0; i < 512; i++) {
    const s = spte(spt, i);
    if ((s & P) && level > 1 && !(s & PS)) out.push([i, s]);
  }
  return out;
}

describe("write-protect-all generation (seed 000)", () => {
  it("enable bumps the generation; the root is loaded (made read-only) on its next use, not before", () => {
    const { machine, core, ind, spte } = setup();
    const before = ind();
    expect(before.enabled).toBe(false);
    const root = core.mmu_root_sp(0);
    expect(root).not.toBe(0);
    core.mmu_write_protect_all(1);
    const after = ind();
    expect(after).toEqual({ enabled: true, gen: before.gen + 1 });
    expect(core.mmu_sp_wp_gen(root)).not.toBe(after.gen); // lazily: nothing was walked yet
    const spt = core.mmu_sp_spt(root);
    expect(links(spte, spt, 4).some(([, s]) => (s & W) !== 0n)).toBe(true);
    // one instruction later the root was used (TLB flushed: every access misses) and loaded
    machine.run(undefined, machine.vm.vcpus[0].instructions + 1n);
    core.vcpu_bind(machine.vm.vcpus[0].base);
    expect(core.mmu_sp_wp_gen(core.mmu_root_sp(0))).toBe(after.gen);
  });

  it("protection moves one level down on a write fault only", () => {
    const { core, ind, spte } = setup();
    core.mmu_write_protect_all(1);
    const gen = ind().gen;
    const root = core.mmu_root_sp(0);
    core.mmu_test_load_shadow_page(root);
    expect(core.mmu_sp_wp_gen(root)).toBe(gen);
    const spt = core.mmu_sp_spt(root);
    const l = links(spte, spt, 4);
    expect(l.length).toBeGreaterThan(0);
    for (const [, s] of l) expect(s & W).toBe(0n); // every link of the loaded root is read-only
    const [idx] = l[0]!;
    const sptep = spt + idx * 8;
    // a read fault changes nothing
    expect(core.mmu_test_handle_readonly_upper(sptep, 0)).toBe(0);
    expect(spte(spt, idx) & W).toBe(0n);
    // a write fault loads the child first, then makes the link writable
    const childSpt = Number(spte(spt, idx) & 0x000ffffffffff000n);
    core.mmu_test_handle_readonly_upper(sptep, 1);
    expect(spte(spt, idx) & W).toBe(W);
    let childLinks = 0;
    for (let i = 0; i < 512; i++) {
      const s = spte(childSpt, i);
      if ((s & P) && !(s & PS)) { childLinks++; expect(s & W).toBe(0n); }
    }
    expect(childLinks).toBeGreaterThan(0); // the protection is now one level lower
  });

  it("disable keeps the generation and loads nothing; re-enable bumps it again", () => {
    const { core, ind, spte } = setup();
    core.mmu_write_protect_all(1);
    const g1 = ind().gen;
    core.mmu_write_protect_all(0);
    expect(ind()).toEqual({ enabled: false, gen: g1 });
    const root = core.mmu_root_sp(0);
    const oldGen = core.mmu_sp_wp_gen(root);
    expect(core.mmu_test_load_shadow_page(root)).toBe(0);
    expect(core.mmu_sp_wp_gen(root)).toBe(oldGen); // nothing done while disabled
    const spt = core.mmu_sp_spt(root);
    expect(links(spte, spt, 4).some(([, s]) => (s & W) !== 0n)).toBe(true);
    core.mmu_write_protect_all(1);
    expect(ind()).toEqual({ enabled: true, gen: g1 + 1 });
    expect(core.mmu_test_load_shadow_page(root)).toBe(1); // writable links were removed: flush
    expect(core.mmu_sp_wp_gen(root)).toBe(g1 + 1);
    expect(core.mmu_test_load_shadow_page(root)).toBe(0); // up to date: nothing to do
  });

  it("a page created after the bump starts up to date", () => {
    const { machine, core, ind } = setup();
    core.mmu_write_protect_all(1);
    const gen = ind().gen;
    const mmu = machine.vm.mmu;
    // a direct level-1 page for some gfn (role: level 1, direct, ACC_ALL)
    const role = 1 | (1 << 7) | (7 << 8) | (1 << 13);
    const sp = mmu.fn.mmu_test_get_page(0x2345, role);
    expect(sp).not.toBe(0);
    expect(core.mmu_sp_wp_gen(sp)).toBe(gen);
    expect(core.mmu_test_load_shadow_page(sp)).toBe(0);
  });

  it("the guest keeps running correctly across many enable/disable cycles (mmu audit clean)", () => {
    const { machine, core } = setup();
    const vm = machine.vm;
    for (let i = 0; i < 20; i++) {
      core.vcpu_bind(vm.vcpus[0].base);
      core.mmu_write_protect_all(i % 3 === 2 ? 0 : 1);
      const r = machine.run(undefined, vm.vcpus[0].instructions + 10_000n);
      if (r.reason !== "paused") break;
      core.vcpu_bind(vm.vcpus[0].base);
      expect(vm.mmu.audit().first).toBe("");
    }
    const r = machine.run();
    expect(r.reason).toBe("debug-exit");
    expect(r.status).toBe(33);
  });
});
