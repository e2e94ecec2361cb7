/**
 * A VM's configuration as the API shapes it (Firecracker's resources, snake
 * case), validated field by field: every error is one line naming the field,
 * and nothing changes unless the whole body is valid.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultMac, parseHostForward, UsageError } from '../cli/device-options.js';
import { VM_NAME_PATTERN } from '../host/paths.js';
import type { VirtioDeviceSpec } from '../machine/virtio-spec.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const CONFIG_VERSION = 1;
export const MAX_VCPUS = 8;
export const MIN_MEM_MIB = 64;
export const MAX_MEM_MIB = 3072;
export const MAX_SHARES = 10_000;
/** virtio-mmio slots 0..6 (slot 7 is the power button). */
export const MAX_DEVICES = 7;

export interface MachineConfig {
  readonly vcpu_count: number;
  readonly mem_size_mib: number;
  /** Proportional share of host CPU against other VMs (weight). */
  readonly shares: number;
  /** Most host CPU the VM may use, in percent of one host thread (up to 100 per vCPU); 0: no cap. */
  readonly cap_percent: number;
  /** Most machine memory the VM may hold, in MiB; 0: its RAM size. */
  readonly mem_limit_mib: number;
  /** A guest reboot boots the VM again ('restart', as QEMU does) or leaves it stopped ('stop'). */
  readonly on_reboot: RebootPolicy;
}

export type RebootPolicy = 'restart' | 'stop';
export const REBOOT_POLICIES: readonly RebootPolicy[] = ['restart', 'stop'];

export interface BootSource {
  /** null: Debian's kernel from the image cache. */
  readonly kernel_image_path: string | null;
  /** null: Disco's default initramfs. */
  readonly initrd_path: string | null;
  /** null: the default command line. */
  readonly boot_args: string | null;
}

export interface Drive {
  readonly drive_id: string;
  readonly path_on_host: string;
  readonly is_read_only: boolean;
  /** A copy-on-write overlay above a read-only base. */
  readonly overlay_path: string | null;
  readonly serial: string;
}

export interface NetworkInterface {
  readonly iface_id: string;
  readonly backend: 'user' | 'switch' | 'tap';
  /** backend 'switch': the switch's name. */
  readonly switch_name: string | null;
  /** backend 'tap': the TAP device. */
  readonly host_dev_name: string | null;
  /** null: a stable MAC derived from the VM's name. */
  readonly guest_mac: string | null;
  /** backend 'user': QEMU-style forwards, "tcp::8080-:80". */
  readonly hostfwd: readonly string[];
}

export interface Balloon {
  readonly amount_mib: number;
  readonly deflate_on_oom: boolean;
  readonly free_page_reporting: boolean;
  readonly stats_polling_interval_s: number;
}

export interface Vsock {
  readonly guest_cid: number;
  /** null: RUNDIR/NAME.vsock. */
  readonly uds_path: string | null;
}

/** Everything a VM is made of, as plain versioned data. */
export interface VmConfig {
  readonly version: typeof CONFIG_VERSION;
  readonly id: string;
  readonly machine_config: MachineConfig;
  readonly boot_source: BootSource;
  readonly drives: readonly Drive[];
  readonly network_interfaces: readonly NetworkInterface[];
  readonly balloon: Balloon | null;
  readonly vsock: Vsock | null;
  /** A virtio-rng device (Firecracker's /entropy). */
  readonly entropy: boolean;
}

export type Json = Record<string, unknown>;

export function defaultConfig(id: string): VmConfig {
  return {
    version: CONFIG_VERSION, id,
    machine_config: { vcpu_count: 1, mem_size_mib: 256, shares: 1, cap_percent: 0, mem_limit_mib: 0, on_reboot: 'restart' },
    boot_source: { kernel_image_path: null, initrd_path: null, boot_args: null },
    drives: [], network_interfaces: [], balloon: null, vsock: null, entropy: false,
  };
}

// ------------------------------------------------------------------ field readers

