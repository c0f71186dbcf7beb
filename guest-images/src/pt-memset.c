/* pt-memset - page-table pages cleared with string instructions (seed 003's rep-string
 * rule), both after they are freed and while they are live, with every mapping verified
 * after each step:
 *   1. page table T maps 512 pages; all read (so T is shadowed);
 *   2. T freed: its PDE cleared + CR3 reload; the region faults;
 *   3. T cleared with `rep stosb` (memset); then refilled with a pattern and cleared with a
 *      byte loop of single `stosb` instructions (no rep);
 *   4. T reused as a data page: mapped at a slot of page table L, written and read through
 *      that mapping and through the identity map;
 *   5. T unmapped as data, refilled as a page table with `rep movsb`, relinked: all 512
 *      pages read their frames again;
 *   6. live T cleared with `rep stosb` (+ CR3 reload): all fault; refilled with `rep movsb`;
 *   7. live T cleared with the `stosb` byte loop; rebuilt entry by entry with 8-byte stores;
 *   8. live T cleared with `rep stosq` (Linux's clear_page) from another address space that
 *      shares T, then verified from both spaces; rebuilt;
 *   9. only the upper half of live T cleared with `rep stosb`: half the pages fault.
 * "rounds=N" on the command line runs steps 1-9 N times, printing the checks of the last
 * round only (failures always; benchmarks; default 1). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "cmdline.h"

#define REGION_VA   0x8000000000ull      /* PML4 slot 1: PDE 0 -> T, PDE 1 -> L */
#define L_VA        (REGION_VA + 0x200000)
#define DATA_SLOT   100                  /* T mapped as data at L[100] */
#define FRAMES_BASE 0x1000000ull

static u64 space[2], *pde_t[2], *t, *l;
static u64 saved[512];

static u64 tag(int i) { return 0xa11ce00000000000ull ^ (u64)i * 0x9e3779b97f4a7c15ull; }
static u64 page_va(int i) { return REGION_VA + (u64)i * 4096; }

/* `stosb` without rep: one byte per instruction. */
static void stosb_loop(void *dst, u8 v, u64 n)
{
    __asm__ volatile("1:\tstosb\n\tdec %%rcx\n\tjnz 1b" : "+D"(dst), "+c"(n) : "a"(v) : "memory");
}

static void rep_stosq(void *dst, u64 qwords)
{
    __asm__ volatile("rep stosq" : "+D"(dst), "+c"(qwords) : "a"(0ull) : "memory");
}

/* Read every page of T's region; mapped[i] says whether page i must read its tag or
 * fault (not present, error 0, CR2 exact). Returns the number of mismatches. */
static u64 verify(const u8 *mapped)
{
    u64 bad = 0, v;
    for (int i = 0; i < 512; i++) {
        trap_reset();
        int ok = probe_read64(page_va(i), &v);
        if (mapped[i])
            bad += !ok || v != tag(i);
        else
            bad += ok || trap_last.vector != 14 || trap_last.err != 0 || trap_last.cr2 != page_va(i);
    }
    trap_reset();
    return bad;
}

static u8 all[512], none[512], lower[512];

static u64 zero_count(void)
{
    u64 nz = 0;
    for (int i = 0; i < 512; i++)
        nz += t[i] != 0;
    return nz;
}

static void relink(int s)
{
    *pde_t[s] = (u64)(uintptr_t)t | PTE_P | PTE_RW;
}

