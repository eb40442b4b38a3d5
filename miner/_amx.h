/* The AMX path (PROTOCOL §4): TDPBSSD multiplies s8 by s8 into s32 tiles, so A' and B' go in as
 * they are (entries in [-127, 127]): no +128 offset and no column sums to take off again.
 *
 * Tiles: C is a 2 × 2 block of 16 × 16 int32 tiles (tmm0-3), one 32 × 32 hash tile of the
 * output; A' rows come in two 16 × KS tiles (tmm4-5), B' in two (KS/4) × 64-byte tiles in the VNNI
 * K4 layout (tmm6-7).  KS, the k-values of one TDPBSSD, is the largest multiple of 4 up to 64
 * that divides r, so that a rank-r chunk is whole TDPBSSDs (r = 64: one).
 *   Ap: [16-row group][k/KS steps][16 rows][KS]   (a tile is 1 KiB, contiguous)
 *   Bp: [16-column group][k/4][16 columns][4]    (as on the VNNI paths: a step is KS/4 rows of 64 B)
 * Work units are MC × NC outputs as on the other paths; inside a unit the K-blocks (whole chunks,
 * about KC_TARGET k-values) go outermost, then the unit's 32-column pairs, then its 32-row pairs,
 * so that a pair's B' block stays in L1 while the unit's rows pass.  At every chunk boundary the
 * four C tiles are stored (32 × 32 row-major: each just ahead of the next step's multiply into it,
 * or at a K-block's end into the block's slot in the unit buffer, from which the next K-block
 * reloads C) and their XOR taken with AVX-512 into the tile's 16-lane partial for the chunk.
 * At r = 64 that is 4 KiB stored and read back for every four TDPBSSDs: with the tile loads, the
 * fold makes this path bound by L1 bandwidth where the plain GEMM is not (see docs).
 *
 * Recovery (kernel.matmul): C = C' + (−X)·F_R + E_L·(−Y) (see the recovery section), computed in
 * int8 on the tiles by cutting −X and −Y into byte planes: plane p of v is the signed byte
 * v_p with v = Σ_p 256^p v_p.  Plane p of the rank-2r block is L_p = [(−X)_p | E_L],
 * R_p = [F_R ; (−Y)_p]; plane 0 is added to C' in the tiles after the last chunk, planes p ≥ 1
 * are multiplied from zero and added as 256^p times their product (wrapping, exact mod 2^32).
 *   Lp: [plane][16-row group][2r/KS][16][KS],  Rp: [plane][16-column group][2r/4][16][4]
 *
 * Linux hands out the tile state only on request (arch_prctl ARCH_REQ_XCOMP_PERM, once per
 * process); the path is offered only where CPUID, XCR0 and that request all agree. */

#ifdef POUW_AMX
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

enum { ARCH_REQ_XCOMP_PERM_ = 0x1023, XFEATURE_XTILEDATA_ = 18 };

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config_t;

static int amx_permitted;
static void amx_request(void) {
#ifdef __linux__
    amx_permitted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) == 0;
#endif
}

/* CPUID: AMX-TILE and AMX-INT8; XCR0: the OS saves XTILECFG and XTILEDATA; Linux: granted. */
static int amx_supported(void) {
    unsigned int eax, ebx, ecx, edx;
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    if (!((edx >> 24) & 1) || !((edx >> 25) & 1)) return 0;
    __cpuid(1, eax, ebx, ecx, edx);
    if (!((ecx >> 27) & 1)) return 0; /* OSXSAVE */
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) != 3) return 0;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, amx_request);
    return amx_permitted;
}

/* The job's tiles: 0-3 C (16 × 64 B), 4-5 A (16 × KS), 6-7 B (KS/4 × 64 B).  The configuration
 * lives in thread-local memory, not in a leaf function's red zone below the stack pointer. */
static _Thread_local amx_config_t amx_cfg __attribute__((aligned(64)));

__attribute__((target("amx-tile"))) static void amx_configure(int ks) {
    memset(&amx_cfg, 0, sizeof amx_cfg);
    amx_cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        amx_cfg.rows[t] = t >= 6 ? (uint8_t)(ks / 4) : 16;
        amx_cfg.colsb[t] = t == 4 || t == 5 ? (uint16_t)ks : 64;
    }
    _tile_loadconfig(&amx_cfg);
}

/* KS: the largest multiple of 4 up to 64 that divides r. */
static int amx_step(int r) {
    int ks = 64;
    while (r % ks) ks -= 4;
    return ks;
}

#define AMX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

