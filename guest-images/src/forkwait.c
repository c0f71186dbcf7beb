/* forkwait - the classic shadow-paging stress: a tiny in-guest fork + wait, 10000 times.
 *
 * A parent process owns 64 user pages (two page tables, 4-level paging). Each iteration:
 *   fork:  build the child's PML4/PDPT/PD/2 PTs; share every page copy-on-write (the
 *          parent's R/W bit cleared with `lock andb` on the PTE's low byte, as Linux's
 *          ptep_set_wrprotect does; the child gets the read-only entry; page refcount + 1);
 *          reload CR3 to flush the parent's TLB;
 *   child: switch CR3, read 8 random pages (checked against the model), write 4 random
 *          pages (every 16th iteration one write comes from ring 3); the first write to a
 *          shared page faults (#PF, error 0x3 or 0x7) and the handler copies the page
 *          (rep movsb) into a new frame and installs it writable with one 8-byte PTE write
 *          + invlpg;
 *   exit:  back in the parent, drop the child's page references, clear its page tables
 *          with memset (rep stosb) and free them: freed page-table pages come back as data
 *          pages of later copies and as page tables of later children;
 *   wait:  the parent writes 2 random pages (its own page is no longer shared: the fault
 *          just sets R/W) and reads 2.
 * Expected fault counts come from the model; the parent's pages are verified in full every
 * 500 iterations and at the end, and no page may leak. "rounds=N" on the command line runs
 * N x 10000 iterations (benchmarks; default 1). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "frames.h"
#include "cmdline.h"

#define ITERATIONS  10000
#define NPAGES      64
#define PT0_PAGES   48                  /* pages 0..47 in PT 0, 48..63 in PT 1 */
#define USER_VA     0x8000000000ull     /* PML4 slot 1 */
#define PTE_COW     (1ull << 9)         /* software bit: private writable mapping */
#define UF          (PTE_P | PTE_RW | PTE_US)
#define POOL_START  0x1000000ull        /* 16 MiB .. 32 MiB: tables and data */
#define POOL_END    0x2000000ull

struct proc {
    u64 pml4, pdpt, pd, pt[2];
    u64 model[NPAGES];   /* value at offset 0 of each page; offset 4088 holds its complement */
    u8 writable[NPAGES]; /* the model's view of the R/W bit */
};

static struct proc parent, child;
static struct proc *current;
static u64 rng = 0x853c49e6748fea9bull;
static struct {
    u64 forks, reads, writes, user_writes, cow_copies, cow_reuses, want_copies, want_reuses;
    u64 bad_reads, bad_frames, bad_other_faults;
} st;

static u64 rnd(u64 n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (rng >> 33) % n;
}

