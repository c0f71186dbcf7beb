/* bench-cpu-work.h - the integer workload of bench-cpu, in plain C with no
 * dependencies so the expected results can be recomputed on the host:
 *   cc -O2 -x c -DBENCH_HOST_MAIN src/bench-cpu-work.h -o /tmp/b && /tmp/b           */
#ifndef BENCH_CPU_WORK_H
#define BENCH_CPU_WORK_H
#include <stdint.h>

#define BENCH_ROUNDS 24

/* 1. LCG + xorshift mixing, 64-bit multiplies. */
static uint64_t bench_lcg(uint32_t n, uint64_t seed)
{
    uint64_t x = seed, acc = 0;
    for (uint32_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t y = x ^ (x >> 29);
        y ^= y << 17;
        acc += y * (i | 1);
    }
    return acc;
}

/* 2. CRC-32 (IEEE, reflected), bit by bit: shifts, xors, data-dependent branches. */
static uint32_t bench_crc32(const uint8_t *p, uint32_t len, uint32_t crc)
{
    crc = ~crc;
    for (uint32_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            if (crc & 1)
                crc = (crc >> 1) ^ 0xEDB88320u;
            else
                crc >>= 1;
        }
    }
    return ~crc;
}

/* 3. Sieve of Eratosthenes over [0, n): byte stores, nested loops. Returns the
 * prime count; *sum gets the sum of all primes. */
static uint32_t bench_sieve(uint8_t *comp, uint32_t n, uint64_t *sum)
{
    for (uint32_t i = 0; i < n; i++)
        comp[i] = 0;
    uint32_t count = 0;
    uint64_t s = 0;
    for (uint32_t i = 2; i < n; i++) {
        if (comp[i])
            continue;
        count++;
        s += i;
        for (uint64_t j = (uint64_t)i * i; j < n; j += i)
            comp[j] = 1;
    }
    *sum = s;
    return count;
}

/* 4. Divides and remainders (signed and unsigned, 32- and 64-bit), gcd, Collatz. */
static uint64_t bench_divmod(uint32_t n)
{
    uint64_t acc = 0;
    for (uint32_t i = 1; i <= n; i++) {
        uint64_t a = (uint64_t)i * 2654435761u + 12345, b = i % 97 + 3;
        acc += a / b + a % (b + 7);
        int64_t sa = (int64_t)(a ^ 0x5555) - (int64_t)(1ull << 40);
        int64_t sb = -(int64_t)(i % 13) - 1;
        acc += (uint64_t)(sa / sb) ^ (uint64_t)(sa % sb);
        uint32_t u = (uint32_t)a, v = (uint32_t)b * 7 + 1;
        while (v) { /* gcd */
            uint32_t t = u % v;
            u = v;
            v = t;
        }
        acc += u;
        uint64_t c = i, steps = 0; /* Collatz: branchy */
        while (c != 1 && steps < 200) {
            c = (c & 1) ? 3 * c + 1 : c >> 1;
            steps++;
        }
        acc += steps;
    }
    return acc;
}

struct bench_result {
    uint64_t lcg;
    uint32_t crc;
    uint32_t primes;
    uint64_t prime_sum;
    uint64_t divmod;
};

#define BENCH_SIEVE_N (1u << 20)
#define BENCH_CRC_LEN (64u << 10)

/* buf needs BENCH_SIEVE_N bytes. */
static void bench_run(struct bench_result *r, uint8_t *buf)
{
    r->lcg = 0;
    r->crc = 0;
    r->divmod = 0;
    for (uint32_t round = 0; round < BENCH_ROUNDS; round++) {
        r->lcg += bench_lcg(1u << 20, 0x1234 + round);
        uint64_t x = 0xabcdef + round;
        for (uint32_t i = 0; i < BENCH_CRC_LEN; i++) {
            x = x * 6364136223846793005ull + 1;
            buf[i] = (uint8_t)(x >> 56);
        }
        r->crc ^= bench_crc32(buf, BENCH_CRC_LEN, round);
        r->primes = bench_sieve(buf, BENCH_SIEVE_N, &r->prime_sum);
        r->divmod += bench_divmod(40000);
    }
}

#ifdef BENCH_HOST_MAIN
#include <stdio.h>
static uint8_t host_buf[BENCH_SIEVE_N];
int main(void)
{
    struct bench_result r;
    bench_run(&r, host_buf);
    printf("#define BENCH_EXPECT_LCG       0x%016llxull\n", (unsigned long long)r.lcg);
    printf("#define BENCH_EXPECT_CRC       0x%08xu\n", r.crc);
    printf("#define BENCH_EXPECT_PRIMES    %uu\n", r.primes);
    printf("#define BENCH_EXPECT_PRIME_SUM %lluull\n", (unsigned long long)r.prime_sum);
    printf("#define BENCH_EXPECT_DIVMOD    0x%016llxull\n", (unsigned long long)r.divmod);
    return 0;
}
#endif
#endif
