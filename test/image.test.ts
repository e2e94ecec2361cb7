/**
 * Guest images (src/image): the newc cpio writer, the initramfs, kernel
 * module resolution, .deb (ar + tar) extraction, apt output parsing, and the
 * fetch/cache logic with the network replaced by a fake backend. No test
 * touches the network; host tools (cpio, xz, dpkg-deb, apt-config) are used
 * only as extra checks when they are installed.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import { aptErrorLine, checkAptAvailable, DEBIAN_TRIXIE_RISCV64, parseDepends, parsePrintUris, writeAptTree, type DebSpec } from '../src/image/apt.js';
import { defaultCacheDir, withLock } from '../src/image/cache.js';
import { CpioWriter, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../src/image/cpio.js';
import { extractDeb, parseAr, tarEntries } from '../src/image/deb.js';
import { downloadVerified, httpDownload } from '../src/image/download.js';
import { ImageError } from '../src/image/errors.js';
import { fetchImages, type FetchBackend, type GuestImages, type Role } from '../src/image/fetch.js';
import { buildInitramfs, defaultInitramfs, INIT_READY } from '../src/image/initramfs.js';
import { moduleName, readModinfo, readModuleIndex, resolveModules } from '../src/image/modules.js';

const scratch = mkdtempSync(join(tmpdir(), 'disco-image-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let scratchN = 0;
const tempDir = (): string => {
  const d = join(scratch, String(scratchN++));
  mkdirSync(d, { recursive: true });
  return d;
};
const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
const sha = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');
const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

// ---------------------------------------------------------------- a newc reader for the tests

interface CpioEntry {
  name: string; ino: number; mode: number; nlink: number; filesize: number;
  rdevmajor: number; rdevminor: number; data: Uint8Array; offset: number;
}

/** Parses a newc archive strictly: magic, hex fields, 4-byte alignment, trailer. */
function readCpio(buf: Uint8Array): { entries: CpioEntry[]; trailerEnd: number } {
  const dec = new TextDecoder();
  const entries: CpioEntry[] = [];
  let off = 0;
  for (;;) {
    assert.equal(off % 4, 0, `header at ${off} is 4-byte aligned`);
    assert.ok(off + 110 <= buf.length, 'header within archive');
    const h = dec.decode(buf.subarray(off, off + 110));
    assert.equal(h.slice(0, 6), '070701', `magic at ${off}`);
    const f: number[] = [];
    for (let i = 0; i < 13; i++) {
      const field = h.slice(6 + 8 * i, 14 + 8 * i);
      assert.match(field, /^[0-9a-f]{8}$/, 'field is 8 hex digits');
      f.push(parseInt(field, 16));
    }
    const [ino, mode, , , nlink, , filesize, , , rdevmajor, rdevminor, namesize, check] = f as [number, number, number, number, number, number, number, number, number, number, number, number, number];
    assert.equal(check, 0);
    const name = dec.decode(buf.subarray(off + 110, off + 110 + namesize - 1));
    assert.equal(buf[off + 110 + namesize - 1], 0, 'name is NUL-terminated');
    const dataOff = off + 110 + namesize + ((4 - ((110 + namesize) % 4)) % 4);
    assert.equal(dataOff % 4, 0);
    for (let i = off + 110 + namesize; i < dataOff; i++) assert.equal(buf[i], 0, 'name padding is zero');
    const data = buf.subarray(dataOff, dataOff + filesize);
    const next = dataOff + filesize + ((4 - (filesize % 4)) % 4);
    for (let i = dataOff + filesize; i < next; i++) assert.equal(buf[i], 0, 'data padding is zero');
    if (name === 'TRAILER!!!') return { entries, trailerEnd: next };
    entries.push({ name, ino, mode, nlink, filesize, rdevmajor, rdevminor, data, offset: off });
    off = next;
  }
}

// ---------------------------------------------------------------- cpio

describe('cpio newc writer', () => {
  const build = (): Uint8Array => {
    const c = new CpioWriter();
    c.directory('etc');
    for (let n = 0; n <= 5; n++) c.file(`data/f${n}`, new Uint8Array(n).fill(0x41 + n), { mode: 0o640 });
    c.file('a/deep/path/file.txt', 'hello\n', { mode: 0o755 });
    c.symlink('bin/sh', 'busybox');
    c.charDevice('dev/console', 5, 1);
    c.charDevice('dev/null', 1, 3, { mode: 0o666 });
    c.directory('tmp', { mode: 0o1777 });
    return c.finish();
  };

  test('round-trips: names, modes, data, symlinks, device nodes, parents first, trailer', () => {
    const buf = build();
    assert.equal(buf.length % 512, 0, 'padded to 512 bytes');
    const { entries, trailerEnd } = readCpio(buf);
    for (let i = trailerEnd; i < buf.length; i++) assert.equal(buf[i], 0);
    const byName = new Map(entries.map((e) => [e.name, e]));
    // every parent directory precedes its children
    entries.forEach((e, i) => {
      const parts = e.name.split('/');
      for (let k = 1; k < parts.length; k++) {
        const parent = byName.get(parts.slice(0, k).join('/'));
        assert.ok(parent, `parent of ${e.name}`);
        assert.equal(parent.mode & S_IFMT, S_IFDIR);
        assert.ok(entries.indexOf(parent) < i);
      }
    });
    for (let n = 0; n <= 5; n++) {
      const e = byName.get(`data/f${n}`)!;
      assert.equal(e.mode, S_IFREG | 0o640);
      assert.deepEqual(e.data, new Uint8Array(n).fill(0x41 + n));
    }
    assert.equal(new TextDecoder().decode(byName.get('a/deep/path/file.txt')!.data), 'hello\n');
    assert.equal(byName.get('a/deep/path/file.txt')!.mode, S_IFREG | 0o755);
    const sh = byName.get('bin/sh')!;
    assert.equal(sh.mode & S_IFMT, S_IFLNK);
    assert.equal(new TextDecoder().decode(sh.data), 'busybox');
    const con = byName.get('dev/console')!;
    assert.equal(con.mode, S_IFCHR | 0o600);
    assert.deepEqual([con.rdevmajor, con.rdevminor, con.filesize], [5, 1, 0]);
    const nul = byName.get('dev/null')!;
    assert.equal(nul.mode, S_IFCHR | 0o666);
    assert.deepEqual([nul.rdevmajor, nul.rdevminor], [1, 3]);
    assert.equal(byName.get('tmp')!.mode, S_IFDIR | 0o1777);
    assert.equal(byName.get('etc')!.nlink, 2);
    assert.equal(new Set(entries.map((e) => e.ino)).size, entries.length, 'inode numbers are unique');
  });

  test('is deterministic, refuses duplicates, "..", and use after finish', () => {
    assert.deepEqual(build(), build());
    const c = new CpioWriter();
    c.file('x', 'a');
    assert.throws(() => c.file('x', 'b'), /duplicate/);
    assert.throws(() => c.file('../x', 'b'), /\.\./);
    c.directory('d');
    c.directory('d'); // again: no-op
    c.finish();
    assert.throws(() => c.file('y', 'a'), /finished/);
  });

  test('the host cpio lists and extracts it (if cpio is installed)', (t) => {
    if (!onPath('cpio')) { t.skip('cpio not installed'); return; }
    const buf = build();
    const list = execFileSync('cpio', ['-it', '--quiet'], { input: buf }).toString().trim().split('\n');
    assert.ok(list.includes('a/deep/path/file.txt') && list.includes('dev/console') && list.includes('bin/sh'));
    const c = new CpioWriter();
    c.file('a/b/c.txt', 'content');
    c.symlink('a/link', 'b/c.txt');
    const dir = tempDir();
    execFileSync('cpio', ['-idm', '--quiet'], { input: c.finish(), cwd: dir });
    assert.equal(readFileSync(join(dir, 'a/b/c.txt'), 'utf8'), 'content');
    assert.equal(readlinkSync(join(dir, 'a/link')), 'b/c.txt');
  });
});

