/*
 * A Linux RISC-V Image header (Documentation/arch/riscv/boot-image-header.rst)
 * in front of a small S-mode program, so Disco boots it as it boots Debian's
 * kernel: loaded at DRAM + 2 MiB, entered in S-mode with a0 = hart id and
 * a1 = the device tree, SBI served by the hypervisor.
 */
  .option norvc
  .section .text.head, "ax"
  .globl _start
_start:
  j 1f                      /* code0 */
  .word 0                   /* code1 */
  .dword 0x200000           /* text_offset */
  .dword _end - _start      /* image_size */
  .dword 0                  /* flags */
  .word 2                   /* version */
  .word 0
  .dword 0
  .ascii "RISCV\0\0\0"      /* magic */
  .ascii "RSC\x05"          /* magic2 */
  .word 0
1:
  la sp, stack_top
  la t0, trap_entry
  csrw stvec, t0
  call main
2: wfi
  j 2b

/* A secondary hart of SPIN_SMP: counts forever, needing no stack. */
  .globl secondary_spin
secondary_spin:
  addi t0, t0, 1
  j secondary_spin

/* Every exception skips the faulting (4-byte) instruction and counts it. */
  .align 4
trap_entry:
  addi sp, sp, -16
  sd t0, 0(sp)
  sd t1, 8(sp)
  csrr t0, sepc
  addi t0, t0, 4
  csrw sepc, t0
  la t1, faults
  ld t0, 0(t1)
  addi t0, t0, 1
  sd t0, 0(t1)
  ld t1, 8(sp)
  ld t0, 0(sp)
  addi sp, sp, 16
  sret

  .section .bss
  .align 12
  .globl faults
faults: .dword 0
  .space 16384
stack_top:
