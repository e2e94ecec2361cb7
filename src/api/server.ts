/**
 * The REST API over a Unix socket (node:http). Requests are validated before
 * anything changes; a bad request gets a 4xx with `{"fault_message": "..."}`
 * (Firecracker's error shape) and changes nothing.
 *
 *   GET   /vms                          list
 *   GET   /vms/{id}                     state, machine config, memory use
 *   GET   /vms/{id}/balloon             target, actual, options
 *   PATCH /vms/{id}/balloon             {"amount_mib": N}
 *   GET   /vms/{id}/balloon/statistics  the guest's memory statistics
 *   PUT   /vms/{id}/actions             {"action_type": "Shutdown" | "Kill"}
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { unlinkSync } from 'node:fs';
import type { ApiHost, ApiVm, VmAction } from './types.js';

const MAX_BODY = 64 * 1024;

export class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

export function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body is larger than ${MAX_BODY} bytes`);
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new HttpError(400, 'request body is empty; a JSON object is expected');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `request body is not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new HttpError(400, 'request body must be a JSON object');
  return v as Record<string, unknown>;
}

function onlyKeys(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw new HttpError(400, `unknown field '${k}' (expected ${allowed.join(', ')})`);
  }
}

function wholeNumber(body: Record<string, unknown>, key: string, max: number): number {
  const v = body[key];
  if (v === undefined) throw new HttpError(400, `missing field '${key}'`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw new HttpError(400, `'${key}' must be a whole number from 0 to ${max}`);
  return v;
}

export function methods(req: IncomingMessage, allowed: readonly string[]): void {
  if (!allowed.includes(req.method ?? '')) throw new HttpError(405, `${req.method ?? '?'} is not allowed here (${allowed.join(', ')})`);
}

async function route(host: ApiHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://disco');
  const parts = url.pathname.split('/').filter((p) => p !== '').map((p) => decodeURIComponent(p));
  if (parts[0] !== 'vms') throw new HttpError(404, `no resource at ${url.pathname}`);
  if (parts.length === 1) {
    methods(req, ['GET']);
    send(res, 200, host.vms().map((vm) => ({ id: vm.id, state: vm.info().state })));
    return;
  }
  const vm: ApiVm | undefined = host.vm(parts[1]!);
  if (!vm) throw new HttpError(404, `no VM named '${parts[1]!}'`);
  const rest = parts.slice(2).join('/');
  switch (rest) {
    case '':
      methods(req, ['GET']);
      send(res, 200, vm.info());
      return;
    case 'balloon': {
      methods(req, ['GET', 'PATCH']);
      const b = vm.balloon();
      if (!b) throw new HttpError(400, `VM '${vm.id}' has no balloon device (start it with --device balloon)`);
      if (req.method === 'GET') {
        send(res, 200, b.info());
        return;
      }
      const body = await readJson(req);
      onlyKeys(body, ['amount_mib']);
      const mib = wholeNumber(body, 'amount_mib', vm.info().machine_config.mem_size_mib);
      b.setTargetMib(mib);
      send(res, 204);
      return;
    }
    case 'balloon/statistics': {
      methods(req, ['GET']);
      const b = vm.balloon();
      if (!b) throw new HttpError(400, `VM '${vm.id}' has no balloon device (start it with --device balloon)`);
      const s = b.statistics();
      if (!s) throw new HttpError(400, 'the guest has not reported statistics yet (is its balloon driver loaded?)');
      send(res, 200, s);
      return;
    }
    case 'actions': {
      methods(req, ['PUT']);
      const body = await readJson(req);
      onlyKeys(body, ['action_type']);
      const a = body['action_type'];
      const actions: readonly VmAction[] = ['Shutdown', 'Kill'];
      if (typeof a !== 'string' || !(actions as readonly string[]).includes(a)) {
        throw new HttpError(400, `'action_type' must be one of ${actions.join(', ')}`);
      }
      vm.action(a as VmAction);
      send(res, 204);
      return;
    }
    default:
      throw new HttpError(404, `no resource at ${url.pathname}`);
  }
}

/** True if something answers on the Unix socket at `path`. */
export function socketAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export class ApiServerError extends Error {
  override readonly name = 'ApiServerError';
}

/**
 * Serves `host` on the Unix socket `path` (mode 0600 through the run
 * directory's 0700). A stale socket file is replaced; a live one means another
 * host already serves there.
 */
export async function startApiServer(path: string, host: ApiHost): Promise<Server> {
  if (await socketAlive(path)) throw new ApiServerError(`${path} is already served by another Disco process`);
  try { unlinkSync(path); } catch { /* no stale socket */ }
  const server = createServer((req, res) => {
    route(host, req, res).catch((e: unknown) => {
      if (e instanceof HttpError) send(res, e.status, { fault_message: e.message });
      else send(res, 500, { fault_message: e instanceof Error ? e.message : String(e) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new ApiServerError(`cannot listen on ${path}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)));
    server.listen(path, () => resolve());
  });
  server.on('close', () => { try { unlinkSync(path); } catch { /* already gone */ } });
  return server;
}
