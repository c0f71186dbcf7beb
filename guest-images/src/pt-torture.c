/* pt-torture - stress the guest page tables the way a shadow MMU hates:
 *   1. random remaps of 4 KiB and 2 MiB mappings in 4 address spaces, with invlpg and
 *      CR3 switches, every access checked against a C model (leaf entries, A/D bits,
 *      and the expected contents of every physical frame);
 *   2. a page-table page zeroed with rep stosb and refilled with rep movsb;
 *   3. permission changes (R/W, U/S, NX at leaf and upper levels) that must fault
 *      with the SDM's error code, CR0.WP and EFER.NXE toggles taking effect at once,
 *      one page table reachable through two PDEs with different rights, and
 *      page-table pages mapped as data and written through that mapping.
 * Needs 128 MiB of RAM or more (QEMU -m 256). "rounds=N" on the command line runs phase 1
 * N times as long (benchmarks; default 1). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "cmdline.h"

#define NS           4                    /* address spaces */
#define NSMALL       128                  /* 4 KiB slots: 2 page tables x 64 entries */
#define NLARGE       8                    /* 2 MiB slots */
#define SMALL_VA     0x8000000000ull      /* PML4 slot 1, PDPT 0: PDE 0 and 1 */
#define LARGE_VA     0x8040000000ull      /* PML4 slot 1, PDPT 1 */
#define ALIAS_VA     (SMALL_VA + (4ull << 20)) /* PDE 2: a second way into page table A */
#define POOL_BASE    0x4000000ull         /* data frames: 64 MiB .. 128 MiB */
#define POOL_FRAMES  16384u
#define POOL_BLOCKS  (POOL_FRAMES / 512)
#define TABLES_BASE  0x400000ull          /* page tables: 4 MiB .. 12 MiB */
#define TABLES_END   0xc00000ull
#define ITERATIONS   20000
#define AD_MASK      (PTE_A | PTE_D)
#define LEAF_FLAGS   (PTE_P | PTE_RW | PTE_US)
#define UPPER_FLAGS  (PTE_P | PTE_RW | PTE_US)

static u64 pml4[NS];
static u64 *pt_small[NS][2];     /* the two page tables of the 4 KiB slots */
static u64 *pd_large[NS];        /* the page directory of the 2 MiB slots */
static u64 *pd_small[NS];        /* the page directory holding the PDEs of pt_small */
static u64 leaf_model[NS][NSMALL + NLARGE]; /* leaf entries without A/D */
static u8 ad_model[NS][NSMALL + NLARGE];    /* expected A/D bits (PTE_A | PTE_D) */
static u64 tags[POOL_FRAMES];               /* expected first qword of every pool frame */
static int cur = -1;

static u64 rng = 0x9e3779b97f4a7c15ull;
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

static u64 slot_va(int slot)
{
    if (slot < NSMALL)
        return SMALL_VA + (u64)(slot / 64) * 0x200000 + (u64)(slot % 64) * 4096;
    return LARGE_VA + (u64)(slot - NSMALL) * 0x200000;
}

static u64 *leaf_ptr(int s, int slot)
{
    if (slot < NSMALL)
        return &pt_small[s][slot / 64][slot % 64];
    return &pd_large[s][slot - NSMALL];
}

static void switch_to(int s)
{
    if (cur != s) {
        write_cr3(pml4[s]);
        cur = s;
    }
}

static u64 tag_index(u64 pa) { return (pa - POOL_BASE) >> 12; }

/* ---------------------------------------------------------------- phase 1 */

static struct {
    u64 reads, writes, remaps, unmaps, ad_clears, faults, switches;
    u64 bad_value, bad_fault, bad_entry, bad_ad;
} st;

static void set_leaf(int s, int slot, u64 entry)
{
    leaf_model[s][slot] = entry;
    ad_model[s][slot] = 0;
    *leaf_ptr(s, slot) = entry;
    if (s == cur)
        invlpg((void *)(uintptr_t)slot_va(slot));
}

