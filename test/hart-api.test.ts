// The hart's run loop as a KVM-style API: Hart.run(budget) → Exit, driven
// directly (no bare-metal runner): budget, MMIO loads and stores with
// completeLoad()/accessFault(), ECALL and WFI exits, read-only pages, HTIF,
// exhausted memory, save()/restore(), the register and CSR accessors, and the
// isolation of machine memory from guest accesses outside guest RAM.
//
// All guest code is one assembly file with a named entry point per scenario;
// it is assembled once and every test loads it into a fresh machine.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { Clock } from '../src/cpu/clock.js';
import type { Exit } from '../src/cpu/exit.js';
import { Hart } from '../src/cpu/hart.js';
import { accelerate } from '../src/jit/index.js';
import { LOOKUP_BYTES } from '../src/jit/translate.js';
import { HART_BLOCK_BYTES, TLB_BYTES } from '../src/cpu/layout.js';
import { parseElf, type ElfImage } from '../src/machine/elf.js';
import { MachineMemory, PAGE_SIZE } from '../src/memory/machine-memory.js';
import { PM_WATCH, PM_WRITE, Pmap, type RegionSpec } from '../src/memory/pmap.js';
import { buildAsm, TOHOST } from './support.js';

const DRAM = 0x8000_0000;
const RAM_BYTES = 2 * 1024 * 1024;
const DEV = 0x1000_0000;

const MISA_RV64_IMAFDCSU = (2n << 62n) | 0x14112dn; // A C D F I M S U
const CSR_MSTATUS = 0x300, CSR_MISA = 0x301, CSR_MIE = 0x304, CSR_MTVEC = 0x305, CSR_MCOUNTINHIBIT = 0x320;
const CSR_MSCRATCH = 0x340, CSR_MEPC = 0x341, CSR_MCAUSE = 0x342, CSR_MTVAL = 0x343, CSR_MIP = 0x344;
const CSR_SATP = 0x180, CSR_MCYCLE = 0xb00, CSR_MINSTRET = 0xb02, CSR_TIME = 0xc01, CSR_MHARTID = 0xf14;
const PRIV_M = 3;

/** The value the store scenarios write: every width has its top bit set, so sign mistakes show. */
const STORE_VALUE = 0xfedc_ba98_f654_8381n;

const SOURCE = `  .option nopic
  .option norvc
  .section .text.init
  .globl _start
_start:
spin: j spin

# ---- a trap handler that stays put, and one that reports mcause through an ECALL exit
halt_handler: j halt_handler
  .align 2
report_handler:
  csrr a1, mcause
  ecall
  j spin

# ---- MMIO loads: each loads from DEV (+ offset), then ECALLs
mmio_lw:    li t0, ${DEV}
mmio_lw_i:  lw a0, 0(t0)
            ecall
mmio_lwu:   li t0, ${DEV}
mmio_lwu_i: lwu a0, 0(t0)
            ecall
mmio_lbu:   li t0, ${DEV}
mmio_lbu_i: lbu a0, 1(t0)
            ecall
mmio_lb:    li t0, ${DEV}
mmio_lb_i:  lb a0, 3(t0)
            ecall
mmio_lh:    li t0, ${DEV}
mmio_lh_i:  lh a0, 2(t0)
            ecall
mmio_ld:    li t0, ${DEV}
mmio_ld_i:  ld a0, 8(t0)
            ecall
mmio_clw:   li s0, ${DEV}
mmio_clw_i:
  .option push
  .option rvc
            c.lw a0, 4(s0)
  .option pop
            ecall
mmio_flw:   li t1, 0x2000
            csrs mstatus, t1
            li t0, ${DEV}
mmio_flw_i: flw fa0, 0(t0)
            ecall
mmio_fld:   li t1, 0x2000
            csrs mstatus, t1
            li t0, ${DEV}
mmio_fld_i: fld fa1, 16(t0)
            ecall

# ---- MMIO stores of STORE_VALUE at several widths
mmio_st:    li t0, ${DEV}
            li t1, 0x${STORE_VALUE.toString(16)}
            mv a1, t1
            mv a2, t0
mmio_sd_i:  sd t1, 8(t0)
mmio_sw_i:  sw t1, 16(t0)
mmio_sh_i:  sh t1, 2(t0)
mmio_sb_i:  sb t1, 1(t0)
mmio_csd_i:
  .option push
  .option rvc
            c.sd a1, 24(a2)
  .option pop
mmio_st_end:
            ecall

# ---- ECALL
ecall_s:    nop
ecall_i:    ecall
ecall_after: j spin

# ---- WFI: enable MSIE, wait, then turn MIE on
wfi_s:      li t0, 8
            csrs mie, t0
wfi_i:      wfi
wfi_after:  csrsi mstatus, 8
wfi_spin:   j wfi_spin

# ---- stores to a RAM page the host may make read-only
ro_s:       li t0, 0x80100000
            li t1, 0x1234
ro_st1:     sd t1, 0(t0)
            ecall
            addi t1, t1, 1
ro_st2:     sd t1, 0(t0)
            ecall
            j spin

# ---- HTIF
htif_s:     la t1, tohost
            sd zero, 0(t1)
            li t0, 1
htif_i:     sd t0, 0(t1)
htif_after: j spin

# ---- an AMO to tohost (writes 0), then an ordinary store of 0x77 to another page
htif_amo_s: la t1, tohost
            amoswap.d x0, zero, (t1)
            li t2, 0x80100000
            li t3, 0x77
            sd t3, 0(t2)
htif_amo_after: j spin

# ---- touches 8 fresh RAM pages from 0x80100000 on, storing 8, 7, ... 1
nomem_s:    li t0, 0x80100000
            li t2, 0x1000
            li t3, 8
nomem_i:    sd t3, 0(t0)
            add t0, t0, t2
            addi t3, t3, -1
            bnez t3, nomem_i
            ecall
            j spin

# ---- save/restore: two phases separated by ECALL exits
sr_a:       li s2, 0x1111
            li s3, -2
            la t0, halt_handler
            csrw mtvec, t0
            li t0, 0x5555
            csrw mscratch, t0
            ecall
sr_b:       li s2, 0x2222
            li s3, 77
            li t0, 0x7777
            csrw mscratch, t0
            csrw mtvec, zero
            li t0, (8 << 60) | 0x80100
            csrw satp, t0
            ecall
            j spin

# ---- S-mode behind Sv39: VA 0x40000000.. maps PA 0.., VA 0x80000000.. maps itself
smode_s:    li t0, 0x1800
            csrc mstatus, t0
            li t0, 0x0800
            csrs mstatus, t0
            la t0, smode_body
            csrw mepc, t0
smode_mret: mret
smode_body: li t0, 0x50000000
smode_ld_i: lw a0, 4(t0)
smode_st_i: sw a0, 8(t0)
            j smode_body

# ---- a store to the ROM region at 0x20000000
rom_s:      li t0, 0x20000000
            ld a0, 0(t0)
            li t1, 0x99
rom_st_i:   sd t1, 0(t0)
            j spin

# ---- isolation: loads from evenly spaced addresses below RAM, above 4 GiB and past RAM's end
iso_s:      li t0, 0
            li t1, 0x80008
            li t2, 0x80000000
iso_i1:     ld a0, 0(t0)
            add t0, t0, t1
            bltu t0, t2, iso_i1
            li t0, 0x180000000
            li t1, 0x1000
            li t2, 0x180200000
iso_i2:     ld a0, 0(t0)
            add t0, t0, t1
            bltu t0, t2, iso_i2
            li t0, 0x80200000
iso_i3:     ld a0, 0(t0)
            ecall
            j spin
${TOHOST}`;

