/* SHA-256: portable C for whole short messages, and SHA-NI (x86 SHA extensions) building blocks
 * (state, 4-round groups) the kernel hashes the ticket digest ``tagged("pouw/ticket", ...)`` with,
 * its message put together in registers (PROTOCOL §4). */
#ifndef POUW_SHA256_H
#define POUW_SHA256_H

#include <stdint.h>
#include <string.h>

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static const uint32_t SHA256_IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#define SHA_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_blocks_portable(uint32_t st[8], const uint8_t *data, size_t blocks) {
    for (; blocks; blocks--, data += 64) {
        uint32_t w[64], s[8];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)data[4 * i] << 24 | (uint32_t)data[4 * i + 1] << 16 |
                   (uint32_t)data[4 * i + 2] << 8 | data[4 * i + 3];
        for (int i = 16; i < 64; i++) {
            uint32_t s0 = SHA_ROR(w[i - 15], 7) ^ SHA_ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = SHA_ROR(w[i - 2], 17) ^ SHA_ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        memcpy(s, st, sizeof s);
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = s[7] + (SHA_ROR(s[4], 6) ^ SHA_ROR(s[4], 11) ^ SHA_ROR(s[4], 25)) +
                          ((s[4] & s[5]) ^ (~s[4] & s[6])) + SHA256_K[i] + w[i];
            uint32_t t2 = (SHA_ROR(s[0], 2) ^ SHA_ROR(s[0], 13) ^ SHA_ROR(s[0], 22)) +
                          ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
            memmove(s + 1, s, 7 * sizeof s[0]);
            s[4] += t1;
            s[0] = t1 + t2;
        }
        for (int i = 0; i < 8; i++) st[i] += s[i];
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POUW_HAVE_SHANI 1

/* The SHA-NI state: ABEF and CDGH. */
typedef struct {
    __m128i abef, cdgh;
} sha256_ni_t;

__attribute__((target("sha,sse4.1,ssse3"))) static inline sha256_ni_t sha256_ni_load(const uint32_t st[8]) {
    const __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[0]), 0xB1);
    const __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&st[4]), 0x1B);
    return (sha256_ni_t){_mm_alignr_epi8(tmp, s1, 8), _mm_blend_epi16(s1, tmp, 0xF0)};
}

__attribute__((target("sha,sse4.1,ssse3"))) static inline void sha256_ni_store(sha256_ni_t s, uint32_t st[8]) {
    const __m128i tmp = _mm_shuffle_epi32(s.abef, 0x1B), s1 = _mm_shuffle_epi32(s.cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(tmp, s1, 0xF0));
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(s1, tmp, 8));
}

__attribute__((target("sha,sse4.1,ssse3"))) static inline sha256_ni_t sha256_ni_add(sha256_ni_t a, sha256_ni_t b) {
    return (sha256_ni_t){_mm_add_epi32(a.abef, b.abef), _mm_add_epi32(a.cdgh, b.cdgh)};
}

/* The 4-round groups g0 … g1 − 1 of one block whose big-endian words are w (four a vector,
 * overwritten by the schedule); a block cut into group ranges is run in order. */
__attribute__((target("sha,sse4.1,ssse3"), always_inline)) static inline void
sha256_ni_groups(sha256_ni_t *s, __m128i w[4], int g0, int g1) {
#pragma GCC unroll 16
    for (int g = g0; g < g1; g++) {
        if (g >= 4) {
            __m128i t = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
            t = _mm_add_epi32(t, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
            w[g & 3] = _mm_sha256msg2_epu32(t, w[(g + 3) & 3]);
        }
        const __m128i msg = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&SHA256_K[4 * g]));
        s->cdgh = _mm_sha256rnds2_epu32(s->cdgh, s->abef, msg);
        s->abef = _mm_sha256rnds2_epu32(s->abef, s->cdgh, _mm_shuffle_epi32(msg, 0x0E));
    }
}

/* pshufb mask: every 32-bit word's bytes reversed (little- to big-endian words). */
static const uint8_t SHA256_BSWAP32[16] = {3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12};
#endif

/* The digest: the state's words big-endian. */
static void sha256_store_be(const uint32_t st[8], uint8_t out[32]) {
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(st[i] >> 24);
        out[4 * i + 1] = (uint8_t)(st[i] >> 16);
        out[4 * i + 2] = (uint8_t)(st[i] >> 8);
        out[4 * i + 3] = (uint8_t)st[i];
    }
}

/* SHA-256 of a message of at most 119 bytes (two blocks after padding), portable. */
static void sha256_short(const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint8_t buf[128] = {0};
    size_t blocks = len + 9 <= 64 ? 1 : 2;
    uint64_t bits = (uint64_t)len * 8;
    uint32_t st[8];
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    for (int i = 0; i < 8; i++) buf[64 * blocks - 1 - i] = (uint8_t)(bits >> (8 * i));
    memcpy(st, SHA256_IV, sizeof st);
    sha256_blocks_portable(st, buf, blocks);
    sha256_store_be(st, out);
}

#endif
