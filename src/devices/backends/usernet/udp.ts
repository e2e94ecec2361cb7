/** UDP (RFC 768) datagrams and the NAT of guest flows onto host datagram sockets. */
import dgram from 'node:dgram';
import { checksum, pseudoSum, verify } from './checksum.js';
import { IPPROTO_UDP, readU16, writeU16 } from './ipv4.js';

export interface UdpDatagram {
  readonly sport: number;
  readonly dport: number;
  readonly payload: Uint8Array;
}

/** The datagram in an IPv4 payload; undefined if truncated or its checksum (when present) is wrong. */
export function parseUdp(src: number, dst: number, bytes: Uint8Array): UdpDatagram | undefined {
  if (bytes.length < 8) return undefined;
  const len = readU16(bytes, 4);
  if (len < 8 || len > bytes.length) return undefined;
  if (readU16(bytes, 6) !== 0 && !verify(bytes, 0, len, pseudoSum(src, dst, IPPROTO_UDP, len))) return undefined;
  return { sport: readU16(bytes, 0), dport: readU16(bytes, 2), payload: bytes.subarray(8, len) };
}

export function buildUdp(src: number, dst: number, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const len = 8 + payload.length;
  const d = new Uint8Array(len);
  writeU16(d, 0, sport);
  writeU16(d, 2, dport);
  writeU16(d, 4, len);
  d.set(payload, 8);
  // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
  writeU16(d, 6, checksum(d, 0, len, pseudoSum(src, dst, IPPROTO_UDP, len)) || 0xffff);
  return d;
}

/** Where a NAT reply goes: the guest flow's addresses, seen from the guest. */
export type UdpToGuest = (src: number, dst: number, sport: number, dport: number, payload: Uint8Array) => void;

interface Mapping {
  readonly socket: dgram.Socket;
  readonly guestIp: number;
  readonly guestPort: number;
  lastUsed: number;
}

export const UDP_IDLE_MS = 60_000;
const MAX_MAPPINGS = 256;

/**
 * One host socket per guest source (address, port), like a cone NAT: replies from
 * any host reach the guest with their own address, loopback shown as the gateway.
 */
export class UdpNat {
  private readonly mappings = new Map<string, Mapping>();
  private closed = false;

  constructor(
    private readonly toGuest: UdpToGuest,
    /** Host address (IPv4 string) → the address the guest sees, or undefined to drop. */
    private readonly fromHost: (address: string) => number | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number { return this.mappings.size; }

  /** Sends a guest datagram to `host:port` (already translated from the guest's destination). */
  send(guestIp: number, guestPort: number, host: string, port: number, payload: Uint8Array): void {
    if (this.closed || port === 0) return;
    const key = `${guestIp}:${guestPort}`;
    let m = this.mappings.get(key);
    if (!m) {
      if (this.mappings.size >= MAX_MAPPINGS) this.evictOldest();
      const socket = dgram.createSocket('udp4');
      const mapping: Mapping = { socket, guestIp, guestPort, lastUsed: this.now() };
      socket.on('message', (msg, rinfo) => {
        if (this.mappings.get(key) !== mapping) return;
        const from = this.fromHost(rinfo.address);
        if (from === undefined) return;
        mapping.lastUsed = this.now();
        this.toGuest(from, guestIp, rinfo.port, guestPort, msg);
      });
      socket.on('error', () => this.remove(key, mapping));
      this.mappings.set(key, mapping);
      m = mapping;
    }
    m.lastUsed = this.now();
    m.socket.send(payload, port, host, () => { /* unreachable hosts are the guest's problem, as on a wire */ });
  }

  /** Closes mappings idle for longer than UDP_IDLE_MS. */
  expire(): void {
    const limit = this.now() - UDP_IDLE_MS;
    for (const [key, m] of this.mappings) if (m.lastUsed <= limit) this.remove(key, m);
  }

  close(): void {
    this.closed = true;
    for (const [key, m] of this.mappings) this.remove(key, m);
  }

  private evictOldest(): void {
    let oldest: [string, Mapping] | undefined;
    for (const e of this.mappings) if (!oldest || e[1].lastUsed < oldest[1].lastUsed) oldest = e;
    if (oldest) this.remove(oldest[0], oldest[1]);
  }

  private remove(key: string, m: Mapping): void {
    if (this.mappings.get(key) === m) this.mappings.delete(key);
    try { m.socket.close(); } catch { /* already closed */ }
  }
}
