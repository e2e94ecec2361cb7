// The device models of src/devices driven directly through their MMIO
// read()/write() entry points, with fake interrupt ports and host clocks:
// PLIC (RISC-V PLIC spec 1.0.0, SiFive layout as on QEMU virt), NS16550A UART,
// goldfish RTC, SiFive test finisher, CLINT and the empty virtio-mmio slot.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Clock } from '../src/cpu/clock.js';
import { MIP_MEIP, MIP_MSIP, MIP_SEIP } from '../src/cpu/csr-numbers.js';
import { Clint } from '../src/devices/clint.js';
import type { AccessSize, InterruptPort, MmioDevice } from '../src/devices/device.js';
import { GoldfishRtc } from '../src/devices/goldfish-rtc.js';
import { Plic, PLIC_SIZE, type PlicState } from '../src/devices/plic.js';
import { SifiveTest, type PowerEvent } from '../src/devices/syscon.js';
import { Uart16550, type UartState } from '../src/devices/uart16550.js';
import { VirtioMmioEmpty } from '../src/devices/virtio-mmio-empty.js';
import { MmioBus } from '../src/machine/bus.js';

/** A hart's interrupt inputs as a device sees them, recording every line change. */
class FakePort implements InterruptPort {
  lines = 0;
  cmp = 0xffff_ffff_ffff_ffffn;
  readonly changes: [number, boolean][] = [];
  setIrqLine(bit: number, level: boolean): void {
    this.changes.push([bit, level]);
    if (level) this.lines |= bit;
    else this.lines &= ~bit;
  }
  irqLines(): number {
    return this.lines;
  }
  setTimerCompare(v: bigint): void {
    this.cmp = BigInt.asUintN(64, v);
  }
  timerCompare(): bigint {
    return this.cmp;
  }
}

function rd(d: MmioDevice, off: number, size: AccessSize = 4): bigint {
  const v = d.read(off, size);
  assert.notEqual(v, null, `${d.name}: read of ${size} bytes at 0x${off.toString(16)} was refused`);
  return v!;
}

function wr(d: MmioDevice, off: number, value: number | bigint, size: AccessSize = 4): void {
  assert.equal(d.write(off, size, BigInt(value)), true, `${d.name}: write of ${size} bytes at 0x${off.toString(16)} was refused`);
}

// ================================================================== PLIC

const PLIC_BASE = 0xc00_0000;
const prio = (irq: number): number => 4 * irq;
const pendingWord = (w: number): number => 0x1000 + 4 * w;
const enableWord = (ctx: number, w: number): number => 0x2000 + 0x80 * ctx + 4 * w;
const threshold = (ctx: number): number => 0x20_0000 + 0x1000 * ctx;
const claimReg = (ctx: number): number => 0x20_0004 + 0x1000 * ctx;

function plic(harts = 2): { p: Plic; ports: FakePort[] } {
  const ports = Array.from({ length: harts }, () => new FakePort());
  return { p: new Plic(PLIC_BASE, ports), ports };
}

const pendingWords = (p: Plic): bigint[] => [0, 1, 2].map((w) => rd(p, pendingWord(w)));
const claim = (p: Plic, ctx: number): number => Number(rd(p, claimReg(ctx)));
const complete = (p: Plic, ctx: number, irq: number): void => wr(p, claimReg(ctx), irq);
/** Enables one source in a context (read-modify-write of its enable word). */
function enable(p: Plic, ctx: number, irq: number, on = true): void {
  const off = enableWord(ctx, irq >> 5);
  const bit = 1n << BigInt(irq & 31);
  const v = rd(p, off);
  wr(p, off, on ? v | bit : v & ~bit);
}

test('plic: source priorities are 3-bit registers at 4·n; source 0 has none', () => {
  const { p } = plic();
  assert.equal(rd(p, prio(3)), 0n);
  wr(p, prio(3), 5);
  assert.equal(rd(p, prio(3)), 5n);
  wr(p, prio(3), 0xff); // 7 priority levels, as QEMU virt: the register keeps 3 bits
  assert.equal(rd(p, prio(3)), 7n);
  wr(p, prio(95), 2);
  assert.equal(rd(p, prio(95)), 2n);
  assert.equal(rd(p, prio(94)), 0n);
  wr(p, prio(0), 7);
  assert.equal(rd(p, prio(0)), 0n);
});

