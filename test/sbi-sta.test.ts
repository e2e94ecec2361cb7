// SBI Steal-time Accounting (SBI v2.0, chapter 16; EID 0x535441 "STA"):
// sbi_steal_time_set_shmem and the 64-byte area the hypervisor publishes in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clock } from '../src/cpu/clock.js';
import { Hart } from '../src/cpu/hart.js';
import { serveSbi, type SbiPlatform } from '../src/machine/sbi.js';
import { StealTime } from '../src/machine/steal-time.js';
import { MachineMemory } from '../src/memory/machine-memory.js';
import { Pmap } from '../src/memory/pmap.js';

const DRAM = 0x8000_0000;
const EID_BASE = 0x10, EID_STA = 0x53_5441;
const SUCCESS = 0n, ERR_NOT_SUPPORTED = -2n, ERR_INVALID_PARAM = -3n, ERR_INVALID_ADDRESS = -5n;
const ALL_ONES = (1n << 64n) - 1n;

function rig(withSta: boolean): { hart: Hart; pmap: Pmap; steal: StealTime; p: SbiPlatform } {
  const mem = MachineMemory.create(8 << 20);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: 2 << 20 }]);
  const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0 });
  const steal = new StealTime(pmap, 1);
  const p: SbiPlatform = {
    hartCount: 1, hartState: () => 0, hartStart: () => undefined, hartStop: () => undefined, sendIpi: () => undefined,
    remoteFence: () => undefined, systemReset: () => undefined, consoleWrite: () => undefined, consoleRead: () => new Uint8Array(0),
    readGuest: (gpa, n) => { try { return pmap.read(gpa, n); } catch { return null; } },
    writeGuest: (gpa, d) => { try { pmap.write(gpa, d); return true; } catch { return false; } },
    ...(withSta ? { stealTimeSetShmem: (id: number, lo: bigint, hi: bigint, flags: bigint) => steal.setShmem(id, lo, hi, flags) } : {}),
  };
  return { hart, pmap, steal, p };
}

function call(hart: Hart, p: SbiPlatform, eid: number, fid: number, ...args: bigint[]): [bigint, bigint] {
  hart.setX(17, BigInt(eid));
  hart.setX(16, BigInt(fid));
  for (let i = 0; i < 6; i++) hart.setX(10 + i, args[i] ?? 0n);
  serveSbi(hart, p);
  return [BigInt.asIntN(64, hart.getX(10)), hart.getX(11)];
}

function area(pmap: Pmap, gpa: number): { seq: number; flags: number; steal: bigint; preempted: number } {
  const b = pmap.read(gpa, 64);
  const dv = new DataView(b.buffer);
  return { seq: dv.getUint32(0, true), flags: dv.getUint32(4, true), steal: dv.getBigUint64(8, true), preempted: b[16]! };
}

test('STA is probed only where the platform offers it', () => {
  const a = rig(true), b = rig(false);
  assert.deepEqual(call(a.hart, a.p, EID_BASE, 3, BigInt(EID_STA)), [SUCCESS, 1n]);
  assert.deepEqual(call(b.hart, b.p, EID_BASE, 3, BigInt(EID_STA)), [SUCCESS, 0n]);
  assert.equal(call(b.hart, b.p, EID_STA, 0, BigInt(DRAM), 0n, 0n)[0], ERR_NOT_SUPPORTED);
  assert.equal(call(a.hart, a.p, EID_STA, 1)[0], ERR_NOT_SUPPORTED, 'only function 0 exists');
});

test('set_shmem checks alignment, flags and the address, zeroes the area, and steal time appears with an even sequence', () => {
  const { hart, p, pmap, steal } = rig(true);
  const gpa = DRAM + 0x1000;
  pmap.write(gpa, new Uint8Array(64).fill(0xee));
  assert.equal(call(hart, p, EID_STA, 0, BigInt(gpa + 8), 0n, 0n)[0], ERR_INVALID_PARAM, 'not 64-byte aligned');
  assert.equal(call(hart, p, EID_STA, 0, BigInt(gpa), 0n, 1n)[0], ERR_INVALID_PARAM, 'flags must be 0');
  assert.equal(call(hart, p, EID_STA, 0, BigInt(gpa), 1n, 0n)[0], ERR_INVALID_ADDRESS, 'high bits above XLEN');
  assert.equal(call(hart, p, EID_STA, 0, 0x1000n, 0n, 0n)[0], ERR_INVALID_ADDRESS, 'not RAM');
  assert.equal(call(hart, p, EID_STA, 0, BigInt(DRAM + (2 << 20) - 32), 0n, 0n)[0], ERR_INVALID_PARAM, 'misaligned and past the end');
  assert.deepEqual(area(pmap, gpa), { seq: 0xeeeeeeee, flags: 0xeeeeeeee, steal: 0xeeeeeeeeeeeeeeeen, preempted: 0xee }, 'refused calls write nothing');
  assert.equal(call(hart, p, EID_STA, 0, BigInt(gpa), 0n, 0n)[0], SUCCESS);
  assert.deepEqual(area(pmap, gpa), { seq: 0, flags: 0, steal: 0n, preempted: 0 });
  steal.add(0, 1_500_000);
  steal.add(0, 2_000_000);
  const a = area(pmap, gpa);
  assert.equal(a.steal, 3_500_000n);
  assert.equal(a.seq % 2, 0, 'the sequence is even between updates');
  assert.ok(a.seq >= 4, 'each update bumps it twice');
  // Disabled with all ones: no more updates.
  assert.equal(call(hart, p, EID_STA, 0, ALL_ONES, ALL_ONES, 0n)[0], SUCCESS);
  steal.add(0, 1_000_000);
  assert.equal(area(pmap, gpa).steal, 3_500_000n);
  assert.equal(steal.total(0), 4_500_000);
});