export function asObject(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${what} must be a JSON object`);
  return v as Json;
}

export function onlyKeys(body: Json, allowed: readonly string[], what = 'request body'): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw new ConfigError(`${what}: unknown field '${k}' (expected ${allowed.join(', ')})`);
  }
}

export function int(body: Json, key: string, min: number, max: number, dflt?: number): number {
  const v = body[key];
  if (v === undefined) {
    if (dflt === undefined) throw new ConfigError(`missing field '${key}'`);
    return dflt;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ConfigError(`'${key}' must be a whole number from ${min} to ${max}`);
  return v;
}

function bool(body: Json, key: string, dflt: boolean): boolean {
  const v = body[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new ConfigError(`'${key}' must be true or false`);
  return v;
}

function rebootPolicy(body: Json, key: string, dflt: RebootPolicy): RebootPolicy {
  const v = body[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !(REBOOT_POLICIES as readonly string[]).includes(v)) throw new ConfigError(`'${key}' must be one of ${REBOOT_POLICIES.join(', ')}`);
  return v as RebootPolicy;
}

function str(body: Json, key: string, dflt?: string | null): string | null {
  const v = body[key];
  if (v === undefined || v === null) {
    if (dflt === undefined) throw new ConfigError(`missing field '${key}'`);
    return dflt;
  }
  if (typeof v !== 'string' || v === '') throw new ConfigError(`'${key}' must be a non-empty string`);
  if (v.includes('\0')) throw new ConfigError(`'${key}' must not contain NUL`);
  return v;
}

function existing(path: string | null, key: string): string | null {
  if (path !== null && !existsSync(path)) throw new ConfigError(`'${key}': ${path} does not exist`);
  return path;
}

const RESOURCE_ID = /^[A-Za-z0-9_-]{1,64}$/;
function resourceId(body: Json, key: string, fromPath: string | undefined): string {
  const v = str(body, key, fromPath ?? undefined)!;
  if (!RESOURCE_ID.test(v)) throw new ConfigError(`'${key}' must be 1-64 letters, digits, '_' or '-'`);
  if (fromPath !== undefined && v !== fromPath) throw new ConfigError(`'${key}' (${v}) differs from the path's (${fromPath})`);
  return v;
}

