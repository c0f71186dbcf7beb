/** `--dirty-log MS`: run the guest with dirty logging, harvesting every MS ms of guest time. */
import type { Machine, RunResult } from "../machine.js";
import { BootError } from "../errors.js";
import { runWithDirtyLog, INSNS_PER_GUEST_MS } from "./harvest.js";

export function runDirtyLogged(machine: Machine, ms: string, manual: boolean, quiet: boolean): RunResult {
  if (!/^\d+(\.\d+)?$/.test(ms) || Number(ms) <= 0) throw new BootError(null, `--dirty-log wants a positive number of milliseconds of guest time, got "${ms}"`);
  if (machine.smp) throw new BootError(null, "--dirty-log runs one vCPU (not with -smp yet)");
  const every = BigInt(Math.max(1, Math.round(Number(ms) * Number(INSNS_PER_GUEST_MS))));
  const rep = runWithDirtyLog(machine, { everyInstructions: every, manual });
  if (!quiet) {
    const h = Math.max(rep.harvests, 1);
    process.stderr.write(`shadow86: dirty log (${manual ? "manual" : "classic"}, wp_all=${machine.vm.mmu.knobs.wp_all}): ${rep.harvests} harvests every ${ms} ms of guest time (${every} instructions), ` +
      `${rep.dirtyPages} dirty pages (${(rep.dirtyPages / h).toFixed(1)} per harvest); enabling took ${rep.enableMs.toFixed(3)} ms, ` +
      `harvesting ${rep.harvestMs.toFixed(3)} ms in all (${(rep.harvestMs / h).toFixed(3)} ms mean, ${rep.maxHarvestMs.toFixed(3)} ms max)\n`);
  }
  return rep.result;
}
