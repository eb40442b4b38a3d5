/* The fast work kernel (PROTOCOL §4): fused noisy int8 GEMM + per-chunk tile fold + ticket SHA-256.
 *
 * Data flow per call:
 *   1. pack (parallel over tile-rows and tile-columns): A' = A + E_L·E_R and B' = B + F_L·F_R
 *      are formed on the fly from the noise factors, which the pack threads expand from the seeds
 *      (SHAKE-128, eight streams at once on the AVX-512 paths, four on the others; entries of
 *      A, B range-checked), into
 *        Ap[8-row group][k/4][8 rows][4]      (a row's 4 consecutive k-values are broadcast)
 *        Bp[16-column group][k/4][16 cols][4] (the VNNI K4 layout: one zmm or two ymm a quad)
 *      with, on the VNNI paths (u8 · s8), A' + 128 stored as u8 and 128·Σ B' per segment and
 *      column to subtract again.
 *   2. compute (parallel over units of MC × NC outputs, taken from a shared counter): K-blocks of
 *      about KC_TARGET (whole chunks) so that a strip's B block stays in L1 while the unit's rows
 *      stream past; the micro-kernels (_micro.h) keep up to 24 accumulators in registers, and at
 *      every chunk boundary XOR them into the tiles' per-chunk partials.  After the last block
 *      each tile's partials are reduced, folded into the 16 lanes, hashed into the ticket digest
 *      and compared with the threshold; C' = A'·B' is written from the registers if asked for.
 *      With a stop byte (kernel.matmul_rows), once it is set, by the caller or at a winning tile,
 *      no new panel of MC rows is begun (take_unit): the call returns the rows finished, and
 *      A's tile-rows may start at ta0 of the work's, so the rest goes on under another header.
 * Paths: portable C, AVX2 (vpmaddubsw + vpmaddwd), AVX-VNNI (vpdpbusd ymm), AVX-512 VNNI
 * (vpdpbusd zmm) and AMX (TDPBSSD on tiles, s8 · s8: its own packing of A and tile loops, _amx.h),
 * chosen at runtime; the ticket hash uses SHA-NI when the CPU has it (not on the
 * portable path).  Threads persist across calls (_pool.h).
 *
 * Beside the mining: the Merkle leaf hashes of a matrix's lines, for its commitment (§2), many
 * lines at once (_leafhash.h), and the Merkle roots over them (_merkle.h).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_leafhash.h"
#include "_merkle.h"
#include "_sha256.h"
#include "_shake128.h"

#if defined(__x86_64__) || defined(__i386__)
#define POUW_X86 1
/* the AMX intrinsics and target attributes: GCC 11, Clang 12 */
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
#define POUW_AMX 1
#endif
#include <cpuid.h>
#include <immintrin.h>
#endif

/* MAX_RANK: the largest r mined (every network's r_max; the AMX path gathers E_L from at most 8
 * windows of 128 entries). */
enum { TILE = 32, LANES = 16, MAX_THREADS = 256, MAX_RANK = 1024 };
enum { PATH_AUTO = 0, PATH_PORTABLE = 1, PATH_AVX2 = 2, PATH_AVXVNNI = 3, PATH_AVX512 = 4, PATH_AMX = 5, PATH_LAST = PATH_AMX };
static const char *PATH_NAMES[] = {"auto", "portable", "avx2", "avxvnni", "avx512", "amx"};

/* Units of MC × NC outputs (multiples of the tile and of every strip width); K-blocks of about
 * KC_TARGET k-values, whole chunks: a 48-column strip of B is then 24 KiB, half of L1. */
enum { MC = 256, NC = 96, KC_TARGET = 512 };

#include "_micro.h"
#include "_pool.h"

/* Per path: its micro-kernel, the columns of one vector, a strip's vectors, and whether A' is
 * stored as the u8 A' + 128 (vpdpbusd multiplies u8 by s8) with column sums to subtract.  The AMX
 * path has tile loops of its own (_amx.h). */
typedef struct {
    strip_fn fn;
    int w, nv, offset;
} geometry_t;

static const geometry_t GEOMETRY[] = {
    [PATH_PORTABLE] = {strip_portable, 16, 3, 0},
#ifdef POUW_X86
    [PATH_AVX2] = {strip_avx2, 8, 2, 0},
    [PATH_AVXVNNI] = {strip_avxvnni, 8, 3, 1},
    [PATH_AVX512] = {strip_avx512, 16, 3, 1},
    [PATH_AMX] = {NULL, 16, 2, 0},
#endif
};

typedef struct {
    const int8_t *a, *b;                     /* A (m×k), B (k×n; with b_cols its columns, n×k) */
    int b_cols;                               /* B given column-major: element (j, col) at b[col·k + j] */
    const uint8_t *s_a, *s_b;                /* noise seeds; s_b NULL: no noise (plain GEMM) */
    int m, n, k, r, limit;                   /* |A|, |B| entries must not exceed limit */
    const uint8_t *threshold;                /* NULL: every tile wins */
    uint32_t *lanes;                          /* T×16, NULL: no fold/tickets (plain GEMM) */
    uint8_t *digests, *wins;                  /* T×32, T */
    int32_t *c;                               /* m×n or NULL */
    int ta0;                                  /* A's first tile-row within the work's A (E_L, tickets) */
    uint8_t *stop;                            /* set (by the caller, or at a winning tile): no new panel */
    long stop_unit;                           /* the first unit not computed once stopped (LONG_MAX) */
    int path, use_shani, threads, bad_entry;
    int gather_a;                             /* A' packed by pack_a_gather */
    uint32_t ticket_w[12], ticket_mid[8];     /* SHA-NI: the ticket's words and midstate (ticket_setup_ni) */
    int kc, seg;                              /* k-values per K-block; quads per correction segment */
    int ks, planes;                           /* AMX: k-values per TDPBSSD; byte planes of the recovery */
    /* workspace (run_job) */
    int8_t *ap, *bp;                          /* packed operands */
    uint8_t *xof;                             /* per tile-row, then tile-column: its 32r XOF bytes */
    uint8_t *pairs_xof;                       /* X(s_A, "ER", 4k) ‖ X(s_B, "FL", 4k) */
    int8_t *factors;                          /* the same panels' r×32 noise factors */
    uint16_t *ep, *eq, *fp, *fq;              /* E_R and F_L pairs (k each) */
    int32_t *colsum;                          /* offset paths: 128·Σ B' per column group, segment, column */
    /* recovery (kernel.matmul, noisy only): C = A'·B' − L·R = A·B, see recovery_worker */
    int recover, rpad, pairs, split_x, split_y; /* rpad: r rounded up to 16 */
    int8_t *flp;                              /* F_L packed like B (k × rpad) */
    int32_t *fl_colsum;                       /* offset paths: 128·Σ_j F_L[j, c] */
    int32_t *xl;                              /* X = A'·F_L (m × rpad) */
    int32_t *y0;                              /* Y = E_R·B, per 16-column group [r][16] */
    int8_t *lp, *rp;                          /* L (m × 2·pairs int16) and R (2·pairs × n) packed */
    uint8_t *units;                           /* per thread: accumulators, tile partials, chunk XORs */
    size_t unit_len;
    long next;                                /* shared work counter */
    int slot;                                 /* hands out the per-thread unit buffers */
} job_t;

/* --- noise factors and pairs (PROTOCOL §4) ---------------------------------------------------
 *
 * Both operands are packed as 32-line panels: a tile-row of A (lines = rows, k along each row)
 * and a tile-column of B (lines = columns, k down the column).  Their noise has the same shape:
 *   E[i, j] = E_L[i, p_j] − E_L[i, q_j]   (p, q from P(s_A, "ER"))
 *   F[j, c] = F_R[p_j, c] − F_R[q_j, c]   (p, q from P(s_B, "FL"))
 * so with the panel's factor stored transposed, T[x][line] (r×32), the noise of k-index j
 * for all 32 lines is the difference of two 32-byte rows of T: one vector subtraction.
 * The XOF of a panel is 32 lines × r bytes in both cases (E_L row-major per tile-row; F_R
 * "column by column" per tile-column), so T is its transpose with entry = (byte & 63) − 32.
 */

static void noise_factor_scalar(const uint8_t *xof, int r, int x0, int8_t *T) {
    for (int line = 0; line < TILE; line++)
        for (int x = x0; x < r; x++) T[x * TILE + line] = (int8_t)((xof[(size_t)line * r + x] & 63) - 32);
}

#ifdef POUW_X86
/* 16 x-values at a time: lines 0-15 in the low 128-bit lanes, 16-31 in the high ones, and a
 * 16 × 16 byte transpose in each (unpacks of bytes, words, dwords, qwords). */
__attribute__((target("avx2"))) static void noise_factor_avx2(const uint8_t *xof, int r, int8_t *T) {
    const __m256i low6 = _mm256_set1_epi8(63), bias = _mm256_set1_epi8(32);
    int x0 = 0;
    for (; x0 + 16 <= r; x0 += 16) {
        __m256i a[16], b[16];
        for (int l = 0; l < 16; l++)
            a[l] = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(xof + (size_t)l * r + x0))),
                _mm_loadu_si128((const __m128i *)(xof + (size_t)(l + 16) * r + x0)), 1);
        for (int k = 0; k < 8; k++) { /* lines 2k, 2k+1: b[k] x 0-7, b[k+8] x 8-15 */
            b[k] = _mm256_unpacklo_epi8(a[2 * k], a[2 * k + 1]);
            b[k + 8] = _mm256_unpackhi_epi8(a[2 * k], a[2 * k + 1]);
        }
        for (int h = 0; h < 2; h++) /* a[k + 4g]: lines 4k … 4k+3 of x 4g … 4g+3 */
            for (int k = 0; k < 4; k++) {
                a[k + 8 * h] = _mm256_unpacklo_epi16(b[8 * h + 2 * k], b[8 * h + 2 * k + 1]);
                a[k + 8 * h + 4] = _mm256_unpackhi_epi16(b[8 * h + 2 * k], b[8 * h + 2 * k + 1]);
            }
        for (int g = 0; g < 4; g++) { /* b[x]: lines 0-15 of x, per 128-bit lane */
            const __m256i lo01 = _mm256_unpacklo_epi32(a[4 * g], a[4 * g + 1]);
            const __m256i hi01 = _mm256_unpackhi_epi32(a[4 * g], a[4 * g + 1]);
            const __m256i lo23 = _mm256_unpacklo_epi32(a[4 * g + 2], a[4 * g + 3]);
            const __m256i hi23 = _mm256_unpackhi_epi32(a[4 * g + 2], a[4 * g + 3]);
            b[4 * g] = _mm256_unpacklo_epi64(lo01, lo23), b[4 * g + 1] = _mm256_unpackhi_epi64(lo01, lo23);
            b[4 * g + 2] = _mm256_unpacklo_epi64(hi01, hi23), b[4 * g + 3] = _mm256_unpackhi_epi64(hi01, hi23);
        }
        for (int x = 0; x < 16; x++)
            _mm256_storeu_si256((__m256i *)(T + (size_t)(x0 + x) * TILE),
                                _mm256_sub_epi8(_mm256_and_si256(b[x], low6), bias));
    }
    noise_factor_scalar(xof, r, x0, T);
}
#endif

static void noise_factor(const job_t *J, const uint8_t *xof, int8_t *T) {
#ifdef POUW_X86
    if (J->path != PATH_PORTABLE) { /* every SIMD path has AVX2 */
        noise_factor_avx2(xof, J->r, T);
        return;
    }
#endif
    noise_factor_scalar(xof, J->r, 0, T);
}

/* X(seed_l, label_l, len) for up to XOF_STREAMS streams (count ≥ 1); input = seed(32) ‖ label.  The
 * AVX-512 paths run eight streams side by side, the other SIMD paths four at a time (unused lanes
 * repeat the last stream). */
enum { XOF_STREAMS = 8 };

