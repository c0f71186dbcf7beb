/* pt-torture32.h - pt-torture in the 32-bit paging modes, included by pt-torture-32.c
 * (2-level 32-bit paging: 4-byte entries, 4 MiB PSE pages) and pt-torture-pae.c (PAE:
 * 8-byte entries, 4 PDPTEs loaded on every CR3 write, 2 MiB pages). Protected mode
 * throughout; no long mode.
 *
 *   1. random remaps of 4 KiB and large mappings in 4 address spaces, with invlpg and CR3
 *      switches, every access checked against a C model (leaf entries, A/D bits, and the
 *      expected first dword of every physical frame); A/D cleared with a one-byte andb;
 *   2. a page-table page zeroed with rep stosb and refilled with rep movsb, in the current
 *      and in another space;
 *   3. permission faults with exact error codes and CR2 (leaf and PDE R/W and U/S, CR0.WP
 *      toggles, NX and EFER.NXE in PAE, the I/D bit rule of each mode), one page table
 *      reachable through two PDEs with different rights, a page table mapped as data and
 *      written through that mapping, a self-mapped page table.
 *
 * Layout (both modes): 0..1 GiB identity-mapped with large pages (U/S = 1 so ring-3
 * snippets and stacks are reachable); 4 KiB slots in page table A at 0x40000000 and page
 * table B at 0x80000000; A again at 0x40400000 through a second PDE (the alias); large
 * slots at 0xC0000000. In 32-bit mode the slots use both halves of each 1024-entry page
 * table (entries 0..31 and 512..543) and the PDEs lie in three quarters of the page
 * directory, so shadow pages of every quadrant are built; in PAE mode the four spaces'
 * PDPTs share one 4 KiB page (CR3 differs only in bits 5..6). Needs 128 MiB of RAM. */
#include "libc.h"
#include "x86.h"
#include "trap32.h"

#ifdef PAE
typedef u64 pte_t;
#define NENT        512
#define LARGE_SHIFT 21
#define MODE_NAME   "pt-torture-pae"
#else
typedef u32 pte_t;
#define NENT        1024
#define LARGE_SHIFT 22
#define MODE_NAME   "pt-torture-32"
#endif
#define LARGE_SIZE  (1u << LARGE_SHIFT)

#define NS          4
#define NSMALL      128             /* 2 page tables x 64 entries */
#define NLARGE      8
#define SMALL_VA_A  0x40000000u
#define SMALL_VA_B  0x80000000u
#define ALIAS_VA    0x40400000u     /* second PDE into page table A */
#define LARGE_VA    0xC0000000u
#define POOL_BASE   0x4000000u      /* data frames: 64 MiB .. 128 MiB */
#define POOL_FRAMES 16384u
#define POOL_BLOCKS (POOL_FRAMES * 4096u / LARGE_SIZE)
#define TABLES_BASE 0x400000u       /* page tables: 4 MiB .. 12 MiB */
#define TABLES_END  0xc00000u
#define ITERATIONS  20000
#define IDENT_TOP   0x40000000u

#define P   0x001u
#define RW  0x002u
#define US  0x004u
#define ACC 0x020u
#define DIRTY 0x040u
#define PS  0x080u
#define AD_MASK (ACC | DIRTY)
#define LEAF_FLAGS (P | RW | US)
#define UPPER_FLAGS (P | RW | US)
#define ADDR_MASK ((pte_t)0xfffff000u)
#define CR0_WP_BIT (1u << 16)
#define CR0_PG_BIT (1u << 31)
#define CR4_PSE (1u << 4)
#define CR4_PAE (1u << 5)
#define NX_BIT (1ull << 63)

static u32 cr3_of[NS];
static pte_t *pt_small[NS][2];      /* page tables A and B */
static pte_t *pd_of[NS][4];         /* PAE: the PD under each PDPTE; 32-bit: [0] = the PD */
#ifdef PAE
static u64 *pdpt_of[NS];
static u64 *ident_pd;               /* shared by all spaces */
#endif
static pte_t leaf_model[NS][NSMALL + NLARGE];
static u8 ad_model[NS][NSMALL + NLARGE];
static u32 tags[POOL_FRAMES];
static int cur = -1;
static u32 next_table = TABLES_BASE, tables_used;

