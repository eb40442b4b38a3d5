/* Micro-kernels: one column strip of a unit over one K-block (PROTOCOL §4).
 *
 * Packed operands (see the packing section of _kernel.c):
 *   A: groups of 8 rows, [k/4 quads][8 rows][4]: 32 bytes a quad; a row's quad is broadcast.
 *   B: groups of 16 columns, [k/4 quads][16 columns][4]: 64 bytes a quad, one zmm or two ymm.
 * A strip is up to three vectors of W columns (W = 16 zmm, 8 ymm); the kernel walks the unit's
 * rows MR at a time and keeps MR × NV accumulators in registers over the K-block.  At the end of
 * every segment (a rank-r chunk when mining) it subtracts the u8 offset's column sums (paths
 * that multiply A' + 128 as u8) and, when folding, XORs the MR rows of each vector and
 * XORs that into the vector's tile partial for the chunk: the accumulators are exact there.
 * For kernel.matmul a tail after the last block adds L·R (int16 pairs: vpdpwssd / vpmaddwd),
 * turning C' = A'·B' into A·B in the registers (see the recovery section of _kernel.c).
 *
 *   portable, AVX-512 VNNI: MR = 8, W = 16;  AVX-VNNI, AVX2: MR = 4, W = 8. */

enum { STRIP_VECTORS = 3, A_QUAD = 32, B_QUAD = 64 };

typedef struct {
    const int8_t *a;                   /* packed A at the unit's first row, the block's first quad */
    size_t k;                          /* bytes from one 8-row group of A to the next, over 8 */
    int rows, nv;                      /* unit rows (a multiple of 32), vectors in the strip */
    int q0, quads, seg;                /* the block's first quad (a segment boundary) and its length;
                                          quads per segment */
    const int8_t *b[STRIP_VECTORS];    /* each vector's B stream at the block's first quad */
    const int32_t *corr[STRIP_VECTORS];/* each vector's 128·Σ B' of segment 0; next +16; NULL: none */
    uint32_t *xt[STRIP_VECTORS];       /* each vector's tile partial (16 lanes) of chunk 0, next +16,
                                          in the unit's first tile-row; NULL: no fold */
    size_t xt_row;                     /* u32 from one tile-row's partials to the next */
    int32_t *acc;                      /* the strip's accumulators at the unit's first row */
    size_t ldacc;
    int first;                         /* start from zero instead of acc */
    int32_t *out;                      /* where the block's result goes (acc, C or NULL) */
    size_t ldo;
    int stream;                        /* out is C, rows on 64-byte boundaries: streaming stores
                                          (AVX-512, AVX2; the caller fences) */
    /* the recovery tail, after the last block: acc += L·R over `pairs` int16 pairs (L packed like A,
     * 4 bytes a row and pair, R like B, 64 bytes a 16-column group and pair); pairs 0: none */
    const int8_t *l, *r[STRIP_VECTORS];
    int pairs;
} strip_t;

typedef void (*strip_fn)(const strip_t *);

/* Rows rb … of the unit: their A quads (rb is a multiple of 4). */
static inline const int8_t *strip_a(const strip_t *S, int rb) {
    return S->a + (size_t)(rb & ~7) * S->k + 4 * (rb & 7);
}

/* Rows rb … of the unit: their L pairs. */
static inline const int8_t *strip_l(const strip_t *S, int rb) {
    return S->l + (size_t)(rb & ~7) * 4 * S->pairs + 4 * (rb & 7);
}