static void xof_streams(const job_t *J, const uint8_t *const seed[XOF_STREAMS], const uint8_t (*label)[6],
                        size_t label_len, int count, uint8_t *const out[XOF_STREAMS], size_t len) {
    uint8_t in[XOF_STREAMS][38];
    const uint8_t *ins[XOF_STREAMS];
    uint8_t *outs[XOF_STREAMS];
    for (int l = 0; l < XOF_STREAMS; l++) {
        const int src = l < count ? l : count - 1;
        memcpy(in[l], seed[src], 32);
        memcpy(in[l] + 32, label[src], label_len);
        ins[l] = in[l], outs[l] = out[src];
    }
#ifdef POUW_X86
    if (J->path == PATH_AVX512 || J->path == PATH_AMX) {
        shake128_x8(ins, 32 + label_len, outs, len);
        return;
    }
    if (J->path != PATH_PORTABLE) {
        for (int l = 0; l < count; l += 4) shake128_x4(ins + l, 32 + label_len, outs + l, len);
        return;
    }
#endif
    for (int l = 0; l < count; l++) shake128(ins[l], 32 + label_len, outs[l], len);
}

/* The XOF of `count` ≤ XOF_STREAMS consecutive panels from `first` (tile-rows: X(s_A, "EL"‖u32le(a),
 * 32r); tile-columns: X(s_B, "FR"‖u32le(b), 32r)) into out, 32r bytes each. */
static void panel_xofs(const job_t *J, const uint8_t *seed, char tag, int first, int count, uint8_t *out) {
    const size_t len = (size_t)TILE * J->r;
    const uint8_t *seeds[XOF_STREAMS];
    uint8_t labels[XOF_STREAMS][6], *outs[XOF_STREAMS];
    for (int l = 0; l < count; l++) {
        const uint32_t index = (uint32_t)(first + l);
        seeds[l] = seed;
        labels[l][0] = (uint8_t)tag, labels[l][1] = tag == 'E' ? 'L' : 'R';
        for (int b = 0; b < 4; b++) labels[l][2 + b] = (uint8_t)(index >> (8 * b));
        outs[l] = out + l * len;
    }
    xof_streams(J, seeds, labels, 6, count, outs, len);
}

/* P(seed, label): p_j = u mod r, q_j = (p_j + 1 + (v mod (r − 1))) mod r, u, v u16le. */
static void pairs_from_xof(const uint8_t *xof, int k, int r, uint16_t *p, uint16_t *q) {
    for (int j = 0; j < k; j++) {
        const unsigned u = xof[4 * j] | xof[4 * j + 1] << 8, v = xof[4 * j + 2] | xof[4 * j + 3] << 8;
        p[j] = (uint16_t)(u % r);
        q[j] = (uint16_t)((p[j] + 1 + v % (r - 1)) % r);
    }
}

/* --- packing: Ap[8-row group][k/4][8][4], Bp[16-column group][k/4][16][4] -------------------
 * Both are packed a 32-line panel (a tile-row of A, a tile-column of B) at a time; the panel's
 * groups follow each other, each k/4 quads long.  A quad of a line is 4 consecutive k-values. */

typedef struct {
    const int8_t *data;          /* element (line, j) at data[line·line_step + j·k_step] */
    size_t line_step, k_step;
    const int8_t *T;             /* r×32 noise factor, NULL: no noise */
    const uint16_t *p, *q;       /* the panel's pairs (k each) */
    int8_t flip;                 /* XORed into every packed byte (0x80: u8 operand for vpdpbusd) */
    int limit, group;            /* lines per group: 8 (A) or 16 (B) */
    size_t k;
    int8_t *out;                 /* 32·k bytes */
} panel_t;

/* Offset of (line, quad jq) in a packed panel. */
static inline size_t packed_at(const panel_t *P, int line, int jq) {
    return (size_t)(line / P->group) * P->group * P->k + (size_t)jq * 4 * P->group + 4 * (line % P->group);
}

/* Quads jq0 … jq1 − 1 of a panel, one byte at a time; returns nonzero on an entry out of range. */
static int pack_scalar(const panel_t *P, int jq0, int jq1) {
    int bad = 0;
    for (int jq = jq0; jq < jq1; jq++)
        for (int t = 0; t < 4; t++) {
            const int j = 4 * jq + t;
            const int8_t *tp = P->T ? P->T + (size_t)P->p[j] * TILE : NULL;
            const int8_t *tq = P->T ? P->T + (size_t)P->q[j] * TILE : NULL;
            for (int line = 0; line < TILE; line++) {
                const int8_t x = P->data[line * P->line_step + (size_t)j * P->k_step];
                bad |= x < -P->limit || x > P->limit;
                const int e = tp ? tp[line] - tq[line] : 0;
                P->out[packed_at(P, line, jq) + t] = (int8_t)(x + e) ^ P->flip;
            }
        }
    return bad;
}

#ifdef POUW_X86
/* Noise of k-index j for the panel's 32 lines (see noise_factor). */
__attribute__((target("avx2"))) static inline __m256i noise_vec(const panel_t *P, int j) {
    return _mm256_sub_epi8(_mm256_load_si256((const __m256i *)(P->T + (size_t)P->p[j] * TILE)),
                           _mm256_load_si256((const __m256i *)(P->T + (size_t)P->q[j] * TILE)));
}

/* Four vectors of 32 lines (k-values j … j+3) → [32 lines][4] as four vectors of 8 lines. */
__attribute__((target("avx2"))) static inline void interleave4(const __m256i v[4], __m256i out[4]) {
    const __m256i lo01 = _mm256_unpacklo_epi8(v[0], v[1]), hi01 = _mm256_unpackhi_epi8(v[0], v[1]);
    const __m256i lo23 = _mm256_unpacklo_epi8(v[2], v[3]), hi23 = _mm256_unpackhi_epi8(v[2], v[3]);
    const __m256i q0 = _mm256_unpacklo_epi16(lo01, lo23); /* lines 0-3 | 16-19 */
    const __m256i q1 = _mm256_unpackhi_epi16(lo01, lo23); /* lines 4-7 | 20-23 */
    const __m256i q2 = _mm256_unpacklo_epi16(hi01, hi23); /* lines 8-11 | 24-27 */
    const __m256i q3 = _mm256_unpackhi_epi16(hi01, hi23); /* lines 12-15 | 28-31 */
    out[0] = _mm256_permute2x128_si256(q0, q1, 0x20);
    out[1] = _mm256_permute2x128_si256(q2, q3, 0x20);
    out[2] = _mm256_permute2x128_si256(q0, q1, 0x31);
    out[3] = _mm256_permute2x128_si256(q2, q3, 0x31);
}

/* Running max of |entry| as u8 (|−128| reads as 128), to check the range once per panel. */
__attribute__((target("avx2"))) static inline __m256i track_abs(__m256i mx, __m256i v) {
    return _mm256_max_epu8(mx, _mm256_abs_epi8(v));
}

__attribute__((target("avx2"))) static int over_limit(__m256i mx, int limit) {
    const __m256i lim = _mm256_set1_epi8((char)limit);
    return _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(mx, lim), lim)) != -1;
}

/* A k-major panel (a tile-column of B: the 32 lines of one k-index are contiguous); 16-line groups. */
__attribute__((target("avx2"))) static int pack_kmajor_avx2(const panel_t *P, size_t j0, size_t j1) {
    const __m256i flip = _mm256_set1_epi8(P->flip);
    __m256i mx = _mm256_setzero_si256();
    for (size_t j = j0; j < j1; j += 4) {
        __m256i v[4], o[4];
        for (int t = 0; t < 4; t++) {
            v[t] = _mm256_loadu_si256((const __m256i *)(P->data + (j + t) * P->k_step));
            mx = track_abs(mx, v[t]);
            if (P->T) v[t] = _mm256_add_epi8(v[t], noise_vec(P, (int)j + t));
        }
        interleave4(v, o);
        for (int x = 0; x < 4; x++)
            _mm256_store_si256((__m256i *)(P->out + packed_at(P, 8 * x, (int)(j / 4))), _mm256_xor_si256(o[x], flip));
    }
    return over_limit(mx, P->limit);
}

/* A line-major panel (a tile-row of A: each row's k-values are contiguous); 8-line groups.  Blocks
 * of 8 rows × 32 k-values are transposed as dwords, so every quad lands as 8 rows × 4 bytes, and
 * get the noise quads added before they are stored.  A tail of k mod 32 values goes through
 * pack_scalar. */
__attribute__((target("avx2"))) static int pack_linemajor_avx2(const panel_t *P) {
    const __m256i flip = _mm256_set1_epi8(P->flip);
    const int body = (int)P->k / 32 * 32;
    __m256i mx = _mm256_setzero_si256();
    for (int j0 = 0; j0 < body; j0 += 32) {
        __m256i e[8][4]; /* noise of quad x for row group g */
        for (int x = 0; x < 8; x++) {
            __m256i n[4];
            for (int t = 0; t < 4; t++) n[t] = P->T ? noise_vec(P, j0 + 4 * x + t) : _mm256_setzero_si256();
            interleave4(n, e[x]);
        }
        for (int g = 0; g < 4; g++) {
            __m256i rows[8], quads[8];
            for (int y = 0; y < 8; y++) {
                rows[y] = _mm256_loadu_si256((const __m256i *)(P->data + (8 * g + y) * P->line_step + j0));
                mx = track_abs(mx, rows[y]);
            }
            transpose8x8_epi32(rows, quads);
            for (int x = 0; x < 8; x++)
                _mm256_store_si256((__m256i *)(P->out + packed_at(P, 8 * g, j0 / 4 + x)),
                                   _mm256_xor_si256(_mm256_add_epi8(quads[x], e[x][g]), flip));
        }
    }
    return over_limit(mx, P->limit) | pack_scalar(P, body / 4, (int)P->k / 4);
}

/* 128·Σ B' over each segment of `seg` quads, per column, for the 16-column groups g0, g0 + 1
 * (from Bp, where a byte is B'; maddubs with ones sums byte pairs, madd with ones the pairs). */
__attribute__((target("avx2"))) static void column_sums_avx2(const job_t *J, int g0) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    const int quads = J->k / 4, segments = (quads + J->seg - 1) / J->seg;
    for (int g = g0; g < g0 + 2; g++) {
        const int8_t *bp = J->bp + (size_t)g * 16 * J->k;
        int32_t *cs = J->colsum + (size_t)g * segments * 16;
        for (int s = 0; s < segments; s++) {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            for (int q = s * J->seg; q < (s + 1) * J->seg && q < quads; q++) {
                const __m256i *v = (const __m256i *)(bp + (size_t)q * B_QUAD);
                lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, _mm256_load_si256(v)), ones16));
                hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, _mm256_load_si256(v + 1)), ones16));
            }
            _mm256_storeu_si256((__m256i *)(cs + 16 * s), _mm256_slli_epi32(lo, 7));
            _mm256_storeu_si256((__m256i *)(cs + 16 * s + 8), _mm256_slli_epi32(hi, 7));
        }
    }
}
#endif

/* Packs k-values j0 … j1 − 1 (multiples of 4; all of k for A) of one panel; nonzero if an entry
 * is out of range.  A's panels are line-major (k_step 1). */
static int pack_panel(const job_t *J, const panel_t *P, int j0, int j1) {
#ifdef POUW_X86
    if (J->path != PATH_PORTABLE) /* every SIMD path has AVX2 */
        return P->k_step == 1 ? pack_linemajor_avx2(P) : pack_kmajor_avx2(P, (size_t)j0, (size_t)j1);
#endif
    return pack_scalar(P, j0 / 4, j1 / 4);
}

/* The byte-index arrays noise_gather reads, from the E_R pairs (in the pairs' XOF buffer, 8k
 * bytes, no longer needed once the pairs are read): p mod 128, p / 128, q mod 128, q / 128. */
static void pair_bytes(job_t *J) {
    uint8_t *idx = J->pairs_xof;
    for (int j = 0; j < J->k; j++) {
        idx[j] = (uint8_t)(J->ep[j] & 127), idx[J->k + j] = (uint8_t)(J->ep[j] >> 7);
        idx[2 * J->k + j] = (uint8_t)(J->eq[j] & 127), idx[3 * J->k + j] = (uint8_t)(J->eq[j] >> 7);
    }
}

#ifdef POUW_X86
#define VBMI512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

/* A row of E_L as gather tables: its r entries ((XOF byte & 63) − 32), 128 a window (two zmm). */
VBMI512 static inline void noise_tables(const uint8_t *x, int r, __m512i *tab) {
    for (int c = 0; c < 2 * ((r + 127) / 128); c++) {
        const int len = r - 64 * c < 64 ? (r - 64 * c > 0 ? r - 64 * c : 0) : 64;
        const __mmask64 m = len == 64 ? ~(__mmask64)0 : ((__mmask64)1 << len) - 1;
        const __m512i bytes = _mm512_maskz_loadu_epi8(m, x + 64 * c);
        tab[c] = _mm512_sub_epi8(_mm512_and_si512(bytes, _mm512_set1_epi8(63)), _mm512_set1_epi8(32));
    }
}

