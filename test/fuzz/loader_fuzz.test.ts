/**
 * Loader fuzzing (see src/fuzz/loader_fuzz.ts): every bundled guest image and
 * synthetic ELF32 / ELF64 / a.out-kludge kernels, mutated (truncated at every
 * header boundary, bit-flipped, lying e_phoff/e_phnum/p_offset/p_filesz/
 * p_memsz/p_paddr, absurd sizes, broken or missing multiboot header, a.out
 * address fields out of range). loadMultiboot must load or refuse with a
 * Shadow86Error, and a refused image must leave guest memory untouched. A few
 * of the refused images also go through the CLI: status 2, one line, no
 * stack trace.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { packageRoot } from "../../src/platform/node.js";
import { mutations, tryLoad, type LoaderCase } from "../../src/fuzz/loader_fuzz.js";
import { buildElf, buildAout, pattern } from "../boot/elf_builder.js";

const root = packageRoot();
const RAM = 64 * 1024 * 1024;
const PER_IMAGE = 1000;

function bases(): { name: string; bytes: Uint8Array }[] {
  const dir = join(root, "guest-images");
  const images = readdirSync(dir).filter((f) => f.endsWith(".elf")).sort().map((f) => ({ name: f, bytes: new Uint8Array(readFileSync(join(dir, f))) }));
  const code = pattern(3000, 5);
  return [
    ...images,
    { name: "synthetic elf32", bytes: buildElf({ cls: 32, entry: 0x100000, segments: [{ paddr: 0x100000, data: code, memsz: 0x5000 }, { paddr: 0x200000, data: code.subarray(0, 100), flags: 6 }] }).bytes },
    { name: "synthetic elf64", bytes: buildElf({ cls: 64, entry: 0x100000, segments: [{ paddr: 0x100000, vaddr: 0xffffffff80100000n, data: code }, { paddr: 0x300000, data: code.subarray(0, 64), memsz: 0x10000 }] }).bytes },
    { name: "synthetic a.out kludge", bytes: buildAout({ loadAddr: 0x100000, text: code, headerOffset: 64, bssEndAddr: 0x100000 + 0x4000 }) },
  ];
}

describe("loader fuzzing", () => {
  const all = bases();
  it(`${all.length} base images x (truncations + ${PER_IMAGE} mutations): load or Shadow86Error, nothing written when refused`, () => {
    const findings: string[] = [];
    let cases = 0, loaded = 0, refused = 0;
    const messages = new Map<string, number>();
    all.forEach((base, i) => {
      expect(tryLoad(base.bytes, RAM).kind, `${base.name} loads unmutated`).toBe("loaded");
      for (const c of mutations(base.bytes, 1000 + i, RAM, PER_IMAGE)) {
        cases++;
        const o = tryLoad(c.bytes, RAM);
        if (o.kind === "finding") findings.push(`${base.name}, ${c.name}: ${o.detail.split("\n")[0]}`);
        else if (o.kind === "loaded") loaded++;
        else {
          refused++;
          const key = `${o.error.name}: ${o.error.what.replace(/0x[0-9a-f]+|\d+/g, "N")}`;
          messages.set(key, (messages.get(key) ?? 0) + 1);
        }
      }
    });
    console.log(`loader fuzz: ${cases} images (${loaded} loaded, ${refused} refused with ${messages.size} distinct messages), ${findings.length} findings`);
    expect(findings.join("\n")).toBe("");
    expect(refused).toBeGreaterThan(cases / 4); // the mutations do reach the checks
    expect(loaded).toBeGreaterThan(0);
  });

  it("through the CLI: a refused image exits 2 with a one-line message and no stack trace", () => {
    const dir = mkdtempSync(join(tmpdir(), "s86-loader-"));
    const picks: LoaderCase[] = [];
    const hello = all.find((b) => b.name === "hello.elf")!;
    for (const c of mutations(hello.bytes, 77, RAM, 300)) {
      if (tryLoad(c.bytes, RAM).kind === "refused" && picks.length < 6 && !picks.some((p) => p.name.split(" ")[0] === c.name.split(" ")[0])) picks.push(c);
    }
    picks.push({ name: "empty file", bytes: new Uint8Array(0) });
    expect(picks.length).toBeGreaterThanOrEqual(4);
    for (const c of picks) {
      const f = join(dir, "k.elf");
      writeFileSync(f, c.bytes);
      const r = spawnSync(process.execPath, [join(root, "dist", "shadow86.cjs"), "-kernel", f, "-m", "64"], { encoding: "latin1", timeout: 60_000 });
      expect(r.status, c.name).toBe(2);
      expect(r.stdout, c.name).toBe("");
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, c.name).toHaveLength(1);
      expect(lines[0], c.name).toMatch(/^shadow86: (ElfError|BootError): /);
      expect(r.stderr, c.name).not.toMatch(/\n\s+at /);
    }
  });
});
