/* dirty-writer - the guest side of a dirty-logging test (issue 8, in the spirit of KVM's
 * dirty_log_test): writes stamps into pseudo-random pages of a region mapped half through
 * 4 KiB pages and half through 2 MiB pages, round after round, and checks every page of
 * the region against its model after each round.
 *
 * Command line (-append): rounds=N (default 4), pages=M (region size in 4 KiB pages,
 * default 4096 = 16 MiB; each half is rounded up to a multiple of 512 pages), writes=W
 * (stamped pages per round, default M), verbose (print each round's rate in pages per
 * million TSC ticks; without it the output is deterministic).
 *
 * Stamp, written at the start of the page (both qwords):
 *     qword 0 = 0x5354414d50000000 | page index   ("STAMP", index < 2^28)
 *     qword 1 = generation (1, 2, 3 ... over the whole run: one per stamped page)
 * Page index i covers physical frame REGION_PA + i * 4096; indexes below the 4 KiB count
 * are reached through 4 KiB PTEs at 0x8000000000, the rest through 2 MiB PDEs at
 * 0x8040000000. A host harvesting the dirty log between rounds can check that every page
 * whose stamp changed since the last harvest has its bit set. */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "cmdline.h"

#define SMALL_VA   0x8000000000ull   /* PML4 slot 1, PDPT 0 */
#define LARGE_VA   0x8040000000ull   /* PML4 slot 1, PDPT 1 */
#define REGION_PA  0x2000000ull      /* 32 MiB, 2 MiB aligned */
#define STAMP_TAG  0x5354414d50000000ull
#define MAX_PAGES  (1u << 20)

static u32 gen_model[MAX_PAGES];     /* generation of each page's last stamp, 0 = never */
static u64 n_small, n_large, n_pages;

static u64 page_va(u64 i)
{
    return i < n_small ? SMALL_VA + i * 4096 : LARGE_VA + (i - n_small) * 4096;
}

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
    puts("dirty-writer: stamped writes to random pages through 4 KiB and 2 MiB mappings");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    const char *cl = cmdline_get(mbi);
    u64 rounds = 4, pages = 4096, writes;
    cmdline_u64(cl, "rounds", &rounds);
    cmdline_u64(cl, "pages", &pages);
    int verbose = cmdline_has(cl, "verbose");
    if (pages < 2)
        pages = 2;
    n_small = (pages / 2 + 511) & ~511ull; /* whole page tables; keeps the 2 MiB half aligned */
    n_large = (pages - pages / 2 + 511) & ~511ull;
    n_pages = n_small + n_large;
    writes = n_pages;
    cmdline_u64(cl, "writes", &writes);
    u64 ram_top = 0x100000ull + (u64)mbi->mem_upper * 1024;
    u64 need = REGION_PA + n_pages * 4096;
    printf("region: %llu pages (%llu through 4 KiB PTEs, %llu through %llu 2 MiB PDEs), %llu rounds of %llu writes\n",
           (unsigned long long)n_pages, (unsigned long long)n_small, (unsigned long long)n_large,
           (unsigned long long)(n_large / 512), (unsigned long long)rounds, (unsigned long long)writes);
    if (!check("the region fits in RAM and in the model (pages <= 2^20)", (mbi->flags & 1) && need <= ram_top &&
                                                                             n_pages <= MAX_PAGES))
        check_finish();

    trap_init();
    palloc_init(0x400000, 0x2000000);
    u64 pml4 = as_create(0, 0);
    for (u64 i = 0; i < n_small; i++)
        *pt_entry(pml4, page_va(i), 1, 1, PTE_P | PTE_RW) = (REGION_PA + i * 4096) | PTE_P | PTE_RW;
    for (u64 j = 0; j < n_large / 512; j++)
        *pt_entry(pml4, LARGE_VA + j * 0x200000, 2, 1, PTE_P | PTE_RW) =
            (REGION_PA + (n_small + j * 512) * 4096) | PTE_P | PTE_RW | PTE_PS;
    memset((void *)(uintptr_t)REGION_PA, 0, n_pages * 4096);
    write_cr3(pml4);

    u64 rng = 0x9e3779b97f4a7c15ull, gen = 0, bad_total = 0;
    for (u64 r = 1; r <= rounds; r++) {
        u64 t0 = rdtsc();
        for (u64 w = 0; w < writes; w++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            u64 i = (rng >> 20) % n_pages;
            volatile u64 *p = (volatile u64 *)(uintptr_t)page_va(i);
            p[0] = STAMP_TAG | i;
            p[1] = ++gen;
            gen_model[i] = (u32)gen;
        }
        u64 t1 = rdtsc();
        u64 stamped = 0, bad = 0;
        for (u64 i = 0; i < n_pages; i++) {
            const volatile u64 *p = (const volatile u64 *)(uintptr_t)page_va(i);
            if (gen_model[i]) {
                stamped++;
                bad += p[0] != (STAMP_TAG | i) || p[1] != gen_model[i];
            } else {
                bad += p[0] != 0 || p[1] != 0;
            }
        }
        bad_total += bad;
        printf("round %llu: %llu writes, %llu pages stamped so far, %llu mismatches\n", (unsigned long long)r,
               (unsigned long long)writes, (unsigned long long)stamped, (unsigned long long)bad);
        if (verbose && t1 > t0)
            printf("round %llu: %llu pages per million TSC ticks\n", (unsigned long long)r,
                   (unsigned long long)(writes * 1000000ull / (t1 - t0)));
    }
    write_cr3((u64)(uintptr_t)boot_pml4);
    u64 bad_phys = 0;
    for (u64 i = 0; i < n_pages; i++) {
        const u64 *p = phys_ptr(REGION_PA + i * 4096);
        if (gen_model[i])
            bad_phys += p[0] != (STAMP_TAG | i) || p[1] != gen_model[i];
    }
    check_eq("every page holds its last stamp (or zero) after every round", bad_total, 0);
    check_eq("every stamped frame holds its stamp (identity map)", bad_phys, 0);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
