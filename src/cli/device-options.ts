/**
 * `--drive`, `--net` and `--device` option values (QEMU's key=value lists) into
 * the machine's `VirtioDeviceSpec`s. Every malformed value is a UsageError with
 * one line saying what was wrong.
 *
 *   --drive file=PATH[,readonly=on|off][,overlay=PATH][,serial=S][,format=raw][,if=virtio]
 *   --net user[,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=MAC]
 *   --net switch=NAME[,mac=MAC]     --net tap=IFNAME[,mac=MAC]
 *   --device rng
 *   --device console[,port=NAME[:SOCKETPATH]]...
 *   --device balloon[,deflate-on-oom=on][,free-page-reporting=on][,stats=SECONDS]
 *   --device vsock[,cid=N][,socket=PATH]
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { HostForward, NetBackendSpec, VirtioDeviceSpec } from '../machine/virtio-spec.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface KeyValues {
  /** The leading word without '=', if any (e.g. 'user' in 'user,hostfwd=...'). */
  readonly head: string | null;
  readonly pairs: readonly (readonly [string, string])[];
}

function parseList(option: string, text: string): KeyValues {
  if (text === '') throw new UsageError(`--${option} needs a value`);
  const items = text.split(',');
  let head: string | null = null;
  const pairs: [string, string][] = [];
  items.forEach((item, i) => {
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (i !== 0) throw new UsageError(`--${option}: '${item}' is not key=value`);
      head = item;
      return;
    }
    const key = item.slice(0, eq), value = item.slice(eq + 1);
    if (key === '') throw new UsageError(`--${option}: '${item}' has no key`);
    pairs.push([key, value]);
  });
  return { head, pairs };
}

class Keys {
  private readonly used = new Set<number>();
  constructor(private readonly option: string, private readonly kv: KeyValues) {}

  /** The value of a key given at most once, or undefined. */
  one(key: string): string | undefined {
    let found: string | undefined;
    this.kv.pairs.forEach(([k, v], i) => {
      if (k !== key) return;
      if (found !== undefined) throw new UsageError(`--${this.option}: ${key}= given twice`);
      found = v;
      this.used.add(i);
    });
    return found;
  }

  all(key: string): string[] {
    const out: string[] = [];
    this.kv.pairs.forEach(([k, v], i) => {
      if (k === key) { out.push(v); this.used.add(i); }
    });
    return out;
  }

  flag(key: string, dflt: boolean): boolean {
    const v = this.one(key);
    if (v === undefined) return dflt;
    if (v === 'on' || v === 'true' || v === 'yes') return true;
    if (v === 'off' || v === 'false' || v === 'no') return false;
    throw new UsageError(`--${this.option}: ${key}= must be on or off, got '${v}'`);
  }

  int(key: string, min: number, max: number, dflt: number): number {
    const v = this.one(key);
    if (v === undefined) return dflt;
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) {
      throw new UsageError(`--${this.option}: ${key}= must be a whole number from ${min} to ${max}, got '${v}'`);
    }
    return Number(v);
  }

  /** Refuses keys nobody asked for. */
  done(): void {
    this.kv.pairs.forEach(([k], i) => {
      if (!this.used.has(i)) throw new UsageError(`--${this.option}: unknown key '${k}'`);
    });
  }
}

