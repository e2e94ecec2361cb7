#!/usr/bin/env bash
# Installs what Disco's tests and tools need from Debian, once, and says why.
# Idempotent: a second run checks and does nothing.
#   gcc-riscv64-linux-gnu, binutils-riscv64-linux-gnu: build the RISC-V test
#     programs (assembly and C) at test time.
#   e2fsprogs: mke2fs builds the ext4 root disk of `disco image build`;
#     debugfs and e2fsck check it in the tests.
set -euo pipefail
need=()
command -v riscv64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-riscv64-linux-gnu)
command -v riscv64-linux-gnu-objcopy >/dev/null 2>&1 || need+=(binutils-riscv64-linux-gnu)
PATH="$PATH:/sbin:/usr/sbin" command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
if [ ${#need[@]} -gt 0 ]; then
  echo "disco setup: installing Debian packages: ${need[*]}" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -d node_modules/typescript ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
