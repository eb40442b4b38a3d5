/* Merkle leaf hashes of a matrix's lines (PROTOCOL §2): SHA-256(0x00 || line) for `count` lines of
 * `width` bytes each, laid out one after the other.  With the prefix 0x01 and 64-byte lines (two
 * hashes side by side) the same code hashes a level of Merkle nodes (_merkle.h).
 *
 * Every leaf of a matrix has the same length, so the SIMD paths hash several lines at once, one
 * per 32-bit lane: 16 on zmm (AVX-512F + BW: vprord, vpternlogd), 8 on ymm (AVX2).  The message
 * 0x00 || line straddles the line by one byte: its block 0 (the prefix and the line's first 63
 * bytes) and its last one or two (the rest of the line, the 0x80 byte, zeros and the length) are
 * put together per line in a scratch buffer, and the blocks between are read from the line itself,
 * one byte behind the block boundary.  All lanes have the same length, hence the same blocks.
 * A short remainder of lines (under a quarter of the lanes) is hashed one line at a time with
 * SHA-NI where the CPU has it, else portably; a longer one fills the spare lanes with copies of a
 * line whose hashes are dropped.
 *
 * The single-stream paths reuse the compression functions of _sha256.h. */
#ifndef POUW_LEAFHASH_H
#define POUW_LEAFHASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_sha256.h"

/* Paths, slowest first: SHA-NI (two lines at a time, their rounds interleaved) beat 8 lanes of
 * AVX2 where measured (docs/kernel.md), so avx2 is the choice only where the CPU has no SHA-NI. */
enum { LEAF_PORTABLE = 0, LEAF_AVX2 = 1, LEAF_SHANI = 2, LEAF_AVX512 = 3, LEAF_LAST = LEAF_AVX512 };
static const char *LEAF_PATH_NAMES[] = {"portable", "avx2", "shani", "avx512"};

/* --- the message of one leaf ------------------------------------------------------------------- */

typedef struct {
    size_t width;   /* bytes of a line; the message is 1 + width bytes */
    uint8_t prefix; /* the message's first byte: 0x00 for a leaf, 0x01 for a Merkle node */
    size_t full;   /* blocks made of message bytes only (block 0 included, if whole) */
    size_t blocks; /* blocks after padding: full + 1 or full + 2 */
} leaf_shape_t;

static leaf_shape_t leaf_shape(size_t width, uint8_t prefix) {
    const size_t len = width + 1;
    return (leaf_shape_t){width, prefix, len / 64, (len + 8) / 64 + 1};
}

/* Block 0 (when whole) and the padded tail blocks of one line's message. */
typedef struct {
    uint8_t head[64], tail[128];
} leaf_scratch_t;

/* Bytes [from, to) of the message prefix || line into dst. */
static void leaf_message(uint8_t *dst, const uint8_t *line, uint8_t prefix, size_t from, size_t to) {
    if (from == 0 && to > 0) *dst++ = prefix, from = 1;
    if (to > from) memcpy(dst, line + from - 1, to - from);
}

static void leaf_scratch(leaf_scratch_t *s, const uint8_t *line, leaf_shape_t sh) {
    const size_t len = sh.width + 1, tail_from = 64 * sh.full, tail_len = 64 * (sh.blocks - sh.full);
    const uint64_t bits = (uint64_t)len * 8;
    if (sh.full) leaf_message(s->head, line, sh.prefix, 0, 64);
    memset(s->tail, 0, sizeof s->tail);
    leaf_message(s->tail, line, sh.prefix, tail_from, len);
    s->tail[len - tail_from] = 0x80;
    for (int i = 0; i < 8; i++) s->tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
}

/* Block b of a line's message: scratch for block 0 and the tail, else the line itself. */
static inline const uint8_t *leaf_block(const leaf_scratch_t *s, const uint8_t *line, leaf_shape_t sh, size_t b) {
    if (b >= sh.full) return s->tail + 64 * (b - sh.full);
    return b ? line + 64 * b - 1 : s->head;
}

/* --- one line at a time ----------------------------------------------------------------------- */

typedef void (*sha256_blocks_fn)(uint32_t st[8], const uint8_t *data, size_t blocks);

