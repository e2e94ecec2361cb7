/**
 * `disco exec NAME [--socket PATH] [--timeout SECONDS] [--env K=V]... [--workdir DIR] -- COMMAND [ARGS...]`:
 * runs a command in a running VM through its guest agent (guest/agent/,
 * docs/guest-agent.md), over the VM's vsock Unix socket: `CONNECT 1024`,
 * then the agent protocol. Our stdin goes to the command unless it is a
 * terminal; the command's stdout and stderr come out as ours; we exit with
 * its exit code (128 + the signal that killed it).
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Readable, Writable } from 'node:stream';
import { runDir, VM_NAME_PATTERN } from '../host/paths.js';
import { AGENT_PORT } from '../image/agent.js';
import { UsageError } from './device-options.js';

// ------------------------------------------------------------------ the agent protocol (docs/guest-agent.md)

export const PROTOCOL_VERSION = 1;
export const FRAME_EXEC = 0x01;
export const FRAME_STDIN = 0x02;
export const FRAME_STDIN_EOF = 0x03;
export const FRAME_STDOUT = 0x81;
export const FRAME_STDERR = 0x82;
export const FRAME_EXIT = 0x83;
export const FRAME_ERROR = 0x84;
/** type u8, length u32 LE. */
export const FRAME_HEADER = 5;
/** The largest STDIN/STDOUT/STDERR payload; EXEC may be up to MAX_EXEC_PAYLOAD. */
export const MAX_DATA_PAYLOAD = 64 * 1024;
export const MAX_EXEC_PAYLOAD = 256 * 1024;

export interface Frame { readonly type: number; readonly payload: Uint8Array }

export interface ExecRequest {
  readonly argv: readonly string[];
  /** `K=V` entries added to the command's environment (PATH and HOME are set by the agent). */
  readonly env: readonly string[];
  /** Working directory; '' for the agent's own (/). */
  readonly cwd: string;
}

export type ExitStatus = { readonly kind: 'exited'; readonly code: number } | { readonly kind: 'signaled'; readonly signal: number };

export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const b = Buffer.alloc(FRAME_HEADER + payload.length);
  b[0] = type;
  b.writeUInt32LE(payload.length, 1);
  b.set(payload, FRAME_HEADER);
  return b;
}

/** EXEC payload: u32 version, u32 argc, u32 envc, then argv, env and cwd as NUL-terminated strings. */
export function encodeExec(req: ExecRequest): Uint8Array {
  const strings = [...req.argv, ...req.env, req.cwd];
  if (strings.some((s) => s.includes('\0'))) throw new UsageError('arguments, environment and directory cannot contain NUL');
  const body = Buffer.from(strings.map((s) => `${s}\0`).join(''), 'utf8');
  const head = Buffer.alloc(12);
  head.writeUInt32LE(PROTOCOL_VERSION, 0);
  head.writeUInt32LE(req.argv.length, 4);
  head.writeUInt32LE(req.env.length, 8);
  const out = Buffer.concat([head, body]);
  if (out.length > MAX_EXEC_PAYLOAD) throw new UsageError(`the command line is longer than ${MAX_EXEC_PAYLOAD} bytes`);
  return out;
}

/** The inverse of encodeExec (for agents written in TypeScript, such as the tests' fake); null if malformed. */
export function decodeExec(p: Uint8Array): ExecRequest | null {
  if (p.length < 12) return null;
  const b = Buffer.from(p.buffer, p.byteOffset, p.length);
  if (b.readUInt32LE(0) !== PROTOCOL_VERSION) return null;
  const argc = b.readUInt32LE(4), envc = b.readUInt32LE(8);
  if (argc === 0 || argc + envc > 131072) return null;
  const parts = b.subarray(12).toString('utf8').split('\0');
  if (parts.length !== argc + envc + 2 || parts[parts.length - 1] !== '') return null;
  return { argv: parts.slice(0, argc), env: parts.slice(argc, argc + envc), cwd: parts[argc + envc]! };
}

export function encodeExit(s: ExitStatus): Uint8Array {
  const b = Buffer.alloc(8);
  b[0] = s.kind === 'signaled' ? 1 : 0;
  b.writeUInt32LE(s.kind === 'signaled' ? s.signal : s.code, 4);
  return b;
}

