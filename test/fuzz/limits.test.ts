/**
 * Resource limits: asking for more guest RAM than the WebAssembly address
 * space can hold is a clear error (status 2, a BootError naming the real
 * maximum); a guest that never halts is stopped by --max-instructions, and
 * one that never even retires an instruction (an exception whose handler
 * faults again, forever) by --timeout, with a clear message and the counters.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { packageRoot, loadCoreModule } from "../../src/platform/node.js";
import { Vm } from "../../src/vm.js";
import { BootError } from "../../src/errors.js";
import { rawImage, writeTemp } from "../support/tiny_image.js";
import { Machine } from "../../src/machine.js";

const root = packageRoot();
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "dist", "shadow86.cjs"), ...args], { cwd: root, encoding: "latin1", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const MiB = 1024 * 1024;

/**
 * A 32-bit kernel that loads a GDT and an IDT whose every gate points at a
 * `ud2`, then executes it: each #UD is delivered to the same `ud2`, so after
 * three instructions the guest retires nothing, ever (the stack descends and
 * wraps into MMIO space, which ignores the pushes).
 */
function faultLoopImage(): Uint8Array {
  const LOAD = 0x100000;
  const b = new Uint8Array(0x100);
  const dv = new DataView(b.buffer);
  const le = (o: number, v: number) => dv.setUint32(o, v, true);
  b.set([0x0f, 0x01, 0x15], 0); le(3, LOAD + 0x40); // lgdt [gdtr]
  b.set([0x0f, 0x01, 0x1d], 7); le(10, LOAD + 0x48); // lidt [idtr]
  b.set([0xbc], 14); le(15, 0x80000); // mov esp, 0x80000
  b.set([0x0f, 0x0b], 19); // ud2: the instruction and every handler
  dv.setUint16(0x40, 0x17, true); le(0x42, LOAD + 0x60);
  dv.setUint16(0x48, 0x3f, true); le(0x4a, LOAD + 0x80);
  dv.setBigUint64(0x68, 0x00cf9b000000ffffn, true); // 0x08: flat 32-bit code
  dv.setBigUint64(0x70, 0x00cf93000000ffffn, true); // 0x10: flat data
  const h = LOAD + 19;
  for (let v = 0; v < 8; v++) dv.setBigUint64(0x80 + v * 8, BigInt(h & 0xffff) | (0x08n << 16n) | (0x8e00n << 32n) | (BigInt(h >>> 16) << 48n), true);
  return rawImage([...b]);
}

