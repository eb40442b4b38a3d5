/* SHAKE-128 (FIPS 202) for the noise XOF X(seed, label, n) = SHAKE128(seed || label)[0:n]
 * (PROTOCOL §4), so that the kernel threads expand the noise themselves, in parallel.
 * Plain 64-bit Keccak-f[1600] for one stream, and (x86) an AVX2 version that runs four
 * independent streams in the four 64-bit lanes of each state vector — the noise of four
 * tile-rows or tile-columns at once, about 3x faster per byte than one stream — and an AVX-512
 * version that runs eight. */
#ifndef POUW_SHAKE128_H
#define POUW_SHAKE128_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { SHAKE128_RATE = 168 };

static const uint64_t KECCAK_RC[24] = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};

/* rho offsets and pi positions along the lane cycle starting at lane 1 */
static const uint8_t KECCAK_RHO[24] = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                                       27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
static const uint8_t KECCAK_PI[24] = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                                      15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

/* Unrolled, the lane cycle's table indices become constants and the state stays in registers. */
#define KECCAK_UNROLL _Pragma("GCC unroll 24")

static inline uint64_t keccak_rol(uint64_t x, int n) { return (x << n) | (x >> (64 - n)); }

static void keccak_f1600(uint64_t s[25]) {
    for (int round = 0; round < 24; round++) {
        uint64_t c[5], b[5];
        for (int x = 0; x < 5; x++) c[x] = s[x] ^ s[x + 5] ^ s[x + 10] ^ s[x + 15] ^ s[x + 20]; /* theta */
        for (int x = 0; x < 5; x++) {
            const uint64_t d = c[(x + 4) % 5] ^ keccak_rol(c[(x + 1) % 5], 1);
            for (int y = 0; y < 25; y += 5) s[y + x] ^= d;
        }
        uint64_t carry = s[1]; /* rho and pi */
        KECCAK_UNROLL for (int t = 0; t < 24; t++) {
            const uint64_t next = s[KECCAK_PI[t]];
            s[KECCAK_PI[t]] = keccak_rol(carry, KECCAK_RHO[t]);
            carry = next;
        }
        for (int y = 0; y < 25; y += 5) { /* chi */
            for (int x = 0; x < 5; x++) b[x] = s[y + x];
            for (int x = 0; x < 5; x++) s[y + x] = b[x] ^ (~b[(x + 1) % 5] & b[(x + 2) % 5]);
        }
        s[0] ^= KECCAK_RC[round]; /* iota */
    }
}

/* The padded single block of a short input (inlen < 168) as 21 little-endian lanes. */
static void shake128_block(const uint8_t *in, size_t inlen, uint64_t lanes[SHAKE128_RATE / 8]) {
    uint8_t block[SHAKE128_RATE] = {0};
    memcpy(block, in, inlen);
    block[inlen] ^= 0x1F; /* SHAKE domain bits and the first pad bit */
    block[SHAKE128_RATE - 1] ^= 0x80;
    for (int i = 0; i < SHAKE128_RATE / 8; i++) {
        lanes[i] = 0;
        for (int b = 7; b >= 0; b--) lanes[i] = lanes[i] << 8 | block[8 * i + b];
    }
}

/* out[0:outlen] = SHAKE128(in[0:inlen]) for a short input (inlen < 168). */
static void shake128(const uint8_t *in, size_t inlen, uint8_t *out, size_t outlen) {
    uint64_t s[25] = {0};
    shake128_block(in, inlen, s);
    for (;;) {
        keccak_f1600(s);
        const size_t take = outlen < SHAKE128_RATE ? outlen : SHAKE128_RATE;
        for (size_t i = 0; i < take; i++) out[i] = (uint8_t)(s[i / 8] >> (8 * (i % 8)));
        out += take, outlen -= take;
        if (!outlen) return;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

__attribute__((target("avx2"))) static inline __m256i keccak_rol4(__m256i x, int n) {
    return _mm256_or_si256(_mm256_slli_epi64(x, n), _mm256_srli_epi64(x, 64 - n));
}

/* keccak_f1600 on four states at once, lane l of s[i] being word i of state l. */
__attribute__((target("avx2"))) static void keccak_f1600_x4(__m256i s[25]) {
    for (int round = 0; round < 24; round++) {
        __m256i c[5], b[5];
        for (int x = 0; x < 5; x++)
            c[x] = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(s[x], s[x + 5]), _mm256_xor_si256(s[x + 10], s[x + 15])),
                                    s[x + 20]);
        for (int x = 0; x < 5; x++) {
            const __m256i d = _mm256_xor_si256(c[(x + 4) % 5], keccak_rol4(c[(x + 1) % 5], 1));
            for (int y = 0; y < 25; y += 5) s[y + x] = _mm256_xor_si256(s[y + x], d);
        }
        __m256i carry = s[1];
        KECCAK_UNROLL for (int t = 0; t < 24; t++) {
            const __m256i next = s[KECCAK_PI[t]];
            s[KECCAK_PI[t]] = keccak_rol4(carry, KECCAK_RHO[t]);
            carry = next;
        }
        for (int y = 0; y < 25; y += 5) {
            for (int x = 0; x < 5; x++) b[x] = s[y + x];
            for (int x = 0; x < 5; x++) s[y + x] = _mm256_xor_si256(b[x], _mm256_andnot_si256(b[(x + 1) % 5], b[(x + 2) % 5]));
        }
        s[0] = _mm256_xor_si256(s[0], _mm256_set1_epi64x((long long)KECCAK_RC[round]));
    }
}

