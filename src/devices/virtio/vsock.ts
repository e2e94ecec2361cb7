/**
 * virtio-vsock (virtio 1.2, section 5.10; device ID 19): stream sockets
 * between the guest (its context id, `guest_cid` in the configuration space)
 * and the host (CID 2). Queue 0 (rx) carries packets to the guest in
 * device-writable buffers, queue 1 (tx) packets from the guest, queue 2
 * (event) transport events, which Disco never sends.
 *
 * The host side follows Firecracker's model (see vsock-host.ts): a host
 * program connects to the VM's Unix socket and asks for a guest port with
 * `CONNECT <port>\n`; a guest connection to host port P becomes a connection
 * to the Unix socket `<socket>_P`.
 *
 * Every packet from the guest is hostile: a wrong source CID, an unknown
 * connection, a length beyond its chain, an unknown type or operation, data
 * beyond the credit we granted: each ends in a RST (or, for a RST, silence).
 * Packets for the guest wait in bounded per-connection queues while the rx
 * queue has no buffers; a host socket is paused while its connection has no
 * guest credit left or too much waiting.
 */
import type { Socket } from 'node:net';
import { DEVICE_ID_VSOCK } from './constants.js';
import type { ConfigAccessSize, VirtioDevice, VirtioDeviceContext } from './device.js';
import type { DescriptorChain } from './queue.js';
import { VsockHost, type VsockHostEvents } from './vsock-host.js';

// struct virtio_vsock_hdr and its values (5.10.6).
export const VSOCK_HDR_SIZE = 44;
export const VIRTIO_VSOCK_TYPE_STREAM = 1;
export const VIRTIO_VSOCK_TYPE_SEQPACKET = 2;
export const VIRTIO_VSOCK_OP_INVALID = 0;
export const VIRTIO_VSOCK_OP_REQUEST = 1;
export const VIRTIO_VSOCK_OP_RESPONSE = 2;
export const VIRTIO_VSOCK_OP_RST = 3;
export const VIRTIO_VSOCK_OP_SHUTDOWN = 4;
export const VIRTIO_VSOCK_OP_RW = 5;
export const VIRTIO_VSOCK_OP_CREDIT_UPDATE = 6;
export const VIRTIO_VSOCK_OP_CREDIT_REQUEST = 7;
export const VIRTIO_VSOCK_SHUTDOWN_RCV = 1;
export const VIRTIO_VSOCK_SHUTDOWN_SEND = 2;
/** Well-known CIDs (linux/vm_sockets.h). */
export const VMADDR_CID_HOST = 2;
/** The configuration space: le64 guest_cid (5.10.4). */
export const VSOCK_CONFIG_SIZE = 8;

const RXQ = 0, TXQ = 1;
/** Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE: the largest payload either side sends in one packet. */
export const MAX_PKT_PAYLOAD = 64 * 1024;
/** What we advertise as buf_alloc: bytes from the guest we hold before the host socket takes them. */
export const HOST_BUF_ALLOC = 256 * 1024;
/** Bytes from a host socket waiting for the guest before the socket is paused. */
const MAX_PENDING_BYTES = 256 * 1024;
/** Control packets waiting for the guest, per connection and for packets with no connection. */
const MAX_PENDING_CONTROL = 64;
const MAX_CONNECTIONS = 1024;
/** Host-initiated connections get local ports from here up (Firecracker-like: far from well-known ports). */
const FIRST_HOST_PORT = 0x4000_0000;