// ---------------------------------------------------------------- synthetic kernel modules

/** A minimal ELF64 LE relocatable with a .modinfo section, like a .ko. */
function fakeModule(name: string, depends: string[], payload = ''): Uint8Array {
  const modinfo = bytes(`license=GPL\0depends=${depends.join(',')}\0name=${name}\0vermagic=6.1.0-test\0`);
  const shstrtab = bytes('\0.modinfo\0.shstrtab\0.text\0');
  const text = bytes(`code of ${name} ${payload}`);
  const offModinfo = 64;
  const offText = offModinfo + modinfo.length;
  const offStr = offText + text.length;
  const shoff = (offStr + shstrtab.length + 7) & ~7;
  const buf = new Uint8Array(shoff + 4 * 64);
  const dv = new DataView(buf.buffer);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  dv.setUint16(16, 1, true); // ET_REL
  dv.setUint16(18, 243, true); // EM_RISCV
  dv.setUint32(20, 1, true);
  dv.setBigUint64(40, BigInt(shoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, 4, true);
  dv.setUint16(62, 3, true);
  buf.set(modinfo, offModinfo);
  buf.set(text, offText);
  buf.set(shstrtab, offStr);
  const sec = (i: number, nameOff: number, type: number, off: number, size: number): void => {
    const b = shoff + i * 64;
    dv.setUint32(b, nameOff, true);
    dv.setUint32(b + 4, type, true);
    dv.setBigUint64(b + 24, BigInt(off), true);
    dv.setBigUint64(b + 32, BigInt(size), true);
  };
  sec(1, 1, 1, offModinfo, modinfo.length); // .modinfo (PROGBITS)
  sec(2, 20, 1, offText, text.length); // .text
  sec(3, 10, 3, offStr, shstrtab.length); // .shstrtab (STRTAB)
  return buf;
}

/** xz as the kernel build compresses modules (host xz if present, else the library). */
function xzModule(data: Uint8Array): Uint8Array {
  if (onPath('xz')) return new Uint8Array(execFileSync('xz', ['--check=crc32', '--lzma2=dict=1MiB', '-c'], { input: data }));
  return new Uint8Array(xz.compressSync(data));
}

const KVER = '6.1.0-test-riscv64';

/** A modules directory like Debian's: modules.order and modules.builtin, no modules.dep. */
function fakeModulesDir(root: string): { dir: string; modules: Map<string, Uint8Array> } {
  const dir = join(root, 'usr/lib/modules', KVER);
  const modules = new Map<string, Uint8Array>([
    ['kernel/drivers/virtio/virtio_mmio.ko', fakeModule('virtio_mmio', ['virtio', 'virtio_ring'])],
    ['kernel/drivers/net/virtio_net.ko', fakeModule('virtio_net', ['net_failover', 'virtio'])],
    ['kernel/drivers/net/net_failover.ko', fakeModule('net_failover', ['failover'])],
    ['kernel/net/core/failover.ko', fakeModule('failover', [])],
    ['kernel/drivers/char/hw_random/virtio-rng.ko', fakeModule('virtio_rng', ['virtio'])],
    ['kernel/drivers/misc/lonely.ko', fakeModule('lonely', [], 'x'.repeat(5000))],
    ['kernel/drivers/misc/broken.ko', fakeModule('broken', ['nonexistent'])],
  ]);
  for (const [rel, data] of modules) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, `${rel}.xz`), xzModule(data));
  }
  writeFileSync(join(dir, 'modules.order'), [...modules.keys()].join('\n') + '\n');
  writeFileSync(join(dir, 'modules.builtin'), 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/drivers/char/virtio_console.ko\n');
  return { dir, modules };
}

