/**
 * `disco image build`: an ext4 root disk (raw image) made from Debian
 * riscv64 packages, for `disco run --drive file=...,overlay=... --append
 * 'console=ttyS0 root=/dev/vda'`.
 *
 * Steps (one progress line each):
 *   1. fetchImages() for the kernel (modules) and busybox-static.
 *   2. The requested packages (default socat, iperf3, fio) and their
 *      Depends/Pre-Depends closure, resolved by apt in the project-local
 *      configuration (apt.ts resolveInstall, then printUris for the SHA-256
 *      sums); the .debs are downloaded and verified like fetchImages' own.
 *   3. A staging tree: each package's data.tar unpacked with its modes,
 *      owners and setuid bits (maintainer scripts are not run); busybox with
 *      a symlink per applet (read from the binary's applet name table, so the
 *      riscv64 busybox never has to run here); the modules the board's
 *      devices need, decompressed, with a modules.dep; /etc; the guest agent.
 *   4. Debian's mke2fs builds the file system from the staging tree
 *      (`mke2fs -t ext4 -d STAGING -L disco-root -E root_owner=0:0`).
 *
 * The result is cached under <cache>/rootfs/<key>.img, keyed by a hash of
 * everything that decides its content: the signed index (InRelease, which
 * fixes every package version), the kernel and busybox packages, the agent,
 * the options and ROOTFS_BUILDER. A second build with the same inputs only
 * re-hashes the index: it returns at once.
 *
 * Layout: Debian's merged /usr (bin, sbin, lib are symlinks into usr/), so the
 * packages' files land where their dynamic loader and libraries expect.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, existsSync, linkSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  agentIfAvailable, BASE_MODULES, CONSOLE, directDeps, DRIVERS_SCRIPT, inittab, modulesDep, NETWORK_SCRIPT, ON_DEMAND_MODULES, POWER_BUTTON,
  PROFILE, UDHCPC_SCRIPT, virtioDriversTable,
} from './initramfs.js';
import { aptUpdate, checkAptAvailable, DEBIAN_TRIXIE_RISCV64, printUris, resolveInstall, writeAptTree, type DebSpec } from './apt.js';
import { defaultCacheDir, readJson, sha256, sha256File, tempPathFor, withLock, writeFileAtomic } from './cache.js';
import { debDataTar, tarEntries } from './deb.js';
import { downloadVerified, httpDownload, type Downloader } from './download.js';
import { describe, ImageError } from './errors.js';
import { fetchImages, type GuestImages } from './fetch.js';
import { readModuleIndex, resolveModules } from './modules.js';
import { makeProgress } from './progress.js';

/** Bump when the builder's output changes for the same inputs. */
export const ROOTFS_BUILDER = 2;
export const ROOTFS_LABEL = 'disco-root';
export const DEFAULT_ROOTFS_PACKAGES: readonly string[] = ['socat', 'iperf3', 'fio'];
export const DEFAULT_ROOTFS_MIB = 512;
export const MIN_ROOTFS_MIB = 64;
export const MAX_ROOTFS_MIB = 64 * 1024;

export interface RootfsOptions {
  /** Default: defaultCacheDir(). */
  readonly cacheDir?: string;
  /** Also copy the image here (sparse). */
  readonly output?: string;
  /** File system size in MiB (default 512). */
  readonly sizeMiB?: number;
  /** Debian packages to install besides busybox (default socat, iperf3, fio). */
  readonly packages?: readonly string[];
  /** One line per step. */
  readonly log?: (line: string) => void;
  /** Progress bar for downloads (default: when stderr is a terminal). */
  readonly progress?: boolean;
  /** The agent binary; default buildAgent()'s, none if it cannot be built; false: none. */
  readonly agent?: Uint8Array | false;
  /** Replaces the HTTP downloader (tests). */
  readonly download?: Downloader;
}

