/* Start-up for the bare-metal benchmark programs: hart 0 runs main(); its
   return value r ends the run through HTIF (tohost = r << 1 | 1; 0 is PASS). */
  .option nopic
  .section .text.init
  .globl _start
_start:
  csrr t0, mhartid
  bnez t0, park
  li t0, (1 << 13)          /* mstatus.FS = Initial: enable F and D */
  csrs mstatus, t0
  la sp, stack_top
  call main
  slli a0, a0, 1
  ori a0, a0, 1
  la t0, tohost
  sd a0, 0(t0)
park:
  wfi
  j park

  .section .tohost, "aw", @progbits
  .align 6
  .globl tohost
  .type tohost, @object
  .size tohost, 8
tohost: .dword 0
  .align 6
  .globl fromhost
  .type fromhost, @object
  .size fromhost, 8
fromhost: .dword 0

  .bss
  .align 16
  .space 65536
stack_top:
