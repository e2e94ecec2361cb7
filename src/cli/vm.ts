/**
 * `disco vm ...`: a client of the API. A VM started by `disco run --name NAME`
 * serves its API on `${runDir}/NAME.sock`; `--socket PATH` names another host.
 */
import { request } from 'node:http';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runDir } from '../host/paths.js';
import { UsageError } from './device-options.js';

export class ClientError extends Error {
  override readonly name = 'ClientError';
}

const USAGE = `usage: disco vm <command> [--socket PATH] ...

  ls                      the VMs that answer in the run directory
  stats NAME              state, memory use (pages touched, frames held, pool), devices, balloon
  balloon NAME MIB        set the balloon target: the guest gives back MIB of its RAM (0 deflates)
  shutdown NAME           ask the guest to shut down (power button)
  kill NAME               power the VM off at once

--socket PATH: the API socket (default: RUNDIR/NAME.sock, RUNDIR = $DISCO_RUN_DIR,
$XDG_RUNTIME_DIR/disco or /tmp/disco-UID).
`;

interface Reply { status: number; body: unknown }

function call(socketPath: string, method: string, path: string, body?: unknown): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request({
      socketPath, method, path,
      headers: text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = null;
        try { parsed = raw === '' ? null : JSON.parse(raw); } catch { parsed = raw; }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      reject(new ClientError(e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? `nothing answers at ${socketPath} (is the VM running?)`
        : `${socketPath}: ${e.code ?? e.message}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.end(text);
  });
}

function check(r: Reply): unknown {
  if (r.status >= 200 && r.status < 300) return r.body;
  const msg = typeof r.body === 'object' && r.body !== null && 'fault_message' in r.body
    ? String((r.body as { fault_message: unknown }).fault_message) : JSON.stringify(r.body);
  throw new ClientError(msg);
}

export async function cmdVm(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: { socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  const [sub, name, ...rest] = positionals;
  if (values.help || sub === undefined) {
    process.stdout.write(USAGE);
    return values.help ? 0 : 2;
  }
  const socketFor = (n: string | undefined): string => {
    if (values.socket !== undefined) return values.socket;
    if (n === undefined) throw new UsageError(`disco vm ${sub} needs a VM name`);
    return join(runDir(), `${n}.sock`);
  };
  const id = (n: string | undefined): string => encodeURIComponent(n ?? '');
  const noMore = (): void => { if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]!}'`); };
  switch (sub) {
    case 'ls': {
      if (name !== undefined) throw new UsageError(`unexpected argument '${name}'`);
      const sockets = values.socket !== undefined ? [values.socket]
        : readdirSync(runDir()).filter((f) => f.endsWith('.sock') && !f.startsWith('switch-')).map((f) => join(runDir(), f));
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
    case 'shutdown':
    case 'kill':
      noMore();
      check(await call(socketFor(name), 'PUT', `/vms/${id(name)}/actions`, { action_type: sub === 'kill' ? 'Kill' : 'Shutdown' }));
      return 0;
    default:
      throw new UsageError(`unknown vm command '${sub}' (try disco vm --help)`);
  }
}