export interface RootfsResult {
  /** The image in the cache. */
  readonly cached: string;
  /** `output` if given, else `cached`. */
  readonly path: string;
  /** True when nothing had to be built. */
  readonly hit: boolean;
  readonly key: string;
  /** name=version of every installed package. */
  readonly packages: readonly string[];
}

/** Debian policy: lower-case letters, digits, + - . ; at least two characters, starting alphanumeric. */
const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

export function checkRootfsOptions(opts: RootfsOptions): { sizeMiB: number; packages: string[] } {
  const sizeMiB = opts.sizeMiB ?? DEFAULT_ROOTFS_MIB;
  if (!Number.isInteger(sizeMiB) || sizeMiB < MIN_ROOTFS_MIB || sizeMiB > MAX_ROOTFS_MIB) {
    throw new ImageError(`the root disk size must be a whole number of MiB from ${MIN_ROOTFS_MIB} to ${MAX_ROOTFS_MIB}, got ${sizeMiB}`);
  }
  const packages = [...new Set(opts.packages ?? DEFAULT_ROOTFS_PACKAGES)].sort();
  for (const p of packages) {
    if (!PACKAGE_NAME.test(p)) throw new ImageError(`not a Debian package name: '${p}'`);
  }
  return { sizeMiB, packages };
}

// ---------------------------------------------------------------- busybox applets

/**
 * The applet names compiled into a busybox binary: its `applet_names` table,
 * the sorted NUL-separated list that starts with `[` and `[[` (test). Returns
 * undefined when no such table is found.
 */
export function busyboxApplets(bin: Uint8Array): string[] | undefined {
  const marker = [0x5b, 0x00, 0x5b, 0x5b, 0x00]; // "[\0[[\0"
  const dec = new TextDecoder('latin1');
  outer: for (let i = bin.indexOf(0x5b); i >= 0 && i + marker.length <= bin.length; i = bin.indexOf(0x5b, i + 1)) {
    for (let k = 0; k < marker.length; k++) if (bin[i + k] !== marker[k]) continue outer;
    const names: string[] = [];
    let j = i;
    for (;;) {
      const end = bin.indexOf(0, j);
      if (end < 0) break;
      if (end === j) break; // the table ends at the next string that is not a name
      const name = dec.decode(bin.subarray(j, end));
      if (!/^[a-z0-9_.[\]-]{1,64}$/.test(name)) break;
      if (names.length > 0 && name <= names[names.length - 1]!) break; // the table is sorted
      names.push(name);
      j = end + 1;
    }
    if (names.length >= 10 && names.includes('sh')) return names;
  }
  return undefined;
}

/** Applets a Debian system keeps in /usr/sbin (the rest go to /usr/bin). */
const SBIN_APPLETS = new Set([
  'acpid', 'adjtimex', 'arp', 'blkdiscard', 'blockdev', 'brctl', 'chroot', 'crond', 'depmod', 'devmem', 'fdisk', 'findfs',
  'freeramdisk', 'fsfreeze', 'fstrim', 'getty', 'halt', 'hwclock', 'ifconfig', 'ifdown', 'ifup', 'init', 'insmod', 'ip',
  'klogd', 'losetup', 'lsmod', 'mdev', 'mkdosfs', 'mke2fs', 'mkswap', 'modinfo', 'modprobe', 'nameif', 'partprobe',
  'pivot_root', 'poweroff', 'reboot', 'rmmod', 'route', 'run-init', 'setkeycodes', 'sulogin', 'swapoff', 'swapon',
  'switch_root', 'sysctl', 'syslogd', 'tunctl', 'udhcpc', 'udhcpc6', 'udhcpd', 'vconfig', 'watchdog', 'telnetd', 'httpd',
]);

export function appletDir(name: string): 'usr/sbin' | 'usr/bin' {
  return SBIN_APPLETS.has(name) ? 'usr/sbin' : 'usr/bin';
}

