/* Exact products modulo p = 2^61 − 1 for Freivalds' check (client/verify.py, PROTOCOL §6).
 *
 * out[i][r] = Σ_j M[i][j] · xs[j][r] mod p for an int8 or int32 matrix M (rows × cols, C order)
 * and R columns xs (cols × R, values below p).  xs is split into ``count`` limbs of ``width`` bits,
 * or signed 16-bit digits, each limb column summed exactly, and the sums recombined modulo p:
 * - "segments" (AVX2): float64 FMAs, each lane summing segments of at most ``flush`` terms, each
 *   term below 2^51 / flush, the segments added up in int64 (see MAGIC);
 * - "whole" (AVX-512): float64 FMAs over whole rows, Σ_j |M[i][j]| · X[l][j] < 2^53 (``flush`` 0);
 * - "digits" (AVX-512 or AVX2, int8 M): vpmaddwd of the entries by signed 16-bit digits, int32
 *   lanes widened to int64 every DIGIT_SEGMENT blocks of 32 or 16 columns.
 * The caller sizes the limbs for its path and for ``bound``; a row with an entry beyond ``bound``
 * is marked in ``wild`` (its value means nothing).  The entries are widened in registers, so the
 * matrix is never copied.  Without AVX2 the module offers no path and verify.py uses numpy's
 * float64 GEMM.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FREIVALDS_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define LIMBS 4 /* the AVX-512 path's limb columns a pass: L is padded to a multiple of this */
#define DIGITS 4 /* the digit path's balanced 16-bit digits of a value below p */

typedef struct {
    const uint8_t *m;
    Py_ssize_t rows, cols;
    int itemsize;     /* 1: int8, 4: int32 */
    const double *xt; /* L × cols */
    const double *xi; /* the AVX2 path: xt interleaved (see interleave) */
    const int16_t *dg; /* the digit paths: [block of W columns][L][W] signed digits, zero past cols (W: the path's) */
    Py_ssize_t L;
    Py_ssize_t flush; /* the AVX2 path: terms a lane sums between flushes (≥ 1); AVX-512: 0 */
    int64_t bound;
    int64_t *out;     /* rows × L */
    uint8_t *wild;    /* rows */
} task_t;


/* A whole row's float64 sum as the integer it is (exact below 2^53 in magnitude); a wild row's
 * sum may be anything, and is dropped by the caller: it only must not be undefined. */
static inline int64_t whole(double s) { return s > -9.0e18 && s < 9.0e18 ? (int64_t)s : 0; }

static const uint8_t *row_at(const task_t *t, Py_ssize_t i) {
    return t->m + (size_t)i * (size_t)t->cols * (size_t)t->itemsize;
}

#ifdef FREIVALDS_X86
/* One pass over ``ROWS`` rows of ``ITEM``-byte entries for limb columns [l0, l0 + LC): ROWS × LC
 * accumulators of 8 float64 lanes (ROWS · LC ≤ 16: with the constants inlined they stay in zmm
 * registers); with TRACK, the rows' least and largest entries too. */
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"), always_inline)) static inline void
pass_avx512(const task_t *t, const uint8_t *const *row, Py_ssize_t i, Py_ssize_t r1, Py_ssize_t l0, const int ROWS,
            const int LC, const int ITEM, const int TRACK, __m256i *lo_out, __m256i *hi_out) {
    const Py_ssize_t cols = t->cols;
    __m512d acc[4][8];
    __m256i lo[4], hi[4];
    for (int r = 0; r < ROWS; r++) lo[r] = lo_out[r], hi[r] = hi_out[r];
    for (int r = 0; r < ROWS; r++)
        for (int l = 0; l < LC; l++) acc[r][l] = _mm512_setzero_pd();
    for (Py_ssize_t j = 0; j < cols; j += 8) {
        __mmask8 k = cols - j >= 8 ? 0xFF : (__mmask8)((1u << (cols - j)) - 1);
        __m512d x[8];
        for (int l = 0; l < LC; l++) x[l] = _mm512_maskz_loadu_pd(k, t->xt + (l0 + l) * cols + j);
        for (int r = 0; r < ROWS; r++) {
            const uint8_t *p = row[r] + j * ITEM;
            __m256i v = ITEM == 1 ? _mm256_cvtepi8_epi32(_mm_maskz_loadu_epi8((__mmask16)k, p))
                                  : _mm256_maskz_loadu_epi32(k, p);
            if (TRACK) {
                lo[r] = _mm256_min_epi32(lo[r], v);
                hi[r] = _mm256_max_epi32(hi[r], v);
            }
            __m512d d = _mm512_cvtepi32_pd(v);
            for (int l = 0; l < LC; l++) acc[r][l] = _mm512_fmadd_pd(d, x[l], acc[r][l]);
        }
    }
    for (int r = 0; r < ROWS && i + r < r1; r++)
        for (int l = 0; l < LC; l++) t->out[(i + r) * t->L + l0 + l] = whole(_mm512_reduce_add_pd(acc[r][l]));
    for (int r = 0; r < ROWS; r++) lo_out[r] = lo[r], hi_out[r] = hi[r];
}

