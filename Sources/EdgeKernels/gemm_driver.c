// The blocked GEMM driver of every SIMD level (see gemm_driver.h): column and row blocking, weight
// dequantization into L1/L2-resident buffers, packing into k-major panels, and the choice between the
// dot-product and the packed outer-product micro-kernel. Plain C: every SIMD instruction is in the
// level's own file (avx2.c, avx512.c, neon.c), reached through its edge_gemm_isa.
//
// Each output is one micro-kernel accumulation per column block, added to the previous blocks' sum,
// so an output's float operations (and so its bits) depend only on the micro-kernel and the column
// blocking, not on the row blocking or the tile a row falls in.
#include "gemm_driver.h"
#include "dispatch.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/// dst[0..kc) = f32 weights of row r, columns [k0, k0 + kc) (not for f32 weights): the level's
/// unpacker for the leading part it takes, the scalar formula for the rest.
static void dequant_row(const edge_gemm_isa *isa, const edge_wsource *s, size_t cols, size_t r, size_t k0, size_t kc,
                        float *dst) {
    switch (s->kind) {
    case EDGE_W_F32: break;
    case EDGE_W_F32T: {
        const float *src = (const float *)s->W + k0 * s->ld + r;
        for (size_t i = 0; i < kc; i++) dst[i] = src[i * s->ld];
        break;
    }
    case EDGE_W_F16: {
        const uint16_t *src = (const uint16_t *)s->W + r * cols + k0;
        for (size_t i = isa->unpack_f16(src, kc, dst); i < kc; i++) dst[i] = edge_f16_to_f32(src[i]);
        break;
    }
    case EDGE_W_Q8: {
        const uint8_t *src = (const uint8_t *)s->W + r * cols + k0;
        float sc = s->scale[r];
        if (s->zero) {
            int z = s->zero[r];
            for (size_t i = isa->unpack_q8(src, kc, sc, true, z, dst); i < kc; i++) dst[i] = sc * (float)((int)src[i] - z);
        } else {
            for (size_t i = isa->unpack_q8(src, kc, sc, false, 0, dst); i < kc; i++) dst[i] = sc * (float)(int8_t)src[i];
        }
        break;
    }
    case EDGE_W_Q4: {
        const uint8_t *row = (const uint8_t *)s->W + r * s->row_bytes;
        size_t end = k0 + kc;
        for (size_t j = k0; j < end;) {  // one group (or its part inside the block) at a time
            size_t g = j / s->group_size, ge = (g + 1) * s->group_size;
            if (ge > end) ge = end;
            size_t gi = r * s->groups + g;
            float sc = edge_f16_to_f32(s->scale_f16[gi]);
            int z = s->zero ? (int)s->zero[gi] : 8;
            if (j & 1) { dst[j - k0] = sc * (float)((int)edge_q4_nibble(row, j) - z); j++; }
            if (j < ge) j += isa->unpack_q4(row + j / 2, ge - j, sc, z, dst + (j - k0));  // j even: whole bytes
            for (; j < ge; j++) dst[j - k0] = sc * (float)((int)edge_q4_nibble(row, j) - z);
        }
        break;
    }
    case EDGE_W_Q3: {  // q3, or q3s (sub set): only where a group's scale and zero point come from differs
        const uint8_t *row = (const uint8_t *)s->W + r * s->row_bytes;
        const uint8_t *sub = s->sub ? s->sub + r * s->sub_row_bytes : NULL;
        float D = sub ? edge_f16_to_f32(s->super_f16[r]) : 0.0f;
        size_t end = k0 + kc;
        for (size_t j = k0; j < end;) {  // one group (or its part inside the block) at a time
            size_t g = j / s->group_size, ge = (g + 1) * s->group_size;
            if (ge > end) ge = end;
            size_t gi = r * s->groups + g;
            float sc;
            int z;
            if (sub) edge_q3s_group(sub, g, (unsigned)s->sub_bits, D, &sc, &z);
            else sc = edge_f16_to_f32(s->scale_f16[gi]), z = s->zero ? (int)s->zero[gi] : 4;
            for (; (j & 7) && j < ge; j++) dst[j - k0] = sc * (float)((int)edge_q3_code(row, j) - z);
            if (j < ge) j += isa->unpack_q3(row + j / 8 * 3, ge - j, sc, z, dst + (j - k0));  // j % 8 == 0: whole bytes
            for (; j < ge; j++) dst[j - k0] = sc * (float)((int)edge_q3_code(row, j) - z);
        }
        break;
    }
    case EDGE_W_Q4K: {
        const uint8_t *row = (const uint8_t *)s->W + r * s->row_bytes, *sub = s->sub + r * s->sub_row_bytes;
        float D = edge_f16_to_f32(s->super_f16[2 * r]), M = edge_f16_to_f32(s->super_f16[2 * r + 1]);
        unsigned bits = (unsigned)s->sub_bits;
        size_t end = k0 + kc;
        for (size_t j = k0; j < end;) {  // one group (or its part inside the block) at a time
            size_t g = j / s->group_size, ge = (g + 1) * s->group_size;
            if (ge > end) ge = end;
            float d, m;
            edge_q4k_group(sub, g, bits, D, M, &d, &m);
            if (j & 1) { dst[j - k0] = edge_q4k_value(d, edge_q4_nibble(row, j), m); j++; }
            if (j < ge) j += isa->unpack_q4k(row + j / 2, ge - j, d, m, dst + (j - k0));  // j even: whole bytes
            for (; j < ge; j++) dst[j - k0] = edge_q4k_value(d, edge_q4_nibble(row, j), m);
        }
        break;
    }
    }
}