describe('kernel modules', () => {
  test('moduleName normalizes paths, suffixes and dashes', () => {
    assert.equal(moduleName('kernel/drivers/char/hw_random/virtio-rng.ko.xz'), 'virtio_rng');
    assert.equal(moduleName('virtio-rng'), 'virtio_rng');
    assert.equal(moduleName('a/b/foo.ko'), 'foo');
  });

  test('readModinfo reads .modinfo key=value strings', () => {
    const info = readModinfo(fakeModule('m', ['a', 'b']));
    assert.deepEqual(info.get('depends'), ['a,b']);
    assert.deepEqual(info.get('name'), ['m']);
  });

  test('resolves dependencies from .modinfo, dependencies first, built-ins skipped, decompressed', async () => {
    const { dir, modules } = fakeModulesDir(tempDir());
    const index = readModuleIndex(dir);
    const got = await resolveModules(index, ['virtio_mmio', 'virtio_net', 'virtio-rng', 'virtio_console', 'failover']);
    assert.deepEqual(got.map((m) => m.name), ['virtio_mmio', 'failover', 'net_failover', 'virtio_net', 'virtio_rng']);
    for (const m of got) assert.deepEqual(m.data, modules.get(m.path), `${m.path} decompressed exactly`);
    await assert.rejects(resolveModules(index, ['nope']), (e: unknown) => e instanceof ImageError && /unknown kernel module nope/.test(e.message));
    await assert.rejects(resolveModules(index, ['broken']), /nonexistent \(needed by broken\)/);
  });

  test('without modules.order, finds modules by walking the directory', async () => {
    const { dir } = fakeModulesDir(tempDir());
    rmSync(join(dir, 'modules.order'));
    const got = await resolveModules(readModuleIndex(dir), ['virtio_net']);
    assert.deepEqual(got.map((m) => m.name), ['failover', 'net_failover', 'virtio_net']);
  });

  test('uses modules.dep when the directory has one', async () => {
    const { dir } = fakeModulesDir(tempDir());
    // modules.dep says lonely needs failover (its .modinfo says nothing): modules.dep wins
    writeFileSync(join(dir, 'modules.dep'), 'kernel/drivers/misc/lonely.ko.xz: kernel/net/core/failover.ko.xz\nkernel/net/core/failover.ko.xz:\n');
    const got = await resolveModules(readModuleIndex(dir), ['lonely']);
    assert.deepEqual(got.map((m) => m.name), ['failover', 'lonely']);
  });
});

// ---------------------------------------------------------------- initramfs

