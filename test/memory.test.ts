// Machine memory (the frame pool shared by every thread) and the per-VM
// physical map (regions, demand allocation, limits, flags, copying in and out).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { MachineMemory, MAX_POOL_BYTES, PAGE_SIZE } from '../src/memory/machine-memory.js';
import { PM_FRAME_SHIFT, PM_PRESENT, PM_WATCH, PM_WRITE, Pmap } from '../src/memory/pmap.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const DRAM = 0x8000_0000;

// ------------------------------------------------------------------ MachineMemory

test('MachineMemory.create rounds the size up to 64 KiB', () => {
  for (const [bytes, frames] of [[1, 16], [PAGE_SIZE, 16], [64 * KiB, 16], [64 * KiB + 1, 32], [1 * MiB, 256], [1 * MiB - 1, 256]] as const) {
    const m = MachineMemory.create(bytes);
    assert.equal(m.frames, frames, `${bytes} bytes`);
    assert.equal(m.buffer.byteLength, frames * PAGE_SIZE, `${bytes} bytes`);
    assert.equal(m.u8.length, frames * PAGE_SIZE);
    assert.equal(m.framesInUse(), 0);
    assert.equal(m.framesFree(), frames - 1, 'frame 0 is never handed out');
  }
});

test('MachineMemory.create rejects 0, negative, non-finite and over-4-GiB sizes with RangeError', () => {
  assert.equal(MAX_POOL_BYTES, 4 * 1024 * MiB - 64 * KiB);
  for (const bytes of [0, -1, -64 * KiB, Number.NaN, Number.POSITIVE_INFINITY, MAX_POOL_BYTES + 1, 4 * 1024 * MiB]) {
    assert.throws(() => MachineMemory.create(bytes), RangeError, String(bytes));
  }
});

test('allocFrame hands out distinct frames >= 1 until the pool is exhausted, then -1', () => {
  const m = MachineMemory.create(256 * KiB); // 64 frames
  const seen = new Set<number>();
  for (let i = 0; i < 63; i++) {
    const f = m.allocFrame();
    assert.ok(f >= 1 && f < 64, `frame ${f}`);
    assert.ok(!seen.has(f), `frame ${f} handed out twice`);
    seen.add(f);
    assert.equal(m.framesInUse(), i + 1);
    assert.equal(m.framesInUse() + m.framesFree(), 63);
  }
  assert.equal(m.allocFrame(), -1);
  assert.equal(m.allocFrame(), -1);
  assert.equal(m.framesInUse(), 63);
  assert.equal(m.framesFree(), 0);
  assert.equal(m.allocContiguous(1), -1);
  // One freed frame can be had again, once.
  m.freeFrame(17);
  assert.equal(m.framesFree(), 1);
  assert.equal(m.allocFrame(), 17);
  assert.equal(m.allocFrame(), -1);
});

test('a freed frame is reused by the next allocFrame and comes back zeroed', () => {
  const m = MachineMemory.create(1 * MiB);
  const a = m.allocFrame();
  const b = m.allocFrame();
  assert.notEqual(a, b);
  m.u8.fill(0xc3, a * PAGE_SIZE, (a + 1) * PAGE_SIZE);
  m.u8.fill(0x3c, b * PAGE_SIZE, (b + 1) * PAGE_SIZE);
  m.freeFrame(a);
  assert.equal(m.framesInUse(), 1);
  assert.equal(m.framesInUse() + m.framesFree(), m.frames - 1);
  const c = m.allocFrame();
  assert.equal(c, a);
  assert.ok(m.u8.subarray(c * PAGE_SIZE, (c + 1) * PAGE_SIZE).every((x) => x === 0), 'reused frame is zeroed');
  assert.ok(m.u8.subarray(b * PAGE_SIZE, (b + 1) * PAGE_SIZE).every((x) => x === 0x3c), 'its neighbour is untouched');
  // Last freed, first reused.
  m.freeFrame(b);
  m.freeFrame(c);
  assert.equal(m.allocFrame(), c);
  assert.equal(m.allocFrame(), b);
  assert.equal(m.framesInUse(), 2);
});

test('freeFrame rejects frame 0 and frames outside the pool', () => {
  const m = MachineMemory.create(64 * KiB);
  assert.throws(() => m.freeFrame(0), RangeError);
  assert.throws(() => m.freeFrame(-1), RangeError);
  assert.throws(() => m.freeFrame(16), RangeError);
  assert.equal(m.framesInUse(), 0);
});