/* E_L[line, idx_j] for 64 k-values: tab holds the row's r entries (noise_tables); lo = index mod
 * 128 and win = index / 128 per k-value (masked to the valid ones). */
VBMI512 static inline __m512i noise_gather(const __m512i *tab, int windows, const uint8_t *lo, const uint8_t *win,
                                           __mmask64 valid) {
    const __m512i idx = _mm512_maskz_loadu_epi8(valid, lo);
    if (windows == 1) return _mm512_permutex2var_epi8(tab[0], idx, tab[1]);
    const __m512i w = _mm512_maskz_loadu_epi8(valid, win);
    __m512i out = _mm512_setzero_si512();
    for (int x = 0; x < windows; x++)
        out = _mm512_mask_mov_epi8(out, _mm512_cmpeq_epi8_mask(w, _mm512_set1_epi8((char)x)),
                                   _mm512_permutex2var_epi8(tab[2 * x], idx, tab[2 * x + 1]));
    return out;
}

/* Tile-row `panel` of A' + 128 (u8) into Ap on the AVX-512 path where the CPU has VBMI and r ≤ 128
 * (J->gather_a): a row's E is gathered 64 k-values at a time from its E_L in the XOF (as
 * amx_pack_a) and added to the row as loaded; then an 8-row group's 64 k-values, 16 dwords a
 * row, are transposed into its 16 quads: 4 × 4 inside 128-bit lanes (rows 0-3 and 4-7 apart),
 * the two halves' lanes paired (vpermt2q), and neighbouring quads paired (vshufi64x2) so that
 * each store is two quads.  Nonzero on an entry out of range. */
VBMI512 static int pack_a_gather(const job_t *J, int panel) {
    const int k = J->k;
    const uint8_t *idx = J->pairs_xof;
    const __m512i flip = _mm512_set1_epi8((char)0x80), lim = _mm512_set1_epi8((char)J->limit);
    const __m512i lanes02 = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
    const __m512i lanes13 = _mm512_setr_epi64(4, 5, 12, 13, 6, 7, 14, 15);
    __mmask64 bad = 0;
    for (int row0 = panel * TILE; row0 < (panel + 1) * TILE; row0 += 8) {
        __m512i tab[8][2];
        for (int y = 0; J->s_b && y < 8; y++) noise_tables(J->xof + (size_t)(row0 + y) * J->r, J->r, tab[y]);
        int8_t *out = J->ap + (size_t)row0 * k; /* the group's quads, A_QUAD bytes each */
        for (int j0 = 0; j0 < k; j0 += 64) {
            const int quads = (k - j0) / 4 < 16 ? (k - j0) / 4 : 16;
            const __mmask64 m = quads == 16 ? ~(__mmask64)0 : ((__mmask64)1 << (4 * quads)) - 1;
            __m512i v[8], t[8], p[8];
            for (int y = 0; y < 8; y++) {
                v[y] = _mm512_maskz_loadu_epi8(m, J->a + (size_t)(row0 + y) * k + j0);
                bad |= _mm512_cmpgt_epu8_mask(_mm512_abs_epi8(v[y]), lim);
                if (J->s_b)
                    v[y] = _mm512_add_epi8(v[y], _mm512_sub_epi8(noise_gather(tab[y], 1, idx + j0, NULL, m),
                                                                 noise_gather(tab[y], 1, idx + 2 * k + j0, NULL, m)));
                v[y] = _mm512_xor_si512(v[y], flip);
            }
            for (int h = 0; h < 8; h += 4) { /* t[h + c], lane L: quad 4L + c of rows h … h + 3 */
                const __m512i a0 = _mm512_unpacklo_epi32(v[h], v[h + 1]);
                const __m512i a1 = _mm512_unpackhi_epi32(v[h], v[h + 1]);
                const __m512i a2 = _mm512_unpacklo_epi32(v[h + 2], v[h + 3]);
                const __m512i a3 = _mm512_unpackhi_epi32(v[h + 2], v[h + 3]);
                t[h] = _mm512_unpacklo_epi64(a0, a2), t[h + 1] = _mm512_unpackhi_epi64(a0, a2);
                t[h + 2] = _mm512_unpacklo_epi64(a1, a3), t[h + 3] = _mm512_unpackhi_epi64(a1, a3);
            }
            for (int c = 0; c < 4; c++) { /* p[c] = quads c | 4 + c, p[4 + c] = quads 8 + c | 12 + c */
                p[c] = _mm512_permutex2var_epi64(t[c], lanes02, t[4 + c]);
                p[4 + c] = _mm512_permutex2var_epi64(t[c], lanes13, t[4 + c]);
            }
            for (int z = 0; z < 8 && 2 * z < quads; z++) { /* quads 2z, 2z + 1 */
                const int src = (z & 4) + 2 * (z & 1);
                const __m512i pair = (z & 2) ? _mm512_shuffle_i64x2(p[src], p[src + 1], 0xEE)
                                             : _mm512_shuffle_i64x2(p[src], p[src + 1], 0x44);
                _mm512_mask_storeu_epi64(out + (size_t)(j0 / 4 + 2 * z) * A_QUAD, 2 * z + 1 < quads ? 0xFF : 0x0F,
                                         pair);
            }
        }
    }
    return bad != 0;
}
#endif

/* Pack tasks are groups of PANEL_GROUP tile-rows or tile-columns: one XOF call each. */
enum { PANEL_GROUP = XOF_STREAMS };

/* Tile-rows ta … ta+count−1 of A (count ≤ PANEL_GROUP: one XOF call).  Noise factors are
 * panel-indexed: tile-rows first, then tile-columns. */
#ifdef POUW_AMX
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi"))) static int amx_pack_a(const job_t *J, int panel);
#endif

static void pack_a(job_t *J, int ta, int count) {
    const size_t panel_xof = (size_t)TILE * J->r;
    if (J->s_b) panel_xofs(J, J->s_a, 'E', J->ta0 + ta, count, J->xof + ta * panel_xof);
#ifdef POUW_AMX
    if (J->path == PATH_AMX) {
        for (int i = ta; i < ta + count; i++)
            if (amx_pack_a(J, i)) __atomic_store_n(&J->bad_entry, 1, __ATOMIC_RELAXED);
        return;
    }
#endif
    for (int i = ta; i < ta + count; i++) {
        int8_t *T = J->s_b ? J->factors + i * panel_xof : NULL;
#ifdef POUW_X86
        if (J->gather_a) {
            if (T && J->recover) noise_factor(J, J->xof + i * panel_xof, T); /* the recovery's L reads it */
            if (pack_a_gather(J, i)) __atomic_store_n(&J->bad_entry, 1, __ATOMIC_RELAXED);
            continue;
        }
#endif
        if (T) noise_factor(J, J->xof + i * panel_xof, T);
        const panel_t P = {J->a + (size_t)i * TILE * J->k, (size_t)J->k, 1, T, J->ep, J->eq,
                           GEOMETRY[J->path].offset ? (int8_t)0x80 : 0, J->limit, 8, (size_t)J->k,
                           J->ap + (size_t)i * TILE * J->k};
        if (pack_panel(J, &P, 0, J->k)) __atomic_store_n(&J->bad_entry, 1, __ATOMIC_RELAXED);
    }
}

/* Y += E_R·B over B's rows j0 … j1 − 1 for the 16-column groups g0 … g0+count−1 (count ≤ Y_GROUPS:
 * a row's bytes for them are one cache line): y[g][x][c] (r × 16 each).  pack_b adds each block of
 * rows it has just packed, while they are in cache. */
enum { Y_GROUPS = 4 };

static void groups_y_scalar(const job_t *J, int g0, int count, int j0, int j1, int32_t *y) {
    for (int j = j0; j < j1; j++)
        for (int g = 0; g < count; g++) {
            const int8_t *row = J->b + (size_t)j * J->n + 16 * (g0 + g);
            int32_t *yp = y + (size_t)g * 16 * J->r + 16 * J->ep[j], *yq = y + (size_t)g * 16 * J->r + 16 * J->eq[j];
            for (int c = 0; c < 16; c++) yp[c] += row[c], yq[c] -= row[c];
        }
}

#ifdef POUW_X86
__attribute__((target("avx2"))) static void groups_y_avx2(const job_t *J, int g0, int count, int j0, int j1,
                                                          int32_t *y) {
    for (int j = j0; j < j1; j++)
        for (int g = 0; g < count; g++) {
            const int8_t *row = J->b + (size_t)j * J->n + 16 * (g0 + g);
            const __m256i lo = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)row));
            const __m256i hi = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(row + 8)));
            __m256i *yp = (__m256i *)(y + (size_t)g * 16 * J->r + 16 * J->ep[j]);
            __m256i *yq = (__m256i *)(y + (size_t)g * 16 * J->r + 16 * J->eq[j]);
            _mm256_storeu_si256(yp, _mm256_add_epi32(_mm256_loadu_si256(yp), lo));
            _mm256_storeu_si256(yp + 1, _mm256_add_epi32(_mm256_loadu_si256(yp + 1), hi));
            _mm256_storeu_si256(yq, _mm256_sub_epi32(_mm256_loadu_si256(yq), lo));
            _mm256_storeu_si256(yq + 1, _mm256_sub_epi32(_mm256_loadu_si256(yq + 1), hi));
        }
}

/* The same with AVX-512: a group's 16 columns are one zmm. */
__attribute__((target("avx512f"))) static void groups_y_avx512(const job_t *J, int g0, int count, int j0, int j1,
                                                               int32_t *y) {
    for (int j = j0; j < j1; j++) {
        const int8_t *row = J->b + (size_t)j * J->n + 16 * g0;
        int32_t *yp = y + 16 * J->ep[j], *yq = y + 16 * J->eq[j];
        for (int g = 0; g < count; g++, yp += 16 * J->r, yq += 16 * J->r) {
            const __m512i v = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(row + 16 * g)));
            _mm512_storeu_si512(yp, _mm512_add_epi32(_mm512_loadu_si512(yp), v));
            _mm512_storeu_si512(yq, _mm512_sub_epi32(_mm512_loadu_si512(yq), v));
        }
    }
}
#endif

/* Y for a column-major B: all k rows of the 16-column group g at once (y: the group's [r][16]). */
static void group_y_cols_scalar(const job_t *J, int g, int j0, int32_t *y) {
    for (int c = 0; c < 16; c++) {
        const int8_t *col = J->b + (size_t)(16 * g + c) * J->k;
        for (int j = j0; j < J->k; j++) y[16 * J->ep[j] + c] += col[j], y[16 * J->eq[j] + c] -= col[j];
    }
}

#ifdef POUW_X86
/* 64 k-values at a time: the group's 16 columns × 64 bytes transposed as dwords (a quad of each
 * column a lane), each k-value's 16 entries then sign-extended out of their byte of the lane. */
__attribute__((target("avx512f"))) static void group_y_cols_avx512(const job_t *J, int g, int32_t *y) {
    const int body = J->k / 64 * 64;
    for (int j0 = 0; j0 < body; j0 += 64) {
        __m512i cols[16], quads[16];
        for (int c = 0; c < 16; c++)
            cols[c] = _mm512_loadu_si512(J->b + (size_t)(16 * g + c) * J->k + j0);
        transpose16x16_epi32(cols, quads);
        for (int x = 0; x < 16; x++)
            for (int t = 0; t < 4; t++) {
                const int j = j0 + 4 * x + t;
                const __m512i v = _mm512_srai_epi32(_mm512_slli_epi32(quads[x], 24 - 8 * t), 24);
                int32_t *yp = y + 16 * J->ep[j], *yq = y + 16 * J->eq[j];
                _mm512_storeu_si512(yp, _mm512_add_epi32(_mm512_loadu_si512(yp), v));
                _mm512_storeu_si512(yq, _mm512_sub_epi32(_mm512_loadu_si512(yq), v));
            }
    }
    group_y_cols_scalar(J, g, body, y);
}

/* The same with 8 columns at a time (each half of the group): 8 columns × 32 bytes transposed
 * as dwords, each k-value's 8 entries sign-extended out of their byte of the lane. */