test('plic: device requests set pending bits, read-only to the guest; source 0 and sources past 95 never pend', () => {
  const { p } = plic();
  assert.deepEqual(pendingWords(p), [0n, 0n, 0n]);
  p.setIrq(5, true);
  p.setIrq(31, true);
  p.setIrq(40, true);
  p.setIrq(95, true);
  assert.deepEqual(pendingWords(p), [0x8000_0020n, 0x100n, 0x8000_0000n]);
  wr(p, pendingWord(0), 0); // pending bits are read-only
  wr(p, pendingWord(1), 0xffff_ffff);
  assert.deepEqual(pendingWords(p), [0x8000_0020n, 0x100n, 0x8000_0000n]);
  p.setIrq(0, true);
  p.setIrq(96, true);
  p.setIrq(-1, true);
  assert.deepEqual(pendingWords(p), [0x8000_0020n, 0x100n, 0x8000_0000n]);
  assert.equal(rd(p, pendingWord(3)), 0n);
  p.setIrq(5, false); // a level source lowered before it is claimed is no longer pending
  assert.deepEqual(pendingWords(p), [0x8000_0000n, 0x100n, 0x8000_0000n]);
});

test('plic: enables are per context (0x2000 + 0x80·c); source 0 cannot be enabled; thresholds per context', () => {
  const { p } = plic(2);
  wr(p, enableWord(1, 0), 0xffff_ffff);
  assert.equal(rd(p, enableWord(1, 0)), 0xffff_fffen);
  assert.equal(rd(p, enableWord(0, 0)), 0n);
  assert.equal(rd(p, enableWord(1, 1)), 0n);
  wr(p, enableWord(3, 2), 0x8000_0001);
  assert.equal(rd(p, enableWord(3, 2)), 0x8000_0001n);
  assert.equal(rd(p, enableWord(2, 2)), 0n);

  for (let c = 0; c < 4; c++) assert.equal(rd(p, threshold(c)), 0n);
  wr(p, threshold(2), 3);
  wr(p, threshold(1), 7);
  assert.deepEqual([0, 1, 2, 3].map((c) => rd(p, threshold(c))), [0n, 7n, 3n, 0n]);
});

test('plic: claim returns the highest-priority pending enabled source (ties to the lowest id) and clears its pending bit', () => {
  const { p } = plic();
  wr(p, prio(3), 2);
  wr(p, prio(7), 5);
  wr(p, prio(9), 5);
  wr(p, prio(40), 6); // higher, but not enabled in context 0
  // source 12 keeps priority 0: "never interrupt"
  for (const irq of [3, 7, 9, 12]) enable(p, 0, irq);
  enable(p, 1, 40);
  for (const irq of [9, 12, 3, 40, 7]) p.setIrq(irq, true);
  assert.deepEqual(pendingWords(p), [BigInt((1 << 3) | (1 << 7) | (1 << 9) | (1 << 12)), 0x100n, 0n]);

  assert.equal(claim(p, 0), 7);
  assert.deepEqual(pendingWords(p), [BigInt((1 << 3) | (1 << 9) | (1 << 12)), 0x100n, 0n]);
  assert.equal(claim(p, 0), 9);
  assert.equal(claim(p, 0), 3);
  assert.equal(claim(p, 0), 0);
  assert.deepEqual(pendingWords(p), [BigInt(1 << 12), 0x100n, 0n]);
  assert.equal(claim(p, 1), 40);
  assert.deepEqual(pendingWords(p), [BigInt(1 << 12), 0n, 0n]);
});

test('plic: sources in bit 31 of a word (31, 63, 95) are claimed with their own id', () => {
  const { p } = plic(1);
  for (const irq of [31, 63, 95]) {
    wr(p, prio(irq), 1);
    enable(p, 0, irq);
  }
  p.setIrq(95, true);
  p.setIrq(63, true);
  p.setIrq(31, true);
  assert.equal(claim(p, 0), 31);
  assert.equal(claim(p, 0), 63);
  assert.equal(claim(p, 0), 95);
  assert.equal(claim(p, 0), 0);
});

test('plic: a claimed source stays out until completed; still asserted at completion it pends again', () => {
  const { p, ports } = plic(1);
  wr(p, prio(5), 1);
  enable(p, 0, 5);
  p.setIrq(5, true);
  assert.equal(ports[0]!.lines, MIP_MEIP);
  assert.equal(claim(p, 0), 5);
  assert.equal(ports[0]!.lines, 0);
  p.setIrq(5, true); // the device keeps its line up: the gateway holds it while in service
  assert.deepEqual(pendingWords(p), [0n, 0n, 0n]);
  assert.equal(claim(p, 0), 0);
  assert.equal(ports[0]!.lines, 0);

  complete(p, 0, 5);
  assert.deepEqual(pendingWords(p), [1n << 5n, 0n, 0n]);
  assert.equal(ports[0]!.lines, MIP_MEIP);
  assert.equal(claim(p, 0), 5);

  // Lowered before completion: nothing pends afterwards.
  p.setIrq(5, false);
  complete(p, 0, 5);
  assert.deepEqual(pendingWords(p), [0n, 0n, 0n]);
  assert.equal(claim(p, 0), 0);
  assert.equal(ports[0]!.lines, 0);
});