/* Steps 1-9. T holds the saved entries on entry and is left half cleared. */
static void steps(void)
{
    memcpy(t, saved, 4096);
    *pde_t[1] = 0;
    relink(0);
    write_cr3(space[0]);

    check_eq("1. T maps 512 pages: every page reads its frame", verify(all), 0);

    *pde_t[0] = 0;
    write_cr3(space[0]);
    check_eq("2. T freed (PDE cleared, CR3 reloaded): every page faults", verify(none), 0);

    memset(t, 0, 4096);
    check_eq("3a. freed T cleared with rep stosb: all entries zero", zero_count(), 0);
    for (int i = 0; i < 512; i++)
        t[i] = saved[i] ^ 0x5a5a000000000000ull;
    stosb_loop(t, 0, 4096);
    check_eq("3b. freed T refilled, cleared with a stosb byte loop: all entries zero", zero_count(), 0);
    check_eq("3c. the region still faults", verify(none), 0);

    l[DATA_SLOT] = (u64)(uintptr_t)t | PTE_P | PTE_RW;
    invlpg((void *)(uintptr_t)(L_VA + DATA_SLOT * 4096));
    volatile u64 *data = (volatile u64 *)(uintptr_t)(L_VA + DATA_SLOT * 4096);
    u64 mismatches = 0;
    for (int i = 0; i < 512; i++)
        data[i] = tag(i + 1000);
    for (int i = 0; i < 512; i++)
        mismatches += data[i] != tag(i + 1000) || ((volatile u64 *)t)[i] != tag(i + 1000);
    check_eq("4. T reused as data: written through a data mapping, read back through it and the identity map",
             mismatches, 0);

    l[DATA_SLOT] = 0;
    invlpg((void *)(uintptr_t)data);
    memcpy(t, saved, 4096);
    relink(0);
    write_cr3(space[0]);
    check_eq("5. T refilled with rep movsb and relinked: every page reads its frame", verify(all), 0);

    memset(t, 0, 4096);
    write_cr3(space[0]);
    check_eq("6a. live T cleared with rep stosb: every page faults", verify(none), 0);
    memcpy(t, saved, 4096);
    write_cr3(space[0]);
    check_eq("6b. live T refilled with rep movsb: every page reads its frame", verify(all), 0);

    stosb_loop(t, 0, 4096);
    write_cr3(space[0]);
    check_eq("7a. live T cleared with a stosb byte loop: every page faults", verify(none), 0);
    for (int i = 0; i < 512; i++)
        __asm__ volatile("movq %1, %0" : "=m"(t[i]) : "r"(saved[i]));
    write_cr3(space[0]);
    check_eq("7b. live T rebuilt entry by entry with 8-byte stores: every page reads its frame", verify(all), 0);

    relink(1); /* space 1 shares T */
    write_cr3(space[1]);
    check_eq("8a. space 1 shares T: every page reads its frame", verify(all), 0);
    rep_stosq(t, 512);
    write_cr3(space[1]);
    check_eq("8b. T cleared with rep stosq from space 1: every page faults in space 1", verify(none), 0);
    write_cr3(space[0]);
    check_eq("8c. ... and in space 0", verify(none), 0);
    memcpy(t, saved, 4096);
    write_cr3(space[0]);
    check_eq("8d. T refilled: every page reads its frame in space 0", verify(all), 0);

    memset(&t[256], 0, 2048);
    write_cr3(space[0]);
    check_eq("9a. upper half of live T cleared with rep stosb: exactly the upper 256 pages fault", verify(lower), 0);
    write_cr3(space[1]);
    check_eq("9b. the same seen from space 1", verify(lower), 0);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("pt-memset: page-table pages cleared with rep stosb, stosb loops and rep stosq, freed and live");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    trap_init();
    palloc_init(0x400000, 0x800000);
    write_cr0(read_cr0() | CR0_WP);

    for (int s = 0; s < 2; s++)
        space[s] = as_create(0, 0);
    t = phys_ptr(palloc_page());
    l = phys_ptr(palloc_page());
    for (int s = 0; s < 2; s++) {
        pde_t[s] = pt_entry(space[s], REGION_VA, 2, 1, PTE_P | PTE_RW);
        *pt_entry(space[s], L_VA, 2, 1, PTE_P | PTE_RW) = (u64)(uintptr_t)l | PTE_P | PTE_RW;
    }
    for (int i = 0; i < 512; i++) {
        u64 f = FRAMES_BASE + (u64)i * 4096;
        phys_ptr(f)[0] = tag(i);
        t[i] = saved[i] = f | PTE_P | PTE_RW;
        all[i] = 1;
        lower[i] = i < 256;
    }
    u64 rounds = cmdline_rounds(mbi);
    for (u64 r = 1; r <= rounds; r++) {
        check_quiet(r < rounds);
        steps();
    }
    check_quiet(0);

    write_cr3((u64)(uintptr_t)boot_pml4);
    u64 bad = 0;
    for (int i = 0; i < 512; i++)
        bad += phys_ptr(FRAMES_BASE + (u64)i * 4096)[0] != tag(i);
    check_eq("no data frame was touched (identity map)", bad, 0);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
