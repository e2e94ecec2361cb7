/**
 * `disco vm ...`: a client of the API. A VM started by `disco run --name NAME`
 * serves its API on `${runDir}/NAME.sock`; `--socket PATH` names another host.
 */
import { request } from 'node:http';
import { existsSync, readdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { apiRequest, ApiTimeout, type ApiReply } from '../api/client.js';
import { runDir, VM_NAME_PATTERN } from '../host/paths.js';
import { REBOOT_POLICIES, resourcesOf, type RebootPolicy } from '../hypervisor/config.js';
import type { VirtioDeviceSpec } from '../machine/virtio-spec.js';
import { parseDevice, parseDrive, parseNet, UsageError } from './device-options.js';
import { cmdExec } from './exec.js';

export class ClientError extends Error {
  override readonly name = 'ClientError';
}

const USAGE = `usage: disco vm <command> [--socket PATH] ...

against a host (disco serve):
  create NAME [--memory MiB] [--cpus N] [--shares N] [--cap PCT] [--mem-limit MiB] [--on-reboot restart|stop]
              [--kernel FILE] [--initrd FILE] [--append STRING]
              [--drive ...] [--net ...] [--device rng|balloon[,...]|vsock[,...]] [--start]
                          configure a VM (options as for disco run); --start boots it
  start NAME              boot a created or stopped VM
  pause NAME / resume NAME  stop / continue running its vCPUs
  set NAME [--shares N] [--cap PCT] [--on-reboot restart|stop]
                          change its CPU weight, cap or reboot policy (also while it runs)
  rm NAME [--force]       delete a stopped VM (--force kills it first)
  console NAME            attach to its console (C-a d or C-a x detaches, C-a s shuts down)
  exec NAME -- CMD [ARG...]  run a command through its guest agent (needs --device vsock)
  events                  follow the host's events (one JSON object a line)
  host                    the host: memory pool, run tokens

against a host or a disco run VM:
  ls                      the VMs that answer in the run directory
  stats NAME              state, memory (pages touched, frames held, pool), CPU, devices, balloon
  balloon NAME MIB        set the balloon target: the guest gives back MIB of its RAM (0 deflates)
  shutdown NAME           ask the guest to shut down (power button)
  kill NAME               power the VM off at once

--socket PATH: the API socket. Default: $DISCO_SOCKET, else RUNDIR/NAME.sock when a disco run VM
serves there, else the host's RUNDIR/disco.sock (RUNDIR = $DISCO_RUN_DIR, $XDG_RUNTIME_DIR/disco
or /tmp/disco-UID).
`;

type Reply = ApiReply;

async function call(socketPath: string, method: string, path: string, body?: unknown, timeoutMs = 10_000): Promise<Reply> {
  try {
    return await apiRequest(socketPath, method, path, { body, timeoutMs });
  } catch (e) {
    if (e instanceof ApiTimeout) throw new ClientError(e.message);
    const code = (e as NodeJS.ErrnoException).code;
    throw new ClientError(code === 'ENOENT' || code === 'ECONNREFUSED'
      ? `nothing answers at ${socketPath} (is disco serve, or the VM, running?)`
      : `${socketPath}: ${code ?? (e as Error).message}`);
  }
}

function check(r: Pick<Reply, 'status' | 'body'>): unknown {
  if (r.status >= 200 && r.status < 300) return r.body;
  const msg = typeof r.body === 'object' && r.body !== null && 'fault_message' in r.body
    ? String((r.body as { fault_message: unknown }).fault_message) : JSON.stringify(r.body);
  throw new ClientError(msg);
}

const hostSocket = (): string => process.env['DISCO_SOCKET'] ?? join(runDir(), 'disco.sock');

function rebootArg(v: string | undefined): RebootPolicy | undefined {
  if (v === undefined) return undefined;
  const p = REBOOT_POLICIES.find((x) => x === v);
  if (p === undefined) throw new UsageError(`--on-reboot takes ${REBOOT_POLICIES.join(' or ')}, got '${v}'`);
  return p;
}

function intArg(v: string | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got '${v}'`);
  return Number(v);
}

export async function cmdVm(argv: string[]): Promise<number> {
  const [sub0] = argv;
  if (sub0 === 'exec') return cmdExec(argv.slice(1));
  if (sub0 === 'create') return cmdCreate(argv.slice(1));
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      socket: { type: 'string' }, help: { type: 'boolean', short: 'h' }, force: { type: 'boolean' },
      shares: { type: 'string' }, cap: { type: 'string' }, 'on-reboot': { type: 'string' },
    },
  });
  const [sub, name, ...rest] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const socketFor = (n: string | undefined): string => {
    if (values.socket !== undefined) return values.socket;
    if (process.env['DISCO_SOCKET']) return process.env['DISCO_SOCKET'];
    if (n === undefined) throw new UsageError(`disco vm ${sub} needs a VM name`);
    const own = join(runDir(), `${n}.sock`);
    return existsSync(own) ? own : hostSocket();
  };
  const id = (n: string | undefined): string => {
    if (n === undefined) throw new UsageError(`disco vm ${sub} needs a VM name`);
    return encodeURIComponent(n);
  };
  const noMore = (): void => { if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]!}'`); };
  const act = async (action: string): Promise<number> => {
    noMore();
    check(await call(socketFor(name), 'PUT', `/vms/${id(name)}/actions`, { action_type: action }, 180_000));
    return 0;
  };
  switch (sub) {
    case 'ls': {
      if (name !== undefined) throw new UsageError(`unexpected argument '${name}'`);
      const sockets = values.socket !== undefined ? [values.socket]
        : [...new Set([...(process.env['DISCO_SOCKET'] ? [process.env['DISCO_SOCKET']] : []),
          ...readdirSync(runDir()).filter((f) => f.endsWith('.sock') && !f.startsWith('switch-')).map((f) => join(runDir(), f))])];
      const rows: string[] = [];
      for (const s of sockets) {
        try {
          const vms = check(await call(s, 'GET', '/vms')) as { id: string; state: string }[];
          for (const v of vms) rows.push(`${v.id}\t${v.state}`);
        } catch { /* a socket that does not answer is not a VM host */ }
      }
      process.stdout.write(rows.length ? `NAME\tSTATE\n${rows.join('\n')}\n` : '');
      return 0;
    }
    case 'stats': {
      noMore();
      const info = check(await call(socketFor(name), 'GET', `/vms/${id(name)}`));
      const balloon = await call(socketFor(name), 'GET', `/vms/${id(name)}/balloon`);
      const stats = await call(socketFor(name), 'GET', `/vms/${id(name)}/balloon/statistics`);
      const out: Record<string, unknown> = { ...(info as Record<string, unknown>) };
      if (balloon.status === 200) out['balloon'] = balloon.body;
      if (stats.status === 200) out['balloon_statistics'] = stats.body;
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      return 0;
    }
    case 'balloon': {
      const [mib, ...more] = rest;
      if (more.length > 0) throw new UsageError(`unexpected argument '${more[0]!}'`);
      if (mib === undefined || !/^[0-9]+$/.test(mib)) throw new UsageError('disco vm balloon NAME MIB needs a whole number of MiB');
      check(await call(socketFor(name), 'PATCH', `/vms/${id(name)}/balloon`, { amount_mib: Number(mib) }));
      return 0;
    }
    case 'shutdown': return act('Shutdown');
    case 'kill': return act('Kill');
    case 'start': return act('InstanceStart');
    case 'pause': return act('Pause');
    case 'resume': return act('Resume');
    case 'set': {
      noMore();
      const shares = intArg(values.shares, 'shares', 1, 10_000);
      const cap = intArg(values.cap, 'cap', 0, 800);
      const onReboot = rebootArg(values['on-reboot']);
      if (shares === undefined && cap === undefined && onReboot === undefined) throw new UsageError('disco vm set NAME needs --shares N, --cap PCT or --on-reboot restart|stop');
      check(await call(socketFor(name), 'PATCH', `/vms/${id(name)}/machine-config`, {
        ...(shares !== undefined ? { shares } : {}), ...(cap !== undefined ? { cap_percent: cap } : {}), ...(onReboot !== undefined ? { on_reboot: onReboot } : {}),
      }));
      return 0;
    }
    case 'rm': {
      noMore();
      const sock = socketFor(name);
      if (values.force) {
        const r = await call(sock, 'PUT', `/vms/${id(name)}/actions`, { action_type: 'Kill' });
        if (r.status === 204) {
          // Wait until the VM's thread has stopped.
          for (let i = 0; i < 100; i++) {
            const st = check(await call(sock, 'GET', `/vms/${id(name)}`)) as { state: string };
            if (st.state === 'stopped' || st.state === 'failed') break;
            await new Promise((r2) => setTimeout(r2, 100));
          }
        }
      }
      check(await call(sock, 'DELETE', `/vms/${id(name)}`));
      return 0;
    }
    case 'host': {
      if (name !== undefined) throw new UsageError(`unexpected argument '${name}'`);
      process.stdout.write(`${JSON.stringify(check(await call(values.socket ?? hostSocket(), 'GET', '/host')), null, 2)}\n`);
      return 0;
    }
    case 'events': {
      if (name !== undefined && rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]!}'`);
      return followEvents(values.socket ?? hostSocket(), name);
    }
    case 'console':
      noMore();
      return attachConsole(socketFor(name), id(name));
    default:
      throw new UsageError(`unknown vm command '${sub}' (try disco vm --help)`);
  }
}

