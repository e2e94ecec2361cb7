// virtio-console (virtio 1.2, 5.3) with MULTIPORT, driven the way Linux's
// virtio_console does it: control receive buffers of a page, DEVICE_READY,
// PORT_READY for each DEVICE_ADD, PORT_OPEN from hvc and from programs; and
// named ports relayed to Unix sockets.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  F_VERSION_1, INT_USED_BUFFER, REG_CONFIG, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DEVICE_ID, REG_QUEUE_NUM_MAX,
  REG_QUEUE_SEL, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, feature,
} from '../src/devices/virtio/constants.js';
import {
  CONSOLE_RX_LIMIT, VIRTIO_CONSOLE_CONSOLE_PORT, VIRTIO_CONSOLE_DEVICE_ADD, VIRTIO_CONSOLE_DEVICE_READY, VIRTIO_CONSOLE_F_MULTIPORT,
  VIRTIO_CONSOLE_PORT_NAME, VIRTIO_CONSOLE_PORT_OPEN, VIRTIO_CONSOLE_PORT_READY, VirtioConsole, type ConsolePortOptions, type VirtioConsoleState,
} from '../src/devices/virtio/console.js';
import { VirtioMmioTransport } from '../src/devices/virtio/transport-mmio.js';
import { MachineError } from '../src/machine/errors.js';
import { ALL_RING_FEATURES, Driver, FakeRam, rng, type DriverQueue, rawDesc } from './virtio-driver.js';

const BASE = 0x8000_0000;
const PAGE = 4096;
const dir = mkdtempSync(join(tmpdir(), 'disco-console-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const LINUX = ALL_RING_FEATURES | feature(VIRTIO_CONSOLE_F_MULTIPORT);

interface Ctl { id: number; event: number; value: number; name?: string }

class Rig {
  readonly ram = new FakeRam(BASE, 8 << 20);
  readonly out: number[] = [];
  readonly dev: VirtioConsole;
  readonly t: VirtioMmioTransport<VirtioConsoleState>;
  readonly drv: Driver;
  qs: DriverQueue[] = [];
  /** head → buffer address, per queue index. */
  readonly bufs = new Map<number, Map<number, number>>();

  constructor(ports: readonly ConsolePortOptions[] = []) {
    this.dev = new VirtioConsole({ ports, output: (b) => this.out.push(...b) });
    this.t = new VirtioMmioTransport({ base: 0x1000_3000, device: this.dev, mem: this.ram, irq: () => {} });
    this.drv = new Driver(this.t as VirtioMmioTransport<unknown>, this.ram);
  }

  /** Linux's probe: features, every queue, DRIVER_OK, then a page-sized buffer in each receive queue (control and ports). */
  init(want = LINUX, rxBuffers = 4): void {
    const n = (want & feature(VIRTIO_CONSOLE_F_MULTIPORT)) !== 0n ? 2 * (this.nports() + 1) : 2;
    this.qs = this.drv.init(Array.from({ length: n }, () => 16), want);
    if (n > 2) for (let i = 0; i < 8; i++) this.post(2, PAGE);
    for (let p = 0; p < n / 2; p++) if (p !== 1) for (let i = 0; i < rxBuffers; i++) this.post(p === 0 ? 0 : 2 * p, PAGE);
    for (const q of this.qs) q.kick();
  }

  nports(): number {
    return this.drv.r(REG_CONFIG + 4);
  }

  post(q: number, len: number, kick = false): void {
    const a = this.drv.arena.alloc(len, 8);
    let m = this.bufs.get(q);
    if (!m) { m = new Map(); this.bufs.set(q, m); }
    m.set(this.qs[q]!.add([{ addr: a, len, write: true }]), a);
    if (kick) this.qs[q]!.kick();
  }

  /** Used buffers of receive queue `q`: their bytes; each buffer is given back (as Linux does). */
  received(q: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const u of this.qs[q]!.reap()) {
      const m = this.bufs.get(q)!;
      const a = m.get(u.id)!;
      m.delete(u.id);
      out.push(this.ram.get(a, u.len));
      m.set(this.qs[q]!.add([{ addr: a, len: PAGE, write: true }]), a);
    }
    if (out.length) this.qs[q]!.kick();
    return out;
  }

  control(): Ctl[] {
    return this.received(2).map((b) => {
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const c: Ctl = { id: v.getUint32(0, true), event: v.getUint16(4, true), value: v.getUint16(6, true) };
      if (b.length > 8) c.name = Buffer.from(b.subarray(8)).toString();
      return c;
    });
  }

  send(q: number, data: Uint8Array, at?: number): number {
    const a = at ?? this.drv.arena.alloc(Math.max(1, data.length), 8);
    this.ram.set(a, data);
    const h = this.qs[q]!.add([{ addr: a, len: data.length }]);
    this.qs[q]!.kick();
    return h;
  }

  sendControl(id: number, event: number, value: number): void {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, id, true); v.setUint16(4, event, true); v.setUint16(6, value, true);
    this.send(3, b);
    assert.equal(this.qs[3]!.reap().length, 1, 'control messages are taken at once');
  }

  /** DEVICE_READY, then PORT_READY for every DEVICE_ADD, as Linux does; returns every control message seen. */
  handshake(): Ctl[] {
    this.sendControl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
    const seen: Ctl[] = [];
    let batch = this.control();
    while (batch.length) {
      seen.push(...batch);
      for (const c of batch) if (c.event === VIRTIO_CONSOLE_DEVICE_ADD) this.sendControl(c.id, VIRTIO_CONSOLE_PORT_READY, 1);
      batch = this.control();
    }
    return seen;
  }
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (bs: Uint8Array[]): string => Buffer.concat(bs).toString();

async function waitFor(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function client(path: string): Promise<{ sock: Socket; data: Buffer[]; closed: () => boolean }> {
  const data: Buffer[] = [];
  let closed = false;
  const sock = connect(path);
  sock.on('data', (d: Buffer) => data.push(d));
  sock.on('close', () => { closed = true; });
  sock.on('error', () => {});
  await new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); });
  return { sock, data, closed: () => closed };
}

