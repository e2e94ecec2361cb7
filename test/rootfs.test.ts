/**
 * The root disk (src/image/rootfs.ts) and the guest network scripts.
 *
 * Unit tests: the busybox applet table, modules.dep, option checks, apt's
 * install output, and the network scripts run by the host's /bin/sh with
 * fake `ip` and `udhcpc` commands that record their arguments.
 *
 * The build test uses the network and the image cache like boot.test.ts (the
 * first run downloads the Debian packages; later runs use the cache) and
 * checks the image with host tools: e2fsck, debugfs.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parseInstallUris } from '../src/image/apt.js';
import { ImageError } from '../src/image/errors.js';
import { fetchImages } from '../src/image/fetch.js';
import {
  BASE_MODULES, DRIVERS_SCRIPT, modulesDep, NETWORK_SCRIPT, ON_DEMAND_MODULES, ROOT_FS_MODULES, UDHCPC_SCRIPT, VIRTIO_DRIVERS, VIRTIO_MODULES,
  virtioDriversTable,
} from '../src/image/initramfs.js';
import type { ResolvedModule } from '../src/image/modules.js';
import {
  appletDir, buildRootfs, busyboxApplets, checkRootfsOptions, ROOTFS_LABEL, rootfsEtc,
} from '../src/image/rootfs.js';

const scratch = mkdtempSync(join(tmpdir(), 'disco-rootfs-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const enc = new TextEncoder();
process.env['PATH'] = `${process.env['PATH'] ?? '/usr/bin:/bin'}:/usr/sbin:/sbin`; // e2fsprogs
const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

function concat(...parts: (string | Uint8Array)[]): Uint8Array {
  const bufs = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p));
  const out = new Uint8Array(bufs.reduce((a, b) => a + b.length, 0));
  let off = 0;
  for (const b of bufs) { out.set(b, off); off += b.length; }
  return out;
}

describe('busybox applet table', () => {
  const table = '[\0[[\0acpid\0ash\0cat\0init\0ls\0mount\0poweroff\0sh\0switch_root\0udhcpc\0';
  test('reads the sorted NUL-separated names after noise, stopping at the first non-name', () => {
    const bin = concat(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0x5b, 0x20, 0x5b, 0]), 'x[y\0', table, '\0/var/log/wtmp\0-/bin/sh\0');
    assert.deepEqual(busyboxApplets(bin), ['[', '[[', 'acpid', 'ash', 'cat', 'init', 'ls', 'mount', 'poweroff', 'sh', 'switch_root', 'udhcpc']);
  });
  test('the table ends where the order breaks', () => {
    const bin = concat(table, 'aaa\0zzz\0');
    assert.equal(busyboxApplets(bin)!.at(-1), 'udhcpc');
  });
  test('no table, or too short a one, is undefined', () => {
    assert.equal(busyboxApplets(new Uint8Array(1000)), undefined);
    assert.equal(busyboxApplets(concat('[\0[[\0sh\0')), undefined);
    assert.equal(busyboxApplets(concat('[\0[[\0')), undefined);
  });
  test("Debian's busybox-static: the applets the guests rely on", async () => {
    const images = await fetchImages();
    const names = busyboxApplets(new Uint8Array(readFileSync(images.busybox)))!;
    assert.ok(names.length > 200, `${names.length} applets`);
    for (const a of ['sh', 'init', 'cttyhack', 'switch_root', 'findfs', 'udhcpc', 'ip', 'modprobe', 'acpid', 'usleep', 'poweroff']) assert.ok(names.includes(a), a);
  });
  test('system applets go to /usr/sbin, the rest to /usr/bin', () => {
    assert.equal(appletDir('init'), 'usr/sbin');
    assert.equal(appletDir('udhcpc'), 'usr/sbin');
    assert.equal(appletDir('sh'), 'usr/bin');
  });
});

describe('modules.dep', () => {
  const mod = (name: string, path: string): ResolvedModule => ({ name, path, data: new Uint8Array(0) });
  test('every transitive dependency, the first to load last; unknown names dropped', () => {
    const mods = [mod('crc16', 'k/crc16.ko'), mod('jbd2', 'k/jbd2.ko'), mod('mbcache', 'k/mbcache.ko'), mod('ext4', 'k/ext4.ko'), mod('failover', 'k/f.ko'), mod('net_failover', 'k/nf.ko')];
    const direct = new Map<string, readonly string[]>([
      ['ext4', ['mbcache', 'jbd2', 'crc16']], ['jbd2', ['crc16']], ['net_failover', ['failover', 'builtin_thing']],
    ]);
    assert.equal(modulesDep(mods, direct), [
      'k/crc16.ko:', 'k/jbd2.ko: k/crc16.ko', 'k/mbcache.ko:', 'k/ext4.ko: k/mbcache.ko k/jbd2.ko k/crc16.ko', 'k/f.ko:', 'k/nf.ko: k/f.ko', '',
    ].join('\n'));
    assert.equal(modulesDep([], new Map()), '');
  });
});

describe('options and apt', () => {
  test('size and package names are checked; packages sorted and deduplicated', () => {
    assert.deepEqual(checkRootfsOptions({}), { sizeMiB: 512, packages: ['fio', 'iperf3', 'socat'] });
    assert.deepEqual(checkRootfsOptions({ sizeMiB: 100, packages: ['socat', 'fio', 'socat'] }), { sizeMiB: 100, packages: ['fio', 'socat'] });
    assert.throws(() => checkRootfsOptions({ sizeMiB: 10 }), ImageError);
    assert.throws(() => checkRootfsOptions({ sizeMiB: 100.5 }), ImageError);
    for (const bad of ['Socat', '-o', 'a b', 'x', '../x', 'foo;rm']) assert.throws(() => checkRootfsOptions({ packages: [bad] }), /not a Debian package name/, bad);
  });
  test('parseInstallUris: package names in order, once each, from apt-get --print-uris install', () => {
    const text = [
      'Reading package lists...',
      "'http://deb.debian.org/debian/pool/main/g/gcc-14/gcc-14-base_14.2.0-19_riscv64.deb' gcc-14-base_14.2.0-19_riscv64.deb 52000 MD5Sum:00",
      "'http://deb.debian.org/debian/pool/main/z/zlib/zlib1g_1%3a1.3.dfsg-1_riscv64.deb' zlib1g_1%3a1.3.dfsg-1_riscv64.deb 80000 MD5Sum:11",
      "'http://deb.debian.org/debian/pool/main/s/socat/socat_1.8.0.3-1_riscv64.deb' socat_1.8.0.3-1_riscv64.deb 420360 MD5Sum:22",
      "'http://deb.debian.org/debian/pool/main/s/socat/socat_1.8.0.3-1_riscv64.deb' socat_1.8.0.3-1_riscv64.deb 420360 MD5Sum:22",
      'Need to get 49.2 MB of archives.',
    ].join('\n');
    assert.deepEqual(parseInstallUris(text), ['gcc-14-base', 'zlib1g', 'socat']);
    assert.deepEqual(parseInstallUris('E: Unable to locate package nope\n'), []);
  });
  test('the default guest carries every virtio driver, ext4 and its checksum, and af_packet; loads the power button at once', () => {
    for (const m of ['virtio_mmio', 'virtio_input', 'evdev']) assert.ok(BASE_MODULES.includes(m), m);
    for (const m of [...VIRTIO_MODULES, 'crc32c_generic', 'ext4', 'af_packet']) assert.ok(ON_DEMAND_MODULES.includes(m), m);
    assert.deepEqual(ROOT_FS_MODULES, ['crc32c_generic', 'ext4']);
    for (const m of Object.values(VIRTIO_DRIVERS)) assert.ok([...BASE_MODULES, ...ON_DEMAND_MODULES].includes(m), m);
    assert.equal(virtioDriversTable(new Set(['virtio_blk', 'virtio_net', 'ext4'])), '0x0001 virtio_net\n0x0002 virtio_blk\n');
  });
  test('inittab respawns the agent only when it is installed', () => {
    const tab = (agent: boolean): string => String(rootfsEtc({ kernelVersion: 'v', modules: new Set(['ext4']), agent }).find((f) => f.path === 'etc/inittab')!.data);
    assert.match(tab(true), /^::respawn:\/usr\/sbin\/disco-agent$/m);
    assert.doesNotMatch(tab(false), /disco-agent/);
    assert.match(tab(false), /^::sysinit:\/etc\/init\.d\/rcS$/m);
    assert.match(tab(false), /^::once:\/bin\/cttyhack \/etc\/disco\/console$/m);
  });
});

// ---------------------------------------------------------------- network scripts

/** Runs a guest script with the host's sh; `ip`, `udhcpc`, `ifconfig` are fakes that log their arguments. */
function runScript(script: string, args: string[], env: Record<string, string>, opts: { eth0?: boolean } = {}): { log: string[]; out: string; dir: string; status: number | null } {
  const dir = mkdtempSync(join(scratch, 'sh-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const cmd of ['ip', 'udhcpc', 'ifconfig']) {
    // `ip route del` fails, as it does once no default route is left.
    writeFileSync(join(bin, cmd), `#!/bin/sh\necho "${cmd} $*" >> "${dir}/log"\ncase "$*" in "route del"*) exit 2 ;; esac\n`);
    chmodSync(join(bin, cmd), 0o755);
  }
  if (opts.eth0 !== false) mkdirSync(join(dir, 'sys/class/net/eth0'), { recursive: true });
  writeFileSync(join(dir, 'script'), script);
  const r = spawnSync('sh', [join(dir, 'script'), ...args], {
    env: { PATH: `${bin}:/usr/bin:/bin`, DISCO_SYSFS: join(dir, 'sys'), RESOLV_CONF: join(dir, 'resolv.conf'), ...env }, encoding: 'utf8',
  });
  let log: string[] = [];
  try { log = readFileSync(join(dir, 'log'), 'utf8').trim().split('\n'); } catch { /* nothing ran */ }
  return { log, out: r.stdout + r.stderr, dir, status: r.status };
}

describe('guest driver loading', () => {
  test('/etc/disco/drivers modprobes the drivers of the devices present, and the modules named, once', () => {
    const dir = mkdtempSync(join(scratch, 'drv-'));
    mkdirSync(join(dir, 'bin'));
    writeFileSync(join(dir, 'bin/modprobe'), `#!/bin/sh\necho "$*" >> "${dir}/log"\n`);
    chmodSync(join(dir, 'bin/modprobe'), 0o755);
    for (const [n, id] of [['virtio0', '0x0012'], ['virtio1', '0x0002'], ['virtio2', '0x0002'], ['virtio3', '0x0009']] as const) {
      mkdirSync(join(dir, 'sys/bus/virtio/devices', n), { recursive: true });
      writeFileSync(join(dir, 'sys/bus/virtio/devices', n, 'device'), `${id}\n`);
    }
    mkdirSync(join(dir, 'sys/module/virtio_input'), { recursive: true });
    writeFileSync(join(dir, 'virtio-drivers'), virtioDriversTable(new Set(Object.values(VIRTIO_DRIVERS))));
    // The script's absolute paths, moved under the scratch directory.
    const script = DRIVERS_SCRIPT.replaceAll('/sys/', `${dir}/sys/`).replaceAll('/etc/disco/virtio-drivers', `${dir}/virtio-drivers`);
    const r = spawnSync('sh', ['-c', script, 'drivers', 'crc32c_generic', 'ext4'], { env: { PATH: `${dir}/bin:/usr/bin:/bin` }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    // virtio_input is loaded already; device 9 has no driver here; virtio_blk twice is harmless (modprobe skips it)
    assert.deepEqual(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n'), ['crc32c_generic', 'ext4', 'virtio_blk', 'virtio_blk']);
  });
});

describe('guest network scripts', () => {
  test('no disco.ip=: only lo comes up', () => {
    const r = runScript(NETWORK_SCRIPT, [], { DISCO_CMDLINE: 'console=ttyS0 root=/dev/vda' });
    assert.deepEqual(r.log, ['ip link set lo up']);
    assert.equal(r.status, 0);
  });
  test('disco.ip=dhcp runs udhcpc on eth0 with the Disco script', () => {
    const r = runScript(NETWORK_SCRIPT, [], { DISCO_CMDLINE: 'console=ttyS0 disco.ip=dhcp' });
    assert.equal(r.log[0], 'ip link set lo up');
    assert.match(r.log[1]!, /^udhcpc -i eth0 -s \/usr\/share\/udhcpc\/default\.script .*-b/);
  });
  test('a static address, with a gateway', () => {
    const r = runScript(NETWORK_SCRIPT, [], { DISCO_CMDLINE: 'disco.ip=10.1.2.3/24 disco.gw=10.1.2.1' });
    assert.deepEqual(r.log, ['ip link set lo up', 'ip link set eth0 up', 'ip addr add 10.1.2.3/24 dev eth0', 'ip route add default via 10.1.2.1 dev eth0']);
    assert.match(r.out, /disco: eth0 10\.1\.2\.3\/24/);
  });
  test('a malformed disco.ip= is ignored with a message; no eth0 is an error message', () => {
    const bad = runScript(NETWORK_SCRIPT, [], { DISCO_CMDLINE: 'disco.ip=10.1.2.3;reboot' });
    assert.deepEqual(bad.log, ['ip link set lo up']);
    assert.match(bad.out, /ignoring disco\.ip=/);
    const none = runScript(NETWORK_SCRIPT, [], { DISCO_CMDLINE: 'disco.ip=dhcp' }, { eth0: false });
    assert.deepEqual(none.log, ['ip link set lo up']);
    assert.match(none.out, /there is no eth0/);
  });
  test('udhcpc bound: address, one default route, resolv.conf', () => {
    const r = runScript(UDHCPC_SCRIPT, ['bound'], {
      interface: 'eth0', ip: '10.0.2.15', mask: '24', broadcast: '10.0.2.255', router: '10.0.2.2 10.0.2.1', dns: '10.0.2.3 1.1.1.1', domain: 'example',
    });
    assert.deepEqual(r.log, [
      'ip -4 addr flush dev eth0', 'ip addr add 10.0.2.15/24 broadcast 10.0.2.255 dev eth0', 'ip route del default dev eth0',
      'ip route add default via 10.0.2.2 dev eth0',
    ]);
    assert.equal(readFileSync(join(r.dir, 'resolv.conf'), 'utf8'), 'search example\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n');
    assert.match(r.out, /disco: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/);
  });
  test('udhcpc deconfig and leasefail', () => {
    assert.deepEqual(runScript(UDHCPC_SCRIPT, ['deconfig'], { interface: 'eth0' }).log, ['ip -4 addr flush dev eth0', 'ip link set eth0 up']);
    assert.match(runScript(UDHCPC_SCRIPT, ['leasefail'], { interface: 'eth0' }).out, /no DHCP lease on eth0/);
  });
});

// ---------------------------------------------------------------- the build (network + cache)

const debugfs = (img: string, cmd: string): string => execFileSync('debugfs', ['-R', cmd, img], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

/** Mode, uid and gid of a path in the image, from `debugfs stat`. */
function inode(img: string, path: string): { type: string; mode: number; uid: number; gid: number } {
  const s = debugfs(img, `stat ${path}`);
  const m = /Type:\s+(\S+)\s+Mode:\s+([0-7]+)/.exec(s);
  const u = /User:\s+(\d+)\s+Group:\s+(\d+)/.exec(s);
  assert.ok(m && u, `${path} is in the image`);
  return { type: m[1]!, mode: parseInt(m[2]!, 8), uid: Number(u[1]), gid: Number(u[2]) };
}

describe('disco image build', () => {
  test('an ext4 root disk with busybox, socat, iperf3, fio, modules and /etc; cached', async (t) => {
    if (!onPath('mke2fs') || !onPath('debugfs') || !onPath('e2fsck')) { t.skip('e2fsprogs not installed'); return; }
    const logs: string[] = [];
    const output = join(scratch, 'root.img');
    const r = await buildRootfs({ output, log: (l) => logs.push(l), progress: false });
    assert.equal(r.path, output);
    assert.equal(statSync(output).size, 512 * 1024 * 1024);
    assert.ok(logs.some((l) => l.startsWith('root disk ready')), logs.join('\n'));
    for (const p of ['socat', 'iperf3', 'fio', 'libc6', 'busybox-static']) assert.ok(r.packages.some((s) => s.startsWith(`${p}=`)), p);

    const fsck = spawnSync('e2fsck', ['-fn', output], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);
    assert.match(execFileSync('e2label', [output], { encoding: 'utf8' }), new RegExp(`^${ROOTFS_LABEL}\\s*$`));

    const root = debugfs(output, 'ls -l /');
    for (const d of ['usr', 'etc', 'proc', 'sys', 'dev', 'run', 'tmp', 'root']) assert.match(root, new RegExp(`\\s${d}\\n`), d);
    assert.match(debugfs(output, 'stat /bin'), /Type: symlink[\s\S]*Fast link dest: "usr\/bin"/);
    assert.match(debugfs(output, 'stat /sbin/init'), /Fast link dest: "..\/bin\/busybox"/);
    assert.match(debugfs(output, 'stat /usr/bin/sh'), /Fast link dest: "busybox"/);
    assert.deepEqual(inode(output, '/usr/bin/busybox'), { type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    for (const tool of ['/usr/bin/socat', '/usr/bin/iperf3', '/usr/bin/fio']) {
      const link = /Fast link dest: "([^"]+)"/.exec(debugfs(output, `stat ${tool}`)); // socat is a link to socat1
      const real = link ? `/usr/bin/${link[1]!}` : tool;
      assert.deepEqual(inode(output, real), { type: 'regular', mode: 0o755, uid: 0, gid: 0 }, real);
    }
    // the loader the tools name, and a library they need, through the merged-/usr symlink
    assert.equal(inode(output, '/usr/lib/ld-linux-riscv64-lp64d.so.1').type.length > 0, true);
    assert.match(debugfs(output, 'ls /usr/lib/riscv64-linux-gnu'), /libssl\.so\.3/);
    // the packages' special modes and owners survive
    assert.deepEqual(inode(output, '/usr/bin/passwd'), { type: 'regular', mode: 0o4755, uid: 0, gid: 0 });
    assert.deepEqual(inode(output, '/usr/bin/chage'), { type: 'regular', mode: 0o2755, uid: 0, gid: 42 });
    assert.deepEqual(inode(output, '/tmp'), { type: 'directory', mode: 0o1777, uid: 0, gid: 0 });
    assert.deepEqual(inode(output, '/root'), { type: 'directory', mode: 0o700, uid: 0, gid: 0 });
    // /etc
    assert.deepEqual(inode(output, '/etc/passwd'), { type: 'regular', mode: 0o644, uid: 0, gid: 0 });
    assert.deepEqual(inode(output, '/etc/shadow'), { type: 'regular', mode: 0o640, uid: 0, gid: 42 });
    assert.deepEqual(inode(output, '/etc/init.d/rcS'), { type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    assert.deepEqual(inode(output, '/usr/share/udhcpc/default.script'), { type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    for (const f of ['hostname', 'fstab', 'inittab', 'group', 'profile', 'hosts']) assert.equal(inode(output, `/etc/${f}`).mode, 0o644, f);
    assert.match(debugfs(output, 'cat /etc/passwd'), /^root:x:0:0:root:\/root:\/bin\/sh$/m);
    assert.match(debugfs(output, 'cat /etc/inittab'), /^::sysinit:\/etc\/init\.d\/rcS$/m);
    assert.match(debugfs(output, 'cat /etc/fstab'), /LABEL=disco-root/);
    // modules: every one listed is there, uncompressed, with a modules.dep
    const images = await fetchImages();
    const modDir = `/usr/lib/modules/${images.kernelVersion}`;
    const dep = debugfs(output, `cat ${modDir}/modules.dep`);
    assert.match(dep, /^kernel\/fs\/ext4\/ext4\.ko: .*kernel\/fs\/jbd2\/jbd2\.ko/m);
    assert.match(dep, /^kernel\/drivers\/block\/virtio_blk\.ko:/m);
    const drivers = debugfs(output, 'cat /etc/disco/virtio-drivers');
    for (const m of ['virtio_blk', 'virtio_net', 'vmw_vsock_virtio_transport', 'virtio_rng', 'virtio_balloon', 'virtio_input']) assert.match(drivers, new RegExp(`^0x00[0-9a-f]{2} ${m}$`, 'm'), m);
    for (const m of ['ext4', 'crc32c_generic', 'evdev', 'virtio_mmio', 'vsock']) assert.match(dep, new RegExp(`/${m}\\.ko:`), m);
    for (const line of dep.trim().split('\n')) {
      const path = line.slice(0, line.indexOf(':'));
      assert.equal(inode(output, `${modDir}/${path}`).type, 'regular', path);
      const head = execFileSync('debugfs', ['-R', `cat ${modDir}/${path}`, output], { stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 }).subarray(0, 4);
      assert.deepEqual([...head], [0x7f, 0x45, 0x4c, 0x46], `${path} is an uncompressed ELF`);
    }

    // The second build is a cache hit, fast.
    const t0 = Date.now();
    const again = await buildRootfs({ progress: false });
    assert.equal(again.hit, true);
    assert.equal(again.key, r.key);
    assert.equal(again.path, r.cached);
    assert.ok(Date.now() - t0 < 5000, `cache hit took ${Date.now() - t0} ms`);
  });

  test('a size too small for the packages is a one-line error naming --size', async (t) => {
    if (!onPath('mke2fs')) { t.skip('e2fsprogs not installed'); return; }
    await assert.rejects(buildRootfs({ sizeMiB: 64, progress: false }), (e: unknown) => e instanceof ImageError && /--size 64 MiB/.test(e.message) && !e.message.includes('\n'));
  });

  test('an unknown package is a one-line error', async (t) => {
    if (!onPath('mke2fs')) { t.skip('e2fsprogs not installed'); return; }
    await assert.rejects(buildRootfs({ packages: ['no-such-package-disco'], progress: false }), (e: unknown) => e instanceof ImageError && /no-such-package-disco/.test(e.message));
  });
});
