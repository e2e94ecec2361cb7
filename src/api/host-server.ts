/**
 * The hypervisor's REST API (`disco serve`): every VM of the host on one Unix
 * socket (and optionally TCP with a bearer token), resources shaped like
 * Firecracker's under /vms/{id}. Requests are validated before anything
 * changes; errors are 4xx with {"fault_message"}. docs/api.md and
 * docs/openapi.json describe every path; GET /openapi.json serves the latter.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  ConfigError, parseBalloon, parseBootSource, parseDrive, parseEntropy, parseMachineConfig, parseNetworkInterface,
  parseSchedulingPatch, parseVmBody, parseVsock, checkConfig, onlyKeys, int, type VmConfig,
} from '../hypervisor/config.js';
import type { Hypervisor } from '../hypervisor/host.js';
import { renderMetrics } from '../hypervisor/metrics.js';
import { VmError, type Vm } from '../hypervisor/vm.js';
import { virtioSpecs } from '../hypervisor/config.js';
import { runDir } from '../host/paths.js';
import { translatorInfo } from './types.js';
import { ApiServerError, HttpError, methods, readJson, send, socketAlive } from './server.js';

const MiB = 1024 * 1024;

export type VmActionType = 'InstanceStart' | 'Pause' | 'Resume' | 'SendCtrlAltDel' | 'Shutdown' | 'Kill';
const ACTIONS: readonly VmActionType[] = ['InstanceStart', 'Pause', 'Resume', 'SendCtrlAltDel', 'Shutdown', 'Kill'];

/** GET /vms/{id}. */
export function vmInfo(h: Hypervisor, vm: Vm): Record<string, unknown> {
  const m = vm.memory();
  const mem = h.memory();
  const s = vm.schedStats();
  const c = vm.config;
  let devices: string[] = [];
  try { devices = virtioSpecs(c, runDir).map((d) => d.kind); } catch { /* shown in the config */ }
  const b = vm.counters.balloon;
  return {
    id: vm.id,
    state: vm.state,
    reason: vm.reason,
    boots: vm.boots,
    reboots: vm.reboots,
    machine_config: c.machine_config,
    boot_source: c.boot_source,
    drives: c.drives,
    network_interfaces: c.network_interfaces,
    balloon: c.balloon,
    vsock: c.vsock,
    entropy: c.entropy,
    memory: {
      mem_size_mib: c.machine_config.mem_size_mib,
      pages_touched: m.pagesTouched,
      frames_mapped: m.framesMapped,
      frames_deferred: m.framesDeferred,
      limit_frames: m.limitFrames,
      hart_frames: vm.hartFramesHeld(),
      pool_frames_free: mem.framesFree,
      pool_frames_in_use: mem.framesInUse,
    },
    cpu: {
      instructions: vm.counters.instructions,
      exits: vm.counters.exits,
      scheduler_state: s?.state ?? 'free',
      slices: s?.slices ?? 0,
      run_ms: Math.round(s?.runMs ?? 0),
      steal_ms: Math.round(s?.stealMs ?? 0),
      throttled_ms: Math.round(s?.throttledMs ?? 0),
      guest_steal_ns: vm.counters.stealNs,
      translator: translatorInfo(vm.counters.jit),
    },
    console: { bytes: vm.counters.consoleBytes, dropped_bytes: vm.counters.consoleDropped },
    balloon_device: b ? { amount_mib: b.targetPages * 4096 / MiB, actual_mib: b.actualPages * 4096 / MiB } : null,
    devices,
  };
}

function hostInfo(h: Hypervisor): Record<string, unknown> {
  const m = h.memory();
  return {
    vms: h.vms().length,
    running: h.vms().filter((v) => v.active).length,
    uptime_s: Math.round((Date.now() - h.startedAt) / 1000),
    memory: { pool_frames: m.poolFrames, pool_frames_free: m.framesFree, pool_frames_in_use: m.framesInUse, page_size: m.pageSize },
    scheduler: { run_tokens: h.scheduler.tokens, run_tokens_free: h.scheduler.freeTokens, slice_ms: h.scheduler.sliceMs },
  };
}

function openapiDocument(): string {
  return readFileSync(new URL('../../../docs/openapi.json', import.meta.url), 'utf8');
}

function needVm(h: Hypervisor, id: string): Vm {
  const vm = h.vm(id);
  if (!vm) throw new HttpError(404, `no VM named '${id}'`);
  return vm;
}