test('freeFrame refuses a frame that is not handed out (double free, never allocated)', () => {
  const m = MachineMemory.create(64 * KiB);
  const f = m.allocFrame();
  m.freeFrame(f);
  assert.throws(() => m.freeFrame(f), /not allocated/);
  assert.throws(() => m.freeFrame(f + 1), /not allocated/);
  assert.equal(m.framesInUse(), 0);
  // The frame is on the free stack once, so two allocations give two different frames.
  assert.notEqual(m.allocFrame(), m.allocFrame());
});

test('allocContiguous returns a run of frames disjoint from single frames and counts them in use', () => {
  const m = MachineMemory.create(256 * KiB); // 64 frames
  const single = m.allocFrame();
  const first = m.allocContiguous(16);
  assert.ok(first >= 1);
  assert.ok(single < first || single >= first + 16);
  assert.equal(m.framesInUse(), 17);
  const next = m.allocFrame();
  assert.ok(next < first || next >= first + 16, `frame ${next} is inside the contiguous run`);
  assert.equal(m.allocContiguous(64), -1, 'more than the pool');
  assert.equal(m.framesInUse(), 18);
  // The whole remainder fits exactly once.
  const rest = m.framesFree();
  assert.ok(m.allocContiguous(rest) > 0);
  assert.equal(m.framesFree(), 0);
  assert.equal(m.allocFrame(), -1);
});

test('MachineMemory.attach sees the same bytes and the same allocator', () => {
  const m = MachineMemory.create(256 * KiB);
  const n = MachineMemory.attach(m.share());
  assert.equal(n.frames, m.frames);
  const a = m.allocFrame();
  const b = n.allocFrame();
  assert.notEqual(a, b);
  assert.equal(n.framesInUse(), 2);
  m.u8[b * PAGE_SIZE + 5] = 0x42;
  assert.equal(n.u8[b * PAGE_SIZE + 5], 0x42);
  n.freeFrame(a);
  assert.equal(m.framesInUse(), 1);
  assert.equal(m.allocFrame(), a);
});

// ------------------------------------------------------------------ Pmap

test('Pmap.create rejects overlapping, unaligned and empty regions', () => {
  const m = MachineMemory.create(1 * MiB);
  const ram = { name: 'ram', kind: 'ram', base: DRAM, size: 16 * PAGE_SIZE } as const;
  assert.throws(() => Pmap.create(m, [ram, { name: 'rom', kind: 'rom', base: DRAM + 15 * PAGE_SIZE, size: PAGE_SIZE }]), RangeError);
  assert.throws(() => Pmap.create(m, [ram, { name: 'rom', kind: 'rom', base: DRAM - PAGE_SIZE, size: 2 * PAGE_SIZE }]), RangeError);
  assert.throws(() => Pmap.create(m, [ram, { name: 'rom', kind: 'rom', base: DRAM - PAGE_SIZE, size: 32 * PAGE_SIZE }]), RangeError);
  assert.throws(() => Pmap.create(m, [ram, ram]), RangeError);
  assert.throws(() => Pmap.create(m, [{ ...ram, base: DRAM + 1 }]), RangeError);
  assert.throws(() => Pmap.create(m, [{ ...ram, size: PAGE_SIZE + 8 }]), RangeError);
  assert.throws(() => Pmap.create(m, [{ ...ram, size: 0 }]), RangeError);
  // Adjacent regions are fine.
  const p = Pmap.create(m, [ram, { name: 'rom', kind: 'rom', base: DRAM - PAGE_SIZE, size: PAGE_SIZE }, { name: 'hi', kind: 'ram', base: DRAM + 16 * PAGE_SIZE, size: PAGE_SIZE }]);
  assert.equal(p.regions.length, 3);
  assert.equal(p.entries.length, 18);
  assert.equal(m.framesInUse(), 0, 'creating a pmap allocates no frames');
});