/// Rows per weight block of the dot-product GEMM: RB rows x EDGE_KC columns (dequantized into a
/// buffer when not f32) stay in L2 while every token tile passes over them.
enum { RB = 48 };

/// The dot-product GEMM, for few tokens (no packing): column blocks of edge_column_block(cols)
/// outside, RB-row blocks in the middle, then dot_mt-token tiles, then dot_nr-row tiles inside.
static void gemm_dot(const edge_gemm_isa *isa, const edge_wsource *s, const float *X, float *Y, size_t T, size_t rows,
                     size_t cols, size_t r0, size_t r1) {
    float *buf = s->kind == EDGE_W_F32 ? NULL : (float *)malloc(sizeof(float) * RB * EDGE_KC);
    if (s->kind != EDGE_W_F32 && !buf) abort();
    const size_t MT = (size_t)isa->dot_mt, NR = (size_t)isa->dot_nr;
    size_t kstep = edge_column_block(cols);
    for (size_t k0 = 0; k0 < cols; k0 += kstep) {
        size_t kc = cols - k0 < kstep ? cols - k0 : kstep;
        for (size_t rb = r0; rb < r1; rb += RB) {
            size_t rbn = r1 - rb < RB ? r1 - rb : RB;
            const float *wb;
            size_t ldw;
            if (s->kind == EDGE_W_F32) {
                wb = (const float *)s->W + rb * cols + k0;
                ldw = cols;
            } else {
                for (size_t i = 0; i < rbn; i++) dequant_row(isa, s, cols, rb + i, k0, kc, buf + i * EDGE_KC);
                wb = buf;
                ldw = EDGE_KC;
            }
            for (size_t t = 0; t < T; t += MT) {
                int mt = (int)(T - t < MT ? T - t : MT);
                for (size_t r = 0; r < rbn; r += NR) {
                    int nr = (int)(rbn - r < NR ? rbn - r : NR);
                    isa->dot_tile(mt, nr, wb + r * ldw, ldw, X + t * cols + k0, cols, Y + t * rows + rb + r, rows, kc, k0 > 0);
                }
            }
        }
    }
    free(buf);
}

/// Columns and rows per packed weight block: PRB x PKC f32 (128 KiB) stay in L2.
enum { PKC = 256, PRB = 128 };

/// Packs rows [r, r + nr) (nr <= pnr), columns [k0, k0 + kc) of the source into one k-major panel
/// [kc][pnr], zero past nr rows. `row` is a scratch of pnr x PKC floats for dequantized rows. A whole
/// panel goes through the level's register transposes (`pack_rows`) where it has them: the element
/// by element copy below stores every value to its own 128-byte-strided place and was about a tenth
/// of f32 prompt processing.
static void pack_panel(const edge_gemm_isa *isa, const edge_wsource *s, size_t cols, size_t r, size_t nr, size_t k0,
                       size_t kc, size_t pnr, float *row, float *panel) {
    if (isa->pack_rows && nr == pnr && s->kind != EDGE_W_F32T) {
        const float *src = (const float *)s->W + r * cols + k0;
        size_t ld = cols;
        if (s->kind != EDGE_W_F32) {
            for (size_t i = 0; i < nr; i++) dequant_row(isa, s, cols, r + i, k0, kc, row + i * PKC);
            src = row;
            ld = PKC;
        }
        size_t done = isa->pack_rows(src, ld, kc, panel);
        for (size_t i = 0; i < nr; i++)
            for (size_t k = done; k < kc; k++) panel[k * pnr + i] = src[i * ld + k];
        return;
    }
    if (s->kind == EDGE_W_F32T) {  // W^T rows are the panel's k rows: contiguous copies, the same panel
        const float *src = (const float *)s->W + k0 * s->ld + r;
        for (size_t k = 0; k < kc; k++) {
            memcpy(panel + k * pnr, src + k * s->ld, nr * sizeof(float));
            for (size_t i = nr; i < pnr; i++) panel[k * pnr + i] = 0;
        }
        return;
    }
    for (size_t i = 0; i < pnr; i++) {
        if (i < nr) {
            const float *src;
            if (s->kind == EDGE_W_F32) {
                src = (const float *)s->W + (r + i) * cols + k0;
            } else {
                dequant_row(isa, s, cols, r + i, k0, kc, row);
                src = row;
            }
            for (size_t k = 0; k < kc; k++) panel[k * pnr + i] = src[k];
        } else {
            for (size_t k = 0; k < kc; k++) panel[k * pnr + i] = 0;
        }
    }
}

