/* The fast work kernel (PROTOCOL §4): fused noisy int8 GEMM + per-chunk tile fold + ticket SHA-256.
 *
 * Data flow per call:
 *   1. pack (parallel over tile-rows and tile-columns): A' = A + E_L·E_R and B' = B + F_L·F_R
 *      are formed on the fly from the small noise factors (entries of A, B range-checked) into
 *        Ap[tile-row][chunk][32 rows][r]     (a row's 4 consecutive k-values are broadcast)
 *        Bp[tile-col][k/4][32 cols][4]       (a vector holds 8 or 16 columns × 4 k-values)
 *   2. compute (parallel over tiles): each 32×32 int32 accumulator lives in L1; per rank-r
 *      chunk every 4×16 (AVX2) or 8×32 (AVX-512) register block is loaded, updated over the
 *      chunk, XOR-reduced into the chunk's fold word and stored back. After the last chunk
 *      the 16 lanes are hashed into the ticket digest and compared with the threshold, and
 *      the accumulator is optionally written out as C' = A'·B'.
 * Paths: portable C, AVX2 (vpmaddubsw + vpmaddwd) and AVX-512 VNNI (vpdpbusd), chosen at
 * runtime; the ticket hash uses SHA-NI when the CPU has it (not on the portable path).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_sha256.h"

#if defined(__x86_64__) || defined(__i386__)
#define POUW_X86 1
#include <cpuid.h>
#endif

enum { TILE = 32, LANES = 16, MAX_THREADS = 256 };
enum { PATH_AUTO = 0, PATH_PORTABLE = 1, PATH_AVX2 = 2, PATH_AVX512 = 3 };
static const char *PATH_NAMES[] = {"auto", "portable", "avx2", "avx512"};

typedef struct {
    const int8_t *a, *b, *el, *fr;           /* A (m×k), B (k×n), E_L (m×r), F_R (r×n) */
    const uint16_t *ep, *eq, *fp, *fq;       /* E_R and F_L pairs (k each); NULL: no noise */
    int m, n, k, r, limit;                   /* |A|, |B| entries must not exceed limit */
    const uint8_t *s_a, *threshold;          /* threshold NULL: every tile wins */
    uint32_t *lanes;                          /* T×16, NULL: no fold/tickets (plain GEMM) */
    uint8_t *digests, *wins;                  /* T×32, T */
    int32_t *c;                               /* m×n or NULL */
    int8_t *ap, *bp;                          /* packed operands */
    int32_t *colsum;                          /* AVX-512 only: 128·Σ B' per tile-col, chunk, column */
    int path, use_shani, threads, bad_entry;
    long next;                                /* shared work counter */
} job_t;

typedef void (*tile_fn)(const job_t *, int, int, int32_t *, uint32_t *);

static int out_of_range(const int8_t *v, int len, int limit) {
    int bad = 0;
    for (int i = 0; i < len; i++) bad |= v[i] < -limit || v[i] > limit;
    return bad;
}

/* --- packing: Ap[tile-row][chunk][32 rows][r], Bp[tile-col][k/4][32 cols][4] -------------- */

static void pack_a(job_t *J, int ta) {
    const int k = J->k, r = J->r, chunks = k / r;
    const int8_t flip = J->path == PATH_AVX512 ? (int8_t)0x80 : 0; /* u8 operand a+128 for vpdpbusd */
    int8_t *dst = J->ap + (size_t)ta * TILE * k;
    for (int i = 0; i < TILE; i++) {
        const size_t gi = (size_t)ta * TILE + i;
        const int8_t *row = J->a + gi * k;
        const int8_t *el = J->ep ? J->el + gi * r : NULL;
        if (out_of_range(row, k, J->limit)) __atomic_store_n(&J->bad_entry, 1, __ATOMIC_RELAXED);
        for (int l = 0; l < chunks; l++) {
            int8_t *out = dst + ((size_t)l * TILE + i) * r;
            const int8_t *src = row + (size_t)l * r;
            if (el) {
                const uint16_t *p = J->ep + (size_t)l * r, *q = J->eq + (size_t)l * r;
                for (int j = 0; j < r; j++) out[j] = (int8_t)(src[j] + el[p[j]] - el[q[j]]) ^ flip;
            } else {
                for (int j = 0; j < r; j++) out[j] = src[j] ^ flip;
            }
        }
    }
}

