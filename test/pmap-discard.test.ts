// Pmap.discard: a RAM page's machine frame goes back to the pool (balloon,
// free page reporting); the next touch maps a fresh zero frame, and a hart
// that cached the old translation in its soft TLB stops using it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clock } from '../src/cpu/clock.js';
import { Hart } from '../src/cpu/hart.js';
import { PRIV_M } from '../src/cpu/csr-numbers.js';
import { MachineMemory, PAGE_SIZE } from '../src/memory/machine-memory.js';
import { PM_WATCH, Pmap } from '../src/memory/pmap.js';

const DRAM = 0x8000_0000;
const ROM = 0x1000;

function setup(): { mem: MachineMemory; pmap: Pmap } {
  const mem = MachineMemory.create(2 << 20);
  const pmap = Pmap.create(mem, [
    { name: 'rom', kind: 'rom', base: ROM, size: PAGE_SIZE },
    { name: 'dram', kind: 'ram', base: DRAM, size: 1 << 20 },
  ]);
  return { mem, pmap };
}

test('discard frees the frame of a touched RAM page; counts and generation follow', () => {
  const { mem, pmap } = setup();
  pmap.write(DRAM + 3 * PAGE_SIZE + 100, Uint8Array.of(1, 2, 3));
  pmap.write(DRAM + 4 * PAGE_SIZE, Uint8Array.of(9));
  const inUse = mem.framesInUse(), mapped = pmap.framesMapped(), touched = pmap.pagesTouched(), gen = pmap.generation();
  assert.equal(mapped, 2);
  assert.equal(pmap.discard(DRAM + 3 * PAGE_SIZE + 5), true, 'any address in the page');
  assert.equal(mem.framesInUse(), inUse - 1);
  assert.equal(pmap.framesMapped(), mapped - 1);
  assert.equal(pmap.pagesTouched(), touched, 'touched counts pages ever touched');
  assert.ok(pmap.generation() > gen, 'harts must flush');
  assert.equal(pmap.entries[pmap.indexOf(DRAM + 3 * PAGE_SIZE)], 0);
  // Untouched, already discarded: nothing to free, no generation bump.
  const gen2 = pmap.generation();
  assert.equal(pmap.discard(DRAM + 3 * PAGE_SIZE), false);
  assert.equal(pmap.discard(DRAM + 9 * PAGE_SIZE), false);
  assert.equal(pmap.generation(), gen2);
  // The other page is intact; the discarded one reads back as zero and is backed again.
  assert.deepEqual([...pmap.read(DRAM + 4 * PAGE_SIZE, 1)], [9]);
  assert.deepEqual([...pmap.read(DRAM + 3 * PAGE_SIZE + 100, 3)], [0, 0, 0]);
  assert.equal(pmap.framesMapped(), mapped);
  assert.equal(mem.framesInUse(), inUse);
});

test('discard refuses ROM, holes and watched pages', () => {
  const { mem, pmap } = setup();
  pmap.write(ROM, Uint8Array.of(0x13));
  pmap.write(DRAM, Uint8Array.of(1));
  pmap.setFlags(DRAM, PM_WATCH, 0);
  const inUse = mem.framesInUse();
  for (const gpa of [ROM, ROM + 8, DRAM, 0, DRAM - PAGE_SIZE, DRAM + (1 << 20), -PAGE_SIZE, 2 ** 52]) {
    assert.equal(pmap.discard(gpa), false, `0x${gpa.toString(16)}`);
  }
  assert.equal(mem.framesInUse(), inUse);
  assert.deepEqual([...pmap.read(ROM, 1)], [0x13]);
  assert.deepEqual([...pmap.read(DRAM, 1)], [1]);
});

test('a hart that cached a page in its soft TLB sees the fresh zero page after discard', () => {
  const { mem, pmap } = setup();
  const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0, ecallExitMask: 1 << PRIV_M });
  // ld a0, 0(t0); ecall
  pmap.write(DRAM, new Uint8Array(new Uint32Array([0x0002b503, 0x00000073]).buffer));
  const data = DRAM + 8 * PAGE_SIZE;
  pmap.write(data, new Uint8Array(new BigUint64Array([0x1122334455667788n]).buffer));
  hart.reset(BigInt(DRAM));
  // Not reset() between runs: it flushes the TLB itself.
  const load = (): bigint => {
    hart.pc = BigInt(DRAM);
    hart.setX(5, BigInt(data));
    hart.setX(10, 0xdeadn);
    assert.equal(hart.run(100).kind, 'ecall');
    return hart.getX(10);
  };
  assert.equal(load(), 0x1122334455667788n);
  assert.equal(load(), 0x1122334455667788n, 'the translation is cached now');
  const frames = mem.framesInUse();
  assert.equal(pmap.discard(data), true);
  // The freed frame still holds the old bytes (frames are zeroed when handed out
  // again): a stale TLB entry would load them.
  assert.equal(load(), 0n);
  assert.equal(mem.framesInUse(), frames, 'touching the page again backs it with a new frame');
});

test('a discarded frame waits until every hart inside run() has passed the new generation', () => {
  const { mem, pmap } = setup();
  pmap.write(DRAM, Uint8Array.of(1));
  pmap.write(DRAM + PAGE_SIZE, Uint8Array.of(2));
  const inUse = mem.framesInUse();
  // Hart 0 entered run() before the discard (it may hold a translation); hart 1 is outside.
  pmap.enterRun(0);
  assert.equal(pmap.discard(DRAM), true);
  assert.equal(pmap.framesDeferred(), 1, 'deferred while hart 0 may reach it');
  assert.equal(mem.framesInUse(), inUse, 'not back in the pool yet');
  assert.equal(pmap.framesMapped(), 1, 'but no longer the VM\'s');
  assert.equal(pmap.reclaim(), 0);
  // A hart that enters after the discard flushes first: it does not hold the frame back.
  pmap.enterRun(1);
  assert.equal(pmap.reclaim(), 0);
  pmap.leaveRun(0);
  assert.equal(pmap.framesDeferred(), 0, 'released when hart 0 leaves run()');
  assert.equal(mem.framesInUse(), inUse - 1);
  // With every hart outside run() a discard frees at once.
  pmap.leaveRun(1);
  assert.equal(pmap.discard(DRAM + PAGE_SIZE), true);
  assert.equal(pmap.framesDeferred(), 0);
  assert.equal(mem.framesInUse(), inUse - 2);
});

test('releaseAll gives every frame of a VM back, deferred ones included', () => {
  const { mem, pmap } = setup();
  const base = mem.framesInUse();
  for (let i = 0; i < 10; i++) pmap.write(DRAM + i * PAGE_SIZE, Uint8Array.of(i));
  pmap.write(ROM, Uint8Array.of(7));
  pmap.enterRun(0);
  pmap.discard(DRAM);
  assert.equal(pmap.framesDeferred(), 1);
  assert.equal(pmap.releaseAll(), 11);
  assert.equal(mem.framesInUse(), base);
  assert.equal(pmap.framesMapped(), 0);
});