/* Byte (line, j) of a 16-row-group, KS-step layout with `depth` k-values (k or 2r). */
static inline size_t amx_a_at(int line, int j, int ks, size_t depth) {
    return (size_t)(line / 16) * 16 * depth + (size_t)(j / ks) * 16 * ks + (size_t)(line % 16) * ks + j % ks;
}

/* Stores `len` ≤ 64 bytes of row `line` from k-value j on into the A layout. */
static inline void amx_put_row(int8_t *out, int line, int j, const int8_t *v, int len, int ks, size_t depth) {
    for (int t = 0; t < len;) {
        const int at = (j + t) % ks, piece = ks - at < len - t ? ks - at : len - t;
        memcpy(out + amx_a_at(line, j + t, ks, depth), v + t, (size_t)piece);
        t += piece;
    }
}

/* Tile-row `panel` of A' = A + E into Ap; E[i, j] = E_L[i, p_j] − E_L[i, q_j] with E_L's row read
 * straight from the panel's XOF (row-major, r bytes a row).  Nonzero on an entry out of range. */
AMX512 static int amx_pack_a(const job_t *J, int panel) {
    const int k = J->k, r = J->r, ks = J->ks, windows = (r + 127) / 128;
    const uint8_t *idx = J->pairs_xof; /* p mod 128, p / 128, q mod 128, q / 128: k bytes each */
    const __m512i lim = _mm512_set1_epi8((char)J->limit);
    __mmask64 bad = 0;
    for (int line = 0; line < TILE; line++) {
        const int row = panel * TILE + line;
        const int8_t *src = J->a + (size_t)row * k;
        __m512i tab[16];
        if (J->s_b) noise_tables(J->xof + ((size_t)panel * TILE + line) * r, r, tab);
        for (int j = 0; j < k; j += 64) {
            const int len = k - j < 64 ? k - j : 64;
            const __mmask64 m = len == 64 ? ~(__mmask64)0 : ((__mmask64)1 << len) - 1;
            __m512i v = _mm512_maskz_loadu_epi8(m, src + j);
            bad |= _mm512_cmpgt_epu8_mask(_mm512_abs_epi8(v), lim);
            if (J->s_b)
                v = _mm512_add_epi8(v, _mm512_sub_epi8(
                                           noise_gather(tab, windows, idx + j, idx + k + j, m),
                                           noise_gather(tab, windows, idx + 2 * k + j, idx + 3 * k + j, m)));
            if (ks == 64 && len == 64) _mm512_storeu_si512(J->ap + amx_a_at(row, j, ks, (size_t)k), v);
            else {
                int8_t tmp[64];
                _mm512_storeu_si512(tmp, v);
                amx_put_row(J->ap, row, j, tmp, len, ks, (size_t)k);
            }
        }
    }
    return bad != 0;
}

