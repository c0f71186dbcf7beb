/* bench-cpu-work.h - the integer workload of bench-cpu, in plain C with no
 * dependencies so the expected results can be recomputed on the host:
 *   cc -O2 -x c -DBENCH_HOST_MAIN src/bench-cpu-work.h -o /tmp/b && /tmp/b \
 *       > src/bench-cpu-expect.h                                                      */
#ifndef BENCH_CPU_WORK_H
#define BENCH_CPU_WORK_H
#include <stdint.h>

#define BENCH_MAX_ROUNDS 24 /* the default; "rounds=N" on the command line picks 1..24 */

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

/* One round of the workload, folded into *r. buf needs BENCH_SIEVE_N bytes. */
static void bench_round(struct bench_result *r, uint8_t *buf, uint32_t round)
{
    r->lcg += bench_lcg(1u << 20, 0x1234 + round);
    uint64_t x = 0xabcdef + round;
    for (uint32_t i = 0; i < BENCH_CRC_LEN; i++) {
        x = x * 6364136223846793005ull + 1;
        buf[i] = (uint8_t)(x >> 56);
    }
    r->crc ^= bench_crc32(buf, BENCH_CRC_LEN, round);
    r->primes = bench_sieve(buf, BENCH_SIEVE_N, &r->prime_sum);
    r->divmod += bench_divmod(40000 + round);
}

#ifdef BENCH_HOST_MAIN
/* Prints the expected results after 1..BENCH_MAX_ROUNDS rounds as C tables. */
#include <stdio.h>
static uint8_t host_buf[BENCH_SIEVE_N];
int main(void)
{
    struct bench_result r = {0, 0, 0, 0, 0};
    uint64_t lcg[BENCH_MAX_ROUNDS], divmod[BENCH_MAX_ROUNDS];
    uint32_t crc[BENCH_MAX_ROUNDS];
    for (uint32_t i = 0; i < BENCH_MAX_ROUNDS; i++) {
        bench_round(&r, host_buf, i);
        lcg[i] = r.lcg;
        crc[i] = r.crc;
        divmod[i] = r.divmod;
    }
    printf("#define BENCH_EXPECT_PRIMES    %uu\n", r.primes);
    printf("#define BENCH_EXPECT_PRIME_SUM %lluull\n", (unsigned long long)r.prime_sum);
    printf("static const uint64_t bench_expect_lcg[BENCH_MAX_ROUNDS] = {");
    for (int i = 0; i < BENCH_MAX_ROUNDS; i++)
        printf("%s0x%016llxull", i == 0 ? "\n    " : i % 3 ? ", " : ",\n    ", (unsigned long long)lcg[i]);
    printf("\n};\nstatic const uint32_t bench_expect_crc[BENCH_MAX_ROUNDS] = {");
    for (int i = 0; i < BENCH_MAX_ROUNDS; i++)
        printf("%s0x%08xu", i == 0 ? "\n    " : i % 6 ? ", " : ",\n    ", crc[i]);
    printf("\n};\nstatic const uint64_t bench_expect_divmod[BENCH_MAX_ROUNDS] = {");
    for (int i = 0; i < BENCH_MAX_ROUNDS; i++)
        printf("%s0x%016llxull", i == 0 ? "\n    " : i % 3 ? ", " : ",\n    ", (unsigned long long)divmod[i]);
    printf("\n};\n");
    return 0;
}
#endif
#endif
