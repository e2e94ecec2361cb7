// virtio-vsock (virtio 1.2, 5.10) driven by a scripted guest driver over the
// MMIO transport, with its host side on real Unix sockets in a temp dir.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REG_CONFIG, REG_DEVICE_ID, REG_QUEUE_NUM_MAX, REG_QUEUE_SEL, STATUS_DEVICE_NEEDS_RESET } from '../src/devices/virtio/constants.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import {
  decodeHeader, encodeHeader, HOST_BUF_ALLOC, MAX_PKT_PAYLOAD, VIRTIO_VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_RW, VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_SEND, VIRTIO_VSOCK_TYPE_SEQPACKET, VIRTIO_VSOCK_TYPE_STREAM, VSOCK_HDR_SIZE,
  VirtioVsock, type VirtioVsockState, type VsockHeader,
} from '../src/devices/virtio/vsock.js';
import type { VirtioDevice } from '../src/devices/virtio/device.js';
import { MachineError } from '../src/machine/errors.js';
import { createVirtioDevice, type VirtioEnv } from '../src/machine/virtio-devices.js';
import { Driver, FakeRam, type DriverQueue } from './virtio-driver.js';
import { prng } from './support.js';

const BASE = 0x8000_0000;
const GUEST_CID = 3;
const dir = mkdtempSync(join(tmpdir(), 'disco-vsock-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let serial = 0;

interface Pkt { h: VsockHeader; data: Buffer }

class Rig {
  readonly ram = new FakeRam(BASE, 64 << 20);
  readonly socket = join(dir, `vm${serial++}.vsock`);
  readonly dev = new VirtioVsock({ cid: GUEST_CID, socket: this.socket });
  readonly t = new VirtioMmioTransport({ base: 0x1000_1000, device: this.dev, mem: this.ram, irq: () => {} });
  readonly drv = new Driver(this.t as VirtioMmioTransport<unknown>, this.ram);
  rx!: DriverQueue;
  tx!: DriverQueue;
  private rxBufs = new Map<number, number>();
  /** Packets the guest received and the test has not looked at yet. */
  inbox: Pkt[] = [];

  constructor(readonly rxBufSize = 4096 + VSOCK_HDR_SIZE) {}

  async up(rxBuffers = 32): Promise<this> {
    await this.dev.listen();
    const [rx, tx] = this.drv.init([64, 64, 16]);
    this.rx = rx!;
    this.tx = tx!;
    this.postRx(rxBuffers);
    return this;
  }

  postRx(n: number): void {
    for (let i = 0; i < n; i++) {
      const a = this.drv.arena.alloc(this.rxBufSize, 8);
      this.rxBufs.set(this.rx.add([{ addr: a, len: this.rxBufSize, write: true }]), a);
    }
    this.rx.kick();
  }

  /** Collects what the device put in rx buffers (reposting them, as the driver does). */
  poll(): Pkt[] {
    let n = 0;
    for (const u of this.rx.reap()) {
      const a = this.rxBufs.get(u.id);
      assert.ok(a !== undefined);
      this.rxBufs.delete(u.id);
      n++;
      if (u.len === 0) continue;
      assert.ok(u.len >= VSOCK_HDR_SIZE, `used length ${u.len}`);
      const b = Buffer.from(this.ram.get(a, u.len));
      const h = decodeHeader(b);
      assert.equal(u.len, VSOCK_HDR_SIZE + h.len, 'used length = header + payload');
      this.inbox.push({ h, data: b.subarray(VSOCK_HDR_SIZE) });
    }
    this.tx.reap();
    if (n > 0) this.postRx(n);
    const got = this.inbox;
    this.inbox = [];
    return got;
  }

  /** Waits until the guest received a packet matching `pred` (earlier ones are returned too). */
  async expect(pred: (p: Pkt) => boolean, what: string, ms = 3000): Promise<Pkt[]> {
    const seen: Pkt[] = [];
    const end = Date.now() + ms;
    for (;;) {
      seen.push(...this.poll());
      if (seen.some(pred)) return seen;
      if (Date.now() > end) assert.fail(`no ${what}; got ${JSON.stringify(seen.map((p) => [p.h.op, p.h.len, p.h.flags]))}`);
      await tick();
    }
  }

  hdr(p: Partial<VsockHeader> & { op: number; srcPort: number; dstPort: number }): VsockHeader {
    return { srcCid: BigInt(GUEST_CID), dstCid: 2n, len: 0, type: VIRTIO_VSOCK_TYPE_STREAM, flags: 0, bufAlloc: 65536, fwdCnt: 0, ...p };
  }

  /** The guest sends one packet (header and payload in separate descriptors, as Linux). */
  send(h: VsockHeader, payload: Uint8Array = new Uint8Array(0), kick = true): void {
    const ha = this.drv.arena.alloc(VSOCK_HDR_SIZE, 8);
    this.ram.set(ha, encodeHeader({ ...h, len: h.len || payload.length }));
    const bufs = [{ addr: ha, len: VSOCK_HDR_SIZE }];
    if (payload.length > 0) {
      const pa = this.drv.arena.alloc(payload.length, 8);
      this.ram.set(pa, payload);
      bufs.push({ addr: pa, len: payload.length });
    }
    this.tx.add(bufs);
    if (kick) this.tx.kick();
  }

  async close(): Promise<void> {
    await this.dev.close();
    assert.deepEqual(this.ram.violations, []);
  }
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 2));

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await tick();
  }
}

