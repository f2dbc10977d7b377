#!/usr/bin/env bash
# Single-thread GEMM throughput (GFLOPS, best of REPEATS) on SmolLM2-135M's shapes (T tokens x [rows,
# cols] weights): the f32 packed kernel against the dot-product kernel (GEMM mode dot), and training's
# bfloat16 product (edge_matmul_bf16: vdpbf16ps where the CPU has AVX512_BF16) against the f32 packed one.
# Usage: scripts/bench-gemm.sh   (REPEATS default 5; needs cc). Prints a Markdown table naming the
# kernels the dispatch ran (the best level this CPU runs; BENCH_LEVEL=avx2: the AVX2 level, as on a CPU
# without AVX-512, where the bf16 column is the f32 tile on rounded operands).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k=$root/Sources/EdgeKernels
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cc -O2 -I"$k/include" -I"$k" "$root/scripts/bench_gemm.c" "$k"/*.c -o "$tmp/bench" -lm -lpthread
repeats=${REPEATS:-5}
echo "| T x rows x cols | packed GFLOPS | dot GFLOPS | packed / dot | bf16 GFLOPS | bf16 / packed | kernels |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
for shape in "1024 1536 576" "1024 576 1536" "1536 576 1024" "512 49152 576" "64 64 256"; do
  set -- $shape
  read -r p pk < <("$tmp/bench" "$1" "$2" "$3" "$repeats" auto)
  read -r d dk < <("$tmp/bench" "$1" "$2" "$3" "$repeats" dot)
  read -r b bk < <("$tmp/bench" "$1" "$2" "$3" "$repeats" bf16)
  echo "| $1 x $2 x $3 | $p | $d | $(python3 -c "print(f'{$p/$d:.2f}x')") | $b | $(python3 -c "print(f'{$b/$p:.2f}x')") | $pk / $dk / $bk |"
done