test('plic: the threshold masks the notification of sources not above it, but not a claim (PLIC spec, chapter 8)', () => {
  const { p, ports } = plic(1);
  wr(p, prio(4), 3);
  enable(p, 0, 4);
  wr(p, threshold(0), 3);
  p.setIrq(4, true);
  assert.equal(ports[0]!.lines, 0);
  assert.deepEqual(pendingWords(p), [1n << 4n, 0n, 0n]);
  // "The claim operation is not affected by the setting of the priority threshold register."
  assert.equal(claim(p, 0), 4);
  complete(p, 0, 4);
  assert.equal(ports[0]!.lines, 0);
  wr(p, threshold(0), 2);
  assert.equal(ports[0]!.lines, MIP_MEIP);
  assert.equal(claim(p, 0), 4);
  assert.equal(ports[0]!.lines, 0);
  complete(p, 0, 4);
  assert.equal(ports[0]!.lines, MIP_MEIP);
  wr(p, threshold(0), 7);
  assert.equal(ports[0]!.lines, 0);
});

test('plic: completion of a source the context does not enable is ignored', () => {
  const { p } = plic(1);
  wr(p, prio(6), 1);
  enable(p, 0, 6); // context 0 only
  p.setIrq(6, true);
  assert.equal(claim(p, 0), 6);
  complete(p, 1, 6); // context 1 does not enable source 6: ignored, the source stays in service
  assert.deepEqual(pendingWords(p), [0n, 0n, 0n]);
  assert.equal(claim(p, 0), 0);
  enable(p, 0, 6, false); // nor can context 0 complete it once it no longer enables it
  complete(p, 0, 6);
  enable(p, 0, 6);
  assert.deepEqual(pendingWords(p), [0n, 0n, 0n]);
  complete(p, 0, 6);
  assert.deepEqual(pendingWords(p), [1n << 6n, 0n, 0n]);
  assert.equal(claim(p, 0), 6);
  complete(p, 0, 0); // completing source 0 or a nonexistent source changes nothing
  complete(p, 0, 96);
  assert.deepEqual(pendingWords(p), [0n, 0n, 0n]);
});

test('plic: context 2h drives hart h MEIP and context 2h+1 its SEIP, no other line', () => {
  for (let ctx = 0; ctx < 4; ctx++) {
    const { p, ports } = plic(2);
    wr(p, prio(10), 1);
    enable(p, ctx, 10);
    p.setIrq(10, true);
    const line = ctx % 2 === 0 ? MIP_MEIP : MIP_SEIP;
    const h = ctx >> 1;
    assert.equal(ports[h]!.lines, line, `context ${ctx}`);
    assert.equal(ports[1 - h]!.lines, 0, `context ${ctx}`);
    assert.equal(claim(p, ctx), 10);
    assert.equal(ports[h]!.lines, 0);
    complete(p, ctx, 10);
    assert.equal(ports[h]!.lines, line);
    p.setIrq(10, false);
    assert.equal(ports[h]!.lines, 0);
    assert.deepEqual(ports[h]!.changes, [[line, true], [line, false], [line, true], [line, false]]);
    assert.deepEqual(ports[1 - h]!.changes, []);
  }
});

test('plic: one source enabled in two contexts raises both; claiming it in one lowers both', () => {
  const { p, ports } = plic(2);
  wr(p, prio(10), 1);
  enable(p, 0, 10);
  enable(p, 3, 10);
  p.setIrq(10, true);
  assert.equal(ports[0]!.lines, MIP_MEIP);
  assert.equal(ports[1]!.lines, MIP_SEIP);
  assert.equal(claim(p, 3), 10);
  assert.equal(ports[0]!.lines, 0);
  assert.equal(ports[1]!.lines, 0);
  assert.equal(claim(p, 0), 0);
});