/* Rows [r0, r1), a group of rows at a time: 2 rows × 8 limb columns a pass while 8 are left,
 * else 4 rows × 4 (the rows of a group are read once per pass, from cache after the first). */
__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq"))) static void
products_avx512(const task_t *t, Py_ssize_t r0, Py_ssize_t r1) {
    const int ROWS = t->L % 8 == 0 ? 2 : 4;
    for (Py_ssize_t i = r0; i < r1; i += ROWS) {
        const uint8_t *row[4];
        for (int r = 0; r < ROWS; r++) row[r] = row_at(t, i + r < r1 ? i + r : i); /* a short group repeats row i */
        __m256i lo[4], hi[4];
        for (int r = 0; r < 4; r++) lo[r] = hi[r] = _mm256_setzero_si256();
        for (Py_ssize_t l0 = 0; l0 < t->L; l0 += ROWS == 2 ? 8 : 4) {
#define PASS(ROWS_, LC_, ITEM_)                                                                            \
    (l0 == 0 ? pass_avx512(t, row, i, r1, l0, ROWS_, LC_, ITEM_, 1, lo, hi)                                \
             : pass_avx512(t, row, i, r1, l0, ROWS_, LC_, ITEM_, 0, lo, hi))
            if (ROWS == 2) t->itemsize == 1 ? PASS(2, 8, 1) : PASS(2, 8, 4);
            else t->itemsize == 1 ? PASS(4, 4, 1) : PASS(4, 4, 4);
#undef PASS
        }
        for (int r = 0; r < ROWS && i + r < r1; r++) {
            int32_t a[8], b[8];
            _mm256_storeu_si256((__m256i *)a, lo[r]);
            _mm256_storeu_si256((__m256i *)b, hi[r]);
            int wild = 0;
            for (int q = 0; q < 8; q++) wild |= a[q] < -t->bound || b[q] > t->bound;
            t->wild[i + r] = (uint8_t)wild;
        }
    }
}

/* The AVX2 path sums in segments: each accumulator lane starts at MAGIC = 1.5 · 2^52 and adds at
 * most ``flush`` terms, each below 2^51 / flush in magnitude, so every partial sum M + v lies in
 * [2^52, 2^53), where a float64 holds every integer and its bits are those of M plus v.  The
 * lanes are then flushed into int64 totals (bits − bits(M)) and start again.  Segments let the
 * limbs be wider than whole-row sums allow: 3 limbs of 21 bits for a C with k ≤ 8192, where
 * whole rows of 4096 take 5 of 15 bits. */
#define MAGIC 6755399441055744.0
#define PASS_MAX 6 /* limb columns a pass: 2 rows × 6 accumulators + 2 entry vectors + 1 limb vector */

__attribute__((target("avx2,fma"), always_inline)) static inline __m128i load4(const uint8_t *p, const int ITEM) {
    if (ITEM == 4) return _mm_loadu_si128((const __m128i *)p);
    int32_t w;
    memcpy(&w, p, 4);
    return _mm_cvtepi8_epi32(_mm_cvtsi32_si128(w));
}