/* out[l][0:outlen] = SHAKE128(in[l][0:inlen]) for l < 4, inputs short (inlen < 168). */
__attribute__((target("avx2")))
static void shake128_x4(const uint8_t *const in[4], size_t inlen, uint8_t *const out[4], size_t outlen) {
    uint64_t lanes[4][SHAKE128_RATE / 8], words[25][4];
    __m256i s[25];
    for (int l = 0; l < 4; l++) shake128_block(in[l], inlen, lanes[l]);
    for (int i = 0; i < 25; i++)
        s[i] = i < SHAKE128_RATE / 8 ? _mm256_set_epi64x((long long)lanes[3][i], (long long)lanes[2][i],
                                                         (long long)lanes[1][i], (long long)lanes[0][i])
                                     : _mm256_setzero_si256();
    for (size_t done = 0; done < outlen; done += SHAKE128_RATE) {
        keccak_f1600_x4(s);
        const size_t take = outlen - done < SHAKE128_RATE ? outlen - done : SHAKE128_RATE;
        for (int i = 0; i < SHAKE128_RATE / 8; i++) _mm256_storeu_si256((__m256i *)words[i], s[i]);
        for (int l = 0; l < 4; l++) /* x86 is little-endian: a word's bytes are the stream's bytes */
            for (size_t i = 0; i < take; i += 8)
                memcpy(out[l] + done + i, &words[i / 8][l], take - i < 8 ? take - i : 8);
    }
}

/* keccak_f1600 on eight states at once (AVX-512: lane l of s[i] is word i of state l), with
 * rotates and three-input logic (vpternlogq) in single instructions. */
__attribute__((target("avx512f"))) static void keccak_f1600_x8(__m512i s[25]) {
    for (int round = 0; round < 24; round++) {
        __m512i c[5], b[5];
        for (int x = 0; x < 5; x++) /* theta; 0x96: a ^ b ^ c */
            c[x] = _mm512_ternarylogic_epi64(_mm512_ternarylogic_epi64(s[x], s[x + 5], s[x + 10], 0x96), s[x + 15],
                                             s[x + 20], 0x96);
        for (int x = 0; x < 5; x++) {
            const __m512i d = _mm512_xor_si512(c[(x + 4) % 5], _mm512_rol_epi64(c[(x + 1) % 5], 1));
            for (int y = 0; y < 25; y += 5) s[y + x] = _mm512_xor_si512(s[y + x], d);
        }
        __m512i carry = s[1];
        KECCAK_UNROLL for (int t = 0; t < 24; t++) {
            const __m512i next = s[KECCAK_PI[t]];
            s[KECCAK_PI[t]] = _mm512_rol_epi64(carry, KECCAK_RHO[t]);
            carry = next;
        }
        for (int y = 0; y < 25; y += 5) { /* chi; 0xD2: a ^ (~b & c) */
            for (int x = 0; x < 5; x++) b[x] = s[y + x];
            for (int x = 0; x < 5; x++)
                s[y + x] = _mm512_ternarylogic_epi64(b[x], b[(x + 1) % 5], b[(x + 2) % 5], 0xD2);
        }
        s[0] = _mm512_xor_si512(s[0], _mm512_set1_epi64((long long)KECCAK_RC[round]));
    }
}

/* out[l][0:outlen] = SHAKE128(in[l][0:inlen]) for l < 8, inputs short (inlen < 168). */
__attribute__((target("avx512f")))
static void shake128_x8(const uint8_t *const in[8], size_t inlen, uint8_t *const out[8], size_t outlen) {
    uint64_t lanes[8][SHAKE128_RATE / 8], words[SHAKE128_RATE / 8][8];
    __m512i s[25];
    for (int l = 0; l < 8; l++) shake128_block(in[l], inlen, lanes[l]);
    for (int i = 0; i < 25; i++) {
        long long w[8] = {0};
        for (int l = 0; i < SHAKE128_RATE / 8 && l < 8; l++) w[l] = (long long)lanes[l][i];
        s[i] = _mm512_loadu_si512(w);
    }
    for (size_t done = 0; done < outlen; done += SHAKE128_RATE) {
        keccak_f1600_x8(s);
        const size_t take = outlen - done < SHAKE128_RATE ? outlen - done : SHAKE128_RATE;
        for (int i = 0; i < SHAKE128_RATE / 8; i++) _mm512_storeu_si512(words[i], s[i]);
        for (int l = 0; l < 8; l++)
            for (size_t i = 0; i < take; i += 8)
                memcpy(out[l] + done + i, &words[i / 8][l], take - i < 8 ? take - i : 8);
    }
}
#endif

#endif
