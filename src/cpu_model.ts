/**
 * CPU models for -cpu, as QEMU spells them: MODEL[,+feature|-feature|feature=on|off...].
 * Only features the interpreter implements can be switched; the others are
 * refused by name so a guest never sees a CPUID bit we do not honour.
 */
import { BootError } from "./errors.js";

/** Switchable features -> the core's FEAT_* constant names. */
export const CPU_FEATURES: Record<string, { flag: string; what: string }> = {
  smep: { flag: "FEAT_SMEP", what: "supervisor-mode execution prevention (CR4.SMEP)" },
  smap: { flag: "FEAT_SMAP", what: "supervisor-mode access prevention (CR4.SMAP, stac/clac)" },
  pdpe1gb: { flag: "FEAT_PDPE1GB", what: "1 GiB pages (PS in a PDPTE)" },
  nx: { flag: "FEAT_NX", what: "no-execute pages (EFER.NXE)" },
};
/** Features QEMU knows that shadow86 does not implement. */
const NOT_IMPLEMENTED = ["pku", "la57", "pcid", "invpcid", "fsgsbase", "xsave", "osxsave", "umip", "sse", "sse2", "avx", "fpu", "x2apic", "vmx", "svm"];

export const CPU_MODELS: Record<string, { features: string[]; what: string }> = {
  shadow86: { features: Object.keys(CPU_FEATURES), what: "everything shadow86 implements (default)" },
  qemu64: { features: ["nx"], what: "like QEMU's default qemu64 model: NX, no SMEP/SMAP/1 GiB pages" },
};

export function parseCpuModel(spec: string, k: Readonly<Record<string, number>>): number {
  const [model, ...opts] = spec.split(",");
  const m = CPU_MODELS[model!];
  if (!m) throw new BootError(null, `unknown CPU model "${model}" (models: ${Object.keys(CPU_MODELS).join(", ")})`);
  const on = new Set(m.features);
  for (const o of opts) {
    const mm = /^([+-]?)([a-z0-9_-]+)(?:=(on|off))?$/.exec(o);
    if (!mm) throw new BootError(null, `bad -cpu option "${o}" (use +feature, -feature or feature=on|off)`);
    const name = mm[2]!;
    const enable = mm[3] ? mm[3] === "on" : mm[1] !== "-";
    if (!CPU_FEATURES[name]) {
      if (NOT_IMPLEMENTED.includes(name)) {
        if (enable) throw new BootError(null, `CPU feature "${name}" is not implemented by shadow86 (switchable: ${Object.keys(CPU_FEATURES).join(", ")})`);
        continue; // turning off something we never advertise is fine
      }
      throw new BootError(null, `unknown CPU feature "${name}" (switchable: ${Object.keys(CPU_FEATURES).join(", ")})`);
    }
    if (enable) on.add(name); else on.delete(name);
  }
  let bits = 0;
  for (const f of on) bits |= k[CPU_FEATURES[f]!.flag]!;
  return bits;
}
