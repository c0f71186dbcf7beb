/** The command line: `--incoming` and `--migrate` in two processes, as a user runs them. */
import { describe, it, expect } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { packageRoot } from "../../src/platform/node.js";

const root = packageRoot();
const cliPath = join(root, "dist", "shadow86.cjs");
const dir = mkdtempSync(join(tmpdir(), "s86-mig-cli-"));

interface Proc { status: number | null; stdout: string; stderr: string; }

function start(args: string[], onStderr?: (text: string) => void): Promise<Proc> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [cliPath, ...args], { cwd: root });
    let stdout = "", stderr = "";
    p.stdout.setEncoding("latin1").on("data", (d: string) => { stdout += d; });
    p.stderr.setEncoding("latin1").on("data", (d: string) => { stderr += d; onStderr?.(stderr); });
    const t = setTimeout(() => p.kill(), 60_000);
    p.on("close", (status) => { clearTimeout(t); resolve({ status, stdout, stderr }); });
  });
}

function run(args: string[]): Proc {
  const r = spawnSync(process.execPath, [cliPath, ...args], { cwd: root, encoding: "latin1", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lastJson = (stderr: string) => JSON.parse(stderr.trim().split("\n").pop()!) as { migration: Record<string, unknown>; guest?: Record<string, unknown> };

describe("shadow86 --migrate / --incoming", () => {
  const image = ["-kernel", "guest-images/pt-torture.elf"];
  const plain = run([...image, "-q"]);

  it("tcp: the two outputs concatenated are the unmigrated output; statuses and RAM digests agree", async () => {
    expect(plain.status).toBe(33);
    let port = 0;
    let portKnown!: () => void;
    const gotPort = new Promise<void>((r) => { portKnown = r; });
    const dest = start(["--incoming", "tcp:127.0.0.1:0", "--json"], (text) => {
      const m = /waiting for a migration on tcp:127\.0\.0\.1:(\d+)/.exec(text);
      if (m && !port) { port = Number(m[1]); portKnown(); }
    });
    await gotPort;
    const src = await start([...image, "--migrate", `tcp:127.0.0.1:${port}`, "--migrate-after", "1500000", "--migrate-slice", "2000", "--max-rounds", "3", "--migrate-audit", "--json"]);
    const dst = await dest;
    expect(src.status, src.stderr).toBe(0);
    expect(dst.status, dst.stderr).toBe(33);
    expect(src.stdout + dst.stdout).toBe(plain.stdout);
    expect(src.stderr).toMatch(/migration round 0: sent \d+ pages \+ \d+ zero .* expected downtime/);
    expect(src.stderr).toMatch(/migration to tcp:127\.0\.0\.1:\d+ completed: \d+ rounds?,/);
    expect(dst.stderr).toMatch(/migration received on tcp:127\.0\.0\.1:\d+: \d+ rounds?,/);
    const s = lastJson(src.stderr), d = lastJson(dst.stderr);
    expect(s.migration.status).toBe("completed");
    expect(s.migration.tracker).toBe("dirty-log");
    expect((s.migration.audit as { missed: number }).missed).toBe(0);
    expect(s.migration.startInstructions).toBe(1500000);
    expect(d.migration.ramDigest).toBe(s.migration.ramDigest);
    expect(d.migration.instructions).toBe(s.migration.switchoverInstructions);
    expect(d.guest!.status).toBe(33);
  }, 90_000);

  it("file: source then destination (default pacing: the guest runs as long as each batch takes); a corrupted file is refused with status 4", async () => {
    const f = join(dir, "vm.mig");
    // ~55 M instructions of stamping: far more than pre-copy lets it run, however slow the machine
    const writer = ["-kernel", "guest-images/dirty-writer.elf", "-m", "64", "-append", "rounds=300 pages=4096"];
    const plainWriter = run([...writer, "-q"]);
    expect(plainWriter.status).toBe(33);
    const src = run([...writer, "--migrate", `file:${f}`, "--migrate-after", "2000000", "--json", join(dir, "src.json"), "-q"]);
    expect(src.status, src.stderr).toBe(0);
    const good = readFileSync(f);
    const dst = run(["--incoming", `file:${f}`, "-q"]);
    expect(dst.status, dst.stderr).toBe(33);
    expect(src.stdout + dst.stdout).toBe(plainWriter.stdout);
    expect((JSON.parse(readFileSync(join(dir, "src.json"), "utf8")) as { migration: { status: string } }).migration.status).toBe("completed");
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x10;
    writeFileSync(f, bad);
    const refused = run(["--incoming", `file:${f}`]);
    expect(refused.status).toBe(4);
    expect(refused.stdout).toBe("");
    expect(refused.stderr).toMatch(/^shadow86: MigrationError: file:.*vm\.mig: checksum mismatch in the \w+ section at offset \d+/);
    writeFileSync(f, good.subarray(0, 1000));
    expect(run(["--incoming", `file:${f}`]).stderr).toMatch(/MigrationError: .*stream truncated/);
  }, 90_000);

  it("a failed migration: the source says so and finishes its guest with the guest's status", () => {
    const r = run([...image, "--migrate", "tcp:127.0.0.1:1", "--migrate-after", "1000"]);
    expect(r.status).toBe(33);
    expect(r.stdout).toBe(plain.stdout);
    expect(r.stderr).toMatch(/migration failed: .*cannot connect.*; the guest goes on here/);
  });

  it("bad arguments", () => {
    expect(run(["--incoming", "udp:1.2.3.4:5"]).stderr).toMatch(/not a migration address: use tcp:HOST:PORT or file:PATH/);
    expect(run(["--incoming", "udp:1.2.3.4:5"]).status).toBe(4);
    expect(run([...image, "--json"]).status).toBe(2);
    expect(run([...image, "--migrate", "file:/tmp/x", "--migrate-after", "lots"]).stderr).toMatch(/--migrate-after wants a whole number/);
    expect(run(["--incoming", "file:/nonexistent/x.mig"]).stderr).toMatch(/MigrationError: file:\/nonexistent\/x\.mig: no such file/);
  });
});
