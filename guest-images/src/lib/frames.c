/* frames.c - reference-counted physical page allocator (see frames.h). */
#include "frames.h"

#define MAX_FRAMES 65536u /* 256 MiB */

static u64 base;
static u32 nframes, nfree;
static u32 free_stack[MAX_FRAMES];
static u16 refs[MAX_FRAMES];

void frames_init(u64 start, u64 end)
{
    base = start;
    nframes = (u32)((end - start) >> 12);
    if (nframes > MAX_FRAMES)
        nframes = MAX_FRAMES;
    nfree = 0;
    for (u32 i = nframes; i-- > 0;) /* lowest address on top of the stack */
        free_stack[nfree++] = i;
    memset(refs, 0, sizeof refs);
}

static u32 index_of(u64 pa)
{
    u32 i = (u32)((pa - base) >> 12);
    if (pa < base || i >= nframes || (pa & 0xfff)) {
        printf("FAIL: frames: %#llx is not a frame of the pool\n", (unsigned long long)pa);
        exit(EXIT_FAIL);
    }
    return i;
}

u64 frame_alloc(void)
{
    if (!nfree) {
        puts("FAIL: frames: out of physical pages");
        exit(EXIT_FAIL);
    }
    u32 i = free_stack[--nfree];
    refs[i] = 1;
    return base + ((u64)i << 12);
}

u64 frame_alloc_zeroed(void)
{
    u64 pa = frame_alloc();
    memset((void *)(uintptr_t)pa, 0, 4096);
    return pa;
}

void frame_get(u64 pa) { refs[index_of(pa)]++; }

int frame_put(u64 pa)
{
    u32 i = index_of(pa);
    if (!refs[i]) {
        printf("FAIL: frames: %#llx freed twice\n", (unsigned long long)pa);
        exit(EXIT_FAIL);
    }
    if (--refs[i])
        return 0;
    free_stack[nfree++] = i;
    return 1;
}

unsigned frame_refs(u64 pa) { return refs[index_of(pa)]; }

u64 frames_free(void) { return nfree; }
