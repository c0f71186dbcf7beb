// The `shadow86` command runs the CLI bundle through V8's code cache
// (src/cli/launch.ts): the build's cache must be one this node accepts, and
// a cache it rejects (another node, a stale build, garbage) must change
// nothing but the start-up time.
import { describe, it, expect } from "vitest";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { Module } from "node:module";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { Script } from "node:vm";
import { packageRoot } from "../../src/platform/node.js";

const dist = join(packageRoot(), "dist");
const knobs = (dir: string) => spawnSync(process.execPath, [join(dir, "shadow86.cjs"), "knobs"], { encoding: "utf8", timeout: 60_000 });

describe("shadow86 launcher (V8 code cache)", () => {
  it("the build wrote a code cache this node accepts for dist/cli.cjs", () => {
    const file = join(dist, "cli.cjs");
    const source = readFileSync(file, "utf8").replace(/^#!/, "//");
    const script = new Script(Module.wrap(source), { filename: file, cachedData: readFileSync(`${file}.v8cache`) });
    expect(script.cachedDataRejected).toBe(false);
  });

  it("runs the same with a rejected cache and with none", () => {
    const want = knobs(dist);
    expect(want.status).toBe(0);
    expect(want.stdout).toContain("prev_roots=");
    const dir = mkdtempSync(join(tmpdir(), "shadow86-launch-"));
    for (const f of ["shadow86.cjs", "cli.cjs"]) copyFileSync(join(dist, f), join(dir, f));
    const none = knobs(dir);
    writeFileSync(join(dir, "cli.cjs.v8cache"), Buffer.from("not a V8 code cache"));
    const garbage = knobs(dir);
    for (const r of [none, garbage]) expect({ status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ status: 0, stdout: want.stdout, stderr: "" });
  });
});
