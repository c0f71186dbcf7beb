/* flood - page-table pages turned into data buffers and hammered (seed 003's write
 * flooding): a shadow MMU keeps such a page write-protected until it notices the page is
 * no longer a page table.
 *   1. 16 page tables map 512 pages each; every page is read (all tables get shadowed);
 *   2. their PDEs are cleared (+ CR3 reload): the tables are unreachable but their frames
 *      still hold page-table contents;
 *   3. each former table becomes a data buffer and takes 4096 writes of 1, 4 and 8 bytes
 *      at random offsets (tables 0..7 through the identity map, 8..15 through a fresh
 *      4 KiB data mapping), checked against a C model of every byte;
 *   4. a live page table whose entries are rewritten 4096 times, each followed by
 *      invlpg and a read through the new entry (writes interleaved with use: not a flood);
 *   5. the flooded buffers become page tables again (new frames), are relinked, and all
 *      8192 mappings are verified: nothing stale may survive from step 1. */
#include "libc.h"
#include "x86.h"
#include "paging.h"
#include "trap.h"

#define NTABLES     16
#define HAMMER      4096
#define REGION_VA   0x8000000000ull          /* PML4 slot 1: PDE k -> table k */
#define DATA_VA     (REGION_VA + 0x40000000) /* PDPT 1: data mappings of the buffers */
#define LIVE_VA     (REGION_VA + 0x80000000) /* PDPT 2: the live table of step 4 */
#define FRAMES_A    0x1000000ull             /* 16 MiB: frames of step 1 (8192 pages) */
#define FRAMES_B    0x3000000ull             /* 48 MiB: frames of step 5 */

static u64 pml4, *tables[NTABLES], *pde[NTABLES], *data_pt, *live_pt;
static u8 model[4096];

static u64 tag(u64 pa) { return pa * 0x9e3779b97f4a7c15ull ^ 0xf100df100dull; }
static u64 region_va(int k, int i) { return REGION_VA + (u64)k * 0x200000 + (u64)i * 4096; }

static u64 rng = 0xda3e39cb94b95bdbull;
static u64 rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 16;
}

/* Verify all 512 pages of table k map frames base + (k*512 + i)*4096. */
static u64 verify_table(int k, u64 base)
{
    u64 bad = 0, v;
    for (int i = 0; i < 512; i++) {
        trap_reset();
        u64 pa = base + ((u64)k * 512 + (u64)i) * 4096;
        bad += !probe_read64(region_va(k, i), &v) || v != tag(pa);
    }
    return bad;
}

static void fill_table(int k, u64 base)
{
    for (int i = 0; i < 512; i++)
        tables[k][i] = (base + ((u64)k * 512 + (u64)i) * 4096) | PTE_P | PTE_RW;
}