// ---------------------------------------------------------------- /etc and init

export const ROOTFS_RCS = `#!/bin/sh
# Disco root disk: system start (busybox init's sysinit; see src/image/rootfs.ts).
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc -o nosuid,nodev,noexec proc /proc
mounted /sys || mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mounted /dev || mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || echo "disco: cannot mount devtmpfs"
mkdir -p /dev/pts /dev/shm
mounted /dev/pts || mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mounted /run || mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
mounted /tmp || mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
# Drivers of the virtio devices present that the initramfs has not loaded (modprobe reads modules.dep).
/etc/disco/drivers
hostname -F /etc/hostname
/etc/disco/network
`;

const ROOTFS_SHUTDOWN = `#!/bin/sh
echo "disco: shutting down"
sync
mount -o remount,ro / 2>/dev/null
`;

const FSTAB = `# Disco root disk (see src/image/rootfs.ts); the initramfs mounts the root.
LABEL=${ROOTFS_LABEL}  /         ext4    noauto,errors=remount-ro  0 1
proc                /proc     proc    nosuid,nodev,noexec       0 0
sysfs               /sys      sysfs   nosuid,nodev,noexec       0 0
devpts              /dev/pts  devpts  gid=5,mode=620            0 0
tmpfs               /run      tmpfs   nosuid,nodev,mode=0755    0 0
tmpfs               /tmp      tmpfs   nosuid,nodev,mode=1777    0 0
`;

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;