test('plic: wrong-size, misaligned and out-of-window accesses are refused', () => {
  const { p } = plic(2);
  for (const size of [1, 2, 8] as const) {
    assert.equal(p.read(prio(3), size), null);
    assert.equal(p.write(prio(3), size, 5n), false);
    assert.equal(p.read(claimReg(0), size), null);
    assert.equal(p.write(threshold(0), size, 5n), false);
  }
  assert.equal(p.read(prio(3) + 2, 4), null);
  assert.equal(p.write(prio(3) + 2, 4, 5n), false);
  assert.equal(rd(p, prio(3)), 0n);
  assert.equal(rd(p, threshold(0)), 0n);

  // Through the bus: nothing past the PLIC's window reaches it.
  const bus = new MmioBus();
  bus.add(p);
  assert.equal(bus.read(PLIC_BASE + PLIC_SIZE, 4), null);
  assert.equal(bus.write(PLIC_BASE + PLIC_SIZE, 4, 1n), false);
  assert.equal(bus.read(PLIC_BASE + PLIC_SIZE - 2, 4), null);
  assert.equal(bus.read(PLIC_BASE + prio(3), 4), 0n);

  // Contexts past the last hart's (2 harts: 0..3) hold nothing and claim nothing.
  wr(p, prio(3), 1);
  wr(p, enableWord(4, 0), 0xffff_ffff);
  assert.equal(rd(p, enableWord(4, 0)), 0n);
  wr(p, threshold(4), 1);
  assert.equal(rd(p, threshold(4)), 0n);
  enable(p, 0, 3);
  p.setIrq(3, true);
  assert.equal(rd(p, claimReg(4)), 0n);
  assert.deepEqual(pendingWords(p), [1n << 3n, 0n, 0n]);
});

test('plic: save()/restore() round-trips priorities, enables, thresholds, pending and in-service state', () => {
  const a = plic(2);
  wr(a.p, prio(3), 4);
  wr(a.p, prio(33), 2);
  enable(a.p, 1, 3);
  enable(a.p, 2, 33);
  wr(a.p, threshold(1), 1);
  a.p.setIrq(3, true);
  a.p.setIrq(33, true);
  a.p.setIrq(50, true); // pending, enabled nowhere
  assert.equal(claim(a.p, 2), 33); // in service at the snapshot
  const snap: PlicState = a.p.save();
  // The snapshot is a copy: later changes do not reach it.
  wr(a.p, prio(3), 0);
  a.p.setIrq(3, false);
  complete(a.p, 2, 33);

  for (const state of [snap, JSON.parse(JSON.stringify(snap)) as PlicState]) {
    const b = plic(2);
    b.p.restore(state);
    assert.equal(b.ports[0]!.lines, MIP_SEIP); // source 3 (priority 4 > threshold 1) pends for context 1
    assert.equal(b.ports[1]!.lines, 0); // source 33 is in service
    assert.equal(rd(b.p, prio(3)), 4n);
    assert.equal(rd(b.p, prio(33)), 2n);
    assert.equal(rd(b.p, threshold(1)), 1n);
    assert.equal(rd(b.p, enableWord(2, 1)), 2n);
    assert.deepEqual(pendingWords(b.p), [1n << 3n, 1n << 18n, 0n]);
    assert.equal(claim(b.p, 1), 3);
    assert.equal(b.ports[0]!.lines, 0);
    complete(b.p, 2, 33); // still asserted at the snapshot: pends again
    assert.equal(b.ports[1]!.lines, MIP_MEIP);
    assert.equal(claim(b.p, 2), 33);
  }

  assert.throws(() => plic(1).p.restore(snap), RangeError);
  assert.throws(() => plic(2).p.restore({ ...snap, version: 2 } as unknown as PlicState), RangeError);
});

// ================================================================== UART

const RBR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;

function uart(): { u: Uart16550; tx: number[]; irq: boolean[]; r: (off: number) => number; w: (off: number, v: number) => void } {
  const tx: number[] = [];
  const irq: boolean[] = [];
  const u = new Uart16550(0x1000_0000, (b) => tx.push(b), (l) => irq.push(l));
  return { u, tx, irq, r: (off) => Number(rd(u, off, 1)), w: (off, v) => wr(u, off, v, 1) };
}

const last = (levels: boolean[]): boolean | undefined => levels[levels.length - 1];

test('uart: THR bytes go to the host; LSR reports THRE|TEMT; registers are byte-wide', () => {
  const { u, tx, r, w } = uart();
  w(RBR, 0x68);
  w(RBR, 0x69);
  assert.deepEqual(tx, [0x68, 0x69]);
  assert.equal(r(LSR), 0x60);
  assert.equal(u.read(RBR, 4), null);
  assert.equal(u.read(LSR, 2), null);
  assert.equal(u.write(RBR, 4, 0x41n), false);
  assert.equal(u.write(RBR, 2, 0x41n), false);
  assert.deepEqual(tx, [0x68, 0x69]);
});

test('uart: LCR.DLAB switches offsets 0 and 1 to the divisor latch (DLL, DLM)', () => {
  const { tx, r, w } = uart();
  w(IER, 0x05);
  w(LCR, 0x83);
  w(RBR, 0x01);
  w(IER, 0x02);
  assert.deepEqual(tx, []);
  assert.equal(r(RBR), 0x01);
  assert.equal(r(IER), 0x02);
  assert.equal(r(LCR), 0x83);
  w(LCR, 0x03);
  assert.equal(r(IER), 0x05);
  assert.equal(r(LCR), 0x03);
  w(RBR, 0x41);
  assert.deepEqual(tx, [0x41]);
  w(LCR, 0x80);
  assert.equal(r(RBR), 0x01);
  assert.equal(r(IER), 0x02);
});