let image: ElfImage | undefined;
function elf(): ElfImage {
  image ??= parseElf(readFileSync(buildAsm('hart-api', SOURCE)));
  return image;
}

function sym(name: string): bigint {
  const v = elf().symbols.get(name);
  if (v === undefined) throw new Error(`no symbol ${name}`);
  return BigInt(v);
}

/** Distinct guest pages the program image occupies. */
function imagePages(): number {
  const pages = new Set<number>();
  for (const s of elf().segments) {
    if (s.memsz === 0) continue;
    for (let p = Math.floor(s.paddr / PAGE_SIZE); p <= Math.floor((s.paddr + s.memsz - 1) / PAGE_SIZE); p++) pages.add(p);
  }
  return pages.size;
}

interface Machine {
  mem: MachineMemory;
  pmap: Pmap;
  clock: Clock;
  hart: Hart;
}

interface MachineOptions {
  entry: string;
  limitFrames?: number;
  poolBytes?: number;
  ecallExitMask?: number;
  tohost?: number;
  extraRegions?: RegionSpec[];
}

const withJit = new WeakSet<Hart>();
function jitAttached(h: Hart): boolean {
  return withJit.has(h);
}

function machine(o: MachineOptions): Machine {
  const mem = MachineMemory.create(o.poolBytes ?? 8 * 1024 * 1024);
  const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: DRAM, size: RAM_BYTES }, ...(o.extraRegions ?? [])], o.limitFrames);
  const clock = Clock.create('instructions');
  const hart = new Hart({ mem, pmap, clock, hartId: 0, ecallExitMask: o.ecallExitMask ?? 1 << PRIV_M, tohost: o.tohost ?? -1 });
  // DISCO_JIT=eager runs these tests on the translator.
  if (accelerate(hart)) withJit.add(hart);
  for (const s of elf().segments) pmap.write(s.paddr, s.data);
  hart.reset(sym(o.entry));
  return { mem, pmap, clock, hart };
}

type MmioExit = Extract<Exit, { kind: 'mmio' }>;

