// The virt board (src/machine/virt.ts): its device tree decoded back and checked
// against the machine description, the Linux Image header check, and whole
// VirtMachine runs of tiny bare-metal kernels that print on the UART and stop
// the machine through the SiFive test finisher.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { asStrings, asU32s, asU64s, decodeFdt, findNode, getProp, type FdtNode } from '../src/machine/fdt.js';
import {
  describeVirt, MachineError, parseLinuxImage, VirtMachine, virtDeviceTree,
  type MachineDescription, type VirtConfig, type VirtOutcome,
} from '../src/machine/virt.js';
import { buildAsm } from './support.js';

const MiB = 1024 * 1024;

// ------------------------------------------------------------------ device tree

function nodeAt(root: FdtNode, path: string): FdtNode {
  const n = findNode(root, path);
  assert.ok(n, `no node ${path}`);
  return n;
}

function prop(n: FdtNode, name: string) {
  const v = getProp(n, name);
  assert.ok(v, `node ${JSON.stringify(n.name)} has no property ${name}`);
  return v;
}

const u32s = (n: FdtNode, name: string): number[] => asU32s(prop(n, name));
const u64s = (n: FdtNode, name: string): bigint[] => asU64s(prop(n, name));
const strs = (n: FdtNode, name: string): string[] => asStrings(prop(n, name));

const BOOTARGS = 'console=ttyS0 earlycon=sbi rdinit=/init';
const INITRD = { start: 0x9000_0000, end: 0x9012_3456 };

function tree(desc: MachineDescription = describeVirt(512 * MiB, 2), initrd: { start: number; end: number } | null = INITRD): FdtNode {
  return decodeFdt(virtDeviceTree(desc, { bootargs: BOOTARGS, initrd }));
}

/** Every node with a phandle, by phandle; phandles must be unique. */
function phandles(root: FdtNode): Map<number, FdtNode> {
  const m = new Map<number, FdtNode>();
  const walk = (n: FdtNode): void => {
    const v = getProp(n, 'phandle');
    if (v) {
      const [ph] = asU32s(v);
      assert.ok(ph !== undefined && ph !== 0 && ph !== 0xffff_ffff, `node ${n.name}: bad phandle`);
      assert.equal(m.has(ph), false, `phandle ${ph} used twice`);
      m.set(ph, n);
    }
    n.children.forEach(walk);
  };
  walk(root);
  return m;
}

test('device tree: root cells, /memory@80000000 with the RAM size', () => {
  const root = tree();
  assert.deepEqual(u32s(root, '#address-cells'), [2]);
  assert.deepEqual(u32s(root, '#size-cells'), [2]);
  assert.deepEqual(strs(root, 'compatible'), ['riscv-virtio']);
  const mem = nodeAt(root, '/memory@80000000');
  assert.deepEqual(strs(mem, 'device_type'), ['memory']);
  assert.deepEqual(u64s(mem, 'reg'), [0x8000_0000n, 0x2000_0000n]);
  assert.deepEqual(u64s(nodeAt(tree(describeVirt(16 * MiB, 1)), '/memory@80000000'), 'reg'), [0x8000_0000n, 0x100_0000n]);
});

test('device tree: one cpu node per hart with its ISA, MMU type and interrupt controller', () => {
  const root = tree();
  const cpus = nodeAt(root, '/cpus');
  assert.deepEqual(u32s(cpus, '#address-cells'), [1]);
  assert.deepEqual(u32s(cpus, '#size-cells'), [0]);
  assert.deepEqual(u32s(cpus, 'timebase-frequency'), [10_000_000]);
  assert.deepEqual(cpus.children.filter((c) => c.name.startsWith('cpu@')).map((c) => c.name), ['cpu@0', 'cpu@1']);
  const extensions = ['i', 'm', 'a', 'f', 'd', 'c', 'zicntr', 'zicsr', 'zifencei', 'zihintpause', 'sstc'];
  for (const h of [0, 1]) {
    const cpu = nodeAt(root, `/cpus/cpu@${h}`);
    assert.deepEqual(strs(cpu, 'device_type'), ['cpu']);
    assert.deepEqual(u32s(cpu, 'reg'), [h]);
    assert.deepEqual(strs(cpu, 'status'), ['okay']);
    assert.deepEqual(strs(cpu, 'compatible'), ['riscv']);
    assert.deepEqual(strs(cpu, 'riscv,isa'), ['rv64imafdc_zicntr_zicsr_zifencei_zihintpause_sstc']);
    assert.deepEqual(strs(cpu, 'riscv,isa-base'), ['rv64i']);
    assert.deepEqual(strs(cpu, 'riscv,isa-extensions'), extensions);
    assert.deepEqual(strs(cpu, 'mmu-type'), ['riscv,sv48']);
    // The ISA string and the extension list name the same extensions.
    const [isa] = strs(cpu, 'riscv,isa');
    const [single, ...multi] = isa!.replace(/^rv64/, '').split('_');
    assert.deepEqual([...single!.split(''), ...multi], strs(cpu, 'riscv,isa-extensions'));
    const intc = nodeAt(root, `/cpus/cpu@${h}/interrupt-controller`);
    assert.deepEqual(strs(intc, 'compatible'), ['riscv,cpu-intc']);
    assert.deepEqual(u32s(intc, '#interrupt-cells'), [1]);
    assert.deepEqual(u32s(intc, '#address-cells'), [0]);
    assert.equal(prop(intc, 'interrupt-controller').kind, 'bytes');
    assert.equal(u32s(intc, 'phandle').length, 1);
  }
  // cpu-map: core h refers to cpu h.
  const ph = phandles(root);
  for (const h of [0, 1]) {
    const core = nodeAt(root, `/cpus/cpu-map/cluster0/core${h}`);
    assert.equal(ph.get(u32s(core, 'cpu')[0]!), nodeAt(root, `/cpus/cpu@${h}`));
  }
});