export function decodeExit(p: Uint8Array): ExitStatus | null {
  if (p.length !== 8 || (p[0] !== 0 && p[0] !== 1)) return null;
  const v = Buffer.from(p.buffer, p.byteOffset, p.length).readUInt32LE(4);
  if (p[0] === 1) return v >= 1 && v <= 64 ? { kind: 'signaled', signal: v } : null;
  return v <= 255 ? { kind: 'exited', code: v } : null;
}

/** Splits a byte stream into frames; a frame longer than `max` is a protocol error. */
export class FrameDecoder {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly max: number = MAX_EXEC_PAYLOAD) {}

  /** The complete frames so far, or an error message. */
  push(chunk: Uint8Array): Frame[] | string {
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    for (;;) {
      if (this.buf.length < FRAME_HEADER) return out;
      const len = this.buf.readUInt32LE(1);
      if (len > this.max) return `frame of ${len} bytes is too long`;
      if (this.buf.length < FRAME_HEADER + len) return out;
      out.push({ type: this.buf[0]!, payload: new Uint8Array(this.buf.subarray(FRAME_HEADER, FRAME_HEADER + len)) });
      this.buf = this.buf.subarray(FRAME_HEADER + len);
    }
  }
}

// ------------------------------------------------------------------ the client

/** A failure to run the command (not the command's own failure); one line. */
export class ExecError extends Error {
  override readonly name = 'ExecError';
}

export interface ExecOptions {
  readonly vmName: string;
  readonly socket: string;
  readonly request: ExecRequest;
  /** How long to wait for the agent to accept (ms). */
  readonly timeoutMs: number;
  /** Streamed to the command; null: the command gets EOF at once. */
  readonly stdin: Readable | null;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** Pause between attempts while the agent is not listening yet (ms). */
  readonly retryMs?: number;
}

type Attempt = { kind: 'ok'; sock: Socket; rest: Buffer } | { kind: 'refused' } | { kind: 'novm' };

/** One connection attempt: CONNECT, then wait for OK (or the VM closing us off). */
function attempt(path: string, deadline: number): Promise<Attempt> {
  return new Promise((resolve) => {
    const sock = connect({ path, allowHalfOpen: true });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (a: Attempt): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.off('data', onData);
      if (a.kind !== 'ok') sock.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => finish({ kind: 'refused' }), Math.max(0, deadline - Date.now()));
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) { if (buf.length > 64) finish({ kind: 'refused' }); return; }
      if (!/^OK [0-9]+$/.test(buf.subarray(0, nl).toString('latin1'))) { finish({ kind: 'refused' }); return; }
      sock.pause();
      finish({ kind: 'ok', sock, rest: buf.subarray(nl + 1) });
    };
    sock.on('data', onData);
    sock.once('connect', () => sock.write(`CONNECT ${AGENT_PORT}\n`));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      finish(e.code === 'ENOENT' || e.code === 'ECONNREFUSED' || e.code === 'ENOTSOCK' ? { kind: 'novm' } : { kind: 'refused' });
    });
    // The VM closes a connection the guest refused (RST); half-open or not, it is over.
    sock.on('end', () => finish({ kind: 'refused' }));
    sock.on('close', () => finish({ kind: 'refused' }));
  });
}

