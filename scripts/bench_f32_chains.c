// Streaming an f32 matrix of SmolLM2-135M's size (540 MB, rows of 576) through a one-token
// matrix-vector product on THREADS threads, to see whether the one-token f32 kernel's single fma
// chain per row costs memory bandwidth (docs/performance.md, "Session 27"). MODE 0: plain sums of the
// loads (no product); 1: one 8-lane fma chain per row (as `avx2-fused-1x1`); 2: two rows at a time,
// one chain each; 4: four chains per row (as llama.cpp's ggml_vec_dot_f32). Every row also prefetches
// the line 8 KB ahead into L2 unless PREFETCH=0. Prints the median of 31 sweeps (threads created per
// sweep) in ms and GB/s. AVX2 + FMA CPUs.
// Build and run (x86-64):  cc -O2 -mavx2 -mfma -pthread scripts/bench_f32_chains.c -o bench_f32_chains
//                          ./bench_f32_chains THREADS MODE [PREFETCH]
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

enum { COLS = 576, SWEEPS = 31 };
static float *W, *X, *Y;
static size_t ROWS;
static int MODE, NT, PREFETCH = 1;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float hsum(__m256 a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}

static void prefetch_row(const float *w) {
    if (!PREFETCH) return;
    for (const char *p = (const char *)w + 8192, *e = p + COLS * 4; p < e; p += 64) __builtin_prefetch(p, 0, 1);
}

static void *run(void *arg) {
    size_t t = (size_t)arg, r0 = ROWS * t / NT, r1 = ROWS * (t + 1) / NT;
    for (size_t r = r0; r < r1; r++) {
        const float *w = W + r * COLS;
        prefetch_row(w);
        if (MODE == 0) {
            __m256 a = _mm256_setzero_ps();
            for (int k = 0; k < COLS; k += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(w + k));
            Y[r] = hsum(a);
        } else if (MODE == 1) {
            __m256 a = _mm256_setzero_ps();
            for (int k = 0; k < COLS; k += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(X + k), a);
            Y[r] = hsum(a);
        } else if (MODE == 2 && r + 1 < r1) {
            const float *w2 = w + COLS;
            prefetch_row(w2);
            __m256 a = _mm256_setzero_ps(), b = a;
            for (int k = 0; k < COLS; k += 8) {
                __m256 xv = _mm256_loadu_ps(X + k);
                a = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), xv, a);
                b = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + k), xv, b);
            }
            Y[r] = hsum(a), Y[r + 1] = hsum(b);
            r++;
        } else {
            __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (int k = 0; k < COLS; k += 32)
                for (int j = 0; j < 4; j++) a[j] = _mm256_fmadd_ps(_mm256_loadu_ps(w + k + 8 * j), _mm256_loadu_ps(X + k + 8 * j), a[j]);
            Y[r] = hsum(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
        }
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s THREADS MODE(0|1|2|4) [PREFETCH]\n", argv[0]);
        return 2;
    }
    NT = atoi(argv[1]), MODE = atoi(argv[2]);
    if (argc > 3) PREFETCH = atoi(argv[3]);
    if (NT < 1 || NT > 64) return 2;
    ROWS = (540u << 20) / (COLS * 4);
    size_t bytes = ROWS * COLS * 4;
    W = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (W == MAP_FAILED) return 1;
    madvise(W, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < ROWS * COLS; i++) W[i] = (float)(i % 7) * 0.1f;
    X = aligned_alloc(64, COLS * 4), Y = malloc(ROWS * 4);
    for (int i = 0; i < COLS; i++) X[i] = 1;
    double ts[SWEEPS];
    pthread_t th[64];
    for (int it = 0; it < SWEEPS; it++) {
        double t0 = now();
        for (int t = 0; t < NT; t++) pthread_create(&th[t], NULL, run, (void *)(size_t)t);
        for (int t = 0; t < NT; t++) pthread_join(th[t], NULL);
        ts[it] = now() - t0;
    }
    qsort(ts, SWEEPS, sizeof ts[0], cmp);
    double m = ts[SWEEPS / 2];
    printf("mode %d threads %d prefetch %d: median %.2f ms, %.1f GB/s\n", MODE, NT, PREFETCH, m * 1e3, bytes / m / 1e9);
    return 0;
}
