/**
 * TCP (RFC 9293) toward the guest, spliced onto host net.Sockets. Each guest
 * connection is a real TCP endpoint here: sequence space, retransmission,
 * flow control both ways. We never offer window scaling, SACK or timestamps,
 * so (RFC 7323 §1.3, RFC 2018) the guest uses none of them with us and its
 * windows are plain 16-bit values.
 */
import net from 'node:net';
import { checksum, pseudoSum, verify } from './checksum.js';
import { IPPROTO_TCP, readU16, readU32, writeU16, writeU32 } from './ipv4.js';

export const TH_FIN = 0x01;
export const TH_SYN = 0x02;
export const TH_RST = 0x04;
export const TH_PSH = 0x08;
export const TH_ACK = 0x10;
const TCPOPT_EOL = 0;
const TCPOPT_NOP = 1;
const TCPOPT_MAXSEG = 2;

/** Our MSS: a 1500-byte Ethernet MTU less 40 bytes of IPv4 and TCP headers. */
export const TCP_MSS = 1460;
/** RFC 9293 §3.7.1: the MSS assumed when the peer sends none. */
const DEFAULT_MSS = 536;
/** What we buffer toward the host socket; also the largest window we advertise. */
export const RCV_BUF = 65535;
/** Host bytes buffered for the guest (unacknowledged + unsent) before we pause the host socket. */
export const SND_BUF = 256 * 1024;
export const RTO_INITIAL_MS = 400;
const RTO_MAX_MS = 10_000;
const MAX_RETRIES = 10;
const CONNECT_TIMEOUT_MS = 30_000;
export const MAX_CONNECTIONS = 512;
/** RFC 5681 §3.2: the duplicate ACK count that triggers fast retransmit. */
const DUPACK_THRESHOLD = 3;

export interface TcpSegment {
  readonly sport: number;
  readonly dport: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly mss: number | undefined;
  readonly payload: Uint8Array;
}

/** The segment in an IPv4 payload; undefined if truncated, mis-sized or its checksum is wrong. */
export function parseTcp(src: number, dst: number, bytes: Uint8Array): TcpSegment | undefined {
  if (bytes.length < 20) return undefined;
  const off = (bytes[12]! >>> 4) * 4;
  if (off < 20 || off > bytes.length) return undefined;
  if (!verify(bytes, 0, bytes.length, pseudoSum(src, dst, IPPROTO_TCP, bytes.length))) return undefined;
  let mss: number | undefined;
  // RFC 9293 §3.1: options we do not know are skipped by their length.
  for (let i = 20; i < off;) {
    const kind = bytes[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) { i++; continue; }
    if (i + 1 >= off) break;
    const len = bytes[i + 1]!;
    if (len < 2 || i + len > off) break;
    if (kind === TCPOPT_MAXSEG && len === 4) mss = readU16(bytes, i + 2);
    i += len;
  }
  return {
    sport: readU16(bytes, 0), dport: readU16(bytes, 2), seq: readU32(bytes, 4), ack: readU32(bytes, 8),
    flags: bytes[13]! & 0x3f, window: readU16(bytes, 14), mss, payload: bytes.subarray(off),
  };
}

export function buildTcp(src: number, dst: number, sport: number, dport: number, seq: number, ack: number,
  flags: number, window: number, data?: Uint8Array, mss?: number): Uint8Array {
  const hlen = mss === undefined ? 20 : 24;
  const len = hlen + (data?.length ?? 0);
  const s = new Uint8Array(len);
  writeU16(s, 0, sport);
  writeU16(s, 2, dport);
  writeU32(s, 4, seq >>> 0);
  writeU32(s, 8, ack >>> 0);
  s[12] = (hlen / 4) << 4;
  s[13] = flags;
  writeU16(s, 14, Math.max(0, Math.min(0xffff, window)));
  if (mss !== undefined) {
    s[20] = TCPOPT_MAXSEG; s[21] = 4; writeU16(s, 22, mss);
  }
  if (data) s.set(data, hlen);
  writeU16(s, 16, checksum(s, 0, len, pseudoSum(src, dst, IPPROTO_TCP, len)));
  return s;
}

/** a - b in sequence space, as a signed 32-bit distance. */
function seqDiff(a: number, b: number): number { return (a - b) | 0; }
function seqAdd(a: number, n: number): number { return (a + n) >>> 0; }

type State =
  /** Guest sent SYN; the host socket is connecting. */
  | 'connecting'
  /** We sent the guest our SYN (a host forward). */
  | 'syn-sent'
  /** Host connected; our SYN-ACK awaits the guest's ACK. */
  | 'syn-received'
  | 'established'
  | 'closed';

