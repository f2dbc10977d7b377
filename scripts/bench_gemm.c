// GEMM throughput of edge_matmul_f32 or edge_matmul_bf16 (one thread) on the shapes training and
// perplexity use. Built and run by scripts/bench-gemm.sh. Usage: bench_gemm T ROWS COLS REPEATS
// [auto|dot|bf16|bf16-f32] (auto: the f32 GEMM, default; dot: the f32 dot-product kernel at every size,
// the baseline; bf16: edge_matmul_bf16; bf16-f32: edge_matmul_bf16 without vdpbf16ps, the f32 kernel on
// rounded operands). Prints "GFLOPS KERNEL", the kernel as the dispatch names it.
#include "EdgeKernelsMath.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: bench_gemm T ROWS COLS REPEATS [auto|dot|bf16|bf16-f32]\n"); return 2; }
    size_t T = strtoul(argv[1], 0, 10), rows = strtoul(argv[2], 0, 10), cols = strtoul(argv[3], 0, 10);
    int repeats = atoi(argv[4]);
    const char *mode = argc == 6 ? argv[5] : "auto";
    bool bf16 = strncmp(mode, "bf16", 4) == 0;
    if (!edge_kernels_set_gemm_mode(strcmp(mode, "dot") == 0 ? EDGE_GEMM_DOT : EDGE_GEMM_AUTO)) return 2;
    if (strcmp(mode, "bf16-f32") == 0) edge_kernels_set_bf16_native(false);
    // BENCH_LEVEL=avx2: the AVX2 level on a CPU that has more (as --kernels avx2 does).
    const char *level = getenv("BENCH_LEVEL");
    if (level && strcmp(level, "avx2") == 0 && !edge_kernels_force(EDGE_KERNELS_AVX2)) return 2;
    float *W = malloc(4 * rows * cols), *X = malloc(4 * T * cols), *Y = malloc(4 * T * rows);
    if (!W || !X || !Y) return 1;
    for (size_t i = 0; i < rows * cols; i++) W[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < T * cols; i++) X[i] = (float)(i % 5) * 0.1f;
    void (*product)(const float *, const float *, float *, size_t, size_t, size_t, size_t, size_t) =
        bf16 ? edge_matmul_bf16 : edge_matmul_f32;
    product(W, X, Y, T, rows, cols, 0, rows);
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        product(W, X, Y, T, rows, cols, 0, rows);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%.2f %s\n", 2.0 * T * rows * cols / best / 1e9,
           bf16 ? edge_kernels_bf16_name() : edge_kernels_gemm_name(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, T));
    return 0;
}
