/**
 * The client side of the JSON API over a Unix socket: one request, the reply's
 * status, its body parsed as JSON when it is JSON, and its text. Used by the
 * `disco vm` commands and by the host's tests and benches.
 */
import { request } from 'node:http';

export interface ApiReply {
  readonly status: number;
  /** The body as JSON, its text when it is not JSON, null when empty. */
  readonly body: unknown;
  readonly text: string;
}

/** No reply within the time allowed. */
export class ApiTimeout extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms / 1000} s`);
  }
}

export interface ApiRequestOptions {
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as is, as application/json (for malformed-body tests). */
  readonly raw?: string;
  readonly timeoutMs: number;
}

/** Rejects with the socket's error (ENOENT, ECONNREFUSED, ...) or an ApiTimeout. */
export function apiRequest(socketPath: string, method: string, path: string, opts: ApiRequestOptions): Promise<ApiReply> {
  return new Promise((resolve, reject) => {
    const text = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    const req = request({
      socketPath, method, path,
      headers: text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const t = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = null;
        try { parsed = t === '' ? null : JSON.parse(t); } catch { parsed = t; }
        resolve({ status: res.statusCode ?? 0, body: parsed, text: t });
      });
    });
    req.on('error', reject);
    req.setTimeout(opts.timeoutMs, () => req.destroy(new ApiTimeout(opts.timeoutMs)));
    req.end(text);
  });
}
