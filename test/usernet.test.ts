import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { UserNet } from '../src/devices/backends/usernet/index.js';
import { arpFrame } from '../src/devices/backends/usernet/arp.js';
import { checksum, pseudoSum } from '../src/devices/backends/usernet/checksum.js';
import { BROADCAST_MAC } from '../src/devices/backends/usernet/ethernet.js';
import { ipv4Frame, readU16, readU32, writeU16, writeU32 } from '../src/devices/backends/usernet/ipv4.js';
import { UdpNat } from '../src/devices/backends/usernet/udp.js';
import { MachineError } from '../src/machine/errors.js';
import { prng } from './support.js';
import {
  DNS, GuestTcp, GUEST, GUEST_MAC, GUEST_MAC_TEXT, GW, GW_MAC, tcpFrame, tcpOf, TH_ACK, TH_RST, TH_SYN, udpFrame,
  udpOf, Wire, type Rx,
} from './usernet-guest.js';

function randomBytes(n: number, seed: number): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (r() * 256) | 0;
  return b;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function dhcpMessage(type: number, opts: { broadcast?: boolean; requested?: number; serverId?: number; xid?: number }):
  Uint8Array {
  const m = new Uint8Array(300);
  m[0] = 1; m[1] = 1; m[2] = 6;
  writeU32(m, 4, opts.xid ?? 0xdeadbeef);
  if (opts.broadcast) writeU16(m, 10, 0x8000);
  m.set(GUEST_MAC, 28);
  writeU32(m, 236, 0x63825363);
  let i = 240;
  m[i++] = 53; m[i++] = 1; m[i++] = type;
  if (opts.requested !== undefined) { m[i++] = 50; m[i++] = 4; writeU32(m, i, opts.requested); i += 4; }
  if (opts.serverId !== undefined) { m[i++] = 54; m[i++] = 4; writeU32(m, i, opts.serverId); i += 4; }
  m[i++] = 55; m[i++] = 3; m[i++] = 1; m[i++] = 3; m[i++] = 6; // parameter request list, as udhcpc sends
  m[i++] = 255;
  return m;
}