export function parseDrive(text: string): VirtioDeviceSpec {
  const kv = parseList('drive', text);
  if (kv.head !== null) throw new UsageError(`--drive: '${kv.head}' is not key=value (try file=PATH)`);
  const k = new Keys('drive', kv);
  const path = k.one('file');
  if (path === undefined || path === '') throw new UsageError('--drive needs file=PATH');
  const format = k.one('format');
  if (format !== undefined && format !== 'raw') throw new UsageError(`--drive: only format=raw images are supported, got '${format}'`);
  const iface = k.one('if');
  if (iface !== undefined && iface !== 'virtio') throw new UsageError(`--drive: only if=virtio is supported, got '${iface}'`);
  const readonly = k.flag('readonly', false);
  const overlay = k.one('overlay');
  if (overlay === '') throw new UsageError('--drive: overlay= needs a path');
  const serial = k.one('serial') ?? '';
  if (Buffer.byteLength(serial) > 20) throw new UsageError('--drive: serial= is at most 20 bytes');
  k.done();
  return { kind: 'block', path, readonly, overlay: overlay ?? null, serial };
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** A stable locally administered MAC (52:54:00 prefix, QEMU's) for a VM's n-th network interface. */
export function defaultMac(vmName: string, index: number): string {
  const h = createHash('sha256').update(`${vmName}/net${index}`).digest();
  return ['52', '54', '00', h[0]!, h[1]!, h[2]!].map((b) => (typeof b === 'string' ? b : b.toString(16).padStart(2, '0'))).join(':');
}

function parsePort(s: string, what: string): number {
  if (!/^[0-9]+$/.test(s) || Number(s) > 65535) throw new UsageError(`--net: hostfwd ${what} port '${s}' is not 0..65535`);
  return Number(s);
}

/** QEMU's hostfwd=[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport. */
export function parseHostForward(text: string): HostForward {
  const m = /^(tcp|udp)?:([0-9.]*):([0-9]+)-([0-9.]*):([0-9]+)$/.exec(text);
  if (!m) throw new UsageError(`--net: hostfwd='${text}' is not [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`);
  const guestPort = parsePort(m[5]!, 'guest');
  if (guestPort === 0) throw new UsageError('--net: hostfwd guest port must not be 0');
  return {
    protocol: m[1] === 'udp' ? 'udp' : 'tcp',
    hostAddr: m[2]!, hostPort: parsePort(m[3]!, 'host'), guestAddr: m[4]!, guestPort,
  };
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const SWITCH_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function parseNet(text: string, vmName: string, index: number): VirtioDeviceSpec {
  const kv = parseList('net', text);
  const k = new Keys('net', kv);
  let backend: NetBackendSpec;
  if (kv.head === 'user') {
    backend = { kind: 'user', hostfwd: k.all('hostfwd').map(parseHostForward) };
  } else if (kv.head === null) {
    const sw = k.one('switch'), tap = k.one('tap');
    if ((sw === undefined) === (tap === undefined)) throw new UsageError('--net needs exactly one of user, switch=NAME or tap=IFNAME');
    if (sw !== undefined) {
      if (!SWITCH_NAME.test(sw)) throw new UsageError(`--net: switch name '${sw}' must be 1-64 letters, digits, '.', '_' or '-'`);
      backend = { kind: 'switch', name: sw };
    } else {
      if (!IFNAME.test(tap!)) throw new UsageError(`--net: '${tap!}' is not a network interface name`);
      backend = { kind: 'tap', ifname: tap! };
    }
  } else {
    throw new UsageError(`--net: unknown network '${kv.head}' (user, switch=NAME or tap=IFNAME)`);
  }
  const mac = (k.one('mac') ?? defaultMac(vmName, index)).toLowerCase();
  if (!MAC.test(mac)) throw new UsageError(`--net: mac '${mac}' is not xx:xx:xx:xx:xx:xx`);
  if (parseInt(mac.slice(0, 2), 16) & 1) throw new UsageError(`--net: mac ${mac} is a multicast address`);
  k.done();
  return { kind: 'net', mac, backend };
}

const PORT_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function parseDevice(text: string, vmName: string, runDir: () => string): VirtioDeviceSpec {
  const kv = parseList('device', text);
  const k = new Keys('device', kv);
  let spec: VirtioDeviceSpec;
  switch (kv.head) {
    case 'rng':
    case 'virtio-rng':
      spec = { kind: 'rng' };
      break;
    case 'console':
    case 'virtio-console': {
      const ports = k.all('port').map((p) => {
        const colon = p.indexOf(':');
        const name = colon < 0 ? p : p.slice(0, colon);
        if (!PORT_NAME.test(name)) throw new UsageError(`--device console: port name '${name}' must be 1-64 letters, digits, '.', '_' or '-'`);
        const socket = colon < 0 ? join(runDir(), `${vmName}.${name}.sock`) : p.slice(colon + 1);
        if (socket === '') throw new UsageError(`--device console: port ${name} has an empty socket path`);
        return { name, socket };
      });
      if (new Set(ports.map((p) => p.name)).size !== ports.length) throw new UsageError('--device console: two ports with one name');
      spec = { kind: 'console', ports };
      break;
    }
    case 'balloon':
    case 'virtio-balloon':
      spec = {
        kind: 'balloon',
        deflateOnOom: k.flag('deflate-on-oom', true),
        freePageReporting: k.flag('free-page-reporting', true),
        statsIntervalS: k.int('stats', 0, 3600, 1),
      };
      break;
    case 'vsock':
    case 'vhost-vsock': {
      const cid = k.int('cid', 3, 0xffffffff, 3);
      const socket = k.one('socket') ?? join(runDir(), `${vmName}.vsock`);
      if (socket === '') throw new UsageError('--device vsock: socket= needs a path');
      spec = { kind: 'vsock', cid, socket };
      break;
    }
    case null:
      throw new UsageError(`--device needs a device name first (rng, console, balloon or vsock), got '${text}'`);
    default:
      throw new UsageError(`--device: unknown device '${kv.head}' (rng, console, balloon or vsock)`);
  }
  k.done();
  return spec;
}