/* Four columns of 2 rows against the pass's LC limb vectors (``x``: [LC][4]). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
step_avx2(const uint8_t *p0, const uint8_t *p1, const double *x, const int LC, const int ITEM, const int TRACK,
          __m256d (*acc)[PASS_MAX], __m128i *lo, __m128i *hi) {
    __m128i v0 = load4(p0, ITEM), v1 = load4(p1, ITEM);
    if (TRACK) {
        lo[0] = _mm_min_epi32(lo[0], v0), hi[0] = _mm_max_epi32(hi[0], v0);
        lo[1] = _mm_min_epi32(lo[1], v1), hi[1] = _mm_max_epi32(hi[1], v1);
    }
    __m256d d0 = _mm256_cvtepi32_pd(v0), d1 = _mm256_cvtepi32_pd(v1);
    for (int l = 0; l < LC; l++) {
        __m256d xv = _mm256_loadu_pd(x + 4 * l);
        acc[0][l] = _mm256_fmadd_pd(d0, xv, acc[0][l]);
        acc[1][l] = _mm256_fmadd_pd(d1, xv, acc[1][l]);
    }
}

/* One pass over 2 rows for LC limb columns (``xi``: the pass's limbs, [block][LC][4]); ``tail``:
 * the rows' last cols % 4 entries, zero-padded to a block.  With TRACK, the rows' least and
 * largest entries too. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
pass_avx2(const task_t *t, const uint8_t *const *row, uint8_t (*tail)[16], const double *xi, const int LC,
          const int ITEM, const int TRACK, __m128i *lo, __m128i *hi, int64_t (*sum)[PASS_MAX]) {
    const Py_ssize_t full = t->cols / 4, blocks = (t->cols + 3) / 4;
    const __m256d magic = _mm256_set1_pd(MAGIC);
    __m256i total[2][PASS_MAX];
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LC; l++) total[r][l] = _mm256_setzero_si256();
    for (Py_ssize_t b0 = 0; b0 < blocks; b0 += t->flush) {
        const Py_ssize_t b1 = blocks - b0 > t->flush ? b0 + t->flush : blocks, stop = b1 < full ? b1 : full;
        __m256d acc[2][PASS_MAX];
        for (int r = 0; r < 2; r++)
            for (int l = 0; l < LC; l++) acc[r][l] = magic;
        for (Py_ssize_t b = b0; b < stop; b++)
            step_avx2(row[0] + b * 4 * ITEM, row[1] + b * 4 * ITEM, xi + b * LC * 4, LC, ITEM, TRACK, acc, lo, hi);
        if (b1 > full) step_avx2(tail[0], tail[1], xi + full * LC * 4, LC, ITEM, TRACK, acc, lo, hi);
        for (int r = 0; r < 2; r++)
            for (int l = 0; l < LC; l++)
                total[r][l] = _mm256_add_epi64(
                    total[r][l], _mm256_sub_epi64(_mm256_castpd_si256(acc[r][l]), _mm256_castpd_si256(magic)));
    }
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LC; l++) {
            uint64_t q[4];
            _mm256_storeu_si256((__m256i *)q, total[r][l]);
            sum[r][l] = (int64_t)(q[0] + q[1] + q[2] + q[3]); /* wraps only for a wild row */
        }
}

/* Rows [r0, r1), 2 at a time, up to PASS_MAX limb columns a pass. */
__attribute__((target("avx2,fma"))) static void products_avx2(const task_t *t, Py_ssize_t r0, Py_ssize_t r1) {
    const Py_ssize_t full = t->cols / 4, blocks = (t->cols + 3) / 4, item = t->itemsize;
    for (Py_ssize_t i = r0; i < r1; i += 2) {
        const uint8_t *row[2] = {row_at(t, i), row_at(t, i + 1 < r1 ? i + 1 : i)}; /* a short pair repeats row i */
        uint8_t tail[2][16] = {{0}};
        for (int r = 0; r < 2; r++) memcpy(tail[r], row[r] + full * 4 * item, (size_t)(t->cols % 4 * item));
        __m128i lo[2] = {_mm_setzero_si128(), _mm_setzero_si128()}, hi[2] = {lo[0], lo[0]};
        for (Py_ssize_t l0 = 0; l0 < t->L; l0 += PASS_MAX) {
            const int LC = t->L - l0 < PASS_MAX ? (int)(t->L - l0) : PASS_MAX;
            const double *xi = t->xi + blocks * 4 * l0;
            int64_t sum[2][PASS_MAX];
#define PASS(LC_, ITEM_, TRACK_) pass_avx2(t, row, tail, xi, LC_, ITEM_, TRACK_, lo, hi, sum)
#define BY_ITEM(LC_)                                                                                       \
    (item == 1 ? (l0 == 0 ? PASS(LC_, 1, 1) : PASS(LC_, 1, 0)) : (l0 == 0 ? PASS(LC_, 4, 1) : PASS(LC_, 4, 0)))
            switch (LC) {
            case 1: BY_ITEM(1); break;
            case 2: BY_ITEM(2); break;
            case 3: BY_ITEM(3); break;
            case 4: BY_ITEM(4); break;
            case 5: BY_ITEM(5); break;
            default: BY_ITEM(6); break;
            }
#undef BY_ITEM
#undef PASS
            for (int r = 0; r < 2 && i + r < r1; r++)
                for (int l = 0; l < LC; l++) t->out[(i + r) * t->L + l0 + l] = sum[r][l];
        }
        for (int r = 0; r < 2 && i + r < r1; r++) {
            int32_t a[4], b[4];
            _mm_storeu_si128((__m128i *)a, lo[r]);
            _mm_storeu_si128((__m128i *)b, hi[r]);
            int wild = 0;
            for (int q = 0; q < 4; q++) wild |= a[q] < -t->bound || b[q] > t->bound;
            t->wild[i + r] = (uint8_t)wild;
        }
    }
}