static void strip_portable(const strip_t *S) {
    enum { MR = 8, W = 16 };
    const int nv = S->nv;
    const int s0 = S->q0 / S->seg; /* blocks start at a segment boundary */
    for (int rb = 0; rb < S->rows; rb += MR) {
        const int8_t *a = strip_a(S, rb);
        int32_t c[MR][STRIP_VECTORS * W];
        for (int i = 0; i < MR; i++)
            for (int x = 0; x < nv * W; x++) c[i][x] = S->first ? 0 : S->acc[(size_t)(rb + i) * S->ldacc + x];
        for (int q = 0, s = s0; q < S->quads; s++) {
            for (const int end = q + S->seg < S->quads ? q + S->seg : S->quads; q < end; q++)
                for (int i = 0; i < MR; i++) {
                    const int8_t *aq = a + (size_t)q * A_QUAD + 4 * i;
                    for (int v = 0; v < nv; v++) {
                        const int8_t *bq = S->b[v] + (size_t)q * B_QUAD;
                        for (int x = 0; x < W; x++)
                            c[i][v * W + x] += aq[0] * bq[4 * x] + aq[1] * bq[4 * x + 1] + aq[2] * bq[4 * x + 2] +
                                               aq[3] * bq[4 * x + 3];
                    }
                }
            for (int v = 0; v < nv; v++) {
                if (S->corr[v])
                    for (int i = 0; i < MR; i++)
                        for (int x = 0; x < W; x++) c[i][v * W + x] -= S->corr[v][16 * s + x];
                if (S->xt[v]) {
                    uint32_t *xt = S->xt[v] + (size_t)(rb / 32) * S->xt_row + 16 * (size_t)s;
                    for (int i = 0; i < MR; i++)
                        for (int x = 0; x < W; x++) xt[x] ^= (uint32_t)c[i][v * W + x];
                }
            }
        }
        for (int p = 0; p < S->pairs; p++)
            for (int i = 0; i < MR; i++) {
                const int16_t *lp = (const int16_t *)(strip_l(S, rb) + (size_t)p * A_QUAD + 4 * i);
                for (int v = 0; v < nv; v++) {
                    const int16_t *rp = (const int16_t *)(S->r[v] + (size_t)p * B_QUAD);
                    for (int x = 0; x < W; x++)
                        c[i][v * W + x] = (int32_t)((uint32_t)c[i][v * W + x] + (uint32_t)(lp[0] * rp[2 * x]) +
                                                    (uint32_t)(lp[1] * rp[2 * x + 1]));
                }
            }
        if (S->out)
            for (int i = 0; i < MR; i++)
                memcpy(S->out + (size_t)(rb + i) * S->ldo, c[i], (size_t)nv * W * sizeof(int32_t));
    }
}

#ifdef POUW_X86
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"), always_inline)) static inline

