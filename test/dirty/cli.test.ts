/** --dirty-log MS (src/dirty/cli.ts): harvests by guest time, deterministic, summary on stderr. */
import { describe, it, expect, vi } from "vitest";
import { runDirtyLogged } from "../../src/dirty/cli.js";
import { dirtyWriter } from "./support.js";

describe("--dirty-log", () => {
  it("harvests every MS ms of guest time (1 ms = 1e6 instructions) and reports it; the guest still passes", () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((s: string | Uint8Array) => { out.push(String(s)); return true; });
    try {
      const { machine, serial } = dirtyWriter({ append: "rounds=4 pages=2048 writes=3000", knobs: { wp_all: "generation" } });
      const r = runDirtyLogged(machine, "0.05", false, false);
      expect(r.status).toBe(33);
      expect(serial()).toContain("ALL PASSED");
      const line = out.join("");
      const m = /(\d+) harvests every 0\.05 ms of guest time \(50000 instructions\), (\d+) dirty pages/.exec(line);
      expect(m, line).not.toBeNull();
      // deterministic: one harvest per 50,000 instructions, plus the last one at the guest's exit
      expect(Number(m![1])).toBe(Math.floor(Number(r.instructions) / 50000) + 1);
      expect(Number(m![2])).toBeGreaterThan(3000);
      expect(line).toContain("wp_all=generation");
    } finally { spy.mockRestore(); }
  });

  it("refuses a bad interval", () => {
    const { machine } = dirtyWriter();
    expect(() => runDirtyLogged(machine, "0", false, true)).toThrow(/positive number of milliseconds/);
    expect(() => runDirtyLogged(machine, "abc", false, true)).toThrow(/positive number/);
  });
});
