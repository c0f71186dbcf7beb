/* kernbench - a mixed, kernel-like paging workload (the seeds' kernbench in miniature):
 * up to 4 live processes scheduled by CR3 switches; each tick the scheduled process
 * reads its shared text, writes its copy-on-write data, touches demand-zero heap pages,
 * and the "kernel" ages pages with `lock btrq $5` (test-and-clear-young); processes are
 * created from a template (its page table copied with rep movsb, text shared read-only,
 * data shared copy-on-write: R/W cleared with `lock andb`), fork (data and heap shared
 * copy-on-write), and exit (references dropped, page tables cleared with memset and freed).
 * Every read is checked against a model; the printed checksum hashes every value read and
 * must equal the same hash over the model. */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"
#include "frames.h"

#define TICKS       3000
#define NSLOTS      4
#define NTEXT       32                  /* PT0 entries 0..31: text, read-only, shared */
#define NDATA       32                  /* PT0 entries 32..63: data, copy-on-write */
#define NHEAP       32                  /* PT1 entries 0..31: heap, demand-zero */
#define USER_VA     0x8000000000ull     /* PML4 slot 1 */
#define HEAP_VA     (USER_VA + 0x200000)
#define PTE_COW     (1ull << 9)
#define UF          (PTE_P | PTE_RW | PTE_US)

struct proc {
    int live, lifetime;
    u64 pml4, pdpt, pd, pt[2];
    u64 data[NDATA], heap[NHEAP]; /* model: first qword of each page */
    u8 heap_present[NHEAP];
};

