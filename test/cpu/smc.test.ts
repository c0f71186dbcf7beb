/**
 * Self-modifying code: the decoded-instruction cache is keyed by where the
 * instruction lives and verified against its bytes, so a guest that rewrites
 * an instruction it has already executed (even the very next one) runs the new
 * one. The guest below patches the immediate of `mov al, imm8` 256 times,
 * executing it after each patch, and sums what it loaded.
 */
import { describe, it, expect } from "vitest";
import { Machine } from "../../src/machine.js";
import { loadCoreModule } from "../../src/platform/node.js";
import { rawImage } from "../support/tiny_image.js";

const LOAD = 0x100000;
function le32(v: number): number[] { return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]; }

// With the block cache the store and the patched instruction sit in one
// block, so this is the block's own-bytes check (mem.ts: smc_check); without
// it, the decoded-instruction cache's byte check. With block_jit=2 the loop
// is compiled after two runs: its store must leave the inline TLB-hit path
// for the core's (the code map), or the stale instruction runs.
describe.each([
  { blockCache: true, blockJit: 0 },
  { blockCache: false, blockJit: 0 },
  { blockCache: true, blockJit: 2 },
])("self-modifying code (block_cache=$blockCache block_jit=$blockJit)", ({ blockCache, blockJit }) => {
  it("sees every patch of an instruction it keeps executing", () => {
    // 0: xor ecx,ecx          31 c9           (counter)
    // 2: xor ebx,ebx          31 db           (sum)
    // 4: loop: mov [patch+1],cl   88 0d <abs32>
    // 10: patch: mov al,0x00  b0 00
    // 12: movzx eax,al        0f b6 c0
    // 15: add ebx,eax         01 c3
    // 17: inc cl              fe c1
    // 19: jnz loop            75 ef   (-17 -> offset 4)
    // 21: cmp ebx, 32640      81 fb 80 7f 00 00   (sum 0..255)
    // 27: jne fail            75 05
    // 29: mov al,0x10; out 0xf4,al; hlt      b0 10 e6 f4 f4
    // 34: fail: mov al,0x11; out 0xf4,al; hlt
    const patch = LOAD + 10;
    const code = [0x31, 0xc9, 0x31, 0xdb, 0x88, 0x0d, ...le32(patch + 1), 0xb0, 0x00, 0x0f, 0xb6, 0xc0, 0x01, 0xc3, 0xfe, 0xc1, 0x75, 0xef,
      0x81, 0xfb, 0x80, 0x7f, 0x00, 0x00, 0x75, 0x05, 0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xb0, 0x11, 0xe6, 0xf4, 0xf4];
    const m = new Machine({ module: loadCoreModule(), ramSize: 16 << 20, kernel: rawImage(code), kernelPath: "smc.elf",
      knobs: { block_cache: blockCache, block_jit: blockJit } });
    const r = m.run();
    expect(r.status).toBe(33);
    expect(r.instructions).toBe(2n + 256n * 6n + 4n); // ...then cmp, jne, mov, out (the exit)
    if (blockCache) {
      // the loop ran as blocks, and each patch cut its block short
      expect(r.stats.block_insns).toBeGreaterThan(256n * 5n);
      expect(r.stats.blocks_built).toBeGreaterThanOrEqual(256n);
    } else expect(r.stats.block_insns ?? 0n).toBe(0n);
  });

  it("sees a patch of code in another page that it reaches through a linked block", () => {
    // page 0: 0: xor ecx,ecx; 2: xor ebx,ebx
    //         4: loop: mov [patch+1],cl (88 0d abs32); 10: jmp patch (e9 rel32)
    // page 1: patch: mov al,0x00 (b0 00); movzx eax,al; add ebx,eax; inc cl; jnz loop (0f 85 rel32)
    //         cmp ebx,32640; jne fail; mov al,0x10; out 0xf4,al; hlt; fail: mov al,0x11; out 0xf4,al; hlt
    // The block at `loop` links to the one at `patch` (another page): the
    // store must drop that link, or the stale `mov al` runs.
    const patch = LOAD + 0x1000;
    const page0 = [0x31, 0xc9, 0x31, 0xdb, 0x88, 0x0d, ...le32(patch + 1), 0xe9, ...le32(0x1000 - 15)];
    const page1 = [0xb0, 0x00, 0x0f, 0xb6, 0xc0, 0x01, 0xc3, 0xfe, 0xc1, 0x0f, 0x85, ...le32((4 - 0x100f) >>> 0),
      0x81, 0xfb, 0x80, 0x7f, 0x00, 0x00, 0x75, 0x05, 0xb0, 0x10, 0xe6, 0xf4, 0xf4, 0xb0, 0x11, 0xe6, 0xf4, 0xf4];
    const code = [...page0, ...new Array(0x1000 - page0.length).fill(0xf4), ...page1];
    const m = new Machine({ module: loadCoreModule(), ramSize: 16 << 20, kernel: rawImage(code), kernelPath: "smc2.elf",
      knobs: { block_cache: blockCache, block_jit: blockJit } });
    const r = m.run();
    expect(r.status).toBe(33);
    expect(r.instructions).toBe(2n + 256n * 7n + 4n);
    if (blockCache) expect(r.stats.block_insns).toBeGreaterThan(256n * 6n);
    // the storing block (mov, jmp) ran compiled nearly every time; the patched one is rebuilt each time
    if (blockJit === 2) expect(r.stats.compiled_insns).toBeGreaterThan(2n * 250n);
  });
});