interface Conn {
  readonly key: string;
  readonly guestIp: number;
  readonly guestPort: number;
  /** The far end's address as the guest sees it. */
  readonly peerIp: number;
  readonly peerPort: number;
  readonly socket: net.Socket;
  state: State;
  readonly iss: number;
  /** Oldest unacknowledged sequence number; buf[0] is the byte at sndUna once established. */
  sndUna: number;
  sndNxt: number;
  /** Highest sequence number sent (sndNxt goes back to sndUna to retransmit). */
  sndMax: number;
  /** The guest's advertised window (unscaled). */
  sndWnd: number;
  mss: number;
  buf: Buffer;
  /** The host sent EOF: our FIN follows the buffered data. */
  hostEof: boolean;
  finAcked: boolean;
  rcvNxt: number;
  guestFin: boolean;
  /** The window in our last segment; a window update is due when it grows past it. */
  lastWnd: number;
  ackPending: boolean;
  dupAcks: number;
  timer: NodeJS.Timeout | undefined;
  rto: number;
  retries: number;
  hostPaused: boolean;
}

export interface TcpLink {
  /** Sends a TCP segment (built by buildTcp) to the guest; false if the guest had no room. */
  toGuest(src: number, dst: number, segment: Uint8Array): boolean;
  /** Maps a guest destination to a host address; undefined refuses the connection. */
  hostAddress(ip: number): string | undefined;
  log(line: string): void;
}

export interface TcpStats { connections: number; retransmits: number; hostPauses: number }

export class TcpNat {
  private readonly conns = new Map<string, Conn>();
  private ackQueue: Conn[] = [];
  private ackScheduled = false;
  private nextPort = 40000;
  private closed = false;
  /** The guest refused a frame: stop sending until it has room (resume) or a timer fires. */
  private blocked = false;
  readonly stats: TcpStats = { connections: 0, retransmits: 0, hostPauses: 0 };

  constructor(private readonly link: TcpLink) {}

  get size(): number { return this.conns.size; }

  /** A segment from the guest (`src`/`dst` its IPv4 addresses). */
  input(src: number, dst: number, seg: TcpSegment): void {
    if (this.closed) return;
    const key = `${src}:${seg.sport}>${dst}:${seg.dport}`;
    const c = this.conns.get(key);
    if (c) { this.segment(c, seg); return; }
    if ((seg.flags & TH_RST) !== 0) return;
    if ((seg.flags & (TH_SYN | TH_ACK | TH_FIN)) !== TH_SYN) { this.resetFor(src, dst, seg); return; }
    this.open(key, src, dst, seg);
  }

  /** A host connection forwarded to guestIp:guestPort (hostfwd): we open toward the guest. */
  accept(socket: net.Socket, guestIp: number, guestPort: number, peerIp: number): void {
    if (this.closed || this.conns.size >= MAX_CONNECTIONS) { socket.destroy(); return; }
    let port = 0;
    for (let tries = 0; tries < 20000; tries++) {
      const p = this.nextPort;
      this.nextPort = p >= 60999 ? 40000 : p + 1;
      if (!this.conns.has(`${guestIp}:${guestPort}>${peerIp}:${p}`)) { port = p; break; }
    }
    if (port === 0) { socket.destroy(); return; }
    const c = this.newConn(`${guestIp}:${guestPort}>${peerIp}:${port}`, guestIp, guestPort, peerIp, port, socket,
      'syn-sent');
    this.sendSyn(c);
    this.armTimer(c);
  }

  /** The guest has receive buffers again. */
  resume(): void {
    if (!this.blocked) return;
    this.blocked = false;
    for (const c of this.conns.values()) this.output(c);
  }

  close(): void {
    this.closed = true;
    for (const c of [...this.conns.values()]) this.drop(c);
  }

  private open(key: string, src: number, dst: number, seg: TcpSegment): void {
    const host = this.link.hostAddress(dst);
    if (host === undefined || this.conns.size >= MAX_CONNECTIONS || seg.dport === 0) {
      this.resetFor(src, dst, seg);
      return;
    }
    const socket = net.connect({ host, port: seg.dport, allowHalfOpen: true });
    const c = this.newConn(key, src, seg.sport, dst, seg.dport, socket, 'connecting');
    c.rcvNxt = seqAdd(seg.seq, 1);
    c.sndWnd = seg.window;
    c.mss = Math.max(64, Math.min(TCP_MSS, seg.mss ?? DEFAULT_MSS));
    c.timer = setTimeout(() => { this.reset(c); }, CONNECT_TIMEOUT_MS);
    socket.once('connect', () => {
      if (c.state !== 'connecting') return;
      clearTimeout(c.timer);
      c.timer = undefined;
      c.state = 'syn-received';
      this.sendSyn(c);
      this.armTimer(c);
    });
  }

