/* pattern.h - the memory pattern hello writes and checksums. Plain C with no
 * dependencies so the expected checksum can be recomputed on the host:
 *   cc -O2 -x c -DPATTERN_HOST_MAIN src/pattern.h -o /tmp/p && /tmp/p            */
#ifndef PATTERN_H
#define PATTERN_H
#include <stdint.h>

static inline uint64_t pattern_next(uint64_t x)
{
    return x * 6364136223846793005ull + 1442695040888963407ull; /* Knuth's MMIX LCG */
}

/* Fold one 64-bit word into a running checksum (order-sensitive). */
static inline uint64_t pattern_mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0x100000001b3ull; /* FNV-1a prime, applied per word */
    return (h << 13) | (h >> 51);
}

#define PATTERN_SEED 0x5eed5eed12345678ull
#define PATTERN_BYTES (4u << 20)

/* Checksum of the pattern as written (the value hello must read back). */
static inline uint64_t pattern_expected(void)
{
    uint64_t x = PATTERN_SEED, h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < PATTERN_BYTES / 8; i++) {
        x = pattern_next(x);
        h = pattern_mix(h, x ^ i);
    }
    return h;
}

#ifdef PATTERN_HOST_MAIN
#include <stdio.h>
int main(void)
{
    printf("%#llx\n", (unsigned long long)pattern_expected());
    return 0;
}
#endif
#endif