test('uart: received bytes set LSR.DR; with ERBFI the irq rises and IIR reports RDI (0x04, 0xC4 with FIFOs)', () => {
  const { u, irq, r, w } = uart();
  assert.equal(u.receive(Uint8Array.of(0x41, 0x42)), true);
  assert.equal(last(irq), false); // IER = 0: no interrupt
  assert.equal(r(LSR), 0x61);
  assert.equal(r(IIR), 0x01);
  w(IER, 0x01);
  assert.equal(last(irq), true);
  assert.equal(r(IIR), 0x04);
  assert.equal(last(irq), true); // reading IIR does not acknowledge received data
  w(FCR, 0x01);
  assert.equal(r(IIR), 0xc4);
  assert.equal(r(RBR), 0x41);
  assert.equal(last(irq), true);
  assert.equal(r(LSR), 0x61);
  assert.equal(r(RBR), 0x42);
  assert.equal(last(irq), false);
  assert.equal(r(LSR), 0x60);
  assert.equal(r(IIR), 0xc1);
  assert.equal(u.pending(), 0);
  u.receive(Uint8Array.of(0x43));
  assert.equal(last(irq), true);
  w(IER, 0x00);
  assert.equal(last(irq), false);
  assert.equal(r(LSR), 0x61);
});

test('uart: ETBEI raises THRI (IIR 0x02), which an IIR read clears; each THR write raises it again', () => {
  const { tx, irq, r, w } = uart();
  w(IER, 0x02);
  assert.equal(last(irq), true);
  assert.equal(r(IIR), 0x02);
  assert.equal(last(irq), false);
  assert.equal(r(IIR), 0x01);
  w(RBR, 0x21);
  assert.deepEqual(tx, [0x21]);
  assert.equal(last(irq), true);
  assert.equal(r(IIR), 0x02);
  assert.equal(r(IIR), 0x01);
  assert.equal(last(irq), false);
  w(IER, 0x02); // ETBEI already set: no new THRI
  assert.equal(r(IIR), 0x01);
  w(IER, 0x00);
  w(IER, 0x02); // set again: the empty transmitter interrupts
  assert.equal(r(IIR), 0x02);
});

test('uart: received data (RDI) takes priority over THRI, which stays pending behind it', () => {
  const { u, irq, r, w } = uart();
  w(IER, 0x03);
  u.receive(Uint8Array.of(0x31));
  assert.equal(r(IIR), 0x04);
  assert.equal(r(RBR), 0x31);
  assert.equal(last(irq), true);
  assert.equal(r(IIR), 0x02);
  assert.equal(r(IIR), 0x01);
  assert.equal(last(irq), false);
});

test('uart: loopback (MCR bit 4) returns THR bytes through RBR instead of the host', () => {
  const { tx, irq, r, w } = uart();
  w(IER, 0x01);
  w(MCR, 0x10);
  assert.equal(r(MCR), 0x10);
  w(RBR, 0x5a);
  assert.deepEqual(tx, []);
  assert.equal(last(irq), true);
  assert.equal(r(LSR), 0x61);
  assert.equal(r(RBR), 0x5a);
  assert.equal(r(LSR), 0x60);
  w(MCR, 0x00);
  w(RBR, 0x5b);
  assert.deepEqual(tx, [0x5b]);
  assert.equal(r(LSR), 0x60);
});

test('uart: in loopback MSR reflects MCR (RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD)', () => {
  const { r, w } = uart();
  w(MCR, 0x1f);
  assert.equal(r(MSR) & 0xf0, 0xf0);
  w(MCR, 0x12); // RTS only
  assert.equal(r(MSR) & 0xf0, 0x10);
  w(MCR, 0x18); // OUT2 only
  assert.equal(r(MSR) & 0xf0, 0x80);
});

test('uart: FCR bit 1 clears the receive FIFO', () => {
  const { u, irq, r, w } = uart();
  w(IER, 0x01);
  u.receive(Uint8Array.of(1, 2, 3));
  assert.equal(last(irq), true);
  w(FCR, 0x03);
  assert.equal(u.pending(), 0);
  assert.equal(last(irq), false);
  assert.equal(r(LSR), 0x60);
  assert.equal(r(IIR), 0xc1);
  w(FCR, 0x01); // without bit 1 nothing is dropped
  u.receive(Uint8Array.of(4));
  w(FCR, 0x01);
  assert.equal(u.pending(), 1);
  assert.equal(r(RBR), 4);
});