__attribute__((target("avx2"))) static void group_y_cols_avx2(const job_t *J, int g, int32_t *y) {
    const int body = J->k / 32 * 32;
    for (int half = 0; half < 2; half++) {
        const int8_t *first = J->b + (size_t)(16 * g + 8 * half) * J->k;
        for (int j0 = 0; j0 < body; j0 += 32) {
            __m256i cols[8], quads[8];
            for (int c = 0; c < 8; c++) cols[c] = _mm256_loadu_si256((const __m256i *)(first + (size_t)c * J->k + j0));
            transpose8x8_epi32(cols, quads);
            for (int x = 0; x < 8; x++)
                for (int t = 0; t < 4; t++) {
                    const int j = j0 + 4 * x + t;
                    const __m256i v = _mm256_srai_epi32(_mm256_slli_epi32(quads[x], 24 - 8 * t), 24);
                    __m256i *yp = (__m256i *)(y + 16 * J->ep[j] + 8 * half), *yq = (__m256i *)(y + 16 * J->eq[j] + 8 * half);
                    _mm256_storeu_si256(yp, _mm256_add_epi32(_mm256_loadu_si256(yp), v));
                    _mm256_storeu_si256(yq, _mm256_sub_epi32(_mm256_loadu_si256(yq), v));
                }
        }
    }
    group_y_cols_scalar(J, g, body, y);
}
#endif

static void group_y_cols(const job_t *J, int g, int32_t *y) {
#ifdef POUW_X86
    if (J->path == PATH_AVX512 || J->path == PATH_AMX) {
        group_y_cols_avx512(J, g, y);
        return;
    }
    if (J->path != PATH_PORTABLE) { /* every other SIMD path has AVX2 */
        group_y_cols_avx2(J, g, y);
        return;
    }
#endif
    group_y_cols_scalar(J, g, 0, y);
}

static void groups_y(const job_t *J, int g0, int count, int j0, int j1, int32_t *y) {
#ifdef POUW_X86
    if (J->path == PATH_AVX512 || J->path == PATH_AMX) {
        groups_y_avx512(J, g0, count, j0, j1, y);
        return;
    }
    if (J->path != PATH_PORTABLE) {
        groups_y_avx2(J, g0, count, j0, j1, y);
        return;
    }
#endif
    groups_y_scalar(J, g0, count, j0, j1, y);
}

/* Tile-columns tb … tb+count−1 of B (count ≤ PANEL_GROUP: one XOF call), B_ROWS rows of B at a
 * time for all of them: a row's 32·count bytes are then read together (B is k×n row-major); for
 * kernel.matmul, those rows' part of Y = E_R·B too. */
enum { B_ROWS = 64 };

static void pack_b(job_t *J, int tb, int count) {
    const size_t panel_xof = (size_t)TILE * J->r, first = J->m / TILE + tb;
    if (J->s_b) panel_xofs(J, J->s_b, 'F', tb, count, J->xof + first * panel_xof);
    /* a column (a line of the panel) is k apart in a column-major B, next to its neighbour in rows */
    const size_t line_step = J->b_cols ? (size_t)J->k : 1, k_step = J->b_cols ? 1 : (size_t)J->n;
    panel_t P[PANEL_GROUP];
    for (int i = 0; i < count; i++) {
        const size_t panel = first + i;
        int8_t *T = J->s_b ? J->factors + panel * panel_xof : NULL;
        if (T) noise_factor(J, J->xof + panel * panel_xof, T);
        P[i] = (panel_t){J->b + (size_t)(tb + i) * TILE * line_step, line_step, k_step, T, J->fp, J->fq, 0, J->limit,
                         16, (size_t)J->k, J->bp + (size_t)(tb + i) * TILE * J->k};
    }
    const int g1 = 2 * (tb + count); /* the 16-column groups 2tb … g1 − 1 */
    if (J->recover) memset(J->y0 + (size_t)2 * tb * 16 * J->r, 0, (size_t)(g1 - 2 * tb) * 16 * J->r * sizeof *J->y0);
    int bad = 0;
    for (int i = 0; J->b_cols && i < count; i++) /* columns are lines: packed as A's rows are, whole */
        bad |= pack_panel(J, &P[i], 0, J->k);
    for (int g = 2 * tb; J->b_cols && J->recover && g < g1; g++)
        group_y_cols(J, g, J->y0 + (size_t)g * 16 * J->r);
    for (int j = 0; !J->b_cols && j < J->k; j += B_ROWS) {
        const int j1 = j + B_ROWS < J->k ? j + B_ROWS : J->k;
        for (int i = 0; i < count; i++) bad |= pack_panel(J, &P[i], j, j1);
        for (int g = 2 * tb; J->recover && g < g1; g += Y_GROUPS)
            groups_y(J, g, g1 - g < Y_GROUPS ? g1 - g : Y_GROUPS, j, j1, J->y0 + (size_t)g * 16 * J->r);
    }
    if (bad) __atomic_store_n(&J->bad_entry, 1, __ATOMIC_RELAXED);
#ifdef POUW_X86
    for (int i = tb; J->colsum && i < tb + count; i++) column_sums_avx2(J, 2 * i); /* offset paths have AVX2 */
#endif
}

/* --- fold and ticket (PROTOCOL §4) ----------------------------------------------------- */

/* The ticket message of tile (ta, tb) with lanes M: tagged("pouw/ticket", s_A ‖ u32le(ta) ‖
 * u32le(tb) ‖ 16 × u32le(lane)), 116 bytes: two SHA-256 blocks. */
enum { TICKET_MSG = 12 + 32 + 8 + 4 * LANES };

static void ticket_message(const job_t *J, int ta, int tb, const uint32_t M[LANES], uint8_t msg[TICKET_MSG]) {
    memcpy(msg, "\x0bpouw/ticket", 12);
    memcpy(msg + 12, J->s_a, 32);
    for (int i = 0; i < 2 + LANES; i++) {
        const uint32_t w = i == 0 ? (uint32_t)ta : i == 1 ? (uint32_t)tb : M[i - 2];
        for (int b = 0; b < 4; b++) msg[44 + 4 * i + b] = (uint8_t)(w >> (8 * b));
    }
}

#ifdef POUW_HAVE_SHANI
/* Once a call: the big-endian words 0-10 of the message's first block (tag ‖ s_A, the same for
 * every tile; word 11 on is the tile's) and the SHA-NI state after rounds 0-7, which read
 * words 0-7 only. */
__attribute__((target("sha,sse4.1,ssse3"))) static void ticket_setup_ni(job_t *J) {
    uint8_t msg[TICKET_MSG];
    const uint32_t zero[LANES] = {0};
    ticket_message(J, 0, 0, zero, msg);
    for (int i = 0; i < 12; i++)
        J->ticket_w[i] = (uint32_t)msg[4 * i] << 24 | (uint32_t)msg[4 * i + 1] << 16 | (uint32_t)msg[4 * i + 2] << 8 |
                         msg[4 * i + 3];
    sha256_ni_t s = sha256_ni_load(SHA256_IV);
    __m128i w[4] = {_mm_loadu_si128((const __m128i *)J->ticket_w), _mm_loadu_si128((const __m128i *)(J->ticket_w + 4))};
    sha256_ni_groups(&s, w, 0, 2);
    sha256_ni_store(s, J->ticket_mid);
}

/* The digest of a ticket from the midstate, its tile's words put together in registers: block 1's
 * words 11-15 are ta, tb, M0-M2, block 2's M3-M15, the padding bit and the length (928 bits). */
__attribute__((target("sha,sse4.1,ssse3"))) static void ticket_digest_ni(const job_t *J, int ta, int tb,
                                                                       const uint32_t M[LANES], uint8_t d[32]) {
    const __m128i bswap = _mm_loadu_si128((const __m128i *)SHA256_BSWAP32);
    __m128i m[4];
    for (int v = 0; v < 4; v++) m[v] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(M + 4 * v)), bswap);
    const __m128i w8 = _mm_loadu_si128((const __m128i *)(J->ticket_w + 8));
    __m128i w[4] = {_mm_loadu_si128((const __m128i *)J->ticket_w), _mm_loadu_si128((const __m128i *)(J->ticket_w + 4)),
                    _mm_insert_epi32(w8, (int)__builtin_bswap32((uint32_t)ta), 3),
                    _mm_insert_epi32(_mm_slli_si128(m[0], 4), (int)__builtin_bswap32((uint32_t)tb), 0)};
    sha256_ni_t s = sha256_ni_load(J->ticket_mid);
    sha256_ni_groups(&s, w, 2, 16);
    const sha256_ni_t save = s = sha256_ni_add(s, sha256_ni_load(SHA256_IV));
    w[0] = _mm_alignr_epi8(m[1], m[0], 12);
    w[1] = _mm_alignr_epi8(m[2], m[1], 12);
    w[2] = _mm_alignr_epi8(m[3], m[2], 12);
    w[3] = _mm_or_si128(_mm_srli_si128(m[3], 12), _mm_set_epi32(8 * TICKET_MSG, 0, (int)0x80000000u, 0));
    sha256_ni_groups(&s, w, 0, 16);
    uint32_t st[8];
    sha256_ni_store(sha256_ni_add(s, save), st);
    _mm_storeu_si128((__m128i *)d, _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)st), bswap));
    _mm_storeu_si128((__m128i *)(d + 16), _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(st + 4)), bswap));
}
#endif

/* The ticket of tile (ta, tb) of this call's rows (tile-row J->ta0 + ta of the work) from its 16
 * lanes M (kept in J->lanes); a winning tile sets J->stop where there is one. */
static void ticket_lanes(const job_t *J, int ta, int tb, const uint32_t M[LANES]) {
    const size_t t = (size_t)ta * (J->n / TILE) + tb;
    uint8_t *d = J->digests + t * 32;
    memcpy(J->lanes + t * LANES, M, LANES * sizeof *M);
#ifdef POUW_HAVE_SHANI
    if (J->use_shani) ticket_digest_ni(J, J->ta0 + ta, tb, M, d);
    else
#endif
    {
        uint8_t msg[TICKET_MSG];
        ticket_message(J, J->ta0 + ta, tb, M, msg);
        sha256_short(msg, sizeof msg, d);
    }
    J->wins[t] = !J->threshold || memcmp(d, J->threshold, 32) < 0;
    if (J->wins[t] && J->stop) __atomic_store_n(J->stop, 1, __ATOMIC_RELEASE);
}

/* The ticket of tile (ta, tb) from its chunk XORs: chunk l's goes into lane l mod 16, after the
 * lane is rotated left by 13. */
static void ticket(const job_t *J, int ta, int tb, const uint32_t *xors) {
    uint32_t M[LANES] = {0};
    for (int l = 0, chunks = J->k / J->r; l < chunks; l++) {
        const uint32_t v = M[l % LANES];
        M[l % LANES] = ((v << 13) | (v >> 19)) ^ xors[l];
    }
    ticket_lanes(J, ta, tb, M);
}

/* --- recovery of A·B (kernel.matmul) ---------------------------------------------------------
 * C' − A·B = A'·B' − (A' − E)(B' − F) = A'·F + E·B = (A'·F_L)·F_R + E_L·(E_R·B) = L·R with
 *   L = [X | E_L] (m × 2r),  R = [F_R ; Y] (2r × n),  X = A'·F_L,  Y = E_R·B,
 * a rank-2r product the micro-kernels subtract in int16 pairs after the last chunk (L is
 * stored negated).  |X| ≤ 127·S and |Y| ≤ 64·T, where S, T are the most k-indices that touch
 * one column of F_L or row of E_R; where that bound exceeds int16, the block is split into
 * bytes: X·F_R = lo(X)·F_R + hi(X)·(256·F_R) (and E_L·Y likewise), the rank growing to 3r or 4r.
 * X is a GEMM of the packed A' with F_L packed like B (its r columns padded to 16), on the same
 * micro-kernels, or, on the AVX-512 path with VBMI when X fits int16, sums of A' columns
 * (l_x_gather); Y adds rows of B. All sums wrap mod 2^32, which is exact since A·B fits int32. */

enum { I16_MAX = 32767 };


static int32_t split_lo(int32_t v) { return (int8_t)(v & 0xFF); }
static int32_t split_hi(int32_t v) { return (v - split_lo(v)) / 256; }

/* One row of L or column of R in rank order: the big block (X or Y), possibly split, and the
 * small one (E_L or F_R), scaled by 256 for the split's second half. */