#ifdef POUW_HAVE_SHANI
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_blocks_ni(uint32_t st[8], const uint8_t *data,
                                                                       size_t blocks) {
    const __m128i bswap = _mm_loadu_si128((const __m128i *)SHA256_BSWAP32);
    sha256_ni_t s = sha256_ni_load(st);
    for (; blocks; blocks--, data += 64) {
        __m128i w[4];
        for (int i = 0; i < 4; i++) w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), bswap);
        const sha256_ni_t before = s;
        sha256_ni_groups(&s, w, 0, 16);
        s = sha256_ni_add(s, before);
    }
    sha256_ni_store(s, st);
}

/* Two messages of as many blocks at once, their rounds interleaved: one stream waits on the
 * latency of sha256rnds2, two keep its unit busy (1.75 × the bytes a second on Zen 3). */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_blocks_ni2(uint32_t st0[8], uint32_t st1[8],
                                                                        const uint8_t *d0, const uint8_t *d1,
                                                                        size_t blocks) {
    const __m128i bswap = _mm_loadu_si128((const __m128i *)SHA256_BSWAP32);
    sha256_ni_t s = sha256_ni_load(st0), t = sha256_ni_load(st1);
    for (; blocks; blocks--, d0 += 64, d1 += 64) {
        __m128i w[4], v[4];
        for (int i = 0; i < 4; i++) {
            w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(d0 + 16 * i)), bswap);
            v[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(d1 + 16 * i)), bswap);
        }
        const sha256_ni_t s0 = s, t0 = t;
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            sha256_ni_groups(&s, w, g, g + 1);
            sha256_ni_groups(&t, v, g, g + 1);
        }
        s = sha256_ni_add(s, s0);
        t = sha256_ni_add(t, t0);
    }
    sha256_ni_store(s, st0);
    sha256_ni_store(t, st1);
}

/* Two lines' leaf hashes at once (leaf_hash_one for each). */
static void leaf_hash_two_ni(const uint8_t *l0, const uint8_t *l1, leaf_shape_t sh, uint8_t out0[32],
                             uint8_t out1[32]) {
    leaf_scratch_t s0, s1;
    uint32_t st0[8], st1[8];
    leaf_scratch(&s0, l0, sh);
    leaf_scratch(&s1, l1, sh);
    memcpy(st0, SHA256_IV, sizeof st0);
    memcpy(st1, SHA256_IV, sizeof st1);
    if (sh.full) {
        sha256_blocks_ni2(st0, st1, s0.head, s1.head, 1);
        sha256_blocks_ni2(st0, st1, l0 + 63, l1 + 63, sh.full - 1);
    }
    sha256_blocks_ni2(st0, st1, s0.tail, s1.tail, sh.blocks - sh.full);
    sha256_store_be(st0, out0);
    sha256_store_be(st1, out1);
}
#endif

static void leaf_hash_one(sha256_blocks_fn compress, const uint8_t *line, leaf_shape_t sh, uint8_t out[32]) {
    leaf_scratch_t s;
    uint32_t st[8];
    leaf_scratch(&s, line, sh);
    memcpy(st, SHA256_IV, sizeof st);
    if (sh.full) {
        compress(st, s.head, 1);
        compress(st, line + 63, sh.full - 1);
    }
    compress(st, s.tail, sh.blocks - sh.full);
    sha256_store_be(st, out);
}

/* --- many lines at once ------------------------------------------------------------------------
 * MB_COMPRESS is the compression of one block in every lane, written once over vector operations
 * that each SIMD path defines before expanding it: V (the vector type), V_ADD, V_ROR, V_SHR,
 * V_XOR3, V_CH (e ? f : g), V_MAJ and V_SET1.  w[64] holds the block's big-endian words 0-15,
 * one line a lane; the whole message schedule is formed there first, so that the rounds keep
 * only the state and temporaries in registers (and read W from memory); st[8] is the state. */

#define MB_BSIG0(x) V_XOR3(V_ROR(x, 2), V_ROR(x, 13), V_ROR(x, 22))
#define MB_BSIG1(x) V_XOR3(V_ROR(x, 6), V_ROR(x, 11), V_ROR(x, 25))
#define MB_SSIG0(x) V_XOR3(V_ROR(x, 7), V_ROR(x, 18), V_SHR(x, 3))
#define MB_SSIG1(x) V_XOR3(V_ROR(x, 17), V_ROR(x, 19), V_SHR(x, 10))