static void pack_b(job_t *J, int tb) {
    const int k = J->k, n = J->n, r = J->r;
    int8_t *dst = J->bp + (size_t)tb * TILE * k;
    int32_t *colsum = J->colsum ? J->colsum + (size_t)tb * (k / r) * TILE : NULL;
    for (int j = 0; j < k; j += 4) {
        int8_t v[4][TILE];
        for (int t = 0; t < 4; t++) {
            const int8_t *src = J->b + (size_t)(j + t) * n + (size_t)tb * TILE;
            if (out_of_range(src, TILE, J->limit)) __atomic_store_n(&J->bad_entry, 1, __ATOMIC_RELAXED);
            if (J->fp) {
                const int8_t *fp = J->fr + (size_t)J->fp[j + t] * n + (size_t)tb * TILE;
                const int8_t *fq = J->fr + (size_t)J->fq[j + t] * n + (size_t)tb * TILE;
                for (int c = 0; c < TILE; c++) v[t][c] = (int8_t)(src[c] + fp[c] - fq[c]);
            } else {
                memcpy(v[t], src, TILE);
            }
        }
        int8_t *out = dst + (size_t)j * TILE;
        for (int c = 0; c < TILE; c++)
            for (int t = 0; t < 4; t++) out[4 * c + t] = v[t][c];
        if (colsum) {
            int32_t *cs = colsum + (size_t)(j / r) * TILE;
            if (j % r == 0) memset(cs, 0, TILE * sizeof *cs);
            for (int c = 0; c < TILE; c++) cs[c] += 128 * (v[0][c] + v[1][c] + v[2][c] + v[3][c]);
        }
    }
}

/* --- tile kernels: fill acc (32×32) and xors (one word per chunk, or NULL) --------------- */

static void tile_portable(const job_t *J, int ta, int tb, int32_t *acc, uint32_t *xors) {
    const int k = J->k, r = J->r, chunks = k / r;
    const int8_t *A = J->ap + (size_t)ta * TILE * k, *B = J->bp + (size_t)tb * TILE * k;
    memset(acc, 0, TILE * TILE * sizeof *acc);
    for (int l = 0; l < chunks; l++) {
        const int8_t *Al = A + (size_t)l * TILE * r, *Bl = B + (size_t)l * TILE * r;
        for (int i = 0; i < TILE; i++) {
            int32_t *row = acc + i * TILE;
            for (int j = 0; j < r; j += 4) {
                const int8_t *a = Al + i * r + j, *bb = Bl + (size_t)j * TILE;
                for (int c = 0; c < TILE; c++)
                    row[c] += a[0] * bb[4 * c] + a[1] * bb[4 * c + 1] + a[2] * bb[4 * c + 2] +
                              a[3] * bb[4 * c + 3];
            }
        }
        if (xors) {
            uint32_t x = 0;
            for (int e = 0; e < TILE * TILE; e++) x ^= (uint32_t)acc[e];
            xors[l] = x;
        }
    }
}

#ifdef POUW_X86
/* vpmaddubsw needs an unsigned operand: |a| · (b with a's sign) is exact for entries in
 * [-127, 127] (a pair sums to at most 2·127² < 2^15); vpmaddwd then widens to int32. */
