/**
 * User-mode networking: the guest's Ethernet link ends here, in a small router
 * at 10.0.2.2 that NATs the guest's TCP and UDP onto the host's own sockets
 * (QEMU's "-netdev user" model). No privileges, no host configuration. It also
 * serves DHCP (10.0.2.15 to the guest), relays DNS at 10.0.2.3, answers pings to
 * its own addresses and forwards host ports into the guest (hostfwd).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { MachineError } from '../../../machine/errors.js';
import type { HostForward } from '../../../machine/virtio-spec.js';
import type { NetBackend } from '../net.js';
import { ARPOP_REPLY, ARPOP_REQUEST, arpFrame, parseArp } from './arp.js';
import { checksum, verify } from './checksum.js';
import { handleDhcp, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, type DhcpConfig } from './dhcp.js';
import { DnsRelay, DNS_PORT, systemResolver, type DnsUpstream } from './dns.js';
import { BROADCAST_MAC, ETH_HLEN, ETH_P_ARP, ETH_P_IP, parseMac, sameMac } from './ethernet.js';
import {
  DEFAULT_GUEST_IP, DNS_IP, GATEWAY_IP, inNet, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ipFromString, ipToString,
  ipv4Frame, NET_MASK, parseIpv4, readU16, writeU16,
} from './ipv4.js';
import { parseTcp, TcpNat, type TcpStats } from './tcp.js';
import { buildUdp, parseUdp, UDP_IDLE_MS, UdpNat } from './udp.js';

export { DEFAULT_GUEST_IP, DNS_IP, GATEWAY_IP } from './ipv4.js';

/** The router's MAC, as QEMU's slirp uses (52:55 then the gateway's address). */
export const GATEWAY_MAC = '52:55:0a:00:02:02';
const ICMP_ECHOREPLY = 0;
const ICMP_ECHO = 8;
/** Host clients of UDP forwards remembered at once (each forgotten after UDP_IDLE_MS). */
const MAX_UDP_FORWARD_CLIENTS = 256;

export interface UserNetOptions {
  readonly hostfwd: readonly HostForward[];
  /** The guest NIC's MAC (until the guest's own frames say otherwise). */
  readonly guestMac: string;
  readonly log?: (line: string) => void;
  /** The DNS server queries go to; default: the first nameserver of /etc/resolv.conf. */
  readonly dnsUpstream?: DnsUpstream;
}

export interface ForwardedPort {
  readonly protocol: 'tcp' | 'udp';
  readonly hostAddr: string;
  /** The port actually bound (the host's pick when the spec said 0). */
  readonly hostPort: number;
  readonly guestAddr: string;
  readonly guestPort: number;
}

export interface UserNetStats {
  framesFromGuest: number;
  framesToGuest: number;
  /** Frames the guest had no buffer for. */
  framesRefused: number;
  /** Exceptions caught in send(): always a bug, never the guest's fault. */
  internalErrors: number;
}

interface UdpForwardClient {
  readonly socket: dgram.Socket;
  readonly address: string;
  readonly port: number;
  lastUsed: number;
}

export class UserNet implements NetBackend {
  readonly stats: UserNetStats = { framesFromGuest: 0, framesToGuest: 0, framesRefused: 0, internalErrors: 0 };
  private readonly gatewayMac: Uint8Array;
  private guestMac: Uint8Array;
  private guestIp = DEFAULT_GUEST_IP;
  private receive: ((frame: Uint8Array) => boolean) | undefined;
  private readonly log: (line: string) => void;
  private readonly tcp: TcpNat;
  private readonly udp: UdpNat;
  private readonly dns: DnsRelay;
  private started = false;
  private readonly servers: net.Server[] = [];
  private readonly udpServers: dgram.Socket[] = [];
  /** Host clients of UDP forwards, by `${guestPort}:${port the guest sees them at}`. */
  private readonly udpClients = new Map<string, UdpForwardClient>();
  private readonly forwards: ForwardedPort[] = [];
  private sweep: NodeJS.Timeout | undefined;
  private delivering = 0;
  private backlog: Uint8Array[] = [];
  private closed = false;
  private readonly dhcp: DhcpConfig = {
    serverIp: GATEWAY_IP, leaseIp: DEFAULT_GUEST_IP, mask: NET_MASK, router: GATEWAY_IP, dns: DNS_IP,
  };

