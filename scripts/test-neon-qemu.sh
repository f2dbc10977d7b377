#!/usr/bin/env bash
# The NEON kernels on an x86-64 machine: cross-builds scripts/avx512-emulation/check_kernels.c with
# EdgeKernels for arm64 (clang + lld, static) and runs it under qemu-aarch64, comparing the NEON level
# with the scalar `_ref` kernels over odd sizes and checking its GEMM kernel names.
# Needs clang and lld (the Swift toolchain's do) and, from apt: qemu-user, libc6-dev-arm64-cross,
# libgcc-12-dev-arm64-cross. Usage: scripts/test-neon-qemu.sh   Prints "N passed, M failed".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
k=$root/Sources/EdgeKernels
gcc_cross=$(ls -d /usr/lib/gcc-cross/aarch64-linux-gnu/* 2>/dev/null | sort -V | tail -1)
[ -n "$gcc_cross" ] && [ -d /usr/aarch64-linux-gnu/include ] && command -v qemu-aarch64 >/dev/null || {
  echo "test-neon-qemu: needs qemu-user, libc6-dev-arm64-cross and libgcc-12-dev-arm64-cross" >&2; exit 2; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
clang --target=aarch64-linux-gnu --sysroot=/ -isystem /usr/aarch64-linux-gnu/include -fuse-ld=lld -static \
  -B/usr/aarch64-linux-gnu/lib -L/usr/aarch64-linux-gnu/lib -B"$gcc_cross" -L"$gcc_cross" -std=gnu11 -O2 \
  -I"$k/include" -I"$k" "$root/scripts/avx512-emulation/check_kernels.c" "$k"/*.c -o "$tmp/check" -lm -lpthread
qemu-aarch64 "$tmp/check" neon