/* Compare the in-memory leaf entry with the model. */
static void check_leaf(int s, int slot)
{
    u64 e = *(volatile u64 *)leaf_ptr(s, slot);
    if ((e & ~AD_MASK) != leaf_model[s][slot])
        st.bad_entry++;
    if ((e & AD_MASK) != ad_model[s][slot])
        st.bad_ad++;
}

static void access(int s, int slot, int write)
{
    if (cur != s)
        st.switches++;
    switch_to(s);
    u64 entry = leaf_model[s][slot];
    u64 sub = slot < NSMALL ? 0 : rnd(512);
    u64 va = slot_va(slot) + sub * 4096;
    u64 pa = (entry & PTE_ADDR_MASK & ~(slot < NSMALL ? 0ull : 0x1fffffull)) + sub * 4096;
    int ok;
    u64 v = 0, nv = 0;
    trap_reset();
    if (write) {
        st.writes++;
        nv = mix(rng ^ va);
        ok = probe_write64(va, nv);
    } else {
        st.reads++;
        ok = probe_read64(va, &v);
    }
    if (!(entry & PTE_P)) {
        st.faults++;
        if (ok || trap_last.vector != 14 || trap_last.err != (write ? 2u : 0u) || trap_last.cr2 != va)
            st.bad_fault++;
    } else if (!ok) {
        st.bad_fault++;
    } else if (write) {
        tags[tag_index(pa)] = nv;
        ad_model[s][slot] = PTE_A | PTE_D;
    } else {
        if (v != tags[tag_index(pa)])
            st.bad_value++;
        ad_model[s][slot] |= PTE_A;
    }
    check_leaf(s, slot);
}

static void phase_random(u64 iterations)
{
    for (u64 i = 0; i < iterations; i++) {
        int s = (int)rnd(NS), slot = (int)rnd(NSMALL + NLARGE);
        u64 op = rnd(100);
        if (op < 25) { /* remap to a random frame / 2 MiB block */
            u64 pa = slot < NSMALL ? POOL_BASE + rnd(POOL_FRAMES) * 4096
                                   : POOL_BASE + rnd(POOL_BLOCKS) * 0x200000;
            set_leaf(s, slot, pa | LEAF_FLAGS | (slot < NSMALL ? 0 : PTE_PS));
            st.remaps++;
        } else if (op < 30) { /* unmap */
            set_leaf(s, slot, 0);
            st.unmaps++;
        } else if (op < 35) { /* clear A and D with a one-byte and on the entry */
            u8 *b = (u8 *)leaf_ptr(s, slot);
            __asm__ volatile("andb $0x9f, %0" : "+m"(*b));
            ad_model[s][slot] = 0;
            if (s == cur)
                invlpg((void *)(uintptr_t)slot_va(slot));
            st.ad_clears++;
            check_leaf(s, slot);
        } else {
            access(s, slot, op >= 70);
        }
    }
    printf("random: %lu reads, %lu writes, %lu remaps, %lu unmaps, %lu A/D clears, %lu expected faults, "
           "%lu CR3 switches\n",
           st.reads, st.writes, st.remaps, st.unmaps, st.ad_clears, st.faults, st.switches);
    check_eq("random: every read returned the modelled frame contents", st.bad_value, 0);
    check_eq("random: faults exactly where the model has no mapping (error code, CR2)", st.bad_fault, 0);
    check_eq("random: page-table entries match the model", st.bad_entry, 0);
    check_eq("random: A/D bits match the model after every access and clear", st.bad_ad, 0);
}

/* ---------------------------------------------------------------- phase 2 */

static u64 saved[512];

/* Zero one page table (rep stosb), check every slot faults, refill it (rep movsb),
 * check every slot again. `s` need not be the current space. */