/** A host client that asked for `port`, with everything it has read. */
function client(path: string, port: number): { sock: Socket; data: () => string; ended: () => boolean; closed: () => boolean } {
  const sock = connect({ path, allowHalfOpen: true });
  let buf = '';
  let ended = false, closed = false;
  sock.on('data', (d: Buffer) => { buf += d.toString('latin1'); });
  sock.on('end', () => { ended = true; });
  sock.on('close', () => { closed = true; });
  sock.on('error', () => {});
  sock.write(`CONNECT ${port}\n`);
  return { sock, data: () => buf, ended: () => ended, closed: () => closed };
}

const isOp = (op: number) => (p: Pkt): boolean => p.h.op === op;

test('identity: device ID 19, queues rx/tx/event, guest_cid in the configuration space', async () => {
  const r = new Rig();
  assert.equal(r.drv.r(REG_DEVICE_ID), 19);
  for (const [q, max] of [[0, 128], [1, 128], [2, 16], [3, 0]] as const) {
    r.drv.w(REG_QUEUE_SEL, q);
    assert.equal(r.drv.r(REG_QUEUE_NUM_MAX), max);
  }
  assert.equal(Number(r.t.read(REG_CONFIG, 4)), GUEST_CID);
  assert.equal(Number(r.t.read(REG_CONFIG + 4, 4)), 0);
  r.t.write(REG_CONFIG, 4, 99n);
  assert.equal(Number(r.t.read(REG_CONFIG, 4)), GUEST_CID, 'guest_cid is read-only');
  assert.throws(() => new VirtioVsock({ cid: 2, socket: r.socket }), RangeError);
});

test('host-initiated: CONNECT, REQUEST, RESPONSE, OK, data both ways, guest SHUTDOWN, RST', async () => {
  const r = await new Rig().up();
  const c = client(r.socket, 5000);
  const [req] = (await r.expect(isOp(VIRTIO_VSOCK_OP_REQUEST), 'REQUEST')).filter(isOp(VIRTIO_VSOCK_OP_REQUEST));
  assert.equal(req!.h.dstPort, 5000);
  assert.equal(req!.h.srcCid, 2n);
  assert.equal(req!.h.dstCid, BigInt(GUEST_CID));
  assert.equal(req!.h.type, VIRTIO_VSOCK_TYPE_STREAM);
  const hostPort = req!.h.srcPort;
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 5000, dstPort: hostPort }));
  await until(() => c.data() === `OK ${hostPort}\n`, 'OK line');
  c.sock.write('hello');
  const got = await r.expect(isOp(VIRTIO_VSOCK_OP_RW), 'RW');
  const rw = got.find(isOp(VIRTIO_VSOCK_OP_RW))!;
  assert.equal(rw.data.toString(), 'hello');
  assert.equal(rw.h.bufAlloc, HOST_BUF_ALLOC);
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: hostPort }), Buffer.from('world'));
  await until(() => c.data().endsWith('world'), 'guest data at the host');
  // The host half-closes: the guest hears SHUTDOWN SEND; it can still send.
  c.sock.end();
  const sd = (await r.expect(isOp(VIRTIO_VSOCK_OP_SHUTDOWN), 'SHUTDOWN')).find(isOp(VIRTIO_VSOCK_OP_SHUTDOWN))!;
  assert.equal(sd.h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: hostPort }), Buffer.from('!'));
  await until(() => c.data().endsWith('world!'), 'data after the host half-close');
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 5000, dstPort: hostPort, flags: VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND }));
  await r.expect(isOp(VIRTIO_VSOCK_OP_RST), 'RST after a full shutdown');
  await until(() => c.ended() || c.closed(), 'client closed');
  assert.equal(r.dev.connections, 0);
  // A second VM on the same live socket is refused; a stale socket file is replaced.
  const twin = new VirtioVsock({ cid: 4, socket: r.socket });
  await assert.rejects(twin.listen(), /in use/);
  await r.close();
  assert.equal(existsSync(r.socket), false, 'close() unlinks the socket');
  // A process killed while listening leaves its socket file behind.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(r.socket)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(existsSync(r.socket), true);
  await twin.listen();
  await twin.close();
});