test('indexOf and regionOf: pages of each region in order, -1 outside', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [
    { name: 'ram', kind: 'ram', base: DRAM, size: 2 * PAGE_SIZE },
    { name: 'rom', kind: 'rom', base: 0x1000, size: PAGE_SIZE },
  ]);
  assert.equal(p.indexOf(DRAM), 0);
  assert.equal(p.indexOf(DRAM + PAGE_SIZE - 1), 0);
  assert.equal(p.indexOf(DRAM + PAGE_SIZE), 1);
  assert.equal(p.indexOf(DRAM + 2 * PAGE_SIZE - 1), 1);
  assert.equal(p.indexOf(0x1000), 2);
  assert.equal(p.indexOf(0x1fff), 2);
  for (const gpa of [0, 0xfff, 0x2000, DRAM - 1, DRAM + 2 * PAGE_SIZE, 0x1_8000_0000, 0x1_0000_1000, -PAGE_SIZE]) {
    assert.equal(p.indexOf(gpa), -1, `0x${gpa.toString(16)}`);
    assert.equal(p.regionOf(gpa), undefined);
    assert.equal(p.machineAddress(gpa), -1);
  }
  assert.equal(p.regionOf(DRAM + 5)?.name, 'ram');
  assert.equal(p.regionOf(0x1800)?.name, 'rom');
  assert.equal(m.framesInUse(), 0);
});

test('machineAddress backs an untouched page on first use, and only then', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 16 * PAGE_SIZE }]);
  assert.equal(p.framesMapped(), 0);
  assert.equal(p.pagesTouched(), 0);
  assert.equal(p.entries[3], 0);
  const a = p.machineAddress(DRAM + 3 * PAGE_SIZE + 0x123);
  assert.equal(p.framesMapped(), 1);
  assert.equal(p.pagesTouched(), 1);
  assert.equal(m.framesInUse(), 1);
  const frame = Math.floor(a / PAGE_SIZE);
  assert.ok(frame >= 1 && frame < m.frames);
  assert.equal(a % PAGE_SIZE, 0x123);
  assert.equal(p.entries[3], (frame << PM_FRAME_SHIFT) | PM_PRESENT | PM_WRITE);
  assert.equal(p.entry(3), p.entries[3]);
  // Again, and another offset in the same page: no new frame.
  assert.equal(p.machineAddress(DRAM + 3 * PAGE_SIZE + 0x123), a);
  assert.equal(p.machineAddress(DRAM + 3 * PAGE_SIZE), frame * PAGE_SIZE);
  assert.equal(p.framesMapped(), 1);
  assert.equal(p.pagesTouched(), 1);
  assert.equal(m.framesInUse(), 1);
  // Another page gets another frame.
  const b = p.machineAddress(DRAM + 4 * PAGE_SIZE);
  assert.notEqual(Math.floor(b / PAGE_SIZE), frame);
  assert.equal(p.framesMapped(), 2);
  assert.equal(p.pagesTouched(), 2);
  // Fresh pages read as zero.
  assert.ok(p.read(DRAM + 4 * PAGE_SIZE, PAGE_SIZE).every((x) => x === 0));
});

test('two pmaps on one pool get different frames for the same guest page', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 4 * PAGE_SIZE }]);
  const q = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 4 * PAGE_SIZE }]);
  p.write(DRAM, new Uint8Array([1, 2, 3]));
  q.write(DRAM, new Uint8Array([9, 8, 7]));
  assert.notEqual(p.machineAddress(DRAM), q.machineAddress(DRAM));
  assert.deepEqual([...p.read(DRAM, 3)], [1, 2, 3]);
  assert.deepEqual([...q.read(DRAM, 3)], [9, 8, 7]);
  assert.equal(m.framesInUse(), 2);
});

test('limitFrames caps the frames a pmap backs', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 16 * PAGE_SIZE }], 4);
  assert.equal(p.limitFrames, 4);
  for (let i = 0; i < 4; i++) assert.ok(p.machineAddress(DRAM + i * PAGE_SIZE) > 0);
  assert.equal(p.framesMapped(), 4);
  assert.equal(p.machineAddress(DRAM + 4 * PAGE_SIZE), -1);
  assert.equal(p.entry(4), 0);
  assert.equal(p.entries[4], 0);
  assert.equal(p.framesMapped(), 4);
  assert.equal(p.pagesTouched(), 4);
  assert.equal(m.framesInUse(), 4);
  // Pages already backed stay usable.
  assert.ok(p.machineAddress(DRAM + 2 * PAGE_SIZE + 8) > 0);
  assert.throws(() => p.write(DRAM + 5 * PAGE_SIZE, new Uint8Array(1)), RangeError);
  assert.throws(() => p.read(DRAM + 5 * PAGE_SIZE, 1), RangeError);
  assert.throws(() => p.setFlags(DRAM + 5 * PAGE_SIZE, PM_WATCH, 0), RangeError);
});

