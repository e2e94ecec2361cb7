// The SBI served by the hypervisor (src/machine/sbi.ts, SBI specification v2.0):
// serveSbi() on a real Hart whose a0–a7 hold the call, with a fake platform that
// records what the SBI asks of the machine.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clock } from '../src/cpu/clock.js';
import { Hart } from '../src/cpu/hart.js';
import { serveSbi, SBI_IMPL_ID, SBI_IMPL_VERSION, type SbiPlatform, type SbiResult } from '../src/machine/sbi.js';
import { MachineMemory } from '../src/memory/machine-memory.js';
import { Pmap } from '../src/memory/pmap.js';

const DRAM = 0x8000_0000;
const RAM_BYTES = 2 * 1024 * 1024;

// Extension IDs (SBI v2.0, chapters 4–12), spelled out here rather than imported.
const EID_BASE = 0x10, EID_TIME = 0x5449_4d45, EID_IPI = 0x73_5049, EID_RFENCE = 0x5246_4e43,
  EID_HSM = 0x48_534d, EID_SRST = 0x5352_5354, EID_DBCN = 0x4442_434e;
// Standard error codes (SBI v2.0, table 1).
const SUCCESS = 0n, ERR_NOT_SUPPORTED = -2n, ERR_INVALID_PARAM = -3n, ERR_INVALID_ADDRESS = -5n, ERR_ALREADY_AVAILABLE = -6n;
// HSM states (section 9).
const STARTED = 0, STOPPED = 1;

const CSR_STIMECMP = 0x14d, CSR_MIP = 0x344, CSR_MENVCFG = 0x30a;
const MIP_STIP = 1n << 5n;
const ALL_HARTS = (1n << 64n) - 1n; // hart_mask_base = -1

class FakePlatform implements SbiPlatform {
  readonly states: number[];
  readonly starts: [number, bigint, bigint][] = [];
  readonly stops: number[] = [];
  readonly ipis: number[] = [];
  readonly fences: [number, 'i' | 'vma'][] = [];
  readonly resets: [number, number][] = [];
  readonly console: number[] = [];
  input: number[] = [];

  constructor(private readonly pmap: Pmap, readonly hartCount: number) {
    this.states = Array.from({ length: hartCount }, (_, i) => (i === 0 ? STARTED : STOPPED));
  }
  hartState(id: number): number {
    return this.states[id] ?? STOPPED;
  }
  hartStart(id: number, addr: bigint, opaque: bigint): void {
    this.starts.push([id, addr, opaque]);
    this.states[id] = STARTED;
  }
  hartStop(id: number): void {
    this.stops.push(id);
    this.states[id] = STOPPED;
  }
  sendIpi(id: number): void {
    this.ipis.push(id);
  }
  remoteFence(id: number, kind: 'i' | 'vma'): void {
    this.fences.push([id, kind]);
  }
  systemReset(type: number, reason: number): void {
    this.resets.push([type, reason]);
  }
  consoleWrite(bytes: Uint8Array): void {
    this.console.push(...bytes);
  }
  consoleRead(max: number): Uint8Array {
    return Uint8Array.from(this.input.splice(0, max));
  }
  private inRam(gpa: number, length: number): boolean {
    return Number.isSafeInteger(gpa) && gpa >= DRAM && gpa + length <= DRAM + RAM_BYTES;
  }
  readGuest(gpa: number, length: number): Uint8Array | null {
    return this.inRam(gpa, length) ? this.pmap.read(gpa, length) : null;
  }
  writeGuest(gpa: number, data: Uint8Array): boolean {
    if (!this.inRam(gpa, data.length)) return false;
    this.pmap.write(gpa, data);
    return true;
  }
}

interface Rig {
  hart: Hart;
  p: FakePlatform;
  pmap: Pmap;
  clock: Clock;
}