__attribute__((target("avx2")))
static void tile_avx2(const job_t *J, int ta, int tb, int32_t *acc, uint32_t *xors) {
    const int k = J->k, r = J->r, chunks = k / r;
    const int8_t *A = J->ap + (size_t)ta * TILE * k, *B = J->bp + (size_t)tb * TILE * k;
    const __m256i ones = _mm256_set1_epi16(1);
    memset(acc, 0, TILE * TILE * sizeof *acc);
    for (int l = 0; l < chunks; l++) {
        const int8_t *Al = A + (size_t)l * TILE * r, *Bl = B + (size_t)l * TILE * r;
        __m256i x = _mm256_setzero_si256();
        for (int rg = 0; rg < TILE; rg += 4) {
            for (int cg = 0; cg < TILE; cg += 16) {
                __m256i s[4][2];
                int32_t *c0 = acc + rg * TILE + cg;
                for (int i = 0; i < 4; i++)
                    for (int h = 0; h < 2; h++) s[i][h] = _mm256_load_si256((const __m256i *)(c0 + i * TILE + 8 * h));
                const int8_t *a0 = Al + (size_t)rg * r;
                const int8_t *bb = Bl + 4 * cg;
                for (int j = 0; j < r; j += 4, bb += 4 * TILE) {
                    const __m256i b0 = _mm256_load_si256((const __m256i *)bb);
                    const __m256i b1 = _mm256_load_si256((const __m256i *)(bb + 32));
                    for (int i = 0; i < 4; i++) {
                        int32_t quad;
                        memcpy(&quad, a0 + (size_t)i * r + j, sizeof quad);
                        const __m256i av = _mm256_set1_epi32(quad), aa = _mm256_abs_epi8(av);
                        const __m256i p0 = _mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, av));
                        const __m256i p1 = _mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, av));
                        s[i][0] = _mm256_add_epi32(s[i][0], _mm256_madd_epi16(p0, ones));
                        s[i][1] = _mm256_add_epi32(s[i][1], _mm256_madd_epi16(p1, ones));
                    }
                }
                for (int i = 0; i < 4; i++)
                    for (int h = 0; h < 2; h++) {
                        _mm256_store_si256((__m256i *)(c0 + i * TILE + 8 * h), s[i][h]);
                        x = _mm256_xor_si256(x, s[i][h]);
                    }
            }
        }
        if (xors) {
            __m128i h = _mm_xor_si128(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
            h = _mm_xor_si128(h, _mm_shuffle_epi32(h, 0x4E));
            h = _mm_xor_si128(h, _mm_shuffle_epi32(h, 0xB1));
            xors[l] = (uint32_t)_mm_cvtsi128_si32(h);
        }
    }
}

/* vpdpbusd on (a+128) as u8 and b as s8 sums 4 products exactly in int32; starting each
 * chunk from acc − 128·Σ_chunk b makes the accumulator exact again after the chunk. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void tile_avx512(const job_t *J, int ta, int tb, int32_t *acc, uint32_t *xors) {
    const int k = J->k, r = J->r, chunks = k / r;
    const int8_t *A = J->ap + (size_t)ta * TILE * k, *B = J->bp + (size_t)tb * TILE * k;
    const int32_t *colsum = J->colsum + (size_t)tb * chunks * TILE;
    memset(acc, 0, TILE * TILE * sizeof *acc);
    for (int l = 0; l < chunks; l++) {
        const int8_t *Al = A + (size_t)l * TILE * r, *Bl = B + (size_t)l * TILE * r;
        const __m512i corr[2] = {_mm512_loadu_si512(colsum + l * TILE), _mm512_loadu_si512(colsum + l * TILE + 16)};
        __m512i x = _mm512_setzero_si512();
        for (int rg = 0; rg < TILE; rg += 8) {
            __m512i s[8][2];
            int32_t *c0 = acc + rg * TILE;
            for (int i = 0; i < 8; i++)
                for (int h = 0; h < 2; h++)
                    s[i][h] = _mm512_sub_epi32(_mm512_load_si512(c0 + i * TILE + 16 * h), corr[h]);
            const int8_t *a0 = Al + (size_t)rg * r;
            const int8_t *bb = Bl;
            for (int j = 0; j < r; j += 4, bb += 4 * TILE) {
                const __m512i b0 = _mm512_load_si512(bb), b1 = _mm512_load_si512(bb + 64);
                for (int i = 0; i < 8; i++) {
                    int32_t quad;
                    memcpy(&quad, a0 + (size_t)i * r + j, sizeof quad);
                    const __m512i av = _mm512_set1_epi32(quad);
                    s[i][0] = _mm512_dpbusd_epi32(s[i][0], av, b0);
                    s[i][1] = _mm512_dpbusd_epi32(s[i][1], av, b1);
                }
            }
            for (int i = 0; i < 8; i++)
                for (int h = 0; h < 2; h++) {
                    _mm512_store_si512(c0 + i * TILE + 16 * h, s[i][h]);
                    x = _mm512_xor_si512(x, s[i][h]);
                }
        }
        if (xors) {
            __m256i y = _mm256_xor_si256(_mm512_castsi512_si256(x), _mm512_extracti64x4_epi64(x, 1));
            __m128i h = _mm_xor_si128(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
            h = _mm_xor_si128(h, _mm_shuffle_epi32(h, 0x4E));
            h = _mm_xor_si128(h, _mm_shuffle_epi32(h, 0xB1));
            xors[l] = (uint32_t)_mm_cvtsi128_si32(h);
        }
    }
}
#endif

/* --- fold and ticket (PROTOCOL §4) ----------------------------------------------------- */

