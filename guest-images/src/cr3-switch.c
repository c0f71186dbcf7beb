/* cr3-switch - ping-pong between N = 2..8 address spaces, each with its own 4-level
 * tables mapping the same virtual pages to its own physical frames. Every switch
 * loads CR3, reads a page at the shared virtual address, checks that the space sees
 * its own data (against a C model), writes new data, and checks the space's id page.
 * "rounds=N" on the command line multiplies the switches (benchmarks; default 1). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "cmdline.h"

#define MAX_SPACES 8
#define PAGES_PER_SPACE 16
#define SWITCHES_PER_ROUND 5000
#define TEST_VA 0x8000000000ull        /* PML4 slot 1 */
#define ID_VA (TEST_VA + 0x100000ull)  /* one more page per space, holding its id */
#define ID_MAGIC 0x1d00000000000000ull

static u64 pml4[MAX_SPACES];
static u64 frame[MAX_SPACES][PAGES_PER_SPACE];
static u64 model[MAX_SPACES][PAGES_PER_SPACE]; /* expected first qword of each frame */

static u64 mix(u64 x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("cr3-switch: ping-pong between 2..8 address spaces");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    u64 switches = SWITCHES_PER_ROUND * cmdline_rounds(mbi);
    trap_init();
    palloc_init(0x800000, 0x1000000); /* 8-16 MiB: tables and frames */

    const u64 upper = PTE_P | PTE_RW;
    for (int s = 0; s < MAX_SPACES; s++) {
        pml4[s] = as_create(0, 0);
        for (int p = 0; p < PAGES_PER_SPACE; p++) {
            frame[s][p] = palloc_page();
            model[s][p] = mix(((u64)s << 32) | (u64)p);
            phys_ptr(frame[s][p])[0] = model[s][p];
            *pt_entry(pml4[s], TEST_VA + (u64)p * 4096, 1, 1, upper) = frame[s][p] | PTE_P | PTE_RW;
        }
        u64 id = palloc_page();
        phys_ptr(id)[0] = ID_MAGIC | (u64)s;
        *pt_entry(pml4[s], ID_VA, 1, 1, upper) = id | PTE_P | PTE_RW;
    }
    printf("%d address spaces, %d pages each, %lu page-table and data pages\n", MAX_SPACES,
           PAGES_PER_SPACE, palloc_used());

    u64 boot_cr3 = read_cr3(), rng = 0x2545f4914f6cdd1dull;
    for (int n = 2; n <= MAX_SPACES; n++) {
        u64 bad_data = 0, bad_id = 0;
        for (u64 i = 0; i < switches; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            /* Mostly round-robin, sometimes a random space: both orders matter for root caches. */
            int s = (rng >> 60) < 12 ? (int)(i % n) : (int)((rng >> 33) % n);
            int p = (int)((rng >> 40) % PAGES_PER_SPACE);
            write_cr3(pml4[s]);
            volatile u64 *va = (volatile u64 *)(uintptr_t)(TEST_VA + (u64)p * 4096);
            if (*va != model[s][p])
                bad_data++;
            model[s][p] = mix(model[s][p] ^ i);
            *va = model[s][p];
            if (*(volatile u64 *)(uintptr_t)ID_VA != (ID_MAGIC | (u64)s))
                bad_id++;
        }
        write_cr3(boot_cr3);
        u64 bad_phys = 0;
        for (int s = 0; s < MAX_SPACES; s++)
            for (int p = 0; p < PAGES_PER_SPACE; p++)
                if (phys_ptr(frame[s][p])[0] != model[s][p])
                    bad_phys++;
        printf("N=%d: %lu switches, data mismatches %lu, id mismatches %lu, frame mismatches %lu\n", n,
               switches, bad_data, bad_id, bad_phys);
        char name[64];
        snprintf(name, sizeof name, "N=%d: every space sees its own pages and id", n);
        check(name, bad_data == 0 && bad_id == 0 && bad_phys == 0);
    }
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