export function vmId(v: unknown): string {
  if (typeof v !== 'string' || !VM_NAME_PATTERN.test(v)) throw new ConfigError(`VM id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  return v;
}

// ------------------------------------------------------------------ resources

export function parseMachineConfig(v: unknown, base: MachineConfig | null): MachineConfig {
  const b = asObject(v, 'machine_config');
  onlyKeys(b, ['vcpu_count', 'mem_size_mib', 'shares', 'cap_percent', 'mem_limit_mib', 'on_reboot'], 'machine_config');
  const vcpus = int(b, 'vcpu_count', 1, MAX_VCPUS, base?.vcpu_count);
  const mc: MachineConfig = {
    vcpu_count: vcpus,
    mem_size_mib: int(b, 'mem_size_mib', MIN_MEM_MIB, MAX_MEM_MIB, base?.mem_size_mib),
    shares: int(b, 'shares', 1, MAX_SHARES, base?.shares ?? 1),
    cap_percent: capPercent(b, vcpus, base?.cap_percent ?? 0),
    mem_limit_mib: int(b, 'mem_limit_mib', 0, MAX_MEM_MIB, base?.mem_limit_mib ?? 0),
    on_reboot: rebootPolicy(b, 'on_reboot', base?.on_reboot ?? 'restart'),
  };
  return mc;
}

/** A cap in percent of one host thread: a VM's vCPUs together use at most one thread each. */
function capPercent(b: Json, vcpus: number, dflt: number): number {
  return int(b, 'cap_percent', 0, 100 * vcpus, Math.min(dflt, 100 * vcpus));
}

/** PATCH machine-config of a running VM: only the scheduling fields and the reboot policy. */
export function parseSchedulingPatch(v: unknown, base: MachineConfig): MachineConfig {
  const b = asObject(v, 'machine_config');
  onlyKeys(b, ['shares', 'cap_percent', 'on_reboot'], 'machine_config of a started VM (only shares, cap_percent and on_reboot change at run time)');
  return {
    ...base,
    shares: int(b, 'shares', 1, MAX_SHARES, base.shares),
    cap_percent: capPercent(b, base.vcpu_count, base.cap_percent),
    on_reboot: rebootPolicy(b, 'on_reboot', base.on_reboot),
  };
}

export function parseBootSource(v: unknown): BootSource {
  const b = asObject(v, 'boot_source');
  onlyKeys(b, ['kernel_image_path', 'initrd_path', 'boot_args'], 'boot_source');
  const bs: BootSource = {
    kernel_image_path: existing(str(b, 'kernel_image_path', null), 'kernel_image_path'),
    initrd_path: existing(str(b, 'initrd_path', null), 'initrd_path'),
    boot_args: str(b, 'boot_args', null),
  };
  if (bs.boot_args !== null && bs.boot_args.length > 2048) throw new ConfigError("'boot_args' is longer than 2048 characters");
  return bs;
}

export function parseDrive(v: unknown, idFromPath?: string): Drive {
  const b = asObject(v, 'drive');
  onlyKeys(b, ['drive_id', 'path_on_host', 'is_read_only', 'overlay_path', 'serial'], 'drive');
  const serial = str(b, 'serial', '') ?? '';
  if (Buffer.byteLength(serial) > 20) throw new ConfigError("'serial' is at most 20 bytes");
  return {
    drive_id: resourceId(b, 'drive_id', idFromPath),
    path_on_host: existing(str(b, 'path_on_host'), 'path_on_host')!,
    is_read_only: bool(b, 'is_read_only', false),
    overlay_path: str(b, 'overlay_path', null),
    serial,
  };
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const SWITCH_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function parseNetworkInterface(v: unknown, idFromPath?: string): NetworkInterface {
  const b = asObject(v, 'network interface');
  onlyKeys(b, ['iface_id', 'backend', 'switch_name', 'host_dev_name', 'guest_mac', 'hostfwd'], 'network interface');
  const backend = b['backend'] ?? 'user';
  if (backend !== 'user' && backend !== 'switch' && backend !== 'tap') throw new ConfigError("'backend' must be user, switch or tap");
  const switchName = str(b, 'switch_name', null);
  const tap = str(b, 'host_dev_name', null);
  if (backend === 'switch' && (switchName === null || !SWITCH_NAME.test(switchName))) throw new ConfigError("backend switch needs 'switch_name' (1-64 letters, digits, '.', '_' or '-')");
  if (backend === 'tap' && (tap === null || !IFNAME.test(tap))) throw new ConfigError("backend tap needs 'host_dev_name' (a network interface name)");
  if (backend !== 'switch' && switchName !== null) throw new ConfigError("'switch_name' applies to backend switch only");
  if (backend !== 'tap' && tap !== null) throw new ConfigError("'host_dev_name' applies to backend tap only");
  const mac = str(b, 'guest_mac', null)?.toLowerCase() ?? null;
  if (mac !== null && (!MAC.test(mac) || (parseInt(mac.slice(0, 2), 16) & 1))) throw new ConfigError(`'guest_mac' ${mac} is not a unicast xx:xx:xx:xx:xx:xx`);
  const fw = b['hostfwd'] ?? [];
  if (!Array.isArray(fw) || fw.some((f) => typeof f !== 'string')) throw new ConfigError("'hostfwd' must be a list of strings like \"tcp::8080-:80\"");
  if (backend !== 'user' && fw.length > 0) throw new ConfigError("'hostfwd' applies to backend user only");
  for (const f of fw as string[]) {
    try { parseHostForward(f); } catch (e) { throw new ConfigError(`'hostfwd': ${(e as Error).message.replace(/^--net: /, '')}`); }
  }
  return {
    iface_id: resourceId(b, 'iface_id', idFromPath), backend, switch_name: switchName, host_dev_name: tap,
    guest_mac: mac, hostfwd: fw as string[],
  };
}

export function parseBalloon(v: unknown, memMib: number): Balloon {
  const b = asObject(v, 'balloon');
  onlyKeys(b, ['amount_mib', 'deflate_on_oom', 'free_page_reporting', 'stats_polling_interval_s'], 'balloon');
  return {
    amount_mib: int(b, 'amount_mib', 0, memMib, 0),
    deflate_on_oom: bool(b, 'deflate_on_oom', true),
    free_page_reporting: bool(b, 'free_page_reporting', true),
    stats_polling_interval_s: int(b, 'stats_polling_interval_s', 0, 3600, 1),
  };
}

export function parseVsock(v: unknown): Vsock {
  const b = asObject(v, 'vsock');
  onlyKeys(b, ['guest_cid', 'uds_path', 'vsock_id'], 'vsock');
  return { guest_cid: int(b, 'guest_cid', 3, 0xffffffff, 3), uds_path: str(b, 'uds_path', null) };
}

export function parseEntropy(v: unknown): true {
  const b = asObject(v, 'entropy');
  onlyKeys(b, [], 'entropy');
  return true;
}

/** A whole VM in one body (POST /vms, PUT /vms/{id}). */
export function parseVmBody(v: unknown, idFromPath?: string): VmConfig {
  const b = asObject(v ?? {}, 'request body');
  onlyKeys(b, ['id', 'machine_config', 'boot_source', 'drives', 'network_interfaces', 'balloon', 'vsock', 'entropy']);
  const id = vmId(idFromPath ?? b['id']);
  if (idFromPath !== undefined && b['id'] !== undefined && b['id'] !== idFromPath) throw new ConfigError(`'id' (${String(b['id'])}) differs from the path's (${idFromPath})`);
  const base = defaultConfig(id);
  const mc = b['machine_config'] === undefined ? base.machine_config : parseMachineConfig(b['machine_config'], base.machine_config);
  const list = (key: string): unknown[] => {
    const x = b[key] ?? [];
    if (!Array.isArray(x)) throw new ConfigError(`'${key}' must be a list`);
    return x;
  };
  const cfg: VmConfig = {
    ...base,
    machine_config: mc,
    boot_source: b['boot_source'] === undefined ? base.boot_source : parseBootSource(b['boot_source']),
    drives: list('drives').map((d) => parseDrive(d)),
    network_interfaces: list('network_interfaces').map((n) => parseNetworkInterface(n)),
    balloon: b['balloon'] === undefined || b['balloon'] === null ? null : parseBalloon(b['balloon'], mc.mem_size_mib),
    vsock: b['vsock'] === undefined || b['vsock'] === null ? null : parseVsock(b['vsock']),
    entropy: b['entropy'] === undefined || b['entropy'] === false ? false : parseEntropy(b['entropy'] === true ? {} : b['entropy']),
  };
  checkConfig(cfg);
  return cfg;
}

/** Rules across resources. */
export function checkConfig(c: VmConfig): void {
  const ids = (xs: readonly string[], what: string): void => {
    if (new Set(xs).size !== xs.length) throw new ConfigError(`two ${what} with one id`);
  };
  ids(c.drives.map((d) => d.drive_id), 'drives');
  ids(c.network_interfaces.map((n) => n.iface_id), 'network interfaces');
  const n = c.drives.length + c.network_interfaces.length + (c.balloon ? 1 : 0) + (c.vsock ? 1 : 0) + (c.entropy ? 1 : 0);
  if (n > MAX_DEVICES) throw new ConfigError(`at most ${MAX_DEVICES} devices fit in the board's virtio slots (${n} configured)`);
  if (c.machine_config.mem_limit_mib !== 0 && c.machine_config.mem_limit_mib < 16) throw new ConfigError("'mem_limit_mib' must be 0 (no limit beyond RAM) or at least 16");
  if (c.balloon && c.balloon.amount_mib > c.machine_config.mem_size_mib) throw new ConfigError("balloon 'amount_mib' exceeds the VM's memory");
}

/** The virtio slots of a configuration: drives, then networks, then rng, balloon, vsock. */
export function virtioSpecs(c: VmConfig, runDir: () => string): VirtioDeviceSpec[] {
  const out: VirtioDeviceSpec[] = [];
  for (const d of c.drives) out.push({ kind: 'block', path: d.path_on_host, readonly: d.is_read_only, overlay: d.overlay_path, serial: d.serial });
  c.network_interfaces.forEach((n, i) => {
    const mac = n.guest_mac ?? defaultMac(c.id, i);
    switch (n.backend) {
      case 'user': {
        const hostfwd = n.hostfwd.map((f) => {
          try { return parseHostForward(f); } catch (e) { throw new ConfigError((e as UsageError).message); }
        });
        out.push({ kind: 'net', mac, backend: { kind: 'user', hostfwd } });
        break;
      }
      case 'switch': out.push({ kind: 'net', mac, backend: { kind: 'switch', name: n.switch_name! } }); break;
      case 'tap': out.push({ kind: 'net', mac, backend: { kind: 'tap', ifname: n.host_dev_name! } }); break;
      default: {
        const never: never = n.backend;
        throw new ConfigError(`unknown backend ${String(never)}`);
      }
    }
  });
  if (c.entropy) out.push({ kind: 'rng' });
  if (c.balloon) out.push({ kind: 'balloon', deflateOnOom: c.balloon.deflate_on_oom, freePageReporting: c.balloon.free_page_reporting, statsIntervalS: c.balloon.stats_polling_interval_s });
  if (c.vsock) out.push({ kind: 'vsock', cid: c.vsock.guest_cid, socket: c.vsock.uds_path ?? join(runDir(), `${c.id}.vsock`) });
  return out;
}

/** The reverse, for the CLI: `--drive/--net/--device` specs into API resources. */
export function resourcesOf(specs: readonly VirtioDeviceSpec[]): Json {
  const drives: Json[] = [], nets: Json[] = [];
  const out: Json = {};
  for (const s of specs) {
    switch (s.kind) {
      case 'block':
        drives.push({ drive_id: `drive${drives.length}`, path_on_host: s.path, is_read_only: s.readonly, ...(s.overlay ? { overlay_path: s.overlay } : {}), ...(s.serial ? { serial: s.serial } : {}) });
        break;
      case 'net': {
        const fw = s.backend.kind === 'user' ? s.backend.hostfwd.map((f) => `${f.protocol}:${f.hostAddr}:${f.hostPort}-${f.guestAddr}:${f.guestPort}`) : [];
        nets.push({
          iface_id: `net${nets.length}`, backend: s.backend.kind, guest_mac: s.mac,
          ...(s.backend.kind === 'switch' ? { switch_name: s.backend.name } : {}),
          ...(s.backend.kind === 'tap' ? { host_dev_name: s.backend.ifname } : {}),
          ...(fw.length ? { hostfwd: fw } : {}),
        });
        break;
      }
      case 'rng': out['entropy'] = {}; break;
      case 'balloon': out['balloon'] = { amount_mib: 0, deflate_on_oom: s.deflateOnOom, free_page_reporting: s.freePageReporting, stats_polling_interval_s: s.statsIntervalS }; break;
      case 'vsock': out['vsock'] = { guest_cid: s.cid, uds_path: s.socket }; break;
      case 'console': throw new UsageError('--device console is not offered by disco serve yet (attach with disco vm console)');
      case 'power-button': break;
      default: {
        const never: never = s;
        throw new UsageError(`unknown device ${JSON.stringify(never)}`);
      }
    }
  }
  if (drives.length) out['drives'] = drives;
  if (nets.length) out['network_interfaces'] = nets;
  return out;
}
