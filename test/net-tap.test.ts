// The TAP back end against the host kernel: the relay opens a TAP interface,
// the test gives the host an address on it and asks for the host's MAC with
// ARP from the "guest" side; the host's ARP reply must come back. Needs root
// (CAP_NET_ADMIN) and /dev/net/tun: elsewhere the tests skip and say why.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { openTap } from '../src/devices/backends/net-tap.js';
import { MachineError } from '../src/machine/errors.js';

const IFNAME = `dtapt${process.pid % 10000}`;
const GUEST_MAC = [0x52, 0x54, 0x00, 0x00, 0x00, 0x77];
const HOST_IP = [10, 213, 77, 1], GUEST_IP = [10, 213, 77, 2];

/** Why this host cannot run TAP tests, or null if it can. */
function unavailable(): string | null {
  if (process.platform !== 'linux') return 'TAP devices are Linux-only';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is missing on this host';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'creating a TAP interface needs root (CAP_NET_ADMIN)';
  if (spawnSync('ip', ['-V']).error) return 'the ip command is missing';
  if (spawnSync('cc', ['--version']).error) return 'no C compiler (cc) to build the relay';
  return null;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

const linkExists = (name: string): boolean => spawnSync('ip', ['link', 'show', name]).status === 0;

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** An ARP request (RFC 826) from the guest: who has `target`? tell `sender`. */
function arpRequest(target: number[]): Uint8Array {
  return Uint8Array.from([
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...GUEST_MAC, 0x08, 0x06,
    0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01,
    ...GUEST_MAC, ...GUEST_IP,
    0, 0, 0, 0, 0, 0, ...target,
    ...new Array<number>(18).fill(0),
  ]);
}

test('TAP: frames go both ways between the back end and the host kernel (ARP request out, reply back)', async (t) => {
  const why = unavailable();
  if (why) { t.skip(why); return; }
  let tap;
  try {
    tap = openTap(IFNAME);
  } catch (e) {
    if (e instanceof MachineError) { t.skip(`the host refuses a TAP interface: ${e.message}`); return; }
    throw e;
  }
  const got: Uint8Array[] = [];
  tap.attach((f) => { got.push(Uint8Array.from(f)); return true; });
  try {
    await waitFor(`${IFNAME} to appear`, () => linkExists(IFNAME));
    ip('link', 'set', IFNAME, 'up');
    ip('addr', 'add', `${HOST_IP.join('.')}/24`, 'dev', IFNAME);
    // Retry a few times: the interface may take a moment to carry traffic.
    const isReply = (f: Uint8Array): boolean => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2
      && GUEST_MAC.every((b, i) => f[i] === b) && HOST_IP.every((b, i) => f[28 + i] === b);
    for (let i = 0; i < 20 && !got.some(isReply); i++) {
      tap.send(arpRequest(HOST_IP));
      await new Promise((r) => setTimeout(r, 100));
    }
    const reply = got.find(isReply);
    assert.ok(reply, `an ARP reply from the host (got ${got.length} frames)`);
    // The reply names the host's TAP MAC as sender and the guest as target.
    const hostMac = spawnSync('cat', [`/sys/class/net/${IFNAME}/address`], { encoding: 'utf8' }).stdout.trim();
    assert.equal(Array.from(reply.subarray(22, 28), (b) => b.toString(16).padStart(2, '0')).join(':'), hostMac);
    assert.deepEqual(Array.from(reply.subarray(32, 38)), GUEST_MAC);
    assert.deepEqual(Array.from(reply.subarray(38, 42)), GUEST_IP);
    // While the relay holds the interface, a second one is refused before any guest runs.
    assert.throws(() => openTap(IFNAME), (e: unknown) => e instanceof MachineError && /busy/i.test(e.message) && !e.message.includes('\n'));
  } finally {
    await tap.close();
  }
  // The relay created the interface; it goes away with the relay.
  await waitFor(`${IFNAME} to go away`, () => !linkExists(IFNAME));
});

test('TAP: bad interface names are a MachineError before anything runs', () => {
  assert.throws(() => openTap('no/slash'), MachineError);
  assert.throws(() => openTap('a-name-longer-than-15'), MachineError);
});