  private newConn(key: string, guestIp: number, guestPort: number, peerIp: number, peerPort: number,
    socket: net.Socket, state: State): Conn {
    const iss = (Math.random() * 0x100000000) >>> 0;
    const c: Conn = {
      key, guestIp, guestPort, peerIp, peerPort, socket, state, iss,
      sndUna: iss, sndNxt: seqAdd(iss, 1), sndMax: seqAdd(iss, 1), sndWnd: 0, mss: DEFAULT_MSS,
      buf: Buffer.alloc(0), hostEof: false, finAcked: false, rcvNxt: 0, guestFin: false, lastWnd: RCV_BUF,
      ackPending: false, dupAcks: 0, timer: undefined, rto: RTO_INITIAL_MS, retries: 0, hostPaused: false,
    };
    this.conns.set(key, c);
    this.stats.connections++;
    socket.on('data', (chunk: Buffer) => {
      if (c.state === 'closed') return;
      c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
      if (c.buf.length >= SND_BUF && !c.hostPaused) {
        c.hostPaused = true;
        this.stats.hostPauses++;
        socket.pause();
      }
      this.output(c);
    });
    socket.on('end', () => {
      if (c.state === 'closed') return;
      c.hostEof = true;
      this.output(c);
    });
    socket.on('drain', () => {
      if (c.state === 'closed') return;
      if (this.window(c) > c.lastWnd) this.sendAck(c);
    });
    socket.on('error', () => {
      if (c.state !== 'closed') this.reset(c);
    });
    socket.on('close', () => {
      // A host socket that closes before both directions finished (e.g. destroyed) resets the guest.
      if (c.state !== 'closed' && !(c.hostEof && c.guestFin)) this.reset(c);
    });
    return c;
  }

  private segment(c: Conn, seg: TcpSegment): void {
    const flags = seg.flags;
    if ((flags & TH_RST) !== 0) {
      // RFC 5961 §3: only an in-window RST resets (a blind one is ignored).
      const ok = c.state === 'syn-sent'
        ? (flags & TH_ACK) !== 0 && seg.ack === c.sndNxt
        : c.state === 'connecting'
          ? seg.seq === c.rcvNxt
          : seqDiff(seg.seq, c.rcvNxt) >= 0 && seqDiff(seg.seq, c.rcvNxt) <= RCV_BUF;
      if (ok) this.drop(c);
      return;
    }
    switch (c.state) {
      case 'connecting':
        return; // the guest's SYN retransmissions wait for the host connect
      case 'syn-sent': {
        if ((flags & TH_ACK) === 0) return;
        if (seg.ack !== c.sndNxt) { this.resetFor(c.guestIp, c.peerIp, seg); return; }
        if ((flags & TH_SYN) === 0) return;
        c.rcvNxt = seqAdd(seg.seq, 1);
        c.sndUna = c.sndNxt;
        c.sndWnd = seg.window;
        c.mss = Math.max(64, Math.min(TCP_MSS, seg.mss ?? DEFAULT_MSS));
        this.established(c);
        this.sendAck(c);
        c.socket.resume();
        return;
      }
      case 'syn-received':
        if ((flags & TH_SYN) !== 0) { this.sendSyn(c); return; }
        if ((flags & TH_ACK) === 0) return;
        if (seg.ack !== c.sndNxt) { this.resetFor(c.guestIp, c.peerIp, seg); return; }
        c.sndUna = c.sndNxt;
        c.sndWnd = seg.window;
        this.established(c);
        break;
      case 'established':
        if ((flags & TH_SYN) !== 0) { this.sendAck(c); return; }
        if ((flags & TH_ACK) === 0) return;
        break;
      case 'closed':
        return;
      default: {
        const never: never = c.state;
        throw new Error(`tcp state ${String(never)}`);
      }
    }
    this.ackReceived(c, seg);
    if (c.state !== 'established') return;
    this.dataReceived(c, seg);
    if (c.state !== 'established') return;
    this.output(c);
    this.maybeFinish(c);
  }

  private established(c: Conn): void {
    c.state = 'established';
    c.retries = 0;
    c.rto = RTO_INITIAL_MS;
    this.clearTimer(c);
  }

