// Memory read bandwidth of this machine, the ceiling of decoding (docs/performance.md, "Session 25"):
// THREADS threads each sum their share of a 256 MB buffer with 64-byte AVX-512 loads, four passes,
// three times; with PREFETCH=1 each 128 bytes also prefetch 8 KB ahead into L2 (prefetcht1, as the
// decoding kernels do). GB/s = bytes read / wall time. AVX-512 F CPUs only.
// Build and run (x86-64):  clang -O2 -mavx512f -pthread scripts/bench_read_bandwidth.c -o bench_read_bandwidth
//                          ./bench_read_bandwidth 2 [PREFETCH]
#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BYTES = 256u << 20, PASSES = 4, MAX_THREADS = 64 };
static char *buf;
static size_t threads;
static int prefetch;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    size_t per = BYTES / threads;
    const char *p = buf + (size_t)arg * per;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0;
    for (int pass = 0; pass < PASSES; pass++)
        for (size_t i = 0; i < per; i += 128) {
            if (prefetch) _mm_prefetch(p + i + 8192, _MM_HINT_T1);
            s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
            s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
        }
    return (void *)(intptr_t)_mm512_reduce_add_epi64(_mm512_add_epi64(s0, s1));  // keeps the loads
}

int main(int argc, char **argv) {
    threads = argc > 1 ? (size_t)atoi(argv[1]) : 2;
    prefetch = argc > 2 && atoi(argv[2]) != 0;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "bench_read_bandwidth: THREADS must be 1...%d\n", MAX_THREADS);
        return 1;
    }
    buf = aligned_alloc(64, BYTES);
    if (!buf) {
        fprintf(stderr, "bench_read_bandwidth: no memory for %u bytes\n", BYTES);
        return 1;
    }
    memset(buf, 1, BYTES);
    for (int k = 0; k < 3; k++) {
        pthread_t th[MAX_THREADS];
        double t = now();
        for (size_t i = 0; i < threads; i++) pthread_create(&th[i], NULL, reader, (void *)i);
        for (size_t i = 0; i < threads; i++) pthread_join(th[i], NULL);
        printf("%zu threads%s: %.1f GB/s\n", threads, prefetch ? ", prefetch" : "", (double)PASSES * BYTES / (now() - t) / 1e9);
    }
    free(buf);
    return 0;
}
