import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { expandCompressed, rvcTable } from '../src/cpu/rvc.js';
import { buildDir } from './support.js';

/** Each compressed instruction beside the 32-bit instruction the spec says it expands to. */
const PAIRS: readonly (readonly [string, string])[] = [
  ['c.addi4spn s0, sp, 1020', 'addi s0, sp, 1020'],
  ['c.addi4spn a5, sp, 4', 'addi a5, sp, 4'],
  ['c.fld fa0, 248(s1)', 'fld fa0, 248(s1)'],
  ['c.lw a0, 124(a1)', 'lw a0, 124(a1)'],
  ['c.lw s0, 0(a5)', 'lw s0, 0(a5)'],
  ['c.ld a0, 248(a1)', 'ld a0, 248(a1)'],
  ['c.fsd fa0, 8(s1)', 'fsd fa0, 8(s1)'],
  ['c.sw a0, 64(a1)', 'sw a0, 64(a1)'],
  ['c.sd a5, 128(a4)', 'sd a5, 128(a4)'],
  ['c.nop', 'addi x0, x0, 0'],
  ['c.addi a0, -32', 'addi a0, a0, -32'],
  ['c.addi t6, 31', 'addi t6, t6, 31'],
  ['c.addiw a0, 31', 'addiw a0, a0, 31'],
  ['c.addiw s1, -1', 'addiw s1, s1, -1'],
  ['c.li t0, -1', 'addi t0, x0, -1'],
  ['c.li a0, 17', 'addi a0, x0, 17'],
  ['c.addi16sp sp, -512', 'addi sp, sp, -512'],
  ['c.addi16sp sp, 496', 'addi sp, sp, 496'],
  ['c.lui a0, 0xfffe0', 'lui a0, 0xfffe0'],
  ['c.lui s1, 1', 'lui s1, 1'],
  ['c.lui t0, 31', 'lui t0, 31'],
  ['c.srli s0, 63', 'srli s0, s0, 63'],
  ['c.srli a0, 1', 'srli a0, a0, 1'],
  ['c.srai a5, 1', 'srai a5, a5, 1'],
  ['c.srai a5, 32', 'srai a5, a5, 32'],
  ['c.andi a2, -1', 'andi a2, a2, -1'],
  ['c.andi a2, 5', 'andi a2, a2, 5'],
  ['c.sub a0, a1', 'sub a0, a0, a1'],
  ['c.xor s0, s1', 'xor s0, s0, s1'],
  ['c.or a4, a5', 'or a4, a4, a5'],
  ['c.and a3, a2', 'and a3, a3, a2'],
  ['c.subw a0, a1', 'subw a0, a0, a1'],
  ['c.addw a0, a1', 'addw a0, a0, a1'],
  ['c.j .-2048', 'jal x0, .-2048'],
  ['c.j .+2046', 'jal x0, .+2046'],
  ['c.j .+2', 'jal x0, .+2'],
  ['c.beqz a0, .-256', 'beq a0, x0, .-256'],
  ['c.bnez s1, .+254', 'bne s1, x0, .+254'],
  ['c.slli a0, 63', 'slli a0, a0, 63'],
  ['c.slli t6, 1', 'slli t6, t6, 1'],
  ['c.fldsp fs0, 504(sp)', 'fld fs0, 504(sp)'],
  ['c.lwsp ra, 252(sp)', 'lw ra, 252(sp)'],
  ['c.ldsp s11, 504(sp)', 'ld s11, 504(sp)'],
  ['c.ldsp t0, 0(sp)', 'ld t0, 0(sp)'],
  ['c.jr ra', 'jalr x0, 0(ra)'],
  ['c.mv a0, s11', 'add a0, x0, s11'],
  ['c.ebreak', 'ebreak'],
  ['c.jalr t1', 'jalr ra, 0(t1)'],
  ['c.add a0, a1', 'add a0, a0, a1'],
  ['c.fsdsp fs1, 504(sp)', 'fsd fs1, 504(sp)'],
  ['c.swsp a0, 252(sp)', 'sw a0, 252(sp)'],
  ['c.sdsp s0, 504(sp)', 'sd s0, 504(sp)'],
];

function assemble(name: string, lines: readonly string[], rvc: boolean): Buffer {
  mkdirSync(buildDir, { recursive: true });
  const src = join(buildDir, `${name}.S`);
  const obj = join(buildDir, `${name}.o`);
  const bin = join(buildDir, `${name}.bin`);
  writeFileSync(src, `.option ${rvc ? 'rvc' : 'norvc'}\n.option norelax\n${lines.join('\n')}\n`);
  execFileSync('riscv64-linux-gnu-as', ['-march=rv64gc', src, '-o', obj]);
  execFileSync('riscv64-linux-gnu-objcopy', ['-O', 'binary', '-j', '.text', obj, bin]);
  return readFileSync(bin);
}

test('every compressed instruction expands to the 32-bit instruction the assembler encodes', () => {
  const c = assemble('rvc-c', PAIRS.map((p) => p[0]), true);
  const w = assemble('rvc-w', PAIRS.map((p) => p[1]), false);
  assert.equal(c.length, PAIRS.length * 2, 'every compressed line assembled to 16 bits');
  PAIRS.forEach(([cs, ws], i) => {
    const parcel = c.readUInt16LE(2 * i);
    const expect = w.readInt32LE(4 * i);
    assert.equal((expandCompressed(parcel) >>> 0).toString(16), (expect >>> 0).toString(16), `${cs} → ${ws}`);
  });
});

test('reserved and illegal parcels expand to 0', () => {
  const reserved = [
    0x0000, // all zeros: illegal
    0x0004, // c.addi4spn with nzuimm = 0
    0x8000, // quadrant 0, funct3 100: reserved
    0x2001, // c.addiw with rd = 0
    0x6101, // c.addi16sp with nzimm = 0
    0x6501, // c.lui a0 with nzimm = 0
    0x9c41, // c.subw-space funct2 10 with bit 12 set: reserved
    0x9c61, // ... funct2 11: reserved
    0x4002, // c.lwsp with rd = 0
    0x6002, // c.ldsp with rd = 0
    0x8002, // c.jr with rs1 = 0
  ];
  for (const p of reserved) assert.equal(expandCompressed(p), 0, `0x${p.toString(16)}`);
});

test('the table agrees with the expander and never yields a compressed encoding', () => {
  const t = rvcTable();
  for (let p = 0; p < 65536; p++) {
    if ((p & 3) === 3) {
      assert.equal(t[p], 0);
      continue;
    }
    const e = t[p]!;
    assert.equal(e, expandCompressed(p));
    if (e !== 0) assert.equal(e & 3, 3, `0x${p.toString(16)} expands to a 32-bit instruction`);
  }
});
