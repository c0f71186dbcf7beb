/* trap32.h - GDT/TSS/IDT, exception recording, ring-0 fault probes and ring-3 calls for
 * the 32-bit (protected-mode) paging images. The 32-bit counterpart of lib/trap.h.
 * Ring-3 code and stack are reached through the image's identity map, so the images map
 * the kernel with U/S = 1 in their identity entries. */
#ifndef TRAP32_H
#define TRAP32_H

#define TRAP_KERNEL_CS 0x08
#define TRAP_KERNEL_DS 0x10
#define TRAP_USER_CS   0x18
#define TRAP_USER_DS   0x20
#define TRAP_TSS_SEL   0x28

#ifndef __ASSEMBLER__
#include "libc.h"

struct trap_frame {
    u32 es, ds;
    u32 edi, esi, ebp, esp_unused, ebx, edx, ecx, eax; /* pushal */
    u32 vector, err, eip, cs, eflags, esp, ss;         /* esp, ss only from ring 3 */
};

struct trap_record {
    u32 count, vector, err, cr2, eip, cs;
};
extern volatile struct trap_record trap_last;

/* Called first for every exception; return nonzero when it handled the event (the frame
 * is resumed as it stands, e.g. after fixing a page-table entry). */
extern int (*trap_hook)(struct trap_frame *f, u32 cr2);

void trap_init(void);  /* GDT, TSS (ESP0), IDT (0-31, 0x80 DPL 3) */
void trap_reset(void); /* clear trap_last */

/* Ring-0 accesses that may fault; return 1 if the access completed. */
int probe_read32(u32 va, u32 *val);
int probe_write32(u32 va, u32 val);
int probe_exec(u32 va); /* calls va; the target must hold a `ret` (0xC3) */

/* Ring 3 (IOPL 0, IF 0): one access at va; 1 if it completed, 0 if it faulted. */
int user_read32(u32 va, u32 *val);
int user_write32(u32 va, u32 val);
int user_exec(u32 va); /* jumps to va; the target must hold `int $0x80` (0xCD 0x80) */

static inline u32 read_cr0_32(void) { u32 v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline u32 read_cr2_32(void) { u32 v; __asm__ volatile("mov %%cr2, %0" : "=r"(v)); return v; }
static inline u32 read_cr3_32(void) { u32 v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline u32 read_cr4_32(void) { u32 v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void write_cr0_32(u32 v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline void write_cr3_32(u32 v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void write_cr4_32(u32 v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

#endif /* __ASSEMBLER__ */
#endif
