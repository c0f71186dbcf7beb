/* paging.h - a physical page allocator and 4-level page-table helpers. Physical
 * memory is reached through the boot stub's identity map (PML4 slot 0), which every
 * address space built here shares. */
#ifndef PAGING_H
#define PAGING_H
#include "libc.h"
#include "x86.h"

void palloc_init(u64 start, u64 end); /* 4 KiB aligned physical range */
u64 palloc_page(void);                /* a zeroed 4 KiB page; fails the image when empty */
u64 palloc_used(void);                /* pages handed out so far */

static inline u64 *phys_ptr(u64 pa) { return (u64 *)(uintptr_t)pa; }

/* A new PML4 sharing the identity map (slot 0) and, if given, one extra entry. */
u64 as_create(u64 extra_slot, u64 extra_pml4e);

/* Pointer to the entry for va at `level` (4 = PML4E, 3 = PDPTE, 2 = PDE, 1 = PTE),
 * creating missing intermediate tables with `upper` flags; NULL if a table is missing
 * and create is 0, or if a large page is in the way. */
u64 *pt_entry(u64 pml4, u64 va, int level, int create, u64 upper);

#define PT_INDEX(va, level) (((va) >> (12 + 9 * ((level) - 1))) & 0x1ff)

#endif