/* The AVX2 path's limbs interleaved per pass of up to PASS_MAX columns: [block][LC][4], the
 * columns past cols zero.  NULL when out of memory. */
static double *interleave(const double *xt, Py_ssize_t L, Py_ssize_t cols) {
    const Py_ssize_t blocks = (cols + 3) / 4;
    double *xi = calloc((size_t)(blocks * 4 * L) + 1, sizeof(double));
    if (!xi) return NULL;
    for (Py_ssize_t l0 = 0; l0 < L; l0 += PASS_MAX) {
        const Py_ssize_t LC = L - l0 < PASS_MAX ? L - l0 : PASS_MAX;
        double *pass = xi + blocks * 4 * l0;
        for (Py_ssize_t l = 0; l < LC; l++)
            for (Py_ssize_t j = 0; j < cols; j++) pass[(j / 4) * LC * 4 + l * 4 + j % 4] = xt[(l0 + l) * cols + j];
    }
    return xi;
}

static int has_avx512(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const unsigned want = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31); /* F, DQ, BW, VL */
    if ((b & want) != want) return 0;
    __get_cpuid(1, &a, &b, &c, &d);
    if (!(c & (1u << 27))) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6) == 0xE6; /* the OS saves ymm, zmm and the masks */
}

static int has_avx2(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 12)) || !(c & (1u << 27))) return 0; /* FMA, OSXSAVE */
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x6) != 0x6) return 0;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 5));
}

/* The digit path (AVX2, int8 matrices): the limb columns are signed 16-bit digits (``dg``:
 * [block of 16 columns][L][16] int16, zero past cols), and vpmaddwd multiplies 16 entries by 16
 * digits and adds them in pairs, |e·d + e'·d'| ≤ 2 · 128 · 2^15 = 2^23, into int32 lanes.  A
 * lane adds DIGIT_SEGMENT pairs (≤ 2^30) before it is widened into the int64 totals, so every
 * sum is exact in integers: 16 terms an instruction, where a float64 FMA takes 4. */
#define DIGIT_PASS 4      /* digit columns a pass: 2 rows × 4 accumulators + 2 entry vectors + a digit vector */
#define DIGIT_SEGMENT 128 /* 16-column blocks an int32 lane adds up before it is widened */

/* 16 entries of a row (int8) sign-extended to int16. */
__attribute__((target("avx2"), always_inline)) static inline __m256i load16(const int8_t *p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

/* Blocks [b0, b1) of 2 rows against LC digit columns (``dg``: the pass's first column of block 0,
 * blocks ``L`` columns apart), added into ``total`` ([2][DIGIT_PASS] × 4 int64 lanes); ``tail``:
 * the rows' last cols % 16 entries, zero-padded.  With TRACK, the rows' least and largest entries. */
__attribute__((target("avx2"), always_inline)) static inline void
digit_segment(const int8_t *const *row, const int8_t (*tail)[16], const int16_t *dg, Py_ssize_t L, Py_ssize_t b0,
              Py_ssize_t b1, Py_ssize_t full, const int LC, const int TRACK, __m256i *lo, __m256i *hi,
              __m256i (*total)[DIGIT_PASS]) {
    __m256i acc[2][DIGIT_PASS];
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LC; l++) acc[r][l] = _mm256_setzero_si256();
    for (Py_ssize_t b = b0; b < b1; b++) {
        const __m256i e0 = load16(b < full ? row[0] + b * 16 : tail[0]);
        const __m256i e1 = load16(b < full ? row[1] + b * 16 : tail[1]);
        if (TRACK) {
            lo[0] = _mm256_min_epi16(lo[0], e0), hi[0] = _mm256_max_epi16(hi[0], e0);
            lo[1] = _mm256_min_epi16(lo[1], e1), hi[1] = _mm256_max_epi16(hi[1], e1);
        }
        const int16_t *d = dg + b * L * 16;
        for (int l = 0; l < LC; l++) {
            const __m256i dv = _mm256_loadu_si256((const __m256i *)(d + l * 16));
            acc[0][l] = _mm256_add_epi32(acc[0][l], _mm256_madd_epi16(e0, dv));
            acc[1][l] = _mm256_add_epi32(acc[1][l], _mm256_madd_epi16(e1, dv));
        }
    }
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LC; l++) {
            const __m256i wide = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(acc[r][l])),
                                                  _mm256_cvtepi32_epi64(_mm256_extracti128_si256(acc[r][l], 1)));
            total[r][l] = _mm256_add_epi64(total[r][l], wide);
        }
}

