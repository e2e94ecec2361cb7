// Flattened devicetree writer and reader (src/machine/fdt.ts): byte-exact
// output, round trips, validation, a fuzzed decoder, and agreement with dtc
// (Debian package device-tree-compiler) when it is installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { prng } from './support.js';
import {
  FDT_BEGIN_NODE, FDT_END, FDT_END_NODE, FDT_MAX_DEPTH, FDT_NOP, FDT_PROP, FdtError, PhandleAllocator,
  asStrings, asU32s, asU64s, bytes, decodeFdt, decodeFdtBlob, empty, encodeFdt, fdtValueBytes, findNode, getProp,
  node, str, u32, u64,
  type FdtNode, type FdtValue,
} from '../src/machine/fdt.js';

// ------------------------------------------------------------------ helpers

/** The tree as decodeFdt returns it: every value as its bytes. */
function asDecoded(n: FdtNode): FdtNode {
  return {
    name: n.name,
    props: n.props.map(([k, v]): [string, FdtValue] => [k, { kind: 'bytes', data: Uint8Array.from(fdtValueBytes(v)) }]),
    children: n.children.map(asDecoded),
  };
}

function hex(s: string): Uint8Array {
  const clean = s.replace(/#.*$/gm, '').replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Asserts that f throws an FdtError with a one-line message matching re. */
function throwsFdt(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof FdtError, `expected FdtError, got ${String(e)}`);
    assert.match(e.message, re);
    assert.ok(!e.message.includes('\n'), 'one-line message');
    return true;
  });
}

/** A blob around a hand-made structure block (u32 tokens or raw bytes) and strings block. */
function rawBlob(structParts: (number | Uint8Array)[], strings: Uint8Array = new Uint8Array(0)): Uint8Array {
  const structBytes: number[] = [];
  for (const part of structParts) {
    if (typeof part === 'number') structBytes.push(part >>> 24, (part >>> 16) & 0xff, (part >>> 8) & 0xff, part & 0xff);
    else structBytes.push(...part);
  }
  const offStruct = 56;
  const offStrings = offStruct + structBytes.length;
  const total = offStrings + strings.length;
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  [0xd00dfeed, total, offStruct, offStrings, 40, 17, 16, 0, strings.length, structBytes.length].forEach((v, i) => dv.setUint32(4 * i, v));
  out.set(structBytes, offStruct);
  out.set(strings, offStrings);
  return out;
}
const cname = (s: string): Uint8Array => {
  const b = new Uint8Array((s.length + 4) & ~3);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
};

// ------------------------------------------------------------------ trees

/** A tree shaped like QEMU's riscv virt machine with two harts. */
function virtTree(): { root: FdtNode; phandles: PhandleAllocator } {
  const ph = new PhandleAllocator();
  const cpu = (i: number): FdtNode => ph.attach(`cpu${i}`, node(`cpu@${i}`, {
    device_type: str('cpu'),
    reg: u32(i),
    status: str('okay'),
    compatible: str('riscv'),
    'riscv,isa': str('rv64imafdc_zicsr_zifencei'),
    'mmu-type': str('riscv,sv39'),
  }, [
    ph.attach(`cpu${i}-intc`, node('interrupt-controller', {
      '#address-cells': u32(0),
      '#interrupt-cells': u32(1),
      'interrupt-controller': empty(),
      compatible: str('riscv,cpu-intc'),
    })),
  ]));
  const intc = (i: number): number => ph.get(`cpu${i}-intc`);
  const virtio = Array.from({ length: 8 }, (_, i) => {
    const base = 0x1000_1000n + BigInt(i) * 0x1000n;
    return node(`virtio_mmio@${base.toString(16)}`, {
      interrupts: u32(1 + i),
      'interrupt-parent': u32(ph.get('plic')),
      reg: u64(base, 0x1000n),
      compatible: str('virtio,mmio'),
    });
  });
  const root = node('', {
    '#address-cells': u32(2),
    '#size-cells': u32(2),
    compatible: str('riscv-virtio'),
    model: str('riscv-virtio,qemu'),
  }, [
    node('chosen', {
      bootargs: str('console=ttyS0 root=/dev/vda rw'),
      'linux,initrd-start': u64(0x8800_0000n),
      'linux,initrd-end': u64(0x8840_0000n),
      'stdout-path': str('/soc/serial@10000000'),
      'rng-seed': bytes(Uint8Array.from({ length: 13 }, (_, i) => i * 17)),
    }),
    node('memory@80000000', { device_type: str('memory'), reg: u64(0x8000_0000n, 0x800_0000n) }),
    node('cpus', { '#address-cells': u32(1), '#size-cells': u32(0), 'timebase-frequency': u32(10_000_000) }, [
      cpu(0),
      cpu(1),
      node('cpu-map', {}, [
        node('cluster0', {}, [node('core0', { cpu: u32(ph.get('cpu0')) }), node('core1', { cpu: u32(ph.get('cpu1')) })]),
      ]),
    ]),
    node('soc', { '#address-cells': u32(2), '#size-cells': u32(2), compatible: str('simple-bus'), ranges: empty() }, [
      ...virtio,
      node('serial@10000000', {
        interrupts: u32(10),
        'interrupt-parent': u32(ph.get('plic')),
        'clock-frequency': u32(0x384000),
        reg: u64(0x1000_0000n, 0x100n),
        compatible: str('ns16550a'),
      }),
      ph.attach('plic', node('plic@c000000', {
        'riscv,ndev': u32(0x5f),
        reg: u64(0xc00_0000n, 0x60_0000n),
        'interrupts-extended': u32(intc(0), 11, intc(0), 9, intc(1), 11, intc(1), 9),
        'interrupt-controller': empty(),
        compatible: str('sifive,plic-1.0.0', 'riscv,plic0'),
        '#address-cells': u32(0),
        '#interrupt-cells': u32(1),
      })),
      node('clint@2000000', {
        'interrupts-extended': u32(intc(0), 3, intc(0), 7, intc(1), 3, intc(1), 7),
        reg: u64(0x200_0000n, 0x1_0000n),
        compatible: str('sifive,clint0', 'riscv,clint0'),
      }),
    ]),
  ]);
  return { root, phandles: ph };
}