static void zero_and_refill(int s, int table, const char *what)
{
    u64 *pt = pt_small[s][table];
    memcpy(saved, pt, 4096);
    for (int i = 0; i < 512; i++)
        saved[i] &= ~AD_MASK;
    memset(pt, 0, 4096);
    if (s == cur)
        write_cr3(pml4[s]); /* flush */
    u64 bad = 0;
    switch_to(s);
    for (int k = 0; k < 64; k++) {
        int slot = table * 64 + k;
        u64 va = slot_va(slot), v;
        trap_reset();
        if (probe_read64(va, &v) || trap_last.vector != 14 || trap_last.err != 0 || trap_last.cr2 != va)
            bad++;
    }
    char name[96];
    snprintf(name, sizeof name, "%s: every slot faults (not present) after rep stosb zeroed its table", what);
    check_eq(name, bad, 0);

    memcpy(pt, saved, 4096);
    write_cr3(pml4[s]);
    bad = 0;
    u64 before_value = st.bad_value, before_fault = st.bad_fault, before_entry = st.bad_entry, before_ad = st.bad_ad;
    for (int k = 0; k < 64; k++) {
        int slot = table * 64 + k;
        ad_model[s][slot] = 0;
        access(s, slot, 0);
    }
    bad = (st.bad_value - before_value) + (st.bad_fault - before_fault) + (st.bad_entry - before_entry) +
          (st.bad_ad - before_ad);
    snprintf(name, sizeof name, "%s: refilled with rep movsb, every slot reads its frame again", what);
    check_eq(name, bad, 0);
}

/* ---------------------------------------------------------------- phase 3 */

#define EXEC_SUP_OFF  0x10 /* ret */
#define EXEC_USER_OFF 0x20 /* int $0x80 */

static int fault_is(u64 err, u64 cr2)
{
    return trap_last.count == 1 && trap_last.vector == 14 && trap_last.err == err && trap_last.cr2 == cr2;
}

static void report_fault(const char *name, int ok)
{
    check(name, ok);
    if (!ok)
        printf("      %lu exception(s): vector %lu, error %#lx, CR2 %#lx\n", trap_last.count, trap_last.vector,
               trap_last.err, trap_last.cr2);
}

/* Fresh frame mapped at slot of space 0 with `flags`; returns its VA. */
static u64 prepare(int slot, u64 flags, u64 *frame_out)
{
    u64 pa = POOL_BASE + (u64)(POOL_FRAMES - 1 - slot) * 4096; /* dedicated frames at the pool's top */
    u8 *p = (u8 *)(uintptr_t)pa;
    p[EXEC_SUP_OFF] = 0xC3;
    p[EXEC_USER_OFF] = 0xCD;
    p[EXEC_USER_OFF + 1] = 0x80;
    phys_ptr(pa)[0] = tags[tag_index(pa)] = mix(pa);
    switch_to(0);
    set_leaf(0, slot, pa | flags);
    if (frame_out)
        *frame_out = pa;
    return slot_va(slot);
}

