/**
 * QEMU spells its long options with one dash (-kernel, -append, -smp); we
 * accept both spellings and hand commander the double-dash form.
 */
export const QEMU_STYLE = ["kernel", "append", "initrd", "smp", "cpu", "incoming"];

export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    const m = /^-([a-z][a-z0-9-]+)(=.*)?$/.exec(a);
    if (m && QEMU_STYLE.includes(m[1])) return `--${m[1]}${m[2] ?? ""}`;
    return a;
  });
}

/** "256M", "1G", "512" (MiB, as QEMU's -m), "64k" -> bytes. */
export function parseMemSize(s: string): number {
  const m = /^(\d+)([kKmMgG]?)[bB]?$/.exec(s.trim());
  if (!m) throw new Error(`invalid memory size "${s}" (examples: 256M, 1G, 512)`);
  const n = Number(m[1]);
  const unit = m[2].toUpperCase();
  const mult = unit === "K" ? 1024 : unit === "G" ? 1024 ** 3 : 1024 ** 2; // no suffix = MiB, like QEMU
  return n * mult;
}

/**
 * QEMU's -initrd for multiboot kernels: modules separated by commas (",," is a
 * literal comma), each "FILE ARGS"; the module's string is that whole text.
 */
export function parseModules(spec: string): { path: string; cmdline: string }[] {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < spec.length; i++) {
    if (spec[i] === ",") {
      if (spec[i + 1] === ",") { cur += ","; i++; continue; }
      parts.push(cur); cur = "";
    } else cur += spec[i];
  }
  parts.push(cur);
  return parts.filter((p) => p.trim() !== "").map((p) => ({ path: p.trim().split(/\s+/)[0]!, cmdline: p.trim() }));
}