static u32 alloc_table(void)
{
    if (next_table + 4096 > TABLES_END) {
        puts("FAIL: out of page-table pages");
        exit(EXIT_FAIL);
    }
    u32 pa = next_table;
    next_table += 4096;
    tables_used++;
    memset((void *)(uintptr_t)pa, 0, 4096);
    return pa;
}

static u64 rng = 0x9e3779b97f4a7c15ull;
static u32 rnd(u32 n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (u32)(rng >> 33) % n;
}

static u32 mix(u32 x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

/* Entry index inside a page table for small slot k (0..63). */
static int slot_index(int k)
{
#ifdef PAE
    return k;
#else
    return k < 32 ? k : 512 + (k - 32); /* both halves: shadow quadrants 0 and 1 */
#endif
}

static u32 slot_va(int slot)
{
    if (slot < NSMALL)
        return (slot < 64 ? SMALL_VA_A : SMALL_VA_B) + (u32)slot_index(slot % 64) * 4096u;
    return LARGE_VA + (u32)(slot - NSMALL) * LARGE_SIZE;
}

static pte_t *pde_ptr(int s, u32 va)
{
#ifdef PAE
    return &pd_of[s][va >> 30][(va >> 21) & 511];
#else
    return &pd_of[s][0][va >> 22];
#endif
}

static pte_t *leaf_ptr(int s, int slot)
{
    if (slot < NSMALL)
        return &pt_small[s][slot / 64][slot_index(slot % 64)];
    return pde_ptr(s, slot_va(slot));
}

static void switch_to(int s)
{
    if (cur != s) {
        write_cr3_32(cr3_of[s]);
        cur = s;
    }
}

static void flush_cur(void) { write_cr3_32(cr3_of[cur]); }

static u32 tag_index(u32 pa) { return (pa - POOL_BASE) >> 12; }
static u32 *phys32(u32 pa) { return (u32 *)(uintptr_t)pa; }

/* ---------------------------------------------------------------- phase 1 */

static struct {
    u32 reads, writes, remaps, unmaps, ad_clears, faults, switches;
    u32 bad_value, bad_fault, bad_entry, bad_ad;
} st;

static void set_leaf(int s, int slot, pte_t entry)
{
    leaf_model[s][slot] = entry;
    ad_model[s][slot] = 0;
    *(volatile pte_t *)leaf_ptr(s, slot) = entry;
    if (s == cur)
        invlpg((void *)(uintptr_t)slot_va(slot));
}

static void check_leaf(int s, int slot)
{
    pte_t e = *(volatile pte_t *)leaf_ptr(s, slot);
    if ((e & ~(pte_t)AD_MASK) != leaf_model[s][slot])
        st.bad_entry++;
    if ((e & AD_MASK) != ad_model[s][slot])
        st.bad_ad++;
}

static void access(int s, int slot, int write)
{
    if (cur != s)
        st.switches++;
    switch_to(s);
    pte_t entry = leaf_model[s][slot];
    u32 sub = slot < NSMALL ? 0 : rnd(LARGE_SIZE / 4096);
    u32 va = slot_va(slot) + sub * 4096;
    u32 pa = ((u32)entry & 0xfffff000u & ~(slot < NSMALL ? 0u : LARGE_SIZE - 1)) + sub * 4096;
    int ok;
    u32 v = 0, nv = 0;
    trap_reset();
    if (write) {
        st.writes++;
        nv = mix((u32)rng ^ va);
        ok = probe_write32(va, nv);
    } else {
        st.reads++;
        ok = probe_read32(va, &v);
    }
    if (!(entry & P)) {
        st.faults++;
        if (ok || trap_last.vector != 14 || trap_last.err != (write ? 2u : 0u) || trap_last.cr2 != va)
            st.bad_fault++;
    } else if (!ok) {
        st.bad_fault++;
    } else if (write) {
        tags[tag_index(pa)] = nv;
        ad_model[s][slot] = ACC | DIRTY;
    } else {
        if (v != tags[tag_index(pa)])
            st.bad_value++;
        ad_model[s][slot] |= ACC;
    }
    check_leaf(s, slot);
}

static pte_t random_leaf(int slot)
{
    if (slot < NSMALL)
        return (POOL_BASE + rnd(POOL_FRAMES) * 4096u) | LEAF_FLAGS;
    return (POOL_BASE + rnd(POOL_BLOCKS) * LARGE_SIZE) | LEAF_FLAGS | PS;
}

static void phase_random(void)
{
    for (int i = 0; i < ITERATIONS; i++) {
        int s = (int)rnd(NS), slot = (int)rnd(NSMALL + NLARGE);
        u32 op = rnd(100);
        if (op < 25) {
            set_leaf(s, slot, random_leaf(slot));
            st.remaps++;
        } else if (op < 30) {
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
    printf("random: %u reads, %u writes, %u remaps, %u unmaps, %u A/D clears, %u expected faults, "
           "%u CR3 switches\n",
           st.reads, st.writes, st.remaps, st.unmaps, st.ad_clears, st.faults, st.switches);
    check_eq("random: every read returned the modelled frame contents", st.bad_value, 0);
    check_eq("random: faults exactly where the model has no mapping (error code, CR2)", st.bad_fault, 0);
    check_eq("random: page-table entries match the model", st.bad_entry, 0);
    check_eq("random: A/D bits match the model after every access and clear", st.bad_ad, 0);
}

/* ---------------------------------------------------------------- phase 2 */

static pte_t saved[NENT];

static void zero_and_refill(int s, int table, const char *what)
{
    pte_t *pt = pt_small[s][table];
    memcpy(saved, pt, 4096);
    for (int i = 0; i < NENT; i++)
        saved[i] &= ~(pte_t)AD_MASK;
    memset(pt, 0, 4096);
    if (s == cur)
        flush_cur();
    u32 bad = 0;
    switch_to(s);
    for (int k = 0; k < 64; k++) {
        u32 va = slot_va(table * 64 + k), v;
        trap_reset();
        if (probe_read32(va, &v) || trap_last.vector != 14 || trap_last.err != 0 || trap_last.cr2 != va)
            bad++;
    }
    char name[100];
    snprintf(name, sizeof name, "%s: every slot faults (not present) after rep stosb zeroed its table", what);
    check_eq(name, bad, 0);

    memcpy(pt, saved, 4096);
    flush_cur();
    u32 before = st.bad_value + st.bad_fault + st.bad_entry + st.bad_ad;
    for (int k = 0; k < 64; k++) {
        int slot = table * 64 + k;
        ad_model[s][slot] = 0;
        access(s, slot, 0);
    }
    bad = st.bad_value + st.bad_fault + st.bad_entry + st.bad_ad - before;
    snprintf(name, sizeof name, "%s: refilled with rep movsb, every slot reads its frame again", what);
    check_eq(name, bad, 0);
}

/* ---------------------------------------------------------------- phase 3 */

#define EXEC_SUP_OFF  0x10 /* ret */
#define EXEC_USER_OFF 0x20 /* int $0x80 */

static int fault_is(u32 err, u32 cr2)
{
    return trap_last.count == 1 && trap_last.vector == 14 && trap_last.err == err && trap_last.cr2 == cr2;
}

static void report_fault(const char *name, int ok)
{
    check(name, ok);
    if (!ok)
        printf("      %u exception(s): vector %u, error %#x, CR2 %#x\n", trap_last.count, trap_last.vector,
               trap_last.err, trap_last.cr2);
}

static u32 prepare(int slot, pte_t flags, u32 *frame_out)
{
    u32 pa = POOL_BASE + (POOL_FRAMES - 1 - (u32)slot) * 4096u;
    u8 *p = (u8 *)(uintptr_t)pa;
    p[EXEC_SUP_OFF] = 0xC3;
    p[EXEC_USER_OFF] = 0xCD;
    p[EXEC_USER_OFF + 1] = 0x80;
    phys32(pa)[0] = tags[tag_index(pa)] = mix(pa);
    switch_to(0);
    set_leaf(0, slot, pa | flags);
    if (frame_out)
        *frame_out = pa;
    return slot_va(slot);
}

static void phase_permissions(void)
{
    u32 v, va, pa;
    int ok;
    switch_to(0);

    /* R/W = 0 at the leaf. */
    va = prepare(10, P | US, &pa);
    trap_reset();
    ok = probe_read32(va, &v) && v == tags[tag_index(pa)];
    check("leaf R/W=0: ring-0 read works", ok);
    trap_reset();
    ok = !probe_write32(va, 1);
    report_fault("leaf R/W=0: ring-0 write with CR0.WP=1 faults, error 0x3", ok && fault_is(0x3, va));
    write_cr0_32(read_cr0_32() & ~CR0_WP_BIT);
    trap_reset();
    ok = probe_write32(va, 0x1234) && probe_read32(va, &v) && v == 0x1234;
    check("leaf R/W=0: CR0.WP=0 takes effect at once, ring-0 write works", ok && trap_last.count == 0);
    write_cr0_32(read_cr0_32() | CR0_WP_BIT);
    trap_reset();
    ok = !probe_write32(va, 2);
    report_fault("leaf R/W=0: CR0.WP=1 again takes effect at once, write faults 0x3", ok && fault_is(0x3, va));
    trap_reset();
    ok = user_read32(va, &v) && v == 0x1234;
    check("leaf R/W=0: ring-3 read works", ok);
    trap_reset();
    ok = !user_write32(va, 3);
    report_fault("leaf R/W=0: ring-3 write faults, error 0x7", ok && fault_is(0x7, va));
    tags[tag_index(pa)] = 0x1234;

    set_leaf(0, 10, pa | P | RW | US);
    trap_reset();
    ok = user_write32(va, 0x5678) && probe_read32(va, &v) && v == 0x5678;
    check("leaf R/W 0 -> 1 with invlpg: ring-3 write works", ok);
    tags[tag_index(pa)] = 0x5678;

    /* U/S = 0 at the leaf. */
    va = prepare(11, P | RW, &pa);
    trap_reset();
    ok = !user_read32(va, &v);
    report_fault("leaf U/S=0: ring-3 read faults, error 0x5", ok && fault_is(0x5, va));
    trap_reset();
    ok = !user_write32(va, 1);
    report_fault("leaf U/S=0: ring-3 write faults, error 0x7", ok && fault_is(0x7, va));
    trap_reset();
    ok = probe_read32(va, &v) && v == tags[tag_index(pa)];
    check("leaf U/S=0: ring-0 read works", ok);
    set_leaf(0, 11, pa | P | RW | US);
    trap_reset();
    ok = user_read32(va, &v) && v == tags[tag_index(pa)];
    check("leaf U/S 0 -> 1 with invlpg: ring-3 read works", ok);

    /* Instruction fetch from a not-present page: the I/D bit is reported only with PAE and
     * EFER.NXE = 1 (or SMEP), never in 32-bit paging (SDM Vol. 3A 4.7). */
    va = prepare(15, P | RW | US, &pa);
    set_leaf(0, 15, 0);
#ifdef PAE
    trap_reset();
    ok = !probe_exec(va + EXEC_SUP_OFF);
    report_fault("PAE, NXE=1: ring-0 fetch from a not-present page, error 0x10", ok && fault_is(0x10, va + EXEC_SUP_OFF));
    trap_reset();
    ok = !user_exec(va + EXEC_USER_OFF);
    report_fault("PAE, NXE=1: ring-3 fetch from a not-present page, error 0x14", ok && fault_is(0x14, va + EXEC_USER_OFF));
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_NXE);
    trap_reset();
    ok = !probe_exec(va + EXEC_SUP_OFF);
    report_fault("PAE, NXE=0: ring-0 fetch from a not-present page, error 0x0 (no I/D)", ok && fault_is(0x0, va + EXEC_SUP_OFF));
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
#else
    trap_reset();
    ok = !probe_exec(va + EXEC_SUP_OFF);
    report_fault("32-bit paging: ring-0 fetch from a not-present page, error 0x0 (no I/D)", ok && fault_is(0x0, va + EXEC_SUP_OFF));
    trap_reset();
    ok = !user_exec(va + EXEC_USER_OFF);
    report_fault("32-bit paging: ring-3 fetch from a not-present page, error 0x4 (no I/D)", ok && fault_is(0x4, va + EXEC_USER_OFF));
#endif
    set_leaf(0, 15, pa | P | RW | US);
    trap_reset();
    ok = probe_exec(va + EXEC_SUP_OFF) && user_exec(va + EXEC_USER_OFF);
    check("fetch from the page once mapped: ring 0 and ring 3 work", ok);

#ifdef PAE
    /* NX at the leaf (EFER.NXE = 1). */
    va = prepare(12, P | RW | US | NX_BIT, &pa);
    trap_reset();
    ok = !probe_exec(va + EXEC_SUP_OFF);
    report_fault("leaf NX=1: ring-0 fetch faults, error 0x11", ok && fault_is(0x11, va + EXEC_SUP_OFF));
    trap_reset();
    ok = !user_exec(va + EXEC_USER_OFF);
    report_fault("leaf NX=1: ring-3 fetch faults, error 0x15", ok && fault_is(0x15, va + EXEC_USER_OFF));
    trap_reset();
    ok = probe_read32(va, &v) && v == tags[tag_index(pa)];
    check("leaf NX=1: ring-0 read works", ok);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) & ~(u64)EFER_NXE);
    invlpg((void *)(uintptr_t)va);
    trap_reset();
    ok = !probe_read32(va, &v);
    /* SDM error code 0x9 (P | RSVD); QEMU TCG reports 0x8: P is not judged (see pt-rsvd). */
    report_fault("EFER.NXE=0: the NX bit is reserved, read faults with RSVD (after invlpg)",
                 ok && trap_last.count == 1 && trap_last.vector == 14 && (trap_last.err & 0x1e) == 0x8 &&
                     trap_last.cr2 == va);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    trap_reset();
    ok = probe_read32(va, &v) && v == tags[tag_index(pa)];
    check("EFER.NXE=1 again: read works without any flush", ok && trap_last.count == 0);
    set_leaf(0, 12, pa | P | RW | US);
    trap_reset();
    ok = probe_exec(va + EXEC_SUP_OFF) && user_exec(va + EXEC_USER_OFF);
    check("leaf NX 1 -> 0 with invlpg: ring-0 and ring-3 fetches work", ok);
#endif

    /* Rights at the PDE of page table A. */
    va = prepare(13, P | RW | US, &pa);
    pte_t *pde = pde_ptr(0, SMALL_VA_A);
    pte_t pde_saved = *pde & ~(pte_t)AD_MASK;
    *pde = pde_saved & ~(pte_t)RW;
    flush_cur();
    trap_reset();
    ok = !probe_write32(va, 1);
    report_fault("PDE R/W=0 over a writable PTE: ring-0 write faults, error 0x3", ok && fault_is(0x3, va));
    *pde = pde_saved & ~(pte_t)US;
    flush_cur();
    trap_reset();
    ok = !user_read32(va, &v);
    report_fault("PDE U/S=0 over a user PTE: ring-3 read faults, error 0x5", ok && fault_is(0x5, va));
    trap_reset();
    ok = probe_write32(va, 0x9abc) && probe_read32(va, &v) && v == 0x9abc;
    check("PDE U/S=0: ring-0 write and read work", ok);
    tags[tag_index(pa)] = 0x9abc;
    *pde = pde_saved;
    flush_cur();
    for (int k = 0; k < 64; k++) /* resync the model's A/D bits of table A */
        ad_model[0][k] = (u8)(pt_small[0][0][slot_index(k)] & AD_MASK);

    /* One page table reachable through two PDEs with different rights. */
    pte_t *alias_pde = pde_ptr(0, ALIAS_VA);
    *alias_pde = (pte_t)(uintptr_t)pt_small[0][0] | P;
    flush_cur();
    u32 alias = ALIAS_VA + (va - SMALL_VA_A);
    trap_reset();
    ok = probe_read32(alias, &v) && v == tags[tag_index(pa)];
    check("two PDEs, one page table: ring-0 read through the read-only alias sees the same frame", ok);
    trap_reset();
    ok = !probe_write32(alias, 1);
    report_fault("two PDEs: ring-0 write through the read-only PDE faults, error 0x3", ok && fault_is(0x3, alias));
    trap_reset();
    ok = !user_read32(alias, &v);
    report_fault("two PDEs: ring-3 read through the supervisor PDE faults, error 0x5", ok && fault_is(0x5, alias));
    trap_reset();
    ok = user_write32(va, 0x4444) && probe_read32(alias, &v) && v == 0x4444;
    check("two PDEs: ring-3 write through the user PDE is visible through the alias", ok);
    tags[tag_index(pa)] = 0x4444;
    *alias_pde = 0;
    flush_cur();

    /* Page table A mapped as data at slot 100 (in table B); entry of slot 14 rewritten
     * through that mapping. */
    u32 pta = (u32)(uintptr_t)pt_small[0][0];
    set_leaf(0, 100, pta | P | RW);
    u32 frame14 = POOL_BASE + 4096u * 77;
    pte_t new14 = frame14 | P | RW | US;
    u32 off14 = (u32)slot_index(14) * sizeof(pte_t);
    trap_reset();
    ok = probe_read32(slot_va(100) + off14, &v) && v == (u32)*(volatile pte_t *)&pt_small[0][0][slot_index(14)];
    check("page table A mapped as data: reading the entry of slot 14 through the mapping matches", ok);
    ok = probe_write32(slot_va(100) + off14, (u32)new14);
#ifdef PAE
    ok = ok && probe_write32(slot_va(100) + off14 + 4, 0);
#endif
    leaf_model[0][14] = new14;
    ad_model[0][14] = 0;
    invlpg((void *)(uintptr_t)slot_va(14));
    trap_reset();
    ok = ok && probe_read32(slot_va(14), &v) && v == tags[tag_index(frame14)];
    check("page table A written through its data mapping: slot 14 now reads its new frame", ok);

    /* Page table B maps itself at slot 127; the entry of slot 126 is written through it. */
    u32 ptb = (u32)(uintptr_t)pt_small[0][1];
    set_leaf(0, 127, ptb | P | RW);
    u32 frame126 = POOL_BASE + 4096u * 99;
    pte_t new126 = frame126 | P | RW | US;
    u32 off126 = (u32)slot_index(126 - 64) * sizeof(pte_t), off127 = (u32)slot_index(127 - 64) * sizeof(pte_t);
    ok = probe_write32(slot_va(127) + off126, (u32)new126);
    leaf_model[0][126] = new126;
    ad_model[0][126] = 0;
    invlpg((void *)(uintptr_t)slot_va(126));
    trap_reset();
    ok = ok && probe_read32(slot_va(126), &v) && v == tags[tag_index(frame126)];
    ok = ok && probe_read32(slot_va(127) + off127, &v) && (v & 0xfffff000u) == ptb && (v & ACC);
    check("self-mapped page table B: an entry written through itself, slot 126 reads its new frame", ok);
    set_leaf(0, 100, 0);
    set_leaf(0, 127, 0);

#ifdef PAE
    /* PDPTEs are loaded on CR3 writes: point PDPTE 3 of space 0 at space 1's PD for
     * 0x80000000 and reload CR3: the large-slot range now shows table B of space 1. */
    u64 pdpte3 = pdpt_of[0][3];
    pdpt_of[0][3] = pdpt_of[1][2];
    write_cr3_32(cr3_of[0]);
    u32 slot_b = 64 + 5;
    trap_reset();
    ok = probe_read32(LARGE_VA + (slot_va(slot_b) - SMALL_VA_B), &v);
    u32 want = (leaf_model[1][slot_b] & P) ? tags[tag_index((u32)leaf_model[1][slot_b] & 0xfffff000u)] : 0;
    ok = (leaf_model[1][slot_b] & P) ? ok && v == want : !ok && trap_last.err == 0;
    check("PDPTE rewritten + CR3 reload: the new PD is used (space 0 sees space 1's table B)", ok);
    pdpt_of[0][3] = pdpte3;
    write_cr3_32(cr3_of[0]);
    ad_model[1][slot_b] = (u8)(*leaf_ptr(1, slot_b) & AD_MASK);
    trap_reset();
#endif
}