/** A tiny tree whose blob is written out by hand below. */
function tinyTree(): FdtNode {
  return node('', [['#address-cells', u32(2)], ['model', str('ab')]], [
    node('intc@1', [['interrupt-controller', empty()], ['reg', u64(0x1_0000_0002n)], ['model', str('xyz')]]),
  ]);
}
const TINY_OPTS = { bootCpuId: 1, reserved: [{ address: 0x8020_0000n, size: 0x1000n }] };
const TINY_BLOB = hex(`
  # header (5.2)
  d00dfeed 000000e6 00000048 000000b8   # magic, totalsize 230, off_dt_struct 72, off_dt_strings 184
  00000028 00000011 00000010 00000001   # off_mem_rsvmap 40, version 17, last_comp_version 16, boot_cpuid_phys 1
  0000002e 00000070                     # size_dt_strings 46, size_dt_struct 112
  # memory reservation block (5.3) at 40
  00000000 80200000 00000000 00001000   # 0x80200000 + 0x1000
  00000000 00000000 00000000 00000000   # terminator
  # structure block (5.4) at 72
  00000001 00000000                     # FDT_BEGIN_NODE ""
  00000003 00000004 00000000 00000002   # FDT_PROP len 4 "#address-cells" <2>
  00000003 00000003 0000000f 61620000   # FDT_PROP len 3 "model" "ab\\0" + pad
  00000001 696e7463 40310000            # FDT_BEGIN_NODE "intc@1\\0" + pad
  00000003 00000000 00000015            # FDT_PROP len 0 "interrupt-controller"
  00000003 00000008 0000002a 00000001 00000002  # FDT_PROP len 8 "reg" u64 0x100000002
  00000003 00000004 0000000f 78797a00   # FDT_PROP len 4 "model" (name shared) "xyz\\0"
  00000002 00000002 00000009            # FDT_END_NODE x2, FDT_END
  # strings block (5.5) at 184
  23616464726573732d63656c6c7300        # "#address-cells" at 0
  6d6f64656c00                          # "model" at 15
  696e746572727570742d636f6e74726f6c6c657200  # "interrupt-controller" at 21
  72656700                              # "reg" at 42
`);

// ------------------------------------------------------------------ encoding

test('a tiny tree encodes to the hand-computed blob, byte for byte', () => {
  assert.equal(TINY_BLOB.length, 230);
  assert.deepEqual(encodeFdt(tinyTree(), TINY_OPTS), TINY_BLOB);
});

test('the smallest tree: an empty root', () => {
  assert.deepEqual(encodeFdt(node('')), hex(`
    d00dfeed 00000048 00000038 00000048 00000028 00000011 00000010 00000000 00000000 00000010
    00000000 00000000 00000000 00000000
    00000001 00000000 00000002 00000009
  `));
});

test('the tiny blob decodes to the tree, header facts and reservations', () => {
  const d = decodeFdtBlob(TINY_BLOB);
  assert.deepEqual(d.root, asDecoded(tinyTree()));
  assert.equal(d.bootCpuId, 1);
  assert.equal(d.version, 17);
  assert.deepEqual(d.reserved, TINY_OPTS.reserved);
});