static void rank_line(const job_t *J, const int32_t *big, size_t big_step, const int8_t *small, int big_first,
                      int split_big, int split_small, int32_t *out) {
    const int r = J->r;
    int32_t *b = out + (big_first ? 0 : r * (1 + split_small)), *s = out + (big_first ? r * (1 + split_big) : 0);
    for (int x = 0; x < r; x++) {
        const int32_t v = big[x * big_step];
        if (split_big) b[x] = split_lo(v), b[r + x] = split_hi(v);
        else b[x] = v;
        s[x] = small[x * TILE];
        if (split_small) s[r + x] = 256 * small[x * TILE];
    }
}

#ifdef POUW_X86
/* Byte split of 8 int32 (see split_lo, split_hi): lo = the low byte sign-extended, hi = (v − lo) / 256. */
__attribute__((target("avx2"))) static inline __m256i split_lo8(__m256i v) {
    return _mm256_srai_epi32(_mm256_slli_epi32(v, 24), 24);
}

/* 16 int32 (a, b) → 16 int16 in order (they fit: see the split decision). */
__attribute__((target("avx2"))) static inline __m256i narrow16(__m256i a, __m256i b) {
    return _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
}

/* The rows row0 … row0+31 of L as rank_line and recovery_worker form them (negated int16 pairs,
 * packed like A): X 16 values a row at a time, narrowed to int16 and transposed as pairs (dwords)
 * across 8 rows (unless x_done: l_x_gather wrote them); E_L a pair at a time from T, the tile-row's
 * E_L transposed (the 8 rows of one x-value are 8 consecutive bytes). */
__attribute__((target("avx2"))) static void l_rows_avx2(const job_t *J, int row0, const int8_t *T, int x_done) {
    const int r = J->r, sx = J->split_x, sy = J->split_y, small = r * (1 + sx);
    const __m256i zero = _mm256_setzero_si256();
    for (int i0 = row0; i0 < row0 + TILE; i0 += 8) {
        int16_t *grp = (int16_t *)(J->lp + (size_t)i0 * 4 * J->pairs); /* pair p at grp + 16p, row y at + 2y */
        int x0 = x_done ? r : 0;
        for (; x0 + 16 <= r; x0 += 16) {
            __m256i lo[8], hi[8], out[8];
            for (int y = 0; y < 8; y++) {
                const int32_t *xr = J->xl + (size_t)(i0 + y) * J->rpad + x0;
                __m256i a = _mm256_loadu_si256((const __m256i *)xr), b = _mm256_loadu_si256((const __m256i *)(xr + 8));
                if (sx) {
                    const __m256i al = split_lo8(a), bl = split_lo8(b);
                    hi[y] = narrow16(_mm256_sub_epi32(zero, _mm256_srai_epi32(_mm256_sub_epi32(a, al), 8)),
                                     _mm256_sub_epi32(zero, _mm256_srai_epi32(_mm256_sub_epi32(b, bl), 8)));
                    a = al, b = bl;
                }
                lo[y] = narrow16(_mm256_sub_epi32(zero, a), _mm256_sub_epi32(zero, b));
            }
            transpose8x8_epi32(lo, out);
            for (int p = 0; p < 8; p++) _mm256_storeu_si256((__m256i *)(grp + 16 * (x0 / 2 + p)), out[p]);
            if (!sx) continue;
            transpose8x8_epi32(hi, out);
            for (int p = 0; p < 8; p++) _mm256_storeu_si256((__m256i *)(grp + 16 * ((r + x0) / 2 + p)), out[p]);
        }
        for (; x0 < r; x0++)
            for (int y = 0; y < 8; y++) {
                const int32_t v = J->xl[(size_t)(i0 + y) * J->rpad + x0];
                grp[16 * (x0 / 2) + 2 * y + x0 % 2] = (int16_t)-(sx ? split_lo(v) : v);
                if (sx) grp[16 * ((r + x0) / 2) + 2 * y + x0 % 2] = (int16_t)-split_hi(v);
            }
        for (int x = 0; x < r; x += 2) {
            const int8_t *e = T + (size_t)x * TILE + i0 % TILE;
            const __m128i pair = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)e),
                                                   _mm_loadl_epi64((const __m128i *)(e + TILE)));
            const __m256i w = _mm256_sub_epi16(zero, _mm256_cvtepi8_epi16(pair));
            _mm256_storeu_si256((__m256i *)(grp + 16 * ((small + x) / 2)), w);
            if (sy) _mm256_storeu_si256((__m256i *)(grp + 16 * ((small + r + x) / 2)), _mm256_slli_epi16(w, 8));
        }
    }
}

/* X = A'·F_L for the rows row0 … row0+31 without a GEMM, where the CPU has VBMI, r ≤ 128 and X
 * fits int16 (no split): F_L has one +1 (p_j) and one −1 (q_j) a row, so X's column c is the sum
 * of the A' columns j with p_j = c less those with q_j = c.  A quad of the 32 rows (4 groups × 32
 * bytes of Ap) gives two k-values' 32 rows a vpermi2b, sign-extended to int16 and added to X's
 * columns, held transposed (X^T[c]: 32 rows, 64 bytes; sums mod 2^16, exact as the result fits);
 * then L's X part, negated, is a pair of X^T rows interleaved. */
VBMI512 static void l_x_gather(const job_t *J, int row0) {
    const int k = J->k, r = J->r;
    const int8_t *ap = J->ap + (size_t)row0 * k; /* 8-row group g at ap + 8gk */
    __m512i xt[128], idx[2];
    uint8_t sel[64];
    for (int c = 0; c < r; c++) xt[c] = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) { /* byte b: k-value 2h + b / 32 of row b % 32 in the groups' quads */
        for (int b = 0; b < 64; b++) sel[b] = (uint8_t)((b % 32) / 8 * A_QUAD + (b % 8) * 4 + 2 * h + b / 32);
        idx[h] = _mm512_loadu_si512(sel);
    }
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int q = 0; q < k / 4; q++) {
        const int8_t *aq = ap + (size_t)q * A_QUAD;
        __m512i g[2]; /* groups 0 | 1 and 2 | 3: the 128-byte table of vpermi2b */
        for (int h = 0; h < 2; h++) {
            const int8_t *at = aq + 16 * h * (size_t)k; /* groups 2h and 2h + 1 */
            g[h] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)at)),
                                      _mm256_loadu_si256((const __m256i *)(at + 8 * (size_t)k)), 1);
        }
        for (int h = 0; h < 2; h++) {
            const __m512i bytes = _mm512_xor_si512(_mm512_permutex2var_epi8(g[0], idx[h], g[1]), flip); /* A', s8 */
            for (int u = 0; u < 2; u++) {
                const int j = 4 * q + 2 * h + u;
                const __m256i half = u ? _mm512_extracti64x4_epi64(bytes, 1) : _mm512_castsi512_si256(bytes);
                const __m512i v = _mm512_cvtepi8_epi16(half);
                xt[J->fp[j]] = _mm512_add_epi16(xt[J->fp[j]], v);
                xt[J->fq[j]] = _mm512_sub_epi16(xt[J->fq[j]], v);
            }
        }
    }
    for (int x = 0; x < r; x += 2) { /* 128-bit lane g of the unpacks: the pair's 8 rows of group g */
        const __m512i a = _mm512_sub_epi16(_mm512_setzero_si512(), xt[x]);
        const __m512i b = _mm512_sub_epi16(_mm512_setzero_si512(), xt[x + 1]);
        const __m512i lo = _mm512_unpacklo_epi16(a, b), hi = _mm512_unpackhi_epi16(a, b);
        int16_t lanes_lo[32], lanes_hi[32];
        _mm512_storeu_si512(lanes_lo, lo), _mm512_storeu_si512(lanes_hi, hi);
        for (int g = 0; g < 4; g++) {
            int16_t *at = (int16_t *)(J->lp + (size_t)(row0 + 8 * g) * 4 * J->pairs) + 16 * (x / 2);
            memcpy(at, lanes_lo + 8 * g, 16), memcpy(at + 8, lanes_hi + 8 * g, 16);
        }
    }
}

/* Group g's 16 columns of R as recovery_worker forms them (int16 pairs, packed like B): F_R a pair
 * at a time from T (the tile-column's F_R transposed, at the group's first column), then Y
 * (y: [r][16]) a pair of rows at a time, each column's two values joined into one dword. */
__attribute__((target("avx2"))) static void r_group_avx2(const job_t *J, int g, const int32_t *y, const int8_t *T) {
    const int r = J->r, sx = J->split_x, sy = J->split_y, big = r * (1 + sx);
    const __m256i low16 = _mm256_set1_epi32(0xFFFF);
    int16_t *grp = (int16_t *)(J->rp + (size_t)g * 16 * 4 * J->pairs); /* pair p at grp + 32p, column c at + 2c */
    for (int x = 0; x < r; x += 2) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(T + (size_t)x * TILE));
        const __m128i b = _mm_loadu_si128((const __m128i *)(T + (size_t)(x + 1) * TILE));
        const __m256i w0 = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(a, b));
        const __m256i w1 = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(a, b));
        int16_t *at = grp + 32 * (x / 2);
        _mm256_storeu_si256((__m256i *)at, w0), _mm256_storeu_si256((__m256i *)(at + 16), w1);
        if (!sx) continue;
        at = grp + 32 * ((r + x) / 2);
        _mm256_storeu_si256((__m256i *)at, _mm256_slli_epi16(w0, 8));
        _mm256_storeu_si256((__m256i *)(at + 16), _mm256_slli_epi16(w1, 8));
    }
    for (int x = 0; x < r; x += 2)
        for (int h = 0; h < 2; h++) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(y + 16 * x + 8 * h));
            __m256i b = _mm256_loadu_si256((const __m256i *)(y + 16 * (x + 1) + 8 * h));
            if (sy) {
                const __m256i al = split_lo8(a), bl = split_lo8(b);
                const __m256i ah = _mm256_srai_epi32(_mm256_sub_epi32(a, al), 8);
                const __m256i bh = _mm256_srai_epi32(_mm256_sub_epi32(b, bl), 8);
                _mm256_storeu_si256((__m256i *)(grp + 32 * ((big + r + x) / 2) + 16 * h),
                                    _mm256_or_si256(_mm256_and_si256(ah, low16), _mm256_slli_epi32(bh, 16)));
                a = al, b = bl;
            }
            _mm256_storeu_si256((__m256i *)(grp + 32 * ((big + x) / 2) + 16 * h),
                                _mm256_or_si256(_mm256_and_si256(a, low16), _mm256_slli_epi32(b, 16)));
        }
}
#endif

/* Tasks: 32-row panels (X, then their rows of L) and runs of Y_GROUPS 16-column groups (their R
 * from Y, which pack_b added up). */