static void ticket(const job_t *J, int ta, int tb, const uint32_t *xors) {
    const size_t t = (size_t)ta * (J->n / TILE) + tb;
    uint32_t *M = J->lanes + t * LANES;
    uint8_t msg[12 + 32 + 8 + 4 * LANES];
    memset(M, 0, LANES * sizeof *M);
    for (int l = 0; l < J->k / J->r; l++) {
        const uint32_t v = M[l % LANES];
        M[l % LANES] = ((v << 13) | (v >> 19)) ^ xors[l];
    }
    memcpy(msg, "\x0bpouw/ticket", 12);
    memcpy(msg + 12, J->s_a, 32);
    for (int i = 0; i < 2 + LANES; i++) {
        const uint32_t w = i == 0 ? (uint32_t)ta : i == 1 ? (uint32_t)tb : M[i - 2];
        for (int b = 0; b < 4; b++) msg[44 + 4 * i + b] = (uint8_t)(w >> (8 * b));
    }
    uint8_t *d = J->digests + t * 32;
    sha256_short(msg, sizeof msg, d, J->use_shani);
    J->wins[t] = !J->threshold || memcmp(d, J->threshold, 32) < 0;
}

/* --- threads ----------------------------------------------------------------------------- */

static tile_fn tile_for(int path) {
#ifdef POUW_X86
    if (path == PATH_AVX512) return tile_avx512;
    if (path == PATH_AVX2) return tile_avx2;
#endif
    return tile_portable;
}

static void *pack_worker(void *arg) {
    job_t *J = arg;
    const long mb = J->m / TILE, total = mb + J->n / TILE;
    for (long t; (t = __atomic_fetch_add(&J->next, 1, __ATOMIC_RELAXED)) < total;) {
        if (t < mb) pack_a(J, (int)t);
        else pack_b(J, (int)(t - mb));
    }
    return NULL;
}

static void *tile_worker(void *arg) {
    job_t *J = arg;
    const int nb = J->n / TILE;
    const long total = (long)(J->m / TILE) * nb;
    const tile_fn fn = tile_for(J->path);
    int32_t *acc = aligned_alloc(64, TILE * TILE * sizeof(int32_t));
    uint32_t *xors = J->lanes ? malloc((size_t)(J->k / J->r) * sizeof(uint32_t)) : NULL;
    if (!acc || (J->lanes && !xors)) {
        free(acc);
        free(xors);
        return (void *)1;
    }
    for (long t; (t = __atomic_fetch_add(&J->next, 1, __ATOMIC_RELAXED)) < total;) {
        const int ta = (int)(t / nb), tb = (int)(t % nb);
        fn(J, ta, tb, acc, xors);
        if (xors) ticket(J, ta, tb, xors);
        if (J->c)
            for (int i = 0; i < TILE; i++)
                memcpy(J->c + ((size_t)ta * TILE + i) * J->n + (size_t)tb * TILE, acc + i * TILE,
                       TILE * sizeof(int32_t));
    }
    free(acc);
    free(xors);
    return NULL;
}

