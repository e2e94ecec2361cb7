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
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildAgent } from './agent.js';
import { writeFileAtomic } from './cache.js';
import { CpioWriter } from './cpio.js';
import { describe, ImageError } from './errors.js';
import type { GuestImages } from './fetch.js';
import { moduleName, readModinfo, readModuleIndex, resolveModules, type ModuleIndex, type ResolvedModule } from './modules.js';

/** The line /init prints on the console when the shell is about to start (tests wait for it). */
export const INIT_READY = 'disco: init ready';

/** A suggested kernel command line for booting with this initramfs. */
export const INITRAMFS_CMDLINE = 'console=ttyS0 rdinit=/init';

/** Modules for a virtio-mmio guest; their dependencies are added, built-ins skipped. */
export const VIRTIO_MODULES: readonly string[] = [
  'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_console', 'virtio_rng', 'virtio_balloon', 'vmw_vsock_virtio_transport',
];

/**
 * Modules every default guest loads at once: the virtio-mmio transport,
 * virtio-input and evdev for the board's power button (busybox acpid turns
 * KEY_POWER into poweroff).
 */
export const BASE_MODULES: readonly string[] = ['virtio_mmio', 'virtio_input', 'evdev'];

/**
 * Modules the default initramfs carries and loads only when needed
 * (/etc/disco/drivers): the driver of each virtio device the board has, and
 * for root= ext4 (with crc32c_generic: ext4 names it only as a soft
 * dependency, and a metadata_csum file system fails to mount without it).
 * Loading all of them always costs about 30 s of boot in Disco (each
 * module's signature is checked by the guest), and most guests have few
 * devices. af_packet (udhcpc's raw socket) is built into Debian's kernel.
 */
export const ON_DEMAND_MODULES: readonly string[] = [...VIRTIO_MODULES, 'crc32c_generic', 'ext4', 'af_packet'];

/** The modules ext4 on a root disk needs, loaded (with their dependencies) when root= is given. */
export const ROOT_FS_MODULES: readonly string[] = ['crc32c_generic', 'ext4'];

/** Virtio device ID (virtio 1.2 §5, as sysfs prints it) → the Linux driver module. */
export const VIRTIO_DRIVERS: Readonly<Record<string, string>> = {
  '0x0001': 'virtio_net',
  '0x0002': 'virtio_blk',
  '0x0003': 'virtio_console',
  '0x0004': 'virtio_rng',
  '0x0005': 'virtio_balloon',
  '0x0012': 'virtio_input',
  '0x0013': 'vmw_vsock_virtio_transport',
};

/** /etc/disco/virtio-drivers: `ID module` for each driver among `present` (module names). */
export function virtioDriversTable(present: ReadonlySet<string>): string {
  return Object.entries(VIRTIO_DRIVERS).filter(([, m]) => present.has(m)).map(([id, m]) => `${id} ${m}\n`).join('');
}

/**
 * depmod's modules.dep for `mods` (in load order): each line `path: dep...`
 * with every transitive dependency, the one to load first last. `direct`
 * gives each module's own dependencies (names; those not in `mods`, i.e.
 * built-ins, are dropped).
 */
