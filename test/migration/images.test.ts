/**
 * Live migration of bundled guest images at a random (seeded) instruction count,
 * through file: and tcp:. Time is the instruction count, so a migrated run must
 * print byte for byte what a run never migrated prints and end with the same
 * status; at the switch-over the destination's RAM and vCPU state must equal the
 * source's. The guest runs `guestSlice` instructions between two batches of
 * pages, which bounds how far it gets during pre-copy (so the switch-over
 * happens before it ends) without making the test depend on wall time.
 */
import { describe, it, expect } from "vitest";
import { mkdtempSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { reference, migratedRun, rng, MiB, type GuestSpec } from "./support.js";

const SEED = Number(process.env.MIGRATION_SEED ?? 20261122);
const SLICE = 2000;
const BATCH = 256;
const dir = mkdtempSync(join(tmpdir(), "s86-mig-"));

/** tracker: the source's dirty tracker ("dirty-log", the default since issue 8, or "hash"). */
interface Case { g: GuestSpec; transports: ("file" | "tcp")[]; forceRounds?: number; tracker?: "dirty-log" | "hash"; }
const DW = "rounds=12 pages=4096";
const cases: Case[] = [
  { g: { image: "hello", ramSize: 64 * MiB }, transports: ["file", "tcp"] },
  { g: { image: "cr3-switch", ramSize: 64 * MiB }, transports: ["file", "tcp"], forceRounds: 3 },
  { g: { image: "cr3-switch", ramSize: 64 * MiB }, transports: ["tcp"], forceRounds: 3, tracker: "hash" },
  { g: { image: "pt-torture", ramSize: 256 * MiB }, transports: ["file", "tcp"], forceRounds: 3 },
  { g: { image: "pt-torture", ramSize: 256 * MiB, knobs: { wp_all: "generation" } }, transports: ["tcp"], forceRounds: 3 },
  { g: { image: "dirty-writer", ramSize: 64 * MiB, append: DW, knobs: { wp_all: "rmap" } }, transports: ["file", "tcp"], forceRounds: 4 },
  { g: { image: "dirty-writer", ramSize: 64 * MiB, append: DW, knobs: { wp_all: "generation" } }, transports: ["file", "tcp"], forceRounds: 4 },
  { g: { image: "dirty-writer", ramSize: 64 * MiB, append: DW }, transports: ["file"], forceRounds: 4, tracker: "hash" },
  { g: { image: "pt-torture", ramSize: 256 * MiB, mmu: "tdp" }, transports: ["file"] },
  { g: { image: "hello", ramSize: 64 * MiB, knobs: { prev_roots: false, zap_orphans: true } }, transports: ["tcp"] },
];

describe(`migrated guests equal unmigrated ones (seed ${SEED})`, () => {
  const rand = rng(SEED);
  for (const c of cases) {
    for (const t of c.transports) {
      const after = rand(); // drawn in a fixed order: the same seed gives the same points
      const tracker = c.tracker ?? "dirty-log";
      const label = `${c.g.image}${c.g.mmu ? ` --mmu ${c.g.mmu}` : ""}${c.g.knobs ? ` knobs ${JSON.stringify(c.g.knobs)}` : ""}${c.g.append ? ` "${c.g.append}"` : ""} via ${t}:, ${tracker} tracker${c.forceRounds ? `, ${c.forceRounds} forced rounds` : ""}`;
      it(label, async () => {
        const ref = reference(c.g);
        const rounds = c.forceRounds ?? 3; // unforced: the default downtime target decides, within 3 rounds
        // the most the guest can run during pre-copy: every round sends at most all pages
        const margin = BigInt(rounds * (Math.ceil(c.g.ramSize / 4096 / BATCH) + 2) * SLICE);
        expect(ref.instructions).toBeGreaterThan(margin);
        const at = BigInt(Math.floor(after * Number(ref.instructions - margin)));
        const r = await migratedRun(c.g, t, join(dir, `${c.g.image}-${t}.mig`), {
          after: at, guestSlice: SLICE, batchPages: BATCH, maxRounds: rounds, tracker, audit: true,
          ...(c.forceRounds ? { maxDowntimeMs: 0 } : {}),
        });
        expect(r.source.status, `${r.source.error} (migrate-after ${at})`).toBe("completed");
        expect(r.source.tracker).toBe(tracker);
        expect(r.source.audit!.missed).toBe(0); // the tracker reported every page written since it was sent
        expect(r.source.audit!.pages).toBe(r.source.roundReports[0]!.pages + r.source.roundReports[0]!.zeroPages);
        expect(r.source.startInstructions).toBe(Number(at));
        expect(r.source.switchoverInstructions!).toBeLessThan(Number(ref.instructions));
        expect(r.ramEqual).toBe(true);
        expect(r.vcpuEqual).toBe(true);
        expect(r.dest!.ramDigest).toBe(r.source.ramDigest);
        expect(r.serial).toBe(ref.serial);
        expect(r.status).toBe(ref.status);
        expect(r.result.instructions).toBe(ref.instructions);
        if (c.forceRounds) expect(r.source.rounds).toBe(c.forceRounds);
        expect(r.dest!.rounds).toBe(r.source.rounds);
        expect(r.dest!.pagesReceived).toBe(r.source.pagesSent);
        // the destination built the source's MMU: mode and every knob
        expect(r.dest!.mmu.mode).toBe(c.g.mmu ?? "shadow");
        for (const [k, v] of Object.entries(c.g.knobs ?? {})) expect(r.dest!.mmu.knobs[k]).toBe(v);
      });
    }
  }

  it("dirty-writer: iterative rounds resend the pages the guest stamped meanwhile", async () => {
    const g: GuestSpec = { image: "dirty-writer", ramSize: 64 * MiB, append: DW };
    const ref = reference(g);
    const r = await migratedRun(g, "file", join(dir, "dw-rounds.mig"), { after: ref.instructions / 3n, guestSlice: SLICE, batchPages: BATCH, maxDowntimeMs: 0, maxRounds: 5, audit: true });
    expect(r.source.status).toBe("completed");
    expect(r.serial).toBe(ref.serial);
    expect(r.ramEqual).toBe(true);
    const later = r.source.roundReports.slice(1);
    expect(later.length).toBe(4);
    // every later round sends exactly what the previous harvest found dirty, and the writer keeps dirtying pages
    r.source.roundReports.slice(0, -1).forEach((rr, i) => expect(later[i]!.pages + later[i]!.zeroPages).toBe(rr.remaining));
    for (const rr of later) expect(rr.pages).toBeGreaterThan(0);
  });

  it("negative control: a dirty log that never re-protects misses writes; the audit stops the switch-over and the source finishes", async () => {
    const g: GuestSpec = { image: "dirty-writer", ramSize: 64 * MiB, append: DW, knobs: { broken_dirty_log: "no_reprotect" } };
    const ref = reference(g);
    const r = await migratedRun(g, "tcp", "", { after: ref.instructions / 3n, guestSlice: SLICE, batchPages: BATCH, maxDowntimeMs: 0, maxRounds: 4, audit: true });
    expect(r.source.status).toBe("failed");
    expect(r.source.error).toMatch(/audit: the dirty-log tracker missed \d+ written pages/);
    expect(r.source.audit!.missed).toBeGreaterThan(0);
    expect(r.sourceSerial).toBe(ref.serial);
    expect(r.status).toBe(ref.status);
  });

});
