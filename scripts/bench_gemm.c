// GEMM throughput of edge_matmul_f32 (one thread) on the shapes training and perplexity use.
// Built and run by scripts/bench-gemm.sh. Usage: bench_gemm T ROWS COLS REPEATS [auto|dot]
// (the GEMM mode, default auto; dot = the dot-product kernel at every size, the baseline).
// Prints "GFLOPS KERNEL", the kernel as the dispatch names it.
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
    if (argc != 5 && argc != 6) { fprintf(stderr, "usage: bench_gemm T ROWS COLS REPEATS [auto|dot]\n"); return 2; }
    size_t T = strtoul(argv[1], 0, 10), rows = strtoul(argv[2], 0, 10), cols = strtoul(argv[3], 0, 10);
    int repeats = atoi(argv[4]);
    if (argc == 6 && !edge_kernels_set_gemm_mode(strcmp(argv[5], "dot") == 0 ? EDGE_GEMM_DOT : EDGE_GEMM_AUTO)) return 2;
    float *W = malloc(4 * rows * cols), *X = malloc(4 * T * cols), *Y = malloc(4 * T * rows);
    if (!W || !X || !Y) return 1;
    for (size_t i = 0; i < rows * cols; i++) W[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < T * cols; i++) X[i] = (float)(i % 5) * 0.1f;
    edge_matmul_f32(W, X, Y, T, rows, cols, 0, rows);
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        double t0 = now();
        edge_matmul_f32(W, X, Y, T, rows, cols, 0, rows);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("%.2f %s\n", 2.0 * T * rows * cols / best / 1e9, edge_kernels_gemm_name(EDGE_KERNELS_AUTO, EDGE_GEMM_OP_F32, T));
    return 0;
}