void kmain(uint32_t magic, uint32_t mbi)
{
    serial_init();
    puts("flood: page-table pages torn down, turned into data buffers and hammered");
    check_eq("multiboot magic", magic, MULTIBOOT_BOOTLOADER_MAGIC);
    trap_init();
    palloc_init(0x400000, 0x800000);
    pml4 = as_create(0, 0);
    for (int k = 0; k < NTABLES; k++) {
        pde[k] = pt_entry(pml4, region_va(k, 0), 2, 1, PTE_P | PTE_RW);
        tables[k] = phys_ptr(palloc_page());
    }
    data_pt = phys_ptr(palloc_page());
    live_pt = phys_ptr(palloc_page());
    *pt_entry(pml4, DATA_VA, 2, 1, PTE_P | PTE_RW) = (u64)(uintptr_t)data_pt | PTE_P | PTE_RW;
    *pt_entry(pml4, LIVE_VA, 2, 1, PTE_P | PTE_RW) = (u64)(uintptr_t)live_pt | PTE_P | PTE_RW;
    for (u64 f = 0; f < NTABLES * 512; f++) {
        phys_ptr(FRAMES_A + f * 4096)[0] = tag(FRAMES_A + f * 4096);
        phys_ptr(FRAMES_B + f * 4096)[0] = tag(FRAMES_B + f * 4096);
    }
    for (int k = 0; k < NTABLES; k++) {
        fill_table(k, FRAMES_A);
        *pde[k] = (u64)(uintptr_t)tables[k] | PTE_P | PTE_RW;
    }
    write_cr3(pml4);

    u64 bad = 0;
    for (int k = 0; k < NTABLES; k++)
        bad += verify_table(k, FRAMES_A);
    check_eq("1. 16 page tables x 512 pages: every page reads its frame", bad, 0);

    for (int k = 0; k < NTABLES; k++)
        *pde[k] = 0;
    write_cr3(pml4);
    bad = 0;
    for (int k = 0; k < NTABLES; k++) {
        u64 v;
        trap_reset();
        bad += probe_read64(region_va(k, (k * 37) % 512), &v) || trap_last.err != 0;
    }
    trap_reset();
    check_eq("2. PDEs cleared: the regions fault", bad, 0);

    u64 writes = 0, bad_bytes = 0;
    for (int k = 0; k < NTABLES; k++) {
        u8 *buf = (u8 *)tables[k];
        if (k >= NTABLES / 2) { /* through a fresh data mapping */
            data_pt[k] = (u64)(uintptr_t)tables[k] | PTE_P | PTE_RW;
            invlpg((void *)(uintptr_t)(DATA_VA + (u64)k * 4096));
            buf = (u8 *)(uintptr_t)(DATA_VA + (u64)k * 4096);
        }
        memcpy(model, tables[k], 4096);
        for (int n = 0; n < HAMMER; n++) {
            u64 r = rnd(), v = rnd();
            switch (r & 3) {
            case 0:
                *(volatile u8 *)(buf + (r >> 2) % 4096) = (u8)v;
                model[(r >> 2) % 4096] = (u8)v;
                break;
            case 1: {
                u64 off = ((r >> 2) % 1024) * 4;
                *(volatile u32 *)(buf + off) = (u32)v;
                memcpy(model + off, &v, 4);
                break;
            }
            default: {
                u64 off = ((r >> 2) % 512) * 8;
                *(volatile u64 *)(buf + off) = v;
                memcpy(model + off, &v, 8);
                break;
            }
            }
            writes++;
        }
        const volatile u8 *phys = (const volatile u8 *)tables[k];
        for (int b = 0; b < 4096; b++)
            bad_bytes += phys[b] != model[b] || ((const volatile u8 *)buf)[b] != model[b];
    }
    printf("3. %llu writes into 16 former page tables\n", (unsigned long long)writes);
    check_eq("3. every byte of every hammered buffer matches the model (mapping and identity map)", bad_bytes, 0);

    u64 live_bad = 0;
    for (int n = 0; n < 4096; n++) {
        u64 i = rnd() % 512, f = FRAMES_B + (rnd() % (NTABLES * 512)) * 4096, v;
        live_pt[i] = f | PTE_P | PTE_RW;
        invlpg((void *)(uintptr_t)(LIVE_VA + i * 4096));
        trap_reset();
        live_bad += !probe_read64(LIVE_VA + i * 4096, &v) || v != tag(f);
    }
    check_eq("4. live table rewritten 4096 times, each entry used right after: every read correct", live_bad, 0);

    for (int k = 0; k < NTABLES; k++) {
        if (k >= NTABLES / 2) {
            data_pt[k] = 0;
            invlpg((void *)(uintptr_t)(DATA_VA + (u64)k * 4096));
        }
        fill_table(k, FRAMES_B);
        *pde[k] = (u64)(uintptr_t)tables[k] | PTE_P | PTE_RW;
    }
    write_cr3(pml4);
    bad = 0;
    for (int k = 0; k < NTABLES; k++)
        bad += verify_table(k, FRAMES_B);
    check_eq("5. buffers are page tables again (new frames): all 8192 pages read their new frame", bad, 0);

    write_cr3((u64)(uintptr_t)boot_pml4);
    check_eq("no unexpected exceptions", trap_last.count, 0);
    check_finish();
}
