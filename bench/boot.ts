/**
 * Boot to init: Disco beside qemu-system-riscv64 (TCG) on the same Debian kernel
 * and the same initramfs, 1 vCPU, 512 MiB, in the same run. Time from process
 * start to the initramfs printing "disco: init ready".
 *
 *   npm run bench:boot
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_MODULES, defaultInitramfs, fetchImages, INIT_READY, INITRAMFS_CMDLINE } from '../src/image/index.js';
import { discoSpawn } from '../test/support.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TIMEOUT_MS = 600_000;

function timeToReady(cmd: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd}: no "${INIT_READY}" within ${TIMEOUT_MS / 1000} s`)); }, TIMEOUT_MS);
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes(INIT_READY)) {
        const s = (performance.now() - t0) / 1000;
        clearTimeout(timer);
        p.kill('SIGKILL');
        resolve(s);
      }
    });
    p.on('exit', (code) => { clearTimeout(timer); reject(new Error(`${cmd} exited (${code}) before init:\n${out.slice(-2000)}`)); });
  });
}

const images = await fetchImages();
const dir = join(root, 'build', 'bench');
mkdirSync(dir, { recursive: true });
const initrd = join(dir, 'initrd.gz');
writeFileSync(initrd, await defaultInitramfs(images, { modules: BASE_MODULES }));
const common = ['-m', '512', '-smp', '1'];
const rows: [string, number][] = [];
rows.push(['Disco, SBI in the hypervisor', await timeToReady(...discoSpawn(['run', '--kernel', images.kernel, '--initrd', initrd, '--append', INITRAMFS_CMDLINE, '--memory', '512']))]);
rows.push(['Disco, OpenSBI fw_jump', await timeToReady(...discoSpawn(['run', '--bios', images.opensbiFwJump, '--kernel', images.kernel, '--initrd', initrd, '--append', INITRAMFS_CMDLINE, '--memory', '512']))]);
const qemu = spawnSync('qemu-system-riscv64', ['--version'], { encoding: 'utf8' });
let qemuTime: number | null = null;
if (qemu.status === 0) {
  qemuTime = await timeToReady('qemu-system-riscv64', ['-M', 'virt', ...common, '-nographic', '-bios', images.opensbiFwJump.replace(/\.elf$/, '.bin'),
    '-kernel', images.kernel, '-initrd', initrd, '-append', INITRAMFS_CMDLINE]);
}
console.log(`boot to init (Debian ${images.kernelVersion}, busybox initramfs, 1 vCPU, 512 MiB)`);
console.log(`${'system'.padEnd(34)} ${'seconds'.padStart(8)} ${'vs QEMU'.padStart(8)}`);
for (const [name, s] of rows) console.log(`${name.padEnd(34)} ${s.toFixed(1).padStart(8)} ${(qemuTime ? `${(s / qemuTime).toFixed(1)}x` : 'n/a').padStart(8)}`);
if (qemuTime !== null) console.log(`${'QEMU 7.2 TCG, OpenSBI fw_jump'.padEnd(34)} ${qemuTime.toFixed(1).padStart(8)} ${'1.0x'.padStart(8)}`);
else console.log('qemu-system-riscv64 not installed (Debian package qemu-system-misc): no comparison');
