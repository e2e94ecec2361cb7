#!/usr/bin/env bash
# Runs already-built RISC-V ISA test ELFs (rv64ui, rv64um, rv64ua, rv64uc, rv64uf,
# rv64ud, rv64si, rv64mi; p and v environments) through `disco run --bios`.
#   scripts/run-isa-tests.sh DIR [extra disco run options...]
# DIR holds the test binaries (files named rv64*-p-* and rv64*-v-*, no .dump).
# Prints one line per test and a summary; exits non-zero if any test fails.
set -uo pipefail
dir=${1:?usage: run-isa-tests.sh DIR [disco run options]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
pass=0; fail=0; failed=()
for t in "$dir"/rv64{ui,um,ua,uc,uf,ud,si,mi}-[pv]-*; do
  [ -f "$t" ] || continue
  case "$t" in *.dump|*.out) continue;; esac
  out=$(timeout 120 node "$root/dist/src/cli/main.js" run --bios "$t" --max-instructions 100000000 "$@" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && [ "$out" = "PASS" ]; then pass=$((pass+1)); else fail=$((fail+1)); failed+=("$(basename "$t"): $out (exit $rc)"); fi
done
for f in "${failed[@]}"; do echo "FAILED $f"; done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