/* Round t: T1 = h + Σ1(e) + Ch(e, f, g) + K_t + W_t; d += T1; h = T1 + Σ0(a) + Maj(a, b, c) becomes
 * the new a, as the callers pass the names rotated instead of moving the values. */
#define MB_ROUND(t, a, b, c, d, e, f, g, h)                                                                \
    do {                                                                                                   \
        const V t1_ = V_ADD(V_ADD(h, MB_BSIG1(e)), V_ADD(V_CH(e, f, g), V_ADD(w[t], V_SET1(SHA256_K[t])))); \
        d = V_ADD(d, t1_);                                                                                 \
        h = V_ADD(t1_, V_ADD(MB_BSIG0(a), V_MAJ(a, b, c)));                                                \
    } while (0)

#define MB_COMPRESS(st, w)                                                                                  \
    do {                                                                                                    \
        for (int t = 16; t < 64; t++)                                                                       \
            w[t] = V_ADD(V_ADD(w[t - 16], MB_SSIG0(w[t - 15])), V_ADD(w[t - 7], MB_SSIG1(w[t - 2])));       \
        V a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];           \
        _Pragma("GCC unroll 8")                                                                             \
        for (int t = 0; t < 64; t += 8) {                                                                   \
            MB_ROUND(t + 0, a, b, c, d, e, f, g, h);                                                        \
            MB_ROUND(t + 1, h, a, b, c, d, e, f, g);                                                        \
            MB_ROUND(t + 2, g, h, a, b, c, d, e, f);                                                        \
            MB_ROUND(t + 3, f, g, h, a, b, c, d, e);                                                        \
            MB_ROUND(t + 4, e, f, g, h, a, b, c, d);                                                        \
            MB_ROUND(t + 5, d, e, f, g, h, a, b, c);                                                        \
            MB_ROUND(t + 6, c, d, e, f, g, h, a, b);                                                        \
            MB_ROUND(t + 7, b, c, d, e, f, g, h, a);                                                        \
        }                                                                                                   \
        st[0] = V_ADD(st[0], a), st[1] = V_ADD(st[1], b), st[2] = V_ADD(st[2], c), st[3] = V_ADD(st[3], d); \
        st[4] = V_ADD(st[4], e), st[5] = V_ADD(st[5], f), st[6] = V_ADD(st[6], g), st[7] = V_ADD(st[7], h); \
    } while (0)

/* The blocks of `lanes` lines (line[i] of lane i), the same blocks for all: `compress` takes one
 * block of every lane, given by its pointers, into the lanes' state (kept by the caller). */
#define MB_LINES(lanes, compress, st, line, sh)                                        \
    do {                                                                               \
        leaf_scratch_t s_[lanes];                                                      \
        const uint8_t *p_[lanes];                                                      \
        for (int i = 0; i < (lanes); i++) leaf_scratch(&s_[i], line[i], sh);           \
        for (size_t blk = 0; blk < (sh).blocks; blk++) {                               \
            for (int i = 0; i < (lanes); i++) p_[i] = leaf_block(&s_[i], line[i], sh, blk); \
            compress(st, p_);                                                          \
        }                                                                              \
    } while (0)

/* The digests of `lanes` lines, each from SHA-256's IV: word x of lane i goes to
 * digest[lanes·x + i] (V, V_SET1 and V_STORE as defined for the width). */
#define MB_LEAF_HASH(lanes, compress)                                                  \
    do {                                                                               \
        V st_[8];                                                                      \
        for (int i = 0; i < 8; i++) st_[i] = V_SET1(SHA256_IV[i]);                     \
        MB_LINES(lanes, compress, st_, line, sh);                                      \
        for (int i = 0; i < 8; i++) V_STORE(digest + (lanes) * i, st_[i]);             \
    } while (0)

#if defined(__x86_64__) || defined(__i386__)
#define POUW_LEAF_SIMD 1

/* 8 rows of 8 dwords → 8 vectors, vector x holding dword x of every row (also the kernel's
 * packing of A's rows). */