test('uart: save()/restore() round-trips registers, divisor, FIFO contents and interrupt state', () => {
  const a = uart();
  a.w(LCR, 0x80);
  a.w(RBR, 0x03);
  a.w(IER, 0x00);
  a.w(LCR, 0x03);
  a.w(IER, 0x01);
  a.w(SCR, 0x99);
  a.w(MCR, 0x08);
  a.w(FCR, 0x01);
  a.u.receive(Uint8Array.of(1, 2, 3));
  const snap: UartState = a.u.save();
  a.u.receive(Uint8Array.of(4)); // after the snapshot
  a.r(RBR);

  for (const state of [snap, JSON.parse(JSON.stringify(snap)) as UartState]) {
    const b = uart();
    b.u.restore(state);
    assert.equal(last(b.irq), true);
    assert.equal(b.r(SCR), 0x99);
    assert.equal(b.r(MCR), 0x08);
    assert.equal(b.r(LCR), 0x03);
    assert.equal(b.r(IER), 0x01);
    assert.equal(b.r(IIR), 0xc4);
    assert.deepEqual([b.r(RBR), b.r(RBR), b.r(RBR)], [1, 2, 3]);
    assert.equal(b.r(LSR), 0x60);
    assert.equal(last(b.irq), false);
    b.w(LCR, 0x83);
    assert.equal(b.r(RBR), 0x03);
    assert.equal(b.r(IER), 0x00);
  }
  assert.equal(a.u.pending(), 3); // restoring elsewhere did not touch the original
  assert.throws(() => uart().u.restore({ ...snap, version: 2 } as unknown as UartState), RangeError);
});

// ================================================================== goldfish RTC

const TIME_LOW = 0x00, TIME_HIGH = 0x04, ALARM_LOW = 0x08, ALARM_HIGH = 0x0c, IRQ_ENABLED = 0x10,
  CLEAR_ALARM = 0x14, ALARM_STATUS = 0x18, CLEAR_INTERRUPT = 0x1c;

function rtc(start = 0n): { d: GoldfishRtc; irq: boolean[]; host: { ns: bigint } } {
  const host = { ns: start };
  const irq: boolean[] = [];
  return { d: new GoldfishRtc(0x101000, (l) => irq.push(l), () => host.ns), irq, host };
}

test('rtc: time reads low word first, which latches the high word', () => {
  const { d, host } = rtc(0x1_ffff_fff0n);
  assert.equal(rd(d, TIME_LOW), 0xffff_fff0n);
  host.ns = 0x2_0000_0010n;
  assert.equal(rd(d, TIME_HIGH), 1n); // latched at the low read, not the current 2
  assert.equal(rd(d, TIME_LOW), 0x10n);
  assert.equal(rd(d, TIME_HIGH), 2n);
  assert.equal(d.read(TIME_LOW, 8), null);
  assert.equal(d.write(TIME_LOW, 1, 0n), false);
});

test('rtc: the guest sets the time (high word, then low) and it runs on with the host clock', () => {
  const { d, host } = rtc(1000n);
  wr(d, TIME_HIGH, 5);
  wr(d, TIME_LOW, 0x10);
  assert.equal(rd(d, TIME_LOW), 0x10n);
  assert.equal(rd(d, TIME_HIGH), 5n);
  host.ns = 1100n;
  assert.equal(rd(d, TIME_LOW), 0x74n);
  assert.equal(rd(d, TIME_HIGH), 5n);
});

test('rtc: an alarm fires on poll() once its time has passed, raising the irq when enabled; CLEAR_INTERRUPT lowers it', () => {
  const { d, irq, host } = rtc(0n);
  wr(d, ALARM_HIGH, 0);
  wr(d, ALARM_LOW, 1000);
  assert.equal(rd(d, ALARM_STATUS), 1n);
  assert.equal(rd(d, ALARM_LOW), 1000n);
  assert.equal(rd(d, ALARM_HIGH), 0n);
  wr(d, IRQ_ENABLED, 1);
  assert.equal(rd(d, IRQ_ENABLED), 1n);
  assert.equal(irq.includes(true), false);
  host.ns = 999n;
  d.poll();
  assert.equal(irq.includes(true), false);
  assert.equal(rd(d, ALARM_STATUS), 1n);
  host.ns = 1000n;
  d.poll();
  assert.equal(last(irq), true);
  assert.equal(rd(d, ALARM_STATUS), 0n);
  const n = irq.length;
  d.poll(); // fired once only
  assert.equal(irq.length, n);
  wr(d, CLEAR_INTERRUPT, 1);
  assert.equal(last(irq), false);
});