describe("resource limits", () => {
  it("-m beyond the 4 GiB address space: status 2, one line naming the real maximum, which then boots", () => {
    for (const m of ["5G", "4G", "99999999999G"]) {
      const r = cli("-kernel", "guest-images/hello.elf", "-m", m);
      expect(r.status, m).toBe(2);
      expect(r.stdout, m).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, m).toHaveLength(1);
      expect(lines[0], m).toMatch(/^shadow86: BootError: guest RAM of \d+ MiB (does not fit the 4 GiB WebAssembly address space|is more than this pc machine has below the 3\.5 GiB MMIO window) \(at most \d+ MiB/);
    }
    const max = Number(/at most (\d+) MiB/.exec(cli("-kernel", "guest-images/hello.elf", "-m", "5G").stderr)![1]);
    expect(max).toBeGreaterThan(3000);
    expect(cli("-kernel", "guest-images/hello.elf", "-m", `${max + 1}M`, "-q").status).toBe(2);
    const ok = cli("-kernel", "guest-images/hello.elf", "-m", `${max}M`, "-q");
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(33); // hello's PASS
  }, 120_000);

  it("the maximum is exact in both MMU modes", () => {
    const module = loadCoreModule();
    for (const mmu of ["shadow", "tdp"] as const) {
      let max = 0;
      try { new Vm({ module, ramSize: 8192 * MiB, mmu }); } catch (e) {
        expect(e).toBeInstanceOf(BootError);
        max = Number(/at most (\d+) MiB/.exec((e as Error).message)![1]);
      }
      expect(() => new Vm({ module, ramSize: (max + 1) * MiB, mmu }), mmu).toThrow(BootError);
      expect(new Vm({ module, ramSize: max * MiB, mmu }).size, mmu).toBe(max * MiB);
    }
  });

  it("-m that is no size at all, or too small: status 2, one line", () => {
    for (const m of ["0", "1M", "12x", "-5"]) {
      const r = cli("-kernel", "guest-images/hello.elf", "-m", m);
      expect(r.status, m).toBe(2);
      expect(r.stderr.trimEnd().split("\n"), m).toHaveLength(1);
      expect(r.stderr, m).not.toMatch(/\n\s+at /);
    }
  });

  it("--max-instructions stops a guest that never halts, with a message and the counters", () => {
    const f = writeTemp("spin.elf", rawImage([0xeb, 0xfe])); // jmp $
    const r = cli("-kernel", f, "--max-instructions", "3000000");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("stopped after 3000000 instructions (--max-instructions)");
    expect(r.stderr).toMatch(/^shadow86: 3000000 instructions in /m);
    expect(r.stderr).toMatch(/counters: .*budget_exits=\d+/);
  });

  // --max-instructions counts retired instructions, so it cannot stop this
  // guest; --timeout can, in every run mode. With -smp in deterministic mode
  // such a vCPU used to keep its turn forever (its turn only ended after
  // `slice` retired instructions): the whole machine hung, --timeout or not.
  it("--timeout stops a guest that retires no instructions, single vCPU and -smp (both modes)", () => {
    const f = writeTemp("faultloop.elf", faultLoopImage());
    for (const extra of [[], ["-smp", "2", "--smp-mode", "deterministic"], ["-smp", "2", "--smp-mode", "parallel"]]) {
      const t = performance.now();
      const r = cli("-kernel", f, "--timeout", "0.5", "--max-instructions", "1000", ...extra);
      const secs = (performance.now() - t) / 1000;
      expect(r.status, extra.join(" ")).toBe(1);
      expect(r.stderr, extra.join(" ")).toMatch(/^shadow86: stopped after 0\.5 s of wall-clock time \(--timeout\) at rip 0x100013$/m);
      expect(r.stderr, extra.join(" ")).toMatch(/stop: timeout, status 1/);
      expect(r.stderr, extra.join(" ")).toMatch(/counters: .*exceptions=\d+/);
      expect(secs, extra.join(" ")).toBeLessThan(30);
    }
    expect(cli("-kernel", f, "--timeout", "soon").status).toBe(2);
  }, 120_000);

  it("-smp deterministic: a vCPU that retires nothing still ends its turn (rounds go on, the other vCPUs get theirs)", () => {
    const m = new Machine({ module: loadCoreModule(), ramSize: 16 * MiB, kernel: faultLoopImage(), kernelPath: "faultloop.elf", smp: 2, smpMode: "deterministic", timeoutMs: 400 });
    let rounds = 0;
    const r = m.run(() => { rounds++; });
    expect(r.reason).toBe("timeout");
    expect(rounds).toBeGreaterThan(10);
  });

  // A guest that builds address spaces without end: 3000 page-table roots,
  // each loaded into CR3 and used. The shadow MMU recycles its oldest pages
  // at n_max_mmu_pages instead of growing: shadow pages in use stay under the
  // cap, linear memory does not grow, and the audit is clean at the end.
  it("thousands of address spaces hit n_max_mmu_pages recycling, not host memory", () => {
    const vm = new Vm({ module: loadCoreModule(), ramSize: 32 * MiB, mmu: "shadow" });
    const cpu = vm.vcpus[0]!;
    const k = vm.core.k;
    const bytesBefore = vm.memory.buffer.byteLength;
    const N = 3000, ROOTS = 0x400000, PDPT = 0x2000, PD = 0x3000;
    const dv = new DataView(new ArrayBuffer(8));
    const put = (gpa: number, v: bigint) => { dv.setBigUint64(0, v, true); vm.write(gpa, new Uint8Array(dv.buffer)); };
    put(PDPT, BigInt(PD) | 3n);
    put(PD, 0x83n); // 2 MiB page at 0: code and data
    for (let i = 0; i < N; i++) put(ROOTS + i * 0x1000, BigInt(PDPT) | 3n);
    const code = [
      0x48, 0xc7, 0xc0, 0x00, 0x00, 0x40, 0x00, // mov rax, ROOTS
      0x0f, 0x22, 0xd8, // loop: mov cr3, rax
      0x8b, 0x1c, 0x25, 0x00, 0x80, 0x00, 0x00, // mov ebx, [0x8000]
      0x48, 0x05, 0x00, 0x10, 0x00, 0x00, // add rax, 0x1000
      0x48, 0x3d, ...[ROOTS + N * 0x1000].flatMap((v) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff]), // cmp rax, end
      0x72, 0xe8, // jb loop
      0xf4, // hlt
    ];
    vm.write(0x10000, new Uint8Array(code));
    cpu.set64(k.VCPU_CR0, 0x80000011n);
    cpu.set64(k.VCPU_CR4, 0x20n);
    cpu.set64(k.VCPU_EFER, 0x500n);
    cpu.set64(k.VCPU_CR3, BigInt(ROOTS));
    cpu.setSeg("cs", { selector: 0x08, base: 0n, limit: 0xffffffff, attr: 0xa09b });
    cpu.rip = 0x10000n;
    cpu.pagingStateChanged();
    let exit;
    let maxInUse = 0;
    for (let i = 0; i < 100 && (exit = cpu.enter(1000)) === "BUDGET"; i++) maxInUse = Math.max(maxInUse, vm.mmu.pagesInUse);
    expect(exit).toBe("HLT");
    expect(cpu.reg("rax")).toBe(BigInt(ROOTS + N * 0x1000));
    expect(maxInUse).toBeLessThanOrEqual(vm.mmu.maxPages);
    console.log(`${N} address spaces: at most ${maxInUse} shadow pages in use (n_max_mmu_pages ${vm.mmu.maxPages}), ${cpu.stats()["mmu_recycled"]} recycled`);
    expect(cpu.stats()["mmu_recycled"]).toBeGreaterThan(0n);
    expect(vm.memory.buffer.byteLength).toBe(bytesBefore);
    vm.core.fn.vcpu_bind(cpu.base);
    expect(vm.mmu.audit().first).toBe("");
  });
});