/* Run fn on J->threads threads (the caller is one of them); nonzero if any failed. */
static int parallel(job_t *J, void *(*fn)(void *)) {
    pthread_t tid[MAX_THREADS];
    int started = 0, failed = 0;
    J->next = 0;
    for (; started < J->threads - 1; started++)
        if (pthread_create(&tid[started], NULL, fn, J)) break;
    failed |= fn(J) != NULL;
    for (int i = 0; i < started; i++) {
        void *ret;
        pthread_join(tid[i], &ret);
        failed |= ret != NULL;
    }
    return failed;
}

/* 0 on success, 1 out of memory, 2 an entry outside [-limit, limit]. */
static int run_job(job_t *J) {
    const size_t a_len = (size_t)J->m * J->k, b_len = (size_t)J->k * J->n;
    int status = 1;
    J->ap = aligned_alloc(64, (a_len + 63) / 64 * 64);
    J->bp = aligned_alloc(64, (b_len + 63) / 64 * 64);
    J->colsum = J->path == PATH_AVX512 ? malloc((size_t)(J->n / TILE) * (J->k / J->r) * TILE * sizeof(int32_t)) : NULL;
    if (J->ap && J->bp && (J->colsum || J->path != PATH_AVX512) && !parallel(J, pack_worker))
        status = J->bad_entry ? 2 : parallel(J, tile_worker);
    free(J->ap);
    free(J->bp);
    free(J->colsum);
    return status;
}

/* --- CPU features ------------------------------------------------------------------------ */

static int path_supported(int path) {
#ifdef POUW_X86
    __builtin_cpu_init();
    if (path == PATH_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
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
        for (int p = PATH_AVX512; p > PATH_AUTO; p--)
            if (path_supported(p)) return p;
    }
    for (int p = PATH_PORTABLE; p <= PATH_AVX512; p++)
        if (!strcmp(name, PATH_NAMES[p])) {
            if (path_supported(p)) return p;
            PyErr_Format(PyExc_ValueError, "kernel path %s is not supported by this CPU", name);
            return -1;
        }
    PyErr_Format(PyExc_ValueError, "unknown kernel path %s", name);
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

static int check_pairs(const uint16_t *p, const uint16_t *q, int k, int r) {
    for (int j = 0; j < k; j++)
        if (p[j] >= r || q[j] >= r) {
            PyErr_SetString(PyExc_ValueError, "pair index out of range");
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
    Py_RETURN_NONE;
}

static PyObject *py_mine(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "el", "fr", "ep", "eq", "fp", "fq", "s_a", "threshold",
                             "lanes", "digests", "wins", "c", "m", "n", "k", "r", "path",
                             "threads", NULL};
    enum { NB = 14 };
    Py_buffer v[NB];
    PyObject *thr_obj, *c_obj;
    const char *path = NULL;
    job_t J = {0};
    J.threads = 1;
    memset(v, 0, sizeof v);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*y*y*y*y*y*y*y*y*Ow*w*w*Oiiii|zi", kwlist, &v[0], &v[1],
                                     &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &thr_obj,
                                     &v[9], &v[10], &v[11], &c_obj, &J.m, &J.n, &J.k, &J.r, &path,
                                     &J.threads))
        return NULL;
    const size_t m = J.m, n = J.n, k = J.k, r = J.r, T = (m / TILE) * (n / TILE);
    if (check_dims(J.m, J.n, J.k, J.r, J.threads) || check_len(&v[0], m * k, "a") ||
        check_len(&v[1], k * n, "b") || check_len(&v[2], m * r, "el") || check_len(&v[3], r * n, "fr") ||
        check_len(&v[4], 2 * k, "ep") || check_len(&v[5], 2 * k, "eq") || check_len(&v[6], 2 * k, "fp") ||
        check_len(&v[7], 2 * k, "fq") || check_len(&v[8], 32, "s_a") || check_len(&v[9], 64 * T, "lanes") ||
        check_len(&v[10], 32 * T, "digests") || check_len(&v[11], T, "wins"))
        goto fail;
    if (thr_obj != Py_None) {
        if (PyObject_GetBuffer(thr_obj, &v[12], PyBUF_SIMPLE) || check_len(&v[12], 32, "threshold"))
            goto fail;
        J.threshold = v[12].buf;
    }
    if (c_obj != Py_None) {
        if (PyObject_GetBuffer(c_obj, &v[13], PyBUF_WRITABLE) || check_len(&v[13], 4 * m * n, "c"))
            goto fail;
        J.c = v[13].buf;
    }
    J.a = v[0].buf, J.b = v[1].buf, J.el = v[2].buf, J.fr = v[3].buf;
    J.ep = v[4].buf, J.eq = v[5].buf, J.fp = v[6].buf, J.fq = v[7].buf;
    J.s_a = v[8].buf, J.lanes = v[9].buf, J.digests = v[10].buf, J.wins = v[11].buf;
    if (check_pairs(J.ep, J.eq, J.k, J.r) || check_pairs(J.fp, J.fq, J.k, J.r) ||
        (J.path = resolve_path(path)) < 0)
        goto fail;
    J.use_shani = J.path != PATH_PORTABLE && have_shani();
    J.limit = 64; /* PROTOCOL §4: entries in [-64, 64]; keeps A', B' within [-127, 127] */
    return finish(&J, v, NB);
