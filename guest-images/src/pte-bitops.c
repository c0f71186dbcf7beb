/* pte-bitops - Linux-style bit operations on single bytes and bits of live PTEs (seed
 * 003's "a one-byte write to a pte is not misaligned" rule), each followed by invlpg and
 * checked by the accesses that must now fault or work:
 *   - R/W (bit 1, byte 0): clear_bit/set_bit with a constant -> `lock andb`/`lock orb`;
 *     with a variable bit number -> `lock btrq reg`/`lock btsq reg` (the old value in CF);
 *   - A (bit 5): ptep_test_and_clear_young -> `lock btrq $5` (CF = accessed), then the
 *     next access must set A again; D (bit 6): cleared with a plain `andb`, a read must
 *     leave it clear, a write must set it;
 *   - NX (bit 63, byte 7): `lock orb $0x80` / `lock andb $0x7f` on byte 7, and
 *     `lock btsl $31` / `lock btrl $31` on the upper dword;
 *   - U/S (bit 2): `lock btrl $2` / `lock btsl $2` (every 8th page, checked from ring 3);
 *   - R/W of the PDE: `lock andb`/`lock orb` on the PDE's low byte.
 * 256 pages, 3 rounds; every access is checked (fault or not, error code, CR2, data). */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"

#define NPAGES      256
#define ROUNDS      3
#define REGION_VA   0x8000000000ull      /* PML4 slot 1 */
#define FRAMES_BASE 0x1000000ull
#define EXEC_SUP    0x10                 /* ret */

static u64 *pte[NPAGES], *pde;
static struct {
    u64 ops, accesses, bad_code, bad_rw, bad_rw_var, bad_a, bad_d, bad_nx, bad_nx32, bad_us, bad_pde, bad_data;
} st;

static u64 page_va(int i) { return REGION_VA + (u64)i * 4096; }
static void flush(int i) { invlpg((void *)(uintptr_t)page_va(i)); }
static u8 *byte_of(volatile u64 *e, int n) { return (u8 *)e + n; }

static int lock_btrq(u64 *p, u64 bit)
{
    u8 c;
    __asm__ volatile("lock btrq %2, %0\n\tsetc %1" : "+m"(*p), "=q"(c) : "r"(bit) : "memory", "cc");
    return c;
}

static int lock_btsq(u64 *p, u64 bit)
{
    u8 c;
    __asm__ volatile("lock btsq %2, %0\n\tsetc %1" : "+m"(*p), "=q"(c) : "r"(bit) : "memory", "cc");
    return c;
}

static u64 tag(int i, int r) { return 0xb17b17000000000ull ^ ((u64)r << 40) ^ (u64)i * 0x9e3779b97f4a7c15ull; }

/* 1 if a ring-0 write works (and then the data is checked), 0 if it faults with 0x3. */
static int try_write(int i, u64 v)
{
    trap_reset();
    st.accesses++;
    int ok = probe_write64(page_va(i) + 8, v);
    if (!ok && !(trap_last.vector == 14 && trap_last.err == 0x3 && trap_last.cr2 == page_va(i) + 8))
        st.bad_code++;
    return ok;
}

static int try_read(int i, u64 want)
{
    u64 v;
    trap_reset();
    st.accesses++;
    int ok = probe_read64(page_va(i), &v);
    if (ok && v != want)
        st.bad_data++;
    return ok;
}

static int try_exec(int i)
{
    trap_reset();
    st.accesses++;
    int ok = probe_exec(page_va(i) + EXEC_SUP);
    if (!ok && !(trap_last.vector == 14 && trap_last.err == 0x11 && trap_last.cr2 == page_va(i) + EXEC_SUP))
        st.bad_code++;
    return ok;
}