static void build_spaces(void)
{
#ifdef PAE
    u32 pdpt_page = alloc_table();
    ident_pd = (u64 *)(uintptr_t)alloc_table();
    for (u32 i = 0; i < 512; i++)
        ident_pd[i] = ((u64)i << 21) | P | RW | US | PS;
    for (int s = 0; s < NS; s++) {
        pdpt_of[s] = (u64 *)(uintptr_t)(pdpt_page + 32u * (u32)s);
        pd_of[s][0] = ident_pd;
        pdpt_of[s][0] = (u32)(uintptr_t)ident_pd | P;
        for (int i = 1; i < 4; i++) {
            pd_of[s][i] = (u64 *)(uintptr_t)alloc_table();
            pdpt_of[s][i] = (u32)(uintptr_t)pd_of[s][i] | P; /* PDPTEs have no R/W, U/S */
        }
        cr3_of[s] = (u32)(uintptr_t)pdpt_of[s];
    }
#else
    for (int s = 0; s < NS; s++) {
        pd_of[s][0] = (u32 *)(uintptr_t)alloc_table();
        for (u32 i = 0; i < IDENT_TOP >> 22; i++)
            pd_of[s][0][i] = (i << 22) | P | RW | US | PS;
        cr3_of[s] = (u32)(uintptr_t)pd_of[s][0];
    }
#endif
    for (int s = 0; s < NS; s++) {
        for (int t = 0; t < 2; t++) {
            pt_small[s][t] = (pte_t *)(uintptr_t)alloc_table();
            *pde_ptr(s, t ? SMALL_VA_B : SMALL_VA_A) = (u32)(uintptr_t)pt_small[s][t] | UPPER_FLAGS;
        }
        for (int slot = 0; slot < NSMALL + NLARGE; slot++) {
            leaf_model[s][slot] = random_leaf(slot);
            *leaf_ptr(s, slot) = leaf_model[s][slot];
        }
    }
}

