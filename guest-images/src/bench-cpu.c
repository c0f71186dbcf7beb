/* bench-cpu - a CPU-bound integer workload (LCG, bitwise CRC-32, sieve, divides,
 * branches) for MIPS measurements. Checks its results against constants computed by
 * running the same C code (bench-cpu-work.h) on the host. */
#include "libc.h"
#include "bench-cpu-work.h"

/* Output of: cc -O2 -x c -DBENCH_HOST_MAIN src/bench-cpu-work.h && ./a.out */
#define BENCH_EXPECT_LCG       0x91bd7ebb9baeae80ull
#define BENCH_EXPECT_CRC       0xc9e0c229u
#define BENCH_EXPECT_PRIMES    82025u
#define BENCH_EXPECT_PRIME_SUM 41162256126ull
#define BENCH_EXPECT_DIVMOD    0x7164f5a372cf7e28ull

static uint8_t work_buf[BENCH_SIEVE_N];

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("bench-cpu: integer workload");
    struct bench_result r;
    bench_run(&r, work_buf);
    printf("lcg       = %#018llx\n", (unsigned long long)r.lcg);
    printf("crc32     = %#010x\n", r.crc);
    printf("primes    = %u (sum %llu)\n", r.primes, (unsigned long long)r.prime_sum);
    printf("divmod    = %#018llx\n", (unsigned long long)r.divmod);
    check_eq("lcg result", r.lcg, BENCH_EXPECT_LCG);
    check_eq("crc32 result", r.crc, BENCH_EXPECT_CRC);
    check_eq("prime count below 2^20", r.primes, BENCH_EXPECT_PRIMES);
    check_eq("prime sum below 2^20", r.prime_sum, BENCH_EXPECT_PRIME_SUM);
    check_eq("divmod result", r.divmod, BENCH_EXPECT_DIVMOD);
    check_finish();
}
