import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostConsole, type ConsoleTarget } from '../src/cli/console.js';

function setup(tty: boolean): { con: HostConsole; sent: number[]; events: string[]; notes: string[] } {
  const sent: number[] = [];
  const events: string[] = [];
  const notes: string[] = [];
  const target: ConsoleTarget = {
    input: (b) => sent.push(...b),
    powerOff: () => events.push('poweroff'),
    shutdown: () => events.push('shutdown'),
  };
  const stdin = { isTTY: tty } as unknown as NodeJS.ReadStream;
  return { con: new HostConsole(target, stdin, (t) => notes.push(t)), sent, events, notes };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

test('on a terminal, C-a x powers off, C-a s asks for shutdown, C-a h prints help, C-a C-a sends C-a', () => {
  const { con, sent, events, notes } = setup(true);
  con.feed(bytes('ls\r'));
  con.feed(Uint8Array.of(1, 0x73));
  con.feed(bytes('a\x01'));
  con.feed(bytes('\x01b')); // C-a C-a then b
  con.feed(Uint8Array.of(1, 0x68));
  con.feed(Uint8Array.of(1, 0x78));
  assert.deepEqual(events, ['shutdown', 'poweroff']);
  assert.deepEqual(sent, [...bytes('ls\r'), 0x61, 1, 0x62]);
  assert.ok(notes.some((n) => n.includes('C-a x')), 'help lists the keys');
});

test('an escape split across reads still works, and unknown escapes are dropped', () => {
  const { con, sent, events } = setup(true);
  con.feed(bytes('x\x01'));
  con.feed(bytes('x'));
  con.feed(bytes('\x01zy'));
  assert.deepEqual(events, ['poweroff']);
  assert.deepEqual(sent, [...bytes('x'), ...bytes('y')]);
});

test('without a terminal, every byte passes straight through', () => {
  const { con, sent, events } = setup(false);
  con.feed(Uint8Array.of(1, 0x78, 0x0a));
  assert.deepEqual(sent, [1, 0x78, 0x0a]);
  assert.deepEqual(events, []);
});