/** Runs the request; resolves with the exit code to use (128 + signal for a signal), rejects with an ExecError. */
export async function runExec(o: ExecOptions): Promise<number> {
  const deadline = Date.now() + o.timeoutMs;
  const retryMs = o.retryMs ?? 500;
  let got: Attempt;
  for (;;) {
    got = await attempt(o.socket, deadline);
    if (got.kind === 'novm') throw new ExecError(`no VM named ${o.vmName} is running`);
    if (got.kind === 'ok') break;
    // The guest refused (agent not started yet, no vsock driver): try again until the deadline.
    if (Date.now() + retryMs >= deadline) throw new ExecError(`the guest agent in VM ${o.vmName} did not answer within ${o.timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, retryMs));
  }
  const { sock, rest } = got;
  return new Promise<number>((resolve, reject) => {
    let finished = false;
    const stdin = o.stdin;
    const end = (err: ExecError | null, code = 0): void => {
      if (finished) return;
      finished = true;
      if (stdin) { stdin.off('data', onStdin); stdin.off('end', onStdinEnd); stdin.pause(); }
      sock.destroy();
      if (err) reject(err); else resolve(code);
    };
    const decoder = new FrameDecoder(MAX_DATA_PAYLOAD);
    const onFrames = (d: Uint8Array): void => {
      const frames = decoder.push(d);
      if (typeof frames === 'string') { end(new ExecError(`guest agent: ${frames}`)); return; }
      for (const f of frames) {
        switch (f.type) {
          case FRAME_STDOUT:
          case FRAME_STDERR: {
            const w = f.type === FRAME_STDOUT ? o.stdout : o.stderr;
            // Backpressure: read no more from the guest until our output drains.
            if (!w.write(f.payload)) { sock.pause(); w.once('drain', () => sock.resume()); }
            break;
          }
          case FRAME_EXIT: {
            const s = decodeExit(f.payload);
            if (!s) { end(new ExecError('guest agent: malformed exit frame')); return; }
            end(null, s.kind === 'exited' ? s.code : 128 + s.signal);
            return;
          }
          case FRAME_ERROR:
            end(new ExecError(`guest agent: ${Buffer.from(f.payload).toString('utf8').replace(/\s+/g, ' ').trim()}`));
            return;
          default:
            end(new ExecError(`guest agent: unexpected frame type ${f.type}`));
            return;
        }
      }
    };
    const onStdin = (d: Buffer): void => {
      for (let i = 0; i < d.length; i += MAX_DATA_PAYLOAD) {
        if (!sock.write(encodeFrame(FRAME_STDIN, d.subarray(i, i + MAX_DATA_PAYLOAD)))) {
          stdin?.pause();
          sock.once('drain', () => { if (!finished) stdin?.resume(); });
        }
      }
    };
    const onStdinEnd = (): void => { if (!finished) sock.write(encodeFrame(FRAME_STDIN_EOF)); };
    sock.on('data', onFrames);
    sock.on('error', () => { /* 'close' follows */ });
    const lost = (): void => end(new ExecError(`connection to VM ${o.vmName} lost`));
    sock.on('end', lost);
    sock.on('close', lost);
    sock.write(encodeFrame(FRAME_EXEC, encodeExec(o.request)));
    if (stdin) {
      stdin.on('data', onStdin);
      stdin.on('end', onStdinEnd);
      stdin.resume();
    } else {
      onStdinEnd();
    }
    if (rest.length > 0) onFrames(rest);
    sock.resume();
  });
}

/** The `exec` command: parses its arguments, runs, reports failures on one line (exit 255). */
export async function cmdExec(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const own = dash < 0 ? argv : argv.slice(0, dash);
  const { values, positionals } = parseArgs({
    args: own,
    options: {
      socket: { type: 'string' },
      timeout: { type: 'string' },
      env: { type: 'string', multiple: true },
      workdir: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  });
  const [name, ...more] = positionals;
  const command = dash < 0 ? more : [...more, ...argv.slice(dash + 1)];
  if (name === undefined) throw new UsageError('usage: disco exec NAME [--socket PATH] [--timeout SECONDS] -- COMMAND [ARGS...]');
  if (!VM_NAME_PATTERN.test(name)) throw new UsageError(`'${name}' is not a VM name`);
  if (command.length === 0) throw new UsageError('disco exec: no command given (disco exec NAME -- COMMAND [ARGS...])');
  const t = values.timeout ?? '30';
  if (!/^[0-9]+(\.[0-9]+)?$/.test(t) || Number(t) <= 0 || Number(t) > 86400) throw new UsageError(`--timeout needs a number of seconds in (0, 86400], got '${t}'`);
  for (const e of values.env ?? []) if (!/^[^=]+=/.test(e)) throw new UsageError(`--env needs NAME=VALUE, got '${e}'`);
  const socket = values.socket ?? join(runDir(), `${name}.vsock`);
  try {
    const code = await runExec({
      vmName: name, socket, timeoutMs: Number(t) * 1000,
      request: { argv: command, env: values.env ?? [], cwd: values.workdir ?? '' },
      stdin: process.stdin.isTTY ? null : process.stdin,
      stdout: process.stdout, stderr: process.stderr,
    });
    // Let piped output drain before the process exits.
    await new Promise<void>((r) => process.stdout.write('', () => r()));
    return code;
  } catch (e) {
    if (!(e instanceof ExecError)) throw e;
    process.stderr.write(`disco: ${e.message}\n`);
    return 255;
  }
}
