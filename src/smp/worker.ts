/**
 * A vCPU worker (parallel SMP): instantiates the shared core module over the
 * shared memory and runs one vCPU. Local work stays here: the vCPU's local
 * APIC (IPIs go through shared memory), INIT/SIPI, the timer, HLT sleeps
 * (Atomics.wait on the kick word), and the shadow MMU's pte-write policy on
 * PT_WRITE exits (the MMU takes mmu_lock itself). Port I/O and MMIO other than
 * the APIC go to the main thread, where the devices are (src/smp/protocol.ts).
 * Bundled to dist/smp-worker.mjs (src/build/bundle.ts): Node 20 cannot run .ts here.
 */
import { parentPort, workerData } from "node:worker_threads";
import { instantiateCore } from "../core/core.js";
import { Vcpu } from "../vcpu.js";
import type { Vm } from "../vm.js";
import { ShadowMmu, type MmuLayout } from "../mmu/shadow_mmu.js";
import type { MmuKnobs } from "../mmu/knobs.js";
import { handlePtWrite } from "../mmu/pte_write.js";
import { ApicBus } from "./apic_bus.js";
import { VcpuRunner } from "./vcpu_runner.js";
import { CTL_STOP, CTL_KICKS, CTL_SLOT, CTL_IDLE, IDLE_TICKS_PER_MS, WORKER_SLICE, type WorkerInit, type WorkerMessage } from "./protocol.js";

const init = workerData as WorkerInit;
const port = parentPort!;
const post = (m: WorkerMessage): void => port.postMessage(m);
const ctl = new Int32Array(init.ctl);
const core = instantiateCore(init.module, init.memory);
core.fn.vm_bind(init.vmBase);
const k = core.k;

// The vCPU struct already exists (the main thread's Vm built it): attach to it
// without the constructor, which would reset it.
const vmFacade = { core, memory: init.memory } as unknown as Vm;
const vcpu = Object.create(Vcpu.prototype) as Vcpu;
Object.assign(vcpu, { vm: vmFacade, id: init.index, base: init.vcpuBases[init.index]!, k, dv: new DataView(init.memory.buffer), exitNames: new Map() });
for (const n of ["IO", "HLT", "MMIO", "SHUTDOWN", "INTERNAL_ERROR", "BUDGET", "PT_WRITE"] as const) vcpu.exitNames.set(k[`EXIT_${n}`]!, n);

const dv = new DataView(init.memory.buffer);
const mmu = new ShadowMmu(core, init.mmu.mode, init.mmu.layout as MmuLayout, init.mmu.knobs as MmuKnobs, () => dv, init.vmBase);
const bus = new ApicBus(init.memory, k, init.vcpuBases);
bus.onKick = () => Atomics.add(ctl, CTL_KICKS, 1);
const runner = new VcpuRunner(core, vcpu, init.memory, bus);
const i32 = new Int32Array(init.memory.buffer);
const kickWord = (vcpu.base + k.VCPU_KICK) >> 2;
const slot = CTL_SLOT + init.index;
/** How long a vCPU that spun on PAUSE sleeps (unless kicked). */
const SPIN_YIELD_MS = 0.05;

/** Hand the current exit to the main thread and wait until it completed it. */
function toMain(): void {
  Atomics.store(ctl, slot, 1);
  post({ t: "exit", cpu: init.index });
  while (Atomics.load(ctl, slot) === 1 && Atomics.load(ctl, CTL_STOP) === 0) Atomics.wait(ctl, slot, 1, 100);
  Atomics.store(ctl, slot, 0);
}

function loop(): void {
  while (Atomics.load(ctl, CTL_STOP) === 0) {
    const st = runner.prepare();
    if (st === "run") {
      const exit = runner.enter(WORKER_SLICE);
      if (mmu.shadow) handlePtWrite(vcpu, mmu);
      switch (exit) {
        case "IO": toMain(); break;
        case "MMIO": if (!runner.handleApicMmio()) toMain(); break;
        case "SHUTDOWN":
          post({ t: "stop", cpu: init.index, reason: "shutdown", status: 0, message: `vCPU ${init.index} triple-faulted (vector ${vcpu.shutdownVector}) at rip 0x${vcpu.rip.toString(16)}` });
          return;
        case "INTERNAL_ERROR": {
          const ie = vcpu.internalError();
          const hex = [...ie.bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
          post({ t: "stop", cpu: init.index, reason: "internal-error", status: 1, message: `vCPU ${init.index}: unsupported instruction at rip 0x${ie.rip.toString(16)}: ${hex}` });
          return;
        }
        default: break; // HLT, BUDGET (slice over or kicked), PT_WRITE
      }
      if (runner.spun) {
        // PAUSE-loop exit: give the host core to the vCPU this one waits for (kvm_vcpu_on_spin)
        const t0 = performance.now();
        Atomics.wait(i32, kickWord, 0, SPIN_YIELD_MS);
        runner.addIdle((performance.now() - t0) * IDLE_TICKS_PER_MS);
      }
      continue;
    }
    // asleep (HLT or wait-for-SIPI) until a kick, or the timer's deadline at the nominal idle rate
    const timed = st === "halted" && runner.timerCanWake;
    const ms = timed ? Math.max(runner.ticksToTimer() / IDLE_TICKS_PER_MS, 0.01) : 1000;
    Atomics.store(ctl, CTL_IDLE + init.index, timed ? 2 : 1);
    if (!timed) post({ t: "idle", cpu: init.index });
    const t0 = performance.now();
    Atomics.wait(i32, kickWord, 0, ms);
    Atomics.store(ctl, CTL_IDLE + init.index, 0);
    if (st === "halted") runner.addIdle((performance.now() - t0) * IDLE_TICKS_PER_MS);
  }
}

try {
  loop();
} catch (e) {
  post({ t: "error", cpu: init.index, message: (e as Error).stack ?? String(e) });
}
