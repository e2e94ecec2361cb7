/**
 * The in-host virtual switch (back end kind 'switch'): a learning Ethernet
 * switch shared by every VM that names it, in this process or in other Disco
 * processes of the same user.
 *
 * One process hosts a switch (the hub): it holds the `SwitchCore` and listens
 * on the Unix socket `${runDir()}/switch-NAME.sock`. Every other process is a
 * member that connects one stream per VM port; records on the stream are
 * length-prefixed (net-switch-framing.ts): first a 6-byte hello with the
 * port's MAC, then Ethernet frames both ways.
 *
 * Who hosts is decided by a lock: an abstract Unix socket named after the
 * switch's path, which only one process can bind and which the kernel frees
 * when that process dies. Only the lock holder unlinks a stale socket file and
 * binds a new one, so two processes never both think they host. When the hub
 * goes away (it closes, or its process exits) the members see their streams
 * close and elect again: connect if someone already hosts, else take the lock.
 * Guests only lose the frames in flight.
 */
import { createHash } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { runDir } from '../../host/paths.js';
import type { NetBackend } from './net.js';
import { RecordReader, encodeRecord } from './net-switch-framing.js';

/** A learned address is forgotten after this long without a frame from it (802.1D's default). */
export const MAC_AGING_MS = 300_000;
/** Learned addresses at most; the oldest is forgotten first. */
export const MAX_MACS = 4096;
/** Bytes queued towards one port before frames to it are dropped (a slow peer must not grow memory). */
export const PORT_BUFFER_BYTES = 1 << 20;
export const MIN_FRAME = 14;
export const MAX_FRAME = 65535;
/** The hello record: the port's MAC. */
const HELLO_SIZE = 6;

const macKey = (b: Uint8Array, off: number): number =>
  ((b[off]! * 256 + b[off + 1]!) * 256 + b[off + 2]!) * 16777216 + ((b[off + 3]! << 16) | (b[off + 4]! << 8) | b[off + 5]!);

/** One port of a switch core: where frames for it go, and the MAC it is bound to. */
export interface CorePort {
  readonly id: number;
  /** The only source address the port may use (anti-spoofing), or null for an unbound port. */
  readonly mac: number | null;
  readonly out: (frame: Uint8Array) => void;
}

/**
 * The switching logic: learning (source MAC → port, with aging), forwarding
 * of known unicast to its port, flooding of broadcast, multicast and unknown
 * unicast to every port but the source. A frame never goes back to the port
 * it came from.
 */
export class SwitchCore {
  private readonly ports = new Set<CorePort>();
  private readonly table = new Map<number, { port: CorePort; seen: number }>();
  private nextId = 1;
  readonly stats = { forwarded: 0, flooded: 0, spoofed: 0, dropped: 0 };

  constructor(private readonly now: () => number = Date.now) {}

  get portCount(): number {
    return this.ports.size;
  }

  addPort(mac: Uint8Array | null, out: (frame: Uint8Array) => void): CorePort {
    const port: CorePort = { id: this.nextId++, mac: mac ? macKey(mac, 0) : null, out };
    this.ports.add(port);
    return port;
  }

  removePort(port: CorePort): void {
    this.ports.delete(port);
    for (const [mac, e] of this.table) if (e.port === port) this.table.delete(mac);
  }

  /** The port an address was learned on, if it has not aged out. */
  lookup(mac: Uint8Array): CorePort | null {
    const key = macKey(mac, 0);
    const e = this.table.get(key);
    if (!e) return null;
    if (this.now() - e.seen > MAC_AGING_MS) { this.table.delete(key); return null; }
    return e.port;
  }

  /** A frame that arrived on `from`. */
  input(from: CorePort, frame: Uint8Array): void {
    if (!this.ports.has(from) || frame.length < MIN_FRAME || frame.length > MAX_FRAME) { this.stats.dropped++; return; }
    const src = macKey(frame, 6);
    // Anti-spoofing: a VM's port carries only its own MAC, so one guest can
    // neither impersonate another nor poison the table.
    if (from.mac !== null && src !== from.mac) { this.stats.spoofed++; return; }
    // A group source address is invalid (802.3); do not learn it.
    if (frame[6]! & 1) { this.stats.dropped++; return; }
    this.learn(src, from);
    if (!(frame[0]! & 1)) {
      const to = this.lookup(frame);
      if (to === from) { this.stats.dropped++; return; }
      if (to) { this.stats.forwarded++; to.out(frame); return; }
    }
    this.stats.flooded++;
    for (const p of [...this.ports]) if (p !== from && this.ports.has(p)) p.out(frame);
  }

  private learn(src: number, port: CorePort): void {
    // Re-inserted so the Map's order is least recently seen first.
    this.table.delete(src);
    this.table.set(src, { port, seen: this.now() });
    if (this.table.size > MAX_MACS) {
      const oldest = this.table.keys().next();
      if (!oldest.done) this.table.delete(oldest.value);
    }
  }
}

export type MemberRole = 'electing' | 'hub' | 'client' | 'closed';

export interface SwitchMemberOptions {
  readonly log?: (line: string) => void;
  /** Called when the last port closes (the registry forgets the member). */
  readonly onIdle?: () => void;
}

