/**
 * The translator beside QEMU's: Disco (translator on, the default) and
 * qemu-system-riscv64 TCG in the same run, 1 vCPU, on the same Debian kernel
 * and busybox initramfs:
 *
 *   - boot: process start until the initramfs prints "disco: init ready"
 *   - sha256sum and gzip -6 of 32 MiB read from /dev/zero, inside the guest
 *   - a 20,000-iteration shell loop, inside the guest
 *   - the bare-metal programs of bench/programs (REPEAT times their usual
 *     work), each a whole process (Disco: `disco run --bios P.elf`; QEMU:
 *     `-M spike -bios none -kernel P.elf`), less the time the same system
 *     takes for an empty program; MIPS = instructions / that time.
 *
 * Guest commands are timed on the host, from typing the line until its
 * completion marker comes back on the console.
 *
 *   npm run bench:jit [-- --interp] [-- --only guest|programs] [-- --repeat N] [-- --runs N]
 *
 * --interp adds a column for Disco with the translator off.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BASE_MODULES, defaultInitramfs, fetchImages, INIT_READY, INITRAMFS_CMDLINE } from '../src/image/index.js';
import { createBareMetal } from '../src/machine/baremetal.js';
import { runHart } from '../src/machine/hart-loop.js';
import { Guest } from '../test/guest.js';
import { discoSpawn } from '../test/support.js';
import { benchDir, buildProgram, PROGRAMS, root } from './build-programs.js';

const { values } = parseArgs({
  options: {
    interp: { type: 'boolean' },
    only: { type: 'string' },
    repeat: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
  },
});
const only = values.only;
if (only !== undefined && only !== 'guest' && only !== 'programs') {
  console.error('bench:jit: --only takes guest or programs');
  process.exit(2);
}
const repeat = Number(values.repeat);
const runs = Number(values.runs);
if (!Number.isInteger(repeat) || repeat < 1 || !Number.isInteger(runs) || runs < 1) {
  console.error('bench:jit: --repeat and --runs take positive integers');
  process.exit(2);
}

const haveQemu = spawnSync('qemu-system-riscv64', ['--version']).status === 0;
const BOOT_MS = 900_000;
const WORK_MS = 1_800_000;

type System = { readonly name: string; readonly kind: 'disco'; readonly jit: 'on' | 'off' } | { readonly name: string; readonly kind: 'qemu' };
const systems: System[] = [{ name: 'Disco', kind: 'disco', jit: 'on' }];
if (values.interp) systems.push({ name: 'Disco, interpreter', kind: 'disco', jit: 'off' });
if (haveQemu) systems.push({ name: 'QEMU TCG', kind: 'qemu' });

/** One row: seconds per system, by name. */
interface Row { readonly name: string; readonly seconds: Map<string, number>; readonly instructions?: number }
const rows: Row[] = [];
const row = (name: string, instructions?: number): Row => {
  const r: Row = instructions === undefined ? { name, seconds: new Map() } : { name, seconds: new Map(), instructions };
  rows.push(r);
  return r;
};

const GUEST_WORK = [
  ['sha256sum of 32 MiB', `dd if=/dev/zero bs=1M count=32 2>/dev/null | sha256sum`, /([0-9a-f]{64})/],
  ['gzip -6 of 32 MiB', `dd if=/dev/zero bs=1M count=32 2>/dev/null | gzip -6 | wc -c`, /^(\d+)\s*$/m],
  ['shell loop, 20,000 iterations', `i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo $i`, /^(20000)\s*$/m],
] as const;

async function guestRows(): Promise<void> {
  const images = await fetchImages();
  mkdirSync(benchDir, { recursive: true });
  const initrd = join(benchDir, 'initrd-translator.gz');
  writeFileSync(initrd, await defaultInitramfs(images, { modules: BASE_MODULES }));
  const boot = row('boot to init');
  const work = GUEST_WORK.map(([name]) => row(name));
  const answers = new Map<string, string>();
  for (const sys of systems) {
    const t0 = performance.now();
    const g = sys.kind === 'disco'
      ? new Guest(['--jit', sys.jit, '--memory', '512', '--kernel', images.kernel, '--initrd', initrd, '--append', INITRAMFS_CMDLINE])
      : new Guest(['-M', 'virt', '-m', '512', '-smp', '1', '-nographic', '-bios', images.opensbiFwJumpBin,
        '-kernel', images.kernel, '-initrd', initrd, '-append', INITRAMFS_CMDLINE], ['qemu-system-riscv64']);
    try {
      await g.waitFor(new RegExp(INIT_READY), BOOT_MS);
      boot.seconds.set(sys.name, (performance.now() - t0) / 1000);
      await g.settle();
      for (const [i, [name, cmd, answer]] of GUEST_WORK.entries()) {
        const from = g.output.length;
        const t = performance.now();
        await g.run(`${cmd}; echo work-done-$((6*7))`, /work-done-42/, WORK_MS);
        work[i]!.seconds.set(sys.name, (performance.now() - t) / 1000);
        const m = g.output.slice(from).match(answer);
        if (!m) throw new Error(`${sys.name}: ${name}: no answer in ${JSON.stringify(g.output.slice(from))}`);
        const prev = answers.get(name);
        if (prev !== undefined && prev !== m[1]) throw new Error(`${name}: ${sys.name} answered ${m[1]}, another system ${prev}`);
        answers.set(name, m[1]!);
      }
    } finally {
      g.kill();
    }
  }
}