const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
kmem:x:15:
dialout:x:20:
shadow:x:42:
utmp:x:43:
staff:x:50:
users:x:100:
nogroup:x:65534:
`;

// The console logs in by itself; no account has a usable password.
const SHADOW = 'root:*:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\nbin:*:20000:0:99999:7:::\nsys:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n';

const NSSWITCH = `passwd: files
group: files
shadow: files
hosts: files dns
networks: files
protocols: files
services: files
`;

const SHADOW_GID = 42;

interface EtcFile {
  readonly path: string;
  readonly data: string | Uint8Array;
  readonly mode: number;
  readonly gid?: number;
}

/** The files Disco writes over the packages' (init, accounts, network, modules list). */
export function rootfsEtc(opts: { readonly kernelVersion: string; readonly modules: ReadonlySet<string>; readonly agent: boolean }): EtcFile[] {
  const x = 0o755;
  const r = 0o644;
  return [
    { path: 'etc/inittab', data: inittab({ sysinit: '/etc/init.d/rcS', agent: opts.agent }), mode: r },
    { path: 'etc/init.d/rcS', data: ROOTFS_RCS, mode: x },
    { path: 'etc/disco/console', data: CONSOLE, mode: x },
    { path: 'etc/disco/shutdown', data: ROOTFS_SHUTDOWN, mode: x },
    { path: 'etc/disco/network', data: NETWORK_SCRIPT, mode: x },
    { path: 'etc/disco/drivers', data: DRIVERS_SCRIPT, mode: x },
    { path: 'etc/disco/virtio-drivers', data: virtioDriversTable(opts.modules), mode: r },
    { path: 'etc/acpi/PWRF/00000080', data: POWER_BUTTON, mode: x },
    { path: 'usr/share/udhcpc/default.script', data: UDHCPC_SCRIPT, mode: x },
    { path: 'etc/profile', data: PROFILE, mode: r },
    { path: 'etc/hostname', data: 'disco\n', mode: r },
    { path: 'etc/hosts', data: '127.0.0.1 localhost\n127.0.1.1 disco\n::1 localhost ip6-localhost ip6-loopback\n', mode: r },
    { path: 'etc/fstab', data: FSTAB, mode: r },
    { path: 'etc/passwd', data: PASSWD, mode: r },
    { path: 'etc/group', data: GROUP, mode: r },
    { path: 'etc/shadow', data: SHADOW, mode: 0o640, gid: SHADOW_GID },
    { path: 'etc/nsswitch.conf', data: NSSWITCH, mode: r },
    { path: 'etc/shells', data: '/bin/sh\n/usr/bin/sh\n', mode: r },
    { path: 'etc/os-release', data: `PRETTY_NAME="Disco guest (Debian 13 riscv64 packages, kernel ${opts.kernelVersion})"\nNAME="Disco guest"\nID=disco\nID_LIKE=debian\n`, mode: r },
  ];
}

// ---------------------------------------------------------------- staging

/** Package files nobody reads in a test guest. */
function skipped(path: string): boolean {
  return /^usr\/share\/(doc|man|info|locale|lintian|linda|bug|bash-completion)(\/|$)/.test(path);
}

interface Staging {
  readonly root: string;
  /**
   * Modes to apply last, after the owners (chown clears setuid and setgid),
   * and for directories after their files (a read-only one must still take
   * them). Keys: host paths.
   */
  readonly modes: Map<string, number>;
  /** Non-root owners (host path → [uid, gid]). */
  readonly owners: Map<string, [number, number]>;
  /** Every host path written, for a non-root builder's ownership fix-up. */
  readonly paths: Set<string>;
}

/**
 * The host path of the guest path `rel`: its parent directories resolved
 * inside the tree (a symlink among them, absolute or relative, is followed
 * as the guest would, and must stay inside it), so a write never follows a
 * package's symlink out of the staging tree. The last component is not
 * resolved: callers replace it.
 */
function inside(st: Staging, rel: string): string {
  let cur = st.root;
  const parts = rel.split('/').filter((x) => x !== '' && x !== '.');
  const last = parts.pop();
  if (last === undefined || last === '..') throw new ImageError(`unsafe path in package: ${rel}`);
  for (const part of parts) {
    if (part === '..') throw new ImageError(`unsafe path in package: ${rel}`);
    cur = follow(st, join(cur, part), rel);
  }
  return join(cur, last);
}

/** `p` with symlinks followed inside the tree (absolute targets are relative to its root). */
function follow(st: Staging, p: string, rel: string): string {
  let cur = p;
  for (let hops = 0; hops < 32; hops++) {
    let ls;
    try { ls = lstatSync(cur); } catch { return cur; } // not there yet: mkdir makes it
    if (!ls.isSymbolicLink()) return cur;
    const t = readlinkSync(cur);
    const next = t.startsWith('/') ? join(st.root, t) : resolve(dirname(cur), t);
    if (next !== st.root && !next.startsWith(`${st.root}/`)) throw new ImageError(`unsafe path in package: ${rel} (through ${t})`);
    cur = next;
  }
  throw new ImageError(`symlink loop in package at ${rel}`);
}

/** Notes the owner of the host path `p` (root, or the package's). */
function record(st: Staging, p: string, uid: number, gid: number): void {
  st.paths.add(p);
  if (uid !== 0 || gid !== 0) st.owners.set(p, [uid, gid]);
  else st.owners.delete(p);
}

/**
 * Creates the host directory `dir` and its missing parents; those it creates
 * (parents a package does not list) are root's, mode 0755, like dpkg's.
 */
function mkParents(st: Staging, dir: string): void {
  const first = mkdirSync(dir, { recursive: true });
  if (first === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    if (!st.modes.has(d)) st.modes.set(d, 0o755);
    if (!st.paths.has(d)) record(st, d, 0, 0);
    if (d === first || d.length <= st.root.length) break;
  }
}

function putDir(st: Staging, rel: string, mode: number, uid = 0, gid = 0): void {
  const p = inside(st, rel);
  let ls;
  try { ls = lstatSync(p); } catch { /* new */ }
  if (ls?.isSymbolicLink()) return; // the tree's symlink (e.g. merged /usr) stays
  mkParents(st, p);
  st.modes.set(p, mode);
  record(st, p, uid, gid);
}

function putFile(st: Staging, rel: string, data: string | Uint8Array, mode: number, uid = 0, gid = 0): void {
  const p = inside(st, rel);
  mkParents(st, dirname(p));
  rmSync(p, { force: true });
  writeFileSync(p, data);
  st.modes.set(p, mode);
  record(st, p, uid, gid);
}

function putSymlink(st: Staging, rel: string, target: string): void {
  const p = inside(st, rel);
  mkParents(st, dirname(p));
  rmSync(p, { force: true });
  symlinkSync(target, p);
  record(st, p, 0, 0);
}

async function unpackDeb(st: Staging, debPath: string): Promise<void> {
  const tar = await debDataTar(debPath);
  for (const e of tarEntries(tar)) {
    if (e.path === '' || skipped(e.path)) continue;
    // Merged /usr: bin, sbin and lib are the tree's symlinks, never replaced.
    if (['bin', 'sbin', 'lib'].includes(e.path)) continue;
    switch (e.type) {
      case 'dir':
        putDir(st, e.path, e.mode, e.uid, e.gid);
        break;
      case 'file':
        putFile(st, e.path, e.data, e.mode, e.uid, e.gid);
        break;
      case 'symlink':
        putSymlink(st, e.path, e.linkname);
        break;
      case 'hardlink': {
        if (skipped(e.linkname)) break;
        const p = inside(st, e.path);
        rmSync(p, { force: true });
        mkParents(st, dirname(p));
        const target = follow(st, inside(st, e.linkname), e.linkname);
        linkSync(target, p);
        const mode = st.modes.get(target);
        if (mode !== undefined) st.modes.set(p, mode);
        record(st, p, e.uid, e.gid);
        break;
      }
      case 'other':
        break; // device nodes and FIFOs: devtmpfs provides /dev
    }
  }
}

// ---------------------------------------------------------------- mke2fs

interface RunResult { stdout: string; stderr: string }

function run(cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((res, rej) => {
    // e2fsprogs lives in /usr/sbin, which a user's PATH often lacks.
    const env = { ...process.env, LC_ALL: 'C', PATH: `${process.env['PATH'] ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` };
    const child = execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) rej(Object.assign(err, { stdout, stderr }));
      else res({ stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

function lastLine(text: string): string {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '').pop() ?? '';
}

/** Throws a one-line ImageError unless Debian's mke2fs (e2fsprogs, with -d) is installed. */
export async function checkMke2fs(): Promise<void> {
  try {
    await run('mke2fs', ['-V']);
  } catch {
    throw new ImageError('mke2fs is required to build the root disk: install e2fsprogs (scripts/setup.sh does)');
  }
}

/** A version-4 UUID from the first bytes of a hash, so a key always names the same file system UUID. */
function uuidFrom(hex: string): string {
  const h = hex.slice(0, 32).split('');
  h[12] = '4';
  h[16] = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = h.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

async function makeExt4(st: Staging, file: string, sizeMiB: number, key: string): Promise<void> {
  const uuid = uuidFrom(key);
  const args = ['-q', '-F', '-t', 'ext4', '-d', st.root, '-L', ROOTFS_LABEL, '-U', uuid,
    '-E', `root_owner=0:0,hash_seed=${uuidFrom(sha256(new TextEncoder().encode(key)))}`, file, `${sizeMiB}M`];
  try {
    await run('mke2fs', args);
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    const why = lastLine(e.stderr ?? '') || lastLine(e.stdout ?? '') || describe(err);
    const full = /allocat|No space|too small|Could not/i.test(why) ? ` (is --size ${sizeMiB} MiB too small?)` : '';
    throw new ImageError(`mke2fs failed: ${why}${full}`);
  }
  // mke2fs -d copies each file's owner from the staging tree. As root the tree
  // already has the packages' owners; otherwise every file is ours and is
  // given to root (and to its package's owner) afterwards with debugfs.
  if (process.getuid?.() !== 0) {
    const cmds: string[] = [];
    for (const p of st.paths) {
      if (!existsSync(p) && !isLink(p)) continue; // replaced since
      const [uid, gid] = st.owners.get(p) ?? [0, 0];
      const guest = p.slice(st.root.length);
      cmds.push(`sif "${guest}" uid ${uid}`, `sif "${guest}" gid ${gid}`);
    }
    try {
      await run('debugfs', ['-w', '-f', '-', file], `${cmds.join('\n')}\n`);
    } catch (err) {
      throw new ImageError(`debugfs could not set the owners in ${file}: ${describe(err)}`);
    }
  }
}

// ---------------------------------------------------------------- the cache

interface RootfsManifest {
  readonly format: 1;
  readonly key: string;
  readonly built: string;
  readonly sizeMiB: number;
  readonly packages: readonly string[];
  /** The image's size and mtime when built: a changed image is rebuilt. */
  readonly bytes: number;
  readonly mtimeMs: number;
}

function parseRootfsManifest(v: unknown): RootfsManifest | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const m = v as Record<string, unknown>;
  if (m['format'] !== 1 || typeof m['key'] !== 'string' || typeof m['bytes'] !== 'number' || typeof m['mtimeMs'] !== 'number'
    || !Array.isArray(m['packages']) || !(m['packages'] as unknown[]).every((p) => typeof p === 'string')) return undefined;
  return v as RootfsManifest;
}

function cacheHit(img: string, manifestPath: string, key: string): RootfsManifest | undefined {
  const m = parseRootfsManifest(readJson(manifestPath));
  if (!m || m.key !== key) return undefined;
  try {
    const s = statSync(img);
    return s.size === m.bytes && s.mtimeMs === m.mtimeMs ? m : undefined;
  } catch {
    return undefined;
  }
}

async function copySparse(from: string, to: string): Promise<void> {
  try {
    mkdirSync(dirname(resolve(to)), { recursive: true });
    await run('cp', ['--sparse=always', '--reflink=auto', from, to]);
  } catch (err) {
    const e = err as { stderr?: string };
    throw new ImageError(`cannot write ${to}: ${lastLine(e.stderr ?? '') || describe(err)}`);
  }
}

function hashOf(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

function removeStale(dir: string): void {
  let names: string[];
  try { names = readdirSync(dir); } catch { return; }
  for (const n of names) {
    if (/^\..+\.tmp-\d+-[0-9a-f]+$/.test(n)) rmSync(join(dir, n), { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- buildRootfs

/** Builds (or finds in the cache) the root disk. Throws ImageError. */
export async function buildRootfs(opts: RootfsOptions = {}): Promise<RootfsResult> {
  const { sizeMiB, packages } = checkRootfsOptions(opts);
  const log = opts.log ?? ((): void => {});
  const cacheDir = resolve(opts.cacheDir || defaultCacheDir());
  await checkMke2fs();

  log('checking the guest images');
  const images: GuestImages = await fetchImages({ cacheDir, log, ...(opts.progress !== undefined ? { progress: opts.progress } : {}) });
  const agent = opts.agent === false ? undefined : opts.agent ?? await agentIfAvailable(cacheDir, log);

  const aptRoot = join(cacheDir, 'apt');
  const inRelease = (): string | undefined => {
    const lists = join(aptRoot, 'lists');
    const f = existsSync(lists) ? readdirSync(lists).find((n) => n.endsWith('InRelease')) : undefined;
    return f && join(lists, f);
  };
  await checkAptAvailable();
  const conf = writeAptTree(aptRoot);
  if (!inRelease()) {
    log(`updating the package index (Debian ${DEBIAN_TRIXIE_RISCV64.suite} ${DEBIAN_TRIXIE_RISCV64.arch})`);
    await aptUpdate(conf);
  }
  const index = inRelease();
  if (!index) throw new ImageError(`no package index in ${join(aptRoot, 'lists')} after apt-get update`);

  const etcProbe = rootfsEtc({ kernelVersion: images.kernelVersion, modules: new Set(), agent: agent !== undefined });
  const key = hashOf({
    builder: ROOTFS_BUILDER,
    sizeMiB,
    packages,
    index: await sha256File(index),
    images: images.packages.map((p) => `${p.name}=${p.version}:${p.sha256}`),
    agent: agent ? sha256(agent) : null,
    etc: etcProbe.map((f) => [f.path, sha256(typeof f.data === 'string' ? new TextEncoder().encode(f.data) : f.data), f.mode]),
    modules: [...BASE_MODULES, ...ON_DEMAND_MODULES],
  }).slice(0, 32);

  const dir = join(cacheDir, 'rootfs');
  const img = join(dir, `${key}.img`);
  const manifestPath = join(dir, `${key}.json`);
  const finish = async (m: RootfsManifest, hit: boolean): Promise<RootfsResult> => {
    let path = img;
    if (opts.output !== undefined) {
      log(`copying the root disk to ${opts.output}`);
      await copySparse(img, opts.output);
      path = resolve(opts.output);
    }
    log(`root disk ready: ${path}`);
    return { cached: img, path, hit, key, packages: m.packages };
  };
  const hit = cacheHit(img, manifestPath, key);
  if (hit) {
    log(`root disk ${key} is in the cache`);
    return finish(hit, true);
  }

  mkdirSync(dir, { recursive: true });
  const built = await withLock(join(dir, 'lock'), async () => {
    removeStale(dir);
    const again = cacheHit(img, manifestPath, key);
    if (again) return { m: again, hit: true };

    log(`resolving ${packages.join(', ')} and their dependencies`);
    const names = await resolveInstall(conf, packages);
    const specs = await printUris(conf, names);

    const debsDir = join(cacheDir, 'debs');
    mkdirSync(debsDir, { recursive: true });
    const debPath = (s: DebSpec): string => join(debsDir, s.filename);
    const needed: DebSpec[] = [];
    for (const s of specs) {
      const p = debPath(s);
      if (existsSync(p) && statSync(p).size === s.size && await sha256File(p) === s.sha256) continue;
      needed.push(s);
    }
    if (needed.length > 0) {
      const total = needed.reduce((a, s) => a + s.size, 0);
      log(`downloading ${needed.length} of ${specs.length} packages (${(total / 1e6).toFixed(1)} MB)`);
      const progress = makeProgress({ total, bar: opts.progress ?? process.stderr.isTTY === true, log: () => {} });
      try {
        for (const s of needed) {
          progress.begin(s.name, s.size);
          await downloadVerified({ url: s.url, dest: debPath(s), size: s.size, sha256: s.sha256, label: s.filename }, opts.download ?? httpDownload, (n) => progress.advance(n));
          progress.end();
        }
      } finally {
        progress.stop();
      }
    }

    const root = tempPathFor(join(dir, `${key}.staging`));
    const st: Staging = { root, modes: new Map(), owners: new Map(), paths: new Set() };
    const tmpImg = tempPathFor(img);
    try {
      mkdirSync(root, { recursive: true });
      for (const d of ['usr/bin', 'usr/sbin', 'usr/lib', 'etc', 'proc', 'sys', 'dev', 'run', 'var', 'mnt', 'home', 'srv', 'opt']) putDir(st, d, 0o755);
      putDir(st, 'root', 0o700);
      putDir(st, 'tmp', 0o1777);
      putDir(st, 'var/tmp', 0o1777);
      putSymlink(st, 'bin', 'usr/bin');
      putSymlink(st, 'sbin', 'usr/sbin');
      putSymlink(st, 'lib', 'usr/lib');

      log(`unpacking ${specs.length} packages`);
      for (const s of specs) {
        try {
          await unpackDeb(st, debPath(s));
        } catch (err) {
          throw err instanceof ImageError ? new ImageError(`${s.filename}: ${err.message}`) : new ImageError(`cannot unpack ${s.filename}: ${describe(err)}`);
        }
      }

      const busybox = readFileSync(images.busybox);
      putFile(st, 'usr/bin/busybox', busybox, 0o755);
      const applets = busyboxApplets(busybox);
      if (!applets) throw new ImageError(`no applet table in ${images.busybox}`);
      let linked = 0;
      for (const a of applets) {
        if (a === 'busybox') continue;
        const rel = `${appletDir(a)}/${a}`;
        // A package's real tool wins over the applet of the same name.
        if (existsSync(join(root, rel)) || existsSync(join(root, 'usr/bin', a)) || existsSync(join(root, 'usr/sbin', a))) continue;
        putSymlink(st, rel, rel.startsWith('usr/bin/') ? 'busybox' : '../bin/busybox');
        linked++;
      }
      log(`busybox: ${linked} of ${applets.length} applets linked`);

      const modIndex = readModuleIndex(images.modulesDir);
      const mods = await resolveModules(modIndex, [...BASE_MODULES, ...ON_DEMAND_MODULES]);
      const modRoot = `usr/lib/modules/${images.kernelVersion}`;
      for (const m of mods) putFile(st, `${modRoot}/${m.path}`, m.data, 0o644);
      putFile(st, `${modRoot}/modules.dep`, modulesDep(mods, directDeps(modIndex, mods)), 0o644);
      putFile(st, `${modRoot}/modules.order`, mods.map((m) => `${m.path}\n`).join(''), 0o644);
      for (const f of ['modules.builtin', 'modules.builtin.modinfo']) {
        const src = join(images.modulesDir, f);
        if (existsSync(src)) putFile(st, `${modRoot}/${f}`, readFileSync(src), 0o644);
      }
      log(`kernel modules: ${mods.map((m) => m.name).join(' ')}`);

      for (const f of rootfsEtc({ kernelVersion: images.kernelVersion, modules: new Set(mods.map((m) => m.name)), agent: agent !== undefined })) {
        putFile(st, f.path, f.data, f.mode, 0, f.gid ?? 0);
      }
      putSymlink(st, 'etc/resolv.conf', '../run/resolv.conf'); // udhcpc writes it, even on a read-only root
      putSymlink(st, 'etc/mtab', '../proc/self/mounts');
      if (agent) putFile(st, 'usr/sbin/disco-agent', agent, 0o755);
      else log('no guest agent in this root disk');

      // The packages' owners (as root), then every mode, deepest first.
      if (process.getuid?.() === 0) {
        for (const [p, [uid, gid]] of st.owners) lchownSync(p, uid, gid);
      }
      for (const [p, mode] of [...st.modes].sort((a, b) => b[0].length - a[0].length)) {
        if (existsSync(p) && !isLink(p)) chmodSync(p, mode);
      }

      log(`making the ext4 file system (${sizeMiB} MiB)`);
      await makeExt4(st, tmpImg, sizeMiB, key);
      const s = statSync(tmpImg);
      const m: RootfsManifest = {
        format: 1, key, built: new Date().toISOString(), sizeMiB,
        packages: [...specs.map((p) => `${p.name}=${p.version}`), ...images.packages.filter((p) => p.role !== 'opensbi').map((p) => `${p.name}=${p.version}`)],
        bytes: s.size, mtimeMs: s.mtimeMs,
      };
      renameSync(tmpImg, img);
      writeFileAtomic(manifestPath, `${JSON.stringify(m, null, 2)}\n`);
      return { m, hit: false };
    } finally {
      rmSync(root, { recursive: true, force: true });
      rmSync(tmpImg, { force: true });
    }
  }, { log });
  return finish(built.m, built.hit);
}

function isLink(p: string): boolean {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}
