import { describe, it, expect } from "vitest";
import { Vm } from "../../src/vm.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { PageHashTracker, DirtyLogTracker, createDirtyTracker, ramRanges, MEM_LOG_DIRTY_PAGES, type DirtyLogVm } from "../../src/migration/dirty.js";
import { PageHasher } from "../../src/migration/pagehash.js";

const MiB = 1 << 20;

function vmWithTracker() {
  const vm = new Vm({ ramSize: 4 * MiB, module: loadCoreModule() });
  const t = new PageHashTracker(vm);
  const h = new PageHasher(vm.memory);
  const host = (gfn: number) => { const r = ramRanges(vm).find((x) => gfn >= x.baseGfn && gfn < x.baseGfn + x.npages)!; return r.host + (gfn - r.baseGfn) * 4096; };
  const send = (gfn: number) => { const lo = h.hash(host(gfn)); t.sent(gfn, lo, h.hi); };
  return { vm, t, h, send };
}

describe("PageHashTracker", () => {
  it("before anything is sent every RAM page is dirty (not the PC hole)", () => {
    const { vm, t } = vmWithTracker();
    t.start();
    const all = t.harvest();
    expect(all.length).toBe(ramRanges(vm).reduce((a, r) => a + r.npages, 0));
    expect(all).not.toContain(0xa0); // 640 KiB .. 1 MiB is MMIO
  });

  it("reports exactly the pages that differ from what was sent", () => {
    const { vm, t, send } = vmWithTracker();
    t.start();
    for (const g of t.harvest()) send(g);
    expect(t.harvest()).toEqual([]);
    vm.write(0x300000 + 17, new Uint8Array([1])); // gfn 0x300
    vm.write(0x1000 * 0x123 + 4095, new Uint8Array([9])); // last byte of gfn 0x123
    expect(t.harvest()).toEqual([0x123, 0x300]);
    expect(t.harvest()).toEqual([0x123, 0x300]); // still not sent: still dirty
  });

  it("catches A-B-A across a send (the destination holds B)", () => {
    const { vm, t, send } = vmWithTracker();
    t.start();
    for (const g of t.harvest()) send(g);
    vm.write(0x200000, new Uint8Array([0xbb])); // A -> B
    expect(t.harvest()).toEqual([0x200]);
    send(0x200); // the source sends B
    vm.write(0x200000, new Uint8Array([0])); // B -> A again
    expect(t.harvest()).toEqual([0x200]);
  });

  it("a change undone before any send is no change (the destination never saw it)", () => {
    const { vm, t, send } = vmWithTracker();
    t.start();
    for (const g of t.harvest()) send(g);
    vm.write(0x200000, new Uint8Array([0xbb]));
    vm.write(0x200000, new Uint8Array([0]));
    expect(t.harvest()).toEqual([]);
  });

  it("harvestedHashes are the pages' hashes as of the harvest", () => {
    const { vm, t, h } = vmWithTracker();
    vm.write(0x150000, new Uint8Array([1, 2, 3]));
    t.start();
    t.harvest();
    const hh = t.harvestedHashes();
    for (const gfn of [0, 0x150, 0x3ff]) {
      const r = ramRanges(vm).find((x) => gfn >= x.baseGfn && gfn < x.baseGfn + x.npages)!;
      const lo = h.hash(r.host + (gfn - r.baseGfn) * 4096);
      expect(hh.hash(gfn, 0)).toBe(lo);
      expect(hh.hi).toBe(h.hi);
    }
    expect(hh.hash(0x200, 0)).toBe(0); // a zero page hashes to 0:0
    expect(hh.hi).toBe(0);
  });
});

describe("DirtyLogTracker (over issue 8's KVM-like API)", () => {
  function fakeVm() {
    const vm = new Vm({ ramSize: 4 * MiB, module: loadCoreModule() });
    const bitmaps = new Map<number, Uint8Array>();
    const flags: number[][] = [];
    const logVm: DirtyLogVm = {
      memslots: vm.memslots,
      setUserMemoryRegion: (r) => { flags.push([r.slot, r.flags]); },
      getDirtyLog: (slot) => { const b = bitmaps.get(slot) ?? new Uint8Array(128); bitmaps.set(slot, new Uint8Array(b.length)); return new BigUint64Array(b.buffer); },
    };
    const mark = (slot: number, page: number) => { const b = bitmaps.get(slot) ?? new Uint8Array(128); b[page >> 3]! |= 1 << (page & 7); bitmaps.set(slot, b); };
    return { vm, logVm, mark, flags };
  }

  it("turns logging on and off per slot and maps bits to gfns", () => {
    const { logVm, mark, flags } = fakeVm();
    const t = new DirtyLogTracker(logVm);
    mark(1, 3); // written before start: start() clears it
    t.start();
    expect(flags.filter(([, f]) => f & MEM_LOG_DIRTY_PAGES).map(([s]) => s).sort()).toEqual([0, 1]);
    expect(t.harvest()).toEqual([]);
    mark(0, 0); mark(0, 159); mark(1, 0); mark(1, 63); mark(1, 64); mark(1, 767);
    expect(t.harvest()).toEqual([0, 159, 0x100, 0x100 + 63, 0x100 + 64, 0x100 + 767]);
    expect(t.harvest()).toEqual([]); // get-and-clear
    t.stop();
    expect(flags.slice(-2).every(([, f]) => (f! & MEM_LOG_DIRTY_PAGES) === 0)).toBe(true);
  });

  it("createDirtyTracker picks the dirty log once the VM has one, page hashing otherwise", () => {
    const { vm: realVm, logVm } = fakeVm();
    // issue 8 gave the real Vm a dirty log: a VM without getDirtyLog still gets page hashing
    const vm = Object.assign(Object.create(realVm) as Vm, { getDirtyLog: undefined });
    expect(createDirtyTracker(realVm).kind).toBe("dirty-log");
    expect(createDirtyTracker(vm).kind).toBe("hash");
    expect(() => createDirtyTracker(vm, "dirty-log")).toThrow(/no dirty log/);
    const withLog = Object.assign(Object.create(vm) as Vm, { getDirtyLog: logVm.getDirtyLog, setUserMemoryRegion: logVm.setUserMemoryRegion });
    expect(createDirtyTracker(withLog).kind).toBe("dirty-log");
    expect(createDirtyTracker(withLog, "hash").kind).toBe("hash");
  });
});
