/**
 * The guest's initramfs: a gzip-compressed newc cpio archive (the kernel has
 * CONFIG_RD_GZIP) holding busybox, an /init script, a busybox-init inittab,
 * device nodes for the early console, and kernel modules (decompressed) with
 * the order to load them in.
 *
 * Boot sequence inside the guest (kernel command line: `console=ttyS0`; the
 * kernel runs /init from an initramfs by default, `rdinit=/init` says it
 * explicitly):
 *
 *   /init (busybox sh, PID 1)
 *     mounts /proc, /sys, devtmpfs on /dev, devpts on /dev/pts;
 *     `busybox --install -s` (every applet as a symlink);
 *     insmod each module listed in /etc/disco/modules, in that order;
 *     hostname disco; then `exec busybox init`.
 *   busybox init (PID 1, reads /etc/inittab)
 *     ::once → `cttyhack /etc/disco/console`: cttyhack (a session leader,
 *       started by init) makes the real console device (ttyS0, hvc0, … from
 *       /sys/class/tty/console/active) the controlling terminal, so job
 *       control and Ctrl-C work; the script prints `disco: init ready`, runs
 *       a login shell, and when that shell exits runs `poweroff`.
 *     ::shutdown → /etc/disco/shutdown: prints `disco: shutting down`, syncs.
 *     ::ctrlaltdel → poweroff.
 *
 * Graceful shutdown hook ("power button"): busybox init powers off cleanly —
 * shutdown actions, SIGTERM then SIGKILL to every process, sync,
 * reboot(RB_POWER_OFF), which Linux turns into SBI SRST shutdown — when PID 1
 * gets SIGUSR2 (SIGUSR1: halt, SIGTERM: reboot). `poweroff` in the guest
 * sends it; so does the kernel's orderly_poweroff() (it runs /sbin/poweroff,
 * present as a symlink) and Ctrl-Alt-Del (SIGINT → ::ctrlaltdel). A host-side
 * power button therefore needs a device whose driver makes the kernel call
 * orderly_poweroff(), or a guest agent that runs `poweroff`.
 *
 * If this busybox were built without the `init` applet, /init runs the
 * console script itself and powers off with `poweroff -f` when it returns.
 */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { CpioWriter } from './cpio.js';
import { describe, ImageError } from './errors.js';
import type { GuestImages } from './fetch.js';
import { readModuleIndex, resolveModules } from './modules.js';

/** The line /init prints on the console when the shell is about to start (tests wait for it). */
export const INIT_READY = 'disco: init ready';

/** A suggested kernel command line for booting with this initramfs. */
export const INITRAMFS_CMDLINE = 'console=ttyS0 rdinit=/init';

/**
 * Modules every default guest loads: the virtio-mmio transport, virtio-input and
 * evdev for the board's power button (busybox acpid turns KEY_POWER into poweroff).
 */
export const BASE_MODULES: readonly string[] = ['virtio_mmio', 'virtio_input', 'evdev'];

/** Modules for a virtio-mmio guest; their dependencies are added, built-ins skipped. */
export const VIRTIO_MODULES: readonly string[] = [
  'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_console', 'virtio_rng', 'virtio_balloon', 'vmw_vsock_virtio_transport',
];

export interface InitramfsModule {
  /** Where it goes in the initramfs, e.g. `lib/modules/<ver>/kernel/drivers/virtio/virtio_mmio.ko`. */
  readonly path: string;
  /** The uncompressed module (ELF). */
  readonly data: Uint8Array;
  /** Module parameters for insmod, e.g. `foo=1 bar=2`. */
  readonly args?: string;
}

export interface ExtraFile {
  readonly path: string;
  readonly data: Uint8Array | string;
  /** Permission bits; default 0644. */
  readonly mode?: number;
}

export interface InitramfsOptions {
  /** The static busybox binary for the guest's architecture. */
  readonly busybox: Uint8Array;
  /** Kernel modules in load order (dependencies first). */
  readonly modules: readonly InitramfsModule[];
  /** Replaces the /init script. */
  readonly init?: string;
  /** More files (added last; parents created). */
  readonly extraFiles?: readonly ExtraFile[];
  /** gzip the archive (default true). */
  readonly gzip?: boolean;
}

/** Applets linked at build time (busybox --install -s adds the rest at boot). */
const BIN_APPLETS = [
  'sh', 'ash', 'cat', 'chmod', 'cp', 'cttyhack', 'date', 'dd', 'df', 'dmesg', 'echo', 'grep', 'hostname', 'kill', 'ln', 'ls',
  'mkdir', 'mknod', 'mount', 'mv', 'ps', 'rm', 'setsid', 'sleep', 'stty', 'sync', 'umount', 'uname', 'vi',
];
const SBIN_APPLETS = ['init', 'halt', 'poweroff', 'reboot', 'insmod', 'rmmod', 'lsmod', 'modprobe'];
const USR_BIN_APPLETS = ['free', 'head', 'tail', 'wc', 'sha256sum', 'gzip', 'seq', 'time', 'top', 'uptime', 'env'];