/* The XOR of a stored 32 × 32 block into a 16-lane partial (four independent chains). */
AMX512 static inline void amx_fold(const int32_t *c, uint32_t *xt) {
    __m512i x[4] = {_mm512_load_si512(xt), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    for (int i = 0; i < 64; i += 8)
        for (int h = 0; h < 4; h++)
            x[h] = _mm512_ternarylogic_epi32(x[h], _mm512_load_si512(c + 16 * (i + 2 * h)),
                                             _mm512_load_si512(c + 16 * (i + 2 * h + 1)), 0x96);
    _mm512_store_si512(xt, _mm512_ternarylogic_epi32(x[0], x[1], _mm512_xor_si512(x[2], x[3]), 0x96));
}

#define AMX_TILES __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vbmi")))

/* C (tmm0-3) += A rows a0 (16-row groups a0, a0 + 16·depth) × B columns b0 (groups b0, b0 + 16·depth)
 * over steps s0 … s1 − 1; at every chunk end (fold) the block is stored to c and XORed into xt. */
#define AMX_STEP(a0, b0, depth, s, ks)                                                             \
    do {                                                                                           \
        _tile_loadd(4, (a0) + (size_t)(s) * 16 * (ks), (ks));                                      \
        _tile_loadd(6, (b0) + (size_t)(s) * 16 * (ks), 64);                                        \
        _tile_loadd(5, (a0) + 16 * (size_t)(depth) + (size_t)(s) * 16 * (ks), (ks));               \
        _tile_dpbssd(0, 4, 6);                                                                     \
        _tile_loadd(7, (b0) + 16 * (size_t)(depth) + (size_t)(s) * 16 * (ks), 64);                 \
        _tile_dpbssd(2, 5, 6);                                                                     \
        _tile_dpbssd(1, 4, 7);                                                                     \
        _tile_dpbssd(3, 5, 7);                                                                     \
    } while (0)

/* AMX_STEP that also stores the block as it was before the step into c (32 × 32 row-major), each
 * tile just ahead of the multiply into it: stores after the step's last multiply would hold up
 * the next step's first one until all four were done. */
#define AMX_STEP_STORING(a0, b0, depth, s, ks, c)                                                  \
    do {                                                                                           \
        _tile_loadd(4, (a0) + (size_t)(s) * 16 * (ks), (ks));                                      \
        _tile_loadd(6, (b0) + (size_t)(s) * 16 * (ks), 64);                                        \
        _tile_stored(0, (c), 128);                                                                 \
        _tile_dpbssd(0, 4, 6);                                                                     \
        _tile_loadd(5, (a0) + 16 * (size_t)(depth) + (size_t)(s) * 16 * (ks), (ks));               \
        _tile_stored(2, (c) + 512, 128);                                                           \
        _tile_dpbssd(2, 5, 6);                                                                     \
        _tile_loadd(7, (b0) + 16 * (size_t)(depth) + (size_t)(s) * 16 * (ks), 64);                 \
        _tile_stored(1, (c) + 16, 128);                                                            \
        _tile_dpbssd(1, 4, 7);                                                                     \
        _tile_stored(3, (c) + 528, 128);                                                           \
        _tile_dpbssd(3, 5, 7);                                                                     \
    } while (0)

AMX_TILES static inline void amx_store(int32_t *c, size_t ld) {
    _tile_stored(0, c, ld * 4);
    _tile_stored(1, c + 16, ld * 4);
    _tile_stored(2, c + 16 * ld, ld * 4);
    _tile_stored(3, c + 16 * ld + 16, ld * 4);
}

AMX_TILES static inline void amx_zero(void) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
}

/* After the last chunk: C' in the tiles becomes A·B (planes of L·R, see the top), into c. */
AMX_TILES static void amx_recover(const job_t *J, int row, int col, int32_t *c, int32_t *tmp) {
    const int ks = J->ks, steps = 2 * J->r / ks;
    const size_t depth = 2 * (size_t)J->r;
    for (int p = 0; p < J->planes; p++) {
        const int8_t *l = J->lp + (size_t)p * J->m * depth + (size_t)row * depth;
        const int8_t *rr = J->rp + (size_t)p * J->n * depth + (size_t)col * depth;
        if (p) amx_zero();
        for (int s = 0; s < steps; s++) AMX_STEP(l, rr, depth, s, ks);
        amx_store(p ? tmp : c, 32);
        for (int i = 0; p && i < 64; i++) {
            const __m512i v = _mm512_load_si512(tmp + 16 * i);
            _mm512_store_si512(c + 16 * i, _mm512_add_epi32(_mm512_load_si512(c + 16 * i), _mm512_slli_epi32(v, 8 * p)));
        }
    }
}

/* A finished 32 × 32 block into C: streaming stores where C's rows start on cache lines (kernel.py
 * allocates it so), which saves reading every line of C in before it is written. */
AMX512 static inline void amx_write(int32_t *out, size_t ld, const int32_t *c) {
    if (((uintptr_t)out | ld * sizeof *out) % 64) {
        for (int i = 0; i < TILE; i++) memcpy(out + ld * i, c + TILE * i, TILE * sizeof *c);
        return;
    }
    for (int i = 0; i < TILE; i++) {
        _mm512_stream_si512((__m512i *)(out + ld * i), _mm512_load_si512(c + TILE * i));
        _mm512_stream_si512((__m512i *)(out + ld * i + 16), _mm512_load_si512(c + TILE * i + 16));
    }
}

/* A unit's buffer on this path: per 32 × 32 block of the unit its C (row-major, 4 KiB), then the
 * tile partials and chunk XORs as on the other paths (unit_buffer_len), then one block of staging. */