static void one_page(int i, int r)
{
    u64 *e = pte[i];
    u64 t = tag(i, 0);

    /* R/W with constant masks (lock andb / lock orb on byte 0). */
    __asm__ volatile("lock andb $0xfd, %0" : "+m"(*byte_of(e, 0)));
    flush(i);
    st.bad_rw += try_write(i, 1) || !try_read(i, t);
    __asm__ volatile("lock orb $0x02, %0" : "+m"(*byte_of(e, 0)));
    flush(i);
    st.bad_rw += !try_write(i, (u64)r);
    st.ops += 2;

    /* R/W with a variable bit number (lock btr/bts reg): CF returns the old bit. */
    u64 bit = 1 + (u64)(r & 0); /* always 1, but not a constant to the compiler's eye */
    __asm__ volatile("" : "+r"(bit));
    st.bad_rw_var += !lock_btrq(e, bit);
    flush(i);
    st.bad_rw_var += try_write(i, 2);
    st.bad_rw_var += lock_btsq(e, bit);
    flush(i);
    st.bad_rw_var += !try_write(i, 3) || lock_btsq(e, bit) != 1;
    st.ops += 3;

    /* A: test-and-clear-young, then an access sets it again. */
    st.bad_a += !lock_btrq(e, 5); /* the writes above set A */
    flush(i);
    st.bad_a += lock_btrq(e, 5) != 0; /* nothing touched it since */
    st.bad_a += !try_read(i, t) || !(*(volatile u64 *)e & PTE_A);
    st.ops += 2;

    /* D: cleared with a plain andb; a read leaves it clear, a write sets it. */
    __asm__ volatile("andb $0xbf, %0" : "+m"(*byte_of(e, 0)));
    flush(i);
    st.bad_d += !try_read(i, t) || (*(volatile u64 *)e & PTE_D);
    st.bad_d += !try_write(i, 4) || !(*(volatile u64 *)e & PTE_D);
    st.ops++;

    /* NX through byte 7 (lock orb / lock andb), then through the upper dword (btsl/btrl). */
    __asm__ volatile("lock orb $0x80, %0" : "+m"(*byte_of(e, 7)));
    flush(i);
    st.bad_nx += try_exec(i) || !try_read(i, t);
    __asm__ volatile("lock andb $0x7f, %0" : "+m"(*byte_of(e, 7)));
    flush(i);
    st.bad_nx += !try_exec(i);
    __asm__ volatile("lock btsl $31, %0" : "+m"(*(u32 *)byte_of(e, 4)) : : "cc");
    flush(i);
    st.bad_nx32 += try_exec(i) || !(*(volatile u64 *)e & PTE_NX);
    __asm__ volatile("lock btrl $31, %0" : "+m"(*(u32 *)byte_of(e, 4)) : : "cc");
    flush(i);
    st.bad_nx32 += !try_exec(i);
    st.ops += 4;

    /* U/S from ring 3, on every 8th page (ring-3 round trips are slow). */
    if (i % 8 == 0) {
        u64 v;
        __asm__ volatile("lock btrl $2, %0" : "+m"(*(u32 *)e) : : "cc");
        flush(i);
        trap_reset();
        int ok = user_read64(page_va(i), &v);
        st.bad_us += ok || trap_last.err != 0x5 || trap_last.cr2 != page_va(i);
        __asm__ volatile("lock btsl $2, %0" : "+m"(*(u32 *)e) : : "cc");
        flush(i);
        trap_reset();
        st.bad_us += !user_read64(page_va(i), &v) || v != t;
        st.accesses += 2;
        st.ops += 2;
    }
    trap_reset();
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("pte-bitops: andb/orb/lock btr/lock bts on single PTE bytes and bits, checked by the accesses that follow");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    trap_init();
    palloc_init(0x400000, 0x800000);
    trap_user_setup(palloc_page);
    write_cr0(read_cr0() | CR0_WP);
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    u64 pml4 = as_create(TRAP_USER_PML4_SLOT, trap_user_pml4e());
    for (int i = 0; i < NPAGES; i++) {
        u64 f = FRAMES_BASE + (u64)i * 4096;
        phys_ptr(f)[0] = tag(i, 0);
        ((u8 *)(uintptr_t)f)[EXEC_SUP] = 0xC3;
        pte[i] = pt_entry(pml4, page_va(i), 1, 1, PTE_P | PTE_RW | PTE_US);
        *pte[i] = f | PTE_P | PTE_RW | PTE_US;
    }
    pde = pt_entry(pml4, REGION_VA, 2, 0, 0);
    write_cr3(pml4);

    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < NPAGES; i++)
            one_page(i, r);

        /* R/W of the PDE: every page of the table becomes read-only at once. */
        __asm__ volatile("lock andb $0xfd, %0" : "+m"(*byte_of(pde, 0)));
        write_cr3(pml4);
        for (int i = 0; i < NPAGES; i += 17)
            st.bad_pde += try_write(i, 5) || !try_read(i, tag(i, 0));
        __asm__ volatile("lock orb $0x02, %0" : "+m"(*byte_of(pde, 0)));
        write_cr3(pml4);
        for (int i = 0; i < NPAGES; i += 17)
            st.bad_pde += !try_write(i, 6);
        st.ops += 2;
        trap_reset();
    }

    printf("%llu bit operations on live page-table entries, %llu checked accesses\n", (unsigned long long)st.ops,
           (unsigned long long)st.accesses);
    check_eq("R/W via lock andb/orb on byte 0: writes fault (0x3) exactly while clear", st.bad_rw, 0);
    check_eq("R/W via lock btr/bts with a register bit number: CF and write faults right", st.bad_rw_var, 0);
    check_eq("A via lock btr $5: CF reports accessed, the next access sets A again", st.bad_a, 0);
    check_eq("D cleared with andb: reads keep it clear, a write sets it", st.bad_d, 0);
    check_eq("NX via lock orb/andb on byte 7: fetches fault (0x11) exactly while set", st.bad_nx, 0);
    check_eq("NX via lock bts/btr on the upper dword: fetches fault exactly while set", st.bad_nx32, 0);
    check_eq("U/S via lock btr/bts: ring-3 reads fault (0x5) exactly while clear", st.bad_us, 0);
    check_eq("PDE R/W via lock andb/orb: writes through the table fault while clear", st.bad_pde, 0);
    check_eq("every successful read returned the page's data", st.bad_data, 0);
    check_eq("every fault had the expected error code (0x3 write, 0x11 fetch) and CR2", st.bad_code, 0);
    write_cr3((u64)(uintptr_t)boot_pml4);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