  private ackReceived(c: Conn, seg: TcpSegment): void {
    const acked = seqDiff(seg.ack, c.sndUna);
    const outstanding = seqDiff(c.sndMax, c.sndUna);
    if (acked > outstanding) { this.sendAck(c); return; } // acks what we never sent
    if (acked < 0) return; // an old ACK: its window is stale too
    if (acked > 0) {
      const data = Math.min(acked, c.buf.length);
      c.buf = c.buf.subarray(data);
      if (acked > data) c.finAcked = true;
      c.sndUna = seg.ack;
      if (seqDiff(c.sndNxt, c.sndUna) < 0) c.sndNxt = c.sndUna;
      c.dupAcks = 0;
      c.retries = 0;
      c.rto = RTO_INITIAL_MS;
      this.clearTimer(c);
      if (c.hostPaused && c.buf.length < SND_BUF / 2) {
        c.hostPaused = false;
        c.socket.resume();
      }
    } else if (outstanding > 0 && seg.payload.length === 0 && (seg.flags & TH_FIN) === 0 &&
      seg.window === c.sndWnd) {
      if (++c.dupAcks === DUPACK_THRESHOLD) {
        // RFC 5681 §3.2 fast retransmit; we go back to the hole and resend from there.
        c.sndNxt = c.sndUna;
        this.stats.retransmits++;
      }
    }
    c.sndWnd = seg.window;
    // The guest answers our zero-window probes: it is alive, only not reading.
    if (seg.window === 0) c.retries = 0;
  }

  private dataReceived(c: Conn, seg: TcpSegment): void {
    const fin = (seg.flags & TH_FIN) !== 0;
    const len = seg.payload.length;
    if (len === 0 && !fin) return;
    if (c.guestFin) { this.sendAck(c); return; } // retransmitted FIN or data after it
    const skip = seqDiff(c.rcvNxt, seg.seq);
    if (skip < 0 || skip > len || (skip === len && !fin)) {
      // Out of order (we keep no reassembly queue) or a duplicate: tell the guest where we are.
      this.sendAck(c);
      return;
    }
    const room = this.window(c);
    let data = seg.payload.subarray(skip);
    const truncated = data.length > room;
    if (truncated) data = data.subarray(0, room);
    if (data.length > 0) {
      if (c.socket.writable) c.socket.write(data);
      c.rcvNxt = seqAdd(c.rcvNxt, data.length);
    }
    if (fin && !truncated) {
      c.guestFin = true;
      c.rcvNxt = seqAdd(c.rcvNxt, 1);
      if (c.socket.writable) c.socket.end();
      this.sendAck(c);
      return;
    }
    if (truncated) { this.sendAck(c); return; }
    this.queueAck(c);
  }

  /** Our receive window: what the host socket's write buffer can still take. */
  private window(c: Conn): number {
    return Math.max(0, RCV_BUF - c.socket.writableLength);
  }

  /** Sends what the guest's window allows, then our FIN once the host has ended. */
  private output(c: Conn, probe = false): void {
    if (c.state !== 'established' || this.blocked) return;
    for (;;) {
      const offset = seqDiff(c.sndNxt, c.sndUna);
      const unsent = c.buf.length - offset;
      let room = c.sndWnd - offset;
      if (probe && room <= 0 && offset === 0) room = 1; // RFC 9293 §3.8.6.1 zero-window probe
      if (unsent > 0 && room > 0) {
        const n = Math.min(unsent, room, c.mss);
        const data = c.buf.subarray(offset, offset + n);
        const flags = TH_ACK | (n === unsent ? TH_PSH : 0);
        if (!this.emit(c, c.sndNxt, flags, data)) return;
        c.sndNxt = seqAdd(c.sndNxt, n);
      } else if (unsent === 0 && c.hostEof && offset === c.buf.length && !c.finAcked) {
        if (!this.emit(c, c.sndNxt, TH_ACK | TH_FIN)) return;
        c.sndNxt = seqAdd(c.sndNxt, 1);
      } else {
        break;
      }
      if (seqDiff(c.sndNxt, c.sndMax) > 0) c.sndMax = c.sndNxt;
      probe = false;
    }
    this.armTimer(c);
  }

  /** Sends one segment; false (and the frame dropped) if the guest has no room. */
  private emit(c: Conn, seq: number, flags: number, data?: Uint8Array, mss?: number): boolean {
    const wnd = this.window(c);
    const ack = (flags & TH_ACK) !== 0 ? c.rcvNxt : 0;
    const seg = buildTcp(c.peerIp, c.guestIp, c.peerPort, c.guestPort, seq, ack, flags, wnd, data, mss);
    if (!this.link.toGuest(c.peerIp, c.guestIp, seg)) {
      this.blocked = true;
      return false;
    }
    if ((flags & TH_ACK) !== 0) {
      c.ackPending = false;
      c.lastWnd = wnd;
    }
    return true;
  }