/** Wall seconds of one whole process running a bare-metal program to its end. */
function processSeconds(sys: System, elf: string): Promise<number> {
  const [cmd, args] = sys.kind === 'disco'
    ? discoSpawn(['run', '--jit', sys.jit, '--bios', elf, '--max-instructions', '20000000000'])
    : ['qemu-system-riscv64', ['-M', 'spike', '-m', '128', '-nographic', '-bios', 'none', '-kernel', elf]];
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    p.stderr.on('data', (d: Buffer) => { out += d.toString(); });
    p.on('exit', (code) => {
      const s = (performance.now() - t0) / 1000;
      if (code === 0) resolve(s);
      else reject(new Error(`${sys.name}: ${elf} exited ${code}: ${out.slice(-500)}`));
    });
  });
}

async function best(sys: System, elf: string): Promise<number> {
  let b = Infinity;
  for (let i = 0; i < runs; i++) b = Math.min(b, await processSeconds(sys, elf));
  return b;
}

/** Retired instructions of a program (the same on every correct RV64GC machine: both systems run it to the same end). */
async function instructionsOf(elf: string): Promise<number> {
  const m = createBareMetal(readFileSync(elf), { ramBytes: 128 << 20, cpus: 1, clock: 'instructions', jit: 'on' });
  const o = await runHart(m.harts[0]!, m.bus, { maxInstructions: 2e10 });
  if (o.kind !== 'htif' || o.value !== '1') throw new Error(`${elf}: did not finish cleanly: ${JSON.stringify(o)}`);
  return m.harts[0]!.steps;
}

async function programRows(): Promise<void> {
  const empty = buildProgram('empty');
  const startup = new Map<string, number>();
  for (const sys of systems) startup.set(sys.name, await best(sys, empty));
  for (const [name] of PROGRAMS) {
    const elf = buildProgram(name, repeat);
    const r = row(`${name} (x${repeat})`, await instructionsOf(elf));
    for (const sys of systems) r.seconds.set(sys.name, Math.max(1e-3, (await best(sys, elf)) - startup.get(sys.name)!));
  }
  const s = row('start-up (empty program, not in the ratios above)');
  for (const sys of systems) s.seconds.set(sys.name, startup.get(sys.name)!);
}

if (only !== 'programs') await guestRows();
if (only !== 'guest') await programRows();

const qemu = haveQemu ? 'QEMU TCG' : null;
const col = 22;
console.log(`Disco beside qemu-system-riscv64 TCG: 1 vCPU, same run; seconds (MIPS for programs), Disco/QEMU time ratio`);
console.log(`${'workload'.padEnd(36)}${systems.map((s) => s.name.padStart(col)).join('')}${qemu ? 'Disco/QEMU'.padStart(12) : ''}`);
for (const r of rows) {
  const cells = systems.map((s) => {
    const sec = r.seconds.get(s.name);
    if (sec === undefined) return 'n/a'.padStart(col);
    const mips = r.instructions !== undefined ? ` (${(r.instructions / sec / 1e6).toFixed(0)} MIPS)` : '';
    return `${sec.toFixed(2)} s${mips}`.padStart(col);
  }).join('');
  const d = r.seconds.get('Disco');
  const q = qemu ? r.seconds.get(qemu) : undefined;
  console.log(`${r.name.padEnd(36)}${cells}${qemu ? (d !== undefined && q !== undefined ? `${(d / q).toFixed(2)}x` : 'n/a').padStart(12) : ''}`);
}
if (!haveQemu) console.log('qemu-system-riscv64 not installed (Debian package qemu-system-misc): no comparison');
process.exit(0);