export const DEFAULT_INIT = `#!/bin/busybox sh
# Disco guest init: PID 1 of the initramfs (see src/image/initramfs.ts).
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root TERM=linux
/bin/busybox mount -t proc -o nosuid,nodev,noexec proc /proc
/bin/busybox --install -s 2>/dev/null
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev || echo "disco: cannot mount devtmpfs"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o nosuid,noexec,gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
if [ -s /etc/disco/modules ]; then
  while read -r mod args; do
    [ -n "$mod" ] || continue
    insmod "$mod" $args || echo "disco: insmod $mod failed"
  done < /etc/disco/modules
fi
hostname disco
if busybox --list | grep -qx init; then
  exec /bin/busybox init
fi
/bin/cttyhack /etc/disco/console
exec poweroff -f
`;

// acpid reads the input devices (the virtio-input power button) and runs
// /etc/acpi/PWRF/00000080 for KEY_POWER: the power button powers off gracefully.
const INITTAB = `# Disco: busybox init (see src/image/initramfs.ts)
::sysinit:/bin/sh -c 'ls /dev/input/event* >/dev/null 2>&1 && exec acpid -c /etc/acpi -l /dev/null'
::once:/bin/cttyhack /etc/disco/console
::ctrlaltdel:/sbin/poweroff
::shutdown:/etc/disco/shutdown
`;

const POWER_BUTTON = `#!/bin/sh
echo "disco: power button pressed"
exec /sbin/poweroff
`;

// Run through cttyhack by init (as a session leader), so the shell has the real
// console device as its controlling terminal: job control and Ctrl-C work.
const CONSOLE = `#!/bin/sh
# The console session: a login shell, then power off.
echo "${INIT_READY}"
/bin/sh -l
echo "disco: shell exited, powering off"
exec /sbin/poweroff
`;

const SHUTDOWN = `#!/bin/sh
echo "disco: shutting down"
sync
`;

const PROFILE = `export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
export PS1='\\h:\\w\\$ '
cd /root 2>/dev/null
`;

/** Builds the initramfs; gzip-compressed unless `gzip: false`. */
export function buildInitramfs(opts: InitramfsOptions): Uint8Array {
  const c = new CpioWriter();
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/disco', 'lib/modules', 'proc', 'sys', 'dev', 'run', 'var', 'mnt']) c.directory(d);
  c.directory('root', { mode: 0o700 });
  c.directory('tmp', { mode: 0o1777 });
  c.charDevice('dev/console', 5, 1, { mode: 0o600 });
  c.charDevice('dev/null', 1, 3, { mode: 0o666 });
  c.charDevice('dev/tty', 5, 0, { mode: 0o666 });
  c.file('bin/busybox', opts.busybox, { mode: 0o755 });
  for (const a of BIN_APPLETS) c.symlink(`bin/${a}`, 'busybox');
  for (const a of SBIN_APPLETS) c.symlink(`sbin/${a}`, '../bin/busybox');
  for (const a of USR_BIN_APPLETS) c.symlink(`usr/bin/${a}`, '../../bin/busybox');

  c.file('init', opts.init ?? DEFAULT_INIT, { mode: 0o755 });
  c.file('etc/inittab', INITTAB);
  c.file('etc/disco/console', CONSOLE, { mode: 0o755 });
  c.file('etc/disco/shutdown', SHUTDOWN, { mode: 0o755 });
  c.file('etc/acpi/PWRF/00000080', POWER_BUTTON, { mode: 0o755 });
  c.file('etc/profile', PROFILE);
  c.file('etc/hostname', 'disco\n');
  c.file('etc/hosts', '127.0.0.1 localhost disco\n');
  c.file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\n');
  c.file('etc/group', 'root:x:0:\ntty:x:5:\n');

  const list: string[] = [];
  for (const m of opts.modules) {
    const path = m.path.replace(/^\/+/, '');
    if (/\s/.test(path)) throw new ImageError(`module path with whitespace: ${path}`);
    c.file(path, m.data);
    list.push(m.args ? `/${path} ${m.args}` : `/${path}`);
  }
  c.file('etc/disco/modules', list.length > 0 ? `${list.join('\n')}\n` : '');

  for (const f of opts.extraFiles ?? []) c.file(f.path, f.data, { mode: f.mode ?? 0o644 });
  const cpio = c.finish();
  return opts.gzip === false ? cpio : new Uint8Array(gzipSync(cpio, { level: 6 }));
}

export interface DefaultInitramfsOptions {
  /** Module names (e.g. VIRTIO_MODULES); dependencies are added, built-ins skipped. Default none. */
  readonly modules?: readonly string[];
  readonly init?: string;
  readonly extraFiles?: readonly ExtraFile[];
}

/** The initramfs for the fetched Debian guest: its busybox and the requested modules. */
export async function defaultInitramfs(images: GuestImages, opts: DefaultInitramfsOptions = {}): Promise<Uint8Array> {
  let busybox: Uint8Array;
  try {
    busybox = readFileSync(images.busybox);
  } catch (err) {
    throw new ImageError(`cannot read ${images.busybox}: ${describe(err)}`);
  }
  const modules: InitramfsModule[] = [];
  if (opts.modules && opts.modules.length > 0) {
    const index = readModuleIndex(images.modulesDir);
    for (const m of await resolveModules(index, opts.modules)) {
      modules.push({ path: `lib/modules/${images.kernelVersion}/${m.path}`, data: m.data });
    }
  }
  return buildInitramfs({
    busybox,
    modules,
    ...(opts.init !== undefined ? { init: opts.init } : {}),
    ...(opts.extraFiles !== undefined ? { extraFiles: opts.extraFiles } : {}),
  });
}