  /** A started back end (hostfwd listeners open). */
  static async create(options: UserNetOptions): Promise<UserNet> {
    const u = new UserNet(options);
    await u.start();
    return u;
  }

  constructor(private readonly options: UserNetOptions) {
    const mac = parseMac(options.guestMac);
    if (!mac) throw new MachineError(`user network: bad guest MAC address '${options.guestMac}'`);
    this.guestMac = mac;
    this.gatewayMac = parseMac(GATEWAY_MAC)!;
    this.log = options.log ?? (() => {});
    for (const f of options.hostfwd) {
      if (f.guestAddr !== '' && ipFromString(f.guestAddr) === undefined) {
        throw new MachineError(`hostfwd: bad guest address '${f.guestAddr}' (want an IPv4 address)`);
      }
      if (!Number.isInteger(f.hostPort) || f.hostPort < 0 || f.hostPort > 65535 ||
        !Number.isInteger(f.guestPort) || f.guestPort < 1 || f.guestPort > 65535) {
        throw new MachineError(`hostfwd: bad port in ${f.protocol}:${f.hostPort}-${f.guestPort}`);
      }
    }
    this.tcp = new TcpNat({
      toGuest: (src, dst, seg) => this.toGuest(ipv4Frame(this.guestMac, this.gatewayMac, src, dst, IPPROTO_TCP, seg)),
      hostAddress: (ip) => this.hostAddress(ip),
      log: this.log,
    });
    this.udp = new UdpNat((src, dst, sport, dport, payload) => this.sendUdp(src, dst, sport, dport, payload),
      (address) => this.guestView(address));
    this.dns = new DnsRelay(options.dnsUpstream ?? systemResolver(),
      (ip, port, msg) => this.sendUdp(DNS_IP, ip, DNS_PORT, port, msg));
  }

  /**
   * Opens the hostfwd listeners; rejects with a MachineError (and closes the back
   * end) if a host port cannot be bound. The back end carries guest traffic
   * without it; only forwards wait for it.
   */
  async start(): Promise<void> {
    if (this.started || this.closed) return;
    this.started = true;
    try {
      for (const f of this.options.hostfwd) await this.listen(f);
    } catch (e) {
      await this.close();
      throw e;
    }
    this.sweep = setInterval(() => this.expire(), 10_000);
    this.sweep.unref();
  }

  /** The hostfwd listeners with the ports they really bound. */
  forwardedPorts(): readonly ForwardedPort[] {
    return this.forwards;
  }

  /** The address the guest was leased (10.0.2.15 before DHCP). */
  guestAddress(): string {
    return ipToString(this.guestIp);
  }

  attach(receive: (frame: Uint8Array) => boolean): void {
    this.receive = receive;
  }

  resume(): void {
    this.tcp.resume();
  }

