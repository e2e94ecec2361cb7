/**
 * What an idle guest costs the host: Disco (translator on, and off) beside
 * qemu-system-riscv64 TCG in the same run, the same Debian kernel and busybox
 * initramfs, 1 vCPU, 256 MiB. Each guest boots, its shell answers, it idles
 * 5 s, then the host process's CPU time (/proc/PID/stat) is read over 10 s.
 *
 *   npm run bench:idle
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BASE_MODULES, defaultInitramfs, fetchImages, INIT_READY, INITRAMFS_CMDLINE } from '../src/image/index.js';
import { Guest } from '../test/guest.js';
import { benchDir } from './build-programs.js';

const images = await fetchImages();
mkdirSync(benchDir, { recursive: true });
const initrd = join(benchDir, 'initrd-idle.gz');
writeFileSync(initrd, await defaultInitramfs(images, { modules: BASE_MODULES }));
const haveQemu = spawnSync('qemu-system-riscv64', ['--version']).status === 0;

/** Seconds of CPU (user + system) the process has used. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function idleShare(g: Guest): Promise<number> {
  try {
    await g.waitFor(new RegExp(INIT_READY), 600_000);
    await g.settle();
    await sleep(5000);
    const pid = g.proc.pid!;
    const c0 = cpuSeconds(pid), t0 = performance.now();
    await sleep(10_000);
    return (cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000);
  } finally {
    g.kill();
  }
}

const disco = (jit: string): Guest => new Guest(['--jit', jit, '--memory', '256', '--kernel', images.kernel, '--initrd', initrd, '--append', INITRAMFS_CMDLINE]);
const rows: [string, number][] = [];
rows.push(['Disco, translator on', await idleShare(disco('on'))]);
rows.push(['Disco, interpreter', await idleShare(disco('off'))]);
if (haveQemu) {
  rows.push(['QEMU TCG', await idleShare(new Guest(['-M', 'virt', '-m', '256', '-smp', '1', '-nographic', '-bios', images.opensbiFwJumpBin,
    '-kernel', images.kernel, '-initrd', initrd, '-append', INITRAMFS_CMDLINE], ['qemu-system-riscv64']))]);
}
console.log(`idle guest (Debian ${images.kernelVersion}, busybox initramfs, 1 vCPU, 256 MiB): host CPU over 10 s`);
const q = rows.find(([n]) => n === 'QEMU TCG')?.[1];
for (const [name, share] of rows) {
  console.log(`${name.padEnd(24)} ${(share * 100).toFixed(2).padStart(7)} % of a thread${q ? `  ${(share / q).toFixed(1).padStart(6)}x QEMU` : ''}`);
}
if (!haveQemu) console.log('qemu-system-riscv64 not installed (Debian package qemu-system-misc): no comparison');
process.exit(0);