static u64 mix(u64 x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

static u64 page_va(int i)
{
    return i < PT0_PAGES ? USER_VA + (u64)i * 4096 : USER_VA + 0x200000 + (u64)(i - PT0_PAGES) * 4096;
}

static u64 *pte_of(struct proc *p, int i)
{
    return i < PT0_PAGES ? &phys_ptr(p->pt[0])[i] : &phys_ptr(p->pt[1])[i - PT0_PAGES];
}

static void build_tables(struct proc *p)
{
    p->pml4 = frame_alloc_zeroed();
    p->pdpt = frame_alloc_zeroed();
    p->pd = frame_alloc_zeroed();
    p->pt[0] = frame_alloc_zeroed();
    p->pt[1] = frame_alloc_zeroed();
    phys_ptr(p->pml4)[0] = boot_pml4[0];
    phys_ptr(p->pml4)[TRAP_USER_PML4_SLOT] = trap_user_pml4e();
    phys_ptr(p->pml4)[1] = p->pdpt | UF;
    phys_ptr(p->pdpt)[0] = p->pd | UF;
    phys_ptr(p->pd)[0] = p->pt[0] | UF;
    phys_ptr(p->pd)[1] = p->pt[1] | UF;
}

static void run(struct proc *p)
{
    current = p;
    write_cr3(p->pml4);
}

/* #PF on a write to a present, read-only, copy-on-write page of the current process. */
static int cow_fault(struct trap_frame *f, u64 cr2)
{
    if (f->vector != 14 || (f->err & 3) != 3 || cr2 < USER_VA || cr2 >= USER_VA + 0x400000)
        return 0;
    u64 off = cr2 - USER_VA;
    int i = off < 0x200000 ? (int)(off >> 12) : PT0_PAGES + (int)((off - 0x200000) >> 12);
    if (i >= NPAGES)
        return 0;
    u64 *pte = pte_of(current, i), e = *pte;
    if (!(e & PTE_P) || (e & PTE_RW) || !(e & PTE_COW)) {
        st.bad_other_faults++;
        return 0;
    }
    u64 old = e & PTE_ADDR_MASK;
    if (frame_refs(old) > 1) {
        u64 new = frame_alloc();
        memcpy(phys_ptr(new), phys_ptr(old), 4096);
        frame_put(old);
        *pte = new | (e & ~PTE_ADDR_MASK & ~(PTE_A | PTE_D)) | PTE_RW;
        st.cow_copies++;
    } else {
        *pte = e | PTE_RW;
        st.cow_reuses++;
    }
    invlpg((void *)(uintptr_t)cr2);
    return 1;
}

static void fork_child(void)
{
    build_tables(&child);
    for (int i = 0; i < NPAGES; i++) {
        u64 *pp = pte_of(&parent, i);
        if (*pp & PTE_RW)
            __asm__ volatile("lock andb $0xfd, %0" : "+m"(*(u8 *)pp)); /* clear_bit(_PAGE_BIT_RW) */
        u64 e = *pp;
        frame_get(e & PTE_ADDR_MASK);
        *pte_of(&child, i) = e & ~(PTE_A | PTE_D);
        child.model[i] = parent.model[i];
        child.writable[i] = parent.writable[i] = 0;
    }
    write_cr3(parent.pml4); /* flush the parent's now read-only translations */
    st.forks++;
}

static void touch_read(struct proc *p, int i)
{
    volatile u64 *q = (volatile u64 *)(uintptr_t)page_va(i);
    if (q[0] != p->model[i] || q[511] != ~p->model[i])
        st.bad_reads++;
    st.reads++;
}

static void touch_write(struct proc *p, int i, int ring3)
{
    u64 v = mix(rng ^ (u64)i);
    if (!p->writable[i]) { /* the model predicts the fault */
        if (frame_refs(*pte_of(p, i) & PTE_ADDR_MASK) > 1)
            st.want_copies++;
        else
            st.want_reuses++;
        p->writable[i] = 1;
    }
    volatile u64 *q = (volatile u64 *)(uintptr_t)page_va(i);
    if (ring3) {
        if (!user_write64(page_va(i), v))
            st.bad_other_faults++;
        st.user_writes++;
    } else {
        q[0] = v;
    }
    q[511] = ~v;
    p->model[i] = v;
    st.writes++;
}

static void exit_child(void)
{
    run(&parent);
    for (int i = 0; i < NPAGES; i++)
        frame_put(*pte_of(&child, i) & PTE_ADDR_MASK);
    u64 tables[5] = {child.pt[0], child.pt[1], child.pd, child.pdpt, child.pml4};
    for (int t = 0; t < 5; t++) {
        memset(phys_ptr(tables[t]), 0, 4096);
        frame_put(tables[t]);
    }
}

static void verify_parent(void)
{
    for (int i = 0; i < NPAGES; i++) {
        touch_read(&parent, i);
        u64 pa = *pte_of(&parent, i) & PTE_ADDR_MASK;
        if (phys_ptr(pa)[0] != parent.model[i] || phys_ptr(pa)[511] != ~parent.model[i])
            st.bad_frames++;
    }
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("forkwait: copy-on-write fork, child touches pages, exit tears its page tables down, wait");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    trap_init();
    palloc_init(0x400000, 0x800000);
    trap_user_setup(palloc_page);
    frames_init(POOL_START, POOL_END);
    write_cr0(read_cr0() | CR0_WP);
    u64 free0 = frames_free();
    const u64 iterations = ITERATIONS * cmdline_rounds(mbi);

    build_tables(&parent);
    for (int i = 0; i < NPAGES; i++) {
        u64 f = frame_alloc();
        parent.model[i] = mix((u64)i + 1);
        phys_ptr(f)[0] = parent.model[i];
        phys_ptr(f)[511] = ~parent.model[i];
        *pte_of(&parent, i) = f | UF | PTE_COW;
        parent.writable[i] = 1;
    }
    run(&parent);
    trap_hook = cow_fault;

    for (u64 it = 0; it < iterations; it++) {
        fork_child();
        run(&child);
        for (int k = 0; k < 8; k++)
            touch_read(&child, (int)rnd(NPAGES));
        for (int k = 0; k < 4; k++)
            touch_write(&child, (int)rnd(NPAGES), k == 0 && it % 16 == 0);
        for (int k = 0; k < 2; k++)
            touch_read(&child, (int)rnd(NPAGES));
        exit_child();
        for (int k = 0; k < 2; k++)
            touch_write(&parent, (int)rnd(NPAGES), 0);
        for (int k = 0; k < 2; k++)
            touch_read(&parent, (int)rnd(NPAGES));
        if (it % 500 == 499)
            verify_parent();
    }
    verify_parent();
    trap_hook = 0;
    write_cr3((u64)(uintptr_t)boot_pml4);

    printf("%llu forks, %llu reads, %llu writes (%llu from ring 3), %llu copy-on-write copies, %llu reuses\n",
           (unsigned long long)st.forks, (unsigned long long)st.reads, (unsigned long long)st.writes,
           (unsigned long long)st.user_writes, (unsigned long long)st.cow_copies, (unsigned long long)st.cow_reuses);
    char name[64];
    snprintf(name, sizeof name, "%llu fork/exit/wait iterations", (unsigned long long)iterations);
    check_eq(name, st.forks, iterations);
    check_eq("every read saw the modelled page contents", st.bad_reads, 0);
    check_eq("every parent frame holds the modelled contents (identity map)", st.bad_frames, 0);
    check_eq("copy-on-write copies: one per first child write to a shared page", st.cow_copies, st.want_copies);
    check_eq("write faults on unshared pages just set R/W", st.cow_reuses, st.want_reuses);
    check_eq("no other page faults", st.bad_other_faults, 0);
    check_eq("no page leaked: free pages = pool - 64 data - 5 tables", frames_free(), free0 - NPAGES - 5);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