test('a QEMU-virt-shaped tree round-trips: encode, decode, encode again', () => {
  const { root, phandles } = virtTree();
  const reserved = [{ address: 0x8000_0000n, size: 0x20_0000n }, { address: 0x8800_0000n, size: 0x40_0000n }];
  const blob = encodeFdt(root, { bootCpuId: 0, reserved, phandles });
  const d = decodeFdtBlob(blob);
  assert.deepEqual(d.root, asDecoded(root));
  assert.deepEqual(d.reserved, reserved);
  assert.equal(d.bootCpuId, 0);
  assert.deepEqual(encodeFdt(d.root, { reserved }), blob);
  // Every property name is stored once.
  const dv = new DataView(blob.buffer);
  const strings = new TextDecoder().decode(blob.subarray(dv.getUint32(12), dv.getUint32(12) + dv.getUint32(32)));
  const names = strings.split('\0').slice(0, -1);
  assert.equal(new Set(names).size, names.length);
  assert.ok(names.includes('interrupts-extended') && names.includes('linux,initrd-start'));
});

test('readers: findNode, getProp, asU32s, asU64s, asStrings on a decoded tree', () => {
  const { root, phandles } = virtTree();
  const d = decodeFdt(encodeFdt(root, { phandles }));
  const chosen = findNode(d, '/chosen');
  assert.ok(chosen);
  assert.deepEqual(asU64s(getProp(chosen, 'linux,initrd-start') ?? empty()), [0x8800_0000n]);
  assert.deepEqual(asU64s(getProp(chosen, 'linux,initrd-end') ?? empty()), [0x8840_0000n]);
  assert.deepEqual(asStrings(getProp(chosen, 'stdout-path') ?? empty()), ['/soc/serial@10000000']);
  const plic = findNode(d, '/soc/plic'); // unit address omitted: unambiguous
  assert.ok(plic);
  assert.deepEqual(asStrings(getProp(plic, 'compatible') ?? empty()), ['sifive,plic-1.0.0', 'riscv,plic0']);
  const plicPh = asU32s(getProp(plic, 'phandle') ?? empty());
  assert.deepEqual(plicPh, [phandles.get('plic')]);
  const serial = findNode(d, '/soc/serial@10000000');
  assert.ok(serial);
  assert.deepEqual(asU32s(getProp(serial, 'interrupt-parent') ?? empty()), plicPh);
  const intc0 = findNode(d, '/cpus/cpu@0/interrupt-controller');
  assert.ok(intc0);
  const ie = asU32s(getProp(plic, 'interrupts-extended') ?? empty());
  assert.deepEqual(asU32s(getProp(intc0, 'phandle') ?? empty()), [ie[0]]);
  assert.equal(findNode(d, '/soc/virtio_mmio'), undefined, 'ambiguous without unit address');
  assert.equal(findNode(d, '/nope'), undefined);
  assert.equal(findNode(d, '/'), d);
  throwsFdt(() => asU32s(bytes(new Uint8Array(3))), /not a list of u32/);
  throwsFdt(() => asU64s(u32(1)), /not a list of u64/);
  throwsFdt(() => asStrings(u32(0x41424344)), /NUL-terminated/);
  throwsFdt(() => asStrings(bytes(Uint8Array.of(0xff, 0))), /UTF-8/);
  assert.deepEqual(asStrings(str('a', '', 'é')), ['a', '', 'é']);
});

test('decoded values are copies, not views of the blob', () => {
  const blob = encodeFdt(tinyTree());
  const d = decodeFdt(blob);
  blob.fill(0xaa);
  assert.deepEqual(d, asDecoded(tinyTree()));
});

test('phandles: labels may be used before they are attached; all must be attached', () => {
  const ph = new PhandleAllocator();
  const user = node('dev', { 'interrupt-parent': u32(ph.get('pic')) });
  const pic = ph.attach('pic', node('pic', { 'interrupt-controller': empty() }));
  assert.deepEqual(getProp(pic, 'phandle'), u32(1));
  assert.equal(ph.get('pic'), 1);
  assert.equal(ph.get('other'), 2);
  throwsFdt(() => encodeFdt(node('', {}, [user, pic]), { phandles: ph }), /phandle 2 \(label "other"\) is not attached/);
  ph.attach('other', user);
  encodeFdt(node('', {}, [user, pic]), { phandles: ph });
  throwsFdt(() => ph.attach('again', pic), /already has a phandle/);
});

