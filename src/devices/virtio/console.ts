/**
 * virtio-console (virtio 1.2, section 5.3; device ID 3) with
 * VIRTIO_CONSOLE_F_MULTIPORT. Port 0 is the console: the device marks it
 * with VIRTIO_CONSOLE_CONSOLE_PORT, so Linux makes it hvc0 (`console=hvc0`),
 * and it carries the VM's terminal. Further ports are named byte channels
 * (/dev/virtio-ports/NAME in the guest), each relayed to one client of a
 * Unix socket the host listens on.
 *
 * Queues (5.3.2): 0/1 port 0 receiveq/transmitq, 2/3 control receiveq
 * (device → driver) and control transmitq (driver → device), then
 * 4 + 2(n-1) / 5 + 2(n-1) for port n. Without MULTIPORT only port 0 exists.
 *
 * The control protocol (5.3.6.2): the driver sends DEVICE_READY; the device
 * announces each port with DEVICE_ADD; the driver answers PORT_READY; the
 * device then sends CONSOLE_PORT (port 0) or PORT_NAME (named ports), and
 * PORT_OPEN while a host side is connected. The driver sends PORT_OPEN when a
 * guest program (or hvc) opens or closes the port.
 *
 * Flow control: bytes for the guest wait in a bounded queue per port until
 * the guest has receive buffers and has the port open; a socket that fills
 * its queue is paused. Guest writes to a socket that cannot take more stay on
 * the transmitq until the socket drains (Linux does not spin on generic
 * ports, only on hvc, whose output never waits). Writes to a port with no
 * host side are consumed and dropped.
 */
