/**
 * A host TAP interface as a network back end (kind 'tap'). Node cannot issue
 * the TUNSETIFF ioctl, so a small C relay (native/tap-relay.c) opens the
 * interface and passes frames over its stdin/stdout, length-prefixed
 * (net-switch-framing.ts). The relay is compiled with the host's `cc` on
 * first use into a cache directory, keyed by a hash of its source.
 *
 * `openTap` checks before the guest runs that the interface can be opened
 * (the relay's --check mode), so a missing /dev/net/tun or a host that says
 * EPERM or EBUSY ends in a one-line MachineError rather than a guest with a
 * dead link.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MachineError } from '../../machine/errors.js';
import type { NetBackend } from './net.js';
import { RecordReader, encodeRecord } from './net-switch-framing.js';

const MIN_FRAME = 14;
const MAX_FRAME = 65535;
/** Bytes queued towards the relay before frames are dropped. */
const PIPE_BUFFER_BYTES = 1 << 20;
/** native/tap-relay.c from dist/src/devices/backends/ (compiled) or src/devices/backends/. */
const RELAY_SOURCE = fileURLToPath(new URL('../../../../native/tap-relay.c', import.meta.url));
const RELAY_SOURCE_ALT = fileURLToPath(new URL('../../../native/tap-relay.c', import.meta.url));

/** Where built helpers go: $DISCO_CACHE_DIR/bin, else $XDG_CACHE_HOME/disco/bin, else ~/.cache/disco/bin. */
function binDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['DISCO_CACHE_DIR'] ?? (env['XDG_CACHE_HOME'] ? join(env['XDG_CACHE_HOME'], 'disco') : join(homedir(), '.cache', 'disco'));
  return join(base, 'bin');
}

/** The relay's path, compiling it if this source has not been built yet. MachineError if it cannot be built. */
export function tapRelayPath(): string {
  const src = existsSync(RELAY_SOURCE) ? RELAY_SOURCE : RELAY_SOURCE_ALT;
  let code: Buffer;
  try {
    code = readFileSync(src);
  } catch {
    throw new MachineError(`--net tap: the relay source ${src} is missing`);
  }
  const hash = createHash('sha256').update(code).digest('hex').slice(0, 16);
  const dir = binDir();
  const exe = join(dir, `tap-relay-${hash}`);
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  const tmp = `${exe}.${process.pid}.tmp`;
  const r = spawnSync('cc', ['-O2', '-o', tmp, src], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr.split('\n').find((l) => l.includes('error')) ?? `cc exited with ${r.status}`);
    throw new MachineError(`--net tap: cannot build the TAP relay with cc: ${why.trim()}`);
  }
  renameSync(tmp, exe);
  return exe;
}

/**
 * Opens TAP interface `ifname` (creating it if it does not exist, as a
 * non-persistent interface that goes away with the relay). Throws a
 * MachineError if the host does not allow it.
 */
export function openTap(ifname: string, opts: { log?: (line: string) => void } = {}): TapBackend {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(ifname)) throw new MachineError(`--net tap: '${ifname}' is not an interface name`);
  if (!existsSync('/dev/net/tun')) throw new MachineError('--net tap: /dev/net/tun is missing (no TUN/TAP support on this host)');
  const relay = tapRelayPath();
  // Once, synchronously, before the guest runs: the relay opens the interface and exits.
  const r = spawnSync(relay, ['--check', ifname], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0) {
    const line = r.error ? r.error.message : (r.stderr.trim().split('\n')[0] ?? `exit ${r.status}`);
    throw new MachineError(`--net tap=${ifname}: ${line.replace(/^tap-relay: /, '')}`);
  }
  return new TapBackend(relay, ifname, opts.log ?? (() => {}));
}

export class TapBackend implements NetBackend {
  private readonly child: ChildProcessWithoutNullStreams;
  private receive: ((frame: Uint8Array) => boolean) | null = null;
  private closed = false;
  private readonly exited: Promise<void>;
  readonly stats = { tx: 0, txDropped: 0, rx: 0, rxDropped: 0 };

  constructor(relay: string, readonly ifname: string, private readonly log: (line: string) => void) {
    this.child = spawn(relay, [ifname], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('close', () => resolve()));
    const reader = new RecordReader((len) => len >= MIN_FRAME && len <= MAX_FRAME, (rec) => {
      this.stats.rx++;
      if (!this.receive?.(rec)) this.stats.rxDropped++;
    });
    this.child.stdout.on('data', (d: Buffer) => {
      if (!reader.push(d)) { this.log(`tap ${ifname}: the relay sent a malformed record`); this.child.kill(); }
    });
    let errText = '';
    this.child.stderr.on('data', (d: Buffer) => { if (errText.length < 4096) errText += d.toString(); });
    this.child.stdin.on('error', () => {});
    this.child.on('error', (e) => this.log(`tap ${ifname}: relay: ${e.message}`));
    this.child.once('close', (code, signal) => {
      if (!this.closed) this.log(`tap ${ifname}: the relay exited (${signal ?? code}): ${errText.trim().split('\n')[0] ?? ''}`);
    });
  }

  send(frame: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME) return;
    const stdin = this.child.stdin;
    if (stdin.destroyed || stdin.writableLength > PIPE_BUFFER_BYTES) { this.stats.txDropped++; return; }
    this.stats.tx++;
    stdin.write(encodeRecord(frame));
  }

  attach(receive: (frame: Uint8Array) => boolean): void {
    this.receive = receive;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(timer);
  }
}
