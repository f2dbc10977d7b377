#!/usr/bin/env bash
# The AVX-512 kernels on a CPU without AVX-512: builds EdgeKernels with avx512.c on SIMDe's portable
# AVX-512 (EDGE_AVX512_EMULATED; scripts/avx512-emulation/) and runs check_kernels.c, which compares
# the AVX2 and AVX-512 levels with the scalar `_ref` kernels over odd sizes and checks the GEMM kernel
# names the dispatch reports, once with the AVX-512BW int8 kernel and once with the VNNI one.
# Needs an x86-64 CPU with AVX2 + FMA + F16C, cc and SIMDe (apt-get install libsimde-dev).
# Usage: scripts/test-avx512-emulated.sh   Prints "N passed, M failed" per run; exits non-zero on a failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k=$root/Sources/EdgeKernels
e=$root/scripts/avx512-emulation
[ -f /usr/include/simde/x86/avx512.h ] || { echo "test-avx512-emulated: SIMDe missing (apt-get install libsimde-dev)" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -std=gnu11 -O2 -mavx2 -mfma -mf16c -DEDGE_AVX512_EMULATED -Wno-psabi -I"$e" -I"$k/include" -I"$k" \
  "$e/check_kernels.c" "$k"/*.c -o "$tmp/check" -lm -lpthread
for vnni in 0 1; do
  echo "== AVX-512 emulated, VNNI=$vnni"
  EDGE_EMULATE_VNNI=$vnni "$tmp/check" $([ $vnni = 1 ] && echo avx512)
done