test('rtc: an alarm that fires while the irq is disabled raises it when enabled; a due alarm fires at once', () => {
  const { d, irq, host } = rtc(0n);
  wr(d, ALARM_LOW, 50);
  host.ns = 60n;
  d.poll();
  assert.equal(irq.includes(true), false);
  assert.equal(rd(d, ALARM_STATUS), 0n);
  wr(d, IRQ_ENABLED, 1);
  assert.equal(last(irq), true);
  wr(d, CLEAR_INTERRUPT, 1);
  assert.equal(last(irq), false);
  wr(d, ALARM_LOW, 10); // already past: fires on the write
  assert.equal(rd(d, ALARM_STATUS), 0n);
  assert.equal(last(irq), true);
  wr(d, IRQ_ENABLED, 0);
  assert.equal(last(irq), false);
});

test('rtc: alarms compare with the guest time, not the host time; CLEAR_ALARM disarms', () => {
  const { d, irq, host } = rtc(0n);
  wr(d, TIME_HIGH, 1);
  wr(d, TIME_LOW, 0); // guest time 2^32 at host time 0
  wr(d, IRQ_ENABLED, 1);
  wr(d, ALARM_HIGH, 1);
  wr(d, ALARM_LOW, 500);
  assert.equal(rd(d, ALARM_STATUS), 1n);
  host.ns = 499n;
  d.poll();
  assert.equal(irq.includes(true), false);
  host.ns = 500n;
  d.poll();
  assert.equal(last(irq), true);
  wr(d, CLEAR_INTERRUPT, 1);

  wr(d, ALARM_HIGH, 1);
  wr(d, ALARM_LOW, 2000);
  wr(d, CLEAR_ALARM, 1);
  assert.equal(rd(d, ALARM_STATUS), 0n);
  host.ns = 5000n;
  d.poll();
  assert.equal(last(irq), false);
});

test('rtc: save()/restore() keeps the guest clock offset, the armed alarm and the pending interrupt', () => {
  const a = rtc(1000n);
  wr(a.d, TIME_HIGH, 3);
  wr(a.d, TIME_LOW, 0);
  wr(a.d, IRQ_ENABLED, 1);
  wr(a.d, ALARM_HIGH, 3);
  wr(a.d, ALARM_LOW, 700);
  const armed = a.d.save();
  a.host.ns = 2000n;
  a.d.poll();
  assert.equal(last(a.irq), true);
  const fired = JSON.parse(JSON.stringify(a.d.save())) as ReturnType<GoldfishRtc['save']>;

  const b = rtc(1500n);
  b.d.restore(armed);
  assert.equal(last(b.irq), false);
  assert.equal(rd(b.d, TIME_LOW), 500n);
  assert.equal(rd(b.d, TIME_HIGH), 3n);
  assert.equal(rd(b.d, ALARM_STATUS), 1n);
  b.host.ns = 1699n;
  b.d.poll();
  assert.equal(b.irq.includes(true), false);
  b.host.ns = 1700n;
  b.d.poll();
  assert.equal(last(b.irq), true);

  const c = rtc(2000n);
  c.d.restore(fired);
  assert.equal(last(c.irq), true); // the pending, enabled interrupt is raised again
  assert.equal(rd(c.d, ALARM_STATUS), 0n);
  assert.throws(() => c.d.restore({ ...fired, version: 2 } as unknown as typeof fired), RangeError);
});

test('rtc: a snapshot taken between the guest’s TIME_HIGH and TIME_LOW writes keeps the latched high word', () => {
  const a = rtc(0n);
  wr(a.d, TIME_HIGH, 7);
  const snap = a.d.save();
  const b = rtc(0n);
  b.d.restore(snap);
  wr(b.d, TIME_LOW, 0x20);
  assert.equal(rd(b.d, TIME_LOW), 0x20n);
  assert.equal(rd(b.d, TIME_HIGH), 7n);
});

// ================================================================== SiFive test finisher

test('sifive_test: 0x5555 powers off, 0x7777 resets, 0x3333 | code << 16 fails with code; anything else is ignored', () => {
  const events: PowerEvent[] = [];
  const t = new SifiveTest(0x100000, (e) => events.push(e));
  wr(t, 0, 0x5555);
  assert.deepEqual(events, [{ kind: 'poweroff' }]);
  wr(t, 0, 0x7777);
  assert.deepEqual(events.slice(1), [{ kind: 'reset' }]);
  wr(t, 0, 0x3333 | (7 << 16));
  wr(t, 0, 0x3333);
  wr(t, 0, 0xffff_3333);
  assert.deepEqual(events.slice(2), [{ kind: 'fail', code: 7 }, { kind: 'fail', code: 0 }, { kind: 'fail', code: 0xffff }]);
  events.length = 0;
  for (const v of [0, 1, 0x1234, 0x5554, 0x5556, 0x7778, 0x3334, 0x1_5555_0000]) wr(t, 0, v);
  wr(t, 4, 0x5555); // only offset 0 is the finisher
  assert.deepEqual(events, []);
  assert.equal(rd(t, 0), 0n);
});

