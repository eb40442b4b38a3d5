/* Exact limb products for Freivalds' check (client/verify.py, PROTOCOL §6).
 *
 * out[i][l] = Σ_j M[i][j] · X[l][j] (int64) for an int8 or int32 matrix M (rows × cols, C order)
 * and limb columns X (L × cols, float64 holding integers), summed in float64 FMAs whose every
 * partial sum is an integer float64 holds exactly, in whatever order the lanes add up:
 * - the AVX2 path sums each lane in segments of at most ``flush`` terms, each term below 2^51 /
 *   flush, and adds the segments up in int64 (see MAGIC);
 * - the AVX-512 path sums whole rows: Σ_j |M[i][j]| · X[l][j] < 2^53 (``flush`` 0), and L is a
 *   multiple of 4.
 * The caller sizes the limbs for its path and for ``bound``; a row with an entry beyond ``bound``
 * is marked in ``wild`` (its sums mean nothing).  The entries are widened to float64 in
 * registers, so the matrix is never copied.  Without AVX2 the module offers no path and
 * verify.py uses numpy's float64 GEMM.
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

#define LIMBS 4 /* the AVX-512 path's limb columns a pass: the caller pads L to a multiple of this */

typedef struct {
    const uint8_t *m;
    Py_ssize_t rows, cols;
    int itemsize;     /* 1: int8, 4: int32 */
    const double *xt; /* L × cols */
    const double *xi; /* the AVX2 path: xt interleaved (see interleave) */
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
#endif

typedef void (*products_fn)(const task_t *, Py_ssize_t, Py_ssize_t);

typedef struct {
    const char *name;
    int segmented; /* sums in segments of ``flush`` terms (AVX2) rather than whole rows */
} path_t;

static const path_t PATHS[] = {{"avx512", 0}, {"avx2", 1}}; /* fastest first */

static products_fn path_fn(const char *name) {
#ifdef FREIVALDS_X86
    if (!strcmp(name, "avx512") && has_avx512()) return products_avx512;
    if (!strcmp(name, "avx2") && has_avx2()) return products_avx2;
#endif
    (void)name;
    return NULL;
}

static const path_t *path_named(const char *name) {
    for (size_t i = 0; i < sizeof PATHS / sizeof *PATHS; i++)
        if (!strcmp(PATHS[i].name, name) && path_fn(name)) return &PATHS[i];
    return NULL;
}

static PyObject *py_paths(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    PyObject *out = PyDict_New();
    for (size_t i = 0; out && i < sizeof PATHS / sizeof *PATHS; i++) {
        if (!path_fn(PATHS[i].name)) continue;
        if (PyDict_SetItemString(out, PATHS[i].name, PATHS[i].segmented ? Py_True : Py_False) < 0) Py_CLEAR(out);
    }
    return out;
}

static PyObject *py_products(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"matrix", "rows", "cols", "itemsize", "limbs", "count", "flush", "bound", "out",
                             "wild", "path", NULL};
    Py_buffer mb, xb, ob, wb;
    task_t t = {0};
    long long bound;
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nniy*nnLw*w*s", kwlist, &mb, &t.rows, &t.cols, &t.itemsize, &xb,
                                     &t.L, &t.flush, &bound, &ob, &wb, &name))
        return NULL;
    const char *problem = NULL;
    const path_t *path = path_named(name);
    if (!path) problem = "this path is not available on this CPU";
    else if (t.rows < 0 || t.cols < 0 || t.L < 0 || (t.itemsize != 1 && t.itemsize != 4)) problem = "bad dimensions";
    else if (path->segmented ? t.flush < 1 : t.flush != 0 || t.L % LIMBS)
        problem = path->segmented ? "this path needs flush >= 1" : "this path sums whole rows (flush 0) of 4n limbs";
    else if (t.cols > 0 && (size_t)t.rows > (size_t)PY_SSIZE_T_MAX / (size_t)t.cols / 8)
        problem = "matrix too large";
    else if (t.cols > 0 && (size_t)t.L > (size_t)PY_SSIZE_T_MAX / 8 / ((size_t)t.cols + 4)) problem = "too many limbs";
    else if (mb.len != t.rows * t.cols * t.itemsize) problem = "the matrix buffer does not match its shape";
    else if (xb.len != t.L * t.cols * (Py_ssize_t)sizeof(double)) problem = "the limb buffer does not match";
    else if (ob.len != t.rows * t.L * (Py_ssize_t)sizeof(int64_t)) problem = "the output buffer does not match";
    else if (wb.len != t.rows) problem = "the wild buffer does not match";
    else if (bound < 0 || bound > INT32_MAX) problem = "bound out of range";
    if (!problem) {
        t.m = mb.buf, t.xt = xb.buf, t.out = ob.buf, t.wild = wb.buf, t.bound = bound;
        double *xi = NULL;
        products_fn fn = path_fn(name);
        Py_BEGIN_ALLOW_THREADS
#ifdef FREIVALDS_X86
        if (path->segmented) t.xi = xi = interleave(t.xt, t.L, t.cols);
#endif
        if (!path->segmented || xi) fn(&t, 0, t.rows);
        Py_END_ALLOW_THREADS
        free(xi);
        if (path->segmented && !xi) {
            PyBuffer_Release(&mb), PyBuffer_Release(&xb), PyBuffer_Release(&ob), PyBuffer_Release(&wb);
            return PyErr_NoMemory();
        }
    }
    PyBuffer_Release(&mb), PyBuffer_Release(&xb), PyBuffer_Release(&ob), PyBuffer_Release(&wb);
    if (problem) {
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"paths", py_paths, METH_NOARGS,
     "The SIMD paths this CPU runs, fastest first: {name: whether it sums in segments (flush >= 1)}."},
    {"products", (PyCFunction)(void (*)(void))py_products, METH_VARARGS | METH_KEYWORDS,
     "products(matrix, rows, cols, itemsize, limbs, count, flush, bound, out, wild, path): exact limb sums."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "client._freivalds",
                                    "Exact limb products for Freivalds' check (PROTOCOL §6).", -1, methods};

PyMODINIT_FUNC PyInit__freivalds(void) { return PyModule_Create(&module); }
