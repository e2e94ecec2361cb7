/**
 * DNS relay: queries the guest sends to 10.0.2.3:53 go unchanged (but for their
 * ID) to the host's resolver, and its answers come back from 10.0.2.3.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { readU16, writeU16 } from './ipv4.js';

export interface DnsUpstream { readonly host: string; readonly port: number }

export const DNS_PORT = 53;
const DNS_HEADER = 12;
/** Larger than any UDP DNS message a stub resolver sends (EDNS0 buffers are ≤ 4096). */
const MAX_QUERY = 4096;
export const DNS_TIMEOUT_MS = 5_000;
const MAX_PENDING = 256;

/**
 * The first `nameserver` line of resolv.conf(5); 127.0.0.1 when there is none.
 * Read once, synchronously, when the back end is built (before the guest runs),
 * so that machine construction can stay synchronous.
 */
export function systemResolver(path = '/etc/resolv.conf'): DnsUpstream {
  let text = '';
  try { text = readFileSync(path, 'utf8'); } catch { /* no resolv.conf */ }
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) return { host: m[1]!.replace(/%.*$/, ''), port: DNS_PORT };
  }
  return { host: '127.0.0.1', port: DNS_PORT };
}

interface Pending {
  readonly guestIp: number;
  readonly guestPort: number;
  readonly guestId: number;
  readonly timer: NodeJS.Timeout;
}

export type DnsToGuest = (guestIp: number, guestPort: number, payload: Uint8Array) => void;

export class DnsRelay {
  private socket: dgram.Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = Math.floor(Math.random() * 0x10000);
  private closed = false;

  constructor(private readonly upstream: DnsUpstream, private readonly toGuest: DnsToGuest) {}

  get inFlight(): number { return this.pending.size; }

  query(guestIp: number, guestPort: number, msg: Uint8Array): void {
    if (this.closed || msg.length < DNS_HEADER || msg.length > MAX_QUERY) return;
    if ((msg[2]! & 0x80) !== 0) return; // QR set: a response, not a query
    if (this.pending.size >= MAX_PENDING) return;
    // Our own IDs keep concurrent guests' queries (and their retries) apart.
    let id = this.nextId;
    for (let tries = 0; this.pending.has(id) && tries < 0x10000; tries++) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    const timer = setTimeout(() => this.pending.delete(id), DNS_TIMEOUT_MS);
    timer.unref();
    this.pending.set(id, { guestIp, guestPort, guestId: readU16(msg, 0), timer });
    const out = Buffer.from(msg);
    writeU16(out, 0, id);
    this.ensureSocket().send(out, this.upstream.port, this.upstream.host, () => { /* timeouts drop it */ });
  }

  close(): void {
    this.closed = true;
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    try { this.socket?.close(); } catch { /* already closed */ }
    this.socket = undefined;
  }

  private ensureSocket(): dgram.Socket {
    if (this.socket) return this.socket;
    const s = dgram.createSocket(isIPv6(this.upstream.host) ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => {
      if (rinfo.port !== this.upstream.port || msg.length < DNS_HEADER) return;
      const id = readU16(msg, 0);
      const p = this.pending.get(id);
      if (!p) return;
      clearTimeout(p.timer);
      this.pending.delete(id);
      writeU16(msg, 0, p.guestId);
      this.toGuest(p.guestIp, p.guestPort, msg);
    });
    s.on('error', () => {
      if (this.socket === s) this.socket = undefined;
      try { s.close(); } catch { /* already closed */ }
    });
    this.socket = s;
    return s;
  }
}