static void *recovery_worker(void *arg) {
    job_t *J = arg;
    const geometry_t *G = &GEOMETRY[J->path];
    const int panels = J->m / TILE, groups = J->n / 16, runs = (groups + Y_GROUPS - 1) / Y_GROUPS;
    const int r = J->r, rank = 2 * J->pairs;
    int32_t *line = malloc((size_t)rank * sizeof *line);
    if (!line) return (void *)1;
    for (long t; (t = __atomic_fetch_add(&J->next, 1, __ATOMIC_RELAXED)) < panels + runs;) {
        if (t < panels) {
            const int row0 = (int)t * TILE;
            const int8_t *T = J->factors + (size_t)t * TILE * r; /* E_L of this tile-row, transposed */
#ifdef POUW_X86
            if (J->gather_a && !J->split_x) {
                l_x_gather(J, row0);
                l_rows_avx2(J, row0, T, 1);
                continue;
            }
#endif
            for (int c = 0; c < J->rpad;) {
                const int nv = (J->rpad - c) / G->w < G->nv ? (J->rpad - c) / G->w : G->nv;
                strip_t S = {J->ap + (size_t)row0 * J->k, (size_t)J->k, TILE, nv, 0, J->k / 4, J->k / 4};
                for (int v = 0; v < nv; v++) {
                    const int col = c + v * G->w;
                    S.b[v] = J->flp + (size_t)(col / 16) * 16 * J->k + 4 * (col % 16);
                    S.corr[v] = J->fl_colsum ? J->fl_colsum + col : NULL;
                }
                S.first = 1, S.out = J->xl + (size_t)row0 * J->rpad + c, S.ldo = (size_t)J->rpad;
                G->fn(&S);
                c += nv * G->w;
            }
#ifdef POUW_X86
            if (J->path != PATH_PORTABLE) { /* every SIMD path has AVX2 */
                l_rows_avx2(J, row0, T, 0);
                continue;
            }
#endif
            for (int i = row0; i < row0 + TILE; i++) {
                rank_line(J, J->xl + (size_t)i * J->rpad, 1, T + i % TILE, 1, J->split_x, J->split_y, line);
                int16_t *at = (int16_t *)(J->lp + (size_t)(i / 8) * 8 * 4 * J->pairs) + (i % 8) * 2;
                for (int x = 0; x < rank; x++) at[(x / 2) * 16 + x % 2] = (int16_t)-line[x];
            }
        } else {
            const int g0 = (int)(t - panels) * Y_GROUPS, count = groups - g0 < Y_GROUPS ? groups - g0 : Y_GROUPS;
            int32_t *y = J->y0 + (size_t)g0 * 16 * r; /* these groups' Y (pack_b), [group][r][16 columns] */
            for (int g = g0; g < g0 + count; g++) {
                const int8_t *T = J->factors + (size_t)(panels + g / 2) * TILE * r; /* F_R of the tile-column */
#ifdef POUW_X86
                if (J->path != PATH_PORTABLE) {
                    r_group_avx2(J, g, y + (size_t)(g - g0) * 16 * r, T + 16 * (g % 2));
                    continue;
                }
#endif
                for (int c = 0; c < 16; c++) {
                    rank_line(J, y + (size_t)(g - g0) * 16 * r + c, 16, T + 16 * (g % 2) + c, 0, J->split_y, J->split_x, line);
                    int16_t *at = (int16_t *)(J->rp + (size_t)g * 16 * 4 * J->pairs) + c * 2;
                    for (int x = 0; x < rank; x++) at[(x / 2) * 32 + x % 2] = (int16_t)line[x];
                }
            }
        }
    }
    free(line);
    return NULL;
}

/* Signed byte planes (AMX recovery) needed for values of magnitude ≤ bound. */
static int byte_planes(long bound) {
    int planes = 1;
    for (; bound > 127; planes++) bound = (bound + 128 + 255) / 256;
    return planes;
}

/* F_L packed like B, its column sums, and the split decision (from the pair counts). */
static void recovery_setup(job_t *J) {
    const int r = J->r;
    int *touch = calloc((size_t)2 * r, sizeof *touch), s_max = 0, t_max = 0;
    memset(J->flp, 0, (size_t)J->k * J->rpad);
    if (J->fl_colsum) memset(J->fl_colsum, 0, (size_t)J->rpad * sizeof *J->fl_colsum);
    for (int j = 0; j < J->k; j++) {
        const int p = J->fp[j], q = J->fq[j];
        J->flp[(size_t)(p / 16) * 16 * J->k + (size_t)(j / 4) * B_QUAD + 4 * (p % 16) + j % 4] = 1;
        J->flp[(size_t)(q / 16) * 16 * J->k + (size_t)(j / 4) * B_QUAD + 4 * (q % 16) + j % 4] = -1;
        if (J->fl_colsum) J->fl_colsum[p] += 128, J->fl_colsum[q] -= 128;
        if (touch) touch[p]++, touch[q]++, touch[r + J->ep[j]]++, touch[r + J->eq[j]]++;
    }
    for (int c = 0; c < r; c++) {
        const int s = touch ? touch[c] : J->k, t = touch ? touch[r + c] : J->k;
        s_max = s > s_max ? s : s_max, t_max = t > t_max ? t : t_max;
    }
    free(touch);
    J->split_x = 127 * s_max > I16_MAX;
    J->split_y = 64 * t_max > I16_MAX;
    const int planes_x = byte_planes(127L * s_max), planes_y = byte_planes(64L * t_max);
    J->planes = planes_x > planes_y ? planes_x : planes_y;
}

/* --- compute: units of MC × NC outputs ------------------------------------------------------ */

static size_t round64(size_t len) { return (len + 63) / 64 * 64; }

/* A unit's buffer: accumulators (MC × NC int32), then per tile of the unit and chunk a 16-lane
 * partial XOR, then one chunk's XOR words, then one tile's int32 (the AMX path's staging). */
static size_t unit_buffer_len(const job_t *J) {
    const size_t chunks = J->lanes ? (size_t)(J->k / J->r) : 0;
    return (size_t)MC * NC * sizeof(int32_t) + (size_t)(MC / TILE) * (NC / TILE) * chunks * 64 + round64(chunks * 4) +
           TILE * TILE * sizeof(int32_t);
}

#ifdef POUW_X86
/* A tile's 16 lanes from its per-chunk partials (16 words each; chunk l's XOR is the XOR of its
 * words), as ticket() forms them, 16 chunks at a time: the 16 partials are halved twice across
 * 128-bit lanes and transposed 4 × 4 inside them, leaving chunk l's XOR in word l. */
__attribute__((target("avx512f"))) static void lanes_avx512(const uint32_t *part, int chunks, uint32_t M[LANES]) {
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    __m512i m = _mm512_setzero_si512();
    for (int l0 = 0; l0 < chunks; l0 += LANES) {
        const int count = chunks - l0 < LANES ? chunks - l0 : LANES;
        __m512i v[LANES];
        for (int j = 0; j < LANES; j++)
            v[j] = j < count ? _mm512_loadu_si512(part + LANES * (l0 + j)) : _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) /* [x0^x2, x1^x3 | y0^y2, y1^y3] in 128-bit lanes */
            v[j] = _mm512_xor_si512(_mm512_shuffle_i64x2(v[2 * j], v[2 * j + 1], 0x44),
                                    _mm512_shuffle_i64x2(v[2 * j], v[2 * j + 1], 0xEE));
        for (int j = 0; j < 4; j++) /* 128-bit lane i: four words of partial 4j + i */
            v[j] = _mm512_xor_si512(_mm512_shuffle_i64x2(v[2 * j], v[2 * j + 1], 0x88),
                                    _mm512_shuffle_i64x2(v[2 * j], v[2 * j + 1], 0xDD));
        const __m512i s0 = _mm512_xor_si512(_mm512_unpacklo_epi32(v[0], v[1]), _mm512_unpackhi_epi32(v[0], v[1]));
        const __m512i s1 = _mm512_xor_si512(_mm512_unpacklo_epi32(v[2], v[3]), _mm512_unpackhi_epi32(v[2], v[3]));
        /* word e of 128-bit lane i: chunk l0 + 4e + i */
        const __m512i x = _mm512_permutexvar_epi32(
            order, _mm512_xor_si512(_mm512_unpacklo_epi64(s0, s1), _mm512_unpackhi_epi64(s0, s1)));
        m = _mm512_mask_xor_epi32(m, (__mmask16)((1u << count) - 1), _mm512_rol_epi32(m, 13), x);
    }
    _mm512_storeu_si512(M, m);
}
#endif

/* Units of NC columns across a panel of MC rows (the compute workers and rows_done). */
static int units_across(const job_t *J) { return (J->n + NC - 1) / NC; }

/* The next unit for a compute worker to run, or −1 when there is none.  Units are taken in
 * row-major order, `across` to a panel of MC rows.  Once *J->stop is set (by the caller, or at a
 * winning tile) no new panel is begun and the panels begun are finished.  The stop is read while
 * the unit that starts a panel is still the next one (a take is a compare-and-swap, a refusal
 * reads the counter again), so a stop set at a unit taken after it cannot refuse it: the first panel of a call is always computed
 * unless the caller stopped it beforehand.  stop_unit keeps the first unit refused, so that units
 * 0 … stop_unit − 1 are all done. */
