/** KVM_SET_USER_MEMORY_REGION semantics: create, move, delete, flags, errors; read-only slots. */
import { describe, it, expect } from "vitest";
import { MemslotError } from "../../src/dirty/dirty_log.js";
import { dirtyWriter, MiB } from "./support.js";

describe("memslots", () => {
  it("create, move (memory follows the slot), flags-only change, delete", () => {
    const { machine } = dirtyWriter();
    const vm = machine.vm;
    const s3 = vm.memslots.get(3)!;
    const host = s3.hostOffset;
    new Uint8Array(vm.memory.buffer)[host + 5] = 0xab;
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 0, size: 0, flags: 0 });
    expect(vm.memslots.has(3)).toBe(false);
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 36 * MiB, size: 4 * MiB, flags: 0 });
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 44 * MiB, size: 4 * MiB, flags: 0 }); // move
    expect(vm.memslots.get(3)).toMatchObject({ guestPhysAddr: 44 * MiB, hostOffset: host });
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 44 * MiB, size: 4 * MiB, flags: 1 }); // log on
    expect(vm.dirtyLog.bitmapOffset(3)).toBeGreaterThan(0);
    expect(vm.getDirtyLog(3).length).toBe(16);
    expect(vm.regions().some((r) => r.name === "dirty bitmaps")).toBe(true);
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 44 * MiB, size: 4 * MiB, flags: 0 }); // log off
    expect(vm.dirtyLog.bitmapOffset(3)).toBe(0);
    expect(() => vm.getDirtyLog(3)).toThrow(/does not log dirty pages/);
  });

  it("clear errors: overlap, misalignment, beyond RAM, resize in place, READONLY change, aliasing a moved slot, deleting nothing", () => {
    const { machine } = dirtyWriter();
    const vm = machine.vm;
    const set = (slot: number, gpa: number, size: number, flags = 0) => () => vm.setUserMemoryRegion({ slot, guestPhysAddr: gpa, size, flags });
    expect(set(9, 2 * MiB, 4096)).toThrow(/overlaps memslot 1/);
    expect(set(9, 0x100, 4096)).toThrow(/multiples of 4 KiB/);
    expect(set(9, 0, 100)).toThrow(MemslotError);
    expect(set(9, 64 * MiB, 4096)).toThrow(/beyond guest RAM/);
    expect(set(3, 36 * MiB, 8 * MiB)).toThrow(/cannot be resized/);
    expect(set(3, 36 * MiB, 12 * MiB, 2)).toThrow(/READONLY cannot be changed/);
    expect(set(9, 0, 0)).toThrow(/does not exist/);
    expect(set(9, 0, 4096, 4)).toThrow(/unknown flags/);
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 0, size: 0, flags: 0 });
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 36 * MiB, size: 4 * MiB, flags: 0 });
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 44 * MiB, size: 4 * MiB, flags: 0 });
    expect(set(8, 36 * MiB, 4 * MiB)).toThrow(/in use by memslot 3/);
    expect(() => vm.clearDirtyLog(1, 0, 64)).toThrow(/manual protect/);
  });

  it("guest writes to a READONLY slot exit as MMIO writes (and are dropped)", () => {
    const { machine, serial } = dirtyWriter({ append: "rounds=1 pages=1024 writes=200" });
    const vm = machine.vm;
    vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 0, size: 0, flags: 0 });
    vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 32 * MiB, size: 4 * MiB, flags: 2 });
    const r = machine.run();
    expect(r.stats.mmio_exits).toBeGreaterThan(100n);
    expect(serial()).toMatch(/FAIL/); // the guest sees its stamps vanish
  });

  it("manual protect must be enabled before logging; clearDirtyLog follows KVM's alignment rules", () => {
    const { machine } = dirtyWriter();
    const vm = machine.vm;
    vm.enableManualDirtyLogProtect();
    vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 32 * MiB, size: 4 * MiB, flags: 1 });
    expect(() => vm.enableManualDirtyLogProtect()).toThrow(/before any slot/);
    expect(() => vm.clearDirtyLog(2, 3, 64)).toThrow(/multiple of 64/);
    expect(() => vm.clearDirtyLog(2, 0, 2000)).toThrow(/multiple of 64/);
    expect(vm.clearDirtyLog(2, 0, 1024)).toBe(0);
  });
});

describe("host writes", () => {
  it("vm.write / vm.fill into a logged slot set the pages' bits (kvm_write_guest)", () => {
    const { machine } = dirtyWriter();
    const vm = machine.vm;
    vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 32 * MiB, size: 4 * MiB, flags: 1 });
    vm.getDirtyLog(2);
    vm.write(32 * MiB + 4096 * 3 + 4000, new Uint8Array(200)); // pages 3 and 4
    vm.fill(32 * MiB + 4096 * 100, 1, 7); // page 100
    vm.write(1 * MiB, new Uint8Array(8)); // another slot, not logged
    const bm = vm.getDirtyLog(2);
    const pages: number[] = [];
    for (let i = 0; i < 1024; i++) if ((bm[i >> 6]! >> BigInt(i & 63)) & 1n) pages.push(i);
    expect(pages).toEqual([3, 4, 100]);
    expect([...vm.getDirtyLog(2)].every((w) => w === 0n)).toBe(true);
  });
});
