/**
 * Page-table-heavy images against QEMU TCG with start-up set apart (issue 12).
 * Each image runs twice per emulator as a whole process, with rounds=1 and
 * rounds=R (the image repeats its main work R times): the difference is R-1
 * rounds of steady state, without either emulator's start-up (node's own is
 * ~0.06 s here, about what QEMU needs for a whole short image). Both numbers
 * are reported: the whole run at R rounds, and the time per extra round.
 */
import { spawnSync } from "node:child_process";
import { runShadow86, qemuWall } from "./bench.js";

export interface SteadyImage { image: string; rounds: number; }
/** R per image: enough rounds that QEMU's extra time is well above its start-up. */
export const STEADY_IMAGES: SteadyImage[] = [
  { image: "cr3-switch", rounds: 20 },
  { image: "pt-torture", rounds: 40 },
  { image: "pt-memset", rounds: 300 },
  { image: "forkwait", rounds: 3 },
];

export interface SteadyResult {
  image: string; rounds: number;
  /** Whole-process wall seconds at rounds=1 and rounds=R. */
  ours1: number; oursR: number; qemu1?: number; qemuR?: number;
  status1: number | null; statusR: number | null;
}

/** Seconds per extra round: (t(R) - t(1)) / (R - 1). */
export function perRound(t1: number, tR: number, rounds: number): number { return (tR - t1) / (rounds - 1); }

export function runSteady(cli: string, cwd: string, oracle: string, qemu: boolean, img: SteadyImage): SteadyResult {
  const image = `guest-images/${img.image}.elf`, r = `rounds=${img.rounds}`;
  const one = runShadow86(cli, cwd, image, undefined, []), many = runShadow86(cli, cwd, image, r, []);
  return {
    image: img.image, rounds: img.rounds, ours1: one.wallS, oursR: many.wallS, status1: one.status, statusR: many.status,
    qemu1: qemu ? qemuWall(oracle, cwd, image) : undefined, qemuR: qemu ? qemuWall(oracle, cwd, image, r) : undefined,
  };
}

/** The part of every whole run that is not the guest's (best of `n` wall times, seconds), and QEMU's whole run of the same image. */
export interface StartupFloor { image: string; runs: number; nodeS: number; firstInsnS: number; qemuS?: number; }

/**
 * Node alone (`node -e 0`); shadow86 up to the first guest instruction of
 * `image` (`--max-instructions 1`: the bundle, the core, the machine, the
 * loader and the exit); and, given the oracle, QEMU TCG's whole run of it.
 */
export function startupFloor(cli: string, cwd: string, oracle: string | undefined, image = "pt-memset", n = 5): StartupFloor {
  const best = (cmd: string, args: string[]): number => {
    let b = Infinity;
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      spawnSync(cmd, args, { cwd, stdio: "ignore" });
      b = Math.min(b, (performance.now() - t) / 1000);
    }
    return b;
  };
  const elf = `guest-images/${image}.elf`;
  return {
    image, runs: n, nodeS: best(process.execPath, ["-e", "0"]),
    firstInsnS: best(process.execPath, [cli, "-kernel", elf, "-q", "--max-instructions", "1"]),
    qemuS: oracle ? best(oracle, [elf]) : undefined,
  };
}

export function startupTable(f: StartupFloor): string {
  return [
    `| start-up, best of ${f.runs} | node alone s | shadow86 to the first instruction of ${f.image} s | QEMU TCG, all of ${f.image} s |`,
    "|---|---:|---:|---:|",
    `| | ${f.nodeS.toFixed(3)} | ${f.firstInsnS.toFixed(3)} | ${f.qemuS === undefined ? "-" : f.qemuS.toFixed(3)} |`,
  ].join("\n");
}

export function steadyTable(results: SteadyResult[]): string {
  if (results.length === 0) return "";
  const s = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(3));
  const ms = (v: number | undefined) => (v === undefined ? "-" : (v * 1000).toFixed(2));
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? "-" : (a / b).toFixed(2));
  const out = [
    "| image | R | shadow86 s (1 round / R) | QEMU TCG s (1 / R) | whole run at R: shadow86 / QEMU | per extra round: shadow86 ms | QEMU ms | shadow86 / QEMU |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const x of results) {
    const ours = perRound(x.ours1, x.oursR, x.rounds);
    const q = x.qemu1 !== undefined && x.qemuR !== undefined ? perRound(x.qemu1, x.qemuR, x.rounds) : undefined;
    out.push(`| ${x.image} | ${x.rounds} | ${s(x.ours1)} / ${s(x.oursR)} | ${s(x.qemu1)} / ${s(x.qemuR)} | ${ratio(x.oursR, x.qemuR)} | ${ms(ours)} | ${ms(q)} | ${ratio(ours, q)} |`);
  }
  return out.join("\n");
}