function asMmio(e: Exit): MmioExit {
  assert.equal(e.kind, 'mmio', `expected an mmio exit, got ${JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  return e as MmioExit;
}

function mmioLoad(e: Exit): Omit<MmioExit, 'value'> {
  const { value: _value, ...rest } = asMmio(e);
  return rest;
}

const ECALL_M: Exit = { kind: 'ecall', priv: PRIV_M };

// ------------------------------------------------------------------ budget

test('run(budget) on an endless loop returns budget after exactly that many instructions', () => {
  const { hart, clock } = machine({ entry: 'spin' });
  assert.equal(hart.steps, 0);
  assert.deepEqual(hart.run(10), { kind: 'budget' });
  assert.equal(hart.steps, 10);
  assert.equal(hart.readCsr(CSR_MINSTRET), 10n);
  assert.equal(hart.readCsr(CSR_MCYCLE), 10n);
  assert.equal(clock.now(), 1); // 10 instructions per mtime tick
  assert.equal(hart.readCsr(CSR_TIME), 1n);
  assert.equal(hart.pc, sym('spin'));

  // Across several interrupt-check slices.
  assert.deepEqual(hart.run(5000), { kind: 'budget' });
  assert.equal(hart.steps, 5010);
  assert.equal(hart.readCsr(CSR_MINSTRET), 5010n);
  assert.equal(clock.now(), 501);

  assert.deepEqual(hart.run(0), { kind: 'budget' });
  assert.equal(hart.steps, 5010);
  assert.equal(hart.readCsr(CSR_MINSTRET), 5010n);
});

test('mcountinhibit stops minstret and mcycle but not the budget', () => {
  const { hart } = machine({ entry: 'spin' });
  hart.writeCsr(CSR_MCOUNTINHIBIT, 5n);
  assert.deepEqual(hart.run(100), { kind: 'budget' });
  assert.equal(hart.steps, 100);
  assert.equal(hart.readCsr(CSR_MINSTRET), 0n);
  assert.equal(hart.readCsr(CSR_MCYCLE), 0n);
});

// ------------------------------------------------------------------ MMIO loads

test('an MMIO lw exits with its destination, leaves pc on the load, and completeLoad sign-extends', () => {
  const { hart } = machine({ entry: 'mmio_lw' });
  const e = hart.run(100);
  assert.deepEqual(mmioLoad(e), { kind: 'mmio', write: false, gpa: DEV, size: 4, dest: { file: 'x', reg: 10, signed: true } });
  assert.equal(hart.pc, sym('mmio_lw_i'));
  assert.equal(hart.steps, 2);
  assert.equal(hart.readCsr(CSR_MINSTRET), 1n); // the load has not retired
  hart.completeLoad(0x8000_0000n);
  assert.equal(hart.getX(10), 0xffff_ffff_8000_0000n);
  assert.equal(hart.pc, sym('mmio_lw_i') + 4n);
  assert.equal(hart.readCsr(CSR_MINSTRET), 2n);
  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(hart.readCsr(CSR_MINSTRET), 3n);
});

test('MMIO lwu, lbu, lb, lh and ld: sizes, offsets and extension', () => {
  const cases = [
    { entry: 'mmio_lwu', gpa: DEV, size: 4, signed: false, give: 0x1_8000_0000n, want: 0x8000_0000n },
    { entry: 'mmio_lbu', gpa: DEV + 1, size: 1, signed: false, give: 0x1ffn, want: 0xffn },
    { entry: 'mmio_lb', gpa: DEV + 3, size: 1, signed: true, give: 0x80n, want: 0xffff_ffff_ffff_ff80n },
    { entry: 'mmio_lh', gpa: DEV + 2, size: 2, signed: true, give: 0x1_7fffn, want: 0x7fffn },
    { entry: 'mmio_ld', gpa: DEV + 8, size: 8, signed: true, give: 0xfedc_ba98_7654_3210n, want: 0xfedc_ba98_7654_3210n },
  ] as const;
  for (const c of cases) {
    const { hart } = machine({ entry: c.entry });
    hart.setX(10, 0x5a5an);
    const e = hart.run(100);
    assert.deepEqual(mmioLoad(e), { kind: 'mmio', write: false, gpa: c.gpa, size: c.size, dest: { file: 'x', reg: 10, signed: c.signed } }, c.entry);
    assert.equal(hart.getX(10), 0x5a5an, `${c.entry}: a0 untouched before completion`);
    assert.equal(hart.pc, sym(`${c.entry}_i`), c.entry);
    hart.completeLoad(c.give);
    assert.equal(hart.getX(10), c.want, c.entry);
    assert.equal(hart.pc, sym(`${c.entry}_i`) + 4n, c.entry);
    assert.deepEqual(hart.run(100), ECALL_M, c.entry);
  }
});

test('a compressed c.lw to MMIO: completeLoad advances pc by 2', () => {
  const { hart } = machine({ entry: 'mmio_clw' });
  const e = hart.run(100);
  assert.deepEqual(mmioLoad(e), { kind: 'mmio', write: false, gpa: DEV + 4, size: 4, dest: { file: 'x', reg: 10, signed: true } });
  assert.equal(hart.pc, sym('mmio_clw_i'));
  hart.completeLoad(0xffff_fffen);
  assert.equal(hart.getX(10), 0xffff_ffff_ffff_fffen);
  assert.equal(hart.pc, sym('mmio_clw_i') + 2n);
  assert.deepEqual(hart.run(100), ECALL_M);
});

test('FP loads from MMIO go to the f file; flw NaN-boxes and marks FS dirty', () => {
  {
    const { hart } = machine({ entry: 'mmio_flw' });
    const e = hart.run(100);
    assert.deepEqual(mmioLoad(e), { kind: 'mmio', write: false, gpa: DEV, size: 4, dest: { file: 'f', reg: 10, signed: false } });
    assert.equal(hart.pc, sym('mmio_flw_i'));
    hart.completeLoad(0x3f80_0000n);
    assert.equal(hart.getF(10), 0xffff_ffff_3f80_0000n);
    assert.equal(hart.pc, sym('mmio_flw_i') + 4n);
    assert.equal((hart.readCsr(CSR_MSTATUS) >> 13n) & 3n, 3n); // FS = Dirty
    assert.equal(hart.readCsr(CSR_MSTATUS) >> 63n, 1n); // SD
    assert.deepEqual(hart.run(100), ECALL_M);
  }
  {
    const { hart } = machine({ entry: 'mmio_fld' });
    const e = hart.run(100);
    assert.deepEqual(mmioLoad(e), { kind: 'mmio', write: false, gpa: DEV + 16, size: 8, dest: { file: 'f', reg: 11, signed: false } });
    hart.completeLoad(0x4009_21fb_5444_2d18n);
    assert.equal(hart.getF(11), 0x4009_21fb_5444_2d18n);
    assert.equal(hart.pc, sym('mmio_fld_i') + 4n);
  }
});

test('completeLoad without a pending load throws; run() with a load pending throws', () => {
  const { hart } = machine({ entry: 'mmio_lw' });
  assert.throws(() => hart.completeLoad(0n), /no MMIO load is pending/);
  asMmio(hart.run(100));
  assert.throws(() => hart.run(100), /MMIO load not completed/);
  hart.completeLoad(1n);
  assert.throws(() => hart.completeLoad(1n), /no MMIO load is pending/);
  assert.equal(hart.getX(10), 1n);
});

// ------------------------------------------------------------------ MMIO stores

test('MMIO stores exit with the unsigned value and size, pc already past the store', () => {
  const { hart } = machine({ entry: 'mmio_st' });
  const want = [
    { insn: 'mmio_sd_i', gpa: DEV + 8, size: 8, value: STORE_VALUE, len: 4n },
    { insn: 'mmio_sw_i', gpa: DEV + 16, size: 4, value: 0xf654_8381n, len: 4n },
    { insn: 'mmio_sh_i', gpa: DEV + 2, size: 2, value: 0x8381n, len: 4n },
    { insn: 'mmio_sb_i', gpa: DEV + 1, size: 1, value: 0x81n, len: 4n },
    { insn: 'mmio_csd_i', gpa: DEV + 24, size: 8, value: STORE_VALUE, len: 2n },
  ] as const;
  for (const w of want) {
    const e = hart.run(100);
    assert.deepEqual(e, { kind: 'mmio', write: true, gpa: w.gpa, size: w.size, value: w.value, dest: null }, w.insn);
    assert.equal(hart.pc, sym(w.insn) + w.len, w.insn);
  }
  assert.equal(hart.pc, sym('mmio_st_end'));
  assert.deepEqual(hart.run(100), ECALL_M);
  // the setup instructions, 5 stores, the ECALL: all retired
  assert.equal(hart.readCsr(CSR_MINSTRET), (sym('mmio_sd_i') - sym('mmio_st')) / 4n + 6n);
});

// ------------------------------------------------------------------ accessFault

test('accessFault() after an MMIO load raises a load access fault at the load', () => {
  const { hart } = machine({ entry: 'mmio_lw' });
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  hart.setX(10, 0x77n);
  asMmio(hart.run(100));
  hart.accessFault();
  assert.equal(hart.readCsr(CSR_MCAUSE), 5n);
  assert.equal(hart.readCsr(CSR_MTVAL), BigInt(DEV));
  assert.equal(hart.readCsr(CSR_MEPC), sym('mmio_lw_i'));
  assert.equal(hart.pc, sym('halt_handler'));
  assert.equal(hart.priv, PRIV_M);
  assert.equal(hart.getX(10), 0x77n, 'the destination is not written');
  assert.equal(hart.readCsr(CSR_MINSTRET), 1n, 'the faulting load does not retire');
  assert.throws(() => hart.completeLoad(0n), /no MMIO load is pending/);
  assert.deepEqual(hart.run(10), { kind: 'budget' }); // spins in the handler
  assert.equal(hart.pc, sym('halt_handler'));
});

test('accessFault() after an MMIO store raises a store access fault at the store and un-retires it', () => {
  const { hart } = machine({ entry: 'mmio_st' });
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  const e = hart.run(100);
  assert.equal(asMmio(e).write, true);
  const setup = (sym('mmio_sd_i') - sym('mmio_st')) / 4n;
  assert.equal(hart.readCsr(CSR_MINSTRET), setup + 1n); // the setup instructions and the store
  hart.accessFault();
  assert.equal(hart.readCsr(CSR_MCAUSE), 7n);
  assert.equal(hart.readCsr(CSR_MTVAL), BigInt(DEV + 8));
  assert.equal(hart.readCsr(CSR_MEPC), sym('mmio_sd_i'));
  assert.equal(hart.pc, sym('halt_handler'));
  assert.equal(hart.readCsr(CSR_MINSTRET), setup);
});

test('accessFault() after a compressed MMIO store puts mepc on the 2-byte store', () => {
  const { hart } = machine({ entry: 'mmio_st' });
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  for (let i = 0; i < 4; i++) asMmio(hart.run(100));
  const e = hart.run(100);
  assert.equal(asMmio(e).gpa, DEV + 24);
  hart.accessFault();
  assert.equal(hart.readCsr(CSR_MCAUSE), 7n);
  assert.equal(hart.readCsr(CSR_MEPC), sym('mmio_csd_i'));
  assert.equal(hart.readCsr(CSR_MTVAL), BigInt(DEV + 24));
});

test('accessFault() after a store leaves minstret and mcycle alone when mcountinhibit inhibits them', () => {
  const { hart } = machine({ entry: 'mmio_st' });
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  hart.writeCsr(CSR_MCOUNTINHIBIT, 5n);
  asMmio(hart.run(100));
  hart.accessFault();
  assert.equal(hart.readCsr(CSR_MINSTRET), 0n);
  assert.equal(hart.readCsr(CSR_MCYCLE), 0n);
});

test('access faults from S-mode behind Sv39 report the virtual address; the exit reports the guest-physical one', () => {
  const { hart, pmap } = machine({ entry: 'smode_s' });
  // Root page table at 0x80100000: gigapage 1 (VA 0x40000000) -> PA 0, gigapage 2 -> PA 0x80000000.
  const pt = new Uint8Array(PAGE_SIZE);
  const dv = new DataView(pt.buffer);
  const VRWXAD = 0xcfn;
  dv.setBigUint64(1 * 8, (0n << 10n) | VRWXAD, true);
  dv.setBigUint64(2 * 8, (0x80000n << 10n) | VRWXAD, true);
  pmap.write(0x8010_0000, pt);
  hart.writeCsr(CSR_SATP, (8n << 60n) | 0x80100n);
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  // S-mode needs a PMP entry: one NAPOT entry over everything, RWX.
  hart.writeCsr(0x3b0, (1n << 54n) - 1n);
  hart.writeCsr(0x3a0, 0x1fn);

  const load = hart.run(100);
  assert.deepEqual(mmioLoad(load), { kind: 'mmio', write: false, gpa: DEV + 4, size: 4, dest: { file: 'x', reg: 10, signed: true } });
  assert.equal(hart.priv, 1);
  assert.equal(hart.pc, sym('smode_ld_i'));
  hart.completeLoad(0x42n);
  const store = hart.run(100);
  assert.deepEqual(store, { kind: 'mmio', write: true, gpa: DEV + 8, size: 4, value: 0x42n, dest: null });
  hart.accessFault();
  assert.equal(hart.readCsr(CSR_MCAUSE), 7n);
  assert.equal(hart.readCsr(CSR_MTVAL), 0x5000_0008n);
  assert.equal(hart.readCsr(CSR_MEPC), sym('smode_st_i'));
  assert.equal((hart.readCsr(CSR_MSTATUS) >> 11n) & 3n, 1n); // MPP = S
  assert.equal(hart.priv, PRIV_M);
  assert.equal(hart.pc, sym('halt_handler'));

  // And a load fault from S-mode.
  // Back to S-mode through the mret of smode_s (mstatus.MPP is S after the trap).
  hart.writeCsr(CSR_MEPC, sym('smode_body'));
  hart.pc = sym('smode_mret');
  const load2 = hart.run(100);
  assert.equal(asMmio(load2).gpa, DEV + 4);
  hart.accessFault();
  assert.equal(hart.readCsr(CSR_MCAUSE), 5n);
  assert.equal(hart.readCsr(CSR_MTVAL), 0x5000_0004n);
  assert.equal(hart.readCsr(CSR_MEPC), sym('smode_ld_i'));
});

// ------------------------------------------------------------------ ECALL, WFI

test('ECALL exits when the privilege is in ecallExitMask, and traps with mcause 11 otherwise', () => {
  {
    const { hart } = machine({ entry: 'ecall_s', ecallExitMask: 1 << PRIV_M });
    assert.deepEqual(hart.run(100), { kind: 'ecall', priv: PRIV_M });
    assert.equal(hart.pc, sym('ecall_after'));
    assert.equal(hart.readCsr(CSR_MINSTRET), 2n);
  }
  {
    const { hart } = machine({ entry: 'ecall_s', ecallExitMask: 0 });
    hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
    assert.deepEqual(hart.run(100), { kind: 'budget' });
    assert.equal(hart.readCsr(CSR_MCAUSE), 11n);
    assert.equal(hart.readCsr(CSR_MEPC), sym('ecall_i'));
    assert.equal(hart.readCsr(CSR_MTVAL), 0n);
    assert.equal(hart.pc, sym('halt_handler'));
  }
  {
    // Only the S bit: an ECALL from M still traps.
    const { hart } = machine({ entry: 'ecall_s', ecallExitMask: 1 << 1 });
    hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
    assert.deepEqual(hart.run(100), { kind: 'budget' });
    assert.equal(hart.readCsr(CSR_MCAUSE), 11n);
  }
  {
    // ecallExitMask is a public field the host may change between runs.
    const { hart } = machine({ entry: 'ecall_s', ecallExitMask: 0 });
    hart.ecallExitMask = 1 << PRIV_M;
    assert.deepEqual(hart.run(100), { kind: 'ecall', priv: PRIV_M });
  }
});

test('WFI with no interrupt pending exits; the interrupt is taken once the line rises and MIE is on', () => {
  const { hart } = machine({ entry: 'wfi_s' });
  hart.writeCsr(CSR_MTVEC, sym('report_handler'));
  assert.deepEqual(hart.run(100), { kind: 'wfi' });
  assert.equal(hart.pc, sym('wfi_after'));
  assert.equal(hart.interruptPendingForWfi(), false);
  hart.port.setIrqLine(1 << 3, true);
  assert.equal(hart.interruptPendingForWfi(), true);
  assert.equal(hart.readCsr(CSR_MIP) & 8n, 8n);
  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(hart.getX(11), (1n << 63n) | 3n);
  assert.equal(hart.readCsr(CSR_MEPC), sym('wfi_spin'));
});

test('WFI with the MSIP line already up and MSIE enabled does not exit; the interrupt is taken when MIE is set', () => {
  const { hart } = machine({ entry: 'wfi_s' });
  hart.writeCsr(CSR_MTVEC, sym('report_handler'));
  hart.port.setIrqLine(1 << 3, true);
  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(hart.getX(11), (1n << 63n) | 3n);
  assert.equal(hart.readCsr(CSR_MCAUSE), (1n << 63n) | 3n);
  assert.equal(hart.readCsr(CSR_MEPC), sym('wfi_spin'));
  // WFI retired, then csrsi, then the interrupt; the handler's csrr and ecall.
  assert.equal(hart.readCsr(CSR_MINSTRET), 6n);
});

test('WFI with a pending line but MSIE clear still exits', () => {
  const { hart } = machine({ entry: 'wfi_s' });
  hart.port.setIrqLine(1 << 7 /* a line not enabled */, true);
  hart.writeCsr(CSR_MTVEC, sym('report_handler'));
  assert.deepEqual(hart.run(100), { kind: 'wfi' });
  assert.equal(hart.readCsr(CSR_MIE), 8n);
});

// ------------------------------------------------------------------ read-only pages

test('a store to a page without PM_WRITE exits readonly, unperformed; after PM_WRITE is restored it happens', () => {
  const { hart, pmap } = machine({ entry: 'ro_s' });
  const page = 0x8010_0000;
  const readU64 = (): bigint => new DataView(pmap.read(page, 8).buffer).getBigUint64(0, true);
  // First store with the page writable: performed (and cached in the soft TLB).
  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(readU64(), 0x1234n);
  // Take write permission away: the cached translation must not be used.
  pmap.setFlags(page, 0, PM_WRITE);
  const minstret = hart.readCsr(CSR_MINSTRET);
  assert.deepEqual(hart.run(100), { kind: 'readonly', gpa: page });
  assert.equal(hart.pc, sym('ro_st2'));
  assert.equal(readU64(), 0x1234n);
  assert.equal(hart.readCsr(CSR_MINSTRET), minstret + 1n, 'only the addi retired');
  // Still read-only: the same exit again, nothing retired.
  assert.deepEqual(hart.run(100), { kind: 'readonly', gpa: page });
  assert.equal(hart.pc, sym('ro_st2'));
  assert.equal(readU64(), 0x1234n);
  pmap.setFlags(page, PM_WRITE, 0);
  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(readU64(), 0x1235n);
});

test('a read-only page before its first store: readonly exit with the exact gpa', () => {
  const { hart, pmap } = machine({ entry: 'ro_s' });
  pmap.write(0x8010_0000, new Uint8Array(8).fill(0xee));
  pmap.setFlags(0x8010_0000, 0, PM_WRITE);
  assert.deepEqual(hart.run(100), { kind: 'readonly', gpa: 0x8010_0000 });
  assert.equal(hart.pc, sym('ro_st1'));
  assert.deepEqual([...pmap.read(0x8010_0000, 8)], new Array(8).fill(0xee));
});

test('a store to a ROM region raises a store access fault (not a readonly exit)', () => {
  const { hart, pmap } = machine({ entry: 'rom_s', extraRegions: [{ name: 'rom', kind: 'rom', base: 0x2000_0000, size: PAGE_SIZE }] });
  pmap.write(0x2000_0000, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  assert.deepEqual(hart.run(100), { kind: 'budget' });
  assert.equal(hart.getX(10), 0x0807_0605_0403_0201n);
  assert.equal(hart.readCsr(CSR_MCAUSE), 7n);
  assert.equal(hart.readCsr(CSR_MEPC), sym('rom_st_i'));
  assert.equal(hart.readCsr(CSR_MTVAL), 0x2000_0000n);
  assert.deepEqual([...pmap.read(0x2000_0000, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
});

// ------------------------------------------------------------------ HTIF

test('a store of 1 to a watched tohost exits htif with value 1, pc past the store; a store of 0 does not exit', () => {
  const tohost = Number(sym('tohost'));
  const { hart, pmap } = machine({ entry: 'htif_s', tohost });
  pmap.setFlags(tohost, PM_WATCH, 0);
  assert.deepEqual(hart.run(100), { kind: 'htif', value: 1n });
  assert.equal(hart.pc, sym('htif_after'));
  assert.equal(hart.readCsr(CSR_MINSTRET), (sym('htif_after') - sym('htif_s')) / 4n); // la (2), sd, li, sd
  assert.deepEqual([...pmap.read(tohost, 8)], [1, 0, 0, 0, 0, 0, 0, 0]);
});

test('without tohost configured the same program just stores', () => {
  const { hart, pmap } = machine({ entry: 'htif_s' });
  const tohost = Number(sym('tohost'));
  pmap.setFlags(tohost, PM_WATCH, 0);
  assert.deepEqual(hart.run(100), { kind: 'budget' });
  assert.deepEqual([...pmap.read(tohost, 8)], [1, 0, 0, 0, 0, 0, 0, 0]);
});

test('an AMO to the watched tohost page leaves no stale watch behind: a later store elsewhere is no HTIF exit', () => {
  const tohost = Number(sym('tohost'));
  const { hart, pmap } = machine({ entry: 'htif_amo_s', tohost });
  pmap.setFlags(tohost, PM_WATCH, 0);
  assert.deepEqual(hart.run(100), { kind: 'budget' });
  assert.deepEqual([...pmap.read(0x8010_0000, 8)], [0x77, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...pmap.read(tohost, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
});

// ------------------------------------------------------------------ nomem

test('touching more RAM pages than limitFrames allows exits nomem at the first page that cannot be backed', () => {
  const spare = 2;
  const limit = imagePages() + spare;
  const { hart, pmap } = machine({ entry: 'nomem_s', limitFrames: limit });
  assert.equal(pmap.framesMapped(), imagePages());
  const e = hart.run(1000);
  assert.deepEqual(e, { kind: 'nomem', gpa: 0x8010_0000 + spare * PAGE_SIZE });
  assert.equal(hart.pc, sym('nomem_i'));
  assert.equal(hart.getX(28), 8n - BigInt(spare), 't3 counts the stores done');
  assert.equal(pmap.framesMapped(), limit);
  assert.deepEqual([...pmap.read(0x8010_0000, 1)], [8]);
  assert.deepEqual([...pmap.read(0x8010_1000, 1)], [7]);
  // Not retired, and it stays that way.
  assert.deepEqual(hart.run(1000), e);
  assert.equal(hart.pc, sym('nomem_i'));
});

test('an exhausted machine-memory pool also exits nomem', () => {
  const { hart, mem, pmap } = machine({ entry: 'nomem_s', poolBytes: 4 * 1024 * 1024 });
  // 1024 frames: frame 0 is never used, the hart takes its state block and TLB, the image its pages.
  const hartFrames = Math.ceil(HART_BLOCK_BYTES / PAGE_SIZE) + Math.ceil(TLB_BYTES / PAGE_SIZE) +
    (jitAttached(hart) ? LOOKUP_BYTES / PAGE_SIZE : 0); // the translator's lookup table
  assert.equal(mem.framesFree(), 1023 - hartFrames - imagePages());
  while (mem.framesFree() > 3) assert.ok(mem.allocFrame() > 0);
  const free = 3;
  const e = hart.run(1000);
  assert.deepEqual(e, { kind: 'nomem', gpa: 0x8010_0000 + free * PAGE_SIZE });
  assert.equal(mem.framesFree(), 0);
  assert.equal(pmap.framesMapped(), imagePages() + free);
});

// ------------------------------------------------------------------ save / restore

test('save() and restore() bring back registers, pc and CSRs', () => {
  const { hart } = machine({ entry: 'sr_a' });
  assert.deepEqual(hart.run(100), ECALL_M);
  const state = hart.save();
  assert.equal(state.hartId, 0);
  assert.equal(state.block.length, HART_BLOCK_BYTES);
  const minstret = hart.readCsr(CSR_MINSTRET);
  assert.equal(hart.pc, sym('sr_b'));
  assert.equal(hart.getX(18), 0x1111n);
  assert.equal(hart.readCsr(CSR_MSCRATCH), 0x5555n);

  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(hart.getX(18), 0x2222n);
  assert.equal(hart.getX(19), 77n);
  assert.equal(hart.readCsr(CSR_MSCRATCH), 0x7777n);
  assert.equal(hart.readCsr(CSR_MTVEC), 0n);
  assert.equal(hart.readCsr(CSR_SATP), (8n << 60n) | 0x80100n);

  hart.restore(state);
  assert.equal(hart.pc, sym('sr_b'));
  assert.equal(hart.getX(18), 0x1111n);
  assert.equal(hart.getX(19), 0xffff_ffff_ffff_fffen);
  assert.equal(hart.readCsr(CSR_MSCRATCH), 0x5555n);
  assert.equal(hart.readCsr(CSR_MTVEC), sym('halt_handler'));
  assert.equal(hart.readCsr(CSR_SATP), 0n);
  assert.equal(hart.readCsr(CSR_MINSTRET), minstret);
  assert.equal(hart.priv, PRIV_M);

  // The restored hart replays the second phase identically.
  assert.deepEqual(hart.run(100), ECALL_M);
  assert.equal(hart.getX(18), 0x2222n);
  assert.equal(hart.readCsr(CSR_MSCRATCH), 0x7777n);

  // The snapshot is a copy: later runs do not change it.
  hart.restore(state);
  assert.equal(hart.getX(18), 0x1111n);
});

test('restore() rejects a wrong version or block size, and leaves the hart unchanged', () => {
  const { hart } = machine({ entry: 'sr_a' });
  assert.deepEqual(hart.run(100), ECALL_M);
  const state = hart.save();
  hart.setX(18, 0xabcn);
  assert.throws(() => hart.restore({ ...state, version: state.version + 1 }), RangeError);
  assert.throws(() => hart.restore({ ...state, block: state.block.subarray(8) }), RangeError);
  assert.equal(hart.getX(18), 0xabcn);
});

test('restore() discards a pending MMIO load', () => {
  const { hart } = machine({ entry: 'mmio_lw' });
  const state = hart.save();
  asMmio(hart.run(100));
  hart.restore(state);
  assert.equal(hart.pc, sym('mmio_lw'));
  assert.throws(() => hart.completeLoad(0n), /no MMIO load is pending/);
  assert.equal(asMmio(hart.run(100)).gpa, DEV);
});

test('a snapshot restores into a hart of another machine', () => {
  const a = machine({ entry: 'sr_a' });
  assert.deepEqual(a.hart.run(100), ECALL_M);
  const b = machine({ entry: 'spin' });
  b.hart.restore(a.hart.save());
  assert.equal(b.hart.pc, sym('sr_b'));
  assert.deepEqual(b.hart.run(100), ECALL_M);
  assert.equal(b.hart.getX(18), 0x2222n);
  assert.equal(b.hart.readCsr(CSR_MSCRATCH), 0x7777n);
});

// ------------------------------------------------------------------ registers and CSRs

test('register and CSR accessors follow the architecture', () => {
  const { hart } = machine({ entry: 'spin' });
  hart.setX(0, 5n);
  assert.equal(hart.getX(0), 0n);
  hart.setX(5, -1n);
  assert.equal(hart.getX(5), 0xffff_ffff_ffff_ffffn);
  hart.setX(6, 1n << 64n | 7n);
  assert.equal(hart.getX(6), 7n);

  assert.equal(hart.readCsr(CSR_MISA), MISA_RV64_IMAFDCSU);
  hart.writeCsr(CSR_MISA, 0n);
  assert.equal(hart.readCsr(CSR_MISA), MISA_RV64_IMAFDCSU);

  hart.writeCsr(CSR_MSTATUS, 3n << 11n);
  assert.equal((hart.readCsr(CSR_MSTATUS) >> 11n) & 3n, 3n);
  hart.writeCsr(CSR_MSTATUS, 2n << 11n);
  assert.equal((hart.readCsr(CSR_MSTATUS) >> 11n) & 3n, 3n, 'MPP=2 is reserved: the old value stays');
  hart.writeCsr(CSR_MSTATUS, 1n << 11n);
  assert.equal((hart.readCsr(CSR_MSTATUS) >> 11n) & 3n, 1n);
  // UXL = SXL = 2, read-only
  hart.writeCsr(CSR_MSTATUS, 0n);
  assert.equal(hart.readCsr(CSR_MSTATUS), 0xa_0000_0000n);

  assert.equal(hart.readCsr(CSR_MHARTID), 0n);
  assert.throws(() => hart.writeCsr(CSR_MHARTID, 1n), RangeError);
  assert.throws(() => hart.readCsr(0x7ff), RangeError);

  hart.writeCsr(CSR_MTVEC, 0x8000_0102n); // MODE 2 is reserved: ignored
  assert.equal(hart.readCsr(CSR_MTVEC), 0n);
  hart.writeCsr(CSR_MTVEC, 0x8000_0101n);
  assert.equal(hart.readCsr(CSR_MTVEC), 0x8000_0101n);
  hart.writeCsr(CSR_MEPC, 0x8000_0003n);
  assert.equal(hart.readCsr(CSR_MEPC), 0x8000_0002n);
  hart.writeCsr(CSR_MSCRATCH, -1n);
  assert.equal(hart.readCsr(CSR_MSCRATCH), 0xffff_ffff_ffff_ffffn);

  const mem1 = MachineMemory.create(4 << 20);
  const h1 = new Hart({ mem: mem1, pmap: Pmap.create(mem1, []), clock: Clock.create('instructions'), hartId: 3 });
  assert.equal(h1.readCsr(CSR_MHARTID), 3n);
  assert.equal(h1.pc, 0x1000n, 'power-on pc');
});

// ------------------------------------------------------------------ isolation

test('guest loads outside every region exit as MMIO and never read machine memory', () => {
  const { hart, mem } = machine({ entry: 'iso_s' });
  // Fill frame 0 and every frame not yet handed out with a marker.
  mem.u8.fill(0xa5, 0, PAGE_SIZE);
  let filled = 0;
  for (;;) {
    const f = mem.allocFrame();
    if (f < 0) break;
    mem.u8.fill(0xa5, f * PAGE_SIZE, (f + 1) * PAGE_SIZE);
    filled++;
  }
  assert.ok(filled > 1000);

  const expected: number[] = [];
  for (let a = 0; a < DRAM; a += 0x80008) expected.push(a);
  for (let a = 0x1_8000_0000; a < 0x1_8000_0000 + RAM_BYTES; a += PAGE_SIZE) expected.push(a);
  expected.push(DRAM + RAM_BYTES);
  assert.equal(expected.length, 4096 + 512 + 1);

  let i = 0;
  for (;;) {
    const e = hart.run(1000);
    if (e.kind === 'ecall') break;
    const m = mmioLoad(e);
    assert.equal(i < expected.length, true, 'more exits than loads');
    if (m.gpa !== expected[i] || m.size !== 8 || m.dest?.reg !== 10) {
      assert.deepEqual(m, { kind: 'mmio', write: false, gpa: expected[i], size: 8, dest: { file: 'x', reg: 10, signed: true } }, `load ${i}`);
    }
    hart.completeLoad(BigInt(i));
    assert.equal(hart.getX(10), BigInt(i));
    i++;
  }
  assert.equal(i, expected.length);
});

test('fetching from an address outside every region raises an instruction access fault', () => {
  const { hart, mem } = machine({ entry: 'spin' });
  mem.u8.fill(0x13, 0, PAGE_SIZE); // frame 0 would decode as instructions
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  hart.pc = 0n;
  assert.deepEqual(hart.run(10), { kind: 'budget' });
  assert.equal(hart.readCsr(CSR_MCAUSE), 1n);
  assert.equal(hart.readCsr(CSR_MEPC), 0n);
  assert.equal(hart.readCsr(CSR_MTVAL), 0n);
  assert.equal(hart.pc, sym('halt_handler'));
});

test('an instruction fetch that faults does not retire and is not subtracted from the instructions that do', () => {
  const { hart } = machine({ entry: 'spin' });
  hart.writeCsr(CSR_MTVEC, sym('halt_handler'));
  hart.pc = 0n;
  assert.deepEqual(hart.run(10), { kind: 'budget' });
  assert.equal(hart.readCsr(CSR_MCAUSE), 1n);
  // The budget counts the faulting fetch as one step; the 9 handler instructions after it retire.
  assert.equal(hart.steps, 10);
  assert.equal(hart.readCsr(CSR_MINSTRET), 9n);
});

/**
 * Runs run(100) on a fresh hart in a worker thread (so that a hang can be cut off) with pc and mtvec
 * both at `at` (where `word`, if given, is stored first); resolves to the exit kind, or 'timeout'.
 */
function runTrapLoopInWorker(at: bigint, timeoutMs: number, word?: number): Promise<string> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    (async () => {
      const d = workerData.dist;
      const { MachineMemory } = await import(d + 'src/memory/machine-memory.js');
      const { Pmap } = await import(d + 'src/memory/pmap.js');
      const { Clock } = await import(d + 'src/cpu/clock.js');
      const { Hart } = await import(d + 'src/cpu/hart.js');
      const mem = MachineMemory.create(4 << 20);
      const pmap = Pmap.create(mem, [{ name: 'dram', kind: 'ram', base: 0x80000000, size: 1 << 20 }]);
      const hart = new Hart({ mem, pmap, clock: Clock.create('instructions'), hartId: 0 });
      if (workerData.word !== undefined) pmap.write(Number(workerData.at), new Uint8Array(new Uint32Array([workerData.word]).buffer));
      hart.reset(BigInt(workerData.at));
      hart.writeCsr(0x305, BigInt(workerData.at));
      parentPort.postMessage(hart.run(100).kind);
    })();`;
  const dist = new URL('..', import.meta.url).href;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { dist, at: at.toString(), word } });
    const timer = setTimeout(() => { void w.terminate(); resolve('timeout'); }, timeoutMs);
    w.on('message', (kind: string) => { clearTimeout(timer); void w.terminate(); resolve(kind); });
    w.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

test('the worker harness of the trap-loop test: a guest trapping on an illegal 32-bit instruction at mtvec returns budget', async () => {
  assert.equal(await runTrapLoopInWorker(0x8000_0000n, 5000, 0xffff_ffff), 'budget');
});

test('a guest trapping on every fetch returns budget: no RAM at mtvec, or an illegal compressed parcel at mtvec', async () => {
  const [noRam, rvc] = await Promise.all([runTrapLoopInWorker(0n, 2000), runTrapLoopInWorker(0x8000_0000n, 2000)]);
  assert.deepEqual({ noRam, rvc }, { noRam: 'budget', rvc: 'budget' });
});