fail:
    for (int i = 0; i < NB; i++)
        if (v[i].obj) PyBuffer_Release(&v[i]);
    return NULL;
}

static PyObject *py_gemm(PyObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "c", "m", "n", "k", "block", "path", "threads", NULL};
    Py_buffer v[3];
    const char *path = NULL;
    job_t J = {0};
    J.threads = 1;
    memset(v, 0, sizeof v);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*y*w*iiii|zi", kwlist, &v[0], &v[1], &v[2], &J.m,
                                     &J.n, &J.k, &J.r, &path, &J.threads))
        return NULL;
    const size_t m = J.m, n = J.n, k = J.k;
    if (check_dims(J.m, J.n, J.k, J.r, J.threads) || check_len(&v[0], m * k, "a") ||
        check_len(&v[1], k * n, "b") || check_len(&v[2], 4 * m * n, "c") || (J.path = resolve_path(path)) < 0) {
        for (int i = 0; i < 3; i++) PyBuffer_Release(&v[i]);
        return NULL;
    }
    J.a = v[0].buf, J.b = v[1].buf, J.c = v[2].buf;
    J.limit = 127; /* the sign trick needs entries in [-127, 127] */
    return finish(&J, v, 3);
}

static PyObject *py_paths(PyObject *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    for (int p = PATH_AVX512; out && p > PATH_AUTO; p--)
        if (path_supported(p)) {
            PyObject *s = PyUnicode_FromString(PATH_NAMES[p]);
            if (!s || PyList_Append(out, s)) Py_CLEAR(out);
            Py_XDECREF(s);
        }
    return out;
}

static PyObject *py_sha_ni(PyObject *self, PyObject *unused) { return PyBool_FromLong(have_shani()); }

static PyMethodDef methods[] = {
    {"mine", (PyCFunction)(void (*)(void))py_mine, METH_VARARGS | METH_KEYWORDS,
     "mine(a, b, el, fr, ep, eq, fp, fq, s_a, threshold, lanes, digests, wins, c, m, n, k, r, path=None, "
     "threads=1)\nNoisy GEMM + fold + tickets into the given output buffers (PROTOCOL §4)."},
    {"gemm", (PyCFunction)(void (*)(void))py_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, c, m, n, k, block, path=None, threads=1)\nPlain C = A·B (int8 in, int32 out) with the "
     "same packing and tile loop, k blocked by `block`."},
    {"paths", py_paths, METH_NOARGS, "Kernel paths this CPU supports, fastest first."},
    {"sha_ni", py_sha_ni, METH_NOARGS, "Whether the ticket hash uses SHA-NI on the SIMD paths."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "miner._kernel", "PoUW work kernel (PROTOCOL §4).",
                                    -1, methods};

PyMODINIT_FUNC PyInit__kernel(void) { return PyModule_Create(&module); }