/* MR = 8 rows × NV zmm: 24 accumulators at NV = 3. */
AVX512 void strip_avx512_nv(const strip_t *S, const int NV) {
    enum { MR = 8 };
    const int s0 = S->q0 / S->seg; /* blocks start at a segment boundary */
    for (int rb = 0; rb < S->rows; rb += MR) {
        const int8_t *a = strip_a(S, rb);
        const int8_t *b0 = S->b[0], *b1 = S->b[NV > 1], *b2 = S->b[NV > 2 ? 2 : 0];
        __m512i c[MR][STRIP_VECTORS];
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++)
                c[i][v] = S->first ? _mm512_setzero_si512()
                                   : _mm512_loadu_si512(S->acc + (size_t)(rb + i) * S->ldacc + 16 * v);
        for (int q = 0, s = s0; q < S->quads; s++) {
            for (const int end = q + S->seg < S->quads ? q + S->seg : S->quads; q < end; q++) {
                const int8_t *aq = a + (size_t)q * A_QUAD;
                const __m512i bv[3] = {_mm512_load_si512(b0 + (size_t)q * B_QUAD),
                                       _mm512_load_si512(b1 + (size_t)q * B_QUAD),
                                       _mm512_load_si512(b2 + (size_t)q * B_QUAD)};
                _mm_prefetch((const char *)(aq + 16 * A_QUAD), _MM_HINT_T0);
                for (int i = 0; i < MR; i++) {
                    int32_t quad;
                    memcpy(&quad, aq + 4 * i, sizeof quad);
                    const __m512i av = _mm512_set1_epi32(quad);
                    for (int v = 0; v < NV; v++) c[i][v] = _mm512_dpbusd_epi32(c[i][v], av, bv[v]);
                }
            }
            for (int v = 0; v < NV; v++) {
                if (S->corr[v]) {
                    const __m512i corr = _mm512_loadu_si512(S->corr[v] + 16 * s);
                    for (int i = 0; i < MR; i++) c[i][v] = _mm512_sub_epi32(c[i][v], corr);
                }
                if (S->xt[v]) {
                    uint32_t *xt = S->xt[v] + (size_t)(rb / 32) * S->xt_row + 16 * (size_t)s;
                    __m512i x = _mm512_ternarylogic_epi32(c[0][v], c[1][v], c[2][v], 0x96);
                    x = _mm512_ternarylogic_epi32(x, c[3][v], c[4][v], 0x96);
                    x = _mm512_ternarylogic_epi32(x, c[5][v], c[6][v], 0x96);
                    x = _mm512_ternarylogic_epi32(x, c[7][v], _mm512_load_si512(xt), 0x96);
                    _mm512_store_si512(xt, x);
                }
            }
        }
        for (int p = 0; p < S->pairs; p++) {
            const int8_t *lp = strip_l(S, rb) + (size_t)p * A_QUAD;
            __m512i rv[3];
            for (int v = 0; v < NV; v++) rv[v] = _mm512_load_si512(S->r[v] + (size_t)p * B_QUAD);
            for (int i = 0; i < MR; i++) {
                int32_t pair;
                memcpy(&pair, lp + 4 * i, sizeof pair);
                const __m512i lv = _mm512_set1_epi32(pair);
                for (int v = 0; v < NV; v++) c[i][v] = _mm512_dpwssd_epi32(c[i][v], lv, rv[v]);
            }
        }
        if (S->out && S->stream)
            for (int i = 0; i < MR; i++)
                for (int v = 0; v < NV; v++) _mm512_stream_si512((__m512i *)(S->out + (size_t)(rb + i) * S->ldo + 16 * v), c[i][v]);
        else if (S->out)
            for (int i = 0; i < MR; i++)
                for (int v = 0; v < NV; v++) _mm512_storeu_si512(S->out + (size_t)(rb + i) * S->ldo + 16 * v, c[i][v]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni"))) static void strip_avx512(const strip_t *S) {
    if (S->nv == 3) strip_avx512_nv(S, 3);
    else if (S->nv == 2) strip_avx512_nv(S, 2);
    else strip_avx512_nv(S, 1);
}
#undef AVX512

#define AVXVNNI __attribute__((target("avx2,avxvnni"), always_inline)) static inline

/* MR = 4 rows × NV ymm: 12 accumulators at NV = 3 (16 ymm registers in all). */
AVXVNNI void strip_avxvnni_nv(const strip_t *S, const int NV) {
    enum { MR = 4 };
    const int s0 = S->q0 / S->seg; /* blocks start at a segment boundary */
    for (int rb = 0; rb < S->rows; rb += MR) {
        const int8_t *a = strip_a(S, rb);
        const int8_t *b0 = S->b[0], *b1 = S->b[NV > 1], *b2 = S->b[NV > 2 ? 2 : 0];
        __m256i c[MR][STRIP_VECTORS];
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++)
                c[i][v] = S->first ? _mm256_setzero_si256()
                                   : _mm256_loadu_si256((const __m256i *)(S->acc + (size_t)(rb + i) * S->ldacc + 8 * v));
        for (int q = 0, s = s0; q < S->quads; s++) {
            for (const int end = q + S->seg < S->quads ? q + S->seg : S->quads; q < end; q++) {
                const int8_t *aq = a + (size_t)q * A_QUAD;
                const __m256i bv[3] = {_mm256_load_si256((const __m256i *)(b0 + (size_t)q * B_QUAD)),
                                       _mm256_load_si256((const __m256i *)(b1 + (size_t)q * B_QUAD)),
                                       _mm256_load_si256((const __m256i *)(b2 + (size_t)q * B_QUAD))};
                for (int i = 0; i < MR; i++) {
                    int32_t quad;
                    memcpy(&quad, aq + 4 * i, sizeof quad);
                    const __m256i av = _mm256_set1_epi32(quad);
                    for (int v = 0; v < NV; v++) c[i][v] = _mm256_dpbusd_avx_epi32(c[i][v], av, bv[v]);
                }
            }
            for (int v = 0; v < NV; v++) {
                if (S->corr[v]) {
                    const __m256i corr = _mm256_loadu_si256((const __m256i *)(S->corr[v] + 16 * s));
                    for (int i = 0; i < MR; i++) c[i][v] = _mm256_sub_epi32(c[i][v], corr);
                }
                if (S->xt[v]) {
                    __m256i *xt = (__m256i *)(S->xt[v] + (size_t)(rb / 32) * S->xt_row + 16 * (size_t)s);
                    const __m256i x = _mm256_xor_si256(_mm256_xor_si256(c[0][v], c[1][v]),
                                                       _mm256_xor_si256(c[2][v], c[3][v]));
                    _mm256_store_si256(xt, _mm256_xor_si256(_mm256_load_si256(xt), x));
                }
            }
        }
        for (int p = 0; p < S->pairs; p++) {
            const int8_t *lp = strip_l(S, rb) + (size_t)p * A_QUAD;
            for (int v = 0; v < NV; v++) {
                const __m256i rv = _mm256_load_si256((const __m256i *)(S->r[v] + (size_t)p * B_QUAD));
                for (int i = 0; i < MR; i++) {
                    int32_t pair;
                    memcpy(&pair, lp + 4 * i, sizeof pair);
                    c[i][v] = _mm256_dpwssd_avx_epi32(c[i][v], _mm256_set1_epi32(pair), rv);
                }
            }
        }
        if (S->out)
            for (int i = 0; i < MR; i++)
                for (int v = 0; v < NV; v++)
                    _mm256_storeu_si256((__m256i *)(S->out + (size_t)(rb + i) * S->ldo + 8 * v), c[i][v]);
    }
}