test('host-initiated to a port nobody listens on: the guest RSTs, the client is closed without OK', async () => {
  const r = await new Rig().up();
  const c = client(r.socket, 9);
  const req = (await r.expect(isOp(VIRTIO_VSOCK_OP_REQUEST), 'REQUEST')).find(isOp(VIRTIO_VSOCK_OP_REQUEST))!;
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RST, srcPort: 9, dstPort: req.h.srcPort }));
  await until(() => c.ended() || c.closed(), 'client closed');
  assert.equal(c.data(), '');
  // A malformed CONNECT line is refused by the host side alone.
  const bad = client(r.socket, 1);
  bad.sock.write('');
  const b2 = connect({ path: r.socket });
  let text = '';
  b2.on('data', (d: Buffer) => { text += d.toString(); });
  b2.write('HELLO\n');
  await until(() => text.startsWith('ERROR'), 'ERROR for a bad line');
  b2.destroy();
  bad.sock.destroy();
  await r.close();
});

async function guestListener(path: string): Promise<{ server: Server; conns: Socket[]; data: () => string }> {
  const conns: Socket[] = [];
  let data = '';
  const server = createServer({ allowHalfOpen: true }, (s) => {
    conns.push(s);
    s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    s.on('error', () => {});
  });
  await new Promise<void>((res) => server.listen(path, res));
  return { server, conns, data: () => data };
}

test('guest-initiated: REQUEST to host port P connects to <socket>_P; no listener → RST', async () => {
  const r = await new Rig().up();
  const l = await guestListener(`${r.socket}_7000`);
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 40000, dstPort: 7000 }));
  const resp = (await r.expect(isOp(VIRTIO_VSOCK_OP_RESPONSE), 'RESPONSE')).find(isOp(VIRTIO_VSOCK_OP_RESPONSE))!;
  assert.equal(resp.h.srcPort, 7000);
  assert.equal(resp.h.dstPort, 40000);
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 40000, dstPort: 7000 }), Buffer.from('ping'));
  await until(() => l.data() === 'ping', 'data at the host listener');
  l.conns[0]!.write('pong');
  const rw = (await r.expect(isOp(VIRTIO_VSOCK_OP_RW), 'RW')).find(isOp(VIRTIO_VSOCK_OP_RW))!;
  assert.equal(rw.data.toString(), 'pong');
  // The host side closes: the guest hears SHUTDOWN SEND (a Unix socket cannot tell a close from a
  // half-close); the guest closes too and the device answers with RST.
  l.conns[0]!.destroy();
  const sd = (await r.expect(isOp(VIRTIO_VSOCK_OP_SHUTDOWN), 'SHUTDOWN')).find(isOp(VIRTIO_VSOCK_OP_SHUTDOWN))!;
  assert.equal(sd.h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND, VIRTIO_VSOCK_SHUTDOWN_SEND);
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 40000, dstPort: 7000, flags: VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND }));
  const fin = (await r.expect(isOp(VIRTIO_VSOCK_OP_RST), 'RST')).find(isOp(VIRTIO_VSOCK_OP_RST))!;
  assert.equal(fin.h.dstPort, 40000);
  assert.equal(r.dev.connections, 0);
  // Nobody listens on 7001.
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 40001, dstPort: 7001 }));
  const rst = (await r.expect(isOp(VIRTIO_VSOCK_OP_RST), 'RST')).find(isOp(VIRTIO_VSOCK_OP_RST))!;
  assert.equal(rst.h.dstPort, 40001);
  assert.equal(rst.h.srcPort, 7001);
  await new Promise<void>((res) => l.server.close(() => res()));
  await r.close();
});