AMX_TILES static void amx_unit(const job_t *J, uint8_t *buf, int row0, int col0, int rows, int cols) {
    const int ks = J->ks, steps = J->k / ks, per_chunk = J->r / ks, block = J->kc / ks;
    const int chunks = J->lanes ? J->k / J->r : 0, down = rows / TILE, across = cols / TILE;
    int32_t *cs = (int32_t *)buf;
    uint32_t *xt = (uint32_t *)(buf + (size_t)MC * NC * sizeof(int32_t));
    uint32_t *xors = xt + (size_t)(MC / TILE) * (NC / TILE) * chunks * 16;
    int32_t *stage = (int32_t *)((uint8_t *)xors + round64((size_t)chunks * 4)); /* one 32 × 32 block */
    if (chunks) memset(xt, 0, (size_t)down * across * chunks * 64);
    for (int s0 = 0; s0 < steps; s0 += block) {
        const int s1 = steps - s0 < block ? steps : s0 + block, last = s1 == steps;
        for (int cp = 0; cp < across; cp++) {
            const int col = col0 + TILE * cp;
            const int8_t *b0 = J->bp + (size_t)col * J->k;
            for (int rp = 0; rp < down; rp++) {
                const int row = row0 + TILE * rp, t = rp * across + cp;
                const int8_t *a0 = J->ap + (size_t)row * J->k;
                int32_t *c = cs + (size_t)t * TILE * TILE;
                uint32_t *part = xt + (size_t)t * chunks * 16;
                if (s0) {
                    _tile_loadd(0, c, 128);
                    _tile_loadd(1, c + 16, 128);
                    _tile_loadd(2, c + 512, 128);
                    _tile_loadd(3, c + 528, 128);
                } else amx_zero();
                /* a chunk that ends inside the block is stored by the next step (AMX_STEP_STORING)
                   and folded after it; one that ends the block is stored to c, for the next block */
                uint32_t *due = NULL;
                for (int s = s0; s < s1; s++) {
                    if (due) {
                        AMX_STEP_STORING(a0, b0, J->k, s, ks, stage);
                        amx_fold(stage, due);
                        due = NULL;
                    } else AMX_STEP(a0, b0, J->k, s, ks);
                    if (chunks && (s + 1) % per_chunk == 0) {
                        uint32_t *chunk_xt = part + 16 * ((s + 1) / per_chunk - 1);
                        if (s + 1 < s1) due = chunk_xt;
                        else amx_store(c, TILE), amx_fold(c, chunk_xt);
                    }
                }
                if (!last) {
                    if (!chunks) amx_store(c, TILE);
                    continue;
                }
                if (J->recover) amx_recover(J, row, col, c, stage);
                else if (!chunks) amx_store(c, TILE);
                if (J->c) amx_write(J->c + (size_t)row * J->n + col, (size_t)J->n, c);
            }
        }
    }
    for (int t = 0; chunks && t < down * across; t++) {
        const uint32_t *part = xt + (size_t)t * chunks * 16;
        for (int l = 0; l < chunks; l++) {
            uint32_t x = 0;
            for (int w = 0; w < 16; w++) x ^= part[16 * l + w];
            xors[l] = x;
        }
        ticket(J, row0 / TILE + t / across, col0 / TILE + t % across, xors);
    }
}

AMX_TILES static void *amx_unit_worker(void *arg) {
    job_t *J = arg;
    uint8_t *buf = J->units + (size_t)__atomic_fetch_add(&J->slot, 1, __ATOMIC_RELAXED) * J->unit_len;
    const int across = units_across(J);
    const long total = (long)((J->m + MC - 1) / MC) * across;
    amx_configure(J->ks);
    for (long t; (t = take_unit(J, across, total)) >= 0;) {
        const int row0 = (int)(t / across) * MC, col0 = (int)(t % across) * NC;
        amx_unit(J, buf, row0, col0, J->m - row0 < MC ? J->m - row0 : MC, J->n - col0 < NC ? J->n - col0 : NC);
    }
    _mm_sfence(); /* the streaming stores are visible before the caller reads C */
    _tile_release();
    return NULL;
}

/* X = A'·F_L for 16 rows from `row` and F_L's 16-column groups g … g + count − 1 (count ≤ 4, one
 * C tile each: every A' tile is loaded once for all of them). */
#define AMX_X_GROUP(t, b)                                                                           \
    do {                                                                                           \
        _tile_loadd(b, f + (size_t)(t) * 16 * J->k + (size_t)s * 16 * ks, 64);                     \
        _tile_dpbssd(t, 4, b);                                                                     \
    } while (0)