// ================================================================== CLINT

function clint(harts = 2): { c: Clint; ports: FakePort[]; clock: Clock } {
  const ports = Array.from({ length: harts }, () => new FakePort());
  const clock = Clock.create('instructions');
  return { c: new Clint(0x200_0000, ports, clock), ports, clock };
}

test('clint: msip of hart h at 4h raises and lowers that hart’s MSIP', () => {
  const { c, ports } = clint(2);
  wr(c, 4, 1);
  assert.equal(ports[1]!.lines, MIP_MSIP);
  assert.equal(ports[0]!.lines, 0);
  assert.equal(rd(c, 4), 1n);
  assert.equal(rd(c, 0), 0n);
  wr(c, 0, 0xffff_ffff);
  assert.equal(ports[0]!.lines, MIP_MSIP);
  wr(c, 4, 0);
  assert.equal(ports[1]!.lines, 0);
  assert.equal(rd(c, 4), 0n);
  wr(c, 0, 2); // only bit 0 is the msip bit
  assert.equal(ports[0]!.lines, 0);
  assert.equal(rd(c, 0), 0n);
  assert.equal(c.read(0, 8), null);
  assert.equal(c.write(4, 8, 1n), false);
  assert.equal(c.write(2, 4, 1n), false);
  assert.equal(ports[1]!.lines, 0);
});

test('clint: mtimecmp of hart h at 0x4000 + 8h, as a 64-bit register or two 32-bit halves', () => {
  const { c, ports } = clint(2);
  assert.equal(rd(c, 0x4000, 8), 0xffff_ffff_ffff_ffffn);
  wr(c, 0x4008, 0x1122_3344_5566_7788n, 8);
  assert.equal(ports[1]!.cmp, 0x1122_3344_5566_7788n);
  assert.equal(ports[0]!.cmp, 0xffff_ffff_ffff_ffffn);
  assert.equal(rd(c, 0x4008, 8), 0x1122_3344_5566_7788n);
  assert.equal(rd(c, 0x4008, 4), 0x5566_7788n);
  assert.equal(rd(c, 0x400c, 4), 0x1122_3344n);
  wr(c, 0x4000, 0xdead_beef);
  assert.equal(ports[0]!.cmp, 0xffff_ffff_dead_beefn);
  wr(c, 0x4004, 0x12);
  assert.equal(ports[0]!.cmp, 0x0000_0012_dead_beefn);
  assert.equal(rd(c, 0x4004, 4), 0x12n);
  assert.equal(rd(c, 0x4000, 4), 0xdead_beefn);
  assert.equal(ports[1]!.cmp, 0x1122_3344_5566_7788n);
});

test('clint: mtime at 0xbff8 reads the machine clock, and a write sets it', () => {
  const { c, clock } = clint(1);
  assert.equal(rd(c, 0xbff8, 8), 0n);
  clock.retire(1234 * 10); // 10 instructions per tick
  assert.equal(rd(c, 0xbff8, 8), 1234n);
  assert.equal(rd(c, 0xbff8, 4), 1234n);
  assert.equal(rd(c, 0xbffc, 4), 0n);
  wr(c, 0xbff8, 5000n, 8);
  assert.equal(clock.now(), 5000);
  clock.retire(100);
  assert.equal(rd(c, 0xbff8, 8), 5010n);
  wr(c, 0xbffc, 1); // high half
  assert.equal(clock.now(), 0x1_0000_1392);
  assert.equal(rd(c, 0xbff8, 4), 0x1392n);
  assert.equal(rd(c, 0xbffc, 4), 1n);
  wr(c, 0xbff8, 7); // low half
  assert.equal(clock.now(), 0x1_0000_0007);
});

// ================================================================== empty virtio-mmio slot

test('virtio-mmio empty slot: magic "virt", version 2, device id 0', () => {
  const v = new VirtioMmioEmpty(0x1000_1000);
  assert.equal(rd(v, 0x000), 0x7472_6976n);
  assert.equal(rd(v, 0x004), 2n);
  assert.equal(rd(v, 0x008), 0n);
  wr(v, 0x070, 0xff); // Status: ignored
  assert.equal(rd(v, 0x070), 0n);
  assert.equal(rd(v, 0x000), 0x7472_6976n);
});