/** An established host-initiated connection with the guest advertising `bufAlloc`. */
async function established(r: Rig, bufAlloc: number): Promise<{ c: ReturnType<typeof client>; hostPort: number }> {
  const c = client(r.socket, 6000);
  const req = (await r.expect(isOp(VIRTIO_VSOCK_OP_REQUEST), 'REQUEST')).find(isOp(VIRTIO_VSOCK_OP_REQUEST))!;
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 6000, dstPort: req.h.srcPort, bufAlloc }));
  await until(() => c.data().startsWith('OK '), 'OK');
  return { c, hostPort: req.h.srcPort };
}

test('credit: the device never sends more than buf_alloc - (tx_cnt - fwd_cnt), and resumes on CREDIT_UPDATE', async () => {
  const r = await new Rig().up(64);
  const { c, hostPort } = await established(r, 1000);
  const payload = Buffer.alloc(5000);
  for (let i = 0; i < payload.length; i++) payload[i] = i * 7;
  c.sock.write(payload);
  let got = Buffer.alloc(0);
  const collect = (ps: Pkt[]): void => { for (const p of ps) if (p.h.op === VIRTIO_VSOCK_OP_RW) got = Buffer.concat([got, p.data]); };
  await until(() => { collect(r.poll()); return got.length >= 1000; }, 'first window');
  await new Promise((res) => setTimeout(res, 50));
  collect(r.poll());
  assert.equal(got.length, 1000, 'stops at the guest\'s buf_alloc');
  for (let fwd = 1000; fwd < 5000; fwd += 1000) {
    r.send(r.hdr({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 6000, dstPort: hostPort, bufAlloc: 1000, fwdCnt: fwd }));
    await until(() => { collect(r.poll()); return got.length >= fwd + 1000; }, `window up to ${fwd + 1000}`);
    await new Promise((res) => setTimeout(res, 20));
    collect(r.poll());
    assert.equal(got.length, fwd + 1000);
  }
  assert.deepEqual(got, payload);
  // CREDIT_REQUEST is answered with our buf_alloc and fwd_cnt.
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 6000, dstPort: hostPort, bufAlloc: 1000, fwdCnt: 5000 }), Buffer.alloc(10));
  await until(() => c.data().length >= 3 + 10, 'data at host');
  await new Promise((res) => setTimeout(res, 20));
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_CREDIT_REQUEST, srcPort: 6000, dstPort: hostPort, bufAlloc: 1000, fwdCnt: 5000 }));
  const cu = (await r.expect(isOp(VIRTIO_VSOCK_OP_CREDIT_UPDATE), 'CREDIT_UPDATE')).find(isOp(VIRTIO_VSOCK_OP_CREDIT_UPDATE))!;
  assert.equal(cu.h.bufAlloc, HOST_BUF_ALLOC);
  assert.equal(cu.h.fwdCnt, 10);
  c.sock.destroy();
  await r.close();
});

test('credit to the guest: fwd_cnt advances as the host socket takes the bytes, with CREDIT_UPDATE before the window closes', async () => {
  const r = await new Rig().up();
  const { c, hostPort } = await established(r, 65536);
  const chunk = Buffer.alloc(MAX_PKT_PAYLOAD, 0x61);
  let sent = 0, fwd = 0;
  // The guest sends only while its credit (our buf_alloc - (sent - our fwd_cnt)) allows, as Linux does.
  for (let round = 0; sent < 4 * HOST_BUF_ALLOC; round++) {
    assert.ok(round < 1000, 'the window never reopened');
    while (sent + chunk.length - fwd <= HOST_BUF_ALLOC && sent < 4 * HOST_BUF_ALLOC) {
      r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 6000, dstPort: hostPort }), chunk);
      sent += chunk.length;
    }
    await tick();
    for (const p of r.poll()) {
      assert.notEqual(p.h.op, VIRTIO_VSOCK_OP_RST);
      assert.equal(p.h.bufAlloc, HOST_BUF_ALLOC);
      assert.ok(p.h.fwdCnt >= fwd && p.h.fwdCnt <= sent, 'fwd_cnt only grows, up to what was sent');
      fwd = p.h.fwdCnt;
    }
  }
  await until(() => c.data().length === `OK ${hostPort}\n`.length + 4 * HOST_BUF_ALLOC, 'all bytes at the host');
  c.sock.destroy();
  await r.close();
});

