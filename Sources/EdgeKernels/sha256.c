// SHA-256 (FIPS 180-4). Used for provenance (the input checkpoint's digest), not for security.
// The block function runs on the x86 SHA extensions where the CPU has them (SHA-NI: about 5x the
// scalar code's speed), chosen once at first use; the scalar code is the reference the tests compare
// it with (edge_sha256_use_accelerated).
#include "EdgeKernels.h"
#include <stdatomic.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void transform_scalar(edge_sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->state[0], b = c->state[1], cc = c->state[2], d = c->state[3];
    uint32_t e = c->state[4], f = c->state[5], g = c->state[6], h = c->state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t maj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = S0 + maj;
        h = g; g = f; f = e; e = d + t1; d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->state[0] += a; c->state[1] += b; c->state[2] += cc; c->state[3] += d;
    c->state[4] += e; c->state[5] += f; c->state[6] += g; c->state[7] += h;
}

#if defined(__x86_64__)
/// `blocks` 64-byte blocks with the SHA extensions: the state held as ABEF / CDGH, four rounds per
/// pair of sha256rnds2, the message schedule four words at a time with sha256msg1 / sha256msg2.
__attribute__((target("sha,sse4.1,ssse3"))) static void transform_shani(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[0]), 0xB1);  // b a d c
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&state[4]), 0x1B);   // h g f e
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);   // ABEF
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);        // CDGH
    for (; blocks; blocks--, data += 64) {
        __m128i save0 = s0, save1 = s1, msg[4];
        for (int i = 0; i < 4; i++) msg[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), bswap);
        for (int i = 0; i < 16; i++) {
            __m128i wk = _mm_add_epi32(msg[i & 3], _mm_loadu_si128((const __m128i *)&K[4 * i]));
            s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
            s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0E));
            if (i < 12) {  // words 4(i+4) ... 4(i+4)+3 of the schedule replace words 4i ... 4i+3
                __m128i t = _mm_sha256msg1_epu32(msg[i & 3], msg[(i + 1) & 3]);
                t = _mm_add_epi32(t, _mm_alignr_epi8(msg[(i + 3) & 3], msg[(i + 2) & 3], 4));
                msg[i & 3] = _mm_sha256msg2_epu32(t, msg[(i + 3) & 3]);
            }
        }
        s0 = _mm_add_epi32(s0, save0);
        s1 = _mm_add_epi32(s1, save1);
    }
    tmp = _mm_shuffle_epi32(s0, 0x1B);            // FEBA
    s1 = _mm_shuffle_epi32(s1, 0xB1);             // DCHG
    s0 = _mm_blend_epi16(tmp, s1, 0xF0);          // DCBA
    s1 = _mm_alignr_epi8(s1, tmp, 8);             // HGFE
    _mm_storeu_si128((__m128i *)&state[0], s0);
    _mm_storeu_si128((__m128i *)&state[4], s1);
}

static bool cpu_has_shani(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (b >> 29) & 1;  // SHA
}
#else
static bool cpu_has_shani(void) { return false; }
#endif

/// 1: the SHA extensions, 0: scalar, -1: not decided yet (the CPU's choice at first use).
static _Atomic int g_accelerated = -1;

static bool accelerated(void) {
    int a = atomic_load_explicit(&g_accelerated, memory_order_relaxed);
    if (a < 0) {
        a = cpu_has_shani() ? 1 : 0;
        atomic_store_explicit(&g_accelerated, a, memory_order_relaxed);
    }
    return a == 1;
}

bool edge_sha256_accelerated_available(void) { return cpu_has_shani(); }

bool edge_sha256_use_accelerated(bool on) {
    if (on && !cpu_has_shani()) return false;
    atomic_store_explicit(&g_accelerated, on ? 1 : 0, memory_order_relaxed);
    return true;
}

static void transform_blocks(edge_sha256_ctx *c, const uint8_t *p, size_t blocks) {
#if defined(__x86_64__)
    if (accelerated()) {
        transform_shani(c->state, p, blocks);
        return;
    }
#endif
    for (; blocks; blocks--, p += 64) transform_scalar(c, p);
}

static void transform(edge_sha256_ctx *c, const uint8_t *p) { transform_blocks(c, p, 1); }

void edge_sha256_init(edge_sha256_ctx *c) {
    static const uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->state, init, sizeof init);
    c->bitlen = 0;
    c->buflen = 0;
}

void edge_sha256_update(edge_sha256_ctx *c, const void *data, size_t len) {
    const uint8_t *p = (const uint8_t *)data;
    c->bitlen += (uint64_t)len * 8;
    if (c->buflen) {
        size_t take = 64 - c->buflen < len ? 64 - c->buflen : len;
        memcpy(c->buffer + c->buflen, p, take);
        c->buflen += take; p += take; len -= take;
        if (c->buflen == 64) { transform(c, c->buffer); c->buflen = 0; }
    }
    if (len >= 64) {
        size_t blocks = len / 64;
        transform_blocks(c, p, blocks);
        p += 64 * blocks;
        len -= 64 * blocks;
    }
    if (len) { memcpy(c->buffer, p, len); c->buflen = len; }
}

void edge_sha256_final(edge_sha256_ctx *c, uint8_t out[32]) {
    uint64_t bitlen = c->bitlen;
    uint8_t pad = 0x80;
    size_t buflen = c->buflen;
    c->buffer[buflen++] = pad;
    if (buflen > 56) {
        memset(c->buffer + buflen, 0, 64 - buflen);
        transform(c, c->buffer);
        buflen = 0;
    }
    memset(c->buffer + buflen, 0, 56 - buflen);
    for (int i = 0; i < 8; i++) c->buffer[56 + i] = (uint8_t)(bitlen >> (56 - 8 * i));
    transform(c, c->buffer);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->state[i] >> 24); out[4 * i + 1] = (uint8_t)(c->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->state[i] >> 8); out[4 * i + 3] = (uint8_t)c->state[i];
    }
}