export interface VsockHeader {
  srcCid: bigint;
  dstCid: bigint;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

export function encodeHeader(h: VsockHeader): Uint8Array {
  const b = new Uint8Array(VSOCK_HDR_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, h.srcCid, true);
  v.setBigUint64(8, h.dstCid, true);
  v.setUint32(16, h.srcPort >>> 0, true);
  v.setUint32(20, h.dstPort >>> 0, true);
  v.setUint32(24, h.len >>> 0, true);
  v.setUint16(28, h.type, true);
  v.setUint16(30, h.op, true);
  v.setUint32(32, h.flags >>> 0, true);
  v.setUint32(36, h.bufAlloc >>> 0, true);
  v.setUint32(40, h.fwdCnt >>> 0, true);
  return b;
}

export function decodeHeader(b: Uint8Array): VsockHeader {
  const v = new DataView(b.buffer, b.byteOffset, VSOCK_HDR_SIZE);
  return {
    srcCid: v.getBigUint64(0, true), dstCid: v.getBigUint64(8, true),
    srcPort: v.getUint32(16, true), dstPort: v.getUint32(20, true), len: v.getUint32(24, true),
    type: v.getUint16(28, true), op: v.getUint16(30, true), flags: v.getUint32(32, true),
    bufAlloc: v.getUint32(36, true), fwdCnt: v.getUint32(40, true),
  };
}

type ConnState =
  /** The guest asked (REQUEST); we are connecting to the host's Unix socket. */
  | 'connecting'
  /** A host client asked; REQUEST sent (or waiting), no RESPONSE yet. */
  | 'requesting'
  | 'established';

/** What waits for the guest on one connection, in order. */
type Outgoing =
  | { readonly kind: 'control'; readonly op: number; readonly flags: number }
  | { readonly kind: 'data'; bytes: Uint8Array };

interface Connection {
  readonly hostPort: number;
  readonly guestPort: number;
  state: ConnState;
  sock: Socket | null;
  /** The guest's receive buffer and how much of it it has consumed (from its headers). */
  peerBufAlloc: number;
  peerFwdCnt: number;
  /** Bytes of RW payload sent to the guest (mod 2^32). */
  txCnt: number;
  /** Bytes of RW payload received from the guest, and how many the host socket has taken (mod 2^32). */
  rxCnt: number;
  fwdCnt: number;
  /** fwd_cnt as last told to the guest. */
  fwdCntSent: number;
  out: Outgoing[];
  pendingBytes: number;
  controlCount: number;
  /** The guest will send no more / receive no more (its SHUTDOWN flags). */
  guestShutdown: number;
  /** We told the guest we send no more (host socket ended). */
  hostEnded: boolean;
  paused: boolean;
}

export interface VirtioVsockState {
  readonly version: 1;
  /** The guest's CID as a decimal string (u64 does not fit a JSON number). */
  guestCid: string;
}

export interface VirtioVsockOptions {
  readonly cid: number;
  /** The Unix socket path for host-initiated connections; guest connections to host port P go to `${socket}_P`. */
  readonly socket: string;
  readonly log?: (line: string) => void;
}

const key = (hostPort: number, guestPort: number): string => `${hostPort}:${guestPort}`;
const u32 = (n: number): number => n >>> 0;

export class VirtioVsock implements VirtioDevice<VirtioVsockState> {
  readonly name = 'vsock';
  readonly deviceId = DEVICE_ID_VSOCK;
  /** No VIRTIO_VSOCK_F_SEQPACKET: stream sockets only. */
  readonly features = 0n;
  readonly queueSizes: readonly number[] = [128, 128, 16];
  readonly configSize = VSOCK_CONFIG_SIZE;
  private ctx: VirtioDeviceContext | null = null;
  private guestCid: bigint;
  private readonly conns = new Map<string, Connection>();
  /** Connections with something waiting for the guest, in arrival order (round robin). */
  private ready: Connection[] = [];
  /** Packets for the guest that belong to no connection (RSTs to bad packets). */
  private loose: VsockHeader[] = [];
  private nextHostPort = FIRST_HOST_PORT;
  /** Incremented by reset and close: host completions of an older epoch are dropped. */
  private epoch = 0;
  private closed = false;
  private readonly host: VsockHost;
  private readonly log: (line: string) => void;

  constructor(private readonly opts: VirtioVsockOptions) {
    if (!Number.isInteger(opts.cid) || opts.cid < 3 || opts.cid > 0xffffffff) throw new RangeError(`vsock: guest CID ${opts.cid} is not in 3..2^32-1`);
    this.guestCid = BigInt(opts.cid);
    this.log = opts.log ?? (() => {});
    const events: VsockHostEvents = {
      connect: (guestPort, sock, initial) => this.hostConnect(guestPort, sock, initial),
    };
    this.host = new VsockHost(opts.socket, events, this.log);
  }

  /** Starts listening on the host socket (the factory calls it; throws a one-line Error if it cannot). */
  listen(): Promise<void> {
    return this.host.listen();
  }

  /** Live connections (for tests and diagnostics). */
  get connections(): number {
    return this.conns.size;
  }

  attach(ctx: VirtioDeviceContext): void {
    this.ctx = ctx;
  }

  // ---------------------------------------------------------------- configuration space (5.10.4)

