/** Helpers for the dirty-logging tests: a dirty-writer machine with several RAM slots. */
import { readFileSync } from "node:fs";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { imagePath } from "../support/guest.js";
import type { MmuKnobs, MmuMode } from "../../src/mmu/knobs.js";

export const MiB = 1024 * 1024;

export interface DirtyCore {
  mmu_count_large_sptes(writableOnly: number): number;
  mmu_write_protect_all(enable: number): void;
  mmu_test_load_shadow_page(sp: number): number;
  mmu_test_handle_readonly_upper(sptep: number, write: number): number;
  mmu_sp_wp_gen(sp: number): number;
  mmu_root_sp(i: number): number;
  mmu_sp_spt(sp: number): number;
  vcpu_bind(base: number): void;
}

/**
 * dirty-writer (region at 32 MiB: `pages` pages, half through 4 KiB PTEs,
 * half through 2 MiB PDEs) on 48 MiB of RAM, with the RAM above 1 MiB split
 * into slots 1 (1-32 MiB), 2 (32-36 MiB: the 4 KiB half) and 3 (36-48 MiB:
 * the 2 MiB half), 2 MiB aligned so large sptes can map the large half.
 */
export function dirtyWriter(opts: { append?: string; mmu?: MmuMode; knobs?: Partial<MmuKnobs>; split?: boolean } = {}): { machine: Machine; serial: () => string; core: DirtyCore } {
  const bytes: number[] = [];
  const machine = new Machine({
    module: loadCoreModule(), ramSize: 48 * MiB, kernel: new Uint8Array(readFileSync(imagePath("dirty-writer"))),
    kernelPath: "guest-images/dirty-writer.elf", append: opts.append ?? "rounds=4 pages=2048 writes=3000",
    onSerial: (b) => bytes.push(b), maxInstructions: 500_000_000n, mmu: opts.mmu, knobs: opts.knobs,
  });
  const vm = machine.vm;
  if (opts.split ?? true) {
    vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 0, size: 0, flags: 0 });
    vm.setUserMemoryRegion({ slot: 1, guestPhysAddr: 1 * MiB, size: 31 * MiB, flags: 0 });
    vm.setUserMemoryRegion({ slot: 2, guestPhysAddr: 32 * MiB, size: 4 * MiB, flags: 0 });
    vm.setUserMemoryRegion({ slot: 3, guestPhysAddr: 36 * MiB, size: 12 * MiB, flags: 0 });
  }
  const core = vm.core.instance.exports as unknown as DirtyCore;
  return { machine, serial: () => Buffer.from(bytes).toString("latin1"), core };
}