  send(frame: Uint8Array): void {
    if (this.closed) return;
    if (this.delivering > 0) {
      // A device that transmits from inside its receive callback: finish what we
      // were doing first (our state machines are not re-entrant).
      this.backlog.push(frame.slice());
      if (this.backlog.length === 1) queueMicrotask(() => this.drainBacklog());
      return;
    }
    this.stats.framesFromGuest++;
    try {
      this.input(frame);
    } catch (e) {
      this.stats.internalErrors++;
      this.log(`usernet: dropped a frame after an internal error: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.receive = undefined;
    if (this.sweep) clearInterval(this.sweep);
    this.tcp.close();
    this.udp.close();
    this.dns.close();
    this.udpClients.clear();
    for (const s of this.udpServers) closeQuietly(s);
    await Promise.all(this.servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }

  private drainBacklog(): void {
    const frames = this.backlog;
    this.backlog = [];
    for (const f of frames) this.send(f);
  }

  private toGuest(frame: Uint8Array): boolean {
    if (!this.receive || this.closed) return false;
    this.delivering++;
    let ok: boolean;
    try {
      ok = this.receive(frame);
    } finally {
      this.delivering--;
    }
    if (ok) this.stats.framesToGuest++; else this.stats.framesRefused++;
    return ok;
  }

  /** Live NAT state (for tests and diagnostics). */
  connections(): { tcp: number; udp: number; dns: number; tcpStats: Readonly<TcpStats> } {
    return { tcp: this.tcp.size, udp: this.udp.size, dns: this.dns.inFlight, tcpStats: this.tcp.stats };
  }

  private sendUdp(src: number, dst: number, sport: number, dport: number, payload: Uint8Array, dstMac?: Uint8Array): void {
    const d = buildUdp(src, dst, sport, dport, payload);
    this.toGuest(ipv4Frame(dstMac ?? this.guestMac, this.gatewayMac, src, dst, IPPROTO_UDP, d));
  }

  /** Where a guest destination is on the host: the gateway is the host's loopback, as in QEMU. */
  private hostAddress(ip: number): string | undefined {
    if (ip === GATEWAY_IP) return '127.0.0.1';
    const a = ip >>> 24;
    if (inNet(ip) || a === 0 || a === 127 || a >= 224) return undefined;
    return ipToString(ip);
  }

  /** The address a host peer is shown to the guest as. */
  private guestView(address: string): number | undefined {
    const ip = ipFromString(address.replace(/^::ffff:/, ''));
    if (ip === undefined) return undefined;
    return ip >>> 24 === 127 ? GATEWAY_IP : ip;
  }

  private input(frame: Uint8Array): void {
    if (frame.length < ETH_HLEN) return;
    if (!sameMac(frame, 0, BROADCAST_MAC) && !sameMac(frame, 0, this.gatewayMac)) return;
    const type = readU16(frame, 12);
    const body = frame.subarray(ETH_HLEN);
    if (type === ETH_P_ARP) this.arp(body);
    else if (type === ETH_P_IP) this.ipv4(frame, body);
  }

  private learn(mac: Uint8Array): void {
    // A unicast source only: multicast bit clear, and not all zeros.
    if ((mac[0]! & 1) !== 0 || mac.every((b) => b === 0)) return;
    this.guestMac = mac.slice(0, 6);
  }

  private arp(body: Uint8Array): void {
    const p = parseArp(body);
    if (!p || p.op !== ARPOP_REQUEST) return;
    if (p.targetIp !== GATEWAY_IP && p.targetIp !== DNS_IP) return;
    if (p.senderIp !== 0 && !inNet(p.senderIp)) return;
    this.learn(p.senderMac);
    this.toGuest(arpFrame(ARPOP_REPLY, p.senderMac, this.gatewayMac, p.targetIp, p.senderMac, p.senderIp));
  }

  private ipv4(frame: Uint8Array, body: Uint8Array): void {
    const p = parseIpv4(body);
    if (!p) return;
    this.learn(frame.subarray(6, 12));
    switch (p.proto) {
      case IPPROTO_ICMP: this.icmp(p.src, p.dst, p.payload); return;
      case IPPROTO_UDP: this.udpIn(p.src, p.dst, p.payload); return;
      case IPPROTO_TCP: {
        const seg = parseTcp(p.src, p.dst, p.payload);
        if (seg) this.tcp.input(p.src, p.dst, seg);
        return;
      }
      default: return;
    }
  }

  /** Echo requests to our own addresses are answered here; the rest needs raw sockets, so is dropped. */
  private icmp(src: number, dst: number, msg: Uint8Array): void {
    if (dst !== GATEWAY_IP && dst !== DNS_IP) return;
    if (msg.length < 8 || msg[0] !== ICMP_ECHO || msg[1] !== 0 || !verify(msg, 0, msg.length)) return;
    const reply = Uint8Array.from(msg);
    reply[0] = ICMP_ECHOREPLY;
    writeU16(reply, 2, 0);
    writeU16(reply, 2, checksum(reply, 0, reply.length));
    this.toGuest(ipv4Frame(this.guestMac, this.gatewayMac, dst, src, IPPROTO_ICMP, reply));
  }

  private udpIn(src: number, dst: number, bytes: Uint8Array): void {
    const d = parseUdp(src, dst, bytes);
    if (!d) return;
    if (d.dport === DHCP_SERVER_PORT && (dst === 0xffffffff || dst === GATEWAY_IP)) {
      const r = handleDhcp(this.dhcp, d.payload);
      if (!r) return;
      if (r.leased) {
        this.guestIp = this.dhcp.leaseIp;
        this.learn(r.mac);
      }
      this.sendUdp(GATEWAY_IP, r.ip, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, r.payload, r.broadcast ? BROADCAST_MAC : r.mac);
      return;
    }
    if (src === 0 || !inNet(src)) return;
    if (dst === DNS_IP) {
      if (d.dport === DNS_PORT) this.dns.query(src, d.sport, d.payload);
      return;
    }
    if (dst === GATEWAY_IP) {
      const client = this.udpClients.get(`${d.sport}:${d.dport}`);
      if (client) {
        client.lastUsed = Date.now();
        client.socket.send(d.payload, client.port, client.address, () => {});
        return;
      }
    }
    const host = this.hostAddress(dst);
    if (host !== undefined) this.udp.send(src, d.sport, host, d.dport, d.payload);
  }

  private forwardGuestIp(f: HostForward): number {
    return f.guestAddr === '' ? this.guestIp : ipFromString(f.guestAddr) ?? this.guestIp;
  }

  private async listen(f: HostForward): Promise<void> {
    const host = f.hostAddr === '' ? '127.0.0.1' : f.hostAddr;
    const where = `hostfwd ${f.protocol}:${host}:${f.hostPort}`;
    const fail = (e: unknown): MachineError => {
      const code = (e as NodeJS.ErrnoException | undefined)?.code;
      const why = code === 'EADDRINUSE' ? 'the host port is in use'
        : code === 'EACCES' ? 'permission denied'
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' ? 'no such host address'
        : e instanceof Error ? e.message : String(e);
      return new MachineError(`${where}: ${why}`);
    };
    let port: number;
    if (f.protocol === 'tcp') {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
        this.tcp.accept(socket, this.forwardGuestIp(f), f.guestPort, GATEWAY_IP);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e) => reject(fail(e)));
        server.listen(f.hostPort, host, () => resolve());
      });
      server.removeAllListeners('error');
      server.on('error', (e) => this.log(`usernet: ${where}: ${e.message}`));
      this.servers.push(server);
      const a = server.address();
      port = typeof a === 'object' && a ? a.port : f.hostPort;
    } else {
      const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        socket.once('error', (e) => reject(fail(e)));
        socket.bind(f.hostPort, host, () => resolve());
      });
      socket.removeAllListeners('error');
      socket.on('error', (e) => this.log(`usernet: ${where}: ${e.message}`));
      this.udpServers.push(socket);
      port = socket.address().port;
      socket.on('message', (msg, rinfo) => this.udpForwardIn(f, socket, msg, rinfo));
    }
    this.forwards.push({ protocol: f.protocol, hostAddr: host, hostPort: port, guestAddr: f.guestAddr, guestPort: f.guestPort });
  }

  /** A datagram to a UDP forward: to the guest from 10.0.2.2, at the client's own port. */
  private udpForwardIn(f: HostForward, socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    const key = `${f.guestPort}:${rinfo.port}`;
    const known = this.udpClients.get(key);
    if (!known || known.address !== rinfo.address || known.socket !== socket) {
      if (!known && this.udpClients.size >= MAX_UDP_FORWARD_CLIENTS) return;
      this.udpClients.set(key, { socket, address: rinfo.address, port: rinfo.port, lastUsed: Date.now() });
    } else {
      known.lastUsed = Date.now();
    }
    this.sendUdp(GATEWAY_IP, this.forwardGuestIp(f), rinfo.port, f.guestPort, msg);
  }

  private expire(): void {
    this.udp.expire();
    const limit = Date.now() - UDP_IDLE_MS;
    for (const [key, c] of this.udpClients) if (c.lastUsed <= limit) this.udpClients.delete(key);
  }
}

function closeQuietly(s: dgram.Socket): void {
  try { s.close(); } catch { /* already closed */ }
}

export { parseMac, formatMac } from './ethernet.js';
