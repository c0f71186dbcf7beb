/* demand-fault-linux - demand-fault.c with the PTEs written the way Linux writes them:
 * the accessed bit always set (x86's PAGE_* protections include _PAGE_ACCESSED) and the
 * dirty bit set when the fault is a write (do_anonymous_page / do_wp_page: pte_mkdirty).
 * KVM's FNAME(update_pte) (seed 002) installs an spte only for a present, accessed gpte
 * and keeps it read-only while the gpte is clean, so this is the pattern where seed 002
 * removes the re-fault: fault -> PTE write -> re-access costs 2 exits instead of 3.
 * (issue 5; demand-fault.c itself writes PTEs without A/D, where update_pte cannot help.)
 *
 * demand-fault - the demand-paging pattern of seed 002, 4096 pages at a time:
 *     access -> #PF -> the guest's handler writes one whole 8-byte PTE -> re-access.
 * The page tables exist beforehand, so every fault is fixed by exactly one PTE store
 * (`movq`), with no invlpg (a #PF already invalidates the faulting address).
 *
 *   pass 1: read every page in order; not present (error 0): the handler maps it read-only;
 *   pass 2: write every page in order; read-only (error 3): the handler sets R/W;
 *   pass 3: every PTE cleared (8-byte store + invlpg); write the pages in a random
 *           permutation; not present (error 2): the handler maps them writable again;
 *   pass 4: every PTE cleared again; ring 3 reads 512 pages (error 4): mapped user-readable.
 * Each pass checks the fault count, the error codes, CR2 and the page contents (the frames
 * keep their data across unmap/remap). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"

#define NPAGES      4096
#define REGION_VA   0x8000000000ull      /* PML4 slot 1: 8 page tables */
#define FRAMES_BASE 0x1000000ull         /* 16 MiB .. 32 MiB */

static u64 pml4, *ptes[NPAGES];
static u16 perm[NPAGES];
static struct {
    u64 faults, bad_err, bad_cr2, bad_state;
    u64 want_err;  /* the error code the current pass expects */
    u64 map_flags; /* the PTE flags the handler installs for a not-present page */
    u64 want_off;  /* the page offset of the first access (CR2) */
} pf;

static u64 page_va(int i) { return REGION_VA + (u64)i * 4096; }
static u64 frame(int i) { return FRAMES_BASE + (u64)i * 4096; }
static u64 pattern(int i, int pass) { return 0x5eed000000000000ull ^ ((u64)pass << 32) ^ (u64)i * 0x9e3779b97f4a7c15ull; }

static int demand(struct trap_frame *f, u64 cr2)
{
    if (f->vector != 14 || cr2 < REGION_VA || cr2 >= REGION_VA + (u64)NPAGES * 4096)
        return 0;
    int i = (int)((cr2 - REGION_VA) >> 12);
    pf.faults++;
    if (f->err != pf.want_err)
        pf.bad_err++;
    if ((cr2 & 0xfff) != pf.want_off)
        pf.bad_cr2++;
    u64 e = *ptes[i], n;
    if (!(e & PTE_P))
        n = frame(i) | pf.map_flags;
    else if (!(e & PTE_RW))
        n = e | PTE_RW | PTE_A | PTE_D; /* do_wp_page: pte_mkyoung(pte_mkdirty(pte_mkwrite())) */
    else {
        pf.bad_state++; /* a fault on a page that is already writable */
        return 0;
    }
    __asm__ volatile("movq %1, %0" : "=m"(*ptes[i]) : "r"(n)); /* one whole 8-byte store */
    return 1;
}

static void unmap_all(void)
{
    for (int i = 0; i < NPAGES; i++) {
        __asm__ volatile("movq %1, %0" : "=m"(*ptes[i]) : "r"(0ull));
        invlpg((void *)(uintptr_t)page_va(i));
    }
}

static void pass_begin(u64 want_err, u64 map_flags, u64 want_off)
{
    pf.want_off = want_off;
    pf.faults = pf.bad_err = pf.bad_cr2 = pf.bad_state = 0;
    pf.want_err = want_err;
    pf.map_flags = map_flags;
}