test('device tree: PLIC and CLINT route to each hart’s interrupt controller (M and S)', () => {
  const root = tree();
  const intc = [0, 1].map((h) => u32s(nodeAt(root, `/cpus/cpu@${h}/interrupt-controller`), 'phandle')[0]!);
  const plic = nodeAt(root, '/soc/plic@c000000');
  assert.deepEqual(u32s(plic, 'interrupts-extended'), [intc[0], 11, intc[0], 9, intc[1], 11, intc[1], 9]);
  assert.deepEqual(u32s(plic, 'riscv,ndev'), [95]);
  assert.deepEqual(u64s(plic, 'reg'), [0xc00_0000n, 0x60_0000n]);
  assert.deepEqual(u32s(plic, '#interrupt-cells'), [1]);
  assert.equal(prop(plic, 'interrupt-controller').kind, 'bytes');
  assert.ok(strs(plic, 'compatible').includes('riscv,plic0'));
  const clint = nodeAt(root, '/soc/clint@2000000');
  assert.deepEqual(u32s(clint, 'interrupts-extended'), [intc[0], 3, intc[0], 7, intc[1], 3, intc[1], 7]);
  assert.deepEqual(u64s(clint, 'reg'), [0x200_0000n, 0x1_0000n]);

  // One hart: the PLIC has exactly its two contexts.
  const one = tree(describeVirt(64 * MiB, 1));
  const i0 = u32s(nodeAt(one, '/cpus/cpu@0/interrupt-controller'), 'phandle')[0]!;
  assert.deepEqual(u32s(nodeAt(one, '/soc/plic@c000000'), 'interrupts-extended'), [i0, 11, i0, 9]);
});

test('device tree: UART, RTC and eight virtio-mmio slots with their PLIC interrupts', () => {
  const root = tree();
  const plicPh = u32s(nodeAt(root, '/soc/plic@c000000'), 'phandle')[0];
  const uart = nodeAt(root, '/soc/serial@10000000');
  assert.deepEqual(u32s(uart, 'interrupts'), [10]);
  assert.deepEqual(u32s(uart, 'interrupt-parent'), [plicPh]);
  assert.deepEqual(strs(uart, 'compatible'), ['ns16550a']);
  assert.deepEqual(u64s(uart, 'reg'), [0x1000_0000n, 0x100n]);
  assert.deepEqual(u32s(uart, 'clock-frequency'), [3_686_400]);
  const rtc = nodeAt(root, '/soc/rtc@101000');
  assert.deepEqual(u32s(rtc, 'interrupts'), [11]);
  assert.deepEqual(strs(rtc, 'compatible'), ['google,goldfish-rtc']);
  const virtio = nodeAt(root, '/soc').children.filter((c) => c.name.startsWith('virtio_mmio@'));
  assert.deepEqual(virtio.map((v) => v.name), [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `virtio_mmio@${(0x1000_0000 + n * 0x1000).toString(16)}`));
  virtio.forEach((v, i) => {
    assert.deepEqual(u32s(v, 'interrupts'), [1 + i]);
    assert.deepEqual(u32s(v, 'interrupt-parent'), [plicPh]);
    assert.deepEqual(u64s(v, 'reg'), [BigInt(0x1000_1000 + i * 0x1000), 0x1000n]);
    assert.deepEqual(strs(v, 'compatible'), ['virtio,mmio']);
  });
});