__attribute__((target("avx2,avxvnni"))) static void strip_avxvnni(const strip_t *S) {
    if (S->nv == 3) strip_avxvnni_nv(S, 3);
    else if (S->nv == 2) strip_avxvnni_nv(S, 2);
    else strip_avxvnni_nv(S, 1);
}
#undef AVXVNNI

#define AVX2 __attribute__((target("avx2"), always_inline)) static inline

/* vpmaddubsw needs an unsigned operand: |b| · (a with b's sign) is exact for entries in
 * [-127, 127] (a pair sums to at most 2·127² < 2^15); vpmaddwd then widens to int32. |b| is
 * taken once per quad and vector, not per row: 34 vector µops per 256 MACs instead of 36.
 * MR = 4 rows × NV ≤ 2 ymm. */
AVX2 void strip_avx2_nv(const strip_t *S, const int NV) {
    enum { MR = 4 };
    const __m256i ones = _mm256_set1_epi16(1);
    const int s0 = S->q0 / S->seg; /* blocks start at a segment boundary */
    for (int rb = 0; rb < S->rows; rb += MR) {
        const int8_t *a = strip_a(S, rb);
        const int8_t *b0 = S->b[0], *b1 = S->b[NV > 1];
        __m256i c[MR][2];
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < NV; v++)
                c[i][v] = S->first ? _mm256_setzero_si256()
                                   : _mm256_loadu_si256((const __m256i *)(S->acc + (size_t)(rb + i) * S->ldacc + 8 * v));
        for (int q = 0, s = s0; q < S->quads; s++) {
            for (const int end = q + S->seg < S->quads ? q + S->seg : S->quads; q < end; q++) {
                const int8_t *aq = a + (size_t)q * A_QUAD;
                const __m256i bv[2] = {_mm256_load_si256((const __m256i *)(b0 + (size_t)q * B_QUAD)),
                                       _mm256_load_si256((const __m256i *)(b1 + (size_t)q * B_QUAD))};
                const __m256i bu[2] = {_mm256_abs_epi8(bv[0]), _mm256_abs_epi8(bv[1])};
                for (int i = 0; i < MR; i++) {
                    int32_t quad;
                    memcpy(&quad, aq + 4 * i, sizeof quad);
                    const __m256i av = _mm256_set1_epi32(quad);
                    for (int v = 0; v < NV; v++) {
                        const __m256i p = _mm256_maddubs_epi16(bu[v], _mm256_sign_epi8(av, bv[v]));
                        c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(p, ones));
                    }
                }
            }
            for (int v = 0; v < NV; v++)
                if (S->xt[v]) {
                    __m256i *xt = (__m256i *)(S->xt[v] + (size_t)(rb / 32) * S->xt_row + 16 * (size_t)s);
                    const __m256i x = _mm256_xor_si256(_mm256_xor_si256(c[0][v], c[1][v]),
                                                       _mm256_xor_si256(c[2][v], c[3][v]));
                    _mm256_store_si256(xt, _mm256_xor_si256(_mm256_load_si256(xt), x));
                }
        }
        for (int p = 0; p < S->pairs; p++) {
            const int8_t *lp = strip_l(S, rb) + (size_t)p * A_QUAD;
            for (int v = 0; v < NV; v++) {
                const __m256i rv = _mm256_load_si256((const __m256i *)(S->r[v] + (size_t)p * B_QUAD));
                for (int i = 0; i < MR; i++) {
                    int32_t pair;
                    memcpy(&pair, lp + 4 * i, sizeof pair);
                    c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(_mm256_set1_epi32(pair), rv));
                }
            }
        }
        if (S->out && S->stream) /* a row's two vectors are one whole cache line of C */
            for (int i = 0; i < MR; i++)
                for (int v = 0; v < NV; v++)
                    _mm256_stream_si256((__m256i *)(S->out + (size_t)(rb + i) * S->ldo + 8 * v), c[i][v]);
        else if (S->out)
            for (int i = 0; i < MR; i++)
                for (int v = 0; v < NV; v++)
                    _mm256_storeu_si256((__m256i *)(S->out + (size_t)(rb + i) * S->ldo + 8 * v), c[i][v]);
    }
}

__attribute__((target("avx2"))) static void strip_avx2(const strip_t *S) {
    if (S->nv == 2) strip_avx2_nv(S, 2);
    else strip_avx2_nv(S, 1);
}
#undef AVX2
#endif