export function modulesDep(mods: readonly { readonly name: string; readonly path: string }[], direct: ReadonlyMap<string, readonly string[]>): string {
  const pathOf = new Map(mods.map((m) => [m.name, m.path]));
  const order = new Map(mods.map((m, i) => [m.name, i]));
  const lines: string[] = [];
  for (const m of mods) {
    const all = new Set<string>();
    const visit = (n: string): void => {
      for (const d of direct.get(n) ?? []) {
        if (!pathOf.has(d) || all.has(d)) continue;
        all.add(d);
        visit(d);
      }
    };
    visit(m.name);
    const deps = [...all].sort((x, y) => order.get(y)! - order.get(x)!).map((d) => pathOf.get(d)!);
    lines.push(`${m.path}:${deps.map((d) => ` ${d}`).join('')}`);
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** Direct dependencies of resolved modules, read back from their .modinfo (or the index's modules.dep). */
export function directDeps(index: ModuleIndex, mods: readonly ResolvedModule[]): Map<string, readonly string[]> {
  const out = new Map<string, readonly string[]>();
  for (const m of mods) {
    out.set(m.name, index.deps?.get(m.name)
      ?? (readModinfo(m.data).get('depends') ?? []).flatMap((d) => d.split(',')).filter((d) => d !== '').map(moduleName));
  }
  return out;
}

/**
 * /etc/disco/drivers: loads, with modprobe (modules.dep), the driver of each
 * virtio device present and the modules named as arguments, skipping those
 * already loaded. Shared by the initramfs and the root disk.
 */
export const DRIVERS_SCRIPT = `#!/bin/sh
# Disco: drivers of the virtio devices present, and the modules named (see src/image/initramfs.ts).
want="$*"
for d in /sys/bus/virtio/devices/*; do
  [ -r "$d/device" ] || continue
  id=$(cat "$d/device")
  while read -r i m; do
    [ "$i" = "$id" ] && want="$want $m"
  done < /etc/disco/virtio-drivers
done
for m in $want; do
  [ -d "/sys/module/$m" ] || modprobe "$m" || echo "disco: modprobe $m failed"
done
exit 0
`;

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
  /** Modules stored but loaded only on demand by /etc/disco/drivers (with modprobe: give a modules.dep in extraFiles). */
  readonly onDemand?: readonly InitramfsModule[];
  /** /etc/disco/virtio-drivers (virtioDriversTable): which on-demand module drives which virtio device. */
  readonly virtioDrivers?: string;
  /** The guest agent (static riscv64 ELF), installed as /usr/sbin/disco-agent and respawned by init. */
  readonly agent?: Uint8Array;
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

root= rootmode=rw rootwait=10
for w in $(cat /proc/cmdline); do
  case "$w" in
    root=*) root=\${w#root=} ;;
    ro) rootmode=ro ;;
    rw) rootmode=rw ;;
    disco.rootwait=*) rootwait=\${w#disco.rootwait=} ;;
  esac
done
case "$rootwait" in ''|*[!0-9]*) rootwait=10 ;; esac
/etc/disco/drivers \${root:+${ROOT_FS_MODULES.join(' ')}}

# The device node of root= (/dev/vdX, LABEL=..., UUID=...), once it exists.
find_root() {
  case "$root" in
    LABEL=*|UUID=*) findfs "$root" 2>/dev/null ;;
    /dev/*) [ -b "$root" ] && echo "$root" ;;
  esac
}

# root=: mount the disk and make it the root (its /sbin/init takes over as PID 1);
# on any failure say why and stay in the initramfs.
if [ -n "$root" ]; then
  case "$root" in
    /dev/*|LABEL=*|UUID=*) ;;
    *) echo "disco: root=$root is not /dev/..., LABEL=... or UUID=..."; root= ;;
  esac
fi
if [ -n "$root" ]; then
  dev=$(find_root)
  if [ -z "$dev" ]; then
    echo "disco: waiting up to \${rootwait} s for the root device $root"
    i=0
    while [ -z "$dev" ] && [ $i -lt $((rootwait * 10)) ]; do
      usleep 100000
      i=$((i + 1))
      dev=$(find_root)
    done
  fi
  if [ -z "$dev" ]; then
    echo "disco: the root device $root did not appear within \${rootwait} s; staying in the initramfs"
  elif ! mkdir -p /newroot || ! mount -t ext4 -o "$rootmode" "$dev" /newroot; then
    echo "disco: cannot mount $dev ($root) as ext4; staying in the initramfs"
  elif [ ! -x /newroot/sbin/init ]; then
    echo "disco: $dev has no /sbin/init; staying in the initramfs"
    umount /newroot
  else
    echo "disco: switching to the root file system on $dev ($rootmode)"
    for m in /dev /proc /sys; do
      mkdir -p "/newroot$m" && mount --move "$m" "/newroot$m"
    done
    exec switch_root -c /dev/console /newroot /sbin/init
    echo "disco: switch_root failed"
  fi
fi

/etc/disco/network
if busybox --list | grep -qx init; then
  exec /bin/busybox init
fi
/bin/cttyhack /etc/disco/console
exec poweroff -f
`;

/**
 * Network setup from the kernel command line, shared by the initramfs and the
 * root disk: `disco.ip=dhcp` runs udhcpc on eth0 (UDHCPC_SCRIPT applies the
 * lease); `disco.ip=A.B.C.D/NN` sets a static address (with `disco.gw=A.B.C.D`
 * a default route); anything else leaves eth0 alone. lo is always up.
 */
