/**
 * A scripted guest for the user-mode network tests: it sits on the back end's
 * wire, decodes what arrives, answers what it is told to, and keeps a tiny TCP
 * of its own (in order only, ACKs everything, a fixed small window).
 */
import { UserNet } from '../src/devices/backends/usernet/index.js';
import { checksum, pseudoSum } from '../src/devices/backends/usernet/checksum.js';
import { ETH_HLEN, parseMac } from '../src/devices/backends/usernet/ethernet.js';
import { ipv4Frame, IPPROTO_TCP, IPPROTO_UDP, readU16, readU32, writeU16, writeU32 } from '../src/devices/backends/usernet/ipv4.js';
import { buildUdp } from '../src/devices/backends/usernet/udp.js';

export const GUEST_MAC_TEXT = '52:54:00:12:34:56';
export const GUEST_MAC = parseMac(GUEST_MAC_TEXT)!;
export const GW_MAC = parseMac('52:55:0a:00:02:02')!;
export const GUEST = 0x0a00020f;
export const GW = 0x0a000202;
export const DNS = 0x0a000203;

/** An independent check of the Internet checksum (word sum with end-around carry). */
export function sumOk(b: Uint8Array, start: number, end: number, pseudo = 0): boolean {
  let s = pseudo;
  for (let i = start; i < end; i += 2) {
    s += (b[i]! << 8) + (i + 1 < end ? b[i + 1]! : 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}

/** A decoded IPv4 frame from the back end, with every checksum verified. */
export interface Rx {
  readonly frame: Uint8Array;
  readonly dstMac: Uint8Array;
  readonly type: number;
  readonly src: number;
  readonly dst: number;
  readonly proto: number;
  /** Transport bytes. */
  readonly l4: Uint8Array;
}

export function decode(frame: Uint8Array): Rx | undefined {
  const type = readU16(frame, 12);
  if (type !== 0x0800) return { frame, dstMac: frame.subarray(0, 6), type, src: 0, dst: 0, proto: 0, l4: frame.subarray(14) };
  const ip = frame.subarray(ETH_HLEN);
  if (!sumOk(ip, 0, 20)) throw new Error('bad IPv4 header checksum from the back end');
  const total = readU16(ip, 2);
  if (total !== ip.length) throw new Error(`IPv4 total length ${total} but ${ip.length} bytes`);
  const src = readU32(ip, 12);
  const dst = readU32(ip, 16);
  const proto = ip[9]!;
  const l4 = ip.subarray(20, total);
  if (proto === IPPROTO_TCP && !sumOk(l4, 0, l4.length, pseudoSum(src, dst, proto, l4.length))) {
    throw new Error('bad TCP checksum from the back end');
  }
  if (proto === IPPROTO_UDP && !sumOk(l4, 0, l4.length, pseudoSum(src, dst, proto, l4.length))) {
    throw new Error('bad UDP checksum from the back end');
  }
  if (proto === 1 && !sumOk(l4, 0, l4.length)) throw new Error('bad ICMP checksum from the back end');
  return { frame, dstMac: frame.subarray(0, 6), type, src, dst, proto, l4 };
}

export interface Tcp {
  readonly sport: number; readonly dport: number; readonly seq: number; readonly ack: number;
  readonly flags: number; readonly window: number; readonly options: Uint8Array; readonly data: Uint8Array;
}

export function tcpOf(rx: Rx): Tcp | undefined {
  if (rx.proto !== IPPROTO_TCP) return undefined;
  const b = rx.l4;
  const off = (b[12]! >>> 4) * 4;
  return {
    sport: readU16(b, 0), dport: readU16(b, 2), seq: readU32(b, 4), ack: readU32(b, 8), flags: b[13]!,
    window: readU16(b, 14), options: b.subarray(20, off), data: b.subarray(off),
  };
}

export function udpOf(rx: Rx): { sport: number; dport: number; data: Uint8Array } | undefined {
  if (rx.proto !== IPPROTO_UDP) return undefined;
  return { sport: readU16(rx.l4, 0), dport: readU16(rx.l4, 2), data: rx.l4.subarray(8, readU16(rx.l4, 4)) };
}

/** A TCP segment from the guest, with arbitrary raw option bytes (padded to 4). */
export function tcpFrame(src: number, dst: number, sport: number, dport: number, seq: number, ack: number,
  flags: number, window: number, data: Uint8Array = new Uint8Array(0), options: readonly number[] = []): Uint8Array {
  const optLen = Math.ceil(options.length / 4) * 4;
  const hlen = 20 + optLen;
  const s = new Uint8Array(hlen + data.length);
  writeU16(s, 0, sport); writeU16(s, 2, dport); writeU32(s, 4, seq >>> 0); writeU32(s, 8, ack >>> 0);
  s[12] = (hlen / 4) << 4; s[13] = flags; writeU16(s, 14, window);
  s.set(options, 20);
  s.set(data, hlen);
  writeU16(s, 16, checksum(s, 0, s.length, pseudoSum(src, dst, IPPROTO_TCP, s.length)));
  return ipv4Frame(GW_MAC, GUEST_MAC, src, dst, IPPROTO_TCP, s);
}

export function udpFrame(src: number, dst: number, sport: number, dport: number, data: Uint8Array,
  dstMac: Uint8Array = GW_MAC): Uint8Array {
  return ipv4Frame(dstMac, GUEST_MAC, src, dst, IPPROTO_UDP, buildUdp(src, dst, sport, dport, data));
}

/** The guest's end of the wire: frames arrive asynchronously, as from a real NIC. */
export class Wire {
  private readonly queue: Rx[] = [];
  private waiters: (() => void)[] = [];
  readonly handlers: ((rx: Rx) => boolean)[] = [];
  /** When set, the guest refuses frames (no receive buffers). */
  full = false;
  refused = 0;

  constructor(readonly net: UserNet) {
    net.attach((frame) => {
      if (this.full) { this.refused++; return false; }
      const copy = frame.slice();
      setImmediate(() => this.deliver(copy));
      return true;
    });
  }

  send(frame: Uint8Array): void { this.net.send(frame); }

  private deliver(frame: Uint8Array): void {
    const rx = decode(frame);
    if (!rx) return;
    for (const h of this.handlers) if (h(rx)) return;
    this.queue.push(rx);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The first queued (or next arriving) frame matching `pred`. */
  async expect(pred: (rx: Rx) => boolean, ms = 3000, what = 'frame'): Promise<Rx> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex(pred);
      if (i >= 0) return this.queue.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }

  /** Whether a matching frame arrives within `ms`. */
  async arrives(pred: (rx: Rx) => boolean, ms: number): Promise<boolean> {
    try { await this.expect(pred, ms); return true; } catch { return false; }
  }
}

const TH_FIN = 0x01, TH_SYN = 0x02, TH_RST = 0x04, TH_PSH = 0x08, TH_ACK = 0x10;
export { TH_ACK, TH_FIN, TH_PSH, TH_RST, TH_SYN };

/** Linux's SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7. */
export const LINUX_SYN_OPTIONS = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];

/**
 * The guest side of one TCP connection: takes data only in order, ACKs every
 * segment at once, advertises a fixed window, optionally drops one data segment.
 */
export class GuestTcp {
  rcvNxt = 0;
  sndUna: number;
  sndNxt: number;
  peerWnd = 0;
  peerMss = 536;
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  established = false;
  finReceived = false;
  finSent = false;
  finAcked = false;
  reset = false;
  synOptions: Uint8Array | undefined;
  /** Segments the back end sent beyond our advertised window, or bigger than its MSS allows. */
  violations: string[] = [];
  dataSegments = 0;
  duplicates = 0;
  private rightEdge = 0;
  private closeWhenSent = false;
  private out: Buffer = Buffer.alloc(0);
  private readonly iss: number;
  private resolveDone: (() => void) | undefined;

  constructor(private readonly wire: Wire, readonly ip: number, readonly port: number, readonly peerIp: number,
    public peerPort: number, readonly window: number, readonly dropSegment = -1, readonly mss = 1460) {
    this.iss = 1000000;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    wire.handlers.push((rx) => this.handle(rx));
  }

  connect(): void {
    this.wire.send(tcpFrame(this.ip, this.peerIp, this.port, this.peerPort, this.iss, 0, TH_SYN, this.window,
      undefined, LINUX_SYN_OPTIONS));
    this.sndNxt = this.iss + 1;
  }

  /** Queues data to send (and a FIN after it when `close`). */
  write(data: Uint8Array, close = false): void {
    this.out = Buffer.concat([this.out, data]);
    this.closeWhenSent ||= close;
    this.pump();
  }

  /** Resolves when both FINs are acknowledged (or a reset came). */
  done(ms: number): Promise<void> {
    if (this.isDone()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`tcp not done: rx ${this.receivedBytes} finRx ${this.finReceived} ` +
        `finAcked ${this.finAcked} una ${this.sndUna - this.iss} nxt ${this.sndNxt - this.iss} wnd ${this.peerWnd}`)), ms);
      this.resolveDone = () => { clearTimeout(t); resolve(); };
    });
  }

  data(): Buffer { return Buffer.concat(this.received); }

  private isDone(): boolean { return this.reset || (this.finReceived && this.finAcked); }

  private handle(rx: Rx): boolean {
    const t = tcpOf(rx);
    if (!t || rx.dst !== this.ip || t.dport !== this.port || rx.src !== this.peerIp) return false;
    if (this.peerPort !== 0 && t.sport !== this.peerPort) return false;
    if ((t.flags & TH_RST) !== 0) { this.reset = true; this.finish(); return true; }
    if ((t.flags & TH_SYN) !== 0) {
      this.synOptions = t.options;
      this.peerMss = t.options[0] === 2 ? readU16(t.options, 2) : 536;
      this.rcvNxt = (t.seq + 1) >>> 0;
      if ((t.flags & TH_ACK) !== 0) {
        // We connected: their SYN-ACK.
        this.sndUna = t.ack;
        this.established = true;
        this.peerWnd = t.window;
        this.ack();
      } else {
        // We listen: answer the SYN (a host forward), or repeat our answer.
        this.peerPort = t.sport;
        this.sndNxt = this.iss;
        this.emit(this.iss, TH_SYN | TH_ACK, undefined, [2, 4, this.mss >> 8, this.mss & 0xff]);
        this.sndNxt = this.iss + 1;
      }
      this.pump();
      return true;
    }
    if ((t.flags & TH_ACK) !== 0) {
      if (!this.established && t.ack === this.iss + 1) this.established = true;
      const adv = ((t.ack - this.sndUna) | 0);
      if (adv > 0) this.sndUna = t.ack;
      this.peerWnd = t.window;
      if (this.finSent && t.ack === this.sndNxt) this.finAcked = true;
    }
    const len = t.data.length;
    if (len > 0 || (t.flags & TH_FIN) !== 0) {
      const end = (t.seq + len) >>> 0;
      if (((end - this.rightEdge) | 0) > 0) {
        this.violations.push(`segment ends ${((end - this.rightEdge) | 0)} bytes beyond our window`);
      }
      if (len > Math.min(this.mss, 1460)) this.violations.push(`segment of ${len} bytes`);
      if (len > 0 && this.dataSegments++ === this.dropSegment) return true; // lost on the wire
      if (t.seq === this.rcvNxt) {
        if (len > 0) {
          this.received.push(Buffer.from(t.data));
          this.receivedBytes += len;
          this.rcvNxt = (this.rcvNxt + len) >>> 0;
        }
        if ((t.flags & TH_FIN) !== 0 && !this.finReceived) {
          this.finReceived = true;
          this.rcvNxt = (this.rcvNxt + 1) >>> 0;
        }
      } else {
        this.duplicates++;
      }
      this.ack();
    }
    this.pump();
    if (this.isDone()) this.finish();
    return true;
  }

  private finish(): void {
    const r = this.resolveDone;
    this.resolveDone = undefined;
    r?.();
  }

  private emit(seq: number, flags: number, data?: Uint8Array, options: readonly number[] = []): void {
    this.rightEdge = (this.rcvNxt + this.window) >>> 0;
    this.wire.send(tcpFrame(this.ip, this.peerIp, this.port, this.peerPort, seq, this.rcvNxt, flags, this.window,
      data, options));
  }

  private ack(): void { this.emit(this.sndNxt, TH_ACK); }

  private pump(): void {
    if (!this.established) return;
    for (;;) {
      const inFlight = (this.sndNxt - this.sndUna) | 0;
      const offset = (this.sndNxt - this.iss - 1) | 0;
      const left = this.out.length - offset;
      const room = this.peerWnd - inFlight;
      if (left > 0 && room > 0) {
        const n = Math.min(left, room, this.peerMss);
        this.emit(this.sndNxt, TH_ACK | TH_PSH, this.out.subarray(offset, offset + n));
        this.sndNxt = (this.sndNxt + n) >>> 0;
      } else if (left === 0 && this.closeWhenSent && !this.finSent) {
        this.emit(this.sndNxt, TH_ACK | TH_FIN);
        this.sndNxt = (this.sndNxt + 1) >>> 0;
        this.finSent = true;
      } else {
        return;
      }
    }
  }
}