test('packets wait while the rx queue is empty, then arrive in order', async () => {
  const r = await new Rig().up(0);
  const c = client(r.socket, 6100);
  await new Promise((res) => setTimeout(res, 30));
  assert.equal(r.poll().length, 0);
  r.postRx(1);
  const req = (await r.expect(isOp(VIRTIO_VSOCK_OP_REQUEST), 'REQUEST')).find(isOp(VIRTIO_VSOCK_OP_REQUEST))!;
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 6100, dstPort: req.h.srcPort }));
  await until(() => c.data().startsWith('OK '), 'OK');
  c.sock.write('a'.repeat(3000));
  await new Promise((res) => setTimeout(res, 30));
  c.sock.write('b'.repeat(3000));
  await new Promise((res) => setTimeout(res, 30));
  let text = '';
  await until(() => { for (const p of r.poll()) text += p.data.toString(); return text.length >= 6000; }, 'all data through one buffer at a time');
  assert.equal(text, 'a'.repeat(3000) + 'b'.repeat(3000));
  c.sock.destroy();
  await r.close();
});

test('the guest sending beyond our credit is reset', async () => {
  const r = await new Rig().up();
  const { c, hostPort } = await established(r, 65536);
  const big = Buffer.alloc(MAX_PKT_PAYLOAD, 1);
  // All in one notification: the host socket cannot take any of it before the device sees the last.
  for (let i = 0; i < HOST_BUF_ALLOC / MAX_PKT_PAYLOAD + 1; i++) r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 6000, dstPort: hostPort }), big, false);
  r.tx.kick();
  await r.expect(isOp(VIRTIO_VSOCK_OP_RST), 'RST');
  await until(() => c.ended() || c.closed(), 'client closed');
  await r.close();
});

test('malformed packets: wrong CID, unknown connection, SEQPACKET, length beyond the chain, unknown op → RST; RST → nothing', async () => {
  const r = await new Rig().up();
  const rstTo = async (h: VsockHeader, payload?: Uint8Array): Promise<Pkt> => {
    r.send(h, payload);
    return (await r.expect(isOp(VIRTIO_VSOCK_OP_RST), `RST for op ${h.op}`)).find(isOp(VIRTIO_VSOCK_OP_RST))!;
  };
  let p = await rstTo(r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2 }), Buffer.from('x'));
  assert.equal(p.h.dstPort, 1);
  p = await rstTo({ ...r.hdr({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 3, dstPort: 4 }), srcCid: 77n });
  assert.equal(p.h.dstCid, BigInt(GUEST_CID), 'replies go to the guest only');
  await rstTo({ ...r.hdr({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 3, dstPort: 4 }), type: VIRTIO_VSOCK_TYPE_SEQPACKET });
  await rstTo({ ...r.hdr({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 3, dstPort: 4 }), dstCid: 5n });
  await rstTo({ ...r.hdr({ op: VIRTIO_VSOCK_OP_RW, srcPort: 3, dstPort: 4 }), len: 100 }, Buffer.from('short'));
  // On a live connection, an unknown op resets it.
  const { c, hostPort } = await established(r, 65536);
  await rstTo(r.hdr({ op: 99, srcPort: 6000, dstPort: hostPort }));
  await until(() => c.ended() || c.closed(), 'client closed');
  r.send(r.hdr({ op: VIRTIO_VSOCK_OP_RST, srcPort: 8, dstPort: 9 }));
  await new Promise((res) => setTimeout(res, 30));
  assert.equal(r.poll().length, 0, 'no answer to a RST');
  assert.equal((r.drv.status() & STATUS_DEVICE_NEEDS_RESET), 0);
  await r.close();
});

