import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { packageRoot } from "../../src/platform/node.js";
import { rawImage, writeTemp, TRIPLE_FAULT_CODE, UNSUPPORTED_CODE } from "../support/tiny_image.js";
import { buildElf } from "../boot/elf_builder.js";

const root = packageRoot();
function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [join(root, "dist", "shadow86.cjs"), ...args], { cwd: root, encoding: "latin1", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("shadow86 CLI", () => {
  it("--help starts with Usage: and exits 0", () => {
    const r = cli("--help");
    expect(r.status).toBe(0);
    expect(r.stderr.startsWith("Usage: shadow86")).toBe(true);
    expect(r.stdout).toBe("");
  });

  it("boots hello: stdout is exactly QEMU's transcript, status 33, summary on stderr", () => {
    const r = cli("-kernel", "guest-images/hello.elf");
    expect(r.stdout).toBe(readFileSync(join(root, "test/guest/expected/hello.txt"), "latin1"));
    expect(r.status).toBe(33);
    expect(r.stderr).toMatch(/instructions in .* MIPS/);
    expect(r.stderr).toMatch(/io_exits=\d+/);
  });

  it("accepts --kernel and -m with QEMU's units", () => {
    const r = cli("--kernel", "guest-images/hello.elf", "-m", "64", "-q");
    expect(r.status).toBe(33);
    expect(r.stdout).toContain("mem_upper = 64384 KiB");
    expect(r.stderr).toBe("");
  });

  it("writes every counter with --stats-json", () => {
    const f = join(mkdtempSync(join(tmpdir(), "s86-")), "stats.json");
    const r = cli("-kernel", "guest-images/hello.elf", "-q", "--stats-json", f);
    expect(r.status).toBe(33);
    const j = JSON.parse(readFileSync(f, "utf8"));
    expect(j.counters.io_exits).toBeGreaterThan(0);
    expect(Object.keys(j.counters)).toContain("pf_fixed");
  });

  it("a missing file is a clear error, status 2, no stack trace", () => {
    const r = cli("-kernel", "no/such/kernel.elf");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/BootError: no\/such\/kernel.elf: no such file/);
    expect(r.stderr).not.toMatch(/ at .*\.m?js/);
  });

  it("a non-ELF file is refused", () => {
    const p = writeTemp("junk.bin", new Uint8Array(4096).fill(0x41));
    const r = cli("-kernel", p);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/ElfError: .*junk\.bin: /);
  });

  it("an ELF without a multiboot header is refused", () => {
    const p = writeTemp("nomb.elf", buildElf({ cls: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: new Uint8Array(64) }], multiboot: false }).bytes);
    const r = cli("-kernel", p);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not a multiboot image \(no header in the first 8 KiB\)/);
  });

  it("an unknown flag is an error with status 2", () => {
    const r = cli("-kernel", "guest-images/hello.elf", "--frobnicate");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--frobnicate'/);
  });

  it("a bad memory size is an error", () => {
    const r = cli("-kernel", "guest-images/hello.elf", "-m", "lots");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/invalid memory size "lots"/);
  });

  it("a triple fault stops the guest with status 0 (QEMU -no-reboot) and a message", () => {
    const p = writeTemp("tf.elf", rawImage(TRIPLE_FAULT_CODE));
    const r = cli("-kernel", p, "-q");
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/triple-faulted \(vector 6 could not be delivered\) at rip 0x100007/);
  });

  it("an unsupported instruction names RIP, bytes and the disassembly", () => {
    const p = writeTemp("fpu.elf", rawImage(UNSUPPORTED_CODE));
    const r = cli("-kernel", p, "-q");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/unsupported instruction at rip 0x100001: d9 e8 f4/);
    expect(r.stderr).toMatch(/\(fld1\)/);
  });
});

describe("shadow86 subcommands", () => {
  it("stat prints kvm_stat-like lines (plain when not a TTY) and the guest still passes", () => {
    const r = cli("stat", "-kernel", "guest-images/hello.elf", "-q");
    expect(r.status).toBe(33);
    expect(r.stderr).toMatch(/^shadow86 stat: instructions=\d+ \(\d+\/s\) .*io_exits=\d+/m);
  });
  it("profile lists the hottest functions, WASM ones by their --debug names", () => {
    const r = cli("profile", "-kernel", "guest-images/hello.elf", "--top", "5");
    expect(r.status).toBe(33);
    expect(r.stderr).toMatch(/\| self % \| self ms \| where \| function \|/);
    expect(r.stderr).toMatch(/\| wasm \| assembly\/cpu\/\w+\/\w+ \|/);
  });
});

describe("--stats-json", () => {
  it("holds the same counters as an in-process run of the same image (runs are deterministic)", async () => {
    const { bootImage } = await import("../support/guest.js");
    const f = join(mkdtempSync(join(tmpdir(), "s86-")), "stats.json");
    const r = cli("-kernel", "guest-images/cr3-switch.elf", "-q", "--stats-json", f);
    expect(r.status).toBe(33);
    const j = JSON.parse(readFileSync(f, "utf8")) as { counters: Record<string, number>; instructions: number };
    const inproc = bootImage("cr3-switch");
    expect(j.instructions).toBe(Number(inproc.instructions));
    const expected = Object.fromEntries(Object.entries(inproc.stats).map(([k, v]) => [k, Number(v)]));
    // budget slicing differs with the caller, everything the guest caused does not
    delete expected.budget_exits; delete expected.host_exits;
    const got = { ...j.counters };
    delete got.budget_exits; delete got.host_exits;
    expect(got).toEqual(expected);
  });
});

describe("shadow86 knobs", () => {
  it("lists every knob with its default and seed", () => {
    const r = spawnSync(process.execPath, [join(root, "dist", "shadow86.cjs"), "knobs"], { cwd: root, encoding: "utf8" });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--mmu shadow \(default\) \| tdp/);
    expect(r.stdout).toMatch(/prev_roots=1\|0 \(default 1\)\n.*seed 004/);
  });
});