/** A change to a VM's configuration: validated, then only while the VM is stopped. */
function reconfigure(h: Hypervisor, vm: Vm, change: (c: VmConfig) => VmConfig): void {
  const next = change(vm.config);
  checkConfig(next);
  h.reconfigure(vm, next);
}

async function action(h: Hypervisor, vm: Vm, req: IncomingMessage): Promise<void> {
  const body = await readJson(req);
  onlyKeys(body, ['action_type']);
  const a = body['action_type'];
  if (typeof a !== 'string' || !(ACTIONS as readonly string[]).includes(a)) throw new HttpError(400, `'action_type' must be one of ${ACTIONS.join(', ')}`);
  switch (a as VmActionType) {
    case 'InstanceStart': await vm.start(); return;
    case 'Pause': vm.pause(); return;
    case 'Resume': vm.resume(); return;
    case 'SendCtrlAltDel':
    case 'Shutdown': await vm.shutdown(); return;
    case 'Kill': vm.kill(); return;
    default: {
      const never: never = a as never;
      throw new HttpError(400, `unknown action ${String(never)}`);
    }
  }
}

async function routeVm(h: Hypervisor, req: IncomingMessage, res: ServerResponse, id: string, rest: readonly string[]): Promise<void> {
  const sub = rest[0];
  if (sub === undefined) {
    methods(req, ['GET', 'PUT', 'DELETE']);
    if (req.method === 'PUT') {
      if (h.vm(id)) throw new HttpError(409, `a VM named '${id}' exists`);
      const body = await readJson(req).catch((e: unknown) => {
        if (e instanceof HttpError && e.message.startsWith('request body is empty')) return {};
        throw e;
      });
      const vm = h.create(parseVmBody(body, id));
      send(res, 201, vmInfo(h, vm));
      return;
    }
    const vm = needVm(h, id);
    if (req.method === 'DELETE') {
      await h.remove(vm.id);
      send(res, 204);
      return;
    }
    send(res, 200, vmInfo(h, vm));
    return;
  }
  const vm = needVm(h, id);
  const item = rest[1];
  if (rest.length > (sub === 'drives' || sub === 'network-interfaces' || sub === 'balloon' ? 2 : 1)) throw new HttpError(404, `no resource at ${req.url ?? ''}`);
  switch (sub) {
    case 'machine-config': {
      methods(req, ['GET', 'PUT', 'PATCH']);
      if (req.method === 'GET') { send(res, 200, vm.config.machine_config); return; }
      const body = await readJson(req);
      if (vm.active) {
        // Shares and cap change at run time; the rest needs a stopped VM.
        const mc = parseSchedulingPatch(body, vm.config.machine_config);
        vm.config = { ...vm.config, machine_config: mc };
        vm.reschedule();
      } else {
        const mc = parseMachineConfig(body, req.method === 'PATCH' ? vm.config.machine_config : null);
        reconfigure(h, vm, (c) => ({ ...c, machine_config: mc }));
      }
      send(res, 204);
      return;
    }
    case 'boot-source': {
      methods(req, ['GET', 'PUT']);
      if (req.method === 'GET') { send(res, 200, vm.config.boot_source); return; }
      const bs = parseBootSource(await readJson(req));
      reconfigure(h, vm, (c) => ({ ...c, boot_source: bs }));
      send(res, 204);
      return;
    }
    case 'drives': {
      if (item === undefined) { methods(req, ['GET']); send(res, 200, vm.config.drives); return; }
      methods(req, ['PUT', 'DELETE']);
      if (req.method === 'DELETE') {
        if (!vm.config.drives.some((d) => d.drive_id === item)) throw new HttpError(404, `VM '${vm.id}' has no drive '${item}'`);
        reconfigure(h, vm, (c) => ({ ...c, drives: c.drives.filter((d) => d.drive_id !== item) }));
      } else {
        const d = parseDrive(await readJson(req), item);
        reconfigure(h, vm, (c) => ({ ...c, drives: c.drives.some((x) => x.drive_id === item) ? c.drives.map((x) => (x.drive_id === item ? d : x)) : [...c.drives, d] }));
      }
      send(res, 204);
      return;
    }
    case 'network-interfaces': {
      if (item === undefined) { methods(req, ['GET']); send(res, 200, vm.config.network_interfaces); return; }
      methods(req, ['PUT', 'DELETE']);
      if (req.method === 'DELETE') {
        if (!vm.config.network_interfaces.some((n) => n.iface_id === item)) throw new HttpError(404, `VM '${vm.id}' has no network interface '${item}'`);
        reconfigure(h, vm, (c) => ({ ...c, network_interfaces: c.network_interfaces.filter((n) => n.iface_id !== item) }));
      } else {
        const n = parseNetworkInterface(await readJson(req), item);
        reconfigure(h, vm, (c) => ({
          ...c,
          network_interfaces: c.network_interfaces.some((x) => x.iface_id === item) ? c.network_interfaces.map((x) => (x.iface_id === item ? n : x)) : [...c.network_interfaces, n],
        }));
      }
      send(res, 204);
      return;
    }
    case 'balloon': {
      if (item === 'statistics') {
        methods(req, ['GET']);
        const b = vm.counters.balloon;
        if (!vm.config.balloon) throw new HttpError(400, `VM '${vm.id}' has no balloon device`);
        if (!b?.statistics) throw new HttpError(400, 'the guest has not reported statistics yet (is its balloon driver loaded?)');
        send(res, 200, b.statistics);
        return;
      }
      if (item !== undefined) throw new HttpError(404, `no resource at ${req.url ?? ''}`);
      methods(req, ['GET', 'PUT', 'PATCH']);
      const cfg = vm.config.balloon;
      if (req.method === 'GET') {
        if (!cfg) throw new HttpError(400, `VM '${vm.id}' has no balloon device`);
        const b = vm.counters.balloon;
        send(res, 200, {
          ...cfg,
          amount_mib: b ? (b.targetPages * 4096) / MiB : cfg.amount_mib,
          actual_mib: b ? (b.actualPages * 4096) / MiB : 0,
        });
        return;
      }
      const body = await readJson(req);
      if (req.method === 'PATCH') {
        if (!cfg) throw new HttpError(400, `VM '${vm.id}' has no balloon device`);
        onlyKeys(body, ['amount_mib']);
        const mib = int(body, 'amount_mib', 0, vm.config.machine_config.mem_size_mib);
        if (vm.active) vm.setBalloon(mib);
        vm.config = { ...vm.config, balloon: { ...cfg, amount_mib: mib } };
        send(res, 204);
        return;
      }
      const b = parseBalloon(body, vm.config.machine_config.mem_size_mib);
      reconfigure(h, vm, (c) => ({ ...c, balloon: b }));
      send(res, 204);
      return;
    }
    case 'vsock': {
      methods(req, ['GET', 'PUT', 'DELETE']);
      if (req.method === 'GET') { send(res, 200, vm.config.vsock); return; }
      if (req.method === 'DELETE') reconfigure(h, vm, (c) => ({ ...c, vsock: null }));
      else {
        const v = parseVsock(await readJson(req));
        reconfigure(h, vm, (c) => ({ ...c, vsock: v }));
      }
      send(res, 204);
      return;
    }
    case 'entropy': {
      methods(req, ['PUT', 'DELETE']);
      if (req.method === 'DELETE') reconfigure(h, vm, (c) => ({ ...c, entropy: false }));
      else {
        parseEntropy(await readJson(req).catch(() => ({})));
        reconfigure(h, vm, (c) => ({ ...c, entropy: true }));
      }
      send(res, 204);
      return;
    }
    case 'actions':
      methods(req, ['PUT']);
      await action(h, vm, req);
      send(res, 204);
      return;
    case 'state': {
      methods(req, ['GET', 'PATCH']);
      if (req.method === 'GET') { send(res, 200, { state: vm.state, reason: vm.reason }); return; }
      const body = await readJson(req);
      onlyKeys(body, ['state']);
      if (body['state'] === 'Paused') vm.pause();
      else if (body['state'] === 'Resumed') vm.resume();
      else throw new HttpError(400, "'state' must be Paused or Resumed");
      send(res, 204);
      return;
    }
    case 'console':
      // Without an upgrade: the recent output, as text.
      methods(req, ['GET']);
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(vm.consoleBacklog());
      return;
    default:
      throw new HttpError(404, `no resource at ${req.url ?? ''}`);
  }
}

