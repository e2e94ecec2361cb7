/**
 * `disco serve`: the hypervisor. VMs are created and driven through its API
 * (docs/api.md) on a Unix socket, by `disco vm ...` or any HTTP client.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startHostApi } from '../api/host-server.js';
import { runDir } from '../host/paths.js';
import { Hypervisor } from '../hypervisor/host.js';
import { MAX_POOL_BYTES } from '../memory/machine-memory.js';
import { UsageError } from './device-options.js';

export const SERVE_USAGE = `usage: disco serve [options]

  --socket PATH        the API's Unix socket (default RUNDIR/disco.sock)
  --pool MiB           the machine-memory pool every VM draws its frames from (default 2048, at most 4095)
  --threads N          host threads that run guest code at once (default: the host's cores)
  --slice-ms N         the scheduler's time slice (default 10)
  --console-rate KiB   console output a VM may send per second before it is dropped (default 1024)
  --tcp HOST:PORT      also serve the API on TCP; needs --token-file or $DISCO_TOKEN
  --token-file FILE    the bearer token TCP clients must send (Authorization: Bearer TOKEN)

SIGTERM or SIGINT powers every VM off and ends the host.
`;

function whole(v: string | undefined, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got '${v}'`);
  return Number(v);
}

export async function cmdServe(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      socket: { type: 'string' }, pool: { type: 'string' }, threads: { type: 'string' }, 'slice-ms': { type: 'string' },
      'console-rate': { type: 'string' }, tcp: { type: 'string' }, 'token-file': { type: 'string' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { process.stdout.write(SERVE_USAGE); return 0; }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]!}'`);
  const poolMib = whole(values.pool, 'pool', 64, Math.floor(MAX_POOL_BYTES / (1024 * 1024)), 2048);
  const threads = values.threads === undefined ? undefined : whole(values.threads, 'threads', 1, 256, 1);
  const sliceMs = whole(values['slice-ms'], 'slice-ms', 1, 1000, 10);
  const consoleRate = whole(values['console-rate'], 'console-rate', 1, 1024 * 1024, 1024) * 1024;
  let tcp: { host: string; port: number } | null = null;
  let token: string | null = null;
  if (values.tcp !== undefined) {
    const m = /^(.*):([0-9]+)$/.exec(values.tcp);
    if (!m || Number(m[2]) > 65535) throw new UsageError(`--tcp must be HOST:PORT, got '${values.tcp}'`);
    tcp = { host: m[1] === '' ? '127.0.0.1' : m[1]!, port: Number(m[2]) };
    if (values['token-file'] !== undefined) {
      try { token = readFileSync(values['token-file'], 'utf8').trim(); } catch (e) { throw new UsageError(`cannot read --token-file ${values['token-file']}: ${(e as NodeJS.ErrnoException).code ?? ''}`); }
    } else token = process.env['DISCO_TOKEN'] ?? null;
    if (!token) throw new UsageError('--tcp needs a bearer token: --token-file FILE or $DISCO_TOKEN');
  } else if (values['token-file'] !== undefined) throw new UsageError('--token-file applies to --tcp');
  const socketPath = values.socket ?? join(runDir(), 'disco.sock');
  const log = (l: string): void => { process.stderr.write(`disco: ${l}\n`); };
  const hv = new Hypervisor({ poolMib, ...(threads !== undefined ? { threads } : {}), sliceMs, consoleRateBytes: consoleRate, log });
  hv.subscribe((e) => {
    if (e.type === 'state') log(`${e.vm}: ${e.state}${e.reason ? ` (${e.reason})` : ''}`);
  });
  const api = await startHostApi(hv, { socketPath, tcp, token });
  log(`serving on ${socketPath}${tcp ? ` and ${tcp.host}:${api.tcpPort}` : ''}; pool ${poolMib} MiB, ${hv.scheduler.tokens} run token(s)`);
  await new Promise<void>((resolve) => {
    const stop = (): void => { process.off('SIGTERM', stop); process.off('SIGINT', stop); resolve(); };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  log('stopping: powering off every VM');
  await hv.close();
  await api.close();
  return 0;
}
