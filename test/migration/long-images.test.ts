/**
 * The two long bundled images, migrated once each at a seeded random point
 * (their own file so vitest runs them beside the short ones): memset fills
 * 192 MiB (round 0 carries real data, not zero markers), forkwait tears down and
 * rebuilds copy-on-write address spaces 10000 times (page tables change under
 * the shadow MMU all the time; the destination rebuilds every shadow page).
 */
import { describe, it, expect } from "vitest";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { reference, migratedRun, rng, MiB, type GuestSpec } from "./support.js";

const SEED = Number(process.env.MIGRATION_SEED ?? 20261122);
const dir = mkdtempSync(join(tmpdir(), "s86-mig-long-"));

describe(`long images migrated at a random point (seed ${SEED})`, () => {
  const rand = rng(SEED ^ 0x5a5a);
  const cases: [GuestSpec, "file" | "tcp"][] = [
    [{ image: "memset", ramSize: 256 * MiB }, "tcp"],
    [{ image: "forkwait", ramSize: 64 * MiB, knobs: { wp_all: "generation" } }, "file"],
  ];
  for (const [g, t] of cases) {
    const f = rand();
    it(`${g.image}${g.knobs ? ` knobs ${JSON.stringify(g.knobs)}` : ""} via ${t}:`, async () => {
      const ref = reference(g);
      const at = BigInt(Math.floor(f * Number(ref.instructions) * 0.9));
      const r = await migratedRun(g, t, join(dir, `${g.image}.mig`), { after: at, guestSlice: 20_000, maxRounds: 4, audit: true });
      expect(r.source.status, `${r.source.error} (migrate-after ${at})`).toBe("completed");
      expect(r.source.tracker).toBe("dirty-log");
      expect(r.source.audit!.missed).toBe(0);
      expect(r.ramEqual).toBe(true);
      expect(r.vcpuEqual).toBe(true);
      expect(r.serial).toBe(ref.serial);
      expect(r.status).toBe(ref.status);
      expect(r.result.instructions).toBe(ref.instructions);
    }, 120_000);
  }
});