test('device tree: /chosen has bootargs, stdout-path to the UART and the initrd range', () => {
  const root = tree();
  const chosen = nodeAt(root, '/chosen');
  assert.deepEqual(strs(chosen, 'bootargs'), [BOOTARGS]);
  const [stdout] = strs(chosen, 'stdout-path');
  assert.equal(stdout, '/soc/serial@10000000');
  assert.ok(findNode(root, stdout!));
  assert.deepEqual(u64s(chosen, 'linux,initrd-start'), [0x9000_0000n]);
  assert.deepEqual(u64s(chosen, 'linux,initrd-end'), [0x9012_3456n]);
  const bare = nodeAt(tree(undefined, null), '/chosen');
  assert.equal(getProp(bare, 'linux,initrd-start'), undefined);
  assert.equal(getProp(bare, 'linux,initrd-end'), undefined);
  assert.deepEqual(strs(bare, 'bootargs'), [BOOTARGS]);
});

test('device tree: syscon poweroff (0x5555) and reboot (0x7777) point at the SiFive test device', () => {
  const root = tree();
  const testDev = nodeAt(root, '/soc/test@100000');
  assert.ok(strs(testDev, 'compatible').includes('syscon'));
  assert.ok(strs(testDev, 'compatible').includes('sifive,test0'));
  const ph = phandles(root);
  for (const [path, compat, value] of [['/poweroff', 'syscon-poweroff', 0x5555], ['/reboot', 'syscon-reboot', 0x7777]] as const) {
    const n = nodeAt(root, path);
    assert.deepEqual(strs(n, 'compatible'), [compat]);
    assert.deepEqual(u32s(n, 'value'), [value]);
    assert.deepEqual(u32s(n, 'offset'), [0]);
    assert.equal(ph.get(u32s(n, 'regmap')[0]!), testDev);
  }
});

test('device tree: every device of describeVirt() is under /soc at its address, with its size and interrupt', () => {
  for (const cpus of [1, 2, 4]) {
    const desc = describeVirt(512 * MiB, cpus);
    const root = tree(desc);
    const soc = nodeAt(root, '/soc');
    assert.deepEqual(u32s(soc, '#address-cells'), [2]);
    assert.deepEqual(u32s(soc, '#size-cells'), [2]);
    assert.equal(soc.children.length, desc.devices.length);
    const ph = phandles(root);
    const plic = soc.children.find((c) => c.name.startsWith('plic@'));
    for (const d of desc.devices) {
      const matches = soc.children.filter((c) => c.name.endsWith(`@${d.base.toString(16)}`));
      assert.equal(matches.length, 1, `${d.kind} at 0x${d.base.toString(16)}`);
      const n = matches[0]!;
      assert.deepEqual(u64s(n, 'reg'), [BigInt(d.base), BigInt(d.size)], n.name);
      if ('irq' in d) {
        assert.deepEqual(u32s(n, 'interrupts'), [d.irq], n.name);
        assert.equal(ph.get(u32s(n, 'interrupt-parent')[0]!), plic, n.name);
      }
    }
    // Windows do not overlap.
    const spans = desc.devices.map((d) => [d.base, d.base + d.size] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1], 'device windows overlap');
    assert.deepEqual(u32s(nodeAt(root, '/soc/plic@c000000'), 'interrupts-extended').length, 4 * cpus);
  }
});

// ------------------------------------------------------------------ Linux Image header

interface ImageOpts {
  length?: number;
  magic?: boolean;
  magic2?: boolean;
  textOffset?: bigint;
  imageSize?: bigint;
  pe?: { rawPtr: number; rawSize: number };
}

/** A RISC-V Linux Image header (Documentation/arch/riscv/boot-image-header.rst), optionally a PE stub. */
function image(o: ImageOpts = {}): Uint8Array {
  const img = new Uint8Array(o.length ?? 0x1000);
  const dv = new DataView(img.buffer);
  dv.setBigUint64(8, o.textOffset ?? 0x20_0000n, true);
  dv.setBigUint64(16, o.imageSize ?? 0x100_0000n, true);
  dv.setBigUint64(24, 0n, true); // flags
  dv.setUint32(32, 2, true); // version 0.2
  if (o.magic ?? true) img.set(new TextEncoder().encode('RISCV\0\0\0'), 48);
  if (o.magic2 ?? true) dv.setUint32(56, 0x0543_5352, true); // "RSC\x05"
  if (o.pe) {
    img[0] = 0x4d; // "MZ"
    img[1] = 0x5a;
    const pe = 0x40;
    dv.setUint32(0x3c, pe, true);
    dv.setUint32(pe, 0x0000_4550, true); // "PE\0\0"
    dv.setUint16(pe + 4, 0x5064, true); // machine: RISC-V 64
    dv.setUint16(pe + 6, 1, true); // one section
    dv.setUint16(pe + 20, 0, true); // no optional header
    const sh = pe + 24;
    img.set(new TextEncoder().encode('.text'), sh);
    dv.setUint32(sh + 16, o.pe.rawSize, true);
    dv.setUint32(sh + 20, o.pe.rawPtr, true);
  }
  return img;
}

