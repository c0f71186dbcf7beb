/**
 * Resource limits: asking for more guest RAM than the WebAssembly address
 * space can hold is a clear error (status 2, a BootError naming the real
 * maximum), and a guest that never halts is stopped by --max-instructions
 * with a clear message and its counters.
 */
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { packageRoot, loadCoreModule } from "../../src/platform/node.js";
import { Vm } from "../../src/vm.js";
import { BootError } from "../../src/errors.js";
import { rawImage, writeTemp } from "../support/tiny_image.js";

const root = packageRoot();
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "dist", "shadow86.mjs"), ...args], { cwd: root, encoding: "latin1", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const MiB = 1024 * 1024;

describe("resource limits", () => {
  it("-m beyond the 4 GiB address space: status 2, one line naming the real maximum, which then boots", () => {
    for (const m of ["5G", "4G", "99999999999G"]) {
      const r = cli("-kernel", "guest-images/hello.elf", "-m", m);
      expect(r.status, m).toBe(2);
      expect(r.stdout, m).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, m).toHaveLength(1);
      expect(lines[0], m).toMatch(/^shadow86: BootError: guest RAM of \d+ MiB does not fit the 4 GiB WebAssembly address space \(at most \d+ MiB/);
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
});