/* Rows [r0, r1) of an int8 matrix, 2 at a time, DIGIT_PASS digit columns a pass (the pair's
 * rows stay in L1 between passes). */
__attribute__((target("avx2"))) static void digits_avx2(const task_t *t, Py_ssize_t r0, Py_ssize_t r1) {
    const Py_ssize_t full = t->cols / 16, blocks = (t->cols + 15) / 16, L = t->L;
    for (Py_ssize_t i = r0; i < r1; i += 2) {
        const int8_t *row[2] = {(const int8_t *)row_at(t, i), (const int8_t *)row_at(t, i + 1 < r1 ? i + 1 : i)}; /* a short pair repeats row i */
        int8_t tail[2][16] = {{0}};
        for (int r = 0; r < 2; r++) memcpy(tail[r], row[r] + full * 16, (size_t)(t->cols % 16));
        __m256i lo[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()}, hi[2] = {lo[0], lo[0]};
        for (Py_ssize_t l0 = 0; l0 < L; l0 += DIGIT_PASS) {
            const int LC = L - l0 < DIGIT_PASS ? (int)(L - l0) : DIGIT_PASS;
            __m256i total[2][DIGIT_PASS];
            for (int r = 0; r < 2; r++)
                for (int l = 0; l < DIGIT_PASS; l++) total[r][l] = _mm256_setzero_si256();
            for (Py_ssize_t b0 = 0; b0 < blocks; b0 += DIGIT_SEGMENT) {
                const Py_ssize_t b1 = blocks - b0 > DIGIT_SEGMENT ? b0 + DIGIT_SEGMENT : blocks;
#define SEGMENT(LC_, TRACK_) digit_segment(row, tail, t->dg + l0 * 16, L, b0, b1, full, LC_, TRACK_, lo, hi, total)
#define BY_TRACK(LC_) (l0 == 0 ? SEGMENT(LC_, 1) : SEGMENT(LC_, 0))
                switch (LC) {
                case 1: BY_TRACK(1); break;
                case 2: BY_TRACK(2); break;
                case 3: BY_TRACK(3); break;
                default: BY_TRACK(4); break;
                }
#undef BY_TRACK
#undef SEGMENT
            }
            for (int r = 0; r < 2 && i + r < r1; r++)
                for (int l = 0; l < LC; l++) {
                    int64_t q[4];
                    _mm256_storeu_si256((__m256i *)q, total[r][l]);
                    t->out[(i + r) * L + l0 + l] = q[0] + q[1] + q[2] + q[3];
                }
        }
        for (int r = 0; r < 2 && i + r < r1; r++) {
            int16_t a[16], b[16];
            _mm256_storeu_si256((__m256i *)a, lo[r]);
            _mm256_storeu_si256((__m256i *)b, hi[r]);
            int wild = 0;
            for (int q = 0; q < 16; q++) wild |= a[q] < -t->bound || b[q] > t->bound;
            t->wild[i + r] = (uint8_t)wild;
        }
    }
}

/* The digit path on AVX-512 (BW): digits_avx2 with 32 columns a block (``dg`` laid out
 * [block of 32 columns][L][32]), so that one zmm vpmaddwd multiplies 32 entries by 32 digits; a
 * lane still adds one pair a block, DIGIT_SEGMENT blocks before it is widened (≤ 2^30).  It
 * repeats digits_avx2 at another width on purpose: one body for both, generated by a macro with
 * a shared row loop calling each width's pass, ran the AVX2 path 8 % slower (2.82 → 3.06 ms for a
 * 4096² B, 5 alternating runs of 41). */
#define AVX512_DIGITS __attribute__((target("avx512f,avx512bw"), always_inline)) static inline

/* 32 entries of a row (int8) sign-extended to int16. */
AVX512_DIGITS __m512i load32(const int8_t *p) { return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p)); }