export const NETWORK_SCRIPT = `#!/bin/sh
# Disco: network setup from the kernel command line (see src/image/initramfs.ts).
# DISCO_CMDLINE and DISCO_SYSFS stand in for /proc/cmdline and /sys in tests.
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
ip= gw=
for w in \${DISCO_CMDLINE-$(cat /proc/cmdline)}; do
  case "$w" in
    disco.ip=*) ip=\${w#disco.ip=} ;;
    disco.gw=*) gw=\${w#disco.gw=} ;;
  esac
done
[ -n "$ip" ] || exit 0
if [ ! -e "\${DISCO_SYSFS:-/sys}/class/net/eth0" ]; then
  echo "disco: disco.ip=$ip but there is no eth0"
  exit 1
fi
case "$ip" in
  dhcp)
    mkdir -p /run
    # Backgrounds once it has a lease (it renews it) or after 5 failed tries.
    udhcpc -i eth0 -s /usr/share/udhcpc/default.script -t 5 -T 2 -A 10 -b -p /run/udhcpc.eth0.pid
    ;;
  [0-9]*.[0-9]*.[0-9]*.[0-9]*/[0-9]*)
    ip link set eth0 up && ip addr add "$ip" dev eth0 || { echo "disco: cannot set $ip on eth0"; exit 1; }
    if [ -n "$gw" ]; then ip route add default via "$gw" dev eth0 || echo "disco: cannot route via $gw"; fi
    echo "disco: eth0 $ip"
    ;;
  *)
    echo "disco: ignoring disco.ip=$ip (want dhcp or A.B.C.D/NN)"
    ;;
esac
exit 0
`;

/**
 * udhcpc's event script (/usr/share/udhcpc/default.script, where busybox
 * looks by default). udhcpc passes the event as $1 and the lease in the
 * environment: interface, ip, mask (prefix length), broadcast, router, dns,
 * domain.
 */
export const UDHCPC_SCRIPT = `#!/bin/sh
# Disco: applies udhcpc's lease (see src/image/initramfs.ts).
resolv=\${RESOLV_CONF:-/etc/resolv.conf}
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" \${broadcast:+broadcast "$broadcast"} dev "$interface"
    while ip route del default dev "$interface" 2>/dev/null; do :; done
    for r in $router; do
      ip route add default via "$r" dev "$interface" && break
    done
    {
      [ -n "$domain" ] && echo "search $domain"
      for d in $dns; do echo "nameserver $d"; done
    } > "$resolv"
    echo "disco: $interface $ip/\${mask:-24}\${router:+ via \${router%% *}}"
    ;;
  leasefail|nak)
    echo "disco: no DHCP lease on $interface"
    ;;
esac
exit 0
`;

/** busybox init's table; the agent line only when the agent is installed. */
export function inittab(opts: { readonly sysinit?: string; readonly agent: boolean }): string {
  return [
    '# Disco: busybox init (see src/image/initramfs.ts)',
    ...(opts.sysinit !== undefined ? [`::sysinit:${opts.sysinit}`] : []),
    // acpid reads the input devices (the virtio-input power button) and runs
    // /etc/acpi/PWRF/00000080 for KEY_POWER: the power button powers off gracefully.
    "::sysinit:/bin/sh -c 'ls /dev/input/event* >/dev/null 2>&1 && exec acpid -c /etc/acpi -l /dev/null'",
    ...(opts.agent ? ['::respawn:/usr/sbin/disco-agent'] : []),
    '::once:/bin/cttyhack /etc/disco/console',
    '::ctrlaltdel:/sbin/poweroff',
    '::shutdown:/etc/disco/shutdown',
    '',
  ].join('\n');
}

export const POWER_BUTTON = `#!/bin/sh
echo "disco: power button pressed"
exec /sbin/poweroff
`;

// Run through cttyhack by init (as a session leader), so the shell has the real
// console device as its controlling terminal: job control and Ctrl-C work.
export const CONSOLE = `#!/bin/sh
# The console session: a login shell, then power off.
echo "${INIT_READY}"
/bin/sh -l
echo "disco: shell exited, powering off"
exec /sbin/poweroff
`;

export const SHUTDOWN = `#!/bin/sh
echo "disco: shutting down"
sync
`;