void kmain(uint32_t magic, uint32_t mbi_addr)
{
    serial_init();
#ifdef PAE
    puts("pt-torture-pae: PAE paging in protected mode: remaps, invlpg, CR3 switches, A/D bits, permission faults");
#else
    puts("pt-torture-32: 2-level 32-bit paging with 4 MiB pages: remaps, invlpg, CR3 switches, A/D bits, permission faults");
#endif
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    const struct multiboot_info *mbi = (const struct multiboot_info *)(uintptr_t)mbi_addr;
    u64 ram_top = 0x100000ull + (u64)mbi->mem_upper * 1024;
    if (!check("RAM reaches 128 MiB", (mbi->flags & 1) && ram_top >= POOL_BASE + POOL_FRAMES * 4096ull))
        check_finish();
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    int feat = (d >> 3) & 1; /* PSE */
#ifdef PAE
    feat = (d >> 6) & 1; /* PAE */
    cpuid(0x80000001u, 0, &a, &b, &c, &d);
    feat &= (d >> 20) & 1; /* NX */
    if (!check("CPUID advertises PAE and NX", feat))
        check_finish();
#else
    if (!check("CPUID advertises PSE", feat))
        check_finish();
#endif

    trap_init();
    for (u32 f = 0; f < POOL_FRAMES; f++)
        phys32(POOL_BASE + f * 4096u)[0] = tags[f] = mix(f + 1);
    build_spaces();

#ifdef PAE
    write_cr4_32(read_cr4_32() | CR4_PAE);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
#else
    write_cr4_32(read_cr4_32() | CR4_PSE);
#endif
    write_cr3_32(cr3_of[0]);
    cur = 0;
    write_cr0_32(read_cr0_32() | CR0_PG_BIT | CR0_WP_BIT);
    printf("paging on: %u page-table pages, 4 address spaces x (128 4 KiB + 8 %u MiB slots)\n", tables_used,
           LARGE_SIZE >> 20);

    phase_random();
    zero_and_refill(cur, 0, "current space, table A");
    zero_and_refill((cur + 1) % NS, 1, "other space, table B");
    phase_permissions();

    switch_to(0);
    u32 bad = 0;
    for (u32 f = 0; f < POOL_FRAMES; f++)
        if (phys32(POOL_BASE + f * 4096u)[0] != tags[f])
            bad++;
    check_eq("every pool frame holds the modelled value (identity map)", bad, 0);
    write_cr0_32(read_cr0_32() & ~CR0_PG_BIT);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