test('encodeFdt rejects invalid trees with one-line FdtErrors', () => {
  const withChild = (name: string): FdtNode => node('', {}, [node(name)]);
  const withProp = (name: string, v: FdtValue = empty()): FdtNode => node('', [[name, v]]);
  throwsFdt(() => encodeFdt(node('x')), /root node name must be ""/);
  throwsFdt(() => encodeFdt(withChild('')), /node-name of 1 to 31/);
  throwsFdt(() => encodeFdt(withChild('a'.repeat(32))), /node-name of 1 to 31/);
  encodeFdt(withChild(`${'a'.repeat(31)}@${'f'.repeat(40)}`)); // the 31 exclude the unit address
  throwsFdt(() => encodeFdt(withChild('@1')), /node-name of 1 to 31/);
  throwsFdt(() => encodeFdt(withChild('1cpu')), /start with a letter/);
  throwsFdt(() => encodeFdt(withChild('cpu#0')), /start with a letter and use only/);
  throwsFdt(() => encodeFdt(withChild('cpu@')), /unit address that is empty/);
  throwsFdt(() => encodeFdt(withChild('cpu@1@2')), /unit address/);
  throwsFdt(() => encodeFdt(withChild('cpu@1/2')), /unit address/);
  throwsFdt(() => encodeFdt(withChild('cpu\n')), /start with a letter/);
  throwsFdt(() => encodeFdt(withProp('')), /property name "" must be 1 to 31/);
  throwsFdt(() => encodeFdt(withProp('a'.repeat(32))), /must be 1 to 31/);
  throwsFdt(() => encodeFdt(withProp('a@b')), /property name "a@b"/);
  throwsFdt(() => encodeFdt(withProp('é')), /property name/);
  encodeFdt(withProp('ibm,ppc-interrupt-server#s?+._'));
  throwsFdt(() => encodeFdt(node('', [['a', empty()], ['a', u32(1)]])), /\/: duplicate property "a"/);
  throwsFdt(() => encodeFdt(node('', {}, [node('soc', {}, [node('x@1'), node('x@1')])])), /\/soc: duplicate child node "x@1"/);
  throwsFdt(() => encodeFdt(node('', { chosen: empty() }, [node('chosen')])), /has the name of a property/);
  for (const bad of [-1, 2 ** 32, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    throwsFdt(() => encodeFdt(withProp('reg', u32(1, bad))), /property "reg": u32 value .* out of range/);
  }
  encodeFdt(withProp('reg', u32(0, 0xffffffff)));
  throwsFdt(() => encodeFdt(withProp('reg', u64(-1n))), /u64 value -1 out of range/);
  throwsFdt(() => encodeFdt(withProp('reg', u64(1n << 64n))), /u64 value .* out of range/);
  encodeFdt(withProp('reg', u64(0n, (1n << 64n) - 1n)));
  throwsFdt(() => encodeFdt(withProp('model', str())), /string list has no strings/);
  throwsFdt(() => encodeFdt(withProp('model', str('a\0b'))), /contains NUL/);
  throwsFdt(() => encodeFdt(withProp('phandle', u32(0))), /phandle must be one u32 cell/);
  throwsFdt(() => encodeFdt(withProp('phandle', u32(0xffffffff))), /phandle must be one u32 cell/);
  throwsFdt(() => encodeFdt(withProp('phandle', u32(1, 2))), /phandle must be one u32 cell/);
  throwsFdt(() => encodeFdt(node('', {}, [node('a', { phandle: u32(5) }), node('b', { phandle: u32(5) })])), /\/b: phandle 5 already used by \/a/);
  encodeFdt(node('', {}, [node('a', { phandle: u32(5), 'linux,phandle': u32(5) })])); // both spellings on one node
  throwsFdt(() => encodeFdt(node(''), { bootCpuId: -1 }), /bootCpuId -1 out of range/);
  throwsFdt(() => encodeFdt(node(''), { reserved: [{ address: 0x1000n, size: 0n }] }), /empty or out of range/);
  throwsFdt(() => encodeFdt(node(''), { reserved: [{ address: (1n << 64n) - 1n, size: 2n }] }), /out of range/);
  throwsFdt(() => encodeFdt(node(''), { reserved: [{ address: 0x2000n, size: 0x1000n }, { address: 0x1000n, size: 0x1001n }] }), /overlap/);
  encodeFdt(node(''), { reserved: [{ address: 0x2000n, size: 0x1000n }, { address: 0x1000n, size: 0x1000n }] });
});

test(`trees up to ${FDT_MAX_DEPTH} levels encode and decode; deeper ones are refused both ways`, () => {
  const chain = (levels: number): FdtNode => {
    let n = node('n');
    for (let i = 2; i < levels; i++) n = node('n', {}, [n]);
    return node('', {}, [n]);
  };
  const deep = chain(FDT_MAX_DEPTH);
  assert.deepEqual(decodeFdt(encodeFdt(deep)), asDecoded(deep));
  throwsFdt(() => encodeFdt(chain(FDT_MAX_DEPTH + 1)), /deeper than 64/);
  const loop = node('loop');
  loop.children.push(loop);
  throwsFdt(() => encodeFdt(node('', {}, [loop])), /deeper than 64/);
  const parts: (number | Uint8Array)[] = [FDT_BEGIN_NODE, 0];
  for (let i = 1; i < FDT_MAX_DEPTH + 1; i++) parts.push(FDT_BEGIN_NODE, cname('n'));
  for (let i = 0; i < FDT_MAX_DEPTH + 1; i++) parts.push(FDT_END_NODE);
  parts.push(FDT_END);
  throwsFdt(() => decodeFdt(rawBlob(parts)), /nested deeper than 64/);
});

// ------------------------------------------------------------------ decoding

test('decodeFdt accepts NOPs, later versions and blobs with trailing memory', () => {
  const strings = cname('a');
  const blob = rawBlob([FDT_NOP, FDT_BEGIN_NODE, 0, FDT_NOP, FDT_PROP, 0, 0, FDT_NOP, FDT_BEGIN_NODE, cname('c'), FDT_NOP, FDT_END_NODE, FDT_NOP, FDT_END_NODE, FDT_NOP, FDT_END], strings);
  assert.deepEqual(decodeFdt(blob), asDecoded(node('', { a: empty() }, [node('c')])));
  const v18 = blob.slice();
  new DataView(v18.buffer).setUint32(20, 18);
  decodeFdt(v18);
  // Padding is skipped unread: QEMU leaves old bytes there.
  const dirty = encodeFdt(tinyTree());
  new DataView(dirty.buffer).setUint32(60, 0x00656d71);
  assert.deepEqual(decodeFdt(dirty), asDecoded(tinyTree()));
  const bigger = new Uint8Array(blob.length + 100);
  bigger.set(blob);
  decodeFdt(bigger);
  // Names as real trees spell them (longer than 31, other printable characters) are accepted.
  const long = `${'x'.repeat(40)}*`;
  assert.equal(decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0, 0, FDT_BEGIN_NODE, cname('$weird@1'), FDT_END_NODE, FDT_END_NODE, FDT_END], cname(long))).props[0]?.[0], long);
});