export const PROFILE = `export PATH=/sbin:/usr/sbin:/bin:/usr/bin
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
  c.file('etc/inittab', inittab({ agent: opts.agent !== undefined }));
  c.file('etc/disco/network', NETWORK_SCRIPT, { mode: 0o755 });
  c.file('etc/disco/drivers', DRIVERS_SCRIPT, { mode: 0o755 });
  c.file('usr/share/udhcpc/default.script', UDHCPC_SCRIPT, { mode: 0o755 });
  if (opts.agent) c.file('usr/sbin/disco-agent', opts.agent, { mode: 0o755 });
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
  for (const m of opts.onDemand ?? []) c.file(m.path, m.data);
  c.file('etc/disco/virtio-drivers', opts.virtioDrivers ?? '');

  for (const f of opts.extraFiles ?? []) c.file(f.path, f.data, { mode: f.mode ?? 0o644 });
  const cpio = c.finish();
  return opts.gzip === false ? cpio : gzip(cpio);
}

export interface DefaultInitramfsOptions {
  /** Modules loaded at boot (e.g. BASE_MODULES); dependencies are added, built-ins skipped. Default none. */
  readonly modules?: readonly string[];
  /**
   * Modules carried for /etc/disco/drivers to load when their device is
   * present (or root= needs them); those the kernel does not have are left
   * out. Default ON_DEMAND_MODULES when `modules` is non-empty, else none.
   */
  readonly onDemand?: readonly string[];
  readonly init?: string;
  readonly extraFiles?: readonly ExtraFile[];
  /**
   * The guest agent. Default: buildAgent()'s (cached) binary, or none if it
   * cannot be built; `false`: none.
   */
  readonly agent?: Uint8Array | false;
}

/** The agent binary, or undefined (with a line to `log`) when it cannot be built. */
export async function agentIfAvailable(cacheDir: string, log?: (line: string) => void): Promise<Uint8Array | undefined> {
  try {
    return await buildAgent({ cacheDir, ...(log ? { log } : {}) });
  } catch (err) {
    log?.(`the guest agent is not available (${describe(err)}); building without it`);
    return undefined;
  }
}

/** The initramfs for the fetched Debian guest: its busybox and the requested modules. */
export async function defaultInitramfs(images: GuestImages, opts: DefaultInitramfsOptions = {}): Promise<Uint8Array> {
  let busybox: Uint8Array;
  try {
    busybox = readFileSync(images.busybox);
  } catch (err) {
    throw new ImageError(`cannot read ${images.busybox}: ${describe(err)}`);
  }
  const eagerNames = opts.modules ?? [];
  const onDemandNames = opts.onDemand ?? (eagerNames.length > 0 ? ON_DEMAND_MODULES : []);
  const modules: InitramfsModule[] = [];
  const onDemand: InitramfsModule[] = [];
  const extraFiles: ExtraFile[] = [];
  let virtioDrivers = '';
  if (eagerNames.length + onDemandNames.length > 0) {
    const index = readModuleIndex(images.modulesDir);
    const dir = `lib/modules/${images.kernelVersion}`;
    const eager = await resolveModules(index, eagerNames);
    // An on-demand module this kernel lacks is one nothing can load: left out.
    const available = onDemandNames.filter((n) => index.paths.has(moduleName(n)));
    const all = await resolveModules(index, [...eagerNames, ...available]);
    const isEager = new Set(eager.map((m) => m.name));
    for (const m of eager) modules.push({ path: `${dir}/${m.path}`, data: m.data });
    for (const m of all) if (!isEager.has(m.name)) onDemand.push({ path: `${dir}/${m.path}`, data: m.data });
    extraFiles.push({ path: `${dir}/modules.dep`, data: modulesDep(all, directDeps(index, all)) });
    virtioDrivers = virtioDriversTable(new Set(all.map((m) => m.name)));
  }
  const agent = opts.agent === false ? undefined : opts.agent ?? await agentIfAvailable(images.cacheDir);
  const cpio = buildInitramfs({
    busybox,
    modules,
    onDemand,
    virtioDrivers,
    ...(agent !== undefined ? { agent } : {}),
    ...(opts.init !== undefined ? { init: opts.init } : {}),
    extraFiles: [...extraFiles, ...(opts.extraFiles ?? [])],
    gzip: false,
  });
  // Only the stock archives (no custom init or files) are kept: a few variants, reused all the time.
  if (opts.init !== undefined || opts.extraFiles !== undefined) return gzip(cpio);
  return compressedOnce(cpio, join(images.cacheDir, 'initramfs'));
}

function gzip(cpio: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(cpio, { level: 6 }));
}

/** Archives kept; older ones (a previous kernel, agent or init script) are removed. */
const KEPT_ARCHIVES = 8;

/**
 * The archive gzipped, kept under `dir` by the hash of its contents: compressing
 * is most of the cost of building it, paid at every `disco run` and VM start.
 */
function compressedOnce(cpio: Uint8Array, dir: string): Uint8Array {
  const path = join(dir, `${createHash('sha256').update(cpio).digest('hex')}.cpio.gz`);
  try {
    return readFileSync(path);
  } catch {
    const gz = gzip(cpio);
    try {
      writeFileAtomic(path, gz);
      const old = readdirSync(dir).filter((f) => f.endsWith('.cpio.gz'))
        .map((f) => ({ f, t: statSync(join(dir, f)).mtimeMs })).sort((a, b) => b.t - a.t).slice(KEPT_ARCHIVES);
      for (const { f } of old) rmSync(join(dir, f), { force: true });
    } catch {
      // A read-only or full cache only costs the compression next time.
    }
    return gz;
  }
}