test('fuzz: random and malformed tx chains never throw or touch memory outside RAM', async () => {
  for (const seed of [1, 2, 3, 4]) {
    const r = await new Rig().up();
    const rand = prng(seed);
    const int = (n: number): number => Math.floor(rand() * n);
    const l = await guestListener(`${r.socket}_${seed}`);
    for (let i = 0; i < 300; i++) {
      const ops = [VIRTIO_VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RST, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_OP_RW,
        VIRTIO_VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0, int(65536)];
      const h = r.hdr({
        op: ops[int(ops.length)]!, srcPort: int(4), dstPort: rand() < 0.5 ? seed : int(0x1_0000_0000),
        flags: int(8), bufAlloc: int(0x1_0000_0000), fwdCnt: int(0x1_0000_0000), len: rand() < 0.3 ? int(0x1_0000_0000) : 0,
      });
      if (rand() < 0.1) h.srcCid = BigInt(int(10));
      if (rand() < 0.1) h.type = int(4);
      const kind = int(6);
      if (kind === 0) {
        r.send(h, Buffer.alloc(int(300), int(256)));
      } else if (kind === 1) {
        // A short header.
        const a = r.drv.arena.alloc(64, 8);
        r.ram.set(a, encodeHeader(h).subarray(0, int(VSOCK_HDR_SIZE)));
        r.tx.add([{ addr: a, len: int(VSOCK_HDR_SIZE) }]);
        r.tx.kick();
      } else if (kind === 2) {
        // Device-writable parts, and buffers at the edge of RAM.
        const a = r.drv.arena.alloc(64, 8);
        r.ram.set(a, encodeHeader(h));
        r.tx.add([{ addr: a, len: VSOCK_HDR_SIZE }, { addr: BASE + r.ram.size - 16, len: 16, write: rand() < 0.5 }]);
        r.tx.kick();
      } else if (kind === 3) {
        // A buffer beyond RAM: the queue reports it (DEVICE_NEEDS_RESET), the device survives.
        r.tx.add([{ addr: BASE + r.ram.size - 8, len: 64 }]);
        r.tx.kick();
      } else if (kind === 4) {
        // Random header bytes.
        const a = r.drv.arena.alloc(VSOCK_HDR_SIZE, 8);
        r.ram.set(a, Uint8Array.from({ length: VSOCK_HDR_SIZE }, () => int(256)));
        r.tx.add([{ addr: a, len: VSOCK_HDR_SIZE }]);
        r.tx.kick();
      } else {
        r.send(h);
      }
      r.poll();
      if (i % 16 === 0) await tick();
      if (((r.drv.status() & STATUS_DEVICE_NEEDS_RESET)) !== 0) {
        // Bring the device back as a driver would.
        r.drv.init([64, 64, 16]);
        // init replaced the queues.
        r.rx = r.drv.queues[0]!;
        r.tx = r.drv.queues[1]!;
        (r as unknown as { rxBufs: Map<number, number> }).rxBufs.clear();
        r.postRx(16);
      }
    }
    for (const s of l.conns) s.destroy();
    await new Promise<void>((res) => l.server.close(() => res()));
    await r.close();
  }
});

test('reset drops connections; save/restore round-trips and rejects malformed state', async () => {
  const r = await new Rig().up();
  const { c } = await established(r, 65536);
  r.drv.w(0x070, 0);
  await until(() => c.ended() || c.closed(), 'client closed by reset');
  assert.equal(r.dev.connections, 0);
  const s = r.dev.save();
  assert.deepEqual(s, { version: 1, guestCid: '3' });
  r.dev.restore(JSON.parse(JSON.stringify(s)) as VirtioVsockState);
  for (const bad of [{ version: 2, guestCid: '3' }, { version: 1, guestCid: 3 }, { version: 1, guestCid: '2' }, { version: 1, guestCid: 'x' }, { version: 1, guestCid: '99999999999' }, null]) {
    assert.throws(() => r.dev.restore(bad as unknown as VirtioVsockState), RangeError, JSON.stringify(bad));
  }
  await r.close();
});

test('the factory: a bad socket path is a one-line MachineError before the guest runs; a good one listens', async () => {
  const env = { vmName: 'f', pmap: null, consoleOutput: () => {}, log: () => {}, starting: () => {} } as unknown as VirtioEnv;
  const mk = (socket: string, cid = 3): VirtioDevice => createVirtioDevice({ kind: 'vsock', cid, socket }, env);
  assert.throws(() => mk(join(dir, 'no-such-dir', 'x.vsock')), (e: unknown) => e instanceof MachineError && /does not exist/.test(e.message));
  const file = join(dir, 'plain-file');
  writeFileSync(file, '');
  assert.throws(() => mk(file), (e: unknown) => e instanceof MachineError && /not a socket/.test(e.message));
  assert.throws(() => mk(join(dir, 'x'.repeat(120))), MachineError);
  assert.throws(() => mk(join(dir, 'ok.vsock'), 2), MachineError);
  const dev = mk(join(dir, 'ok.vsock'));
  await until(() => existsSync(join(dir, 'ok.vsock')), 'listening socket');
  await dev.close?.();
  assert.equal(existsSync(join(dir, 'ok.vsock')), false);
});
