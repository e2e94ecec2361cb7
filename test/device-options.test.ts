import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultMac, parseDevice, parseDrive, parseHostForward, parseNet, UsageError } from '../src/cli/device-options.js';
import { describeVirt, MachineError, VIRT_MAP } from '../src/machine/virt.js';
import type { VirtioDeviceSpec } from '../src/machine/virtio-spec.js';

const rd = (): string => '/run/d';

test('--drive: file, readonly, overlay, serial; QEMU keys that mean the same are accepted', () => {
  assert.deepEqual(parseDrive('file=/a.img'), { kind: 'block', path: '/a.img', readonly: false, overlay: null, serial: '' });
  assert.deepEqual(parseDrive('file=b.img,readonly=on,overlay=o.dov,serial=disk1,format=raw,if=virtio'),
    { kind: 'block', path: 'b.img', readonly: true, overlay: 'o.dov', serial: 'disk1' });
  for (const bad of ['', 'b.img', 'readonly=on', 'file=', 'file=a,readonly=maybe', 'file=a,format=qcow2', 'file=a,file=b',
    'file=a,bogus=1', 'file=a,serial=123456789012345678901', 'file=a,overlay=']) {
    assert.throws(() => parseDrive(bad), UsageError, bad);
  }
});

test('--net: user with hostfwd, switch, tap; MACs stable per VM name and distinct per interface', () => {
  const u = parseNet('user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-10.0.2.15:53', 'vm1', 0);
  assert.equal(u.kind, 'net');
  if (u.kind !== 'net') return;
  assert.deepEqual(u.backend, { kind: 'user', hostfwd: [
    { protocol: 'tcp', hostAddr: '', hostPort: 2222, guestAddr: '', guestPort: 22 },
    { protocol: 'udp', hostAddr: '127.0.0.1', hostPort: 5353, guestAddr: '10.0.2.15', guestPort: 53 },
  ] });
  assert.equal(u.mac, defaultMac('vm1', 0));
  assert.match(u.mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.equal(defaultMac('vm1', 0), defaultMac('vm1', 0));
  assert.notEqual(defaultMac('vm1', 0), defaultMac('vm1', 1));
  assert.notEqual(defaultMac('vm1', 0), defaultMac('vm2', 0));
  assert.deepEqual(parseNet('switch=lan0,mac=52:54:00:AB:cd:01', 'x', 0), { kind: 'net', mac: '52:54:00:ab:cd:01', backend: { kind: 'switch', name: 'lan0' } });
  assert.deepEqual(parseNet('tap=tap0', 'x', 1).kind, 'net');
  for (const bad of ['', 'slirp', 'switch=a,tap=b', 'switch=', 'switch=a/b', 'tap=this-name-is-too-long', 'user,mac=01:00:00:00:00:00',
    'user,mac=zz', 'user,hostfwd=tcp::1-:0', 'user,hostfwd=tcp::70000-:22', 'user,hostfwd=sctp::1-:2', 'user,foo=1']) {
    assert.throws(() => parseNet(bad, 'x', 0), UsageError, bad);
  }
  assert.equal(parseHostForward('::8080-:80').protocol, 'tcp');
});

test('--device: rng, console ports, balloon, vsock; unknown devices and keys refused', () => {
  assert.deepEqual(parseDevice('rng', 'vm', rd), { kind: 'rng' });
  assert.deepEqual(parseDevice('console,port=agent,port=log:/tmp/l.sock', 'vm', rd),
    { kind: 'console', ports: [{ name: 'agent', socket: '/run/d/vm.agent.sock' }, { name: 'log', socket: '/tmp/l.sock' }] });
  assert.deepEqual(parseDevice('balloon,deflate-on-oom=off', 'vm', rd), { kind: 'balloon', deflateOnOom: false, freePageReporting: true, statsIntervalS: 1 });
  assert.deepEqual(parseDevice('vsock,cid=7', 'vm', rd), { kind: 'vsock', cid: 7, socket: '/run/d/vm.vsock' });
  for (const bad of ['', 'gpu', 'cid=3', 'vsock,cid=2', 'vsock,cid=x', 'console,port=a,port=a', 'console,port=a b', 'rng,x=1', 'balloon,stats=-1']) {
    assert.throws(() => parseDevice(bad, 'vm', rd), UsageError, bad);
  }
});

test('describeVirt: devices fill slots from 0 in order, the power button keeps the last slot, too many are refused', () => {
  const specs: VirtioDeviceSpec[] = [parseDrive('file=a'), parseNet('user', 'v', 0), { kind: 'rng' }];
  const slots = describeVirt(64 << 20, 1, specs).devices.filter((d) => d.kind === 'virtio-mmio');
  assert.equal(slots.length, VIRT_MAP.VIRTIO_COUNT);
  assert.deepEqual(slots.map((s) => (s.kind === 'virtio-mmio' ? s.device?.kind ?? null : 'x')),
    ['block', 'net', 'rng', null, null, null, null, 'power-button']);
  assert.equal(slots[0]!.base, VIRT_MAP.VIRTIO);
  assert.throws(() => describeVirt(64 << 20, 1, Array.from({ length: 8 }, () => ({ kind: 'rng' as const }))), MachineError);
});