function rig(hartCount = 2): Rig {
  const mem = MachineMemory.create(8 * 1024 * 1024);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: RAM_BYTES }]);
  const clock = Clock.create('instructions');
  const hart = new Hart({ mem, pmap, clock, hartId: 0 });
  return { hart, p: new FakePlatform(pmap, hartCount), pmap, clock };
}

interface Ret {
  result: SbiResult;
  /** a0 as a signed value */
  error: bigint;
  /** a1 */
  value: bigint;
}

const A0_SENTINEL = 0x0bad_0000_0000_a0a0n, A1_SENTINEL = 0x0bad_0000_0000_a1a1n;

/** Makes the call (a7 = eid, a6 = fid, a0.. = args) and serves it. a0/a1 start as sentinels. */
function call(r: Rig, eid: number | bigint, fid: number, ...args: (number | bigint)[]): Ret {
  const { hart } = r;
  hart.setX(17, BigInt(eid));
  hart.setX(16, BigInt(fid));
  for (let i = 0; i < 6; i++) hart.setX(10 + i, BigInt(args[i] ?? 0));
  if (args.length < 1) hart.setX(10, A0_SENTINEL);
  if (args.length < 2) hart.setX(11, A1_SENTINEL);
  const result = serveSbi(hart, r.p);
  return { result, error: BigInt.asIntN(64, hart.getX(10)), value: hart.getX(11) };
}

const DONE = { kind: 'done' };

// ------------------------------------------------------------------ BASE