AVX512_DIGITS void digit_segment_avx512(const int8_t *const *row, const int8_t (*tail)[32], const int16_t *dg,
                                        Py_ssize_t L, Py_ssize_t b0, Py_ssize_t b1, Py_ssize_t full, const int LC,
                                        const int TRACK, __m512i *lo, __m512i *hi, __m512i (*total)[DIGIT_PASS]) {
    __m512i acc[2][DIGIT_PASS];
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LC; l++) acc[r][l] = _mm512_setzero_si512();
    for (Py_ssize_t b = b0; b < b1; b++) {
        const __m512i e0 = load32(b < full ? row[0] + b * 32 : tail[0]);
        const __m512i e1 = load32(b < full ? row[1] + b * 32 : tail[1]);
        if (TRACK) {
            lo[0] = _mm512_min_epi16(lo[0], e0), hi[0] = _mm512_max_epi16(hi[0], e0);
            lo[1] = _mm512_min_epi16(lo[1], e1), hi[1] = _mm512_max_epi16(hi[1], e1);
        }
        const int16_t *d = dg + b * L * 32;
        for (int l = 0; l < LC; l++) {
            const __m512i dv = _mm512_loadu_si512((const void *)(d + l * 32));
            acc[0][l] = _mm512_add_epi32(acc[0][l], _mm512_madd_epi16(e0, dv));
            acc[1][l] = _mm512_add_epi32(acc[1][l], _mm512_madd_epi16(e1, dv));
        }
    }
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LC; l++) {
            const __m512i wide = _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(acc[r][l])),
                                                  _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(acc[r][l], 1)));
            total[r][l] = _mm512_add_epi64(total[r][l], wide);
        }
}

__attribute__((target("avx512f,avx512bw"))) static void digits_avx512(const task_t *t, Py_ssize_t r0, Py_ssize_t r1) {
    const Py_ssize_t full = t->cols / 32, blocks = (t->cols + 31) / 32, L = t->L;
    for (Py_ssize_t i = r0; i < r1; i += 2) {
        const int8_t *row[2] = {(const int8_t *)row_at(t, i), (const int8_t *)row_at(t, i + 1 < r1 ? i + 1 : i)}; /* a short pair repeats row i */
        int8_t tail[2][32] = {{0}};
        for (int r = 0; r < 2; r++) memcpy(tail[r], row[r] + full * 32, (size_t)(t->cols % 32));
        __m512i lo[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()}, hi[2] = {lo[0], lo[0]};
        for (Py_ssize_t l0 = 0; l0 < L; l0 += DIGIT_PASS) {
            const int LC = L - l0 < DIGIT_PASS ? (int)(L - l0) : DIGIT_PASS;
            __m512i total[2][DIGIT_PASS];
            for (int r = 0; r < 2; r++)
                for (int l = 0; l < DIGIT_PASS; l++) total[r][l] = _mm512_setzero_si512();
            for (Py_ssize_t b0 = 0; b0 < blocks; b0 += DIGIT_SEGMENT) {
                const Py_ssize_t b1 = blocks - b0 > DIGIT_SEGMENT ? b0 + DIGIT_SEGMENT : blocks;
#define SEGMENT(LC_, TRACK_) digit_segment_avx512(row, tail, t->dg + l0 * 32, L, b0, b1, full, LC_, TRACK_, lo, hi, total)
#define BY_TRACK(LC_) (l0 == 0 ? SEGMENT(LC_, 1) : SEGMENT(LC_, 0))
                switch (LC) {
                case 1: BY_TRACK(1); break;
                case 2: BY_TRACK(2); break;
                case 3: BY_TRACK(3); break;
                default: BY_TRACK(4); break;
                }
#undef BY_TRACK
#undef SEGMENT
            }
            for (int r = 0; r < 2 && i + r < r1; r++)
                for (int l = 0; l < LC; l++) t->out[(i + r) * L + l0 + l] = _mm512_reduce_add_epi64(total[r][l]);
        }
        for (int r = 0; r < 2 && i + r < r1; r++) {
            int16_t a[32], b[32];
            _mm512_storeu_si512((void *)a, lo[r]);
            _mm512_storeu_si512((void *)b, hi[r]);
            int wild = 0;
            for (int q = 0; q < 32; q++) wild |= a[q] < -t->bound || b[q] > t->bound;
            t->wild[i + r] = (uint8_t)wild;
        }
    }
}
#endif

typedef void (*products_fn)(const task_t *, Py_ssize_t, Py_ssize_t);

typedef struct {
    const char *name;
    const char *kind; /* "whole", "segments" or "digits" (see the top of this file) */
    products_fn fn;
    int block;        /* digit paths: the columns of a block of digits (dg's W) */
} path_t;

#ifdef FREIVALDS_X86
static const path_t PATHS[] = {{"avx512-digits", "digits", digits_avx512, 32},
                               {"avx512", "whole", products_avx512, 0},
                               {"avx2-digits", "digits", digits_avx2, 16},
                               {"avx2", "segments", products_avx2, 0}}; /* fastest first */
#else
static const path_t PATHS[] = {{"none", "none", NULL, 0}};
#endif

static int available(const path_t *path) {
#ifdef FREIVALDS_X86
    if (!strncmp(path->name, "avx512", 6)) return has_avx512();
    if (!strncmp(path->name, "avx2", 4)) return has_avx2();
#endif
    (void)path;
    return 0;
}

