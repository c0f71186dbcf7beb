#!/usr/bin/env node
// Self-check of the instruction vectors in test/vectors/data/*.json:
// well-formed JSON in the agreed format, 64 cases per form, consistent keys,
// hex formats, flag masks, pointer normalisation, and (when the iced-x86 dev
// dependency is installed) that `bytes` decodes to exactly ONE valid 64-bit
// instruction whose mnemonic matches the form name.
// Usage: node test/vectors/gen/check.mjs [data-dir] [-v]
import { readFileSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const verbose = args.includes('-v');
const dir = args.find((a) => !a.startsWith('-')) ?? join(here, '..', 'data');

const GPRS = ['rax', 'rcx', 'rdx', 'rbx', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const NCASES = 64;
const HEX = /^0x(0|[1-9a-f][0-9a-f]*)$/;
const BUF = /^[0-9a-f]{64}$/;
const MASK64 = (1n << 64n) - 1n;

let iced = null;
try {
  const require = createRequire(join(here, '..', '..', '..', 'package.json'));
  iced = require('iced-x86');
} catch {
  console.warn('check: iced-x86 not installed, skipping the decode check');
}

let errors = 0;
const err = (where, msg) => {
  errors++;
  if (errors <= 50) console.error(`ERROR ${where}: ${msg}`);
};

// mnemonics whose name in the form differs from the decoder's text
const ALIAS = { 'xchg eax, eax (90 = nop, no zero-extension)': 'nop' };

function mnemonicOfName(name) {
  const words = name.replace(/\(.*$/, '').replace(/\{[^}]*\}/g, '').trim().split(/[\s,]+/);
  while (['lock', 'rep', 'repe', 'repne', 'repz', 'repnz'].includes(words[0])) words.shift();
  return words[0];
}

function decode(bytesHex) {
  const bytes = Uint8Array.from(bytesHex.match(/../g).map((h) => parseInt(h, 16)));
  const dec = new iced.Decoder(64, bytes, iced.DecoderOptions.None);
  const ins = dec.decode();
  const fmt = new iced.Formatter(iced.FormatterSyntax.Intel);
  const text = fmt.format(ins);
  const res = { len: ins.length, invalid: ins.isInvalid ?? ins.code === iced.Code.INVALID, text };
  ins.free();
  dec.free();
  fmt.free();
  return res;
}

const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) err(dir, 'no .json files');
let totalForms = 0;
let totalCases = 0;
const allNames = new Set();
for (const file of files) {
  const path = join(dir, file);
  let doc;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    err(file, `invalid JSON: ${e.message}`);
    continue;
  }
  for (const k of ['generator', 'host_cpu']) if (typeof doc[k] !== 'string' || !doc[k]) err(file, `missing ${k}`);
  if (typeof doc.seed !== 'number') err(file, 'missing seed');
  if (!Array.isArray(doc.forms) || doc.forms.length === 0) {
    err(file, 'no forms');
    continue;
  }
  let fileCases = 0;
  for (const form of doc.forms) {
    const where = `${file}: ${form.name}`;
    if (typeof form.name !== 'string') err(file, 'form without name');
    if (allNames.has(form.name)) err(where, 'duplicate name');
    allNames.add(form.name);
    if (typeof form.bytes !== 'string' || !/^([0-9a-f]{2}){1,15}$/.test(form.bytes)) err(where, `bad bytes ${form.bytes}`);
    if (!Array.isArray(form.regs)) err(where, 'regs not an array');
    const regs = form.regs ?? [];
    for (const r of regs) if (!GPRS.includes(r)) err(where, `bad register name ${r}`);
    if (new Set(regs).size !== regs.length) err(where, 'duplicate register');
    if (!Array.isArray(form.cases) || form.cases.length !== NCASES) {
      err(where, `expected ${NCASES} cases, got ${form.cases?.length}`);
      continue;
    }
    const hasMem = 'dst' in form.cases[0].in;
    if (hasMem && !regs.includes('rsi') && !regs.includes('rdi')) err(where, 'memory without rsi/rdi');
    const keys = [...regs, 'rflags', ...(hasMem ? ['dst', 'src'] : [])].sort().join(',');
    form.cases.forEach((c, i) => {
      for (const side of ['in', 'out']) {
        const s = c[side];
        if (!s || typeof s !== 'object') return err(`${where} #${i}`, `no ${side}`);
        if (Object.keys(s).sort().join(',') !== keys) err(`${where} #${i}`, `${side} keys ${Object.keys(s)} != ${keys}`);
        for (const r of [...regs, 'rflags']) {
          const v = s[r];
          if (typeof v !== 'string' || !HEX.test(v) || BigInt(v) > MASK64) err(`${where} #${i}`, `${side}.${r} bad value ${v}`);
        }
        const fl = BigInt(s.rflags ?? '0x0');
        const allowed = 0xcd7n;
        if ((fl & ~allowed) !== 0n || (fl & 2n) === 0n) err(`${where} #${i}`, `${side}.rflags ${s.rflags} outside mask 0xcd7 or bit 1 clear`);
        if (hasMem) for (const b of ['dst', 'src']) if (!BUF.test(s[b] ?? '')) err(`${where} #${i}`, `${side}.${b} not 32 bytes of hex`);
      }
      if (hasMem) {
        // pointers are normalised: rsi -> 0x10010, rdi -> 0x20010 on input when used as pointers
        for (const [r, base] of [['rsi', 0x10000n], ['rdi', 0x20000n]]) {
          if (!regs.includes(r)) continue;
          const vin = BigInt(c.in[r]);
          const vout = BigInt(c.out[r]);
          if (vin === base + 16n && (vout < base - 0x100n || vout > base + 0x100n)) err(`${where} #${i}`, `${r} pointer out of range after`);
        }
      }
    });
    if (iced) {
      const d = decode(form.bytes);
      const want = ALIAS[form.name] ?? mnemonicOfName(form.name);
      const got = d.text.replace(/^(lock|rep|repe|repne) /, '').split(/\s+/)[0];
      if (d.invalid) err(where, `bytes ${form.bytes} decode as an invalid instruction`);
      else if (d.len * 2 !== form.bytes.length) err(where, `bytes ${form.bytes} are not exactly one instruction (decoded length ${d.len})`);
      else if (got !== want) err(where, `bytes ${form.bytes} decode as "${d.text}", expected mnemonic ${want}`);
      if (verbose) console.log(`${form.bytes.padEnd(30)} ${d.text.padEnd(40)} ${form.name}`);
    }
    fileCases += form.cases.length;
  }
  console.log(`${file.padEnd(14)} ${String(doc.forms.length).padStart(5)} forms ${String(fileCases).padStart(7)} cases${doc.skipped?.length ? `  (${doc.skipped.length} skipped on this host)` : ''}`);
  totalForms += doc.forms.length;
  totalCases += fileCases;
}
console.log(`${'total'.padEnd(14)} ${String(totalForms).padStart(5)} forms ${String(totalCases).padStart(7)} cases`);
if (errors) {
  console.error(`check: ${errors} error(s)`);
  process.exit(1);
}
console.log('check: OK');