const errCode = (e: unknown): string => (e && typeof e === 'object' && 'code' in e ? String((e as { code: unknown }).code) : '');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A VM's port on a switch: the NetBackend its virtio-net device uses. Frames
 * sent while the switch is being re-elected are lost.
 */
export class SwitchPort implements NetBackend {
  receive: ((frame: Uint8Array) => boolean) | null = null;
  /** In a hub: the core port. */
  core: CorePort | null = null;
  /** In a client: the stream to the hub. */
  socket: Socket | null = null;
  closed = false;

  constructor(readonly member: SwitchMember, readonly mac: Uint8Array) {}

  send(frame: Uint8Array): void {
    if (this.closed || frame.length < MIN_FRAME || frame.length > MAX_FRAME) return;
    this.member.fromPort(this, frame);
  }

  attach(receive: (frame: Uint8Array) => boolean): void {
    this.receive = receive;
  }

  deliver(frame: Uint8Array): void {
    if (!this.closed) this.receive?.(frame);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.member.removePort(this);
  }
}

/**
 * This process's membership in one switch (one per socket path; the registry
 * below shares it between the VMs of a process). Tests make several to act as
 * several processes.
 */
export class SwitchMember {
  private state: MemberRole = 'electing';
  private readonly ports = new Set<SwitchPort>();
  private core: SwitchCore | null = null;
  private server: Server | null = null;
  private lock: Server | null = null;
  private readonly remotes = new Set<Socket>();
  private election: Promise<void> | null = null;
  private readonly log: (line: string) => void;
  /** Resolves when the member hosts or has connected (for tests and callers that want to wait). */
  private settledWaiters: (() => void)[] = [];

  constructor(readonly path: string, private readonly opts: SwitchMemberOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.elect();
  }

  get role(): MemberRole {
    return this.state;
  }

  /** A method, so that the compiler does not narrow the state across awaits. */
  private isClosed(): boolean {
    return this.state === 'closed';
  }

  /** The core, while this member hosts the switch. */
  get hubCore(): SwitchCore | null {
    return this.core;
  }

  /** Waits until the member is hub or client (or closed). */
  settled(): Promise<void> {
    if (this.state !== 'electing') return Promise.resolve();
    return new Promise((r) => this.settledWaiters.push(r));
  }

  openPort(mac: Uint8Array): SwitchPort {
    if (this.state === 'closed') throw new Error('switch member is closed');
    if (mac.length !== 6 || (mac[0]! & 1)) throw new RangeError('a switch port needs a unicast MAC');
    const port = new SwitchPort(this, Uint8Array.from(mac));
    this.ports.add(port);
    if (this.state === 'hub') this.attachLocal(port);
    else if (this.state === 'client') this.connectPort(port);
    return port;
  }

  fromPort(port: SwitchPort, frame: Uint8Array): void {
    if (this.state === 'hub') {
      if (this.core && port.core) this.core.input(port.core, frame);
      return;
    }
    const s = port.socket;
    if (this.state !== 'client' || !s || s.destroyed || s.writableLength > PORT_BUFFER_BYTES) return;
    s.write(encodeRecord(frame));
  }

  async removePort(port: SwitchPort): Promise<void> {
    if (!this.ports.delete(port)) return;
    if (port.core) this.core?.removePort(port.core);
    port.core = null;
    port.socket?.destroy();
    port.socket = null;
    if (this.ports.size === 0) {
      await this.close();
      this.opts.onIdle?.();
    }
  }