static const path_t *path_named(const char *name) {
    for (size_t i = 0; i < sizeof PATHS / sizeof *PATHS; i++)
        if (!strcmp(PATHS[i].name, name) && available(&PATHS[i])) return &PATHS[i];
    return NULL;
}

static PyObject *py_paths(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    PyObject *out = PyDict_New();
    for (size_t i = 0; out && i < sizeof PATHS / sizeof *PATHS; i++) {
        if (!available(&PATHS[i])) continue;
        PyObject *kind = PyUnicode_FromString(PATHS[i].kind);
        if (!kind || PyDict_SetItemString(out, PATHS[i].name, kind) < 0) Py_CLEAR(out);
        Py_XDECREF(kind);
    }
    return out;
}

#define P61 ((UINT64_C(1) << 61) - 1)

/* Any u64 modulo p. */
static inline uint64_t fold(uint64_t a) {
    a = (a & P61) + (a >> 61);
    return a >= P61 ? a - P61 : a;
}

static inline uint64_t mod_p(int64_t s) {
    const uint64_t m = fold(s < 0 ? 0 - (uint64_t)s : (uint64_t)s);
    return s < 0 && m ? P61 - m : m;
}

/* a · 2^s mod p for a < p: a rotation of 61 bits, p being a Mersenne prime. */
static inline uint64_t times_pow2(uint64_t a, unsigned s) {
    s %= 61;
    return s ? fold(((a << s) & P61) | (a >> (61 - s))) : a;
}

/* xs (cols × R) split into ``count`` limbs of ``width`` bits as float64: column i·R + r of the
 * L × cols result (L ≥ count · R, the rest zero) holds limb i of round r.  NULL when out of memory. */
static double *float_limbs(const uint64_t *xs, Py_ssize_t cols, Py_ssize_t R, int width, Py_ssize_t count,
                           Py_ssize_t L) {
    double *xt = calloc((size_t)(L * cols) + 1, sizeof(double));
    if (!xt) return NULL;
    const uint64_t mask = (UINT64_C(1) << width) - 1;
    for (Py_ssize_t i = 0; i < count; i++)
        for (Py_ssize_t r = 0; r < R; r++)
            for (Py_ssize_t j = 0; j < cols; j++)
                xt[(i * R + r) * cols + j] = (double)((xs[j * R + r] >> (width * i)) & mask);
    return xt;
}

/* xs (cols × R, below p) as DIGITS balanced digits each, x = Σ_i d_i · 2^(16·i) with d_i in
 * [−2^15, 2^15) (x < 2^61 leaves the last below 2^14): digit i of round r in column i·R + r, laid
 * out [block of W columns][L][W], zero past cols.  NULL when out of memory. */
static int16_t *digit_limbs(const uint64_t *xs, Py_ssize_t cols, Py_ssize_t R, Py_ssize_t W) {
    const Py_ssize_t blocks = (cols + W - 1) / W, L = DIGITS * R;
    int16_t *dg = calloc((size_t)(blocks * L * W) + 1, sizeof(int16_t));
    if (!dg) return NULL;
    for (Py_ssize_t j0 = 0; j0 < cols; j0 += W) /* block by block: no division by W an entry */
        for (Py_ssize_t j = j0; j < cols && j < j0 + W; j++)
            for (Py_ssize_t r = 0; r < R; r++) {
                int64_t x = (int64_t)xs[j * R + r];
                for (Py_ssize_t i = 0; i < DIGITS; i++) {
                    const int64_t d = ((x + 32768) & 0xFFFF) - 32768;
                    dg[j0 * L + (i * R + r) * W + (j - j0)] = (int16_t)d;
                    x = (x - d) / 65536;
                }
            }
    return dg;
}

/* out[i][r] = Σ_l sums[i][l · R + r] · 2^(width · l) mod p, over ``count`` limbs (sums: rows × L). */
static void combine(const int64_t *sums, Py_ssize_t rows, Py_ssize_t L, Py_ssize_t R, Py_ssize_t count, int width,
                    uint64_t *out) {
    for (Py_ssize_t i = 0; i < rows; i++)
        for (Py_ssize_t r = 0; r < R; r++) {
            uint64_t v = 0;
            for (Py_ssize_t l = 0; l < count; l++)
                v = fold(v + times_pow2(mod_p(sums[i * L + l * R + r]), (unsigned)(width * l) % 61));
            out[i * R + r] = v;
        }
}

