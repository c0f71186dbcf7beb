/* paging.c - bump allocator for physical pages and page-table walk helpers. */
#include "paging.h"

static u64 next_page, end_page, used;

void palloc_init(u64 start, u64 end)
{
    next_page = start;
    end_page = end;
    used = 0;
}

u64 palloc_page(void)
{
    if (next_page + 4096 > end_page) {
        printf("FAIL: out of physical pages (pool ends at %#lx)\n", end_page);
        exit(EXIT_FAIL);
    }
    u64 pa = next_page;
    next_page += 4096;
    used++;
    memset(phys_ptr(pa), 0, 4096);
    return pa;
}

u64 palloc_used(void) { return used; }

u64 as_create(u64 extra_slot, u64 extra_pml4e)
{
    u64 pml4 = palloc_page();
    phys_ptr(pml4)[0] = boot_pml4[0];
    if (extra_slot)
        phys_ptr(pml4)[extra_slot] = extra_pml4e;
    return pml4;
}

u64 *pt_entry(u64 pml4, u64 va, int level, int create, u64 upper)
{
    u64 table = pml4;
    for (int l = 4; l > level; l--) {
        u64 *e = &phys_ptr(table)[PT_INDEX(va, l)];
        if (!(*e & PTE_P)) {
            if (!create)
                return 0;
            *e = palloc_page() | upper;
        } else if (l <= 3 && (*e & PTE_PS)) {
            return 0;
        }
        table = *e & PTE_ADDR_MASK;
    }
    return &phys_ptr(table)[PT_INDEX(va, level)];
}
