#!/usr/bin/env bash
# Single-thread throughput (GOPS = 2 * T * rows * cols per second, median of 15 samples) of the
# int16-activation kernels in each x86 form: AVX2, AVX-512 with VNNI (where the CPU has it) and
# AVX-512BW, on SmolLM2-135M's shapes (T tokens x [rows, cols] weights). Rounds alternate the forms
# (ROUNDS, default 3) and the table gives each form's median over the rounds.
# Packed (many tokens): edge_matmul_q8_i16 at T = 512. Decoding (T = 1 and 4): edge_matmul_q8_i16
# (and, with OPS="q8 q4", edge_matmul_q4_i16 in groups of 64: every x86 level now runs AVX2's kernel
# for it), once with the weights in cache ("hot") and once cycling through enough copies (> 256 MB)
# that they stream from memory ("cold"), as decoding does.
# Usage: scripts/bench-i16.sh   (needs an AVX-512 CPU and clang, or CC; OPS="q8" and PACKED=1 by
# default: the decoding products and whether to run the packed shapes). Prints a Markdown table.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k=$root/Sources/EdgeKernels
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
${CC:-clang} -O2 -I"$k/include" -I"$k" "$root/scripts/bench_i16.c" "$k"/*.c -o "$tmp/bench" -lm -lpthread
rounds=${ROUNDS:-3}
forms="avx2 avx512 avx512-bw"
median() { python3 -c "import sys,statistics; print(f'{statistics.median(float(x) for x in sys.argv[1:]):.1f}')" "$@"; }
# run OP T ROWS COLS COPIES: one table row, the forms alternated for `rounds` rounds.
run() {
  declare -A res names
  for _ in $(seq "$rounds"); do
    for f in $forms; do
      read -r g n < <("$tmp/bench" "$1" "$2" "$3" "$4" "$f" 64 "$5")
      res[$f]="${res[$f]:-} $g"; names[$f]=$n
    done
  done
  a=$(median ${res[avx2]}); v=$(median ${res[avx512]}); b=$(median ${res[avx512-bw]})
  echo "| $1 | $2 x $3 x $4 | $6 | $a | $v | $b | $(python3 -c "print(f'{$v/$a:.2f}x')") | ${names[avx512]} / ${names[avx512-bw]} |"
}
copies() { python3 -c "import math; print(max(1, math.ceil(256e6 / ($2 * $3 * ('$1' == 'q4' and 0.5 or 1)))))" "$@"; }
echo "| product | T x rows x cols | weights | AVX2 GOPS | AVX-512 VNNI GOPS | AVX-512BW GOPS | VNNI / AVX2 | kernels |"
echo "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"
[ "${PACKED:-1}" = 1 ] && for shape in "512 576 576" "512 1536 576" "512 576 1536" "512 49152 576"; do
  set -- $shape
  run q8 "$1" "$2" "$3" 1 hot
done
for op in ${OPS:-q8}; do
  for shape in "1 576 576" "1 1536 576" "1 576 1536" "1 49152 576" "4 1536 576"; do
    set -- $shape
    run "$op" "$1" "$2" "$3" 1 hot
    run "$op" "$1" "$2" "$3" "$(copies "$op" "$2" "$3")" cold
  done
done
