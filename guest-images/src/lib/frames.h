/* frames.h - a reference-counted physical page allocator with a free list, for images
 * that create and destroy address spaces (forkwait, kernbench): freed page-table pages
 * come back as data pages and the other way round, as in a real kernel. Pages are
 * handed out lowest address first at the start, then most recently freed first. */
#ifndef FRAMES_H
#define FRAMES_H
#include "libc.h"

void frames_init(u64 start, u64 end); /* 4 KiB aligned physical range, at most 256 MiB */
u64 frame_alloc(void);                /* refcount 1, contents undefined; fails the image when empty */
u64 frame_alloc_zeroed(void);         /* same, cleared with memset (rep stosb) */
void frame_get(u64 pa);               /* refcount + 1 */
int frame_put(u64 pa);                /* refcount - 1; frees at 0 and returns 1 */
unsigned frame_refs(u64 pa);
u64 frames_free(void);                /* pages on the free list */

#endif