describe('initramfs', () => {
  const fakeBusybox = new Uint8Array(3001).map((_, i) => (i * 7) & 0xff);

  test('buildInitramfs: gzip of a newc archive with /init, busybox, applets, device nodes, modules in order', () => {
    const mods = [
      { path: 'lib/modules/x/a.ko', data: bytes('module a') },
      { path: 'lib/modules/x/b.ko', data: bytes('module b!'), args: 'debug=1' },
    ];
    const gz = buildInitramfs({ busybox: fakeBusybox, modules: mods, extraFiles: [{ path: 'etc/motd', data: 'hi\n' }] });
    assert.deepEqual([gz[0], gz[1]], [0x1f, 0x8b], 'gzip magic');
    const { entries } = readCpio(new Uint8Array(gunzipSync(gz)));
    const by = new Map(entries.map((e) => [e.name, e]));
    const text = (n: string): string => new TextDecoder().decode(by.get(n)!.data);
    assert.equal(by.get('init')!.mode, S_IFREG | 0o755);
    assert.match(text('init'), /^#!\/bin\/busybox sh\n/);
    assert.match(text('init'), /mount -t devtmpfs/);
    assert.match(text('init'), /exec \/bin\/busybox init/);
    assert.deepEqual(by.get('bin/busybox')!.data, fakeBusybox);
    assert.equal(by.get('bin/busybox')!.mode, S_IFREG | 0o755);
    for (const [link, target] of [['bin/sh', 'busybox'], ['sbin/poweroff', '../bin/busybox'], ['sbin/init', '../bin/busybox'], ['bin/cttyhack', 'busybox'], ['usr/bin/free', '../../bin/busybox']] as const) {
      assert.equal(by.get(link)!.mode & S_IFMT, S_IFLNK, link);
      assert.equal(text(link), target, link);
    }
    assert.deepEqual([by.get('dev/console')!.mode, by.get('dev/console')!.rdevmajor, by.get('dev/console')!.rdevminor], [S_IFCHR | 0o600, 5, 1]);
    assert.deepEqual([by.get('dev/null')!.mode & S_IFMT, by.get('dev/null')!.rdevmajor, by.get('dev/null')!.rdevminor], [S_IFCHR, 1, 3]);
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'etc']) assert.equal(by.get(d)!.mode & S_IFMT, S_IFDIR, d);
    assert.match(text('etc/inittab'), /^::once:\/bin\/cttyhack \/etc\/disco\/console$/m);
    assert.match(text('etc/inittab'), /^::shutdown:/m);
    assert.doesNotMatch(text('etc/inittab'), /disco-agent/, 'no agent, no respawn line');
    assert.ok(text('etc/disco/console').includes(`echo "${INIT_READY}"`));
    assert.match(text('etc/disco/console'), /poweroff/);
    assert.equal(text('etc/disco/modules'), '/lib/modules/x/a.ko\n/lib/modules/x/b.ko debug=1\n');
    assert.equal(text('lib/modules/x/b.ko'), 'module b!');
    assert.equal(text('etc/motd'), 'hi\n');
    assert.equal(text('etc/hostname'), 'disco\n');
  });

  test('a custom /init and gzip: false', () => {
    const raw = buildInitramfs({ busybox: fakeBusybox, modules: [], init: '#!/bin/sh\necho custom\n', gzip: false });
    const { entries } = readCpio(raw);
    assert.equal(new TextDecoder().decode(entries.find((e) => e.name === 'init')!.data), '#!/bin/sh\necho custom\n');
    assert.equal(new TextDecoder().decode(entries.find((e) => e.name === 'etc/disco/modules')!.data), '');
  });

  test('defaultInitramfs: busybox of the images and the requested modules with dependencies, decompressed', async () => {
    const root = tempDir();
    const { dir, modules } = fakeModulesDir(root);
    writeFileSync(join(root, 'busybox'), fakeBusybox);
    const images = { busybox: join(root, 'busybox'), modulesDir: dir, kernelVersion: KVER, cacheDir: join(root, 'cache') } as GuestImages;
    const { entries } = readCpio(new Uint8Array(gunzipSync(await defaultInitramfs(images, { modules: ['virtio_net', 'virtio_console'], onDemand: [], agent: false }))));
    const by = new Map(entries.map((e) => [e.name, e]));
    const prefix = `lib/modules/${KVER}/`;
    const order = new TextDecoder().decode(by.get('etc/disco/modules')!.data).trim().split('\n');
    assert.deepEqual(order, ['kernel/net/core/failover.ko', 'kernel/drivers/net/net_failover.ko', 'kernel/drivers/net/virtio_net.ko'].map((p) => `/${prefix}${p}`));
    for (const line of order) assert.deepEqual(by.get(line.slice(1))!.data, modules.get(line.slice(1 + prefix.length)));
    assert.deepEqual(by.get('bin/busybox')!.data, fakeBusybox);
    // no modules requested: none read
    const none = readCpio(new Uint8Array(gunzipSync(await defaultInitramfs({ ...images, modulesDir: '/nonexistent' }, { agent: false }))));
    assert.ok(!none.entries.some((e) => e.name.endsWith('.ko')));
    // Stock archives are compressed once and kept by content hash; custom ones are not kept.
    const kept = (): string[] => readdirSync(join(root, 'cache', 'initramfs')).filter((f) => f.endsWith('.cpio.gz'));
    assert.equal(kept().length, 2);
    const again = await defaultInitramfs(images, { modules: ['virtio_net', 'virtio_console'], onDemand: [], agent: false });
    assert.equal(kept().length, 2);
    assert.deepEqual(again, readFileSync(join(root, 'cache', 'initramfs', kept().find((f) => readFileSync(join(root, 'cache', 'initramfs', f)).equals(again))!)));
    await defaultInitramfs(images, { agent: false, init: '#!/bin/sh\n' });
    assert.equal(kept().length, 2);
  });

  test('defaultInitramfs: on-demand modules are carried with a modules.dep and the virtio driver table, not loaded at boot', async () => {
    const root = tempDir();
    const { dir } = fakeModulesDir(root);
    writeFileSync(join(root, 'busybox'), fakeBusybox);
    const images = { busybox: join(root, 'busybox'), modulesDir: dir, kernelVersion: KVER, cacheDir: join(root, 'cache') } as GuestImages;
    // The default on-demand list names modules this fake kernel lacks (virtio_blk, ext4, ...): they are left out.
    const { entries } = readCpio(new Uint8Array(gunzipSync(await defaultInitramfs(images, { modules: ['virtio_mmio'], agent: bytes('AGENT') }))));
    const by = new Map(entries.map((e) => [e.name, e]));
    const text = (n: string): string => new TextDecoder().decode(by.get(n)!.data);
    const prefix = `lib/modules/${KVER}/`;
    assert.equal(text('etc/disco/modules'), `/${prefix}kernel/drivers/virtio/virtio_mmio.ko\n`);
    for (const p of ['kernel/drivers/net/virtio_net.ko', 'kernel/drivers/net/net_failover.ko', 'kernel/net/core/failover.ko', 'kernel/drivers/char/hw_random/virtio-rng.ko']) {
      assert.ok(by.has(prefix + p), p);
    }
    assert.match(text(`${prefix}modules.dep`), /^kernel\/drivers\/net\/virtio_net\.ko: kernel\/drivers\/net\/net_failover\.ko kernel\/net\/core\/failover\.ko$/m);
    assert.equal(text('etc/disco/virtio-drivers'), '0x0001 virtio_net\n0x0004 virtio_rng\n');
    assert.equal(by.get('etc/disco/drivers')!.mode, S_IFREG | 0o755);
    assert.equal(text('usr/sbin/disco-agent'), 'AGENT');
    assert.equal(by.get('usr/sbin/disco-agent')!.mode, S_IFREG | 0o755);
    assert.match(text('etc/inittab'), /^::respawn:\/usr\/sbin\/disco-agent$/m);
    assert.equal(by.get('usr/share/udhcpc/default.script')!.mode, S_IFREG | 0o755);
    assert.equal(by.get('etc/disco/network')!.mode, S_IFREG | 0o755);
    // /init: root= is mounted and switched to, with a bounded wait; drivers and network are set up
    assert.match(text('init'), /exec switch_root -c \/dev\/console \/newroot \/sbin\/init/);
    assert.match(text('init'), /did not appear within/);
    assert.match(text('init'), /\/etc\/disco\/drivers \$\{root:\+crc32c_generic ext4\}/);
    assert.match(text('init'), /^\/etc\/disco\/network$/m);
  });
});

// ---------------------------------------------------------------- tar, ar, .deb

