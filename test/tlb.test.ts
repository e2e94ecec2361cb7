import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { createBareMetal } from '../src/machine/baremetal.js';
import { runHart } from '../src/machine/hart-loop.js';
import { buildAsm, runCli, TOHOST } from './support.js';

/*
 * Address spaces with different ASIDs map the same virtual address to different
 * pages. The soft TLB keeps a bank per address space: switching satp must show
 * each space its own mapping, and SFENCE.VMA with an ASID must drop exactly that
 * space's stale translation. Loads run in M-mode with MPRV (MPP = S), so they
 * are translated.
 */
const SOURCE = `
  .option nopic
  .section .text.init
  .globl _start
_start:
  la t0, trap
  csrw mtvec, t0
  li t0, -1
  srli t0, t0, 10
  csrw pmpaddr0, t0
  li t0, 0x1f              /* NAPOT, R W X */
  csrw pmpcfg0, t0
  /* markers at three 2 MiB pages */
  li t0, 0x80200000
  li t1, 0xaaaa
  sd t1, 0(t0)
  li t0, 0x80400000
  li t1, 0xbbbb
  sd t1, 0(t0)
  li t0, 0x80600000
  li t1, 0xcccc
  sd t1, 0(t0)
  /* root A[1] -> l1A, l1A[0] -> 0x80200000; root B[1] -> l1B, l1B[0] -> 0x80400000 */
  la t0, rootA
  la t1, l1A
  srli t2, t1, 12
  slli t2, t2, 10
  ori t2, t2, 1
  sd t2, 8(t0)
  li t2, (0x80200000 >> 12 << 10) | 0xc7
  sd t2, 0(t1)
  la t0, rootB
  la t1, l1B
  srli t2, t1, 12
  slli t2, t2, 10
  ori t2, t2, 1
  sd t2, 8(t0)
  li t2, (0x80400000 >> 12 << 10) | 0xc7
  sd t2, 0(t1)
  /* satp values: Sv39, ASID 1 with root A, ASID 2 with root B */
  la t0, rootA
  srli t0, t0, 12
  li t1, (8 << 60) | (1 << 44)
  or s0, t0, t1
  la t0, rootB
  srli t0, t0, 12
  li t1, (8 << 60) | (2 << 44)
  or s1, t0, t1
  li t0, (1 << 17) | (1 << 11)   /* MPRV, MPP = S */
  csrs mstatus, t0
  li s2, 0x40000000

  li gp, 1
  csrw satp, s0
  sfence.vma
  ld a0, 0(s2)
  li t1, 0xaaaa
  bne a0, t1, fail

  li gp, 2
  csrw satp, s1
  ld a0, 0(s2)
  li t1, 0xbbbb
  bne a0, t1, fail

  li gp, 3
  csrw satp, s0
  ld a0, 0(s2)
  li t1, 0xaaaa
  bne a0, t1, fail

  /* remap ASID 1's page, then fence only ASID 1 */
  li gp, 4
  li t3, 1 << 17
  csrc mstatus, t3           /* the page-table store itself is physical */
  la t0, l1A
  li t2, (0x80600000 >> 12 << 10) | 0xc7
  sd t2, 0(t0)
  csrs mstatus, t3
  li t0, 1
  sfence.vma x0, t0
  ld a0, 0(s2)
  li t1, 0xcccc
  bne a0, t1, fail

  li gp, 5
  csrw satp, s1
  ld a0, 0(s2)
  li t1, 0xbbbb
  bne a0, t1, fail

  /* more address spaces than banks: each still sees its own page */
  li gp, 6
  li s3, 3
1:
  la t0, rootA
  srli t0, t0, 12
  li t1, 8
  slli t1, t1, 60
  or t0, t0, t1
  slli t1, s3, 44
  or t0, t0, t1
  csrw satp, t0
  ld a0, 0(s2)
  li t1, 0xcccc
  bne a0, t1, fail
  addi s3, s3, 1
  li t1, 12
  bne s3, t1, 1b
  li gp, 7
  csrw satp, s1
  ld a0, 0(s2)
  li t1, 0xbbbb
  bne a0, t1, fail

  li t0, 1 << 17
  csrc mstatus, t0
  li t0, 1
  la t1, tohost
  sd t0, 0(t1)
2: j 2b
trap:
  li gp, 100
fail:
  li t0, 1 << 17
  csrc mstatus, t0
  slli gp, gp, 1
  ori gp, gp, 1
  la t1, tohost
  sd gp, 0(t1)
3: j 3b

  .data
  .align 12
rootA: .zero 4096
rootB: .zero 4096
l1A: .zero 4096
l1B: .zero 4096
${TOHOST}`;

test('TLB banks: each ASID sees its own mapping; SFENCE.VMA by ASID drops only that space', () => {
  const elf = buildAsm('tlb-asid', SOURCE);
  const r = runCli(['run', '--bios', elf, '--max-instructions', '100000']);
  assert.equal(r.stdout, 'PASS\n', r.stderr);
  assert.equal(r.code, 0);
});

/*
 * Two hot pages 8 MiB apart share a soft-TLB index: without victim entries
 * each access would evict the other page and walk the page table every time.
 * S-mode (through MPRV) loads alternate between them 1000 times through a
 * gigapage mapping VA 0x40000000 to PA 0x80000000.
 */
const CONFLICT = `
  .option nopic
  .section .text.init
  .globl _start
_start:
  li t0, -1
  srli t0, t0, 10
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  la t0, root
  li t1, (0x80000000 >> 12 << 10) | 0xcf   /* a 1 GiB leaf: V R W X A D */
  sd t1, 8(t0)
  srli t0, t0, 12
  li t1, 8 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li t0, (1 << 17) | (1 << 11)   /* MPRV, MPP = S */
  csrs mstatus, t0
  li s0, 0x40400000
  li s1, 0x40c00000
  li s2, 1000
1:
  ld a0, 0(s0)
  ld a1, 0(s1)
  sd a0, 8(s1)
  addi s2, s2, -1
  bnez s2, 1b
  li t0, (1 << 17)
  csrc mstatus, t0
  li t0, 1
  la t1, tohost
  sd t0, 0(t1)
2: j 2b
  .section .data
  .align 12
root: .zero 4096
${TOHOST}
`;

for (const jit of ['off', 'on'] as const) {
  test(`two hot pages with the same soft-TLB index do not walk the page table on every access (translator ${jit})`, async () => {
    const m = createBareMetal(readFileSync(buildAsm('tlb-conflict', CONFLICT)), { ramBytes: 128 << 20, cpus: 1, clock: 'instructions', jit: jit === 'on' ? 'eager' : 'off' });
    const o = await runHart(m.harts[0]!, m.bus, { maxInstructions: 1e6 });
    assert.deepEqual(o, { kind: 'htif', value: '1' });
    const walks = m.harts[0]!.walks;
    assert.ok(walks >= 2 && walks < 20, `${walks} page-table walks for 3000 accesses to two pages`);
  });
}