  private sendSyn(c: Conn): void {
    const flags = c.state === 'syn-sent' ? TH_SYN : TH_SYN | TH_ACK;
    this.emit(c, c.iss, flags, undefined, TCP_MSS);
  }

  private sendAck(c: Conn): void {
    this.emit(c, c.sndNxt, TH_ACK);
  }

  /** Delayed ACK: one ACK for every segment the guest sent in this turn of the event loop. */
  private queueAck(c: Conn): void {
    if (c.ackPending) return;
    c.ackPending = true;
    this.ackQueue.push(c);
    if (this.ackScheduled) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      const q = this.ackQueue;
      this.ackQueue = [];
      for (const x of q) if (x.ackPending && x.state === 'established') this.sendAck(x);
    });
  }

  private armTimer(c: Conn): void {
    if (c.timer !== undefined || c.state === 'closed') return;
    const waiting = c.state === 'syn-sent' || c.state === 'syn-received' || c.sndMax !== c.sndUna ||
      (c.state === 'established' && (c.buf.length > 0 || (c.hostEof && !c.finAcked)));
    if (!waiting) return;
    c.timer = setTimeout(() => this.timeout(c), c.rto);
  }

  private clearTimer(c: Conn): void {
    if (c.timer !== undefined) clearTimeout(c.timer);
    c.timer = undefined;
  }

  private timeout(c: Conn): void {
    c.timer = undefined;
    if (c.state === 'closed') return;
    if (++c.retries > MAX_RETRIES) { this.reset(c); return; }
    c.rto = Math.min(c.rto * 2, RTO_MAX_MS);
    this.blocked = false;
    if (c.state === 'syn-sent' || c.state === 'syn-received') {
      this.sendSyn(c);
    } else {
      // Go back to the oldest unacknowledged byte (RFC 6298 §5.4) and resend from there.
      if (c.sndNxt !== c.sndUna) this.stats.retransmits++;
      c.sndNxt = c.sndUna;
      this.output(c, true);
    }
    this.armTimer(c);
  }

  private maybeFinish(c: Conn): void {
    // Both FINs are acknowledged: gone at once, without TIME_WAIT (the host socket
    // keeps the host side's own TCP rules).
    if (c.guestFin && c.hostEof && c.finAcked) this.drop(c);
  }

  /** Resets the guest's side and forgets the connection. */
  private reset(c: Conn): void {
    if (c.state === 'closed') return;
    if (c.state === 'connecting') {
      const seg = buildTcp(c.peerIp, c.guestIp, c.peerPort, c.guestPort, 0, c.rcvNxt, TH_RST | TH_ACK, 0);
      this.link.toGuest(c.peerIp, c.guestIp, seg);
    } else if (c.state !== 'syn-sent') {
      this.emit(c, c.sndNxt, TH_RST | TH_ACK);
    } else {
      this.emit(c, c.sndNxt, TH_RST);
    }
    this.drop(c);
  }

  private drop(c: Conn): void {
    c.state = 'closed';
    this.clearTimer(c);
    if (this.conns.get(c.key) === c) this.conns.delete(c.key);
    if (!c.socket.destroyed) {
      // Resetting the host side too when the guest did not finish cleanly.
      try {
        // resetAndDestroy on a socket still connecting would wait for the connect.
        if (c.socket.connecting) c.socket.destroy();
        else if (c.guestFin && c.hostEof) c.socket.end();
        else c.socket.resetAndDestroy();
      } catch {
        c.socket.destroy();
      }
    }
  }

  /** RFC 9293 §3.10.7.1: the RST answering a segment for no connection. */
  private resetFor(guestIp: number, peerIp: number, seg: TcpSegment): void {
    let len = seg.payload.length;
    if ((seg.flags & TH_SYN) !== 0) len++;
    if ((seg.flags & TH_FIN) !== 0) len++;
    const out = (seg.flags & TH_ACK) !== 0
      ? buildTcp(peerIp, guestIp, seg.dport, seg.sport, seg.ack, 0, TH_RST, 0)
      : buildTcp(peerIp, guestIp, seg.dport, seg.sport, 0, seqAdd(seg.seq, len), TH_RST | TH_ACK, 0);
    this.link.toGuest(peerIp, guestIp, out);
  }
}