__attribute__((target("avx2"))) static inline void transpose8x8_epi32(const __m256i r[8], __m256i out[8]) {
    __m256i t[8], u[8];
    for (int h = 0; h < 8; h += 4) {
        t[h] = _mm256_unpacklo_epi32(r[h], r[h + 1]);
        t[h + 1] = _mm256_unpackhi_epi32(r[h], r[h + 1]);
        t[h + 2] = _mm256_unpacklo_epi32(r[h + 2], r[h + 3]);
        t[h + 3] = _mm256_unpackhi_epi32(r[h + 2], r[h + 3]);
        u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);         /* dwords 0 | 4 */
        u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);     /* dwords 1 | 5 */
        u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]); /* dwords 2 | 6 */
        u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]); /* dwords 3 | 7 */
    }
    for (int x = 0; x < 4; x++) {
        out[x] = _mm256_permute2x128_si256(u[x], u[x + 4], 0x20);
        out[x + 4] = _mm256_permute2x128_si256(u[x], u[x + 4], 0x31);
    }
}

/* AVX2, 8 lanes: a block is two ymm a line, each transposed 8 × 8. */
#define V __m256i
#define V_ADD _mm256_add_epi32
#define V_ROR(x, n) _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - (n)))
#define V_SHR _mm256_srli_epi32
#define V_XOR3(x, y, z) _mm256_xor_si256(_mm256_xor_si256(x, y), z)
#define V_CH(e, f, g) _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
#define V_MAJ(a, b, c) _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(c, _mm256_or_si256(a, b)))
#define V_SET1(k) _mm256_set1_epi32((int)(k))
#define V_STORE(p, v) _mm256_storeu_si256((__m256i *)(p), v)

__attribute__((target("avx2"))) static void compress_x8(__m256i st[8], const uint8_t *const p[8]) {
    const __m256i bswap = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)SHA256_BSWAP32));
    __m256i rows[8], w[64];
    for (int half = 0; half < 2; half++) {
        for (int i = 0; i < 8; i++)
            rows[i] = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(p[i] + 32 * half)), bswap);
        transpose8x8_epi32(rows, w + 8 * half);
    }
    MB_COMPRESS(st, w);
}

/* The states of 8 lines: word x of lane i goes to digest[8x + i]. */
__attribute__((target("avx2"))) static void leaf_hash_x8(const uint8_t *const line[8], leaf_shape_t sh,
                                                       uint32_t digest[64]) {
    MB_LEAF_HASH(8, compress_x8);
}

#undef V
#undef V_ADD
#undef V_ROR
#undef V_SHR
#undef V_XOR3
#undef V_CH
#undef V_MAJ
#undef V_SET1
#undef V_STORE

/* AVX-512, 16 lanes: a block is one zmm a line, transposed 16 × 16. */
#define V __m512i
#define V_ADD _mm512_add_epi32
#define V_ROR _mm512_ror_epi32
#define V_SHR _mm512_srli_epi32
#define V_XOR3(x, y, z) _mm512_ternarylogic_epi32(x, y, z, 0x96)
#define V_CH(e, f, g) _mm512_ternarylogic_epi32(e, f, g, 0xCA)
#define V_MAJ(a, b, c) _mm512_ternarylogic_epi32(a, b, c, 0xE8)
#define V_SET1(k) _mm512_set1_epi32((int)(k))
#define V_STORE(p, v) _mm512_storeu_si512(p, v)

/* 16 rows of 16 dwords → 16 vectors, vector x holding dword x of every row: 4 × 4 inside the
 * 128-bit lanes (dword j of lane L of u[4i + j] is row 4i + j's dword 4L + j), then the 4 × 4
 * transpose of 128-bit lanes across u[j], u[4 + j], u[8 + j], u[12 + j]. */