import { lstatSync, statSync, unlinkSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { MachineError } from '../../machine/errors.js';
import { DEVICE_ID_CONSOLE, feature } from './constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from './device.js';

// Feature bits (5.3.3).
export const VIRTIO_CONSOLE_F_SIZE = 0;
export const VIRTIO_CONSOLE_F_MULTIPORT = 1;
export const VIRTIO_CONSOLE_F_EMERG_WRITE = 2;

// struct virtio_console_control events (5.3.6.2).
export const VIRTIO_CONSOLE_DEVICE_READY = 0;
export const VIRTIO_CONSOLE_DEVICE_ADD = 1;
export const VIRTIO_CONSOLE_DEVICE_REMOVE = 2;
export const VIRTIO_CONSOLE_PORT_READY = 3;
export const VIRTIO_CONSOLE_CONSOLE_PORT = 4;
export const VIRTIO_CONSOLE_RESIZE = 5;
export const VIRTIO_CONSOLE_PORT_OPEN = 6;
export const VIRTIO_CONSOLE_PORT_NAME = 7;

/** struct virtio_console_control: le32 id, le16 event, le16 value. */
export const CONSOLE_CONTROL_SIZE = 8;
/** struct virtio_console_config: le16 cols, le16 rows, le32 max_nr_ports, le32 emerg_wr. */
export const CONSOLE_CONFIG_SIZE = 12;
const CFG_MAX_NR_PORTS = 4;

export const CONSOLE_RECEIVEQ = 0;
export const CONSOLE_TRANSMITQ = 1;
export const CONSOLE_CONTROL_RECEIVEQ = 2;
export const CONSOLE_CONTROL_TRANSMITQ = 3;

/** Bytes waiting for the guest per port; a socket is paused above it. */
export const CONSOLE_RX_LIMIT = 64 * 1024;
/** Control messages waiting for control receiveq buffers. */
const MAX_CONTROL_PENDING = 256;
/** The most bytes taken from one transmit chain (Linux sends at most a page); the rest is dropped. */
const MAX_TX_CHAIN = 1 << 20;
/** sun_path is 108 bytes with its NUL. */
const MAX_SOCKET_PATH = 107;
const QUEUE_SIZE = 128;

export interface ConsolePortOptions {
  readonly name: string;
  readonly socket: string;
}

export interface ConsoleOptions {
  /** The named ports 1..n. */
  readonly ports: readonly ConsolePortOptions[];
  /** Port 0's output: the VM's terminal. */
  readonly output: (bytes: Uint8Array) => void;
  readonly log?: (line: string) => void;
}

export interface ConsolePortState {
  /** The driver sent PORT_READY 1 for the port. */
  ready: boolean;
  /** The guest has the port open (PORT_OPEN 1). */
  guestOpen: boolean;
  /** Bytes for the guest not yet delivered, base64. */
  rx: string;
}

export interface VirtioConsoleState {
  readonly version: 1;
  /** The driver sent DEVICE_READY 1. */
  deviceReady: boolean;
  ports: ConsolePortState[];
  /** Control messages waiting for the driver's buffers, base64 each. */
  control: string[];
}

interface Port {
  readonly id: number;
  readonly name: string;
  /** Host socket path (null for port 0, the terminal). */
  readonly socket: string | null;
  ready: boolean;
  guestOpen: boolean;
  rx: Uint8Array[];
  rxBytes: number;
  server: Server | null;
  /** Listening succeeded: close() removes the socket file. */
  listening: boolean;
  conn: Socket | null;
  paused: boolean;
}

const rxQueue = (id: number): number => (id === 0 ? CONSOLE_RECEIVEQ : 2 + 2 * id);
const txQueue = (id: number): number => rxQueue(id) + 1;

function control(id: number, event: number, value: number, payload?: Uint8Array): Uint8Array {
  const b = new Uint8Array(CONSOLE_CONTROL_SIZE + (payload?.length ?? 0));
  const v = new DataView(b.buffer);
  v.setUint32(0, id >>> 0, true);
  v.setUint16(4, event, true);
  v.setUint16(6, value, true);
  if (payload) b.set(payload, CONSOLE_CONTROL_SIZE);
  return b;
}

export class VirtioConsole implements VirtioDevice<VirtioConsoleState> {
  readonly name = 'console';
  readonly deviceId = DEVICE_ID_CONSOLE;
  readonly features = feature(VIRTIO_CONSOLE_F_MULTIPORT);
  readonly queueSizes: readonly number[];
  readonly configSize = CONSOLE_CONFIG_SIZE;
  private ctx: VirtioDeviceContext | null = null;
  private readonly ports: Port[];
  private readonly output: (bytes: Uint8Array) => void;
  private readonly log: (line: string) => void;
  private deviceReady = false;
  private controlOut: Uint8Array[] = [];
  private closed = false;

  /**
   * Checks the socket paths and starts listening. A path that exists and is not
   * a socket, a directory that does not exist, or a path too long for a Unix
   * socket is a MachineError, before the guest runs.
   */
  constructor(opts: ConsoleOptions) {
    this.output = opts.output;
    this.log = opts.log ?? (() => {});
    const names = new Set<string>(), paths = new Set<string>();
    for (const p of opts.ports) {
      if (names.has(p.name)) throw new MachineError(`virtio console: two ports named '${p.name}'`);
      if (paths.has(p.socket)) throw new MachineError(`virtio console: two ports on socket ${p.socket}`);
      names.add(p.name);
      paths.add(p.socket);
      if (Buffer.byteLength(p.name) > 255) throw new MachineError(`virtio console: port name '${p.name}' is too long`);
      if (Buffer.byteLength(p.socket) > MAX_SOCKET_PATH) throw new MachineError(`virtio console: socket path ${p.socket} is longer than ${MAX_SOCKET_PATH} bytes`);
      let dir;
      try { dir = statSync(dirname(p.socket)); } catch { dir = null; }
      if (!dir?.isDirectory()) throw new MachineError(`virtio console: directory of ${p.socket} does not exist`);
      let existing;
      try { existing = lstatSync(p.socket); } catch { existing = null; }
      if (existing && !existing.isSocket()) throw new MachineError(`virtio console: ${p.socket} exists and is not a socket`);
    }
    const mk = (id: number, name: string, socket: string | null): Port => ({
      id, name, socket, ready: false, guestOpen: false, rx: [], rxBytes: 0, server: null, listening: false, conn: null, paused: false,
    });
    this.ports = [mk(0, '', null), ...opts.ports.map((p, i) => mk(i + 1, p.name, p.socket))];
    this.queueSizes = Array.from({ length: 2 * (this.ports.length + 1) }, () => QUEUE_SIZE);
    for (const port of this.ports) if (port.socket !== null) this.listen(port, port.socket);
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  // ---------------------------------------------------------------- host side

  /** Host keyboard input for port 0 (the console). Bytes beyond the bounded queue are dropped. */
  input(bytes: Uint8Array): void {
    const port = this.ports[0]!;
    const n = Math.min(bytes.length, CONSOLE_RX_LIMIT - port.rxBytes);
    if (n <= 0) return;
    port.rx.push(bytes.slice(0, n));
    port.rxBytes += n;
    this.deliver(port);
  }

  /** The guest has the console open (hvc0 registered: VIRTIO_CONSOLE_PORT_OPEN 1 for port 0). */
  consoleOpen(): boolean {
    return this.open(this.ports[0]!);
  }

  /** Bytes from the host that port `id` holds for the guest. */
  waitingBytes(id: number): number {
    return this.ports[id]?.rxBytes ?? 0;
  }

  /** Whether a host client is connected to port `name`'s socket. */
  hostConnected(name: string): boolean {
    return this.ports.some((p) => p.id > 0 && p.name === name && p.conn !== null);
  }

  /** Stops listening, disconnects clients and removes the socket files. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.ports.map(async (p) => {
      p.conn?.destroy();
      p.conn = null;
      const server = p.server;
      p.server = null;
      if (server) await new Promise<void>((res) => server.close(() => res()));
      if (p.listening && p.socket !== null) {
        p.listening = false;
        await unlink(p.socket).catch(() => {});
      }
    }));
  }

  private listen(port: Port, path: string): void {
    // A socket file left by an earlier run would make listen() fail.
    try { unlinkSync(path); } catch { /* not there */ }
    const server = createServer((sock) => this.accept(port, sock));
    server.on('error', (e) => this.log(`virtio console port ${port.name}: ${e.message}`));
    // The VM's run loop decides the process's lifetime; a machine whose
    // construction failed after this point must not be kept alive by the listener.
    server.unref();
    server.listen(path, () => {
      if (this.closed) { server.close(); void unlink(path).catch(() => {}); return; }
      port.listening = true;
    });
    port.server = server;
  }

  private accept(port: Port, sock: Socket): void {
    if (this.closed || port.conn !== null) {
      // One client at a time.
      sock.destroy();
      return;
    }
    port.conn = sock;
    port.paused = false;
    sock.on('data', (data: Buffer) => {
      if (port.conn !== sock) return;
      port.rx.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      port.rxBytes += data.byteLength;
      if (port.rxBytes >= CONSOLE_RX_LIMIT && !port.paused) {
        port.paused = true;
        sock.pause();
      }
      this.deliver(port);
    });
    sock.on('drain', () => { if (port.conn === sock) this.transmit(port); });
    sock.on('error', () => { /* 'close' follows */ });
    sock.on('close', () => {
      if (port.conn !== sock) return;
      port.conn = null;
      port.paused = false;
      this.hostChanged(port);
      // Writes the guest made meanwhile are consumed (and dropped) now.
      this.transmit(port);
    });
    this.hostChanged(port);
    this.transmit(port);
  }

  /** Tells the driver that a port's host side connected or went away. */
  private hostChanged(port: Port): void {
    if (this.multiport() && this.deviceReady && port.ready) {
      this.sendControl(control(port.id, VIRTIO_CONSOLE_PORT_OPEN, port.conn !== null ? 1 : 0));
    }
  }

  // ---------------------------------------------------------------- configuration space (5.3.4)

  readConfig(offset: number, size: ConfigAccessSize): number {
    // cols and rows stay 0 (no F_SIZE); emerg_wr reads 0.
    const max = this.ports.length;
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const off = offset + i;
      const b = off >= CFG_MAX_NR_PORTS && off < CFG_MAX_NR_PORTS + 4 ? (max >>> (8 * (off - CFG_MAX_NR_PORTS))) & 0xff : 0;
      v = v * 256 + b;
    }
    return v;
  }

  writeConfig(_offset: number, _size: ConfigAccessSize, _value: number): void {
    // emerg_wr is only there with VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered.
  }

  // ---------------------------------------------------------------- queues

  private multiport(): boolean {
    return ((this.ctx?.features() ?? 0n) & feature(VIRTIO_CONSOLE_F_MULTIPORT)) !== 0n;
  }

  /** The ports the driver can see: all with MULTIPORT, else port 0 only. */
  private visible(): Port[] {
    return this.multiport() ? this.ports : [this.ports[0]!];
  }

  /** Bytes may go to the guest: without MULTIPORT port 0 is always open. */
  private open(port: Port): boolean {
    if (!this.ctx?.live()) return false;
    if (!this.multiport()) return port.id === 0;
    return port.guestOpen;
  }

  activate(): void {
    if (this.multiport()) {
      this.takeControl();
      this.flushControl();
    }
    for (const p of this.visible()) {
      this.transmit(p);
      this.deliver(p);
    }
  }

  notify(index: number): void {
    if (this.closed) return;
    if (this.multiport() && index === CONSOLE_CONTROL_RECEIVEQ) { this.flushControl(); return; }
    if (this.multiport() && index === CONSOLE_CONTROL_TRANSMITQ) { this.takeControl(); return; }
    const id = index < 2 ? 0 : (index >> 1) - 1;
    const port = this.visible()[id];
    if (!port || index === 2 || index === 3) return;
    if (index === rxQueue(id)) this.deliver(port);
    else this.transmit(port);
  }

  reset(): void {
    // The driver's view goes; what the host has sent stays for the next driver.
    this.deviceReady = false;
    this.controlOut = [];
    for (const p of this.ports) {
      p.ready = false;
      p.guestOpen = false;
    }
  }

  /** Bytes waiting for the guest go into its receive buffers. */
  private deliver(port: Port): void {
    const ctx = this.ctx;
    const q = ctx?.queue(rxQueue(port.id));
    if (!ctx || !q || this.closed || !this.open(port)) return;
    let used = false;
    for (let i = 0; i < q.size && port.rxBytes > 0; i++) {
      const chain = q.pop();
      if (!chain) break;
      let written = 0;
      while (port.rx.length > 0 && written < chain.writableBytes) {
        const head = port.rx[0]!;
        const n = q.write(chain, head, written);
        if (n < 0) return;
        written += n;
        if (n === head.length) port.rx.shift();
        else port.rx[0] = head.subarray(n);
        port.rxBytes -= n;
        if (n === 0) break;
      }
      if (!q.push(chain.head, written)) return;
      used = true;
    }
    if (used) ctx.usedBuffers(rxQueue(port.id));
    if (port.paused && port.rxBytes < CONSOLE_RX_LIMIT / 2) {
      port.paused = false;
      port.conn?.resume();
    }
  }

  /** The guest's writes on a port's transmitq go to the host. */
  private transmit(port: Port): void {
    const ctx = this.ctx;
    const index = txQueue(port.id);
    const q = ctx?.queue(index);
    if (!ctx || !q || this.closed) return;
    let used = false;
    for (let i = 0; i < q.size; i++) {
      // Backpressure: the chain waits on the ring until the socket drains.
      if (port.conn?.writableNeedDrain) break;
      const chain = q.pop();
      if (!chain) break;
      const data = q.read(chain, 0, Math.min(chain.readableBytes, MAX_TX_CHAIN));
      if (!data) return;
      if (data.length > 0) {
        if (port.id === 0) this.output(data);
        else port.conn?.write(data);
      }
      if (!q.push(chain.head, 0)) return;
      used = true;
    }
    if (used) ctx.usedBuffers(index);
    // A ring longer than one pass (a driver adding buffers as fast as they go): continue later.
    if (q.available() > 0 && !port.conn?.writableNeedDrain) setImmediate(() => this.transmit(port));
  }

  private sendControl(msg: Uint8Array): void {
    if (this.controlOut.length >= MAX_CONTROL_PENDING) {
      this.log('virtio console: the driver takes no control messages; one dropped');
      return;
    }
    this.controlOut.push(msg);
    this.flushControl();
  }

  /** Control messages for the driver go into its control receiveq buffers. */
  private flushControl(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(CONSOLE_CONTROL_RECEIVEQ);
    if (!ctx || !q || this.closed || !this.multiport()) return;
    let used = false;
    while (this.controlOut.length > 0) {
      const chain = q.pop();
      if (!chain) break;
      const msg = this.controlOut.shift()!;
      // A buffer too small for the message (Linux gives a page) loses it: the driver broke the rules.
      const n = chain.writableBytes >= msg.length ? q.write(chain, msg) : 0;
      if (n < 0) return;
      if (!q.push(chain.head, n)) return;
      used = true;
    }
    if (used) ctx.usedBuffers(CONSOLE_CONTROL_RECEIVEQ);
  }

  /** The driver's control messages (5.3.6.2). */
  private takeControl(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(CONSOLE_CONTROL_TRANSMITQ);
    if (!ctx || !q || this.closed) return;
    let used = false;
    for (let i = 0; i < q.size; i++) {
      const chain = q.pop();
      if (!chain) break;
      const b = q.read(chain, 0, CONSOLE_CONTROL_SIZE);
      if (!b) return;
      if (!q.push(chain.head, 0)) return;
      used = true;
      // A short message is dropped.
      if (b.length === CONSOLE_CONTROL_SIZE) {
        const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
        this.onControl(v.getUint32(0, true), v.getUint16(4, true), v.getUint16(6, true));
      }
    }
    if (used) ctx.usedBuffers(CONSOLE_CONTROL_TRANSMITQ);
  }

  private onControl(id: number, event: number, value: number): void {
    switch (event) {
      case VIRTIO_CONSOLE_DEVICE_READY:
        if (value !== 1) { this.log('virtio console: the driver failed to set up'); return; }
        if (this.deviceReady) return;
        this.deviceReady = true;
        for (const p of this.ports) this.sendControl(control(p.id, VIRTIO_CONSOLE_DEVICE_ADD, 0));
        return;
      case VIRTIO_CONSOLE_PORT_READY: {
        const port = this.ports[id];
        if (!port || !this.deviceReady) return;
        if (value !== 1) { port.ready = false; this.log(`virtio console: the driver failed to add port ${id}`); return; }
        port.ready = true;
        if (port.id === 0) this.sendControl(control(0, VIRTIO_CONSOLE_CONSOLE_PORT, 1));
        else this.sendControl(control(port.id, VIRTIO_CONSOLE_PORT_NAME, 1, new TextEncoder().encode(port.name)));
        // Port 0's host side, the terminal, is always there.
        if (port.id === 0 || port.conn !== null) this.sendControl(control(port.id, VIRTIO_CONSOLE_PORT_OPEN, 1));
        return;
      }
      case VIRTIO_CONSOLE_PORT_OPEN: {
        const port = this.ports[id];
        if (!port || !port.ready) return;
        port.guestOpen = value === 1;
        if (port.guestOpen) this.deliver(port);
        return;
      }
      default:
        // Other events are the device's to send (or unknown): ignored.
        return;
    }
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioConsoleState {
    const b64 = (chunks: Uint8Array[]): string => Buffer.concat(chunks).toString('base64');
    return {
      version: 1,
      deviceReady: this.deviceReady,
      ports: this.ports.map((p) => ({ ready: p.ready, guestOpen: p.guestOpen, rx: b64(p.rx) })),
      control: this.controlOut.map((m) => Buffer.from(m).toString('base64')),
    };
  }

  restore(state: VirtioConsoleState): void {
    const b64 = (s: unknown): boolean => typeof s === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
    const ok = typeof state === 'object' && state !== null && state.version === 1 && typeof state.deviceReady === 'boolean'
      && Array.isArray(state.ports) && state.ports.length === this.ports.length
      && state.ports.every((p) => typeof p === 'object' && p !== null && typeof p.ready === 'boolean' && typeof p.guestOpen === 'boolean' && b64(p.rx))
      && Array.isArray(state.control) && state.control.length <= MAX_CONTROL_PENDING && state.control.every(b64);
    if (!ok) throw new RangeError('virtio-console: malformed state');
    const rx = state.ports.map((p) => new Uint8Array(Buffer.from(p.rx, 'base64')));
    const ctl = state.control.map((m) => new Uint8Array(Buffer.from(m, 'base64')));
    if (rx.some((b) => b.length > CONSOLE_RX_LIMIT) || ctl.some((m) => m.length < CONSOLE_CONTROL_SIZE || m.length > CONSOLE_CONTROL_SIZE + 255)) {
      throw new RangeError('virtio-console: malformed state');
    }
    this.deviceReady = state.deviceReady;
    this.controlOut = ctl;
    this.ports.forEach((p, i) => {
      const s = state.ports[i]!;
      p.ready = s.ready;
      p.guestOpen = s.guestOpen;
      p.rx = rx[i]!.length > 0 ? [rx[i]!] : [];
      p.rxBytes = rx[i]!.length;
    });
    // The host connections are this process's, not the snapshot's: tell the driver how they stand now.
    for (const p of this.ports) {
      if (p.id > 0 && this.deviceReady && p.ready && this.controlOut.length < MAX_CONTROL_PENDING) {
        this.controlOut.push(control(p.id, VIRTIO_CONSOLE_PORT_OPEN, p.conn !== null ? 1 : 0));
      }
    }
    // The transport's own state is restored after the device's, and the driver
    // will not notify for buffers it already gave: look at the queues once it is.
    setImmediate(() => {
      if (this.closed) return;
      this.flushControl();
      for (const p of this.visible()) { this.deliver(p); this.transmit(p); }
    });
  }
}
