#!/usr/bin/env bash
# Regenerates test/fpu/vectors.txt from the RISC-V reference model in
# qemu-user (development-time oracle; the tests only read vectors.txt).
#   bash test/fpu/gen-vectors.sh [SCALE [SEED]] [> other-file]
# With no arguments it rewrites the committed vectors.txt.  A larger SCALE
# writes a bigger random set to stdout, for a deeper local check:
#   bash test/fpu/gen-vectors.sh 50 0x1234 > /tmp/big.txt
#   FPU_VECTORS=/tmp/big.txt node --test dist/test/fpu.test.js
# Needs: riscv64-linux-gnu-gcc (Debian gcc-riscv64-linux-gnu), qemu-riscv64
# (Debian qemu-user).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${TMPDIR:-/tmp}/disco-fpu-gen"
mkdir -p "$build"
riscv64-linux-gnu-gcc -static -O2 -Wall -Wextra -o "$build/gen-vectors" "$here/gen-vectors.c"
if [ $# -eq 0 ]; then
  qemu-riscv64 "$build/gen-vectors" > "$here/vectors.txt"
  ls -l "$here/vectors.txt" >&2
else
  qemu-riscv64 "$build/gen-vectors" "$@"
fi