static PyObject *py_products(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"matrix", "rows", "cols", "itemsize", "xs", "rounds", "width", "flush", "bound", "out",
                             "wild", "path", NULL};
    Py_buffer mb, xb, ob, wb;
    task_t t = {0};
    Py_ssize_t R;
    int width;
    long long bound;
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nniy*ninLw*w*s", kwlist, &mb, &t.rows, &t.cols, &t.itemsize, &xb,
                                     &R, &width, &t.flush, &bound, &ob, &wb, &name))
        return NULL;
    const char *problem = NULL;
    const path_t *path = path_named(name);
    const int digits = path && !strcmp(path->kind, "digits"), segmented = path && !strcmp(path->kind, "segments");
    const Py_ssize_t count = width > 0 ? (61 + width - 1) / width : 0;
    if (!path) problem = "this path is not available on this CPU";
    else if (t.rows < 0 || t.cols < 0 || R < 0 || (t.itemsize != 1 && t.itemsize != 4)) problem = "bad dimensions";
    else if (digits ? width != 16 || t.itemsize != 1 : width < 1 || width > 61)
        problem = digits ? "this path takes int8 matrices and digits of 16 bits" : "limbs are 1 to 61 bits wide";
    else if (segmented ? t.flush < 1 : t.flush != 0)
        problem = segmented ? "this path needs flush >= 1" : "this path sums without segments (flush 0)";
    else if (R > 1024) problem = "too many rounds";
    else if (t.cols > 0 && (size_t)t.rows > (size_t)PY_SSIZE_T_MAX / (size_t)t.cols / 8) problem = "matrix too large";
    else if (t.cols > (Py_ssize_t)1 << 40) problem = "too many columns";
    else if (mb.len != t.rows * t.cols * t.itemsize) problem = "the matrix buffer does not match its shape";
    else if (xb.len != t.cols * R * (Py_ssize_t)sizeof(uint64_t)) problem = "the xs buffer does not match";
    else if (ob.len != t.rows * R * (Py_ssize_t)sizeof(uint64_t)) problem = "the output buffer does not match";
    else if (wb.len != t.rows) problem = "the wild buffer does not match";
    else if (bound < 0 || bound > INT32_MAX) problem = "bound out of range";
    const uint64_t *xs = xb.buf;
    for (Py_ssize_t j = 0; !problem && j < t.cols * R; j++)
        if (xs[j] >= P61) problem = "xs holds a value not below p";
    int oom = 0;
    if (!problem) {
        t.m = mb.buf, t.wild = wb.buf, t.bound = bound;
        t.L = digits ? DIGITS * R : segmented ? count * R : (count * R + LIMBS - 1) / LIMBS * LIMBS;
        double *xt = NULL, *xi = NULL;
        int16_t *dg = NULL;
        int64_t *sums = NULL;
        Py_BEGIN_ALLOW_THREADS
        sums = malloc((size_t)(t.rows * t.L) * sizeof(int64_t) + 1);
        if (digits) t.dg = dg = digit_limbs(xs, t.cols, R, path->block);
        else t.xt = xt = float_limbs(xs, t.cols, R, width, count, t.L);
#ifdef FREIVALDS_X86
        if (segmented && xt) t.xi = xi = interleave(xt, t.L, t.cols);
#endif
        oom = !sums || (digits ? !dg : !xt || (segmented && !xi));
        if (!oom) {
            t.out = sums;
            path->fn(&t, 0, t.rows);
            combine(sums, t.rows, t.L, R, digits ? DIGITS : count, width, ob.buf);
        }
        Py_END_ALLOW_THREADS
        free(xt), free(xi), free(dg), free(sums);
    }
    PyBuffer_Release(&mb), PyBuffer_Release(&xb), PyBuffer_Release(&ob), PyBuffer_Release(&wb);
    if (oom) return PyErr_NoMemory();
    if (problem) {
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"paths", py_paths, METH_NOARGS,
     "The SIMD paths this CPU runs, fastest first: {name: kind}, kind 'whole' (flush 0), 'segments' "
     "(flush >= 1) or 'digits' (int8 matrices, width 16, flush 0)."},
    {"products", (PyCFunction)(void (*)(void))py_products, METH_VARARGS | METH_KEYWORDS,
     "products(matrix, rows, cols, itemsize, xs, rounds, width, flush, bound, out, wild, path): "
     "matrix · xs mod 2^61 - 1 into out (rows × rounds, u64), exactly; rows beyond bound marked in wild."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "client._freivalds",
                                    "Exact products modulo 2^61 - 1 for Freivalds' check (PROTOCOL §6).", -1, methods};

PyMODINIT_FUNC PyInit__freivalds(void) { return PyModule_Create(&module); }