  /** Leaves the switch: a hub stops hosting (the others elect a new one). */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const p of this.ports) { p.closed = true; p.socket?.destroy(); p.socket = null; p.core = null; }
    this.ports.clear();
    await this.stopHosting();
    this.wakeSettled();
  }

  private wakeSettled(): void {
    const w = this.settledWaiters;
    this.settledWaiters = [];
    for (const f of w) f();
  }

  // ---------------------------------------------------------------- election

  private elect(): void {
    if (this.election || this.state === 'closed') return;
    this.state = 'electing';
    for (const p of this.ports) { p.socket?.destroy(); p.socket = null; }
    this.election = this.runElection().catch((e: unknown) => {
      this.log(`switch ${this.path}: election failed: ${String(e)}`);
    }).finally(() => {
      this.election = null;
      this.wakeSettled();
    });
  }

  private async runElection(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      if (this.isClosed()) return;
      const probe = await this.probe();
      if (this.isClosed()) return;
      if (probe === 'hosted') {
        this.state = 'client';
        for (const p of this.ports) this.connectPort(p);
        return;
      }
      if (probe === 'nobody' && await this.host()) return;
      if (this.isClosed()) return;
      // Someone else holds the lock and is about to listen, or the host is busy: try again soon.
      await sleep(10 + Math.random() * Math.min(200, 20 * (attempt + 1)));
    }
  }

  /** Is someone listening at the path? 'nobody' if the file is missing or stale. */
  private probe(): Promise<'hosted' | 'nobody' | 'retry'> {
    return new Promise((resolve) => {
      const s = connect(this.path);
      s.once('connect', () => { s.destroy(); resolve('hosted'); });
      s.once('error', (e) => {
        s.destroy();
        const code = errCode(e);
        resolve(code === 'ECONNREFUSED' || code === 'ENOENT' ? 'nobody' : 'retry');
        if (code !== 'ECONNREFUSED' && code !== 'ENOENT') this.log(`switch ${this.path}: ${String(e)}`);
      });
    });
  }

  /** Takes the lock and hosts the switch; false if someone else holds the lock. */
  private async host(): Promise<boolean> {
    const lockName = '\0disco-switch-' + createHash('sha256').update(this.path).digest('hex').slice(0, 40);
    const lock = createServer((s) => s.destroy());
    if (!await listen(lock, lockName)) return false;
    if (this.isClosed()) { lock.close(); return false; }
    // Holding the lock, the file at the path can only be stale (its host died).
    try { unlinkSync(this.path); } catch (e) { if (errCode(e) !== 'ENOENT') this.log(`switch ${this.path}: ${String(e)}`); }
    const server = createServer((s) => this.accept(s));
    if (!await listen(server, this.path)) { lock.close(); return false; }
    if (this.isClosed()) { server.close(); lock.close(); return false; }
    this.lock = lock;
    this.server = server;
    this.core = new SwitchCore();
    this.state = 'hub';
    for (const p of this.ports) this.attachLocal(p);
    this.log(`switch ${this.path}: hosting`);
    return true;
  }

  private async stopHosting(): Promise<void> {
    const server = this.server, lock = this.lock;
    this.server = null;
    this.lock = null;
    this.core = null;
    // The socket file goes first (closing the server unlinks it), then the
    // streams (members start electing), then the lock.
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const s of this.remotes) s.destroy();
    this.remotes.clear();
    await closed;
    if (lock) await new Promise<void>((r) => lock.close(() => r()));
  }

  // ---------------------------------------------------------------- hub side

  private attachLocal(port: SwitchPort): void {
    if (!this.core) return;
    port.core = this.core.addPort(port.mac, (f) => port.deliver(f));
  }

  /** A member's stream: hello, then frames; anything malformed closes this stream only. */
  private accept(s: Socket): void {
    const core = this.core;
    if (!core) { s.destroy(); return; }
    this.remotes.add(s);
    let port: CorePort | null = null;
    const reader = new RecordReader(
      (len) => (port ? len >= MIN_FRAME && len <= MAX_FRAME : len === HELLO_SIZE),
      (rec) => {
        if (!port) {
          if (rec[0]! & 1) { s.destroy(); return; }
          port = core.addPort(rec, (f) => {
            // Bounded per port: frames for a peer that does not read are dropped.
            if (!s.destroyed && s.writableLength <= PORT_BUFFER_BYTES) s.write(encodeRecord(f));
          });
          return;
        }
        core.input(port, rec);
      },
    );
    s.on('data', (d: Buffer) => {
      if (!reader.push(d)) {
        this.log(`switch ${this.path}: a member sent a malformed record; closing its stream`);
        s.destroy();
      }
    });
    s.on('error', () => s.destroy());
    s.on('close', () => {
      this.remotes.delete(s);
      if (port) core.removePort(port);
    });
  }

  // ---------------------------------------------------------------- client side

  private connectPort(port: SwitchPort): void {
    const s = connect(this.path);
    port.socket = s;
    // Written before the connection completes; the stream keeps the order.
    s.write(encodeRecord(port.mac));
    const reader = new RecordReader((len) => len >= MIN_FRAME && len <= MAX_FRAME, (rec) => port.deliver(rec));
    s.on('data', (d: Buffer) => {
      if (!reader.push(d)) {
        this.log(`switch ${this.path}: the hub sent a malformed record`);
        s.destroy();
      }
    });
    s.on('error', () => s.destroy());
    s.on('close', () => {
      if (port.socket !== s) return;
      port.socket = null;
      // The hub went away (or broke the protocol): elect again.
      if (this.state === 'client' && this.ports.has(port)) this.elect();
    });
  }
}

/** Listens; false if the address is taken (or refused). */
function listen(server: Server, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const onError = (): void => { server.close(); resolve(false); };
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve(true);
    });
  });
}

// ------------------------------------------------------------------ registry

const members = new Map<string, SwitchMember>();

/** Where a named switch's hub listens. */
export function switchSocketPath(name: string, dir: string = runDir()): string {
  return join(dir, `switch-${name}.sock`);
}

/**
 * A port on the switch `name` for a VM's NIC with `mac`: joins the switch
 * (hosting it if no process does) on first use in this process.
 */
export function openSwitchPort(name: string, mac: Uint8Array, opts: { log?: (line: string) => void; dir?: string } = {}): SwitchPort {
  const path = switchSocketPath(name, opts.dir);
  let m = members.get(path);
  if (!m || m.role === 'closed') {
    const member: SwitchMember = new SwitchMember(path, {
      log: opts.log ?? (() => {}),
      onIdle: () => { if (members.get(path) === member) members.delete(path); },
    });
    m = member;
    members.set(path, m);
  }
  return m.openPort(mac);
}