test('an exhausted pool makes the pmap report no frame (entry 0, machineAddress -1)', () => {
  const m = MachineMemory.create(64 * KiB); // 15 usable frames
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 32 * PAGE_SIZE }]);
  for (let i = 0; i < 15; i++) assert.ok(p.machineAddress(DRAM + i * PAGE_SIZE) > 0, `page ${i}`);
  assert.equal(p.machineAddress(DRAM + 15 * PAGE_SIZE), -1);
  assert.equal(p.framesMapped(), 15);
  assert.equal(m.framesFree(), 0);
});

test('write and read round-trip across a page boundary (two different frames)', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 16 * PAGE_SIZE }]);
  m.allocFrame(); // so that the two guest pages do not get consecutive frames by accident
  const data = Uint8Array.from({ length: PAGE_SIZE + 64 }, (_, i) => (i * 7 + 3) & 0xff);
  const at = DRAM + 2 * PAGE_SIZE - 32;
  p.write(at, data);
  assert.deepEqual(p.read(at, data.length), data);
  assert.equal(p.pagesTouched(), 3);
  // Byte by byte through the machine addresses of each page.
  for (const i of [0, 31, 32, 33, PAGE_SIZE + 31, PAGE_SIZE + 32, PAGE_SIZE + 63]) {
    assert.equal(m.u8[p.machineAddress(at + i)], data[i], `byte ${i}`);
  }
  // Neighbouring bytes untouched.
  assert.deepEqual([...p.read(at - 4, 4)], [0, 0, 0, 0]);
  assert.deepEqual([...p.read(at + data.length, 4)], [0, 0, 0, 0]);
  assert.equal(p.read(at, 0).length, 0);
});

test('write and read outside guest RAM throw RangeError', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 4 * PAGE_SIZE }]);
  assert.throws(() => p.write(0x1000_0000, new Uint8Array([1])), RangeError);
  assert.throws(() => p.write(DRAM - 1, new Uint8Array([1])), RangeError);
  assert.throws(() => p.read(0, 1), RangeError);
  assert.throws(() => p.read(DRAM + 4 * PAGE_SIZE, 1), RangeError);
  assert.throws(() => p.read(DRAM + 4 * PAGE_SIZE - 2, 4), RangeError, 'runs off the end');
  assert.equal(m.u8.subarray(0, PAGE_SIZE).every((x) => x === 0), true, 'frame 0 untouched');
});

test('setFlags sets and clears bits, keeps the frame, and bumps the generation', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 4 * PAGE_SIZE }]);
  const g0 = p.generation();
  p.setFlags(DRAM + PAGE_SIZE + 8, PM_WATCH, 0); // backs the page
  assert.equal(p.generation(), g0 + 1);
  const frame = p.entries[1]! >>> PM_FRAME_SHIFT;
  assert.ok(frame >= 1);
  assert.equal(p.entries[1], (frame << PM_FRAME_SHIFT) | PM_PRESENT | PM_WRITE | PM_WATCH);
  p.setFlags(DRAM + PAGE_SIZE, 0, PM_WRITE);
  assert.equal(p.generation(), g0 + 2);
  assert.equal(p.entries[1], (frame << PM_FRAME_SHIFT) | PM_PRESENT | PM_WATCH);
  p.setFlags(DRAM + PAGE_SIZE, PM_WRITE, PM_WATCH);
  assert.equal(p.generation(), g0 + 3);
  assert.equal(p.entries[1], (frame << PM_FRAME_SHIFT) | PM_PRESENT | PM_WRITE);
  assert.equal(p.framesMapped(), 1);
  assert.throws(() => p.setFlags(0x1000, PM_WATCH, 0), RangeError);
  assert.equal(p.generation(), g0 + 3);
  p.bumpGeneration();
  assert.equal(p.generation(), g0 + 4);
});

test('ROM pages are backed without PM_WRITE, RAM pages with it; the loader can still fill ROM', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [
    { name: 'rom', kind: 'rom', base: 0x1000, size: 2 * PAGE_SIZE },
    { name: 'ram', kind: 'ram', base: DRAM, size: 2 * PAGE_SIZE },
  ]);
  p.write(0x1ffe, new Uint8Array([0xaa, 0xbb, 0xcc, 0xdd]));
  assert.deepEqual([...p.read(0x1ffe, 4)], [0xaa, 0xbb, 0xcc, 0xdd]);
  for (const i of [0, 1]) {
    const e = p.entries[i]!;
    assert.equal(e & PM_PRESENT, PM_PRESENT);
    assert.equal(e & PM_WRITE, 0, `rom page ${i}`);
  }
  const r = p.entry(p.indexOf(DRAM));
  assert.equal(r & (PM_PRESENT | PM_WRITE), PM_PRESENT | PM_WRITE);
});