function rejects(img: Uint8Array, re: RegExp): void {
  assert.throws(() => parseLinuxImage(img), (e: unknown) => {
    assert.ok(e instanceof MachineError, `expected MachineError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test('parseLinuxImage accepts a header with the RISCV magic (either or both) and reads text offset and size', () => {
  assert.deepEqual(parseLinuxImage(image()), { textOffset: 0x20_0000, imageSize: 0x100_0000 });
  assert.deepEqual(parseLinuxImage(image({ magic: false })), { textOffset: 0x20_0000, imageSize: 0x100_0000 });
  assert.deepEqual(parseLinuxImage(image({ magic2: false, textOffset: 0n })), { textOffset: 0, imageSize: 0x100_0000 });
  assert.deepEqual(parseLinuxImage(image({ pe: { rawPtr: 0x200, rawSize: 0xe00 } })), { textOffset: 0x20_0000, imageSize: 0x100_0000 });
});

test('parseLinuxImage rejects short, non-Image, ELF and truncated-PE inputs with MachineError', () => {
  rejects(image().subarray(0, 63), /too short/);
  rejects(new Uint8Array(0), /too short/);
  rejects(image({ magic: false, magic2: false }), /not a RISC-V Linux Image/);
  const elf = new Uint8Array(0x1000);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  rejects(elf, /ELF/);
  rejects(image({ pe: { rawPtr: 0x200, rawSize: 0xe01 } }), /truncated/);
  rejects(image({ pe: { rawPtr: 0x200, rawSize: 0x1000 }, length: 0x400 }), /truncated/);
  rejects(image({ textOffset: 0x20_0800n }), /text offset/);
});

// ------------------------------------------------------------------ VirtMachine runs

/** A bare-metal kernel at 0x80000000: hart 0 writes `text` to the UART byte by byte, then `finisher` to sifive_test. */
function kernel(name: string, text: string, finisher: number): Uint8Array {
  const bytes = [...text].map((c) => `  li t1, ${c.charCodeAt(0)}\n  sb t1, 0(t0)`).join('\n');
  const src = `  .option nopic
  .section .text.init
  .globl _start
_start:
  csrr t2, mhartid
  bnez t2, park
  li t0, 0x10000000
${bytes}
  li t0, 0x100000
  li t1, ${finisher}
  sw t1, 0(t0)
1: j 1b
park:
  wfi
  j park
`;
  return readFileSync(buildAsm(name, src));
}

async function runMachine(k: Uint8Array, cpus = 1): Promise<{ outcome: VirtOutcome; output: string; m: VirtMachine }> {
  const chunks: Uint8Array[] = [];
  const cfg: VirtConfig = {
    memoryBytes: 16 * MiB, cpus, clock: 'instructions', boot: { kind: 'none' },
    kernel: k, initrd: null, append: '', output: (b) => chunks.push(Uint8Array.from(b)), name: 'test', virtio: [],
  };
  const m = new VirtMachine(cfg);
  const timer = setTimeout(() => m.stop({ kind: 'error', reason: 'test timeout' }), 8_000);
  try {
    const outcome = await m.run();
    return { outcome, output: Buffer.concat(chunks).toString('latin1'), m };
  } finally {
    clearTimeout(timer);
  }
}

test('VirtMachine: a bare-metal kernel prints "hi\\n" on the UART and powers off (0x5555)', async () => {
  const { outcome, output, m } = await runMachine(kernel('virt-poweroff', 'hi\n', 0x5555));
  assert.deepEqual(outcome, { kind: 'poweroff' });
  assert.equal(output, 'hi\n');
  // The same description built the bus: every device answers at its window.
  for (const d of m.desc.devices) {
    const dev = m.bus.find(d.base);
    assert.ok(dev, `no device at 0x${d.base.toString(16)}`);
    assert.equal(dev.base, d.base);
    assert.equal(dev.size, d.size);
  }
});

test('VirtMachine: 0x3333 | 7 << 16 ends the run as a failure with code 7', async () => {
  const { outcome, output } = await runMachine(kernel('virt-fail', 'hi\n', 0x3333 | (7 << 16)));
  assert.deepEqual(outcome, { kind: 'fail', code: 7 });
  assert.equal(output, 'hi\n');
});

test('VirtMachine: 0x7777 ends the run as a reset', async () => {
  const { outcome, output } = await runMachine(kernel('virt-reset', 'ok', 0x7777));
  assert.deepEqual(outcome, { kind: 'reset' });
  assert.equal(output, 'ok');
});

test('VirtMachine: with two harts, hart 1 parks in WFI while hart 0 prints and powers off', async () => {
  const { outcome, output } = await runMachine(kernel('virt-smp', 'hi\n', 0x5555), 2);
  assert.deepEqual(outcome, { kind: 'poweroff' });
  assert.equal(output, 'hi\n');
});