async function route(h: Hypervisor, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://disco');
  const parts = url.pathname.split('/').filter((p) => p !== '').map((p) => decodeURIComponent(p));
  switch (parts[0]) {
    case 'vms':
      if (parts.length === 1) {
        methods(req, ['GET', 'POST']);
        if (req.method === 'POST') {
          const vm = h.create(parseVmBody(await readJson(req)));
          send(res, 201, vmInfo(h, vm));
          return;
        }
        send(res, 200, h.vms().map((vm) => ({ id: vm.id, state: vm.state })));
        return;
      }
      return routeVm(h, req, res, parts[1]!, parts.slice(2));
    case 'host':
      if (parts.length !== 1) break;
      methods(req, ['GET']);
      send(res, 200, hostInfo(h));
      return;
    case 'metrics':
      if (parts.length !== 1) break;
      methods(req, ['GET']);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(renderMetrics(h));
      return;
    case 'openapi.json':
      if (parts.length !== 1) break;
      methods(req, ['GET']);
      res.writeHead(200, { 'content-type': 'application/json' }).end(openapiDocument());
      return;
    case 'events': {
      if (parts.length !== 1) break;
      methods(req, ['GET']);
      const only = url.searchParams.get('vm');
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
      // The current states first, so a client needs no separate snapshot.
      for (const vm of h.vms()) {
        if (only === null || only === vm.id) res.write(`${JSON.stringify({ type: 'state', vm: vm.id, state: vm.state, reason: vm.reason, seq: 0, time: new Date().toISOString() })}\n`);
      }
      const off = h.subscribe((e) => {
        if (only !== null && e.vm !== only) return;
        // A client that does not read is dropped rather than buffered without bound.
        if (res.writableLength > 1024 * 1024) { res.destroy(); return; }
        res.write(`${JSON.stringify(e)}\n`);
      });
      res.on('close', off);
      return;
    }
    default:
      break;
  }
  throw new HttpError(404, `no resource at ${url.pathname}`);
}

