// How fast this machine streams int8 weight rows, read one row at a time or four rows interleaved:
// the measurement behind the decoding kernels' row order (docs/performance.md). Each variant sums
// int8 x int16 products (vpmovsxbw + vpmaddwd, the q8 decoding kernel's inner loop) over a 137 MB
// matrix of 576-column rows (SmolLM2-135M's int8 size and width), 5 times; prints GB/s per run.
//   cc -O2 -pthread scripts/bench-row-streaming.c -o /tmp/rows && /tmp/rows
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { COLS = 576 };
static const size_t BYTES = 137000000 / (4 * COLS) * (4 * COLS);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define W16(p) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p)))

/// One row at a time, in order.
__attribute__((target("avx2"))) static int rows1(const int8_t *w, const int16_t *x, size_t rows) {
    int tot = 0;
    for (size_t r = 0; r < rows; r++) {
        const int8_t *p = w + r * COLS;
        __m256i a = _mm256_setzero_si256(), b = a;
        for (size_t k = 0; k < COLS; k += 32) {
            a = _mm256_add_epi32(a, _mm256_madd_epi16(W16(p + k), _mm256_loadu_si256((const __m256i *)(x + k))));
            b = _mm256_add_epi32(b, _mm256_madd_epi16(W16(p + k + 16), _mm256_loadu_si256((const __m256i *)(x + k + 16))));
        }
        tot += _mm256_extract_epi32(_mm256_add_epi32(a, b), 0);
    }
    return tot;
}

/// Four rows interleaved (one activation load shared by four rows, as a register tile does).
__attribute__((target("avx2"))) static int rows4(const int8_t *w, const int16_t *x, size_t rows) {
    int tot = 0;
    for (size_t r = 0; r < rows; r += 4) {
        const int8_t *p = w + r * COLS;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t k = 0; k < COLS; k += 16) {
            __m256i xv = _mm256_loadu_si256((const __m256i *)(x + k));
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(W16(p + k), xv));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(W16(p + COLS + k), xv));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(W16(p + 2 * COLS + k), xv));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(W16(p + 3 * COLS + k), xv));
        }
        tot += _mm256_extract_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)), 0);
    }
    return tot;
}

static int8_t *g_w;
static int16_t g_x[COLS];
static volatile int g_sink;

static void *half(void *arg) {
    size_t i = (size_t)arg, rows = BYTES / COLS / 2;
    g_sink = rows1(g_w + i * rows * COLS, g_x, rows);
    return NULL;
}

int main(void) {
    g_w = malloc(BYTES);
    if (!g_w) return 1;
    memset(g_w, 1, BYTES);
    for (int i = 0; i < COLS; i++) g_x[i] = 1;
    size_t rows = BYTES / COLS;
    for (int rep = 0; rep < 5; rep++) {
        double t = now();
        g_sink = rows1(g_w, g_x, rows);
        double a = BYTES / (now() - t) / 1e9;
        t = now();
        g_sink = rows4(g_w, g_x, rows);
        double b = BYTES / (now() - t) / 1e9;
        t = now();
        pthread_t t0, t1;
        pthread_create(&t0, NULL, half, (void *)0);
        pthread_create(&t1, NULL, half, (void *)1);
        pthread_join(t0, NULL);
        pthread_join(t1, NULL);
        double c = BYTES / (now() - t) / 1e9;
        printf("one row at a time %.2f GB/s | four rows interleaved %.2f GB/s | one row at a time, 2 threads %.2f GB/s\n", a, b, c);
    }
    return 0;
}