static long take_unit(job_t *J, int across, long total) {
    long t = __atomic_load_n(&J->next, __ATOMIC_ACQUIRE);
    for (;;) {
        long first = __atomic_load_n(&J->stop_unit, __ATOMIC_ACQUIRE);
        if (t >= total || t >= first) return -1;
        if (t % across == 0 && J->stop && __atomic_load_n(J->stop, __ATOMIC_ACQUIRE)) {
            const long now = __atomic_load_n(&J->next, __ATOMIC_ACQUIRE);
            if (now != t) { /* taken meanwhile: the stop may be its own */
                t = now;
                continue;
            }
            while (t < first && !__atomic_compare_exchange_n(&J->stop_unit, &first, t, 0, __ATOMIC_ACQ_REL,
                                                             __ATOMIC_ACQUIRE)) {
            }
            return -1;
        }
        if (__atomic_compare_exchange_n(&J->next, &t, t + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return t;
    }
}

/* The rows of A whose products and tickets are all computed (every row unless stopped). */
static int rows_done(const job_t *J) {
    const long across = units_across(J);
    return J->stop_unit == LONG_MAX ? J->m : (int)(J->stop_unit / across) * MC;
}

/* Whether the path's strips write C with streaming stores (where C's rows start on cache lines):
 * those whose strip covers whole lines of a row (AVX-512: 48 columns, AVX2: 16). AVX-VNNI's 24
 * columns would leave lines half-written between strips. */
static int streams_c(int path) { return path == PATH_AVX512 || path == PATH_AVX2; }

/* Rows row0 … row0+rows−1 × columns col0 … col0+cols−1, all of k. */
static void run_unit(const job_t *J, uint8_t *buf, int row0, int col0, int rows, int cols) {
    const geometry_t *G = &GEOMETRY[J->path];
    const int quads = J->k / 4, kcq = J->kc / 4, chunks = J->lanes ? J->k / J->r : 0;
    const int tiles_across = cols / TILE, segments = (quads + J->seg - 1) / J->seg;
    int32_t *acc = (int32_t *)buf;
    uint32_t *xt = (uint32_t *)(buf + (size_t)MC * NC * sizeof(int32_t));
    uint32_t *xors = xt + (size_t)(MC / TILE) * (NC / TILE) * chunks * 16;
    if (chunks) memset(xt, 0, (size_t)(rows / TILE) * tiles_across * chunks * 64);
    for (int q0 = 0; q0 < quads; q0 += kcq) {
        const int len = quads - q0 < kcq ? quads - q0 : kcq, last = q0 + len == quads;
        for (int c = 0; c < cols;) {
            const int nv = (cols - c) / G->w < G->nv ? (cols - c) / G->w : G->nv;
            strip_t S = {J->ap + (size_t)row0 * J->k + (size_t)q0 * A_QUAD, (size_t)J->k, rows, nv, q0, len, J->seg};
            for (int v = 0; v < nv; v++) {
                const int col = col0 + c + v * G->w;
                S.b[v] = J->bp + (size_t)(col / 16) * 16 * J->k + (size_t)q0 * B_QUAD + 4 * (col % 16);
                S.corr[v] = J->colsum ? J->colsum + (size_t)(col / 16) * segments * 16 + col % 16 : NULL;
                S.xt[v] = chunks ? xt + (size_t)((c + v * G->w) / TILE) * chunks * 16 : NULL;
            }
            S.xt_row = (size_t)tiles_across * chunks * 16;
            S.acc = acc + c, S.ldacc = NC, S.first = q0 == 0;
            if (!last) S.out = S.acc, S.ldo = NC;
            else if (J->c) {
                S.out = J->c + (size_t)row0 * J->n + col0 + c, S.ldo = (size_t)J->n;
                S.stream = streams_c(J->path) && (uintptr_t)S.out % 64 == 0 && J->n % 16 == 0;
            }
            if (last && J->recover) {
                S.l = J->lp + (size_t)row0 * 4 * J->pairs, S.pairs = J->pairs;
                for (int v = 0; v < nv; v++) {
                    const int col = col0 + c + v * G->w;
                    S.r[v] = J->rp + (size_t)(col / 16) * 16 * 4 * J->pairs + 4 * (col % 16);
                }
            }
            G->fn(&S);
            c += nv * G->w;
        }
    }
    for (int t = 0; chunks && t < (rows / TILE) * tiles_across; t++) {
        const uint32_t *part = xt + (size_t)t * chunks * 16;
#ifdef POUW_X86
        if (J->path == PATH_AVX512) {
            uint32_t M[LANES];
            lanes_avx512(part, chunks, M);
            ticket_lanes(J, row0 / TILE + t / tiles_across, col0 / TILE + t % tiles_across, M);
            continue;
        }
#endif
        for (int l = 0; l < chunks; l++) {
            uint64_t w[8];
            memcpy(w, part + 16 * l, sizeof w);
            const uint64_t x = w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4] ^ w[5] ^ w[6] ^ w[7];
            xors[l] = (uint32_t)(x ^ (x >> 32));
        }
        ticket(J, row0 / TILE + t / tiles_across, col0 / TILE + t % tiles_across, xors);
    }
}

#include "_amx.h"
#include "_peak.h"

/* --- threads ----------------------------------------------------------------------------- */


static void *pack_worker(void *arg) {
    job_t *J = arg;
    const int mb = J->m / TILE, nb = J->n / TILE;
    const long ga = (mb + PANEL_GROUP - 1) / PANEL_GROUP, total = ga + (nb + PANEL_GROUP - 1) / PANEL_GROUP;
    for (long t; (t = __atomic_fetch_add(&J->next, 1, __ATOMIC_RELAXED)) < total;) {
        const int first = (int)(t < ga ? t : t - ga) * PANEL_GROUP, lines = t < ga ? mb : nb;
        const int count = lines - first < PANEL_GROUP ? lines - first : PANEL_GROUP;
        if (t < ga) pack_a(J, first, count);
        else pack_b(J, first, count);
    }
    return NULL;
}

/* Units in row-major order, so that consecutive units share their rows of A (in L2). */
static void *unit_worker(void *arg) {
    job_t *J = arg;
    uint8_t *buf = J->units + (size_t)__atomic_fetch_add(&J->slot, 1, __ATOMIC_RELAXED) * J->unit_len;
    const int across = units_across(J);
    const long total = (long)((J->m + MC - 1) / MC) * across;
    for (long t; (t = take_unit(J, across, total)) >= 0;) {
        const int row0 = (int)(t / across) * MC, col0 = (int)(t % across) * NC;
        run_unit(J, buf, row0, col0, J->m - row0 < MC ? J->m - row0 : MC, J->n - col0 < NC ? J->n - col0 : NC);
    }
#ifdef POUW_X86
    if (streams_c(J->path)) _mm_sfence(); /* C's streaming stores are visible before the caller reads C */
#endif
    return NULL;
}

static int parallel(job_t *J, pool_fn fn) {
    J->next = 0, J->slot = 0;
    return pool_run(fn, J, J->threads);
}

/* --- workspace --------------------------------------------------------------------------
 * One buffer holds the packed operands, the noise factors and pairs, the column sums and each
 * thread's unit buffer.  The last one is kept for
 * the next call (a miner calls with the same shape again and again): a fresh allocation of this
 * size is mmapped, and the kernel then faults in and zeroes every page on each call.  A second
 * caller running concurrently gets a private buffer. */

enum { WS_KEEP_MAX = 256 << 20 };
static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static void *ws_kept;
static size_t ws_kept_len;

static void *workspace_get(size_t len, int *kept) {
    *kept = len <= WS_KEEP_MAX && pthread_mutex_trylock(&ws_lock) == 0;
    if (!*kept) return aligned_alloc(64, len);
    if (ws_kept_len < len) {
        free(ws_kept);
        ws_kept = aligned_alloc(64, len);
        ws_kept_len = ws_kept ? len : 0;
    }
    if (!ws_kept) pthread_mutex_unlock(&ws_lock), *kept = 0;
    return ws_kept;
}

static void workspace_put(void *ws, int kept) {
    if (kept) pthread_mutex_unlock(&ws_lock);
    else free(ws);
}

/* Carves J's buffers out of ws (or only measures them when ws is NULL); returns the size. */
static size_t workspace_layout(job_t *J, uint8_t *ws) {
    const size_t k = J->k, noisy = J->s_b != NULL, panels = (size_t)(J->m + J->n) / TILE;
    const size_t segments = (k / 4 + J->seg - 1) / J->seg;
    const size_t lens[] = {(size_t)J->m * k, k * J->n, noisy * panels * TILE * J->r, noisy * panels * TILE * J->r,
                           noisy * 2 * 4 * k, noisy * 4 * k * sizeof(uint16_t),
                           GEOMETRY[J->path].offset ? (size_t)J->n * segments * sizeof(int32_t) : 0,
                           (size_t)J->threads * round64(unit_buffer_len(J)),
                           J->recover * k * J->rpad, J->recover * J->rpad * sizeof(int32_t),
                           J->recover * (size_t)J->m * J->rpad * sizeof(int32_t), J->recover * (size_t)J->r * J->n * sizeof(int32_t),
                           J->recover * (size_t)J->m * 4 * J->pairs, J->recover * (size_t)J->n * 4 * J->pairs};
    enum { PARTS = sizeof lens / sizeof lens[0] };
    size_t off[PARTS], total = 0;
    for (int i = 0; i < PARTS; i++) off[i] = total, total += round64(lens[i]);
    if (ws) {
        J->ap = (int8_t *)ws + off[0], J->bp = (int8_t *)ws + off[1];
        J->xof = ws + off[2], J->factors = (int8_t *)ws + off[3];
        J->pairs_xof = ws + off[4];
        uint16_t *pairs = (uint16_t *)(ws + off[5]);
        J->ep = pairs, J->eq = pairs + k, J->fp = pairs + 2 * k, J->fq = pairs + 3 * k;
        J->colsum = GEOMETRY[J->path].offset ? (int32_t *)(ws + off[6]) : NULL;
        J->units = ws + off[7], J->unit_len = round64(unit_buffer_len(J));
        J->flp = (int8_t *)(ws + off[8]), J->fl_colsum = GEOMETRY[J->path].offset ? (int32_t *)(ws + off[9]) : NULL;
        J->xl = (int32_t *)(ws + off[10]), J->y0 = (int32_t *)(ws + off[11]);
        J->lp = (int8_t *)(ws + off[12]), J->rp = (int8_t *)(ws + off[13]);
    }
    return total;
}

/* E_R pairs from P(s_A, "ER") and F_L pairs from P(s_B, "FL"), as one two-stream XOF. */
static void noise_pairs(job_t *J) {
    const uint8_t *seeds[XOF_STREAMS] = {J->s_a, J->s_b};
    const uint8_t labels[XOF_STREAMS][6] = {"ER", "FL"};
    uint8_t *outs[XOF_STREAMS] = {J->pairs_xof, J->pairs_xof + 4 * (size_t)J->k};
    xof_streams(J, seeds, labels, 2, 2, outs, 4 * (size_t)J->k);
    pairs_from_xof(outs[0], J->k, J->r, J->ep, J->eq);
    pairs_from_xof(outs[1], J->k, J->r, J->fp, J->fq);
}

/* 0 on success, 1 out of memory, 2 an entry outside [-limit, limit]. */
static int run_job(job_t *J) {
    int kept, status = 1;
    J->kc = KC_TARGET > J->r ? KC_TARGET / J->r * J->r : J->r;
#ifdef POUW_AMX
    const int amx = J->path == PATH_AMX;
    if (amx) J->ks = amx_step(J->r);
#else
    const int amx = 0;
#endif
    J->seg = J->lanes ? J->r / 4 : J->kc / 4; /* plain GEMM: one correction per K-block */
    J->rpad = (J->r + 15) / 16 * 16, J->pairs = J->recover ? 2 * J->r : 0; /* sized for the split */
    uint8_t *ws = workspace_get(workspace_layout(J, NULL), &kept);
    if (!ws) return 1;
    workspace_layout(J, ws);
#ifdef POUW_HAVE_SHANI
    if (J->lanes && J->use_shani) ticket_setup_ni(J);
#endif
    if (J->s_b) noise_pairs(J);
    else J->ep = J->eq = J->fp = J->fq = NULL;
    pool_fn recover = recovery_worker, compute = unit_worker;
#ifdef POUW_X86
    J->gather_a = J->path == PATH_AVX512 && J->r <= 128 && __builtin_cpu_supports("avx512vbmi");
    if (J->gather_a && J->s_b) pair_bytes(J);
#endif
#ifdef POUW_AMX
    if (amx) {
        if (J->s_b) pair_bytes(J);
        recover = amx_recovery_worker, compute = amx_unit_worker;
    }
#endif
    if (J->recover) {
        recovery_setup(J);
        J->pairs = J->r * (2 + J->split_x + J->split_y) / 2;
    }
    J->stop_unit = LONG_MAX;
    if (!parallel(J, pack_worker) && !J->bad_entry && (!J->recover || !parallel(J, recover)))
        status = parallel(J, compute);
    else status = J->bad_entry ? 2 : 1;
    workspace_put(ws, kept);
    return status;
}

/* --- CPU features ------------------------------------------------------------------------ */

static int path_supported(int path) {
#ifdef POUW_X86
    __builtin_cpu_init();
#ifdef POUW_AMX
    if (path == PATH_AMX)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vbmi") && amx_supported();
#endif
    if (path == PATH_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    if (path == PATH_AVXVNNI) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni");
    if (path == PATH_AVX2) return __builtin_cpu_supports("avx2");
#endif
    return path == PATH_PORTABLE;
}

static int have_shani(void) {
#ifdef POUW_X86
    unsigned int eax, ebx, ecx, edx;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    (void)eax, (void)ecx, (void)edx;
    return (ebx >> 29) & 1;
#else
    return 0;
#endif
}

static int resolve_path(const char *name) {
    if (!name || !strcmp(name, "auto")) {
        for (int p = PATH_LAST; p > PATH_AUTO; p--)
            if (path_supported(p)) return p;
    }
    for (int p = PATH_PORTABLE; p <= PATH_LAST; p++)
        if (!strcmp(name, PATH_NAMES[p])) {
            if (path_supported(p)) return p;
            PyErr_Format(PyExc_ValueError, "kernel path %s is not supported by this CPU", name);
            return -1;
        }
    PyErr_Format(PyExc_ValueError, "unknown kernel path %s", name);
    return -1;
}

static int leaf_path_supported(int path) {
#ifdef POUW_X86
    __builtin_cpu_init();
    if (path == LEAF_AVX512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (path == LEAF_AVX2) return __builtin_cpu_supports("avx2");
    if (path == LEAF_SHANI) return have_shani();
#endif
    return path == LEAF_PORTABLE;
}

static int resolve_leaf_path(const char *name) {
    for (int p = LEAF_LAST; p >= LEAF_PORTABLE; p--)
        if (name ? !strcmp(name, LEAF_PATH_NAMES[p]) : leaf_path_supported(p)) {
            if (leaf_path_supported(p)) return p;
            PyErr_Format(PyExc_ValueError, "leaf hash path %s is not supported by this CPU", name);
            return -1;
        }
    PyErr_Format(PyExc_ValueError, "unknown leaf hash path %s", name);
    return -1;
}

/* --- Python bindings ----------------------------------------------------------------------- */

static int check_len(const Py_buffer *b, size_t want, const char *what) {
    if ((size_t)b->len != want) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zu bytes, got %zd", what, want, b->len);
        return -1;
    }
    return 0;
}

static int check_dims(int m, int n, int k, int r, int threads) {
    if (m <= 0 || n <= 0 || m % TILE || n % TILE || r < 4 || r % 4 || k <= 0 || k % r) {
        PyErr_SetString(PyExc_ValueError, "need m, n multiples of 32, r a multiple of 4, k a multiple of r");
        return -1;
    }
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be in 1..%d", MAX_THREADS);
        return -1;
    }
    return 0;
}

/* Runs J without the GIL; the rows done (rows_done) or NULL with the error set. */
static PyObject *finish(job_t *J, Py_buffer *bufs, int nbufs) {
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = run_job(J);
    Py_END_ALLOW_THREADS
    for (int i = 0; i < nbufs; i++)
        if (bufs[i].obj) PyBuffer_Release(&bufs[i]);
    if (status == 1) return PyErr_NoMemory();
    if (status == 2)
        return PyErr_Format(PyExc_ValueError, "matrix entry outside [-%d, %d]", J->limit, J->limit);
    return PyLong_FromLong(rows_done(J));
}

static PyObject *py_mine(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "s_a", "s_b", "threshold", "lanes", "digests", "wins", "c",
                             "m", "n", "k", "r", "path", "threads", "recover", "b_cols", "ta0", "stop", NULL};
    enum { NB = 10 };
    Py_buffer v[NB];
    PyObject *thr_obj, *c_obj, *stop_obj = Py_None;
    const char *path = NULL;
    job_t J = {0};
    J.threads = 1;
    memset(v, 0, sizeof v);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*y*y*y*Ow*w*w*Oiiii|zippiO", kwlist, &v[0], &v[1], &v[2],
                                     &v[3], &thr_obj, &v[4], &v[5], &v[6], &c_obj, &J.m, &J.n, &J.k, &J.r,
                                     &path, &J.threads, &J.recover, &J.b_cols, &J.ta0, &stop_obj))
        return NULL;
    const size_t m = J.m, n = J.n, k = J.k, T = (m / TILE) * (n / TILE);
    if (J.r > MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "r must be at most %d", MAX_RANK);
        goto fail;
    }
    if (check_dims(J.m, J.n, J.k, J.r, J.threads) || check_len(&v[0], m * k, "a") ||
        check_len(&v[1], k * n, "b") || check_len(&v[2], 32, "s_a") || check_len(&v[3], 32, "s_b") ||
        check_len(&v[4], 64 * T, "lanes") || check_len(&v[5], 32 * T, "digests") || check_len(&v[6], T, "wins"))
        goto fail;
    if (thr_obj != Py_None) {
        if (PyObject_GetBuffer(thr_obj, &v[7], PyBUF_SIMPLE) || check_len(&v[7], 32, "threshold"))
            goto fail;
        J.threshold = v[7].buf;
    }
    if (c_obj != Py_None) {
        if (PyObject_GetBuffer(c_obj, &v[8], PyBUF_WRITABLE) || check_len(&v[8], 4 * m * n, "c"))
            goto fail;
        J.c = v[8].buf;
    } else if (J.recover) {
        PyErr_SetString(PyExc_ValueError, "recover needs c");
        goto fail;
    }
    if (J.ta0 < 0) {
        PyErr_SetString(PyExc_ValueError, "ta0 must not be negative");
        goto fail;
    }
    if (stop_obj != Py_None) {
        if (PyObject_GetBuffer(stop_obj, &v[9], PyBUF_WRITABLE) || check_len(&v[9], 1, "stop"))
            goto fail;
        J.stop = v[9].buf;
    }
    J.a = v[0].buf, J.b = v[1].buf, J.s_a = v[2].buf, J.s_b = v[3].buf;
    J.lanes = v[4].buf, J.digests = v[5].buf, J.wins = v[6].buf;
    if ((J.path = resolve_path(path)) < 0) goto fail;
    J.use_shani = J.path != PATH_PORTABLE && have_shani();
    J.limit = 64; /* PROTOCOL §4: entries in [-64, 64]; keeps A', B' within [-127, 127] */
    return finish(&J, v, NB);