AMX_TILES static void amx_x_groups(const job_t *J, int row, int g, int count) {
    const int ks = J->ks, steps = J->k / ks;
    const int8_t *a = J->ap + (size_t)row * J->k, *f = J->flp + (size_t)g * 16 * J->k;
    amx_zero();
    for (int s = 0; s < steps; s++) {
        _tile_loadd(4, a + (size_t)s * 16 * ks, ks);
        AMX_X_GROUP(0, 6);
        if (count > 1) AMX_X_GROUP(1, 7);
        if (count > 2) AMX_X_GROUP(2, 6);
        if (count > 3) AMX_X_GROUP(3, 7);
    }
    int32_t *x = J->xl + (size_t)row * J->rpad + 16 * g;
    const size_t ld = J->rpad * sizeof *x;
    _tile_stored(0, x, ld);
    if (count > 1) _tile_stored(1, x + 16, ld);
    if (count > 2) _tile_stored(2, x + 32, ld);
    if (count > 3) _tile_stored(3, x + 48, ld);
}
#undef AMX_X_GROUP

/* Tasks as in recovery_worker: 32-row panels (X = A'·F_L on the tiles, then their rows of every
 * plane of L) and runs of Y_GROUPS 16-column groups (their columns of every plane of R, from the Y
 * pack_b added up). */
AMX_TILES static void *amx_recovery_worker(void *arg) {
    job_t *J = arg;
    const int panels = J->m / TILE, groups = J->n / 16, runs = (groups + Y_GROUPS - 1) / Y_GROUPS;
    const int r = J->r, ks = J->ks;
    const size_t depth = 2 * (size_t)r;
    int32_t *v = malloc((size_t)r * sizeof *v); /* a row of −X, then its higher bytes */
    int8_t *line = malloc(depth);               /* a row of one plane of L */
    if (!v || !line) {
        free(v), free(line);
        return (void *)1;
    }
    amx_configure(ks);
    for (long t; (t = __atomic_fetch_add(&J->next, 1, __ATOMIC_RELAXED)) < panels + runs;) {
        if (t < panels) {
            const int row0 = (int)t * TILE;
            for (int h = 0; h < TILE; h += 16)
                for (int g = 0; g < J->rpad / 16; g += 4)
                    amx_x_groups(J, row0 + h, g, J->rpad / 16 - g < 4 ? J->rpad / 16 - g : 4);
            const uint8_t *el = J->xof + (size_t)t * TILE * r; /* E_L of this tile-row, row-major */
            for (int i = row0; i < row0 + TILE; i++) {
                for (int x = 0; x < r; x++) {
                    v[x] = -J->xl[(size_t)i * J->rpad + x];
                    line[r + x] = (int8_t)((el[(size_t)(i - row0) * r + x] & 63) - 32);
                }
                for (int p = 0; p < J->planes; p++) {
                    for (int x = 0; x < r; x++) line[x] = (int8_t)v[x], v[x] = (v[x] - line[x]) / 256;
                    for (int j = 0; j < 2 * r; j += 64)
                        amx_put_row(J->lp + (size_t)p * J->m * depth, i, j, line + j, 2 * r - j < 64 ? 2 * r - j : 64, ks, depth);
                }
            }
        } else {
            const int g0 = (int)(t - panels) * Y_GROUPS, count = groups - g0 < Y_GROUPS ? groups - g0 : Y_GROUPS;
            int32_t *y = J->y0 + (size_t)g0 * 16 * r; /* these groups' Y (pack_b), [group][r][16 columns] */
            for (int g = g0; g < g0 + count; g++) {
                const int8_t *T = J->factors + (size_t)(panels + g / 2) * TILE * r + 16 * (g % 2); /* F_R's columns */
                int32_t *yg = y + (size_t)(g - g0) * 16 * r;
                for (int x = 0; x < 16 * r; x++) yg[x] = -yg[x];
                for (int p = 0; p < J->planes; p++) {
                    int8_t *at = J->rp + (size_t)p * J->n * depth + (size_t)g * 16 * depth;
                    for (int x = 0; x < r; x++)
                        for (int c = 0; c < 16; c++) {
                            const int8_t lo = (int8_t)yg[16 * x + c];
                            at[(size_t)(x / 4) * 64 + 4 * c + x % 4] = T[x * TILE + c];
                            at[(size_t)((r + x) / 4) * 64 + 4 * c + (r + x) % 4] = lo;
                            yg[16 * x + c] = (yg[16 * x + c] - lo) / 256;
                        }
                }
            }
        }
    }
    _tile_release();
    free(v), free(line);
    return NULL;
}

/* The peak loop: four independent TDPBSSD chains (2 × 2 tiles, as in the kernel). */
__attribute__((target("amx-tile,amx-int8"), noinline)) static void peak_loop_amx(long iters) {
    static int8_t a[1024] __attribute__((aligned(64))), b[1024] __attribute__((aligned(64)));
    amx_configure(64);
    amx_zero();
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    for (long it = 0; it < iters; it++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    _tile_release();
}
#undef AMX512
#endif