test('decodeFdt rejects malformed blobs with FdtErrors', () => {
  const good = encodeFdt(tinyTree(), TINY_OPTS);
  const patch = (off: number, v: number): Uint8Array => {
    const b = good.slice();
    new DataView(b.buffer).setUint32(off, v);
    return b;
  };
  throwsFdt(() => decodeFdt(good.subarray(0, 39)), /too short/);
  throwsFdt(() => decodeFdt(patch(0, 0xfeedd00d)), /bad magic/);
  throwsFdt(() => decodeFdt(good.subarray(0, good.length - 1)), /totalsize 230 outside 40\.\.229/);
  throwsFdt(() => decodeFdt(patch(20, 16)), /unsupported DTB version 16/);
  throwsFdt(() => decodeFdt(patch(24, 18)), /unsupported DTB version 17 \(last compatible 18\)/);
  throwsFdt(() => decodeFdt(patch(16, 44)), /bad off_mem_rsvmap/);
  throwsFdt(() => decodeFdt(patch(8, 74)), /not 4-byte aligned/);
  throwsFdt(() => decodeFdt(patch(36, 114)), /not 4-byte aligned/);
  throwsFdt(() => decodeFdt(patch(36, 116)), /overlaps strings block/);
  throwsFdt(() => decodeFdt(patch(32, 47)), /strings block 184\.\.231 outside 40\.\.230/);
  throwsFdt(() => decodeFdt(patch(8, 56)), /overlaps structure block/);
  throwsFdt(() => decodeFdt(patch(52, 0)), /empty or out of range/); // reserved size 0
  throwsFdt(() => decodeFdt(patch(76, 0x61000000)), /root node name "a" is not empty/);
  throwsFdt(() => decodeFdt(patch(72, FDT_PROP)), /FDT_PROP outside a node/);
  throwsFdt(() => decodeFdt(patch(72, 7)), /unknown token 0x7 at offset 72/);
  throwsFdt(() => decodeFdt(patch(84, 0x100)), /runs past the structure block/);
  throwsFdt(() => decodeFdt(patch(88, 46)), /name offset 46 outside the strings block/);
  throwsFdt(() => decodeFdt(patch(88, 45)), /empty property name at offset 80/);
  throwsFdt(() => decodeFdt(patch(32, 45)), /property name at offset 226 is unterminated/);
  throwsFdt(() => decodeFdt(patch(100, 7)), /unknown token 0x696e7463 at offset 116/);
  throwsFdt(() => decodeFdt(patch(156, FDT_END_NODE)), /unknown token|outside a node|FDT_END/);
  throwsFdt(() => decodeFdt(patch(176, FDT_NOP)), /structure block ends without FDT_END|before the root node is closed/);
  throwsFdt(() => decodeFdt(patch(116, 0x6e744001)), /node name at offset 116 has byte 0x1/);
  // Hand-made structure blocks.
  const s = cname('a');
  throwsFdt(() => decodeFdt(rawBlob([FDT_END])), /before the root node/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE])), /ends without FDT_END/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END_NODE, FDT_END])), /FDT_END_NODE without a node/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END])), /second root node/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END, FDT_NOP])), /4 bytes after FDT_END/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE, 0, FDT_END_NODE, FDT_END_NODE, FDT_END])), /empty node name/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE, cname('a/b'), FDT_END_NODE, FDT_END_NODE, FDT_END])), /has byte 0x2f/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE, cname('x'), FDT_END_NODE, FDT_BEGIN_NODE, cname('x'), FDT_END_NODE, FDT_END_NODE, FDT_END])), /duplicate node "x"/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0, 0, FDT_PROP, 0, 0, FDT_END_NODE, FDT_END], s)), /duplicate property "a"/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE, cname('c'), FDT_END_NODE, FDT_PROP, 0, 0, FDT_END_NODE, FDT_END], s)), /property after child nodes/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0, 1, FDT_END_NODE, FDT_END], s)), /empty property name/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0], s)), /truncated FDT_PROP/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, cname('x'.repeat(300)), FDT_END_NODE, FDT_END])), /root node name|longer than 255/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_BEGIN_NODE, cname('x'.repeat(300)), FDT_END_NODE, FDT_END_NODE, FDT_END])), /longer than 255/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, Uint8Array.of(0x61, 0x62, 0x63, 0x64)])), /unterminated/);
  throwsFdt(() => decodeFdt(rawBlob([FDT_BEGIN_NODE, 0, FDT_PROP, 0, 0, FDT_END_NODE, FDT_END], Uint8Array.of(0x61))), /unterminated/);
});