function dhcpOptions(payload: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  for (let i = 240; i < payload.length;) {
    const code = payload[i]!;
    if (code === 255) break;
    if (code === 0) { i++; continue; }
    const len = payload[i + 1]!;
    out.set(code, payload.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return out;
}

const ip = (v: Uint8Array | undefined): number => (v ? readU32(v, 0) : -1);

describe('user-mode network', () => {
  let upstream: dgram.Socket;
  let upstreamPort = 0;
  let upstreamQueries = 0;

  before(async () => {
    // A fake DNS server: answers each query with QR set and an extra marker byte.
    upstream = dgram.createSocket('udp4');
    upstream.on('message', (msg, rinfo) => {
      upstreamQueries++;
      if (msg.includes(Buffer.from('silent'))) return;
      const reply = Buffer.concat([msg, Buffer.from([0x42])]);
      reply[2] = reply[2]! | 0x80;
      upstream.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => upstream.bind(0, '127.0.0.1', r));
    upstreamPort = upstream.address().port;
  });
  after(() => upstream.close());

  async function makeNet(hostfwd: ConstructorParameters<typeof UserNet>[0]['hostfwd'] = []): Promise<UserNet> {
    return UserNet.create({ hostfwd, guestMac: GUEST_MAC_TEXT, dnsUpstream: { host: '127.0.0.1', port: upstreamPort } });
  }

  it('answers ARP for the gateway and the DNS server, not for other addresses', async () => {
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      wire.send(arpFrame(1, BROADCAST_MAC, GUEST_MAC, GUEST, new Uint8Array(6), GW));
      const r = await wire.expect((rx) => rx.type === 0x0806, 1000, 'ARP reply');
      assert.deepEqual([...r.dstMac], [...GUEST_MAC]);
      assert.deepEqual([...r.frame.subarray(6, 12)], [...GW_MAC]);
      assert.equal(readU16(r.l4, 6), 2); // ARPOP_REPLY
      assert.deepEqual([...r.l4.subarray(8, 14)], [...GW_MAC]);
      assert.equal(readU32(r.l4, 14), GW);
      assert.equal(readU32(r.l4, 24), GUEST);
      wire.send(arpFrame(1, BROADCAST_MAC, GUEST_MAC, GUEST, new Uint8Array(6), DNS));
      const d = await wire.expect((rx) => rx.type === 0x0806, 1000, 'ARP reply for DNS');
      assert.equal(readU32(d.l4, 14), DNS);
      wire.send(arpFrame(1, BROADCAST_MAC, GUEST_MAC, GUEST, new Uint8Array(6), 0x0a000209));
      assert.equal(await wire.arrives((rx) => rx.type === 0x0806, 200), false);
    } finally { await n.close(); }
  });

  it('leases 10.0.2.15 by DHCP: DISCOVER, OFFER, REQUEST, ACK; NAK for another address', async () => {
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      const isDhcp = (rx: Rx): boolean => udpOf(rx)?.dport === 68;
      wire.send(udpFrame(0, 0xffffffff, 68, 67, dhcpMessage(1, { broadcast: true }), BROADCAST_MAC));
      const offer = await wire.expect(isDhcp, 1000, 'OFFER');
      const o = udpOf(offer)!;
      assert.equal(o.sport, 67);
      assert.equal(offer.dst, 0xffffffff); // broadcast flag honoured
      assert.deepEqual([...offer.dstMac], [...BROADCAST_MAC]);
      assert.equal(offer.src, GW);
      assert.equal(readU32(o.data, 4), 0xdeadbeef);
      assert.equal(readU32(o.data, 16), GUEST);
      assert.ok(o.data.length >= 300);
      let opts = dhcpOptions(o.data);
      assert.equal(opts.get(53)?.[0], 2);
      assert.equal(ip(opts.get(54)), GW);
      assert.equal(ip(opts.get(1)), 0xffffff00);
      assert.equal(ip(opts.get(3)), GW);
      assert.equal(ip(opts.get(6)), DNS);
      assert.ok(ip(opts.get(51)) > 0);

      // Without the broadcast flag the ACK is unicast to the offered address and the client's MAC.
      wire.send(udpFrame(0, 0xffffffff, 68, 67, dhcpMessage(3, { requested: GUEST, serverId: GW }), BROADCAST_MAC));
      const ack = await wire.expect(isDhcp, 1000, 'ACK');
      opts = dhcpOptions(udpOf(ack)!.data);
      assert.equal(opts.get(53)?.[0], 5);
      assert.equal(ack.dst, GUEST);
      assert.deepEqual([...ack.dstMac], [...GUEST_MAC]);
      assert.equal(n.guestAddress(), '10.0.2.15');

      wire.send(udpFrame(0, 0xffffffff, 68, 67, dhcpMessage(3, { requested: 0x0a000263 }), BROADCAST_MAC));
      const nak = await wire.expect(isDhcp, 1000, 'NAK');
      assert.equal(dhcpOptions(udpOf(nak)!.data).get(53)?.[0], 6);
      assert.equal(nak.dst, 0xffffffff);

      // A REQUEST naming another server is not ours to answer.
      wire.send(udpFrame(0, 0xffffffff, 68, 67, dhcpMessage(3, { requested: GUEST, serverId: 0x0a000201 }),
        BROADCAST_MAC));
      assert.equal(await wire.arrives(isDhcp, 200), false);
    } finally { await n.close(); }
  });

  it('relays DNS queries to the upstream resolver and the answers back', async () => {
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      const q = Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
        Buffer.from('\x07example\x03com\x00\x00\x01\x00\x01', 'latin1')]);
      wire.send(udpFrame(GUEST, DNS, 5555, 53, q));
      const r = await wire.expect((rx) => udpOf(rx)?.dport === 5555, 2000, 'DNS answer');
      const u = udpOf(r)!;
      assert.equal(r.src, DNS);
      assert.equal(u.sport, 53);
      assert.equal(readU16(u.data, 0), 0x1234); // the guest's ID restored
      assert.equal(u.data[2]! & 0x80, 0x80);
      assert.equal(u.data[u.data.length - 1], 0x42);
      assert.deepEqual(Buffer.from(u.data.subarray(2, q.length)), Buffer.concat([Buffer.from([q[2]! | 0x80]), q.subarray(3)]));
      // An unanswered query waits, then is forgotten; nothing reaches the guest.
      const before = upstreamQueries;
      wire.send(udpFrame(GUEST, DNS, 5556, 53, Buffer.concat([q.subarray(0, 12), Buffer.from('silent')])));
      assert.equal(await wire.arrives((rx) => udpOf(rx)?.dport === 5556, 300), false);
      assert.equal(upstreamQueries, before + 1);
      assert.equal(n.connections().dns, 1);
    } finally { await n.close(); }
  });

  it('answers pings to the gateway', async () => {
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      const icmp = new Uint8Array(8 + 56);
      icmp[0] = 8; writeU16(icmp, 4, 0x77); writeU16(icmp, 6, 3);
      for (let i = 8; i < icmp.length; i++) icmp[i] = i;
      writeU16(icmp, 2, checksum(icmp, 0, icmp.length));
      wire.send(ipv4Frame(GW_MAC, GUEST_MAC, GUEST, GW, 1, icmp));
      const r = await wire.expect((rx) => rx.proto === 1, 1000, 'echo reply');
      assert.equal(r.src, GW);
      assert.equal(r.dst, GUEST);
      assert.equal(r.l4[0], 0);
      assert.deepEqual([...r.l4.subarray(4)], [...icmp.subarray(4)]);
      // A wrong ICMP checksum, or a ping beyond our own addresses, gets nothing.
      icmp[10] = icmp[10]! ^ 1;
      wire.send(ipv4Frame(GW_MAC, GUEST_MAC, GUEST, GW, 1, icmp));
      assert.equal(await wire.arrives((rx) => rx.proto === 1, 200), false);
    } finally { await n.close(); }
  });

  it('NATs UDP to a host server through 10.0.2.2', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (m, r) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), r.port, r.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
    const port = echo.address().port;
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      wire.send(udpFrame(GUEST, GW, 4000, port, Buffer.from('hello')));
      const r = await wire.expect((rx) => udpOf(rx)?.dport === 4000, 2000, 'UDP echo');
      assert.equal(r.src, GW);
      assert.equal(r.dst, GUEST);
      assert.equal(udpOf(r)!.sport, port);
      assert.equal(Buffer.from(udpOf(r)!.data).toString(), 'echo:hello');
      assert.equal(n.connections().udp, 1);
      // Datagrams to other addresses of our own network go nowhere.
      wire.send(udpFrame(GUEST, 0x0a000209, 4001, port, Buffer.from('x')));
      assert.equal(n.connections().udp, 1);
    } finally {
      await n.close();
      echo.close();
    }
    assert.equal(n.connections().udp, 0);
  });

  it('expires idle UDP mappings after 60 s', async () => {
    let now = 1_000_000;
    const got: string[] = [];
    const nat = new UdpNat((_s, _d, _sp, _dp, payload) => got.push(Buffer.from(payload).toString()),
      () => GW, () => now);
    try {
      nat.send(GUEST, 4000, '127.0.0.1', await freePort(), Buffer.from('a'));
      nat.send(GUEST, 4001, '127.0.0.1', await freePort(), Buffer.from('b'));
      assert.equal(nat.size, 2);
      now += 30_000;
      nat.send(GUEST, 4001, '127.0.0.1', await freePort(), Buffer.from('c'));
      now += 31_000;
      nat.expire();
      assert.equal(nat.size, 1, 'the mapping used 31 s ago stays');
      now += 30_000;
      nat.expire();
      assert.equal(nat.size, 0);
    } finally { nat.close(); }
  });

  it('passes resets both ways', async () => {
    let hostSide: net.Socket | undefined;
    const hostErrors: string[] = [];
    const server = net.createServer((s) => {
      hostSide = s;
      s.on('error', (e: NodeJS.ErrnoException) => hostErrors.push(e.code ?? e.message));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      // The host resets: the guest gets a RST.
      const a = new GuestTcp(wire, GUEST, 41010, GW, port, 65535);
      a.connect();
      const t0 = Date.now();
      while ((!a.established || !hostSide) && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
      hostSide!.resetAndDestroy();
      await a.done(3000);
      assert.equal(a.reset, true);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(n.connections().tcp, 0);

      // The guest resets (in window): the host socket is reset.
      hostSide = undefined;
      const closed = new Promise<void>((r) => server.once('connection', (s) => s.once('close', () => r())));
      const b = new GuestTcp(wire, GUEST, 41011, GW, port, 65535);
      b.connect();
      while ((!b.established || !hostSide) && Date.now() - t0 < 4000) await new Promise((r) => setTimeout(r, 5));
      // A RST far outside the window is ignored (RFC 5961)...
      wire.send(tcpFrame(GUEST, GW, 41011, port, b.sndNxt + 0x40000000, 0, TH_RST, 0));
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(n.connections().tcp, 1);
      // ...an in-window one is not.
      wire.send(tcpFrame(GUEST, GW, 41011, port, b.sndNxt, 0, TH_RST, 0));
      await closed;
      assert.deepEqual(hostErrors, ['ECONNRESET']);
      assert.equal(n.connections().tcp, 0);
    } finally {
      await n.close();
      server.close();
    }
  });

  it('resets a guest connection the host refuses', async () => {
    const port = await freePort();
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      wire.send(tcpFrame(GUEST, GW, 40001, port, 5000, 0, TH_SYN, 64240));
      const r = await wire.expect((rx) => tcpOf(rx)?.dport === 40001, 2000, 'RST');
      const t = tcpOf(r)!;
      assert.equal(t.flags & TH_RST, TH_RST);
      assert.equal(t.flags & TH_ACK, TH_ACK);
      assert.equal(t.ack, 5001);
      assert.equal(t.sport, port);
      await new Promise((r2) => setTimeout(r2, 20));
      assert.equal(n.connections().tcp, 0);
      // A stray segment for no connection is answered with RST from its ACK number.
      wire.send(tcpFrame(GUEST, GW, 40002, port, 7000, 12345, TH_ACK, 64240, Buffer.from('x')));
      const s = tcpOf(await wire.expect((rx) => tcpOf(rx)?.dport === 40002, 1000, 'RST for stray'))!;
      assert.equal(s.flags, TH_RST);
      assert.equal(s.seq, 12345);
    } finally { await n.close(); }
  });

  it('moves 1 MiB each way over TCP through 10.0.2.2, with a small window, a lost segment and half-close', async () => {
    const fromGuest = randomBytes(1 << 20, 1);
    const fromHost = randomBytes(1 << 20, 2);
    let serverGot: Buffer | undefined;
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => {});
      const parts: Buffer[] = [];
      s.on('data', (d) => parts.push(d));
      s.on('end', () => { serverGot = Buffer.concat(parts); });
      s.end(fromHost);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      const g = new GuestTcp(wire, GUEST, 41000, GW, port, 8192, 20);
      g.connect();
      const start = Date.now();
      while (!g.established && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 5));
      assert.ok(g.established, 'handshake');
      // We offered window scaling, SACK and timestamps; the answer has only an MSS.
      assert.deepEqual([...g.synOptions!], [2, 4, 0x05, 0xb4]);
      g.write(fromGuest, true);
      await g.done(30_000);
      assert.equal(g.reset, false);
      assert.deepEqual(g.violations, []);
      assert.equal(g.receivedBytes, fromHost.length);
      assert.equal(sha(g.data()), sha(fromHost));
      const t0 = Date.now();
      while (serverGot === undefined && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      assert.ok(serverGot, 'host saw the guest FIN');
      assert.equal(serverGot.length, fromGuest.length);
      assert.equal(sha(serverGot), sha(fromGuest));
      const stats = n.connections().tcpStats;
      assert.ok(stats.retransmits >= 1, 'the lost segment was retransmitted');
      assert.ok(stats.hostPauses >= 1, 'the host socket was paused');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(n.connections().tcp, 0);
    } finally {
      await n.close();
      server.close();
    }
  });

  it('shrinks its window while the host does not read, and reopens it', async () => {
    const fromGuest = randomBytes(8 << 20, 3);
    let host: net.Socket | undefined;
    let serverGot: Buffer | undefined;
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      host = s;
      s.on('error', () => {});
      const parts: Buffer[] = [];
      s.pause();
      s.on('data', (d) => parts.push(d));
      s.on('end', () => { serverGot = Buffer.concat(parts); s.end(); });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const n = await makeNet();
    const wire = new Wire(n);
    let zeroWindows = 0;
    wire.handlers.unshift((rx) => {
      const t = tcpOf(rx);
      if (t && t.sport === port && t.window === 0) zeroWindows++;
      return false;
    });
    try {
      const g = new GuestTcp(wire, GUEST, 41002, GW, port, 65535);
      g.connect();
      const start = Date.now();
      while (!g.established && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 5));
      g.write(fromGuest, true);
      // The host kernel's buffers fill, then ours: the window closes and the guest stops.
      const t0 = Date.now();
      while (zeroWindows === 0 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 10));
      assert.ok(zeroWindows > 0, 'a zero window was advertised');
      const sent = g.sndNxt;
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(g.sndNxt, sent, 'the guest stays within the closed window');
      host!.resume();
      await g.done(30_000);
      const t1 = Date.now();
      while (serverGot === undefined && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 10));
      assert.ok(serverGot);
      assert.equal(sha(serverGot), sha(fromGuest));
      assert.deepEqual(g.violations, []);
    } finally {
      await n.close();
      server.close();
    }
  });

  it('retransmits on its timer when the last segment is lost', async () => {
    const server = net.createServer((s) => { s.on('error', () => {}); s.end('only segment'); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      // The one data segment is lost: no later segment makes duplicate ACKs, only the timer helps.
      const g = new GuestTcp(wire, GUEST, 41030, GW, port, 65535, 0);
      const t0 = Date.now();
      g.connect();
      g.write(new Uint8Array(0), true);
      await g.done(5000);
      assert.equal(g.data().toString(), 'only segment');
      assert.ok(Date.now() - t0 >= 300, 'recovered by the retransmission timer');
      assert.ok(n.connections().tcpStats.retransmits >= 1);
    } finally {
      await n.close();
      server.close();
    }
  });

  it('retransmits to a guest that had no receive buffers', async () => {
    const server = net.createServer((s) => {
      s.on('error', () => {});
      setTimeout(() => s.end('x'.repeat(5000)), 50);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      const g = new GuestTcp(wire, GUEST, 41001, GW, port, 65535);
      g.connect();
      const start = Date.now();
      while (!g.established && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 5));
      wire.full = true;
      await new Promise((r) => setTimeout(r, 150));
      assert.ok(wire.refused > 0);
      assert.equal(g.receivedBytes, 0);
      wire.full = false;
      const t0 = Date.now();
      n.resume();
      g.write(new Uint8Array(0), true);
      await g.done(5000);
      // Sent again on resume(), not only when the retransmission timer fires.
      assert.ok(Date.now() - t0 < 300, `took ${Date.now() - t0} ms`);
      assert.equal(g.data().toString(), 'x'.repeat(5000));
    } finally {
      await n.close();
      server.close();
    }
  });

  it('forwards a host TCP port to a guest listener (hostfwd)', async () => {
    const n = await makeNet([{ protocol: 'tcp', hostAddr: '', hostPort: 0, guestAddr: '', guestPort: 8080 }]);
    const wire = new Wire(n);
    try {
      const fwd = n.forwardedPorts();
      assert.equal(fwd.length, 1);
      assert.ok(fwd[0]!.hostPort > 0);
      const g = new GuestTcp(wire, GUEST, 8080, GW, 0, 16384);
      const client = net.connect({ port: fwd[0]!.hostPort, host: '127.0.0.1', allowHalfOpen: true });
      const got: Buffer[] = [];
      const ended = new Promise<void>((r) => client.on('end', () => r()));
      client.on('data', (d) => got.push(d));
      client.end('hello from the host');
      const start = Date.now();
      while (!g.established && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 5));
      assert.ok(g.established, 'guest saw the handshake');
      assert.ok(g.peerPort > 0);
      g.write(Buffer.from('hello from the guest'), true);
      await g.done(5000);
      await ended;
      assert.equal(g.data().toString(), 'hello from the host');
      assert.equal(Buffer.concat(got).toString(), 'hello from the guest');
      client.destroy();
    } finally { await n.close(); }
  });

  it('relays UDP host forwards both ways', async () => {
    const n = await makeNet([{ protocol: 'udp', hostAddr: '127.0.0.1', hostPort: 0, guestAddr: '', guestPort: 9000 }]);
    const wire = new Wire(n);
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
      const reply = new Promise<Buffer>((r) => client.once('message', (m) => r(m)));
      client.send('ping', n.forwardedPorts()[0]!.hostPort, '127.0.0.1');
      const rx = await wire.expect((x) => udpOf(x)?.dport === 9000, 2000, 'forwarded datagram');
      const u = udpOf(rx)!;
      assert.equal(Buffer.from(u.data).toString(), 'ping');
      assert.equal(rx.src, GW);
      wire.send(udpFrame(GUEST, GW, 9000, u.sport, Buffer.from('pong')));
      assert.equal((await reply).toString(), 'pong');
    } finally {
      client.close();
      await n.close();
    }
  });

  it('fails with a one-line MachineError when a forwarded host port is in use', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      await assert.rejects(makeNet([{ protocol: 'tcp', hostAddr: '', hostPort: port, guestAddr: '', guestPort: 22 }]),
        (e: unknown) => e instanceof MachineError && !e.message.includes('\n') && e.message.includes(String(port)));
      assert.throws(() => new UserNet({ hostfwd: [], guestMac: 'nope' }), MachineError);
    } finally { busy.close(); }
  });

  it('survives hostile segments on an established connection', async () => {
    const server = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const n = await makeNet();
    const wire = new Wire(n);
    try {
      const g = new GuestTcp(wire, GUEST, 41020, GW, port, 65535);
      g.connect();
      const t0 = Date.now();
      while (!g.established && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
      const r = prng(42);
      for (let i = 0; i < 3000; i++) {
        const flags = [TH_ACK, TH_ACK | TH_SYN, TH_ACK | 0x01, 0x01, TH_SYN, 0x3f, 0][(r() * 7) | 0]!;
        // Sequence and ACK numbers near the right ones, or anywhere.
        const seq = r() < 0.5 ? (g.sndNxt + ((r() * 200000) | 0) - 100000) >>> 0 : (r() * 2 ** 32) >>> 0;
        const ack = r() < 0.5 ? (g.rcvNxt + ((r() * 200000) | 0) - 100000) >>> 0 : (r() * 2 ** 32) >>> 0;
        const data = randomBytes((r() * 1600) | 0, i);
        const opts = r() < 0.3 ? Array.from({ length: (r() * 40) | 0 }, () => (r() * 256) | 0) : [];
        wire.send(tcpFrame(GUEST, GW, 41020, port, seq, ack, flags, (r() * 65536) | 0, data, opts));
        if (i % 100 === 0) await new Promise((res) => setImmediate(res));
      }
      await new Promise((res) => setTimeout(res, 100));
      assert.equal(n.stats.internalErrors, 0);
      assert.deepEqual(g.violations, []);
    } finally {
      await n.close();
      server.close();
    }
    assert.equal(n.connections().tcp, 0);
  });

  it('survives random and malformed frames', async () => {
    const closedPort = await freePort();
    const n = await makeNet();
    const wire = new Wire(n);
    const seeds = [1, 2, 3, 4, 5];
    const bases: Uint8Array[] = [
      arpFrame(1, BROADCAST_MAC, GUEST_MAC, GUEST, new Uint8Array(6), GW),
      udpFrame(0, 0xffffffff, 68, 67, dhcpMessage(1, { broadcast: true }), BROADCAST_MAC),
      udpFrame(0, 0xffffffff, 68, 67, dhcpMessage(3, { requested: GUEST }), BROADCAST_MAC),
      udpFrame(GUEST, DNS, 5555, 53, Buffer.from('\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01', 'latin1')),
      udpFrame(GUEST, GW, 4000, closedPort, Buffer.from('x')),
      tcpFrame(GUEST, GW, 40001, closedPort, 5000, 0, TH_SYN, 64240, undefined, [2, 4, 5, 0xb4, 1, 3, 3, 7]),
      tcpFrame(GUEST, GW, 40001, closedPort, 5001, 99, TH_ACK, 64240, Buffer.from('data')),
      ipv4Frame(GW_MAC, GUEST_MAC, GUEST, GW, 1, Uint8Array.from([8, 0, 0xf7, 0xff, 0, 0, 0, 0])),
    ];
    /** Repairs the IPv4 and transport checksums so that mutations reach the deeper parsers. */
    const repair = (f: Uint8Array): void => {
      if (f.length < 34 || readU16(f, 12) !== 0x0800) return;
      f[14] = 0x45;
      writeU32(f, 30, (0x0a000200 | (f[33]! & 3)) >>> 0); // stay inside 10.0.2.0/24: no real hosts
      writeU16(f, 24, 0);
      writeU16(f, 24, checksum(f, 14, 34));
      const total = readU16(f, 16);
      if (total < 20 || 14 + total > f.length) return;
      const proto = f[23]!;
      const l4 = f.subarray(34, 14 + total);
      const off = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 ? 2 : -1;
      if (off < 0 || l4.length < off + 2) return;
      writeU16(l4, off, 0);
      const pseudo = proto === 1 ? 0 : pseudoSum(readU32(f, 26), readU32(f, 30), proto, l4.length);
      writeU16(l4, off, checksum(l4, 0, l4.length, pseudo));
    };
    try {
      for (const seed of seeds) {
        const r = prng(seed);
        for (let i = 0; i < 2000; i++) {
          let f: Uint8Array;
          const kind = r();
          if (kind < 0.2) {
            f = new Uint8Array((r() * 120) | 0);
            for (let j = 0; j < f.length; j++) f[j] = (r() * 256) | 0;
            if (f.length >= 14 && r() < 0.5) { f.set(GW_MAC, 0); f[12] = 8; f[13] = r() < 0.5 ? 0 : 6; }
          } else {
            const base = bases[(r() * bases.length) | 0]!;
            f = base.slice(0, r() < 0.2 ? (r() * base.length) | 0 : base.length);
            const flips = 1 + ((r() * 4) | 0);
            for (let j = 0; j < flips && f.length > 14; j++) f[14 + ((r() * (f.length - 14)) | 0)] = (r() * 256) | 0;
            if (r() < 0.7) repair(f);
          }
          n.send(f);
        }
        await new Promise((res) => setTimeout(res, 10));
      }
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(n.stats.internalErrors, 0);
      assert.ok(n.stats.framesFromGuest >= 10000);
    } finally { await n.close(); }
    assert.equal(n.connections().tcp, 0);
  });
});
