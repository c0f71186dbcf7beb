/* bench-cpu - a CPU-bound integer workload (LCG, bitwise CRC-32, sieve, divides,
 * branches) for MIPS measurements. Checks its results against tables computed by
 * running the same C code (bench-cpu-work.h) on the host.
 * The multiboot command line may hold "rounds=N" (1..24, default 24): one round is
 * about 70 million instructions (24 rounds: ~0.55 s on QEMU TCG). */
#include "libc.h"
#include "bench-cpu-work.h"
#include "bench-cpu-expect.h"

static uint8_t work_buf[BENCH_SIEVE_N];

/* "rounds=N" anywhere in the command line, else the default. */
static uint32_t parse_rounds(const struct multiboot_info *mbi)
{
    if (!(mbi->flags & (1u << 2)) || !mbi->cmdline)
        return BENCH_MAX_ROUNDS;
    const char *s = (const char *)(uintptr_t)mbi->cmdline;
    for (; *s; s++) {
        if (memcmp(s, "rounds=", 7) == 0) {
            uint32_t n = 0;
            for (s += 7; *s >= '0' && *s <= '9' && n < 1000; s++)
                n = n * 10 + (uint32_t)(*s - '0');
            return n >= 1 && n <= BENCH_MAX_ROUNDS ? n : BENCH_MAX_ROUNDS;
        }
    }
    return BENCH_MAX_ROUNDS;
}

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
    uint32_t rounds = magic == MULTIBOOT_BOOTLOADER_MAGIC
                          ? parse_rounds((const struct multiboot_info *)(uintptr_t)mbi_addr)
                          : BENCH_MAX_ROUNDS;
    printf("bench-cpu: integer workload, rounds=%u\n", rounds);
    struct bench_result r = {0, 0, 0, 0, 0};
    for (uint32_t i = 0; i < rounds; i++)
        bench_round(&r, work_buf, i);
    printf("lcg       = %#018lx\n", r.lcg);
    printf("crc32     = %#010x\n", r.crc);
    printf("primes    = %u (sum %lu)\n", r.primes, r.prime_sum);
    printf("divmod    = %#018lx\n", r.divmod);
    check_eq("lcg result", r.lcg, bench_expect_lcg[rounds - 1]);
    check_eq("crc32 result", r.crc, bench_expect_crc[rounds - 1]);
    check_eq("prime count below 2^20", r.primes, BENCH_EXPECT_PRIMES);
    check_eq("prime sum below 2^20", r.prime_sum, BENCH_EXPECT_PRIME_SUM);
    check_eq("divmod result", r.divmod, bench_expect_divmod[rounds - 1]);
    check_finish();
}
