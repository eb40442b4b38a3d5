/* Exact limb products for Freivalds' check (client/verify.py, PROTOCOL §6).
 *
 * out[i][l] = Σ_j M[i][j] · X[l][j] for an int8 or int32 matrix M (rows × cols, C order) and
 * limb columns X (L × cols, float64, L a multiple of 4), summed in float64.  The caller sizes
 * the limbs so that Σ_j |M[i][j]| · X[l][j] < 2^53 for every row whose entries are within
 * ``bound``: every partial sum is then an integer float64 holds exactly, in whatever order
 * the lanes add up, so the sums are exact.  A row with an entry beyond ``bound`` is marked in
 * ``wild`` (its sums mean nothing).
 *
 * One pass per 4 limb columns reads 4 rows at once (16 accumulators in zmm on AVX-512, 2 rows
 * in ymm on AVX2); the entries are widened to float64 in registers, so the matrix is never
 * copied.  Without AVX2 the module offers no path and verify.py uses numpy's float64 GEMM.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define FREIVALDS_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define LIMBS 4 /* limb columns a pass: the caller pads L to a multiple of this */

typedef struct {
    const uint8_t *m;
    Py_ssize_t rows, cols;
    int itemsize;     /* 1: int8, 4: int32 */
    const double *xt; /* L × cols */
    Py_ssize_t L;
    int64_t bound;
    double *out;      /* rows × L */
    uint8_t *wild;    /* rows */
} task_t;

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
        for (int l = 0; l < LC; l++) t->out[(i + r) * t->L + l0 + l] = _mm512_reduce_add_pd(acc[r][l]);
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

static inline int64_t entry(const uint8_t *row, int itemsize, Py_ssize_t j) {
    if (itemsize == 1) return (int8_t)row[j];
    int32_t v;
    memcpy(&v, row + 4 * j, 4);
    return v;
}

/* One pass over 2 rows of ``ITEM``-byte entries for limb columns [l0, l0 + 4): 8 accumulators
 * of 4 float64 lanes, the last cols % 4 columns one at a time; with TRACK, the rows' least and
 * largest entries too (lo, hi: vector lanes; least, most: the tail). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
pass_avx2(const task_t *t, const uint8_t *const *row, Py_ssize_t i, Py_ssize_t r1, Py_ssize_t l0, const int ITEM,
          const int TRACK, __m128i *lo_out, __m128i *hi_out, int64_t *least, int64_t *most) {
    const Py_ssize_t cols = t->cols, body = cols & ~(Py_ssize_t)3;
    __m256d acc[2][LIMBS];
    __m128i lo[2] = {lo_out[0], lo_out[1]}, hi[2] = {hi_out[0], hi_out[1]};
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < LIMBS; l++) acc[r][l] = _mm256_setzero_pd();
    for (Py_ssize_t j = 0; j < body; j += 4) {
        __m256d x[LIMBS];
        for (int l = 0; l < LIMBS; l++) x[l] = _mm256_loadu_pd(t->xt + (l0 + l) * cols + j);
        for (int r = 0; r < 2; r++) {
            __m128i v;
            if (ITEM == 1) {
                int32_t w;
                memcpy(&w, row[r] + j, 4);
                v = _mm_cvtepi8_epi32(_mm_cvtsi32_si128(w));
            } else {
                v = _mm_loadu_si128((const __m128i *)(row[r] + 4 * j));
            }
            if (TRACK) {
                lo[r] = _mm_min_epi32(lo[r], v);
                hi[r] = _mm_max_epi32(hi[r], v);
            }
            __m256d d = _mm256_cvtepi32_pd(v);
            for (int l = 0; l < LIMBS; l++) acc[r][l] = _mm256_fmadd_pd(d, x[l], acc[r][l]);
        }
    }
    for (int r = 0; r < 2 && i + r < r1; r++) {
        for (int l = 0; l < LIMBS; l++) {
            double s[4];
            _mm256_storeu_pd(s, acc[r][l]);
            double sum = (s[0] + s[1]) + (s[2] + s[3]);
            for (Py_ssize_t j = body; j < cols; j++) {
                int64_t e = entry(row[r], ITEM, j);
                if (TRACK && l == 0) {
                    least[r] = e < least[r] ? e : least[r];
                    most[r] = e > most[r] ? e : most[r];
                }
                sum += (double)e * t->xt[(l0 + l) * cols + j];
            }
            t->out[(i + r) * t->L + l0 + l] = sum;
        }
    }
    lo_out[0] = lo[0], lo_out[1] = lo[1], hi_out[0] = hi[0], hi_out[1] = hi[1];
}

/* Rows [r0, r1), 2 at a time, 4 limb columns a pass. */
__attribute__((target("avx2,fma"))) static void products_avx2(const task_t *t, Py_ssize_t r0, Py_ssize_t r1) {
    for (Py_ssize_t i = r0; i < r1; i += 2) {
        const uint8_t *row[2] = {row_at(t, i), row_at(t, i + 1 < r1 ? i + 1 : i)};
        __m128i lo[2] = {_mm_setzero_si128(), _mm_setzero_si128()}, hi[2] = {lo[0], lo[0]};
        int64_t least[2] = {0, 0}, most[2] = {0, 0};
        for (Py_ssize_t l0 = 0; l0 < t->L; l0 += LIMBS) {
#define PASS(ITEM_)                                                                                        \
    (l0 == 0 ? pass_avx2(t, row, i, r1, l0, ITEM_, 1, lo, hi, least, most)                                \
             : pass_avx2(t, row, i, r1, l0, ITEM_, 0, lo, hi, least, most))
            t->itemsize == 1 ? PASS(1) : PASS(4);
#undef PASS
        }
        for (int r = 0; r < 2 && i + r < r1; r++) {
            int32_t a[4], b[4];
            _mm_storeu_si128((__m128i *)a, lo[r]);
            _mm_storeu_si128((__m128i *)b, hi[r]);
            for (int q = 0; q < 4; q++) {
                least[r] = a[q] < least[r] ? a[q] : least[r];
                most[r] = b[q] > most[r] ? b[q] : most[r];
            }
            t->wild[i + r] = (uint8_t)(least[r] < -t->bound || most[r] > t->bound);
        }
    }
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

static products_fn path_fn(const char *name) {
#ifdef FREIVALDS_X86
    if (!strcmp(name, "avx512") && has_avx512()) return products_avx512;
    if (!strcmp(name, "avx2") && has_avx2()) return products_avx2;
#endif
    (void)name;
    return NULL;
}

static PyObject *py_paths(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    PyObject *out = PyList_New(0);
    static const char *names[] = {"avx512", "avx2"};
    for (size_t i = 0; out && i < sizeof names / sizeof *names; i++) {
        if (!path_fn(names[i])) continue;
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s || PyList_Append(out, s) < 0) Py_CLEAR(out);
        Py_XDECREF(s);
    }
    return out;
}

