/* RFC 6962 Merkle roots over already-hashed nodes (PROTOCOL §2), for a matrix's commitment: the
 * root of every run of `group` consecutive hashes, the last run possibly shorter (a matrix's
 * group roots with group 32, its whole root with group = count).
 *
 * A node is SHA-256(0x01 || left || right): a level of the tree is a row of 64-byte lines (the
 * hashes side by side, in pairs) hashed by the leaf code under the prefix 0x01, so the SIMD
 * paths take 16 or 8 nodes at once.  Where the runs are whole and a power of two long, each
 * level of all of them is hashed in one pass; any other run splits at the largest power of two
 * below its length, as RFC 6962 does. */
#ifndef POUW_MERKLE_H
#define POUW_MERKLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "_leafhash.h"

typedef struct {
    int path;  /* LEAF_* */
    int shani; /* the single-stream compression uses SHA-NI */
} merkle_t;

/* out[i] = SHA-256(0x01 || in[2i] || in[2i + 1]) for i < pairs (out does not overlap in). */
static void merkle_level(const merkle_t *M, const uint8_t *in, size_t pairs, uint8_t *out) {
    const leaf_job_t J = {.lines = in, .count = pairs, .shape = leaf_shape(64, 0x01), .out = out,
                          .path = M->path, .shani = M->shani};
    leaf_range(&J, 0, pairs);
}

static int is_power_of_two(size_t n) { return n && !(n & (n - 1)); }

/* The root of n ≥ 1 hashes; scratch holds n hashes. */
static void merkle_root(const merkle_t *M, const uint8_t *h, size_t n, uint8_t *scratch, uint8_t out[32]) {
    if (is_power_of_two(n)) {
        const uint8_t *in = h;
        for (uint8_t *dst = scratch; n > 1; in = dst, dst += 32 * (n / 2), n /= 2) merkle_level(M, in, n / 2, dst);
        memcpy(out, in, 32);
        return;
    }
    size_t k = 1;
    while (2 * k < n) k *= 2; /* the largest power of two below n */
    uint8_t pair[64];
    merkle_root(M, h, k, scratch, pair);
    merkle_root(M, h + 32 * k, n - k, scratch, pair + 32);
    merkle_level(M, pair, 1, out);
}

/* The roots of the runs of `group` hashes of h (count of them) into out, one per run (the last
 * run may be shorter); scratch holds count hashes. */
static void merkle_roots(const merkle_t *M, const uint8_t *h, size_t count, size_t group, uint8_t *scratch,
                         uint8_t *out) {
    const size_t whole = is_power_of_two(group) ? count / group : 0;
    if (whole) { /* every whole run, a level of all of them at a time */
        const uint8_t *in = h;
        uint8_t *dst = scratch;
        for (size_t len = group; len > 1; len /= 2) {
            const size_t pairs = whole * len / 2;
            merkle_level(M, in, pairs, dst);
            in = dst, dst += 32 * pairs;
        }
        memcpy(out, in, 32 * whole);
    }
    for (size_t first = whole * group; first < count; first += group)
        merkle_root(M, h + 32 * first, count - first < group ? count - first : group, scratch, out + 32 * (first / group));
}

#endif