__attribute__((target("avx512f"))) static inline void transpose16x16_epi32(const __m512i r[16], __m512i out[16]) {
    __m512i t[16], u[16];
    for (int h = 0; h < 16; h += 4) {
        t[h] = _mm512_unpacklo_epi32(r[h], r[h + 1]);
        t[h + 1] = _mm512_unpackhi_epi32(r[h], r[h + 1]);
        t[h + 2] = _mm512_unpacklo_epi32(r[h + 2], r[h + 3]);
        t[h + 3] = _mm512_unpackhi_epi32(r[h + 2], r[h + 3]);
        u[h] = _mm512_unpacklo_epi64(t[h], t[h + 2]);
        u[h + 1] = _mm512_unpackhi_epi64(t[h], t[h + 2]);
        u[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    for (int j = 0; j < 4; j++) {
        const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE);
        const __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
        const __m512i v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
        out[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        out[4 + j] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
        out[8 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        out[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
    }
}

__attribute__((target("avx512f,avx512bw"))) static void compress_x16(__m512i st[8], const uint8_t *const p[16]) {
    const __m512i bswap = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)SHA256_BSWAP32));
    __m512i rows[16], w[64];
    for (int i = 0; i < 16; i++) rows[i] = _mm512_shuffle_epi8(_mm512_loadu_si512(p[i]), bswap);
    transpose16x16_epi32(rows, w);
    MB_COMPRESS(st, w);
}

/* The states of 16 lines: word x of lane i goes to digest[16x + i]. */
__attribute__((target("avx512f,avx512bw"))) static void leaf_hash_x16(const uint8_t *const line[16], leaf_shape_t sh,
                                                                    uint32_t digest[128]) {
    MB_LEAF_HASH(16, compress_x16);
}

#undef V
#undef V_ADD
#undef V_ROR
#undef V_SHR
#undef V_XOR3
#undef V_CH
#undef V_MAJ
#undef V_SET1
#undef V_STORE
#endif /* POUW_LEAF_SIMD */

/* --- a range of lines on one path --------------------------------------------------------------- */

typedef struct {
    const uint8_t *lines;
    size_t count;
    leaf_shape_t shape;
    uint8_t *out;  /* count × 32 */
    int path;      /* LEAF_* */
    int shani;     /* the single-stream compression uses SHA-NI (the CPU has it) */
    size_t chunk;  /* lines a worker takes at once, a multiple of 16 */
    size_t next;   /* shared counter of lines handed out */
} leaf_job_t;

static int leaf_lanes(int path) {
    return path == LEAF_AVX512 ? 16 : path == LEAF_AVX2 ? 8 : path == LEAF_SHANI ? 2 : 1;
}

/* Lines [first, first + n) on the job's path, n at most its lanes. */
static void leaf_group(const leaf_job_t *J, size_t first, size_t n) {
    sha256_blocks_fn single = sha256_blocks_portable;
#ifdef POUW_HAVE_SHANI
    if (J->path == LEAF_SHANI && n == 2) {
        const uint8_t *line = J->lines + first * J->shape.width;
        leaf_hash_two_ni(line, line + J->shape.width, J->shape, J->out + 32 * first, J->out + 32 * (first + 1));
        return;
    }
#endif
#ifdef POUW_LEAF_SIMD
    const int lanes = leaf_lanes(J->path);
    if (J->shani) single = sha256_blocks_ni;
    if ((J->path == LEAF_AVX512 || J->path == LEAF_AVX2) && 4 * n >= (size_t)lanes) {
        const uint8_t *line[16];
        uint32_t digest[8 * 16];
        for (int i = 0; i < lanes; i++) line[i] = J->lines + (first + ((size_t)i < n ? i : 0)) * J->shape.width;
        if (lanes == 16) leaf_hash_x16(line, J->shape, digest);
        else leaf_hash_x8(line, J->shape, digest);
        for (size_t i = 0; i < n; i++) {
            uint32_t st[8];
            for (int x = 0; x < 8; x++) st[x] = digest[x * lanes + i];
            sha256_store_be(st, J->out + 32 * (first + i));
        }
        return;
    }
#endif
    for (size_t i = first; i < first + n; i++)
        leaf_hash_one(single, J->lines + i * J->shape.width, J->shape, J->out + 32 * i);
}

static void leaf_range(const leaf_job_t *J, size_t first, size_t end) {
    const size_t lanes = (size_t)leaf_lanes(J->path);
    for (size_t i = first; i < end; i += lanes) leaf_group(J, i, end - i < lanes ? end - i : lanes);
}

/* A pool worker: chunks of lines from the shared counter. */
static void *leaf_worker(void *arg) {
    leaf_job_t *J = arg;
    for (size_t i; (i = __atomic_fetch_add(&J->next, J->chunk, __ATOMIC_RELAXED)) < J->count;)
        leaf_range(J, i, J->count - i < J->chunk ? J->count : i + J->chunk);
    return NULL;
}

#endif