test('Pmap.attach shares entries, counters and the generation', () => {
  const m = MachineMemory.create(1 * MiB);
  const p = Pmap.create(m, [{ name: 'ram', kind: 'ram', base: DRAM, size: 4 * PAGE_SIZE }], 3);
  const q = Pmap.attach(MachineMemory.attach(m.share()), p.share());
  p.write(DRAM + 10, new Uint8Array([5, 6]));
  assert.deepEqual([...q.read(DRAM + 10, 2)], [5, 6]);
  assert.equal(q.framesMapped(), 1);
  assert.equal(q.machineAddress(DRAM), p.machineAddress(DRAM));
  q.setFlags(DRAM, PM_WATCH, 0);
  assert.equal(p.generation(), q.generation());
  assert.equal(p.entries[0]! & PM_WATCH, PM_WATCH);
  assert.equal(q.limitFrames, 3);
});

// ------------------------------------------------------------------ the pool's lock, across threads

const WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
(async () => {
  const { MachineMemory, PAGE_SIZE } = await import(workerData.url);
  const mem = MachineMemory.attach(workerData.shared);
  const i32 = new Int32Array(mem.buffer);
  const go = new Int32Array(workerData.go);
  const tag = workerData.id + 1;
  // Start together.
  Atomics.add(go, 0, 1);
  Atomics.notify(go, 0);
  while (Atomics.load(go, 0) < workerData.workers) Atomics.wait(go, 0, Atomics.load(go, 0), 5);
  const held = [];
  let problems = 0;
  const claim = (f) => {
    if (f < 1) { problems++; return; }
    // A frame must arrive zeroed and stay ours: tag it, check it later.
    if (i32[f * PAGE_SIZE / 4] !== 0) problems++;
    i32[f * PAGE_SIZE / 4] = tag;
    held.push(f);
  };
  for (let round = 0; round < workerData.rounds; round++) {
    for (let i = 0; i < workerData.perRound; i++) claim(mem.allocFrame());
    // Give back every other frame held (they return to the shared free stack).
    for (let i = held.length - 1; i >= 0; i -= 2) {
      const f = held[i];
      if (i32[f * PAGE_SIZE / 4] !== tag) problems++;
      i32[f * PAGE_SIZE / 4] = 0;
      mem.freeFrame(f);
      held.splice(i, 1);
    }
  }
  for (const f of held) if (i32[f * PAGE_SIZE / 4] !== tag) problems++;
  parentPort.postMessage({ held, problems });
})().catch((e) => { throw e; });
`;

interface WorkerResult { held: number[]; problems: number }

test('two workers allocating and freeing concurrently never get the same frame', async () => {
  const mem = MachineMemory.create(64 * MiB); // 16384 frames
  const go = new SharedArrayBuffer(4);
  const url = new URL('../src/memory/machine-memory.js', import.meta.url).href;
  const workers = 2;
  const rounds = 6, perRound = 1000;
  const results = await Promise.all(Array.from({ length: workers }, (_, id) => new Promise<WorkerResult>((resolve, reject) => {
    const w = new Worker(WORKER, { eval: true, workerData: { url, shared: mem.share(), go, id, workers, rounds, perRound } });
    w.once('message', (r: WorkerResult) => { resolve(r); void w.terminate(); });
    w.once('error', reject);
  })));
  const all = new Map<number, number>();
  for (const [id, r] of results.entries()) {
    assert.equal(r.problems, 0, `worker ${id}: a frame came in non-zero or lost its tag`);
    for (const f of r.held) {
      assert.ok(!all.has(f), `frame ${f} held by workers ${all.get(f)} and ${id}`);
      all.set(f, id);
    }
  }
  // What each worker ends up holding: per round, perRound more, then every other one given back.
  let expectedHeld = 0;
  for (let round = 0; round < rounds; round++) expectedHeld = Math.floor((expectedHeld + perRound) / 2);
  assert.equal(expectedHeld, 984);
  for (const r of results) assert.equal(r.held.length, expectedHeld);
  assert.equal(mem.framesInUse(), all.size);
  assert.equal(mem.framesInUse() + mem.framesFree(), mem.frames - 1);
  // Every frame is tagged by its holder.
  const i32 = new Int32Array(mem.buffer);
  for (const [f, id] of all) assert.equal(i32[(f * PAGE_SIZE) / 4], id + 1, `frame ${f}`);
});