function errorStatus(e: unknown): { status: number; message: string } {
  if (e instanceof HttpError) return { status: e.status, message: e.message };
  if (e instanceof ConfigError) return { status: 400, message: e.message };
  if (e instanceof VmError) return { status: e.status, message: e.message };
  return { status: 500, message: e instanceof Error ? e.message : String(e) };
}

/** `Connection: Upgrade` to GET /vms/{id}/console: the raw console both ways (`Upgrade: tcp`) or a WebSocket. */
function upgrade(h: Hypervisor, req: IncomingMessage, socket: Duplex, head: Buffer, authorized: (req: IncomingMessage) => boolean): void {
  const refuse = (status: number, message: string): void => {
    const body = JSON.stringify({ fault_message: message });
    socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  };
  if (!authorized(req)) { refuse(401, 'a bearer token is required'); return; }
  const url = new URL(req.url ?? '/', 'http://disco');
  const m = /^\/vms\/([^/]+)\/console$/.exec(url.pathname);
  if (!m || req.method !== 'GET') { refuse(404, `no console at ${url.pathname}`); return; }
  const vm = h.vm(decodeURIComponent(m[1]!));
  if (!vm) { refuse(404, `no VM named '${decodeURIComponent(m[1]!)}'`); return; }
  const proto = (req.headers.upgrade ?? '').toLowerCase();
  const backlog = url.searchParams.get('backlog') !== '0';
  if (proto === 'websocket') {
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string') { refuse(400, 'Sec-WebSocket-Key is missing'); return; }
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    attachWebSocket(vm, socket, head, backlog);
    return;
  }
  if (proto !== 'tcp' && proto !== 'disco-console') { refuse(400, "Upgrade must be 'tcp' (raw bytes) or 'websocket'"); return; }
  socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n');
  if (head.length > 0) vm.input(new Uint8Array(head));
  const off = vm.attachConsole((b) => {
    // A reader that falls behind loses output rather than growing the host's memory.
    if (socket.writableLength < 1024 * 1024) socket.write(b);
  }, backlog);
  socket.on('data', (d: Buffer) => vm.input(new Uint8Array(d)));
  socket.on('end', () => socket.end());
  socket.on('close', off);
  socket.on('error', off);
}