static PyObject *py_products(PyObject *self, PyObject *args, PyObject *kw) {
    (void)self;
    static char *kwlist[] = {"matrix", "rows", "cols", "itemsize", "limbs", "count", "bound", "out", "wild",
                             "path", NULL};
    Py_buffer mb, xb, ob, wb;
    task_t t;
    long long bound;
    const char *path;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*nniy*nLw*w*s", kwlist, &mb, &t.rows, &t.cols, &t.itemsize, &xb,
                                     &t.L, &bound, &ob, &wb, &path))
        return NULL;
    const char *problem = NULL;
    products_fn fn = path_fn(path);
    if (!fn) problem = "this path is not available on this CPU";
    else if (t.rows < 0 || t.cols < 0 || t.L < 0 || t.L % LIMBS || (t.itemsize != 1 && t.itemsize != 4))
        problem = "bad dimensions";
    else if (t.cols > 0 && (size_t)t.rows > (size_t)PY_SSIZE_T_MAX / (size_t)t.cols / 8)
        problem = "matrix too large";
    else if (mb.len != t.rows * t.cols * t.itemsize) problem = "the matrix buffer does not match its shape";
    else if (xb.len != t.L * t.cols * (Py_ssize_t)sizeof(double)) problem = "the limb buffer does not match";
    else if (ob.len != t.rows * t.L * (Py_ssize_t)sizeof(double)) problem = "the output buffer does not match";
    else if (wb.len != t.rows) problem = "the wild buffer does not match";
    else if (bound < 0 || bound > INT32_MAX) problem = "bound out of range";
    if (!problem) {
        t.m = mb.buf, t.xt = xb.buf, t.out = ob.buf, t.wild = wb.buf, t.bound = bound;
        Py_BEGIN_ALLOW_THREADS
        fn(&t, 0, t.rows);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&mb), PyBuffer_Release(&xb), PyBuffer_Release(&ob), PyBuffer_Release(&wb);
    if (problem) {
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"paths", py_paths, METH_NOARGS, "The SIMD paths this CPU runs, fastest first."},
    {"products", (PyCFunction)(void (*)(void))py_products, METH_VARARGS | METH_KEYWORDS,
     "products(matrix, rows, cols, itemsize, limbs, count, bound, out, wild, path): exact limb sums."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "client._freivalds",
                                    "Exact limb products for Freivalds' check (PROTOCOL §6).", -1, methods};

PyMODINIT_FUNC PyInit__freivalds(void) { return PyModule_Create(&module); }
