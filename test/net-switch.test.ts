// The virtual switch: learning and forwarding in the core, and the members
// of a switch shared over a Unix socket (several members in this process act
// as several Disco processes): hosting, joining, re-election when the host
// leaves, stale socket files and malformed streams.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MAC_AGING_MS, SwitchCore, SwitchMember, openSwitchPort, switchSocketPath, type SwitchPort } from '../src/devices/backends/net-switch.js';
import { encodeRecord } from '../src/devices/backends/net-switch-framing.js';
import { parseMac } from '../src/devices/virtio/net.js';

const dir = mkdtempSync(join(tmpdir(), 'disco-switch-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const sockPath = (): string => join(dir, `sw${seq++}.sock`);

const MAC_A = '52:54:00:00:00:0a', MAC_B = '52:54:00:00:00:0b', MAC_C = '52:54:00:00:00:0c', MAC_X = '52:54:00:00:00:99';
const BCAST = 'ff:ff:ff:ff:ff:ff';

function frame(dst: string, src: string, tag = 0, n = 60): Uint8Array {
  const f = new Uint8Array(n);
  f.set(parseMac(dst), 0);
  f.set(parseMac(src), 6);
  f[12] = 0x88; f[13] = 0xb5;
  f[14] = tag;
  return f;
}

/** Tags of the frames a sink got, then cleared. */
function tags(sink: Uint8Array[]): number[] {
  const t = sink.map((f) => f[14]!);
  sink.length = 0;
  return t;
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('core: broadcast and unknown unicast flood to every other port; learned unicast goes to one port; never back to the source', () => {
  const core = new SwitchCore();
  const got: Uint8Array[][] = [[], [], []];
  const [a, b, c] = [MAC_A, MAC_B, MAC_C].map((m, i) => core.addPort(parseMac(m), (f) => got[i]!.push(f)));
  core.input(a!, frame(BCAST, MAC_A, 1));
  assert.deepEqual(got.map(tags), [[], [1], [1]]);
  // A is learned: B's unicast to A reaches only A.
  core.input(b!, frame(MAC_A, MAC_B, 2));
  assert.deepEqual(got.map(tags), [[2], [], []]);
  // Unknown unicast floods.
  core.input(a!, frame(MAC_X, MAC_A, 3));
  assert.deepEqual(got.map(tags), [[], [3], [3]]);
  // Multicast floods.
  core.input(c!, frame('01:00:5e:00:00:01', MAC_C, 4));
  assert.deepEqual(got.map(tags), [[4], [4], []]);
  assert.equal(core.lookup(parseMac(MAC_C)), c);
});

test('core: a frame for an address learned on its own port is not echoed', () => {
  const core = new SwitchCore();
  const got: Uint8Array[][] = [[], []];
  // Unbound ports (no anti-spoofing): a port with two stations behind it.
  const [p, q] = [0, 1].map((i) => core.addPort(null, (f) => got[i]!.push(f)));
  core.input(p!, frame(BCAST, MAC_A, 1));
  core.input(p!, frame(BCAST, MAC_B, 2));
  assert.deepEqual(got.map(tags), [[], [1, 2]]);
  core.input(p!, frame(MAC_B, MAC_A, 3));
  assert.deepEqual(got.map(tags), [[], []], 'B is on the same port as A: dropped');
  core.input(q!, frame(MAC_B, MAC_C, 4));
  assert.deepEqual(got.map(tags), [[4], []]);
});

test('core: learned addresses age out after 300 s; a port that leaves is forgotten', () => {
  let now = 1_000_000;
  const core = new SwitchCore(() => now);
  const got: Uint8Array[][] = [[], [], []];
  const [a, b, c] = [MAC_A, MAC_B, MAC_C].map((m, i) => core.addPort(parseMac(m), (f) => got[i]!.push(f)));
  core.input(a!, frame(BCAST, MAC_A, 1));
  got.forEach((g) => g.length = 0);
  now += MAC_AGING_MS - 1;
  core.input(b!, frame(MAC_A, MAC_B, 2));
  assert.deepEqual(got.map(tags), [[2], [], []]);
  now += 2;
  core.input(b!, frame(MAC_A, MAC_B, 3));
  assert.deepEqual(got.map(tags), [[3], [], [3]], 'aged out: flooded');
  core.input(a!, frame(BCAST, MAC_A, 4));
  core.removePort(a!);
  got.forEach((g) => g.length = 0);
  core.input(c!, frame(MAC_A, MAC_C, 5));
  assert.deepEqual(got.map(tags), [[], [5], []], 'a removed port gets nothing; its address is unknown again');
});

test('core: anti-spoofing drops frames whose source is not the port\'s MAC, and does not learn them', () => {
  const core = new SwitchCore();
  const got: Uint8Array[][] = [[], [], []];
  const [a, b] = [MAC_A, MAC_B, MAC_C].map((m, i) => core.addPort(parseMac(m), (f) => got[i]!.push(f)));
  core.input(b!, frame(BCAST, MAC_B, 1));
  got.forEach((g) => g.length = 0);
  // A pretends to be B.
  core.input(a!, frame(BCAST, MAC_B, 2));
  assert.deepEqual(got.map(tags), [[], [], []]);
  assert.equal(core.stats.spoofed, 1);
  assert.equal(core.lookup(parseMac(MAC_B)), b, 'the table still has B on its own port');
  // A group source address is not valid either.
  core.input(a!, frame(BCAST, '01:00:00:00:00:0a', 3));
  assert.deepEqual(got.map(tags), [[], [], []]);
  // Too short.
  core.input(a!, frame(BCAST, MAC_A, 4).subarray(0, 13));
  assert.deepEqual(got.map(tags), [[], [], []]);
});

interface Node { port: SwitchPort; got: Uint8Array[] }
function join2(member: SwitchMember, mac: string): Node {
  const port = member.openPort(parseMac(mac));
  const got: Uint8Array[] = [];
  port.attach((f) => { got.push(Uint8Array.from(f)); return true; });
  return { port, got };
}

function hubOf(...ms: SwitchMember[]): SwitchMember {
  const hubs = ms.filter((m) => m.role === 'hub');
  assert.equal(hubs.length, 1, `exactly one hub (${ms.map((m) => m.role).join(', ')})`);
  return hubs[0]!;
}

test('two members over the Unix socket: the first hosts, the second joins; frames flow both ways, learned unicast is not flooded', async () => {
  const path = sockPath();
  const m1 = new SwitchMember(path);
  await m1.settled();
  assert.equal(m1.role, 'hub');
  const m2 = new SwitchMember(path);
  await m2.settled();
  assert.equal(m2.role, 'client');
  const a = join2(m1, MAC_A), b = join2(m2, MAC_B), c = join2(m2, MAC_C);
  await waitFor('three ports at the hub', () => m1.hubCore?.portCount === 3);
  b.port.send(frame(BCAST, MAC_B, 1));
  await waitFor('flood', () => a.got.length === 1 && c.got.length === 1);
  a.port.send(frame(MAC_B, MAC_A, 2));
  c.port.send(frame(MAC_B, MAC_C, 3));
  await waitFor('unicast to B', () => b.got.length === 2);
  assert.deepEqual(tags(b.got).sort(), [2, 3]);
  // Spoofed frames from a member are dropped at the hub.
  c.port.send(frame(BCAST, MAC_A, 4));
  b.port.send(frame(MAC_A, MAC_B, 5));
  await waitFor('B to A', () => a.got.length === 2);
  assert.deepEqual(tags(a.got), [1, 5]);
  assert.deepEqual(tags(c.got), [1]);
  assert.equal(m1.hubCore!.stats.spoofed, 1);
  await m2.close();
  await m1.close();
  assert.equal(existsSync(path), false, 'the hub removes its socket file');
});

test('when the hub leaves, the other members elect a new one and their guests keep talking', async () => {
  const path = sockPath();
  const m1 = new SwitchMember(path);
  await m1.settled();
  const m2 = new SwitchMember(path), m3 = new SwitchMember(path);
  await Promise.all([m2.settled(), m3.settled()]);
  const a = join2(m1, MAC_A), b = join2(m2, MAC_B), c = join2(m3, MAC_C);
  await waitFor('ports', () => m1.hubCore?.portCount === 3);
  a.port.send(frame(BCAST, MAC_A, 1));
  await waitFor('flood', () => b.got.length === 1 && c.got.length === 1);
  await m1.close();
  await waitFor('a new hub', () => (m2.role === 'hub' || m3.role === 'hub') && m2.role !== 'electing' && m3.role !== 'electing');
  const hub = hubOf(m2, m3);
  await waitFor('both ports at the new hub', () => hub.hubCore?.portCount === 2);
  tags(b.got); tags(c.got);
  b.port.send(frame(BCAST, MAC_B, 2));
  await waitFor('C hears B', () => c.got.length === 1);
  c.port.send(frame(MAC_B, MAC_C, 3));
  await waitFor('B hears C', () => b.got.length === 1);
  assert.deepEqual([tags(b.got), tags(c.got)], [[3], [2]]);
  // A newcomer joins the new hub.
  const m4 = new SwitchMember(path);
  await m4.settled();
  assert.equal(m4.role, 'client');
  await Promise.all([m2.close(), m3.close(), m4.close()]);
});

test('a hub process that is killed: the members in other processes elect a new hub over its stale socket file', async () => {
  const path = sockPath();
  const mod = new URL('../src/devices/backends/net-switch.js', import.meta.url).href;
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    import { SwitchMember } from ${JSON.stringify(mod)};
    const m = new SwitchMember(${JSON.stringify(path)});
    await m.settled();
    m.openPort(Uint8Array.of(0x52, 0x54, 0, 0, 0, 0x0a)).attach(() => true);
    process.stdout.write(m.role + '\\n');
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const role = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
    assert.equal(role, 'hub');
    const m2 = new SwitchMember(path), m3 = new SwitchMember(path);
    await Promise.all([m2.settled(), m3.settled()]);
    assert.deepEqual([m2.role, m3.role], ['client', 'client']);
    const b = join2(m2, MAC_B), c = join2(m3, MAC_C);
    // Through the other process's hub.
    for (let i = 0; i < 100 && c.got.length === 0; i++) {
      b.port.send(frame(BCAST, MAC_B, 1));
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(c.got.length > 0, 'C hears B through the hub process');
    child.kill('SIGKILL');
    await waitFor('a new hub', () => (m2.role === 'hub' || m3.role === 'hub') && m2.role !== 'electing' && m3.role !== 'electing');
    const hub = hubOf(m2, m3);
    await waitFor('both ports at the new hub', () => hub.hubCore?.portCount === 2);
    tags(c.got);
    b.port.send(frame(BCAST, MAC_B, 2));
    await waitFor('C hears B again', () => c.got.length === 1);
    assert.deepEqual(tags(c.got), [2]);
    await Promise.all([m2.close(), m3.close()]);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a stale socket file (its host was killed) is replaced by a new hub', async () => {
  const path = sockPath();
  // A process that binds the path and dies without cleaning up.
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(existsSync(path), 'the stale socket file is there');
  const m = new SwitchMember(path);
  await m.settled();
  assert.equal(m.role, 'hub');
  const m2 = new SwitchMember(path);
  await m2.settled();
  assert.equal(m2.role, 'client');
  await m2.close();
  await m.close();
});

/** A raw stream to a hub, as a broken or hostile member. */
function raw(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
}
const closed = (s: Socket): Promise<void> => new Promise((r) => { if (s.destroyed) r(); else s.once('close', () => r()); });

test('a member that breaks the framing loses only its own stream', async () => {
  const path = sockPath();
  const m = new SwitchMember(path);
  await m.settled();
  const a = join2(m, MAC_A);
  const cases: Buffer[] = [
    Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 5]), // a hello that is not 6 bytes
    Buffer.concat([encodeRecord(parseMac(MAC_B)), Buffer.from([0, 0, 0, 13])]), // a frame under 14 bytes
    Buffer.concat([encodeRecord(parseMac(MAC_B)), Buffer.from([0, 1, 0, 0])]), // a frame over 65535 bytes
    Buffer.concat([encodeRecord(parseMac(MAC_B)), Buffer.from([0xff, 0xff, 0xff, 0xff])]),
    encodeRecord(parseMac('01:00:00:00:00:01')), // a multicast MAC in the hello
  ];
  for (const bytes of cases) {
    const s = await raw(path);
    s.on('error', () => {});
    s.write(bytes);
    await closed(s);
  }
  // A well-behaved raw member works and hears A; the hub still serves.
  const s = await raw(path);
  const heard: Buffer[] = [];
  s.on('data', (d: Buffer) => heard.push(d));
  s.write(encodeRecord(parseMac(MAC_B)));
  await waitFor('the port', () => m.hubCore?.portCount === 2);
  a.port.send(frame(BCAST, MAC_A, 7));
  await waitFor('a frame', () => Buffer.concat(heard).length >= 64);
  const rec = Buffer.concat(heard);
  assert.equal(rec.readUInt32BE(0), 60);
  assert.equal(rec[4 + 14], 7);
  // Its frames reach A, split across writes as a stream may be.
  const out = encodeRecord(frame(MAC_A, MAC_B, 8));
  s.write(out.subarray(0, 3));
  await new Promise((r) => setTimeout(r, 10));
  s.write(out.subarray(3));
  await waitFor('A hears B', () => a.got.length === 1);
  assert.deepEqual(tags(a.got), [8]);
  s.destroy();
  await m.close();
});

test('frames for a member that does not read are dropped beyond the per-port bound; others still get theirs', async () => {
  const path = sockPath();
  const m = new SwitchMember(path);
  await m.settled();
  const a = join2(m, MAC_A), c = join2(m, MAC_C);
  const s = await raw(path);
  s.write(encodeRecord(parseMac(MAC_B)));
  s.pause();
  await waitFor('the port', () => m.hubCore?.portCount === 3);
  // 8 MiB of broadcast towards a reader that never reads.
  for (let i = 0; i < 5600; i++) a.port.send(frame(BCAST, MAC_A, i & 0xff, 1514));
  assert.equal(c.got.length, 5600, 'the local port got every frame');
  // Let the stream drain what it can into the kernel, then read all of it.
  const heard: Buffer[] = [];
  s.on('data', (d: Buffer) => heard.push(d));
  s.resume();
  await new Promise((r) => setTimeout(r, 300));
  const total = Buffer.concat(heard).length;
  assert.ok(total < 4 << 20, `at most the bound plus socket buffers reached the slow member (${total} bytes)`);
  assert.ok(total > 0);
  s.destroy();
  await m.close();
});

test('openSwitchPort shares one member per switch name in a process; the last port to close leaves the switch', async () => {
  const p1 = openSwitchPort('lan', parseMac(MAC_A), { dir });
  const p2 = openSwitchPort('lan', parseMac(MAC_B), { dir });
  assert.equal(p1.member, p2.member);
  await p1.member.settled();
  const got: Uint8Array[] = [];
  p2.attach((f) => { got.push(f); return true; });
  p1.attach(() => true);
  p1.send(frame(BCAST, MAC_A, 1));
  assert.deepEqual(tags(got), [1], 'in the hub process, delivery is immediate');
  const path = switchSocketPath('lan', dir);
  assert.ok(existsSync(path));
  await p1.close();
  assert.ok(existsSync(path));
  await p2.close();
  assert.equal(p1.member.role, 'closed');
  assert.equal(existsSync(path), false);
  const p3 = openSwitchPort('lan', parseMac(MAC_C), { dir });
  assert.notEqual(p3.member, p1.member, 'a new member after the old one left');
  await p3.close();
});