test('identity: device ID 3, MULTIPORT offered, two queues per port plus the control pair, max_nr_ports', async () => {
  const r = new Rig([{ name: 'a', socket: join(dir, 'id-a.sock') }, { name: 'b', socket: join(dir, 'id-b.sock') }]);
  assert.equal(r.drv.r(REG_DEVICE_ID), 3);
  r.drv.w(REG_DEVICE_FEATURES_SEL, 0);
  assert.equal(r.drv.r(REG_DEVICE_FEATURES) & 0xffffff, 1 << VIRTIO_CONSOLE_F_MULTIPORT);
  assert.equal(r.nports(), 3);
  const maxes = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((q) => { r.drv.w(REG_QUEUE_SEL, q); return r.drv.r(REG_QUEUE_NUM_MAX); });
  assert.deepEqual(maxes.map((m) => m > 0), [true, true, true, true, true, true, true, true, false]);
  await r.dev.close();
});

test('multiport handshake as Linux does it: DEVICE_ADD 0, then CONSOLE_PORT and PORT_OPEN; hvc\'s PORT_OPEN opens the console', async () => {
  const r = new Rig();
  r.init();
  assert.deepEqual(r.control(), [], 'nothing before DEVICE_READY');
  assert.equal(r.dev.consoleOpen(), false);
  r.sendControl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
  assert.deepEqual(r.control(), [{ id: 0, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 }]);
  assert.equal(r.drv.ack() & INT_USED_BUFFER, INT_USED_BUFFER, 'control messages interrupt');
  r.sendControl(0, VIRTIO_CONSOLE_PORT_READY, 1);
  assert.deepEqual(r.control(), [{ id: 0, event: VIRTIO_CONSOLE_CONSOLE_PORT, value: 1 }, { id: 0, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 }]);
  assert.equal(r.dev.consoleOpen(), false, 'not until the guest opens it');
  r.sendControl(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(r.dev.consoleOpen(), true);
  // A second DEVICE_READY adds nothing; unknown events and ports are ignored.
  r.sendControl(0, VIRTIO_CONSOLE_DEVICE_READY, 1);
  r.sendControl(7, VIRTIO_CONSOLE_PORT_READY, 1);
  r.sendControl(0, 99, 1);
  assert.deepEqual(r.control(), []);
  r.sendControl(0, VIRTIO_CONSOLE_PORT_OPEN, 0);
  assert.equal(r.dev.consoleOpen(), false);
  assert.deepEqual(r.ram.violations, []);
});

test('port 0: guest output goes to the terminal; keyboard input waits until the guest opens the port', async () => {
  const r = new Rig();
  r.init();
  r.handshake();
  const h = r.send(1, text('hello, hvc0\r\n'));
  assert.deepEqual(r.qs[1]!.reap(), [{ id: h, len: 0 }]);
  assert.equal(Buffer.from(r.out).toString(), 'hello, hvc0\r\n');
  r.dev.input(text('ls\n'));
  assert.deepEqual(r.received(0), [], 'port not open yet');
  r.sendControl(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(str(r.received(0)), 'ls\n');
  r.dev.input(text('x'.repeat(PAGE + 10)));
  const got = r.received(0);
  assert.deepEqual(got.map((b) => b.length), [PAGE, 10], 'split over receive buffers');
  // Without receive buffers input waits, bounded.
  r.dev.input(new Uint8Array(4 * PAGE));
  assert.equal(r.qs[0]!.reap().length, 4, 'the driver takes its buffers and gives none back');
  r.bufs.get(0)!.clear();
  r.dev.input(new Uint8Array(CONSOLE_RX_LIMIT + 100).fill(0x61));
  assert.equal(r.dev.waitingBytes(0), CONSOLE_RX_LIMIT);
  r.post(0, PAGE, true);
  let total = 0;
  for (let i = 0; i < 40; i++) total += r.received(0).reduce((a, b) => a + b.length, 0);
  assert.equal(total, CONSOLE_RX_LIMIT, 'at most CONSOLE_RX_LIMIT bytes are held');
});

test('without MULTIPORT port 0 is the console from DRIVER_OK on, on queues 0 and 1', () => {
  const r = new Rig();
  r.init(ALL_RING_FEATURES);
  assert.equal(r.dev.consoleOpen(), true);
  r.dev.input(text('abc'));
  assert.equal(str(r.received(0)), 'abc');
  r.send(1, text('out'));
  assert.equal(Buffer.from(r.out).toString(), 'out');
});

test('a named port on a Unix socket: PORT_NAME, PORT_OPEN as the host connects and leaves, bytes both ways, one client at a time', async () => {
  const path = join(dir, 'agent.sock');
  writeFileSync(path, ''); // a stale file is not a socket: refused
  assert.throws(() => new Rig([{ name: 'agent', socket: path }]), MachineError);
  rmSync(path);
  const r = new Rig([{ name: 'org.disco.agent', socket: path }]);
  await waitFor('the socket', () => existsSync(path));
  r.init();
  const seen = r.handshake();
  assert.deepEqual(seen, [
    { id: 0, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 }, { id: 1, event: VIRTIO_CONSOLE_DEVICE_ADD, value: 0 },
    { id: 0, event: VIRTIO_CONSOLE_CONSOLE_PORT, value: 1 }, { id: 0, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 },
    { id: 1, event: VIRTIO_CONSOLE_PORT_NAME, value: 1, name: 'org.disco.agent' },
  ], 'no PORT_OPEN for port 1 while nobody is connected');
  // Guest writes with no host side are consumed and dropped.
  const h = r.send(5, text('lost'));
  assert.deepEqual(r.qs[5]!.reap(), [{ id: h, len: 0 }]);

  const c = await client(path);
  await waitFor('PORT_OPEN 1', () => r.dev.hostConnected('org.disco.agent'));
  assert.deepEqual(r.control(), [{ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 }]);
  const second = await client(path);
  await waitFor('the second client to be turned away', () => second.closed());
  assert.equal(c.closed(), false);

  c.sock.write('ping');
  await new Promise((res) => setTimeout(res, 20));
  assert.deepEqual(r.received(4), [], 'the guest has not opened the port: the bytes wait');
  r.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  assert.equal(str(r.received(4)), 'ping');
  c.sock.write('pong?');
  let got = '';
  await waitFor('bytes to the guest', () => { got += str(r.received(4)); return got === 'pong?'; });
  r.send(5, text('from the guest'));
  await waitFor('bytes to the host', () => Buffer.concat(c.data).toString() === 'from the guest');

  c.sock.end();
  await waitFor('PORT_OPEN 0', () => !r.dev.hostConnected('org.disco.agent'));
  assert.deepEqual(r.control(), [{ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 0 }]);
  // A new client is accepted.
  const c2 = await client(path);
  await waitFor('reconnect', () => r.dev.hostConnected('org.disco.agent'));
  assert.deepEqual(r.control(), [{ id: 1, event: VIRTIO_CONSOLE_PORT_OPEN, value: 1 }]);
  await r.dev.close();
  await waitFor('client closed by close()', () => c2.closed());
  assert.equal(existsSync(path), false, 'close() removes the socket file');
  assert.deepEqual(r.ram.violations, []);
});

test('backpressure: a client writing faster than the guest reads is paused; every byte arrives in order', async () => {
  const path = join(dir, 'bulk.sock');
  const r = new Rig([{ name: 'bulk', socket: path }]);
  await waitFor('the socket', () => existsSync(path));
  r.init(LINUX, 0);
  r.handshake();
  r.sendControl(1, VIRTIO_CONSOLE_PORT_OPEN, 1);
  const c = await client(path);
  await waitFor('connected', () => r.dev.hostConnected('bulk'));
  const total = 8 * CONSOLE_RX_LIMIT;
  const payload = Buffer.alloc(total);
  for (let i = 0; i < total; i++) payload[i] = (i * 7 + (i >> 12)) & 0xff;
  c.sock.write(payload);
  await new Promise((res) => setTimeout(res, 100));
  // Nothing read by the guest yet: the device holds a bounded amount, the rest waits in the sockets.
  assert.ok(r.dev.waitingBytes(1) <= 2 * CONSOLE_RX_LIMIT, `waiting ${r.dev.waitingBytes(1)}`);
  assert.ok(c.sock.writableLength > 0 || r.dev.waitingBytes(1) < total, 'the writer is held back');
  const got: Uint8Array[] = [];
  for (let i = 0; i < 4; i++) r.post(4, PAGE);
  r.qs[4]!.kick();
  await waitFor('all bytes', () => { got.push(...r.received(4)); return got.reduce((a, b) => a + b.length, 0) >= total; }, 20000);
  assert.ok(Buffer.concat(got).equals(payload), 'in order, none lost');
  await r.dev.close();
  c.sock.destroy();
});

test('guest writes wait on the transmitq while the host socket cannot take more', async () => {
  const path = join(dir, 'slow.sock');
  const r = new Rig([{ name: 'slow', socket: path }]);
  await waitFor('the socket', () => existsSync(path));
  r.init();
  r.handshake();
  const c = await client(path);
  await waitFor('connected', () => r.dev.hostConnected('slow'));
  c.sock.pause();
  const chunk = new Uint8Array(PAGE).fill(0x42);
  const at = r.drv.arena.alloc(PAGE, 8);
  const LIMIT = 16 << 20;
  let sent = 0;
  for (let i = 0; i < 14; i++) { r.send(5, chunk, at); sent += chunk.length; }
  for (let round = 0; round < 200; round++) {
    const used = r.qs[5]!.reap().length;
    for (let i = 0; i < used && sent < LIMIT; i++) { r.send(5, chunk, at); sent += chunk.length; }
    await new Promise((res) => setTimeout(res, 1));
  }
  assert.ok(sent < LIMIT, `the guest was held back after ${sent} bytes`);
  assert.ok(r.qs[5]!.reap().length === 0, 'chains wait on the ring');
  c.sock.resume();
  await waitFor('the held writes', () => {
    for (const _u of r.qs[5]!.reap()) { /* returned */ }
    return c.data.reduce((a, b) => a + b.length, 0) === sent;
  }, 20000);
  await r.dev.close();
});

test('bad socket paths are MachineErrors before the guest runs; a stale socket file is replaced', async () => {
  assert.throws(() => new VirtioConsole({ ports: [{ name: 'x', socket: join(dir, 'no-such-dir', 'x.sock') }], output: () => {} }), MachineError);
  assert.throws(() => new VirtioConsole({ ports: [{ name: 'x', socket: join(dir, 'y'.repeat(120)) }], output: () => {} }), MachineError);
  assert.throws(() => new VirtioConsole({ ports: [{ name: 'x', socket: join(dir, 'd1.sock') }, { name: 'x', socket: join(dir, 'd2.sock') }], output: () => {} }), MachineError);
  const path = join(dir, 'stale.sock');
  const a = new VirtioConsole({ ports: [{ name: 's', socket: path }], output: () => {} });
  await waitFor('the socket', () => existsSync(path));
  // An earlier run that did not clean up: its socket file is still there.
  const b = new VirtioConsole({ ports: [{ name: 's', socket: path }], output: () => {} });
  const c = await client(path);
  c.sock.destroy();
  await b.close();
  await a.close();
});

test('save/restore keeps the handshake, open ports and waiting bytes; malformed states are refused', async () => {
  const r = new Rig();
  r.init(LINUX, 0);
  r.handshake();
  r.sendControl(0, VIRTIO_CONSOLE_PORT_OPEN, 1);
  r.dev.input(text('typed ahead'));
  const saved = JSON.parse(JSON.stringify(r.t.save())) as ReturnType<typeof r.t.save>;
  const dev2 = new VirtioConsole({ ports: [], output: () => {} });
  const t2 = new VirtioMmioTransport({ base: 0x1000_3000, device: dev2, mem: r.ram, irq: () => {} });
  t2.restore(saved);
  assert.equal(dev2.consoleOpen(), true);
  assert.equal(dev2.waitingBytes(0), 11);
  const good = dev2.save();
  for (const bad of [{ ...good, version: 2 }, { ...good, ports: [] }, { ...good, ports: [{ ready: true, guestOpen: 1, rx: '' }] },
    { ...good, ports: [{ ready: true, guestOpen: true, rx: '***' }] }, { ...good, control: ['AAA='] }, { ...good, deviceReady: 'yes' }, null]) {
    assert.throws(() => dev2.restore(bad as unknown as VirtioConsoleState), RangeError, JSON.stringify(bad));
  }
  await dev2.close();
});

test('fuzz: malformed chains and random control messages never throw and never leave RAM (seed 0xc0de)', async () => {
  const R = rng(0xc0de);
  const int = (n: number): number => Math.floor(R() * n);
  const RAM = 8 << 20, LOW = 0x200000;
  let used = 0;
  const path = join(dir, 'fuzz.sock');
  const r0 = new Rig([{ name: 'f', socket: path }]);
  await waitFor('the socket', () => existsSync(path));
  const c = await client(path);
  await waitFor('connected', () => r0.dev.hostConnected('f'));
  for (let iter = 0; iter < 300; iter++) {
    const r = iter % 50 === 0 ? r0 : new Rig();
    const multi = R() < 0.8;
    r.init(multi ? LINUX : feature(F_VERSION_1), 0);
    if (multi && R() < 0.5) r.handshake();
    r.dev.input(text('k'.repeat(int(300))));
    // Random control messages: events 0..9, ids around the ports.
    const junk = new Uint8Array(0x10000);
    for (let i = 0; i < junk.length; i += 8) {
      const v = new DataView(junk.buffer, i, 8);
      v.setUint32(0, int(4), true); v.setUint16(4, int(10), true); v.setUint16(6, int(3), true);
    }
    r.ram.set(BASE + LOW, junk);
    const table = r.drv.arena.alloc(64, 16);
    const addr = (len: number): bigint => (R() < 0.96 ? BigInt(BASE + LOW + int((R() < 0.7 ? junk.length : RAM - LOW) - Math.min(len, RAM - LOW)))
      : [0n, BigInt(BASE - 8), BigInt(BASE + RAM - 4), (1n << 64n) - 1n, 1n << 53n][int(5)]!);
    const desc = (t: number, i: number, limit: number): void => {
      const len = R() < 0.7 ? int(20) : R() < 0.9 ? int(5000) : [0xffffffff, RAM, 0][int(3)]!;
      let flags = (R() < 0.25 ? VIRTQ_DESC_F_NEXT : 0) | (R() < 0.4 ? VIRTQ_DESC_F_WRITE : 0);
      if (t !== table && R() < 0.1) { flags = VIRTQ_DESC_F_INDIRECT; rawDesc(r.ram, t, i, BigInt(table), 64, flags, 0); return; }
      rawDesc(r.ram, t, i, addr(len), len, flags, R() < 0.9 ? int(limit) : int(0x10000));
    };
    for (let i = 0; i < 4; i++) desc(table, i, 4);
    for (const q of r.qs) {
      for (let i = 0; i < q.size; i++) desc(q.desc, i, q.size);
      const n = 1 + int(Math.min(q.size, 6));
      const start = q.availIdx;
      for (let k = 0; k < n; k++) r.ram.setU16(q.avail + 4 + 2 * ((start + k) % q.size), int(q.size));
      q.availIdx = (start + n) & 0xffff;
      r.ram.setU16(q.avail + 2, q.availIdx);
    }
    for (const q of [...r.qs].sort(() => R() - 0.5)) assert.doesNotThrow(() => q.kick(), `iteration ${iter}`);
    if (r === r0) c.sock.write('host bytes');
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(r.ram.violations, [], `iteration ${iter}`);
    for (const q of r.qs) used += q.reap().length;
  }
  assert.ok(used > 300, `used ${used}`);
  c.sock.destroy();
  await r0.dev.close();
});
