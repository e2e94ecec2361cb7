#!/usr/bin/env bash
# Runs a Disco bare-metal test program on QEMU instead of Disco, with Disco's
# command line, so that test/asm.test.ts can be pointed at QEMU:
#
#   DISCO_ASM_RUNNER=test/asm/qemu-runner.sh node --test dist/test/asm.test.js
#   test/asm/qemu-runner.sh run --bios build/asm/rv64i.elf [--cpus N] [--max-instructions N]
#
# The machine is QEMU's `spike` (HTIF tohost, CLINT at 0x2000000, RAM at
# 0x80000000), except for programs that define the symbol __qemu_needs_virt
# (QEMU_NEEDS_VIRT in common.h): they need the `time` CSR, which QEMU's spike
# machine lacks, and run on `virt` (same CPU, CLINT and RAM; those programs
# end through the SiFive test finisher after their tohost store).
#
# QEMU's CPU is configured like Disco's: RV64GC + Zicsr/Zifencei/
# Zihintpause, Sstc, PMP, Sv39/Sv48 -- without the extensions QEMU 7.2 enables
# by default that Disco does not have (H, Zba/Zbb/Zbc/Zbs, debug triggers).
#
# Exit status and output as Disco's runner: 0 and "PASS", or 1 and
# "FAIL test N" (QEMU exits with N on a tohost FAIL), 2 on a timeout or error.
# --max-instructions is ignored; QEMU_RUNNER_TIMEOUT (seconds, default 30)
# bounds the run.
set -u

if [ "${1:-}" = "run" ]; then shift; fi
elf=""
cpus=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bios) elf="$2"; shift 2 ;;
    --bios=*) elf="${1#--bios=}"; shift ;;
    --cpus) cpus="$2"; shift 2 ;;
    --cpus=*) cpus="${1#--cpus=}"; shift ;;
    --max-instructions) shift 2 ;;
    --max-instructions=*) shift ;;
    *) echo "qemu-runner: unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$elf" ] || [ ! -f "$elf" ]; then
  echo "qemu-runner: usage: $0 run --bios FILE.elf [--cpus N]" >&2
  exit 2
fi

machine=spike
if riscv64-linux-gnu-nm "$elf" 2>/dev/null | grep -q ' __qemu_needs_virt$'; then
  machine=virt
fi

timeout "${QEMU_RUNNER_TIMEOUT:-30}" \
  qemu-system-riscv64 -machine "$machine" -smp "$cpus" -m 128M \
    -cpu rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false,debug=false \
    -nographic -monitor none -serial null -bios none -kernel "$elf" </dev/null
rc=$?
case $rc in
  0) echo "PASS"; exit 0 ;;
  124) echo "TIMEOUT (qemu-system-riscv64 -machine $machine, ${QEMU_RUNNER_TIMEOUT:-30} s)"; exit 2 ;;
  *) echo "FAIL test $rc (qemu-system-riscv64 -machine $machine)"; exit 1 ;;
esac