/** A ustar header block (with optional GNU typeflags), checksummed. */
function tarHeader(name: string, opts: { type?: string; size?: number; mode?: number; linkname?: string; magic?: 'ustar' | 'gnu' } = {}): Uint8Array {
  const h = new Uint8Array(512);
  const put = (off: number, len: number, s: string): void => h.set(bytes(s).subarray(0, len), off);
  const oct = (off: number, len: number, v: number): void => put(off, len, v.toString(8).padStart(len - 1, '0') + '\0');
  put(0, 100, name);
  oct(100, 8, opts.mode ?? 0o644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, opts.size ?? 0);
  oct(136, 12, 0);
  put(156, 1, opts.type ?? '0');
  put(157, 100, opts.linkname ?? '');
  if (opts.magic === 'gnu') put(257, 8, 'ustar  \0'); else put(257, 8, 'ustar\x0000');
  put(148, 8, '        ');
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

const block = (data: Uint8Array): Uint8Array => concat([data, new Uint8Array((512 - (data.length % 512)) % 512)]);

interface TarFile { path: string; data?: Uint8Array; type?: string; linkname?: string; mode?: number }

/** A tar archive: long names through GNU 'L' records, pax headers when asked. */
function makeTar(files: readonly TarFile[], opts: { pax?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of files) {
    const data = f.data ?? new Uint8Array(0);
    let name = f.path;
    if (name.length > 99) {
      if (opts.pax) {
        const rec = (k: string, v: string): string => {
          const body = ` ${k}=${v}\n`;
          let len = body.length + 1;
          while (String(len).length + body.length !== len) len++;
          return `${len}${body}`;
        };
        const pax = bytes(rec('path', name));
        parts.push(tarHeader('PaxHeaders/x', { type: 'x', size: pax.length }), block(pax));
      } else {
        const ln = bytes(`${name}\0`);
        parts.push(tarHeader('././@LongLink', { type: 'L', size: ln.length, magic: 'gnu' }), block(ln));
      }
      name = name.slice(0, 99);
    }
    parts.push(tarHeader(name, { type: f.type ?? '0', size: data.length, mode: f.mode ?? 0o644, linkname: f.linkname ?? '', magic: opts.pax ? 'ustar' : 'gnu' }));
    if (data.length > 0) parts.push(block(data));
  }
  parts.push(new Uint8Array(1024));
  return concat(parts);
}

function makeAr(members: readonly { name: string; data: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [bytes('!<arch>\n')];
  for (const m of members) {
    const hdr = m.name.padEnd(16) + '0'.padEnd(12) + '0'.padEnd(6) + '0'.padEnd(6) + '100644'.padEnd(8) + String(m.data.length).padEnd(10) + '`\n';
    parts.push(bytes(hdr), m.data);
    if (m.data.length & 1) parts.push(bytes('\n'));
  }
  return concat(parts);
}

function makeDeb(files: readonly TarFile[], compression: 'xz' | 'gz' | 'none' = 'xz', pax = false): Uint8Array {
  const tar = makeTar(files, { pax });
  const data = compression === 'xz' ? new Uint8Array(xz.compressSync(tar)) : compression === 'gz' ? new Uint8Array(gzipSync(tar)) : tar;
  const suffix = compression === 'none' ? '' : `.${compression}`;
  return makeAr([
    { name: 'debian-binary', data: bytes('2.0\n') },
    { name: 'control.tar.gz', data: new Uint8Array(gzipSync(makeTar([{ path: './control', data: bytes('Package: x\n') }]))) },
    { name: `data.tar${suffix}`, data },
  ]);
}

describe('.deb extraction', () => {
  const longPath = `./usr/lib/modules/${'very-long-directory-name/'.repeat(5)}mod.ko.xz`;
  const files: TarFile[] = [
    { path: './', type: '5', mode: 0o755 },
    { path: './usr/', type: '5', mode: 0o755 },
    { path: './usr/bin/busybox', data: bytes('BUSYBOX'.repeat(100)), mode: 0o755 },
    { path: longPath, data: bytes('long one') },
    { path: './usr/bin/sh', type: '2', linkname: 'busybox' },
    { path: './usr/bin/hard', type: '1', linkname: './usr/bin/busybox' },
    { path: './usr/share/doc/x/copyright', data: bytes('(c)') },
  ];

  test('ar parser: members, odd sizes padded', () => {
    const ar = makeAr([{ name: 'a', data: bytes('abc') }, { name: 'b/', data: bytes('de') }]);
    assert.deepEqual(parseAr(ar).map((m) => [m.name, new TextDecoder().decode(m.data)]), [['a', 'abc'], ['b', 'de']]);
    assert.throws(() => parseAr(bytes('nope')), ImageError);
  });

  test('tar reader: GNU long names, pax paths, links, checksums, unsafe paths', () => {
    for (const pax of [false, true]) {
      const entries = [...tarEntries(makeTar(files, { pax }))];
      assert.ok(entries.some((e) => e.path === longPath.slice(2) && new TextDecoder().decode(e.data) === 'long one'), `long path (pax=${pax})`);
      assert.deepEqual(entries.find((e) => e.path === 'usr/bin/sh'), { path: 'usr/bin/sh', type: 'symlink', mode: 0o644, uid: 0, gid: 0, data: new Uint8Array(0), linkname: 'busybox' });
      assert.equal(entries.find((e) => e.path === 'usr/bin/hard')!.linkname, 'usr/bin/busybox');
    }
    const bad = makeTar([{ path: 'x', data: bytes('y') }]);
    bad[0] = 0x7a; // name changed, checksum not
    assert.throws(() => [...tarEntries(bad)], /checksum/);
    assert.throws(() => [...tarEntries(makeTar([{ path: '../../etc/passwd', data: bytes('x') }]))], /unsafe path/);
  });

  test('extractDeb writes only the selected paths, with symlinks, hard links and modes (xz, gz, plain)', async () => {
    for (const comp of ['xz', 'gz', 'none'] as const) {
      const dir = tempDir();
      const debPath = join(dir, 'x.deb');
      writeFileSync(debPath, makeDeb(files, comp));
      const out = join(dir, 'out');
      const r = await extractDeb(debPath, out, (p) => p.startsWith('usr/bin') || p.startsWith('usr/lib'));
      assert.deepEqual(r.files.sort(), [longPath.slice(2), 'usr/bin/busybox', 'usr/bin/hard'].sort());
      assert.equal(readFileSync(join(out, 'usr/bin/busybox'), 'utf8'), 'BUSYBOX'.repeat(100));
      assert.equal(readFileSync(join(out, 'usr/bin/hard'), 'utf8'), 'BUSYBOX'.repeat(100));
      assert.equal(readlinkSync(join(out, 'usr/bin/sh')), 'busybox');
      assert.equal(readFileSync(join(out, longPath)).toString(), 'long one');
      assert.ok(!existsSync(join(out, 'usr/share')), 'unselected paths are not extracted');
    }
  });

  test('extractDeb reads a package built by dpkg-deb (if installed)', async (t) => {
    if (!onPath('dpkg-deb')) { t.skip('dpkg-deb not installed'); return; }
    const dir = tempDir();
    const root = join(dir, 'pkg');
    mkdirSync(join(root, 'DEBIAN'), { recursive: true });
    mkdirSync(join(root, 'usr/lib/riscv64-linux-gnu/opensbi/generic'), { recursive: true });
    writeFileSync(join(root, 'DEBIAN/control'), 'Package: fake-opensbi\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n');
    const fw = new Uint8Array(70_000).map((_, i) => (i * 31) & 0xff);
    writeFileSync(join(root, 'usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin'), fw);
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', root, join(dir, 'p.deb')], { stdio: 'ignore' });
    await extractDeb(join(dir, 'p.deb'), join(dir, 'out'), () => true);
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'out/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin'))), fw);
  });
});

// ---------------------------------------------------------------- apt output

describe('apt', () => {
  test('parsePrintUris reads URL, file name, size and SHA256; decodes the epoch', () => {
    const out = [
      "'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.37.0-6%2bb9_riscv64.deb' busybox-static_1%3a1.37.0-6+b9_riscv64.deb 941532 SHA256:4add476d2b185c5b487c285b38d790f0881a7e4a8e2ddde835f917e770eb8633",
      "'http://deb.debian.org/debian/pool/main/l/linux/linux-image-6.12.107%2bdeb13-riscv64_6.12.107-1_riscv64.deb' linux-image-6.12.107+deb13-riscv64_6.12.107-1_riscv64.deb 112012420 SHA256:ABE9F65D74B434692149482B031DB7A2AAF832921E09F69F775293C0E0C5799C",
      'Reading package lists...',
    ].join('\n');
    const specs = parsePrintUris(out);
    assert.equal(specs.length, 2);
    assert.deepEqual(specs[0], {
      url: 'http://deb.debian.org/debian/pool/main/b/busybox/busybox-static_1.37.0-6%2bb9_riscv64.deb',
      filename: 'busybox-static_1%3a1.37.0-6+b9_riscv64.deb',
      name: 'busybox-static', version: '1:1.37.0-6+b9', arch: 'riscv64', size: 941532,
      sha256: '4add476d2b185c5b487c285b38d790f0881a7e4a8e2ddde835f917e770eb8633',
    });
    assert.equal(specs[1]!.name, 'linux-image-6.12.107+deb13-riscv64');
    assert.equal(specs[1]!.sha256, 'abe9f65d74b434692149482b031db7a2aaf832921e09f69f775293c0e0c5799c');
    assert.throws(() => parsePrintUris("'http://x/y.deb' y_1_all.deb 10 MD5Sum:0123456789abcdef0123456789abcdef"), /no SHA256/);
    assert.throws(() => parsePrintUris("'http://x/y.deb' garbage"), ImageError);
  });

  test('parseDepends picks the real kernel package of the metapackage', () => {
    const out = 'linux-image-riscv64\n  Depends: libc6\n |Depends: <linux-image-6.12-virtual>\n  Depends: linux-image-6.12.107+deb13-riscv64\n  Recommends: firmware-linux\n';
    assert.equal(parseDepends(out, /^linux-image-\d.*-riscv64$/), 'linux-image-6.12.107+deb13-riscv64');
    assert.equal(parseDepends('x\n  Depends: libc6\n', /^linux-image-\d/), undefined);
  });

  test('a missing archive keyring is a one-line error naming debian-archive-keyring', async () => {
    await assert.rejects(checkAptAvailable({ ...DEBIAN_TRIXIE_RISCV64, keyring: '/nonexistent/debian-archive-keyring.gpg' }),
      (e: unknown) => e instanceof ImageError && !e.message.includes('\n')
        && (/install the package debian-archive-keyring/.test(e.message) || /apt-get is required/.test(e.message)));
  });

  test('aptErrorLine: the first E: line, else W:, on one line without the prefix', () => {
    const stderr = 'Reading package lists...\nW: Some index files failed\nE: Failed to fetch http://x/InRelease  Could not connect\n';
    assert.equal(aptErrorLine(stderr, 'fallback'), 'Failed to fetch http://x/InRelease Could not connect');
    assert.equal(aptErrorLine('W: only a warning\n', 'fallback'), 'only a warning');
    assert.equal(aptErrorLine('', 'fallback'), 'fallback');
  });

  test('writeAptTree: a project-local configuration that apt reads (apt-config, if installed)', (t) => {
    const root = tempDir();
    const conf = writeAptTree(root);
    const text = readFileSync(conf, 'utf8');
    for (const key of ['Dir::State::Lists', 'Dir::State::status', 'Dir::Cache', 'Dir::Etc::sourcelist', 'Dir::Etc::sourceparts "-"', 'Dir::Etc::parts', 'Dir::Etc::preferencesparts', 'APT::Architecture "riscv64"', 'APT::Architectures "riscv64"']) {
      assert.ok(text.includes(key), key);
    }
    assert.equal(readFileSync(join(root, 'etc/sources.list'), 'utf8'),
      'deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main\n');
    assert.equal(readFileSync(join(root, 'status'), 'utf8'), '');
    if (!onPath('apt-config')) { t.skip('apt-config not installed'); return; }
    const dump = execFileSync('apt-config', ['dump'], { env: { ...process.env, APT_CONFIG: conf } }).toString();
    assert.match(dump, new RegExp(`^Dir::State::Lists "${join(root, 'lists')}";$`, 'im'));
    assert.match(dump, new RegExp(`^Dir::Etc::sourcelist "${join(root, 'etc/sources.list')}";$`, 'im'));
    assert.match(dump, /^Dir::Etc::sourceparts "-";$/im);
    assert.match(dump, /APT::Architecture "riscv64";/);
  });
});

// ---------------------------------------------------------------- cache dir, lock, HTTP