static void phase_permissions(void)
{
    u64 v, va, pa;
    int ok;
    switch_to(0);

    /* R/W = 0 at the leaf. */
    va = prepare(10, PTE_P | PTE_US, &pa);
    trap_reset();
    ok = probe_read64(va, &v) && v == tags[tag_index(pa)];
    check("leaf R/W=0: ring-0 read works", ok);
    trap_reset();
    ok = !probe_write64(va, 1);
    report_fault("leaf R/W=0: ring-0 write with CR0.WP=1 faults, error 0x3", ok && fault_is(0x3, va));
    write_cr0(read_cr0() & ~(u64)CR0_WP);
    trap_reset();
    ok = probe_write64(va, 0x1234) && probe_read64(va, &v) && v == 0x1234;
    check("leaf R/W=0: CR0.WP=0 takes effect at once, ring-0 write works", ok && trap_last.count == 0);
    write_cr0(read_cr0() | CR0_WP);
    trap_reset();
    ok = !probe_write64(va, 2);
    report_fault("leaf R/W=0: CR0.WP=1 again takes effect at once, write faults 0x3", ok && fault_is(0x3, va));
    trap_reset();
    ok = user_read64(va, &v) && v == 0x1234;
    check("leaf R/W=0: ring-3 read works", ok);
    trap_reset();
    ok = !user_write64(va, 3);
    report_fault("leaf R/W=0: ring-3 write faults, error 0x7", ok && fault_is(0x7, va));
    phys_ptr(pa)[0] = tags[tag_index(pa)];

    /* R/W flips to 1: invlpg makes it writable. */
    set_leaf(0, 10, pa | PTE_P | PTE_RW | PTE_US);
    trap_reset();
    ok = user_write64(va, 0x5678) && probe_read64(va, &v) && v == 0x5678;
    check("leaf R/W 0 -> 1 with invlpg: ring-3 write works", ok);
    tags[tag_index(pa)] = 0x5678;

    /* U/S = 0 at the leaf. */
    va = prepare(11, PTE_P | PTE_RW, &pa);
    trap_reset();
    ok = !user_read64(va, &v);
    report_fault("leaf U/S=0: ring-3 read faults, error 0x5", ok && fault_is(0x5, va));
    trap_reset();
    ok = !user_write64(va, 1);
    report_fault("leaf U/S=0: ring-3 write faults, error 0x7", ok && fault_is(0x7, va));
    trap_reset();
    ok = probe_read64(va, &v) && v == tags[tag_index(pa)];
    check("leaf U/S=0: ring-0 read works", ok);
    set_leaf(0, 11, pa | PTE_P | PTE_RW | PTE_US);
    trap_reset();
    ok = user_read64(va, &v) && v == tags[tag_index(pa)];
    check("leaf U/S 0 -> 1 with invlpg: ring-3 read works", ok);

    /* NX at the leaf (EFER.NXE = 1). */
    va = prepare(12, PTE_P | PTE_RW | PTE_US | PTE_NX, &pa);
    trap_reset();
    ok = !probe_exec(va + EXEC_SUP_OFF);
    report_fault("leaf NX=1: ring-0 fetch faults, error 0x11", ok && fault_is(0x11, va + EXEC_SUP_OFF));
    trap_reset();
    ok = !user_exec(va + EXEC_USER_OFF);
    report_fault("leaf NX=1: ring-3 fetch faults, error 0x15", ok && fault_is(0x15, va + EXEC_USER_OFF));
    trap_reset();
    ok = probe_read64(va, &v) && v == tags[tag_index(pa)];
    check("leaf NX=1: ring-0 read works", ok);

    /* EFER.NXE = 0 makes the NX bit reserved. A translation cached while NXE was 1 may
     * still be used (QEMU TCG does), so the page is invalidated first; no CR3 reload. */
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_NXE);
    invlpg((void *)(uintptr_t)va);
    trap_reset();
    ok = !probe_read64(va, &v);
    /* SDM error code 0x9 (P | RSVD); QEMU TCG reports 0x8: P is not judged. */
    report_fault("EFER.NXE=0: the NX bit is reserved, read faults with RSVD (after invlpg)",
                 ok && trap_last.count == 1 && trap_last.vector == 14 && (trap_last.err & 0x1e) == 0x8 &&
                     trap_last.cr2 == va);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    trap_reset();
    ok = probe_read64(va, &v) && v == tags[tag_index(pa)];
    check("EFER.NXE=1 again: read works without any flush", ok && trap_last.count == 0);
    set_leaf(0, 12, pa | PTE_P | PTE_RW | PTE_US);
    trap_reset();
    ok = probe_exec(va + EXEC_SUP_OFF) && user_exec(va + EXEC_USER_OFF);
    check("leaf NX 1 -> 0 with invlpg: ring-0 and ring-3 fetches work", ok);

    /* Rights at the PDE: R/W = 0 and U/S = 0 in the PDE of page table A. */
    va = prepare(13, PTE_P | PTE_RW | PTE_US, &pa);
    u64 *pde = &pd_small[0][0];
    u64 pde_saved = *pde;
    *pde = (pde_saved & ~(PTE_RW | AD_MASK));
    write_cr3(pml4[0]);
    trap_reset();
    ok = !probe_write64(va, 1);
    report_fault("PDE R/W=0 over a writable PTE: ring-0 write faults, error 0x3", ok && fault_is(0x3, va));
    *pde = (pde_saved & ~(PTE_US | AD_MASK));
    write_cr3(pml4[0]);
    trap_reset();
    ok = !user_read64(va, &v);
    report_fault("PDE U/S=0 over a user PTE: ring-3 read faults, error 0x5", ok && fault_is(0x5, va));
    trap_reset();
    ok = probe_write64(va, 0x9abc) && probe_read64(va, &v) && v == 0x9abc;
    check("PDE U/S=0: ring-0 write and read work", ok);
    tags[tag_index(pa)] = 0x9abc;
    *pde = pde_saved & ~AD_MASK;
    write_cr3(pml4[0]);
    for (int k = 0; k < 64; k++) /* the PDE change may have set A/D bits again: resync the model */
        ad_model[0][k] = (u8)(pt_small[0][0][k] & AD_MASK);

    /* One page table reachable through two PDEs with different rights: PDE 2 points at
     * page table A with R/W = 0 and U/S = 0. */
    pd_small[0][2] = (u64)(uintptr_t)pt_small[0][0] | PTE_P;
    write_cr3(pml4[0]);
    u64 alias = ALIAS_VA + (va - SMALL_VA);
    trap_reset();
    ok = probe_read64(alias, &v) && v == tags[tag_index(pa)];
    check("two PDEs, one page table: ring-0 read through the read-only alias sees the same frame", ok);
    trap_reset();
    ok = !probe_write64(alias, 1);
    report_fault("two PDEs: ring-0 write through the read-only PDE faults, error 0x3", ok && fault_is(0x3, alias));
    trap_reset();
    ok = !user_read64(alias, &v);
    report_fault("two PDEs: ring-3 read through the supervisor PDE faults, error 0x5", ok && fault_is(0x5, alias));
    trap_reset();
    ok = user_write64(va, 0x4444) && probe_read64(alias, &v) && v == 0x4444;
    check("two PDEs: ring-3 write through the user PDE is visible through the alias", ok);
    tags[tag_index(pa)] = 0x4444;
    pd_small[0][2] = 0;
    write_cr3(pml4[0]);

    /* A page-table page mapped as data: slot 100 (in page table B) maps page table A;
     * writing through it changes slot 14's mapping. */
    u64 pta = (u64)(uintptr_t)pt_small[0][0];
    set_leaf(0, 100, pta | PTE_P | PTE_RW);
    u64 frame14 = POOL_BASE + 4096ull * 77;
    u64 new14 = frame14 | PTE_P | PTE_RW | PTE_US;
    trap_reset();
    ok = probe_read64(slot_va(100) + 14 * 8, &v) && v == *(volatile u64 *)&pt_small[0][0][14];
    check("page table A mapped as data: reading entry 14 through the mapping matches", ok);
    ok = probe_write64(slot_va(100) + 14 * 8, new14);
    leaf_model[0][14] = new14;
    ad_model[0][14] = 0;
    invlpg((void *)(uintptr_t)slot_va(14));
    trap_reset();
    ok = ok && probe_read64(slot_va(14), &v) && v == tags[tag_index(frame14)];
    check("page table A written through its data mapping: slot 14 now reads its new frame", ok);

    /* Page table B maps itself at slot 127 (entry 63); change entry 62 (slot 126) through it. */
    u64 ptb = (u64)(uintptr_t)pt_small[0][1];
    set_leaf(0, 127, ptb | PTE_P | PTE_RW);
    u64 frame126 = POOL_BASE + 4096ull * 99;
    u64 new126 = frame126 | PTE_P | PTE_RW | PTE_US;
    ok = probe_write64(slot_va(127) + 62 * 8, new126);
    leaf_model[0][126] = new126;
    ad_model[0][126] = 0;
    invlpg((void *)(uintptr_t)slot_va(126));
    trap_reset();
    ok = ok && probe_read64(slot_va(126), &v) && v == tags[tag_index(frame126)];
    ok = ok && probe_read64(slot_va(127) + 63 * 8, &v) && (v & PTE_ADDR_MASK) == ptb && (v & PTE_A);
    check("self-mapped page table B: entry 62 written through itself, slot 126 reads its new frame", ok);
    set_leaf(0, 100, 0);
    set_leaf(0, 127, 0);
}

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
    puts("pt-torture: remaps, invlpg, CR3 switches, A/D bits, permission faults, aliased page tables");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    u64 ram_top = 0x100000ull + (u64)mbi->mem_upper * 1024;
    if (!check("RAM reaches 128 MiB", (mbi->flags & 1) && ram_top >= POOL_BASE + POOL_FRAMES * 4096ull))
        check_finish();

    trap_init();
    palloc_init(TABLES_BASE, TABLES_END);
    trap_user_setup(palloc_page);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    write_cr0(read_cr0() | CR0_WP);

    for (u64 f = 0; f < POOL_FRAMES; f++)
        phys_ptr(POOL_BASE + f * 4096)[0] = tags[f] = mix(f + 1);

    for (int s = 0; s < NS; s++) {
        pml4[s] = as_create(TRAP_USER_PML4_SLOT, trap_user_pml4e());
        for (int t = 0; t < 2; t++) {
            u64 *pde = pt_entry(pml4[s], SMALL_VA + (u64)t * 0x200000, 2, 1, UPPER_FLAGS);
            *pde = palloc_page() | UPPER_FLAGS;
            pt_small[s][t] = phys_ptr(*pde & PTE_ADDR_MASK);
        }
        pd_small[s] = phys_ptr(*pt_entry(pml4[s], SMALL_VA, 3, 0, 0) & PTE_ADDR_MASK);
        u64 *pdpte = pt_entry(pml4[s], LARGE_VA, 3, 1, UPPER_FLAGS);
        *pdpte = palloc_page() | UPPER_FLAGS;
        pd_large[s] = phys_ptr(*pdpte & PTE_ADDR_MASK);
        for (int slot = 0; slot < NSMALL + NLARGE; slot++) {
            u64 pa = slot < NSMALL ? POOL_BASE + rnd(POOL_FRAMES) * 4096 : POOL_BASE + rnd(POOL_BLOCKS) * 0x200000;
            leaf_model[s][slot] = pa | LEAF_FLAGS | (slot < NSMALL ? 0 : PTE_PS);
            *leaf_ptr(s, slot) = leaf_model[s][slot];
        }
    }
    switch_to(0);
    puts("setup done: 4 address spaces x (128 4 KiB + 8 2 MiB slots), user window, EFER.NXE, CR0.WP");

    phase_random(ITERATIONS * cmdline_rounds(mbi_addr));
    zero_and_refill(cur, 0, "current space, table A");
    zero_and_refill((cur + 1) % NS, 1, "other space, table B");
    phase_permissions();

    switch_to(0);
    write_cr3((u64)(uintptr_t)boot_pml4);
    cur = -1;
    u64 bad = 0;
    for (u64 f = 0; f < POOL_FRAMES; f++)
        if (phys_ptr(POOL_BASE + f * 4096)[0] != tags[f])
            bad++;
    check_eq("every pool frame holds the modelled value (identity map)", bad, 0);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
