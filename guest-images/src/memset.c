/* memset - demand-map 192 MiB through 4 KiB PTEs built by the #PF handler, memset it
 * page by page (rep stosb, faulting on the first byte of every page), then verify
 * every qword through the new mapping and the first qword of every frame through the
 * identity map. Needs 256 MiB of RAM (QEMU -m 256). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"

#define REGION_VA    0x8000000000ull          /* PML4 slot 1 */
#define REGION_BYTES (192ull << 20)
#define REGION_PAGES (REGION_BYTES >> 12)
#define FRAMES_BASE  0x1000000ull             /* data frames: 16 MiB .. 208 MiB */
#define TABLES_BASE  0x400000ull              /* page tables: 4 MiB .. 8 MiB */
#define TABLES_END   0x800000ull

static u64 as_pml4, next_frame, demand_faults, other_faults;

static u8 pattern_byte(u64 page) { return (u8)(page * 7 + 1) ^ 0x5a; }

/* #PF in the region on a not-present page: give it the next frame and retry. */
static int demand_map(struct trap_frame *f, u64 cr2)
{
    if (f->vector != 14 || cr2 < REGION_VA || cr2 >= REGION_VA + REGION_BYTES || (f->err & PTE_P))
        return 0;
    u64 *pte = pt_entry(as_pml4, cr2, 1, 1, PTE_P | PTE_RW);
    if (*pte & PTE_P) { /* already present: a spurious or repeated fault is a failure */
        other_faults++;
        return 0;
    }
    *pte = next_frame | PTE_P | PTE_RW;
    next_frame += 4096;
    demand_faults++;
    return 1;
}

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
    puts("memset: demand-map and memset 192 MiB through 4 KiB PTEs");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    u64 ram_top = 0x100000ull + (u64)mbi->mem_upper * 1024;
    if (!check("RAM reaches 208 MiB (run with -m 256)", (mbi->flags & 1) && ram_top >= FRAMES_BASE + REGION_BYTES))
        check_finish();

    trap_init();
    palloc_init(TABLES_BASE, TABLES_END);
    as_pml4 = as_create(0, 0);
    next_frame = FRAMES_BASE;
    trap_hook = demand_map;
    write_cr3(as_pml4);

    for (u64 p = 0; p < REGION_PAGES; p++)
        memset((void *)(uintptr_t)(REGION_VA + (p << 12)), pattern_byte(p), 4096);

    u64 bad_pages = 0, bad_frames = 0;
    for (u64 p = 0; p < REGION_PAGES; p++) {
        const volatile u64 *q = (const volatile u64 *)(uintptr_t)(REGION_VA + (p << 12));
        u64 want = 0x0101010101010101ull * pattern_byte(p), diff = 0;
        for (int i = 0; i < 512; i++)
            diff |= q[i] ^ want;
        if (diff)
            bad_pages++;
        if (phys_ptr(FRAMES_BASE + (p << 12))[0] != want) /* frames were handed out in order */
            bad_frames++;
    }
    write_cr3((u64)(uintptr_t)boot_pml4);
    trap_hook = 0;

    printf("demand faults %lu, page-table pages %lu, bad pages %lu, bad frames %lu\n", demand_faults,
           palloc_used(), bad_pages, bad_frames);
    check_eq("one demand fault per page (49152)", demand_faults, REGION_PAGES);
    check_eq("no repeated fault on a present page", other_faults, 0);
    check_eq("page-table pages: PML4 + PDPT + PD + 96 PTs", palloc_used(), 1 + 1 + 1 + REGION_PAGES / 512);
    check_eq("every qword of every page reads back through the new PTEs", bad_pages, 0);
    check_eq("every frame holds its page's pattern (identity map)", bad_frames, 0);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