test('BASE: spec version 2.0, implementation id and version, machine ids', () => {
  const r = rig();
  assert.deepEqual(call(r, EID_BASE, 0), { result: DONE, error: SUCCESS, value: 0x0200_0000n });
  assert.deepEqual(call(r, EID_BASE, 1), { result: DONE, error: SUCCESS, value: BigInt(SBI_IMPL_ID) });
  assert.equal(SBI_IMPL_ID > 10, true); // not one of the registered implementation ids 0..10 (BBL, OpenSBI, ...)
  assert.deepEqual(call(r, EID_BASE, 2), { result: DONE, error: SUCCESS, value: BigInt(SBI_IMPL_VERSION) });
  for (const fid of [4, 5, 6]) assert.deepEqual(call(r, EID_BASE, fid), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(call(r, EID_BASE, 7), { result: DONE, error: ERR_NOT_SUPPORTED, value: 0n });
});

test('BASE: probe_extension is 1 for every implemented extension and 0 for others', () => {
  const r = rig();
  for (const eid of [EID_BASE, EID_TIME, EID_IPI, EID_RFENCE, EID_HSM, EID_SRST, EID_DBCN]) {
    assert.deepEqual(call(r, EID_BASE, 3, eid), { result: DONE, error: SUCCESS, value: 1n }, `probe 0x${eid.toString(16)}`);
  }
  // legacy putchar, PMU, SUSP, CPPC, a made-up one
  for (const eid of [0x01, 0x50_4d55, 0x5355_5350, 0x4350_5043, 0x1234_5678]) {
    assert.deepEqual(call(r, EID_BASE, 3, eid), { result: DONE, error: SUCCESS, value: 0n }, `probe 0x${eid.toString(16)}`);
  }
});

// ------------------------------------------------------------------ TIME

test('TIME: set_timer writes stimecmp and clears a pending supervisor timer interrupt', () => {
  const r = rig();
  assert.deepEqual(call(r, EID_TIME, 0, 0x1_2345_6789n), { result: DONE, error: SUCCESS, value: 0n });
  assert.equal(r.hart.readCsr(CSR_STIMECMP), 0x1_2345_6789n);

  r.hart.writeCsr(CSR_MENVCFG, 1n << 63n); // Sstc on, as prepared for an S-mode kernel
  r.hart.writeCsr(CSR_STIMECMP, 0n);
  assert.equal(r.hart.readCsr(CSR_MIP) & MIP_STIP, MIP_STIP);
  call(r, EID_TIME, 0, 1000);
  assert.equal(r.hart.readCsr(CSR_STIMECMP), 1000n);
  assert.equal(r.hart.readCsr(CSR_MIP) & MIP_STIP, 0n);
  r.clock.retire(1000 * 10);
  assert.equal(r.hart.readCsr(CSR_MIP) & MIP_STIP, MIP_STIP);
  call(r, EID_TIME, 0, ALL_HARTS); // "no timer": (uint64_t)-1
  assert.equal(r.hart.readCsr(CSR_STIMECMP), ALL_HARTS);
  assert.equal(r.hart.readCsr(CSR_MIP) & MIP_STIP, 0n);
  assert.equal(call(r, EID_TIME, 1).error, ERR_NOT_SUPPORTED);
});

// ------------------------------------------------------------------ IPI

test('IPI: send_ipi to the harts of (hart_mask, hart_mask_base); base -1 means every hart', () => {
  const r = rig(4);
  assert.deepEqual(call(r, EID_IPI, 0, 0b10, 0), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(r.p.ipis, [1]);
  r.p.ipis.length = 0;
  call(r, EID_IPI, 0, 0b101, 1);
  assert.deepEqual(r.p.ipis, [1, 3]);
  r.p.ipis.length = 0;
  assert.equal(call(r, EID_IPI, 0, 0, ALL_HARTS).error, SUCCESS); // mask ignored
  assert.deepEqual(r.p.ipis, [0, 1, 2, 3]);
  r.p.ipis.length = 0;
  assert.equal(call(r, EID_IPI, 0, 0, 0).error, SUCCESS);
  assert.deepEqual(r.p.ipis, []);
  assert.equal(call(r, EID_IPI, 1).error, ERR_NOT_SUPPORTED);
});

test('IPI: a hart beyond hartCount is INVALID_PARAM and no IPI is sent at all', () => {
  const r = rig(2);
  assert.deepEqual(call(r, EID_IPI, 0, 0b111, 0), { result: DONE, error: ERR_INVALID_PARAM, value: 0n });
  assert.equal(call(r, EID_IPI, 0, 0b11, 1).error, ERR_INVALID_PARAM);
  assert.equal(call(r, EID_IPI, 0, 1n << 63n, 0).error, ERR_INVALID_PARAM);
  assert.equal(call(r, EID_IPI, 0, 1, 2).error, ERR_INVALID_PARAM);
  assert.deepEqual(r.p.ipis, []);
});

// ------------------------------------------------------------------ RFENCE

test('RFENCE: remote fence.i and sfence.vma reach the other harts; the caller fences itself', () => {
  const r = rig(3);
  assert.deepEqual(call(r, EID_RFENCE, 0, 0b111, 0), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(r.p.fences, [[1, 'i'], [2, 'i']]);
  r.p.fences.length = 0;
  assert.equal(call(r, EID_RFENCE, 1, 0, ALL_HARTS, 0, 0x1000).error, SUCCESS);
  assert.deepEqual(r.p.fences, [[1, 'vma'], [2, 'vma']]);
  r.p.fences.length = 0;
  assert.equal(call(r, EID_RFENCE, 2, 0b10, 1, 0x8000_0000, 0x1000, 5).error, SUCCESS); // hart 2, with an ASID
  assert.deepEqual(r.p.fences, [[2, 'vma']]);
  r.p.fences.length = 0;
  assert.equal(call(r, EID_RFENCE, 0, 0b1, 0).error, SUCCESS); // only the caller
  assert.deepEqual(r.p.fences, []);
  assert.equal(call(r, EID_RFENCE, 1, 0b1010, 0).error, ERR_INVALID_PARAM);
  assert.deepEqual(r.p.fences, []);
  for (const fid of [3, 4, 5, 6]) assert.equal(call(r, EID_RFENCE, fid, 0b10, 0).error, ERR_NOT_SUPPORTED); // hypervisor fences
  assert.deepEqual(r.p.fences, []);
});

// ------------------------------------------------------------------ HSM

test('HSM: hart_start starts a stopped hart at a RAM address with its opaque value', () => {
  const r = rig(2);
  assert.deepEqual(call(r, EID_HSM, 2, 1), { result: DONE, error: SUCCESS, value: BigInt(STOPPED) });
  assert.deepEqual(call(r, EID_HSM, 0, 1, DRAM + 0x1000, 0xabc), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(r.p.starts, [[1, BigInt(DRAM + 0x1000), 0xabcn]]);
  assert.deepEqual(call(r, EID_HSM, 2, 1), { result: DONE, error: SUCCESS, value: BigInt(STARTED) });
  assert.deepEqual(call(r, EID_HSM, 2, 0), { result: DONE, error: SUCCESS, value: BigInt(STARTED) });
});

test('HSM: hart_start errors: already started, hart id out of range, start address not RAM', () => {
  const r = rig(2);
  assert.equal(call(r, EID_HSM, 0, 0, DRAM, 0).error, ERR_ALREADY_AVAILABLE);
  assert.equal(call(r, EID_HSM, 0, 2, DRAM, 0).error, ERR_INVALID_PARAM);
  assert.equal(call(r, EID_HSM, 0, ALL_HARTS, DRAM, 0).error, ERR_INVALID_PARAM);
  assert.equal(call(r, EID_HSM, 0, 1n << 32n, DRAM, 0).error, ERR_INVALID_PARAM); // not hart 0
  for (const addr of [0, 0x1000, 0x1000_0000, DRAM - 4, DRAM + RAM_BYTES, 0x1_8000_0000]) {
    assert.equal(call(r, EID_HSM, 0, 1, addr, 0).error, ERR_INVALID_ADDRESS, `start at 0x${addr.toString(16)}`);
  }
  assert.deepEqual(r.p.starts, []);
  assert.deepEqual(r.p.states, [STARTED, STOPPED]);
  assert.equal(call(r, EID_HSM, 2, 2).error, ERR_INVALID_PARAM);
  assert.equal(call(r, EID_HSM, 3, 0).error, ERR_NOT_SUPPORTED); // hart_suspend: no suspend states
});

test('HSM: hart_stop stops the calling hart and writes neither a0 nor a1', () => {
  const r = rig(2);
  const ret = call(r, EID_HSM, 1);
  assert.deepEqual(ret.result, { kind: 'stopped' });
  assert.equal(r.hart.getX(10), A0_SENTINEL);
  assert.equal(r.hart.getX(11), A1_SENTINEL);
  assert.deepEqual(r.p.stops, [0]);
});

// ------------------------------------------------------------------ SRST

test('SRST: shutdown, cold and warm reboot reach the platform and do not return', () => {
  const r = rig();
  for (const [type, reason] of [[0, 0], [1, 1], [2, 0], [0, 1]] as const) {
    const ret = call(r, EID_SRST, 0, type, reason);
    assert.deepEqual(ret.result, { kind: 'reset' });
    assert.equal(r.hart.getX(10), BigInt(type)); // a0 untouched
    assert.equal(r.hart.getX(11), BigInt(reason));
  }
  assert.deepEqual(r.p.resets, [[0, 0], [1, 1], [2, 0], [0, 1]]);
});

test('SRST: reserved or unimplemented reset types and reasons are INVALID_PARAM', () => {
  const r = rig();
  for (const [type, reason] of [[3, 0], [0xefff_ffff, 0], [0xf000_0000, 0], [0xffff_ffff, 0], [0, 2], [1, 0xdfff_ffff]] as const) {
    assert.deepEqual(call(r, EID_SRST, 0, type, reason), { result: DONE, error: ERR_INVALID_PARAM, value: 0n }, `type 0x${type.toString(16)} reason 0x${reason.toString(16)}`);
  }
  assert.deepEqual(r.p.resets, []);
  assert.equal(call(r, EID_SRST, 1, 0, 0).error, ERR_NOT_SUPPORTED);
  assert.deepEqual(r.p.resets, []);
});

// ------------------------------------------------------------------ DBCN

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

test('DBCN: console_write writes guest memory to the console and returns the byte count', () => {
  const r = rig();
  r.pmap.write(DRAM + 0x100, text('hello, world'));
  assert.deepEqual(call(r, EID_DBCN, 0, 5, DRAM + 0x100, 0), { result: DONE, error: SUCCESS, value: 5n });
  assert.deepEqual(r.p.console, [...text('hello')]);
  assert.deepEqual(call(r, EID_DBCN, 0, 0, DRAM + 0x100, 0), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(r.p.console, [...text('hello')]);
});

test('DBCN: console_write of memory that is not RAM is INVALID_PARAM and writes nothing', () => {
  const r = rig();
  assert.deepEqual(call(r, EID_DBCN, 0, 4, 0x1000, 0), { result: DONE, error: ERR_INVALID_PARAM, value: 0n });
  assert.equal(call(r, EID_DBCN, 0, 8, DRAM + RAM_BYTES - 4, 0).error, ERR_INVALID_PARAM);
  assert.equal(call(r, EID_DBCN, 0, 1, ALL_HARTS, 0).error, ERR_INVALID_PARAM);
  assert.deepEqual(r.p.console, []);
});

test('DBCN: base_addr_hi holds the upper XLEN bits of the address: nonzero is past RAM', () => {
  const r = rig();
  r.pmap.write(DRAM + 0x100, text('secret'));
  assert.deepEqual(call(r, EID_DBCN, 0, 6, DRAM + 0x100, 1), { result: DONE, error: ERR_INVALID_PARAM, value: 0n });
  assert.deepEqual(r.p.console, []);
});

test('DBCN: console_write_byte writes the low byte of a0', () => {
  const r = rig();
  assert.deepEqual(call(r, EID_DBCN, 2, 0x141), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(call(r, EID_DBCN, 2, 0x0a), { result: DONE, error: SUCCESS, value: 0n });
  assert.deepEqual(r.p.console, [0x41, 0x0a]);
});

test('DBCN: console_read stores waiting input in guest memory and returns the count', () => {
  const r = rig();
  r.pmap.write(DRAM + 0x200, text('........'));
  r.p.input = [...text('xyz')];
  assert.deepEqual(call(r, EID_DBCN, 1, 8, DRAM + 0x200, 0), { result: DONE, error: SUCCESS, value: 3n });
  assert.deepEqual(r.pmap.read(DRAM + 0x200, 8), text('xyz.....'));
  assert.deepEqual(call(r, EID_DBCN, 1, 8, DRAM + 0x200, 0), { result: DONE, error: SUCCESS, value: 0n });
  r.p.input = [...text('abcdef')];
  assert.deepEqual(call(r, EID_DBCN, 1, 2, DRAM + 0x300, 0), { result: DONE, error: SUCCESS, value: 2n });
  assert.deepEqual(r.pmap.read(DRAM + 0x300, 3), Uint8Array.of(0x61, 0x62, 0));
  assert.deepEqual(r.p.input, [...text('cdef')]);
  assert.equal(call(r, EID_DBCN, 1, 4, 0x1000, 0).error, ERR_INVALID_PARAM);
  assert.deepEqual(r.p.input, [...text('cdef')]); // nothing consumed
  assert.equal(call(r, EID_DBCN, 3).error, ERR_NOT_SUPPORTED);
});

// ------------------------------------------------------------------ unknown

test('an unknown extension is SBI_ERR_NOT_SUPPORTED (-2) in a0, 0 in a1', () => {
  const r = rig();
  for (const eid of [0x01, 0x08, 0x1234_5678, 0x0a00_0000, 0x50_4d55]) {
    const ret = call(r, eid, 0);
    assert.deepEqual(ret, { result: DONE, error: ERR_NOT_SUPPORTED, value: 0n });
    assert.equal(r.hart.getX(10), (1n << 64n) - 2n);
  }
});