test('fuzz: truncated and corrupted blobs decode or throw FdtError, nothing else', { timeout: 120_000 }, (t) => {
  const { root, phandles } = virtTree();
  const bases = [
    encodeFdt(tinyTree(), TINY_OPTS),
    encodeFdt(root, { phandles, reserved: [{ address: 0x8000_0000n, size: 0x20_0000n }] }),
  ];
  let decoded = 0;
  let rejected = 0;
  let cases = 0;
  const check = (blob: Uint8Array, what: string): void => {
    cases++;
    let tree: FdtNode;
    try {
      tree = decodeFdt(blob);
    } catch (e) {
      if (!(e instanceof FdtError)) assert.fail(`${what}: ${String(e)}`);
      assert.ok(!e.message.includes('\n'), `${what}: one-line message`);
      rejected++;
      return;
    }
    decoded++;
    // What decodes either re-encodes to a blob that decodes to the same tree, or is refused with FdtError.
    try {
      assert.deepEqual(decodeFdt(encodeFdt(tree)), tree, what);
    } catch (e) {
      if (!(e instanceof FdtError)) throw e;
    }
  };
  const random = prng(0x0fd7);
  for (const base of bases) {
    // Every truncation, as is and with totalsize (and the block sizes) patched to fit.
    const step = base.length > 1000 ? 3 : 1;
    for (let len = 0; len < base.length; len += step) {
      check(base.slice(0, len), `truncated to ${len}`);
      if (len >= 40) {
        const b = base.slice(0, len);
        const dv = new DataView(b.buffer);
        dv.setUint32(4, len);
        const strOff = dv.getUint32(12);
        dv.setUint32(32, Math.max(0, Math.min(dv.getUint32(32), len - strOff)));
        dv.setUint32(36, Math.max(0, Math.min(dv.getUint32(36), len - dv.getUint32(8))) & ~3);
        check(b, `truncated to ${len}, sizes patched`);
      }
    }
    // Random corruption: bytes, bit flips, and interesting u32s at aligned offsets.
    for (let i = 0; i < 3000; i++) {
      const b = base.slice();
      const dv = new DataView(b.buffer);
      const edits = 1 + Math.floor(random() * 4);
      for (let e = 0; e < edits; e++) {
        const pick = random();
        const off = Math.floor(random() * b.length);
        if (pick < 0.3) b[off] = Math.floor(random() * 256);
        else if (pick < 0.5) b[off] = (b[off] ?? 0) ^ (1 << Math.floor(random() * 8));
        else {
          const interesting = [0, 1, 2, 3, 4, 9, 0xffffffff, 0x7fffffff, 0x80000000, 40, b.length, b.length - 4, Math.floor(random() * 0x100)];
          const at = off < 40 && random() < 0.5 ? off & ~3 : Math.min(off & ~3, b.length - 4);
          dv.setUint32(at, interesting[Math.floor(random() * interesting.length)] ?? 0);
        }
      }
      check(b, `corruption case ${i}`);
    }
  }
  // Random bytes behind a valid header.
  for (let i = 0; i < 500; i++) {
    const len = 64 + Math.floor(random() * 300);
    const b = Uint8Array.from({ length: len }, () => (random() < 0.7 ? 0 : Math.floor(random() * 16)));
    const dv = new DataView(b.buffer);
    [0xd00dfeed, len, 56, len - 8, 40, 17, 16, 0, 8, (len - 64) & ~3].forEach((v, k) => dv.setUint32(4 * k, v));
    dv.setBigUint64(40, 0n);
    dv.setBigUint64(48, 0n);
    check(b, `random body ${i}`);
  }
  t.diagnostic(`${cases} cases: ${decoded} decoded, ${rejected} rejected with FdtError`);
  assert.ok(cases > 7000, `${cases} cases`);
  assert.ok(decoded > 100 && rejected > 1000, `decoded ${decoded}, rejected ${rejected}`);
});