static struct proc procs[NSLOTS], *current;
static u64 template_pt, text_frame[NTEXT], template_data[NDATA];
static u64 rng = 0x6a09e667f3bcc909ull;
static u64 hash_read = 0xcbf29ce484222325ull, hash_model = 0xcbf29ce484222325ull;
static struct {
    u64 created, forked, exited, switches, reads, writes, cow_copies, cow_reuses, demand_zero, aged;
    u64 bad_reads, bad_age, bad_faults;
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

static u64 fnv(u64 h, u64 v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        h = (h ^ (v & 0xff)) * 0x100000001b3ull;
    return h;
}

static u64 text_va(int i) { return USER_VA + (u64)i * 4096; }
static u64 data_va(int i) { return USER_VA + (u64)(NTEXT + i) * 4096; }
static u64 heap_va(int i) { return HEAP_VA + (u64)i * 4096; }
static u64 *data_pte(struct proc *p, int i) { return &phys_ptr(p->pt[0])[NTEXT + i]; }
static u64 *heap_pte(struct proc *p, int i) { return &phys_ptr(p->pt[1])[i]; }
static u64 text_value(int i) { return mix(0x7e47ull + (u64)i); }

static void switch_to(struct proc *p)
{
    if (current != p) {
        write_cr3(p ? p->pml4 : (u64)(uintptr_t)boot_pml4);
        current = p;
        st.switches++;
    }
}

static void build_tables(struct proc *p)
{
    p->pml4 = frame_alloc_zeroed();
    p->pdpt = frame_alloc_zeroed();
    p->pd = frame_alloc_zeroed();
    p->pt[0] = frame_alloc(); /* filled from the template below */
    p->pt[1] = frame_alloc_zeroed();
    phys_ptr(p->pml4)[0] = boot_pml4[0];
    phys_ptr(p->pml4)[1] = p->pdpt | UF;
    phys_ptr(p->pdpt)[0] = p->pd | UF;
    phys_ptr(p->pd)[0] = p->pt[0] | UF;
    phys_ptr(p->pd)[1] = p->pt[1] | UF;
}

/* exec: a new address space from the template page table. */
static void create(struct proc *p)
{
    build_tables(p);
    memcpy(phys_ptr(p->pt[0]), phys_ptr(template_pt), 4096);
    for (int i = 0; i < NTEXT; i++)
        frame_get(text_frame[i]);
    for (int i = 0; i < NDATA; i++) {
        frame_get(template_data[i]);
        p->data[i] = mix(0xda7aull + (u64)i);
    }
    memset(p->heap_present, 0, sizeof p->heap_present);
    p->live = 1;
    p->lifetime = 4 + (int)rnd(16);
    st.created++;
}

static void share_cow(u64 *e)
{
    if (*e & PTE_RW)
        __asm__ volatile("lock andb $0xfd, %0" : "+m"(*(u8 *)e));
}

static void fork_proc(struct proc *parent, struct proc *child)
{
    switch_to(parent);
    build_tables(child);
    for (int i = 0; i < NTEXT + NDATA; i++) {
        u64 *e = &phys_ptr(parent->pt[0])[i];
        if (i >= NTEXT)
            share_cow(e);
        frame_get(*e & PTE_ADDR_MASK);
        phys_ptr(child->pt[0])[i] = *e & ~(PTE_A | PTE_D);
    }
    for (int i = 0; i < NHEAP; i++) {
        u64 *e = heap_pte(parent, i);
        if (*e & PTE_P) {
            share_cow(e);
            frame_get(*e & PTE_ADDR_MASK);
            *heap_pte(child, i) = *e & ~(PTE_A | PTE_D);
        }
    }
    memcpy(child->data, parent->data, sizeof child->data);
    memcpy(child->heap, parent->heap, sizeof child->heap);
    memcpy(child->heap_present, parent->heap_present, sizeof child->heap_present);
    child->live = 1;
    child->lifetime = 4 + (int)rnd(16);
    write_cr3(parent->pml4); /* flush the parent's now read-only translations */
    st.forked++;
}

static void exit_proc(struct proc *p)
{
    switch_to(0);
    for (int i = 0; i < NTEXT + NDATA; i++)
        frame_put(phys_ptr(p->pt[0])[i] & PTE_ADDR_MASK);
    for (int i = 0; i < NHEAP; i++)
        if (*heap_pte(p, i) & PTE_P)
            frame_put(*heap_pte(p, i) & PTE_ADDR_MASK);
    u64 tables[5] = {p->pt[0], p->pt[1], p->pd, p->pdpt, p->pml4};
    for (int t = 0; t < 5; t++) {
        memset(phys_ptr(tables[t]), 0, 4096);
        frame_put(tables[t]);
    }
    p->live = 0;
    st.exited++;
}

/* #PF handler: copy-on-write (present, write) and demand-zero heap (not present). */
static int page_fault(struct trap_frame *f, u64 cr2)
{
    if (f->vector != 14 || !current || cr2 < USER_VA || cr2 >= HEAP_VA + NHEAP * 4096ull)
        return 0;
    u64 *e;
    if (cr2 >= HEAP_VA)
        e = heap_pte(current, (int)((cr2 - HEAP_VA) >> 12));
    else if (cr2 >= data_va(0) && cr2 < data_va(NDATA))
        e = data_pte(current, (int)((cr2 - data_va(0)) >> 12));
    else {
        st.bad_faults++;
        return 0;
    }
    u64 v = *e;
    if (!(v & PTE_P) && cr2 >= HEAP_VA) {
        *e = frame_alloc_zeroed() | UF | PTE_COW;
        st.demand_zero++;
    } else if ((v & PTE_P) && !(v & PTE_RW) && (v & PTE_COW) && (f->err & 2)) {
        u64 old = v & PTE_ADDR_MASK;
        if (frame_refs(old) > 1) {
            u64 n = frame_alloc();
            memcpy(phys_ptr(n), phys_ptr(old), 4096);
            frame_put(old);
            *e = n | (v & ~PTE_ADDR_MASK & ~(PTE_A | PTE_D)) | PTE_RW;
            st.cow_copies++;
        } else {
            *e = v | PTE_RW;
            st.cow_reuses++;
        }
    } else {
        st.bad_faults++;
        return 0;
    }
    invlpg((void *)(uintptr_t)cr2);
    return 1;
}

static void check_read(u64 va, u64 want)
{
    u64 v = *(volatile u64 *)(uintptr_t)va;
    st.bad_reads += v != want;
    hash_read = fnv(hash_read, v);
    hash_model = fnv(hash_model, want);
    st.reads++;
}

static void run_tick(struct proc *p, int tick)
{
    switch_to(p);
    for (int k = 0; k < 4; k++) {
        int i = (int)rnd(NTEXT);
        check_read(text_va(i), text_value(i));
    }
    for (int k = 0; k < 6; k++) {
        int i = (int)rnd(NDATA);
        if (rnd(2)) {
            check_read(data_va(i), p->data[i]);
        } else {
            p->data[i] = mix(p->data[i] ^ (u64)tick);
            *(volatile u64 *)(uintptr_t)data_va(i) = p->data[i];
            st.writes++;
        }
    }
    for (int k = 0; k < 3; k++) {
        int i = (int)rnd(NHEAP);
        if (!p->heap_present[i]) {
            p->heap_present[i] = 1;
            p->heap[i] = 0;
        }
        check_read(heap_va(i), p->heap[i]);
        p->heap[i] = mix(p->heap[i] + (u64)tick);
        *(volatile u64 *)(uintptr_t)heap_va(i) = p->heap[i];
        st.writes++;
    }
    /* Page aging: read a data page (A = 1), test-and-clear-young twice. */
    int i = (int)rnd(NDATA);
    check_read(data_va(i), p->data[i]);
    u8 c1, c2;
    __asm__ volatile("lock btrq $5, %0\n\tsetc %1" : "+m"(*data_pte(p, i)), "=q"(c1) : : "cc", "memory");
    invlpg((void *)(uintptr_t)data_va(i));
    __asm__ volatile("lock btrq $5, %0\n\tsetc %1" : "+m"(*data_pte(p, i)), "=q"(c2) : : "cc", "memory");
    st.bad_age += c1 != 1 || c2 != 0;
    st.aged++;
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("kernbench: processes from a template, fork, copy-on-write, demand-zero heap, page aging, CR3 switches, exit");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    trap_init();
    frames_init(0x1000000, 0x3000000);
    write_cr0(read_cr0() | CR0_WP);
    u64 free0 = frames_free();

    template_pt = frame_alloc_zeroed();
    for (int i = 0; i < NTEXT; i++) {
        text_frame[i] = frame_alloc_zeroed();
        phys_ptr(text_frame[i])[0] = text_value(i);
        phys_ptr(template_pt)[i] = text_frame[i] | PTE_P | PTE_US;
    }
    for (int i = 0; i < NDATA; i++) {
        template_data[i] = frame_alloc_zeroed();
        phys_ptr(template_data[i])[0] = mix(0xda7aull + (u64)i);
        phys_ptr(template_pt)[NTEXT + i] = template_data[i] | PTE_P | PTE_US | PTE_COW;
    }
    trap_hook = page_fault;

    for (int tick = 0; tick < TICKS; tick++) {
        int s = (int)rnd(NSLOTS);
        struct proc *p = &procs[s];
        if (!p->live) {
            int parent = (int)rnd(NSLOTS);
            if (procs[parent].live && rnd(2))
                fork_proc(&procs[parent], p);
            else
                create(p);
        }
        run_tick(p, tick);
        if (--p->lifetime <= 0)
            exit_proc(p);
    }
    for (int s = 0; s < NSLOTS; s++)
        if (procs[s].live)
            exit_proc(&procs[s]);
    trap_hook = 0;

    printf("%llu processes created, %llu forked, %llu exited, %llu CR3 switches\n", (unsigned long long)st.created,
           (unsigned long long)st.forked, (unsigned long long)st.exited, (unsigned long long)st.switches);
    printf("%llu reads, %llu writes, %llu copy-on-write copies, %llu reuses, %llu demand-zero pages, %llu pages aged\n",
           (unsigned long long)st.reads, (unsigned long long)st.writes, (unsigned long long)st.cow_copies,
           (unsigned long long)st.cow_reuses, (unsigned long long)st.demand_zero, (unsigned long long)st.aged);
    printf("checksum %016llx\n", (unsigned long long)hash_read);
    check_eq("every read returned the modelled value", st.bad_reads, 0);
    check_eq("checksum of all values read equals the model's", hash_read, hash_model);
    check_eq("page aging: lock btrq $5 reports accessed, then not accessed", st.bad_age, 0);
    check_eq("no unexpected page faults", st.bad_faults, 0);
    check_eq("every process's pages and tables freed (only template pages remain)", frames_free(),
             free0 - 1 - NTEXT - NDATA);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