  readConfig(offset: number, size: ConfigAccessSize): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) {
      const o = offset + i;
      v = v * 256 + (o < 8 ? Number((this.guestCid >> BigInt(8 * o)) & 0xffn) : 0);
    }
    return v;
  }

  writeConfig(): void {
    // guest_cid is read-only.
  }

  // ---------------------------------------------------------------- lifecycle

  activate(): void {
    this.drainTx();
    this.deliver();
  }

  notify(index: number): void {
    if (index === TXQ) this.drainTx();
    else this.deliver();
  }

  reset(): void {
    // The guest's sockets are gone with its driver: drop every connection.
    this.dropAll();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.dropAll();
    await this.host.close();
  }

  private dropAll(): void {
    this.epoch++;
    for (const c of this.conns.values()) c.sock?.destroy();
    this.conns.clear();
    this.ready = [];
    this.loose = [];
  }

  // ---------------------------------------------------------------- host side

  /** A host client asked for guest port `guestPort` (vsock-host.ts parsed its CONNECT line). */
  private hostConnect(guestPort: number, sock: Socket, initial: Uint8Array): void {
    if (this.closed || this.conns.size >= MAX_CONNECTIONS) { sock.destroy(); return; }
    let hostPort = this.nextHostPort;
    for (let i = 0; this.portInUse(hostPort); i++) {
      if (i > MAX_CONNECTIONS) { sock.destroy(); return; }
      hostPort = hostPort >= 0xfffffffe ? FIRST_HOST_PORT : hostPort + 1;
    }
    this.nextHostPort = hostPort >= 0xfffffffe ? FIRST_HOST_PORT : hostPort + 1;
    const c = this.newConnection(hostPort, guestPort, 'requesting', sock);
    sock.pause();
    if (initial.length > 0) this.queueData(c, initial);
    this.wire(c, sock);
    this.queueControl(c, VIRTIO_VSOCK_OP_REQUEST, 0);
    this.deliver();
  }

  private portInUse(port: number): boolean {
    for (const c of this.conns.values()) if (c.hostPort === port) return true;
    return false;
  }

  private newConnection(hostPort: number, guestPort: number, state: ConnState, sock: Socket | null): Connection {
    const c: Connection = {
      hostPort, guestPort, state, sock, peerBufAlloc: 0, peerFwdCnt: 0, txCnt: 0, rxCnt: 0, fwdCnt: 0, fwdCntSent: 0,
      out: [], pendingBytes: 0, controlCount: 0, guestShutdown: 0, hostEnded: false, paused: false,
    };
    this.conns.set(key(hostPort, guestPort), c);
    return c;
  }

  private current(c: Connection, epoch: number): boolean {
    return epoch === this.epoch && this.conns.get(key(c.hostPort, c.guestPort)) === c;
  }

  /** Host socket events feed the connection while it is still the current one. */
  private wire(c: Connection, sock: Socket): void {
    const epoch = this.epoch;
    sock.on('data', (d: Buffer) => {
      if (!this.current(c, epoch)) return;
      this.queueData(c, new Uint8Array(d.buffer, d.byteOffset, d.length));
      this.deliver();
    });
    sock.on('end', () => {
      if (!this.current(c, epoch)) return;
      // The host sends no more; the guest may still send to it.
      c.hostEnded = true;
      this.queueControl(c, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_SEND);
      this.deliver();
    });
    sock.on('error', () => { /* 'close' follows */ });
    sock.on('close', () => {
      if (!this.current(c, epoch)) return;
      c.sock = null;
      if (c.state === 'established') {
        // Let waiting data reach the guest first; it answers with RST.
        this.queueControl(c, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
      } else {
        this.rst(c);
      }
      this.deliver();
    });
  }

  private queueData(c: Connection, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    // Copy: node reuses its read buffers.
    c.out.push({ kind: 'data', bytes: bytes.slice() });
    c.pendingBytes += bytes.length;
    this.markReady(c);
    this.flowControl(c);
  }

  private queueControl(c: Connection, op: number, flags: number): void {
    if (c.controlCount >= MAX_PENDING_CONTROL) {
      // A guest that never takes its packets: give up on the connection.
      this.remove(c);
      return;
    }
    c.out.push({ kind: 'control', op, flags });
    c.controlCount++;
    this.markReady(c);
  }

  private markReady(c: Connection): void {
    if (!this.ready.includes(c)) this.ready.push(c);
  }

  /** Credit the guest has left for data from us (5.10.6.3.1). */
  private peerCredit(c: Connection): number {
    const inFlight = u32(c.txCnt - c.peerFwdCnt);
    return inFlight >= c.peerBufAlloc ? 0 : c.peerBufAlloc - inFlight;
  }

  /** Pauses the host socket while the guest cannot take its bytes; resumes it when it can. */
  private flowControl(c: Connection): void {
    const s = c.sock;
    if (!s) return;
    const stop = c.state !== 'established' || c.pendingBytes >= MAX_PENDING_BYTES || this.peerCredit(c) === 0 || (c.guestShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) !== 0;
    if (stop && !c.paused) { s.pause(); c.paused = true; } else if (!stop && c.paused) { s.resume(); c.paused = false; }
  }

  /** Forgets a connection and closes its host socket (no packet to the guest). */
  private remove(c: Connection): void {
    this.conns.delete(key(c.hostPort, c.guestPort));
    this.ready = this.ready.filter((r) => r !== c);
    c.sock?.destroy();
    c.sock = null;
  }

  /** Resets a connection: RST to the guest, host socket closed. */
  private rst(c: Connection): void {
    this.remove(c);
    this.sendLoose(this.header(c.hostPort, c.guestPort, VIRTIO_VSOCK_OP_RST, 0, 0, 0, 0));
  }

  private sendLoose(h: VsockHeader): void {
    if (this.loose.length < MAX_PENDING_CONTROL) this.loose.push(h);
  }

  private header(hostPort: number, guestPort: number, op: number, flags: number, len: number, bufAlloc: number, fwdCnt: number): VsockHeader {
    return {
      srcCid: BigInt(VMADDR_CID_HOST), dstCid: this.guestCid, srcPort: hostPort, dstPort: guestPort, len,
      type: VIRTIO_VSOCK_TYPE_STREAM, op, flags, bufAlloc, fwdCnt,
    };
  }

  /** Runs `fn` on a later turn unless the device was reset or closed meanwhile. */
  private later(fn: () => void): void {
    const epoch = this.epoch;
    setImmediate(() => { if (epoch === this.epoch) fn(); });
  }

  // ---------------------------------------------------------------- to the guest (rx)

  /** Fills rx buffers with waiting packets: packets of no connection first, then connections round robin. */
  private deliver(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(RXQ);
    if (!ctx || !q) return;
    let used = false;
    // Bounded: the guest may keep adding buffers from another hart.
    for (let rounds = 0; ; rounds++) {
      if (rounds === 4 * q.size + 8) { this.later(() => this.deliver()); break; }
      const next = this.nextPacket();
      if (!next) break;
      if (q.available() === 0) {
        if (q.armNotification()) continue;
        break;
      }
      const chain = q.pop();
      if (!chain) break;
      if (chain.writableBytes < VSOCK_HDR_SIZE) {
        // Not even a header fits: give it back unused (the driver drops it).
        q.push(chain.head, 0);
        used = true;
        continue;
      }
      const bytes = this.take(next, chain.writableBytes - VSOCK_HDR_SIZE);
      const written = q.write(chain, bytes);
      if (written < 0) break;
      q.push(chain.head, written);
      used = true;
    }
    if (used) ctx.usedBuffers(RXQ);
    for (const c of this.conns.values()) this.flowControl(c);
  }

  /** The next thing that can go to the guest now: a loose packet, or a connection whose head item may be sent. */
  private nextPacket(): VsockHeader | Connection | null {
    const h = this.loose[0];
    if (h) return h;
    for (let i = 0; i < this.ready.length; i++) {
      const c = this.ready[i]!;
      const item = c.out[0];
      if (!item) { this.ready.splice(i--, 1); continue; }
      if (item.kind === 'data' && (c.state !== 'established' || this.peerCredit(c) === 0)) continue;
      if (item.kind === 'control' && item.op !== VIRTIO_VSOCK_OP_REQUEST && c.state === 'requesting') continue;
      // Round robin: the next turn goes to the connection after this one.
      this.ready.splice(i, 1);
      this.ready.push(c);
      return c;
    }
    return null;
  }

  /** The packet bytes (header and payload of at most `room` bytes) for `next`, consumed from its queue. */
  private take(next: VsockHeader | Connection, room: number): Uint8Array {
    if (!('out' in next)) {
      this.loose.shift();
      return encodeHeader(next);
    }
    const c = next;
    const item = c.out[0]!;
    c.fwdCntSent = c.fwdCnt;
    if (item.kind === 'control') {
      c.out.shift();
      c.controlCount--;
      if (item.op === VIRTIO_VSOCK_OP_SHUTDOWN && item.flags === (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) c.out.length = 0;
      return encodeHeader(this.header(c.hostPort, c.guestPort, item.op, item.flags, 0, HOST_BUF_ALLOC, c.fwdCnt));
    }
    const n = Math.min(item.bytes.length, room, MAX_PKT_PAYLOAD, this.peerCredit(c));
    const payload = item.bytes.subarray(0, n);
    if (n === item.bytes.length) c.out.shift(); else item.bytes = item.bytes.subarray(n);
    c.pendingBytes -= n;
    c.txCnt = u32(c.txCnt + n);
    const out = new Uint8Array(VSOCK_HDR_SIZE + n);
    out.set(encodeHeader(this.header(c.hostPort, c.guestPort, VIRTIO_VSOCK_OP_RW, 0, n, HOST_BUF_ALLOC, c.fwdCnt)));
    out.set(payload, VSOCK_HDR_SIZE);
    return out;
  }

  // ---------------------------------------------------------------- from the guest (tx)

  private drainTx(): void {
    const ctx = this.ctx;
    const q = ctx?.queue(TXQ);
    if (!ctx || !q) return;
    let used = false;
    for (let i = 0; i < 4 * q.size; i++) {
      const chain = q.pop();
      if (!chain) break;
      const pkt = this.readPacket(chain, q.read.bind(q));
      // Returned with length 0: tx buffers are device-readable only.
      if (!q.push(chain.head, 0)) break;
      used = true;
      if (pkt) this.handle(pkt.h, pkt.payload);
      if (!ctx.live()) break;
      // Bounded per call (the guest may add chains as fast as we take them); the rest come next turn.
      if (i === 4 * q.size - 1) this.later(() => this.drainTx());
    }
    if (used) ctx.usedBuffers(TXQ);
    this.deliver();
  }

  private readPacket(chain: DescriptorChain, read: (c: DescriptorChain, off?: number, len?: number) => Uint8Array | null): { h: VsockHeader; payload: Uint8Array } | null {
    if (chain.readableBytes < VSOCK_HDR_SIZE) return null;
    const hb = read(chain, 0, VSOCK_HDR_SIZE);
    if (!hb || hb.length < VSOCK_HDR_SIZE) return null;
    const h = decodeHeader(hb);
    if (h.len > MAX_PKT_PAYLOAD || h.len > chain.readableBytes - VSOCK_HDR_SIZE) {
      this.log(`vsock: packet from guest port ${h.srcPort} claims ${h.len} bytes, chain has ${chain.readableBytes - VSOCK_HDR_SIZE}`);
      this.refuse(h);
      return null;
    }
    const payload = h.len > 0 ? read(chain, VSOCK_HDR_SIZE, h.len) : new Uint8Array(0);
    if (!payload) return null;
    return { h, payload };
  }

  /** Answers a bad packet with RST (never a RST to a RST), closing its connection if it has one. */
  private refuse(h: VsockHeader): void {
    if (h.srcCid === this.guestCid && h.dstCid === BigInt(VMADDR_CID_HOST)) {
      const c = this.conns.get(key(h.dstPort, h.srcPort));
      if (c) { this.rst(c); return; }
    }
    if (h.op === VIRTIO_VSOCK_OP_RST) return;
    // The reply goes back to where the packet claimed to come from, but only to the guest.
    this.sendLoose({
      srcCid: BigInt(VMADDR_CID_HOST), dstCid: this.guestCid, srcPort: h.dstPort, dstPort: h.srcPort, len: 0,
      type: VIRTIO_VSOCK_TYPE_STREAM, op: VIRTIO_VSOCK_OP_RST, flags: 0, bufAlloc: 0, fwdCnt: 0,
    });
  }

  private handle(h: VsockHeader, payload: Uint8Array): void {
    if (h.srcCid !== this.guestCid || h.dstCid !== BigInt(VMADDR_CID_HOST) || h.type !== VIRTIO_VSOCK_TYPE_STREAM) {
      this.refuse(h);
      return;
    }
    const c = this.conns.get(key(h.dstPort, h.srcPort));
    if (!c) {
      if (h.op === VIRTIO_VSOCK_OP_REQUEST) this.guestConnect(h);
      else this.refuse(h);
      return;
    }
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    switch (h.op) {
      case VIRTIO_VSOCK_OP_RESPONSE:
        if (c.state !== 'requesting' || !c.sock) { this.rst(c); return; }
        c.state = 'established';
        c.sock.write(`OK ${c.hostPort}\n`);
        break;
      case VIRTIO_VSOCK_OP_RST:
        this.remove(c);
        return;
      case VIRTIO_VSOCK_OP_SHUTDOWN:
        this.guestShutdown(c, h.flags);
        return;
      case VIRTIO_VSOCK_OP_RW:
        this.guestData(c, payload);
        break;
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        break;
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        this.queueControl(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
        break;
      case VIRTIO_VSOCK_OP_REQUEST:
      default:
        // A REQUEST on a live connection, or an unknown op.
        this.rst(c);
        return;
    }
    this.flowControl(c);
  }

  /** The guest connects to host port `h.dstPort`: connect to `${socket}_${port}`, RESPONSE or RST. */
  private guestConnect(h: VsockHeader): void {
    if (this.closed || this.conns.size >= MAX_CONNECTIONS) { this.refuse(h); return; }
    const c = this.newConnection(h.dstPort, h.srcPort, 'connecting', null);
    c.peerBufAlloc = h.bufAlloc;
    c.peerFwdCnt = h.fwdCnt;
    const epoch = this.epoch;
    this.host.connectOut(h.dstPort, (sock) => {
      if (!this.current(c, epoch)) { sock?.destroy(); return; }
      if (!sock) { this.rst(c); this.deliver(); return; }
      c.sock = sock;
      c.state = 'established';
      this.wire(c, sock);
      this.queueControl(c, VIRTIO_VSOCK_OP_RESPONSE, 0);
      this.flowControl(c);
      this.deliver();
    });
  }

  private guestData(c: Connection, payload: Uint8Array): void {
    if (c.state !== 'established' || (c.guestShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) !== 0) { this.rst(c); return; }
    // Data beyond the credit we gave (5.10.6.3.1): the guest broke the protocol.
    if (u32(c.rxCnt - c.fwdCnt) + payload.length > HOST_BUF_ALLOC) {
      this.log(`vsock: guest port ${c.guestPort} sent beyond its credit`);
      this.rst(c);
      return;
    }
    if (payload.length === 0) return;
    c.rxCnt = u32(c.rxCnt + payload.length);
    const sock = c.sock;
    if (!sock) {
      // The host side is gone; the data has nowhere to go but still frees credit.
      c.fwdCnt = c.rxCnt;
      return;
    }
    const epoch = this.epoch;
    sock.write(payload, (err) => {
      if (err || !this.current(c, epoch)) return;
      // The host socket took the bytes: they leave our buffer (fwd_cnt).
      c.fwdCnt = u32(c.fwdCnt + payload.length);
      // Tell the guest once a quarter of its window came free, so it never stalls on an old fwd_cnt.
      if (u32(c.fwdCnt - c.fwdCntSent) >= HOST_BUF_ALLOC / 4 && !c.out.some((o) => o.kind === 'control' && o.op === VIRTIO_VSOCK_OP_CREDIT_UPDATE)) {
        this.queueControl(c, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0);
        this.deliver();
      }
    });
  }

  private guestShutdown(c: Connection, flags: number): void {
    c.guestShutdown |= flags & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
    if ((c.guestShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) !== 0) c.sock?.end();
    if (c.guestShutdown === (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) {
      // Both directions closed: the connection is over (5.10.6.5: the peer answers with RST).
      const sock = c.sock;
      c.sock = null;
      this.rst(c);
      sock?.end();
      return;
    }
    if ((c.guestShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) !== 0) {
      // Nothing more reaches the guest.
      c.out = c.out.filter((o) => o.kind === 'control');
      c.pendingBytes = 0;
    }
    this.flowControl(c);
  }

  // ---------------------------------------------------------------- snapshots

  save(): VirtioVsockState {
    return { version: 1, guestCid: this.guestCid.toString() };
  }

  restore(state: VirtioVsockState): void {
    if (state === null || typeof state !== 'object' || state.version !== 1) throw new RangeError('virtio-vsock: malformed state');
    if (typeof state.guestCid !== 'string' || !/^[0-9]{1,20}$/.test(state.guestCid)) throw new RangeError('virtio-vsock: malformed state');
    const cid = BigInt(state.guestCid);
    if (cid < 3n || cid > 0xffff_ffffn) throw new RangeError('virtio-vsock: malformed state');
    // Host connections do not survive a snapshot.
    this.dropAll();
    this.guestCid = cid;
  }
}