describe('cache', () => {
  test('defaultCacheDir: DISCO_CACHE_DIR, then XDG_CACHE_HOME/disco, then ~/.cache/disco', () => {
    assert.equal(defaultCacheDir({ DISCO_CACHE_DIR: '/a/b', XDG_CACHE_HOME: '/x' }), '/a/b');
    assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/disco');
    assert.match(defaultCacheDir({}), /\/\.cache\/disco$/);
  });

  test('withLock serializes and breaks a stale lock of a dead process', async () => {
    const dir = tempDir();
    const lock = join(dir, 'lock');
    const order: string[] = [];
    await Promise.all([1, 2].map((n) => withLock(lock, async () => {
      order.push(`in${n}`);
      await new Promise((r) => setTimeout(r, 50));
      order.push(`out${n}`);
    })));
    assert.deepEqual(order.map((s) => s.slice(0, -1)), ['in', 'out', 'in', 'out']);
    mkdirSync(lock);
    writeFileSync(join(lock, 'owner'), `999999999@${(await import('node:os')).hostname()}`);
    assert.equal(await withLock(lock, async () => 'got it', { timeoutMs: 5000 }), 'got it');
    assert.ok(!existsSync(lock));
  });

  test('httpDownload follows redirects; an HTTP error and a refused connection fail with one line', async () => {
    const body = bytes('deb contents '.repeat(1000));
    const server = createServer((req, res) => {
      if (req.url === '/redirect') { res.writeHead(302, { location: '/file.deb' }); res.end(); return; }
      if (req.url === '/file.deb') { res.writeHead(200, { 'content-length': body.length }); res.end(body); return; }
      res.writeHead(404); res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const dir = tempDir();
      let seen = 0;
      await downloadVerified({ url: `${base}/redirect`, dest: join(dir, 'f.deb'), size: body.length, sha256: sha(body), label: 'f.deb' }, httpDownload, (n) => { seen += n; });
      assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'f.deb'))), body);
      assert.equal(seen, body.length);
      await assert.rejects(downloadVerified({ url: `${base}/missing.deb`, dest: join(dir, 'g.deb'), size: 1, sha256: 'x', label: 'g.deb' }, httpDownload, () => {}),
        (e: unknown) => e instanceof ImageError && /^cannot download g\.deb: HTTP 404/.test(e.message) && !e.message.includes('\n'));
      assert.deepEqual(readdirSync(dir), ['f.deb'], 'no temporary files left');
    } finally {
      await new Promise((r) => server.close(r));
    }
    await assert.rejects(downloadVerified({ url: base.replace(/:\d+$/, ':1') + '/x.deb', dest: join(tempDir(), 'x.deb'), size: 1, sha256: 'x', label: 'x.deb' }, httpDownload, () => {}),
      /^ImageError: cannot download x\.deb: .*ECONNREFUSED/);
  });
});

// ---------------------------------------------------------------- fetchImages with a fake backend

interface FakeArchive { backend: FetchBackend; resolves: () => number; downloads: string[]; specs: Record<Role, DebSpec>; debs: Map<string, Uint8Array> }

const FAKE_KERNEL = new Uint8Array(40_000).map((_, i) => (i * 13) & 0xff);
const FAKE_BUSYBOX = bytes('\x7fELF busybox');

function fakeArchive(opts: { busyboxVersion?: string; corrupt?: Set<string>; failWith?: string } = {}): FakeArchive {
  const mod = xzModule(fakeModule('virtio_mmio', ['virtio']));
  const debFiles: Record<Role, [string, TarFile[]]> = {
    kernel: [`linux-image-${KVER}_6.1.0-1_riscv64.deb`, [
      { path: `./boot/vmlinux-${KVER}`, data: FAKE_KERNEL },
      { path: `./boot/config-${KVER}`, data: bytes('CONFIG_RD_GZIP=y\n') },
      { path: `./boot/System.map-${KVER}`, data: bytes('not extracted') },
      { path: `./usr/lib/modules/${KVER}/modules.order`, data: bytes('kernel/drivers/virtio/virtio_mmio.ko\n') },
      { path: `./usr/lib/modules/${KVER}/modules.builtin`, data: bytes('kernel/drivers/virtio/virtio.ko\n') },
      { path: `./usr/lib/modules/${KVER}/kernel/drivers/virtio/virtio_mmio.ko.xz`, data: mod },
      { path: `./usr/lib/linux-image-${KVER}/x.dtb`, data: bytes('not extracted') },
    ]],
    busybox: [`busybox-static_1%3a${opts.busyboxVersion ?? '1.37.0-1'}_riscv64.deb`, [
      { path: './usr/bin/busybox', data: FAKE_BUSYBOX, mode: 0o755 },
      { path: './usr/share/doc/busybox-static/copyright', data: bytes('x') },
    ]],
    opensbi: ['opensbi_1.6-1_all.deb', ['fw_jump.elf', 'fw_jump.bin', 'fw_dynamic.elf', 'fw_dynamic.bin', 'fw_payload.elf'].map((f) => (
      { path: `./usr/lib/riscv64-linux-gnu/opensbi/generic/${f}`, data: bytes(`opensbi ${f}`) }))],
  };
  const debs = new Map<string, Uint8Array>();
  const specs = {} as Record<Role, DebSpec>;
  for (const role of ['kernel', 'busybox', 'opensbi'] as const) {
    const [filename, files] = debFiles[role];
    const deb = makeDeb(files);
    const url = `http://archive.invalid/pool/${filename}`;
    debs.set(url, deb);
    const [name, version, arch] = filename.replace(/\.deb$/, '').split('_') as [string, string, string];
    specs[role] = { url, filename, name, version: decodeURIComponent(version), arch, size: deb.length, sha256: sha(deb) };
  }
  let resolves = 0;
  const downloads: string[] = [];
  return {
    specs, debs, downloads, resolves: () => resolves,
    backend: {
      async resolve() { resolves++; return specs; },
      async download(url, dest, onBytes) {
        downloads.push(url);
        if (opts.failWith) throw new Error(opts.failWith);
        const data = new Uint8Array(debs.get(url)!);
        if (opts.corrupt?.has(url)) data[data.length - 1]! ^= 1;
        writeFileSync(dest, data);
        onBytes(data.length);
      },
    },
  };
}