static void pass_end(const char *name, u64 want_faults, u64 bad_data)
{
    char buf[160];
    printf("%s: %llu faults\n", name, (unsigned long long)pf.faults);
    snprintf(buf, sizeof buf, "%s: one fault per page, expected error code and CR2", name);
    check(buf, pf.faults == want_faults && pf.bad_err == 0 && pf.bad_cr2 == 0 && pf.bad_state == 0);
    if (pf.faults != want_faults || pf.bad_err || pf.bad_cr2 || pf.bad_state)
        printf("      faults %llu (want %llu), bad error codes %llu, bad CR2 %llu, faults on writable pages %llu\n",
               (unsigned long long)pf.faults, (unsigned long long)want_faults, (unsigned long long)pf.bad_err,
               (unsigned long long)pf.bad_cr2, (unsigned long long)pf.bad_state);
    snprintf(buf, sizeof buf, "%s: every page holds the expected data", name);
    check_eq(buf, bad_data, 0);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("demand-fault-linux: access, #PF, the handler writes one 8-byte PTE with A (and D for writes) as Linux does, re-access; 4096 pages per pass");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    trap_init();
    palloc_init(0x400000, 0x800000);
    trap_user_setup(palloc_page);
    write_cr0(read_cr0() | CR0_WP);
    pml4 = as_create(TRAP_USER_PML4_SLOT, trap_user_pml4e());
    for (int i = 0; i < NPAGES; i++) {
        ptes[i] = pt_entry(pml4, page_va(i), 1, 1, PTE_P | PTE_RW | PTE_US);
        phys_ptr(frame(i))[0] = pattern(i, 0);
        phys_ptr(frame(i))[511] = ~pattern(i, 0);
    }
    printf("%d pages, %llu page-table pages built beforehand\n", NPAGES, (unsigned long long)palloc_used());
    write_cr3(pml4);
    trap_hook = demand;

    u64 bad = 0;
    pass_begin(0x0, PTE_P | PTE_A, 0);
    for (int i = 0; i < NPAGES; i++) {
        volatile u64 *q = (volatile u64 *)(uintptr_t)page_va(i);
        bad += q[0] != pattern(i, 0) || q[511] != ~pattern(i, 0);
    }
    pass_end("pass 1 (read, not present -> read-only)", NPAGES, bad);

    bad = 0;
    pass_begin(0x3, 0, 0);
    for (int i = 0; i < NPAGES; i++) {
        volatile u64 *q = (volatile u64 *)(uintptr_t)page_va(i);
        q[0] = pattern(i, 2);
        q[511] = ~pattern(i, 2);
    }
    for (int i = 0; i < NPAGES; i++)
        bad += phys_ptr(frame(i))[0] != pattern(i, 2) || phys_ptr(frame(i))[511] != ~pattern(i, 2);
    pass_end("pass 2 (write, read-only -> writable)", NPAGES, bad);

    for (int i = 0; i < NPAGES; i++)
        perm[i] = (u16)i;
    u64 rng = 0x2545f4914f6cdd1dull;
    for (int i = NPAGES - 1; i > 0; i--) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((rng >> 33) % (u64)(i + 1));
        u16 t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    unmap_all();
    bad = 0;
    pass_begin(0x2, PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D, 4088);
    for (int k = 0; k < NPAGES; k++) {
        int i = perm[k];
        volatile u64 *q = (volatile u64 *)(uintptr_t)page_va(i);
        q[511] = ~pattern(i, 3); /* the write faults */
        q[0] = pattern(i, 3);
    }
    for (int i = 0; i < NPAGES; i++) {
        volatile u64 *q = (volatile u64 *)(uintptr_t)page_va(i);
        bad += q[0] != pattern(i, 3) || q[511] != ~pattern(i, 3);
    }
    pass_end("pass 3 (unmapped, random-order writes -> writable)", NPAGES, bad);

    unmap_all();
    bad = 0;
    pass_begin(0x4, PTE_P | PTE_US | PTE_A, 0);
    for (int i = 0; i < NPAGES; i += 8) {
        u64 v = 0;
        if (!user_read64(page_va(i), &v) || v != pattern(i, 3))
            bad++;
    }
    pass_end("pass 4 (ring-3 reads of every 8th page, not present -> user read-only)", NPAGES / 8, bad);

    trap_hook = 0;
    write_cr3((u64)(uintptr_t)boot_pml4);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