/// The packed GEMM: column blocks of PKC outside, PRB-row blocks packed (and dequantized) once
/// each, then packed_mt-token tiles, then packed_nr-row panels.
static void gemm_packed(const edge_gemm_isa *isa, const edge_wsource *s, const float *X, float *Y, size_t T, size_t rows,
                        size_t cols, size_t r0, size_t r1) {
    const size_t MT = (size_t)isa->packed_mt, NR = (size_t)isa->packed_nr;
    float *pack = (float *)aligned_alloc(64, sizeof(float) * PRB * PKC);  // panels start at multiples of 64 bytes
    float *row = (float *)malloc(sizeof(float) * PKC * NR);
    if (!pack || !row) abort();
    for (size_t k0 = 0; k0 < cols; k0 += PKC) {
        size_t kc = cols - k0 < PKC ? cols - k0 : PKC;
        for (size_t rb = r0; rb < r1; rb += PRB) {
            size_t nrb = r1 - rb < PRB ? r1 - rb : PRB;
            for (size_t j = 0; j < nrb; j += NR)
                pack_panel(isa, s, cols, rb + j, nrb - j < NR ? nrb - j : NR, k0, kc, NR, row, pack + j * kc);
            for (size_t t = 0; t < T; t += MT) {
                int mt = (int)(T - t < MT ? T - t : MT);
                for (size_t j = 0; j < nrb; j += NR) {
                    int nr = (int)(nrb - j < NR ? nrb - j : NR);
                    isa->packed_tile(mt, nr, X + t * cols + k0, cols, pack + j * kc, kc, Y + t * rows + rb + j, rows, k0 > 0);
                }
            }
        }
    }
    free(row);
    free(pack);
}

/// The calling thread's buffer of edge_thread_buffer: its memory and capacity in floats, freed when the
/// thread exits (pthread key destructor).
typedef struct thread_buffer {
    float *p;
    size_t cap;
} thread_buffer;
static pthread_key_t g_buffer_key;
static pthread_once_t g_buffer_once = PTHREAD_ONCE_INIT;
static void free_thread_buffer(void *v) {
    thread_buffer *b = (thread_buffer *)v;
    free(b->p);
    free(b);
}
static void make_buffer_key(void) { pthread_key_create(&g_buffer_key, free_thread_buffer); }

float *edge_thread_buffer(size_t n) {
    pthread_once(&g_buffer_once, make_buffer_key);
    thread_buffer *b = (thread_buffer *)pthread_getspecific(g_buffer_key);
    if (!b) {
        if (!(b = (thread_buffer *)calloc(1, sizeof *b))) return NULL;
        pthread_setspecific(g_buffer_key, b);
    }
    if (n > b->cap) {
        free(b->p);
        size_t want = (n + 15) & ~(size_t)15;
        b->p = (float *)aligned_alloc(64, want * sizeof(float));
        b->cap = b->p ? want : 0;
    }
    return b->p;
}

/// d[k ^ 1] = bf16(x[k]) for k < kc (column pairs swapped), d[kc ^ 1] = 0 when kc is odd: the level's
/// vectors where it has them (every level with a packed tile does), the scalar formula for the rest.
static void round_swap_bf16(const edge_gemm_isa *isa, const float *restrict x, float *restrict d, size_t kc) {
    size_t q = isa->round_bf16 ? isa->round_bf16(x, kc & ~(size_t)1, true, d) / 2 : 0;
    for (; q < kc / 2; q++) {
        float a = x[2 * q], b = x[2 * q + 1];
        d[2 * q] = edge_bf16_round_inline(b);
        d[2 * q + 1] = edge_bf16_round_inline(a);
    }
    if (kc & 1) {
        d[kc] = edge_bf16_round_inline(x[kc - 1]);
        d[kc - 1] = 0;
    }
}