async function cmdCreate(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      socket: { type: 'string' }, memory: { type: 'string' }, cpus: { type: 'string' }, shares: { type: 'string' }, cap: { type: 'string' }, 'on-reboot': { type: 'string' },
      'mem-limit': { type: 'string' }, kernel: { type: 'string' }, initrd: { type: 'string' }, append: { type: 'string' },
      drive: { type: 'string', multiple: true }, net: { type: 'string', multiple: true }, device: { type: 'string', multiple: true },
      start: { type: 'boolean' },
    },
  });
  const [name, ...more] = positionals;
  if (name === undefined) throw new UsageError('disco vm create needs a VM name');
  if (more.length > 0) throw new UsageError(`unexpected argument '${more[0]!}'`);
  if (!VM_NAME_PATTERN.test(name)) throw new UsageError(`VM name '${name}' must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  const specs: VirtioDeviceSpec[] = [
    ...(values.drive ?? []).map(parseDrive),
    ...(values.net ?? []).map((n, i) => parseNet(n, name, i)),
    ...(values.device ?? []).map((d) => parseDevice(d, name, runDir)),
  ];
  const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : resolve(p));
  const mc: Record<string, number | string> = {};
  const put = (k: string, v: number | string | undefined): void => { if (v !== undefined) mc[k] = v; };
  put('mem_size_mib', intArg(values.memory, 'memory', 64, 3072) ?? 256);
  put('vcpu_count', intArg(values.cpus, 'cpus', 1, 8) ?? 1);
  put('shares', intArg(values.shares, 'shares', 1, 10_000));
  put('cap_percent', intArg(values.cap, 'cap', 0, 800));
  put('mem_limit_mib', intArg(values['mem-limit'], 'mem-limit', 16, 3072));
  put('on_reboot', rebootArg(values['on-reboot']));
  const boot: Record<string, string> = {};
  if (values.kernel !== undefined) boot['kernel_image_path'] = abs(values.kernel)!;
  if (values.initrd !== undefined) boot['initrd_path'] = abs(values.initrd)!;
  if (values.append !== undefined) boot['boot_args'] = values.append;
  const res = resourcesOf(specs.map((s) => (s.kind === 'block' ? { ...s, path: resolve(s.path), overlay: s.overlay === null ? null : resolve(s.overlay) } : s)));
  const sock = values.socket ?? hostSocket();
  check(await call(sock, 'POST', '/vms', { id: name, machine_config: mc, ...(Object.keys(boot).length ? { boot_source: boot } : {}), ...res }));
  if (values.start) check(await call(sock, 'PUT', `/vms/${encodeURIComponent(name)}/actions`, { action_type: 'InstanceStart' }, 180_000));
  return 0;
}

function followEvents(socketPath: string, vm: string | undefined): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, method: 'GET', path: `/events${vm ? `?vm=${encodeURIComponent(vm)}` : ''}` }, (res) => {
      if (res.statusCode !== 200) { reject(new ClientError(`events: HTTP ${res.statusCode ?? 0}`)); return; }
      res.pipe(process.stdout);
      res.on('end', () => resolvePromise(0));
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(new ClientError(`nothing answers at ${socketPath} (${e.code ?? e.message})`)));
    req.end();
  });
}

/** The console over an upgraded connection; C-a d / C-a x detach, C-a s asks the guest to shut down. */
function attachConsole(socketPath: string, id: string): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, method: 'GET', path: `/vms/${id}/console`, headers: { connection: 'Upgrade', upgrade: 'tcp' } });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try { check({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }); } catch (e) { reject(e); return; }
        reject(new ClientError(`console: HTTP ${res.statusCode ?? 0}`));
      });
    });
    req.on('upgrade', (_res, socket: Socket, head: Buffer) => {
      if (head.length) process.stdout.write(head);
      const stdin = process.stdin;
      const tty = Boolean(stdin.isTTY);
      let escape = false;
      const done = (): void => {
        if (tty) stdin.setRawMode(false);
        stdin.off('data', onData);
        stdin.pause();
        socket.destroy();
        resolvePromise(0);
      };
      const onData = (chunk: Buffer): void => {
        if (!tty) { socket.write(chunk); return; }
        const out: number[] = [];
        for (const b of chunk) {
          if (escape) {
            escape = false;
            if (b === 0x64 || b === 0x78) { process.stderr.write('\r\ndisco: detached\r\n'); done(); return; }
            if (b === 0x73) { void call(socketPath, 'PUT', `/vms/${id}/actions`, { action_type: 'Shutdown' }).catch(() => undefined); continue; }
            out.push(b);
          } else if (b === 0x01) escape = true;
          else out.push(b);
        }
        if (out.length) socket.write(Buffer.from(out));
      };
      if (tty) stdin.setRawMode(true);
      stdin.on('data', onData);
      stdin.on('end', () => { if (!tty) socket.end(); });
      stdin.resume();
      socket.pipe(process.stdout, { end: false });
      socket.on('close', done);
    });
    req.on('error', (e: NodeJS.ErrnoException) => reject(new ClientError(`nothing answers at ${socketPath} (${e.code ?? e.message})`)));
    req.end();
  });
}
