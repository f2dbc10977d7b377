// Single-thread throughput of the int16-activation products (edge_matmul_q8_i16, edge_matmul_q4_i16)
// in one kernel form. Built and run by scripts/bench-i16.sh.
// Usage: bench_i16 q8|q4 T ROWS COLS FORM [GROUP [COPIES]]
//   FORM: avx2, avx512 (the CPU's choice: VNNI where present) or avx512-bw (edge_kernels_set_vnni(false)).
//   GROUP: the q4 group size (default 64). COPIES: weight copies cycled through, call after call (default
//   1: the weights stay in cache; enough for > 256 MB of weights streams them from memory, as decoding does).
// Prints "GOPS KERNEL" (2 * T * ROWS * COLS per call over the median of 15 samples of calls).
#include "EdgeKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: bench_i16 q8|q4 T ROWS COLS FORM [GROUP [COPIES]]\n"); return 2; }
    int q4 = strcmp(argv[1], "q4") == 0;
    size_t T = strtoul(argv[2], 0, 10), rows = strtoul(argv[3], 0, 10), cols = strtoul(argv[4], 0, 10);
    const char *form = argv[5];
    size_t gs = argc > 6 ? strtoul(argv[6], 0, 10) : 64, copies = argc > 7 ? strtoul(argv[7], 0, 10) : 1;
    edge_kernel_level level = strcmp(form, "avx2") == 0 ? EDGE_KERNELS_AVX2 : EDGE_KERNELS_AVX512;
    if (!edge_kernels_force(level)) { fprintf(stderr, "bench_i16: %s not available\n", form); return 2; }
    if (strcmp(form, "avx512-bw") == 0 && edge_kernels_uses_vnni() && !edge_kernels_set_vnni(false)) return 2;
    size_t ld = edge_i16_stride(cols), nb = (cols + 255) / 256, groups = (cols + gs - 1) / gs;
    size_t wbytes = q4 ? rows * ((cols + 1) / 2) : rows * cols;
    uint8_t *W = malloc(wbytes * copies);
    float *ws = malloc(4 * rows), *X = malloc(4 * T * cols), *xs = malloc(4 * T * nb), *Y = malloc(4 * T * rows);
    uint16_t *sc = malloc(2 * rows * groups);
    uint8_t *zero = malloc(rows * groups);
    int16_t *Xq = malloc(2 * T * ld);
    if (!W || !ws || !X || !xs || !Y || !sc || !zero || !Xq) return 1;
    for (size_t i = 0; i < wbytes * copies; i++) W[i] = (uint8_t)(q4 ? (i * 37) % 256 : (i * 37) % 255 + 1);
    for (size_t i = 0; i < rows; i++) ws[i] = 0.01f;
    for (size_t i = 0; i < rows * groups; i++) { sc[i] = edge_f32_to_f16(0.02f); zero[i] = (uint8_t)(i % 16); }
    for (size_t i = 0; i < T * cols; i++) X[i] = (float)((int)(i % 11) - 5) * 0.1f;
    edge_quantize_rows_i16(X, Xq, xs, T, cols);
    size_t c = 0;
#define CALL()                                                                                                 \
    do {                                                                                                       \
        const uint8_t *w = W + (c++ % copies) * wbytes;                                                        \
        if (q4) edge_matmul_q4_i16(w, sc, zero, gs, Xq, xs, Y, T, rows, cols, 0, rows);                        \
        else edge_matmul_q8_i16((const int8_t *)w, ws, Xq, xs, Y, T, rows, cols, 0, rows);                    \
    } while (0)
    // Calls per sample: about 20 ms of work.
    double t0 = now();
    size_t calls = 0;
    while (now() - t0 < 0.02 || calls < copies) { CALL(); calls++; }
    double samples[15];
    for (int s = 0; s < 15; s++) {
        double t1 = now();
        for (size_t i = 0; i < calls; i++) CALL();
        samples[s] = (now() - t1) / (double)calls;
    }
    qsort(samples, 15, sizeof *samples, cmp);
    printf("%.2f %s\n", 2.0 * T * rows * cols / samples[7] / 1e9,
           edge_kernels_gemm_name(EDGE_KERNELS_AUTO, q4 ? EDGE_GEMM_OP_Q4_I16 : EDGE_GEMM_OP_Q8_I16, T));
    return 0;
}