/** RFC 6455 framing, server side: binary frames out, masked frames in (text or binary = console input). */
function attachWebSocket(vm: Vm, socket: Duplex, head: Buffer, backlog: boolean): void {
  const frame = (opcode: number, payload: Uint8Array): Buffer => {
    const n = payload.length;
    const hdr = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255]) : (() => {
      const b = Buffer.alloc(10);
      b[0] = 0x80 | opcode; b[1] = 127; b.writeBigUInt64BE(BigInt(n), 2);
      return b;
    })();
    return Buffer.concat([hdr, payload]);
  };
  const off = vm.attachConsole((b) => { if (socket.writableLength < 1024 * 1024) socket.write(frame(2, b)); }, backlog);
  let buf = head;
  const onData = (d: Buffer): void => {
    buf = buf.length ? Buffer.concat([buf, d]) : d;
    for (;;) {
      if (buf.length < 2) return;
      const opcode = buf[0]! & 0x0f;
      const masked = (buf[1]! & 0x80) !== 0;
      let len = buf[1]! & 0x7f;
      let o = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); o = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); o = 10; }
      if (len > 1024 * 1024 || !masked) { socket.destroy(); return; }
      if (buf.length < o + 4 + len) return;
      const mask = buf.subarray(o, o + 4);
      const payload = Buffer.from(buf.subarray(o + 4, o + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
      buf = buf.subarray(o + 4 + len);
      switch (opcode) {
        case 1: case 2: case 0: vm.input(new Uint8Array(payload)); break;
        case 8: socket.end(frame(8, new Uint8Array(0))); return;
        case 9: socket.write(frame(10, payload)); break;
        default: break;
      }
    }
  };
  socket.on('data', onData);
  if (head.length) { buf = Buffer.alloc(0); onData(head); }
  socket.on('close', off);
  socket.on('error', off);
}

export interface HostApiOptions {
  /** The Unix socket to serve on. */
  readonly socketPath: string;
  /** Also serve on TCP (host, port); requires `token`. */
  readonly tcp?: { readonly host: string; readonly port: number } | null;
  /** Bearer token required on TCP (the Unix socket relies on its 0700 directory). */
  readonly token?: string | null;
}

export interface HostApi {
  readonly servers: readonly Server[];
  /** The TCP port actually bound (0 if none). */
  readonly tcpPort: number;
  close(): Promise<void>;
}

export async function startHostApi(h: Hypervisor, opts: HostApiOptions): Promise<HostApi> {
  if (await socketAlive(opts.socketPath)) throw new ApiServerError(`${opts.socketPath} is already served by another Disco process`);
  try { unlinkSync(opts.socketPath); } catch { /* no stale socket */ }
  const make = (needToken: boolean): Server => {
    const expected = opts.token ? Buffer.from(`Bearer ${opts.token}`) : null;
    const authorized = (req: IncomingMessage): boolean => {
      if (!needToken) return true;
      const got = Buffer.from(req.headers.authorization ?? '');
      return expected !== null && got.length === expected.length && timingSafeEqual(got, expected);
    };
    const server = createServer((req, res) => {
      if (!authorized(req)) {
        req.resume();
        send(res, 401, { fault_message: 'a bearer token is required (Authorization: Bearer TOKEN)' });
        return;
      }
      route(h, req, res).catch((e: unknown) => {
        const { status, message } = errorStatus(e);
        if (status >= 500) h.log(`API ${req.method ?? '?'} ${req.url ?? ''}: ${message}`);
        if (!res.headersSent) send(res, status, { fault_message: message });
        else res.destroy();
      });
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(h, req, socket, head, authorized));
    return server;
  };
  const servers: Server[] = [];
  const unix = make(false);
  await new Promise<void>((resolve, reject) => {
    unix.once('error', (e) => reject(new ApiServerError(`cannot listen on ${opts.socketPath}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    unix.listen(opts.socketPath, () => resolve());
  });
  servers.push(unix);
  let tcpPort = 0;
  if (opts.tcp) {
    if (!opts.token) throw new ApiServerError('the TCP API needs a bearer token');
    const tcp = make(true);
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', (e) => reject(new ApiServerError(`cannot listen on ${opts.tcp!.host}:${opts.tcp!.port}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
      tcp.listen(opts.tcp!.port, opts.tcp!.host, () => resolve());
    });
    const a = tcp.address();
    tcpPort = typeof a === 'object' && a ? a.port : 0;
    servers.push(tcp);
  }
  return {
    servers, tcpPort,
    close: async () => {
      for (const s of servers) s.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      try { unlinkSync(opts.socketPath); } catch { /* gone */ }
    },
  };
}