// ------------------------------------------------------------------ dtc

const haveDtc = spawnSync('dtc', ['--version'], { encoding: 'utf8' }).status === 0;
const dtcSkip = haveDtc ? false : 'dtc not installed (Debian package device-tree-compiler)';

function dtc(args: string[], input?: Uint8Array | string): { stdout: Buffer; stderr: string } {
  const r = spawnSync('dtc', args, { input, maxBuffer: 1 << 24 });
  assert.equal(r.status, 0, `dtc ${args.join(' ')} failed: ${r.stderr.toString()}`);
  return { stdout: r.stdout, stderr: r.stderr.toString() };
}

test('dtc decompiles the virt blob to the expected source, without warnings', { skip: dtcSkip }, () => {
  const { root, phandles } = virtTree();
  const reserved = [{ address: 0x8000_0000n, size: 0x20_0000n }];
  const blob = encodeFdt(root, { phandles, reserved });
  const { stdout, stderr } = dtc(['-I', 'dtb', '-O', 'dts', '-o', '-', '-'], blob);
  const dts = stdout.toString();
  assert.equal(stderr, '', 'dtc warnings');
  for (const want of [
    /^\/dts-v1\/;/m,
    /\/memreserve\/\s+0x0000000080000000 0x0000000000200000;/,
    /\tchosen \{\n\t\tbootargs = "console=ttyS0 root=\/dev\/vda rw";\n\t\tlinux,initrd-start = <0x00 0x88000000>;/,
    /\t\tstdout-path = "\/soc\/serial@10000000";/,
    /\tmemory@80000000 \{\n\t\tdevice_type = "memory";\n\t\treg = <0x00 0x80000000 0x00 0x8000000>;/,
    /\t\tcpu@0 \{\n\t\t\tdevice_type = "cpu";/,
    /\t\tcpu@1 \{/,
    /\t\t\tinterrupt-controller \{\n\t\t\t\t#address-cells = <0x00>;\n\t\t\t\t#interrupt-cells = <0x01>;\n\t\t\t\tinterrupt-controller;/,
    /\t\tplic@c000000 \{\n\t\t\triscv,ndev = <0x5f>;/,
    /compatible = "sifive,plic-1.0.0\\0riscv,plic0";/,
    /\t\tvirtio_mmio@10008000 \{\n\t\t\tinterrupts = <0x08>;/,
    /\t\tclint@2000000 \{/,
    /rng-seed = \[00 11 22 33 44 55 66 77 88 99 aa bb cc\];/,
  ]) assert.match(dts, want);
  // dtc writes the same tree back out as the very same bytes.
  assert.deepEqual(new Uint8Array(dtc(['-I', 'dtb', '-O', 'dtb', '-o', '-', '-'], blob).stdout), blob);
  // And compiling its source again gives a blob that decodes to our tree.
  const again = decodeFdtBlob(new Uint8Array(dtc(['-I', 'dts', '-O', 'dtb', '-o', '-', '-'], dts).stdout));
  assert.deepEqual(again.root, asDecoded(root));
  assert.deepEqual(again.reserved, reserved);
});

test('a dts compiled by dtc decodes, and re-encodes to a blob dtc reads the same', { skip: dtcSkip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'disco-fdt-'));
  try {
    const src = join(dir, 'in.dts');
    writeFileSync(src, `/dts-v1/;
/memreserve/ 0x80000000 0x200000;
/ {
	#address-cells = <2>;
	#size-cells = <2>;
	compatible = "riscv-virtio";
	cpus {
		#address-cells = <1>;
		#size-cells = <0>;
		cpu@1 {
			device_type = "cpu";
			reg = <1>;
			cpu1_intc: interrupt-controller {
				#interrupt-cells = <1>;
				interrupt-controller;
				compatible = "riscv,cpu-intc";
			};
		};
	};
	soc {
		#address-cells = <2>;
		#size-cells = <2>;
		compatible = "simple-bus";
		ranges;
		plic: interrupt-controller@c000000 {
			#address-cells = <0>;
			#interrupt-cells = <1>;
			interrupt-controller;
			interrupts-extended = <&cpu1_intc 11 &cpu1_intc 9>;
			reg = <0x0 0xc000000 0x0 0x600000>;
		};
		serial@10000000 {
			interrupt-parent = <&plic>;
			interrupts = <10>;
			reg = <0x0 0x10000000 0x0 0x100>;
			compatible = "ns16550a";
		};
	};
	chosen {
		bootargs = "console=ttyS0";
		linux,initrd-start = /bits/ 64 <0x88000000>;
		blob = [de ad be ef 01];
	};
};
`);
    const dtb = join(dir, 'out.dtb');
    dtc(['-I', 'dts', '-O', 'dtb', '-b', '1', '-o', dtb, src]);
    const blob = new Uint8Array(readFileSync(dtb));
    const d = decodeFdtBlob(blob);
    assert.equal(d.bootCpuId, 1);
    assert.deepEqual(d.reserved, [{ address: 0x8000_0000n, size: 0x20_0000n }]);
    const prop = (path: string, name: string): FdtValue => {
      const n = findNode(d.root, path);
      assert.ok(n, path);
      const v = getProp(n, name);
      assert.ok(v, `${path} ${name}`);
      return v;
    };
    const intcPh = asU32s(prop('/cpus/cpu@1/interrupt-controller', 'phandle'));
    const plicPh = asU32s(prop('/soc/interrupt-controller@c000000', 'phandle'));
    assert.equal(intcPh.length, 1);
    assert.notDeepEqual(intcPh, plicPh);
    assert.deepEqual(asU32s(prop('/soc/interrupt-controller', 'interrupts-extended')), [intcPh[0], 11, intcPh[0], 9]);
    assert.deepEqual(asU32s(prop('/soc/serial@10000000', 'interrupt-parent')), plicPh);
    assert.deepEqual(asU32s(prop('/soc/serial', 'reg')), [0, 0x1000_0000, 0, 0x100]);
    assert.deepEqual(asStrings(prop('/chosen', 'bootargs')), ['console=ttyS0']);
    assert.deepEqual(asU64s(prop('/chosen', 'linux,initrd-start')), [0x8800_0000n]);
    assert.deepEqual(fdtValueBytes(prop('/chosen', 'blob')), Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x01));
    assert.deepEqual(fdtValueBytes(prop('/soc', 'ranges')), new Uint8Array(0));
    // Our encoding of the decoded tree is the blob dtc made.
    const ours = encodeFdt(d.root, { bootCpuId: d.bootCpuId, reserved: d.reserved });
    assert.deepEqual(ours, blob);
    assert.equal(dtc(['-I', 'dtb', '-O', 'dts', '-o', '-', '-'], ours).stdout.toString(), dtc(['-I', 'dtb', '-O', 'dts', '-o', '-', dtb]).stdout.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const haveQemu = spawnSync('qemu-system-riscv64', ['--version']).status === 0;

test("QEMU's own riscv virt DTB decodes, and re-encodes to a tree dtc prints the same", {
  skip: !haveQemu ? 'qemu-system-riscv64 not installed' : dtcSkip,
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'disco-fdt-'));
  try {
    const file = join(dir, 'virt.dtb');
    const r = spawnSync('qemu-system-riscv64', ['-M', `virt,dumpdtb=${file}`, '-smp', '2', '-m', '256M', '-display', 'none'], { timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr.toString());
    const blob = new Uint8Array(readFileSync(file)); // QEMU pads the file well past totalsize
    const d = decodeFdtBlob(blob);
    const mem = findNode(d.root, '/memory@80000000');
    assert.ok(mem);
    assert.deepEqual(asU64s(getProp(mem, 'reg') ?? empty()), [0x8000_0000n, 256n << 20n]);
    assert.ok(findNode(d.root, '/cpus/cpu@1/interrupt-controller'));
    assert.ok(findNode(d.root, '/chosen'));
    const ours = encodeFdt(d.root, { bootCpuId: d.bootCpuId, reserved: d.reserved });
    const print = (b: Uint8Array): string => dtc(['-I', 'dtb', '-O', 'dts', '-o', '-', '-'], b).stdout.toString();
    assert.equal(print(ours), print(blob));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