describe('fetchImages (fake archive)', () => {
  const quiet = { progress: false } as const;

  test('first fetch downloads, verifies and extracts; the second uses only the cache', async () => {
    const cacheDir = tempDir();
    const a = fakeArchive();
    const logs: string[] = [];
    const imgs = await fetchImages({ ...quiet, cacheDir, backend: a.backend, log: (l) => logs.push(l) });
    assert.equal(a.resolves(), 1);
    assert.equal(a.downloads.length, 3);
    assert.equal(imgs.kernelVersion, KVER);
    assert.deepEqual(new Uint8Array(readFileSync(imgs.kernel)), FAKE_KERNEL);
    assert.deepEqual(new Uint8Array(readFileSync(imgs.busybox)), FAKE_BUSYBOX);
    assert.equal(readFileSync(imgs.opensbiFwJump, 'utf8'), 'opensbi fw_jump.elf');
    assert.equal(readFileSync(imgs.opensbiFwDynamicBin, 'utf8'), 'opensbi fw_dynamic.bin');
    assert.ok(existsSync(join(imgs.modulesDir, 'kernel/drivers/virtio/virtio_mmio.ko.xz')));
    assert.ok(!existsSync(join(imgs.kernel, '..', `System.map-${KVER}`)), 'only what Disco needs is extracted');
    assert.deepEqual(imgs.packages.map((p) => [p.role, p.name, p.version]), [
      ['kernel', `linux-image-${KVER}`, '6.1.0-1'], ['busybox', 'busybox-static', '1:1.37.0-1'], ['opensbi', 'opensbi', '1.6-1']]);
    assert.ok(logs.some((l) => l.startsWith('downloading linux-image')));
    const manifest = JSON.parse(readFileSync(join(cacheDir, 'manifest.json'), 'utf8')) as { files: { kernel: { sha256: string } } };
    assert.equal(manifest.files.kernel.sha256, sha(FAKE_KERNEL));
    assert.ok(!existsSync(join(cacheDir, 'lock')), 'lock released');

    const again = await fetchImages({ ...quiet, cacheDir, backend: a.backend });
    assert.deepEqual(again, imgs);
    assert.equal(a.resolves(), 1, 'no index update when everything is cached');
    assert.equal(a.downloads.length, 3, 'no download');
    assert.deepEqual(await fetchImages({ cacheDir, offline: true }), imgs);

    // the initramfs builds from the fetched images
    const rd = readCpio(new Uint8Array(gunzipSync(await defaultInitramfs(imgs, { modules: ['virtio_mmio'], agent: false }))));
    assert.ok(rd.entries.some((e) => e.name === `lib/modules/${KVER}/kernel/drivers/virtio/virtio_mmio.ko`));
  });

  test('a damaged extracted file is unpacked again from the cached .deb, without downloading', async () => {
    const cacheDir = tempDir();
    const a = fakeArchive();
    const imgs = await fetchImages({ ...quiet, cacheDir, backend: a.backend });
    writeFileSync(imgs.kernel, 'damaged');
    await assert.rejects(fetchImages({ cacheDir, offline: true }), /wrong size/);
    const fixed = await fetchImages({ ...quiet, cacheDir, backend: a.backend });
    assert.deepEqual(new Uint8Array(readFileSync(fixed.kernel)), FAKE_KERNEL);
    assert.equal(a.downloads.length, 3);
  });

  test('offline with an empty cache is a one-line error naming `disco image fetch`', async () => {
    await assert.rejects(fetchImages({ cacheDir: tempDir(), offline: true }),
      (e: unknown) => e instanceof ImageError && /not in the cache .*disco image fetch/.test(e.message) && !e.message.includes('\n'));
  });

  test('a SHA256 mismatch is an error and leaves nothing in the cache', async () => {
    const cacheDir = tempDir();
    const good = fakeArchive();
    const a = fakeArchive({ corrupt: new Set([good.specs.busybox.url]) });
    await assert.rejects(fetchImages({ ...quiet, cacheDir, backend: a.backend }),
      (e: unknown) => e instanceof ImageError && /^SHA256 mismatch for busybox-static_1%3a1\.37\.0-1_riscv64\.deb: expected [0-9a-f]{64}, got [0-9a-f]{64}$/.test(e.message));
    assert.ok(!existsSync(join(cacheDir, 'manifest.json')));
    assert.deepEqual(readdirSync(join(cacheDir, 'debs')).sort(), [a.specs.kernel.filename], 'only the verified .deb is kept, no temporary file');
    assert.ok(!existsSync(join(cacheDir, 'lock')));
    // leftovers of an interrupted run are removed; the next run downloads only what is missing
    writeFileSync(join(cacheDir, 'debs', '.opensbi_1.6-1_all.deb.tmp-999999-0badf00d'), 'partial');
    mkdirSync(join(cacheDir, 'images/v1/.opensbi_1.6-1_all.tmp-999999-0badf00d'), { recursive: true });
    const b = fakeArchive();
    await fetchImages({ ...quiet, cacheDir, backend: b.backend });
    assert.deepEqual(b.downloads, [b.specs.busybox.url, b.specs.opensbi.url]);
    assert.equal(readdirSync(join(cacheDir, 'debs')).length, 3);
    assert.equal(readdirSync(join(cacheDir, 'images/v1')).length, 3);
  });

  test('a network failure is "cannot download X: ..." after one retry', async () => {
    const a = fakeArchive({ failWith: 'getaddrinfo ENOTFOUND deb.debian.org' });
    await assert.rejects(fetchImages({ ...quiet, cacheDir: tempDir(), backend: a.backend }),
      /^ImageError: cannot download linux-image-6\.1\.0-test-riscv64_6\.1\.0-1_riscv64\.deb: getaddrinfo ENOTFOUND deb\.debian\.org$/);
    assert.equal(a.downloads.length, 2);
  });

  test('concurrent fetches into one cache download once and agree', async () => {
    const cacheDir = tempDir();
    const a = fakeArchive();
    const [x, y, z] = await Promise.all([1, 2, 3].map(() => fetchImages({ ...quiet, cacheDir, backend: a.backend })));
    assert.deepEqual(x, y);
    assert.deepEqual(y, z);
    assert.equal(a.downloads.length, 3);
    assert.deepEqual(readdirSync(join(cacheDir, 'debs')).sort(), Object.values(a.specs).map((s) => s.filename).sort());
    assert.equal(readdirSync(join(cacheDir, 'images/v1')).filter((n) => n.startsWith('.')).length, 0, 'no temporary directories');
  });

  test('refresh asks the archive again and downloads only what changed', async () => {
    const cacheDir = tempDir();
    await fetchImages({ ...quiet, cacheDir, backend: fakeArchive().backend });
    const newer = fakeArchive({ busyboxVersion: '1.38.0-1' });
    const imgs = await fetchImages({ ...quiet, cacheDir, backend: newer.backend, refresh: true });
    assert.equal(newer.resolves(), 1);
    assert.deepEqual(newer.downloads, [newer.specs.busybox.url]);
    assert.equal(imgs.packages.find((p) => p.role === 'busybox')!.version, '1:1.38.0-1');
    await assert.rejects(fetchImages({ cacheDir, refresh: true, offline: true }), /offline/);
  });
});