/// Rows [r, r + nr) (nr <= pnr), columns [k0, k0 + kc) of an f32 or f32t source as a k-major panel of
/// bfloat16-rounded values with each column pair swapped (panel row 2q holds column 2q + 1, row 2q + 1
/// column 2q; a column past kc is 0), kcp = kc rounded up to even rows.
static void pack_panel_bf16(const edge_gemm_isa *isa, const edge_wsource *s, size_t cols, size_t r, size_t nr, size_t k0, size_t kc, size_t pnr,
                            float *row, float *panel) {
    size_t kcp = (kc + 1) & ~(size_t)1;
    if (s->kind == EDGE_W_F32T) {
        for (size_t k = 0; k < kcp; k++) {
            float *dst = panel + (k ^ 1) * pnr;  // column k lands on row k ^ 1
            if (k >= kc) {
                memset(dst, 0, pnr * sizeof(float));
                continue;
            }
            const float *src = (const float *)s->W + (k0 + k) * s->ld + r;
            size_t i = isa->round_bf16 ? isa->round_bf16(src, nr, false, dst) : 0;
            for (; i < nr; i++) dst[i] = edge_bf16_round_inline(src[i]);
            for (; i < pnr; i++) dst[i] = 0;
        }
        return;
    }
    // Row-major: each weight row read once, contiguously (rounded and pair-swapped into `row`, then
    // spread over the panel's k-major layout).
    for (size_t i = 0; i < pnr; i++) {
        if (i < nr) round_swap_bf16(isa, (const float *)s->W + (r + i) * cols + k0, row, kc);
        else memset(row, 0, kcp * sizeof(float));
        for (size_t k = 0; k < kcp; k++) panel[k * pnr + i] = row[k];
    }
}

void edge_gemm_bf16(const edge_gemm_isa *isa, const edge_wsource *s, const float *X, float *Y, size_t T, size_t rows,
                    size_t cols, size_t r0, size_t r1) {
    const size_t MT = (size_t)isa->packed_mt, NR = (size_t)isa->packed_nr, KB = EDGE_BF16_BLOCK;
    float *pack = (float *)aligned_alloc(64, sizeof(float) * (PRB + 1) * KB);
    float *row = pack + PRB * KB;                 // one weight row of a column block, rounded
    float *xb = edge_thread_buffer(T * KB);  // the tokens' rounded, pair-swapped activations of one column block
    if (!pack || !xb) abort();
    for (size_t k0 = 0; k0 < cols; k0 += KB) {
        size_t kc = cols - k0 < KB ? cols - k0 : KB, kcp = (kc + 1) & ~(size_t)1;
        for (size_t t = 0; t < T; t++) {
            const float *x = X + t * cols + k0;
            round_swap_bf16(isa, x, xb + t * kcp, kc);
        }
        for (size_t rb = r0; rb < r1; rb += PRB) {
            size_t nrb = r1 - rb < PRB ? r1 - rb : PRB;
            for (size_t j = 0; j < nrb; j += NR)
                pack_panel_bf16(isa, s, cols, rb + j, nrb - j < NR ? nrb - j : NR, k0, kc, NR, row, pack + j * kcp);
            for (size_t t = 0; t < T; t += MT) {
                int mt = (int)(T - t < MT ? T - t : MT);
                for (size_t j = 0; j < nrb; j += NR) {
                    int nr = (int)(nrb - j < NR ? nrb - j : NR);
                    isa->packed_tile(mt, nr, xb + t * kcp, kcp, pack + j * kcp, kcp, Y + t * rows + rb + j, rows, k0 > 0);
                }
            }
        }
    }
    free(pack);
}

void edge_gemm(const edge_gemm_isa *isa, edge_gemm_mode mode, const edge_wsource *s, const float *X, float *Y,
               size_t T, size_t rows, size_t cols, size_t r0, size_t r1) {
    if (T == 0 || r0 >= r1) return;
    if (cols == 0) {
        for (size_t t = 0; t < T; t++) memset(Y + t * rows + r0, 0, (r1 - r0) * sizeof(float));
        return;
    }
    if (T == 1 && isa->matvec && isa->matvec(s, X, Y, cols, r0, r1)) return;  // false: a source it does not take
    if (edge_gemm_uses_packed(isa, mode, T)) gemm_packed(isa, s, X, Y, T, rows, cols, r0, r1);
    else gemm_dot(isa, s, X, Y, T, rows, cols, r0, r1);
}