fail:
    for (int i = 0; i < NB; i++)
        if (v[i].obj) PyBuffer_Release(&v[i]);
    return NULL;
}

static PyObject *py_gemm(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "c", "m", "n", "k", "block", "path", "threads", "b_cols", NULL};
    Py_buffer v[3];
    const char *path = NULL;
    job_t J = {0};
    J.threads = 1;
    memset(v, 0, sizeof v);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*y*w*iiii|zip", kwlist, &v[0], &v[1], &v[2], &J.m,
                                     &J.n, &J.k, &J.r, &path, &J.threads, &J.b_cols))
        return NULL;
    const size_t m = J.m, n = J.n, k = J.k;
    if (check_dims(J.m, J.n, J.k, J.r, J.threads) || check_len(&v[0], m * k, "a") ||
        check_len(&v[1], k * n, "b") || check_len(&v[2], 4 * m * n, "c") || (J.path = resolve_path(path)) < 0) {
        for (int i = 0; i < 3; i++) PyBuffer_Release(&v[i]);
        return NULL;
    }
    J.a = v[0].buf, J.b = v[1].buf, J.c = v[2].buf;
    J.limit = 127; /* the sign trick needs entries in [-127, 127] */
    PyObject *done = finish(&J, v, 3);
    if (!done) return NULL;
    Py_DECREF(done);
    Py_RETURN_NONE;
}

static PyObject *py_paths(PyObject *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    for (int p = PATH_LAST; out && p > PATH_AUTO; p--)
        if (path_supported(p)) {
            PyObject *s = PyUnicode_FromString(PATH_NAMES[p]);
            if (!s || PyList_Append(out, s)) Py_CLEAR(out);
            Py_XDECREF(s);
        }
    return out;
}

static PyObject *py_sha_ni(PyObject *self, PyObject *unused) { return PyBool_FromLong(have_shani()); }

static PyObject *py_peak(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", NULL};
    const char *path = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|z", kwlist, &path)) return NULL;
    const int p = resolve_path(path);
    if (p < 0) return NULL;
    double macs_per_cycle, ghz;
    Py_BEGIN_ALLOW_THREADS
    peak_core(p, &macs_per_cycle, &ghz);
    Py_END_ALLOW_THREADS
    return Py_BuildValue("dd", macs_per_cycle, ghz);
}

static PyObject *py_peak_together(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"threads", "path", NULL};
    const char *path = NULL;
    int threads;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|z", kwlist, &threads, &path)) return NULL;
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be in 1..%d", MAX_THREADS);
        return NULL;
    }
    const int p = resolve_path(path);
    if (p < 0) return NULL;
    double macs_per_s;
    Py_BEGIN_ALLOW_THREADS
    macs_per_s = peak_together(p, threads);
    Py_END_ALLOW_THREADS
    if (macs_per_s < 0) {
        PyErr_SetString(PyExc_OSError, "could not start the threads");
        return NULL;
    }
    return PyFloat_FromDouble(macs_per_s);
}

/* count 32-byte digests as a list of bytes objects (NULL with an exception set). */
static PyObject *digest_list(const uint8_t *digests, Py_ssize_t count) {
    PyObject *out = PyList_New(count);
    for (Py_ssize_t i = 0; out && i < count; i++) {
        PyObject *h = PyBytes_FromStringAndSize((const char *)digests + 32 * i, 32);
        if (!h) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, h);
    }
    return out;
}

static PyObject *py_leaf_hashes(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"lines", "count", "width", "path", "threads", NULL};
    Py_buffer v = {0};
    Py_ssize_t count, width;
    const char *path = NULL;
    int threads = 1;
    PyObject *out = NULL;
    uint8_t *digests = NULL;
    leaf_job_t J = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nn|zi", kwlist, &v, &count, &width, &path, &threads)) return NULL;
    if (count < 0 || width < 0 || (width && count > PY_SSIZE_T_MAX / 32 / width) || v.len != count * width) {
        PyErr_Format(PyExc_ValueError, "lines: expected %zd lines of %zd bytes, got %zd bytes", count, width, v.len);
        goto done;
    }
    if (threads < 1 || threads > MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads must be in 1..%d", MAX_THREADS);
        goto done;
    }
    if ((J.path = resolve_leaf_path(path)) < 0) goto done;
    if (!(digests = calloc((size_t)count + 1, 32))) {
        PyErr_NoMemory();
        goto done;
    }
    J.lines = v.buf, J.count = (size_t)count, J.shape = leaf_shape((size_t)width, 0x00), J.out = digests;
    J.shani = J.path != LEAF_PORTABLE && have_shani();
    J.chunk = ((size_t)count / (8 * (size_t)threads) + 15) / 16 * 16; /* about 8 chunks a thread */
    if (J.chunk < 16) J.chunk = 16;
    Py_BEGIN_ALLOW_THREADS
    if (threads > 1 && J.count > J.chunk) pool_run_or_alone(leaf_worker, &J, threads);
    else leaf_range(&J, 0, J.count);
    Py_END_ALLOW_THREADS
    out = digest_list(digests, count);
done:
    free(digests);
    PyBuffer_Release(&v);
    return out;
}

static PyObject *py_merkle_roots(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"hashes", "count", "group", "path", NULL};
    Py_buffer v = {0};
    Py_ssize_t count, group;
    const char *path = NULL;
    PyObject *out = NULL;
    uint8_t *roots = NULL, *scratch = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nn|z", kwlist, &v, &count, &group, &path)) return NULL;
    if (count < 1 || count > PY_SSIZE_T_MAX / 32 || v.len != 32 * count) {
        PyErr_Format(PyExc_ValueError, "hashes: expected %zd hashes of 32 bytes (at least one), got %zd bytes",
                     count, v.len);
        goto done;
    }
    if (group < 1) {
        PyErr_Format(PyExc_ValueError, "group must be at least 1, got %zd", group);
        goto done;
    }
    merkle_t M = {.path = resolve_leaf_path(path)};
    if (M.path < 0) goto done;
    M.shani = M.path != LEAF_PORTABLE && have_shani();
    const Py_ssize_t runs = (count + group - 1) / group;
    if (!(roots = malloc((size_t)runs * 32)) || !(scratch = malloc((size_t)count * 32))) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    merkle_roots(&M, v.buf, (size_t)count, (size_t)group, scratch, roots);
    Py_END_ALLOW_THREADS
    out = digest_list(roots, runs);
done:
    free(roots);
    free(scratch);
    PyBuffer_Release(&v);
    return out;
}

static PyObject *py_leaf_paths(PyObject *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    for (int p = LEAF_LAST; out && p >= LEAF_PORTABLE; p--)
        if (leaf_path_supported(p)) {
            PyObject *s = PyUnicode_FromString(LEAF_PATH_NAMES[p]);
            if (!s || PyList_Append(out, s)) Py_CLEAR(out);
            Py_XDECREF(s);
        }
    return out;
}

static PyMethodDef methods[] = {
    {"mine", (PyCFunction)(void (*)(void))py_mine, METH_VARARGS | METH_KEYWORDS,
     "mine(a, b, s_a, s_b, threshold, lanes, digests, wins, c, m, n, k, r, path=None, threads=1, recover=False,\n"
     "     b_cols=False, ta0=0, stop=None) -> rows done\n"
     "Noisy GEMM + fold + tickets into the given output buffers (PROTOCOL §4); the noise is expanded "
     "from the seeds s_A, s_B here.  c receives C' = A'·B', or A·B when recover is true.  a holds the "
     "work's tile-rows ta0 … ta0 + m/32 − 1.  Once the byte stop is set (by the caller, or here at a "
     "winning tile) no new panel of 256 rows is begun: the rows returned (a multiple of 256, or m) are "
     "complete, the others are to be computed again."},
    {"gemm", (PyCFunction)(void (*)(void))py_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, c, m, n, k, block, path=None, threads=1)\nPlain C = A·B (int8 in, int32 out) with the "
     "same packing and tile loop, k blocked by `block`."},
    {"paths", py_paths, METH_NOARGS, "Kernel paths this CPU supports, fastest first."},
    {"leaf_hashes", (PyCFunction)(void (*)(void))py_leaf_hashes, METH_VARARGS | METH_KEYWORDS,
     "leaf_hashes(lines, count, width, path=None, threads=1) -> list of count digests SHA-256(0x00 || line) "
     "of the count lines of width bytes in the C-contiguous buffer lines (PROTOCOL §2)."},
    {"merkle_roots", (PyCFunction)(void (*)(void))py_merkle_roots, METH_VARARGS | METH_KEYWORDS,
     "merkle_roots(hashes, count, group, path=None) -> the RFC 6962 root of every run of group consecutive "
     "hashes of the count 32-byte hashes in the buffer hashes, the last run possibly shorter (PROTOCOL §2); "
     "path is a leaf hash path."},
    {"leaf_paths", py_leaf_paths, METH_NOARGS, "Leaf hash paths this CPU supports, fastest first."},
    {"sha_ni", py_sha_ni, METH_NOARGS, "Whether the ticket hash uses SHA-NI on the SIMD paths."},
    {"peak", (PyCFunction)(void (*)(void))py_peak, METH_VARARGS | METH_KEYWORDS,
     "peak(path=None) -> (int8 MACs per cycle of one core, clock in GHz), measured by a throughput loop "
     "of the path's multiply instruction; (0, 0) on the portable path."},
    {"peak_together", (PyCFunction)(void (*)(void))py_peak_together, METH_VARARGS | METH_KEYWORDS,
     "peak_together(threads, path=None) -> int8 MACs per second of that many threads running the loop of "
     "peak() at once (the wall clock from their common start); 0 on the portable path."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "miner._kernel", "PoUW work kernel (PROTOCOL §4).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddIntConstant(m, "MAX_THREADS", MAX_THREADS) < 0) Py_CLEAR(m);
    if (m && PyModule_AddIntConstant(m, "PANEL_ROWS", MC) < 0) Py_CLEAR(m); /* the rows finished once stopped */
    return m;
}
