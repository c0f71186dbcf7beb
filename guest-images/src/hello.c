/* hello - the smallest useful image: greeting, multiboot magic and memory sizes,
 * a 4 MiB pattern written above the kernel, read back and checksummed. */
#include "libc.h"
#include "pattern.h"

/* pattern_expected() computed on the host (see pattern.h). */
#define HELLO_EXPECTED_CHECKSUM 0x1dd83a18cf231422ull

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
    puts("hello from shadow86 guest image 'hello'");

    check_eq("multiboot magic is 0x2BADB002", magic, MULTIBOOT_BOOTLOADER_MAGIC);

    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    int have_mem = check("multiboot info has mem_lower/mem_upper (flags bit 0)", mbi->flags & 1);
    if (have_mem)
        printf("mem_lower = %u KiB, mem_upper = %u KiB\n", mbi->mem_lower, mbi->mem_upper);

    /* 4 MiB starting at the first 1 MiB boundary above the kernel. */
    uint64_t base = ((uint64_t)(uintptr_t)_end + 0xfffff) & ~0xfffffull;
    uint64_t top = base + PATTERN_BYTES;
    printf("pattern area: %#llx - %#llx\n", (unsigned long long)base, (unsigned long long)top);
    check("pattern area lies inside mem_upper", have_mem && top <= 0x100000ull + (uint64_t)mbi->mem_upper * 1024);

    volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)base;
    uint64_t n = PATTERN_BYTES / 8, x = PATTERN_SEED;
    for (uint64_t i = 0; i < n; i++) {
        x = pattern_next(x);
        p[i] = x ^ i;
    }

    uint64_t h = 0xcbf29ce484222325ull, mismatches = 0;
    x = PATTERN_SEED;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t w = p[i];
        x = pattern_next(x);
        if (w != (x ^ i))
            mismatches++;
        h = pattern_mix(h, w);
    }
    printf("pattern checksum = %#llx\n", (unsigned long long)h);
    check_eq("pattern reads back word for word", mismatches, 0);
    check_eq("pattern checksum matches the host-computed value", h, HELLO_EXPECTED_CHECKSUM);

    check_finish();
}
